#!/usr/bin/env bash
# call B: the student on to STUDENT_STEPS; its fp16 EMA packaged first (so that it comes back whatever follows);
# accept (guidance 1.5/2/2.5/3), the table and the curve beside the text-to-image teacher, which trains to the
# deadline; then the class model's bundle (2 files back) and the text teacher's log
DEADLINE=${DEADLINE:-560}
source .devcalls/common.sh
cd .devsnap
export CKPT_EVERY=1000 STUDENTS=lit-inherit-kd
STEPS=${STUDENT_STEPS:-6000} TIME_LIMIT=${STUDENT_SECONDS:-260} tools/builtin-model.sh students $root/runs
stamp fmnist student; rate $root/runs/lit-inherit-kd/log.jsonl
mkdir -p $OUT/fmnist
PACKAGE_TO=$OUT/fmnist/lit-inherit-kd.safetensors tools/builtin-model.sh package $root/runs lit-inherit-kd; stamp packaged
(ACCEPT_CFGS="1.5 2 2.5 3" tools/builtin-model.sh accept $root/runs &
 tools/builtin-model.sh table $root/runs &
 CURVE_EVERY=2000 tools/builtin-model.sh curve $root/runs >/dev/null &
 wait) >$root/runs/evalB.log 2>&1 &
ev=$!
CKPT_EVERY=1000 TIME_LIMIT=$(( $(left) - 50 )) tools/builtin-t2i.sh teacher $root/runs/t2i
stamp t2i teacher; rate $root/runs/t2i/pixart-teacher/log.jsonl
while kill -0 $ev 2>/dev/null && [ $(left) -gt 20 ]; do sleep 2; done
stamp fmnist evaluations; cat $root/runs/evalB.log
tools/builtin-model.sh bundle $root/runs $OUT/fmnist lit-inherit-kd
tar -czf $OUT/logsB.tar.gz -C $root runs/t2i/pixart-teacher.log runs/t2i/pixart-teacher/log.jsonl runs/evalB.log
stamp done
