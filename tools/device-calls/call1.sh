#!/usr/bin/env bash
# call 1: build lit; the t2i data (CPU) beside the Fashion-MNIST DiT teacher; then the t2i teacher to the deadline
DEADLINE=${DEADLINE:-570}
source .devcalls/common.sh
build_lit || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p runs/t2i
cp .devcalls/spiece.model runs/t2i/
cd .devsnap
(tools/builtin-t2i.sh data $root/runs/t2i && tools/builtin-t2i.sh tokens $root/runs/t2i) >$root/runs/t2i/data.log 2>&1 &
data=$!
CKPT_EVERY=1000 TIME_LIMIT=${TEACHER_SECONDS:-330} tools/builtin-model.sh teacher $root/runs
stamp fmnist teacher; rate $root/runs/dit-teacher/log.jsonl
wait $data; stamp t2i data rc $?; tail -n 3 $root/runs/t2i/data.log
CKPT_EVERY=1000 TIME_LIMIT=$(( $(left) - 10 )) tools/builtin-t2i.sh teacher $root/runs/t2i
stamp t2i teacher; rate $root/runs/t2i/pixart-teacher/log.jsonl
ls $root/runs/t2i/pixart-teacher/checkpoints
tar -czf $OUT/logs1.tar.gz -C $root runs/dit-teacher.log runs/dit-teacher/log.jsonl runs/t2i/data.log runs/t2i/pixart-teacher.log runs/t2i/pixart-teacher/log.jsonl 2>/dev/null
stamp done
