#!/usr/bin/env bash
# call 2: the Fashion-MNIST LiT student (inheritance + KD) for STUDENT_SECONDS; its evaluation and bundle beside the
# t2i teacher, which goes on; then the t2i features. Brings back the class model and a t2i teacher insurance copy.
DEADLINE=${DEADLINE:-570}
source .devcalls/common.sh
cd .devsnap
export CKPT_EVERY=1000
STUDENTS=lit-inherit-kd TIME_LIMIT=${STUDENT_SECONDS:-270} tools/builtin-model.sh students $root/runs
stamp fmnist student; rate $root/runs/lit-inherit-kd/log.jsonl
(export STUDENTS=lit-inherit-kd
 ACCEPT_CFGS="1.5 2 3" tools/builtin-model.sh accept $root/runs
 tools/builtin-model.sh table $root/runs
 mkdir -p $OUT/fmnist && tools/builtin-model.sh bundle $root/runs $OUT/fmnist lit-inherit-kd) >$root/runs/eval-call2.log 2>&1 &
ev=$!
TIME_LIMIT=$(( $(left) - 70 )) tools/builtin-t2i.sh teacher $root/runs/t2i
stamp t2i teacher; rate $root/runs/t2i/pixart-teacher/log.jsonl
tools/builtin-t2i.sh features $root/runs/t2i >$root/runs/t2i/features.log 2>&1; stamp features rc $?
tail -n 2 $root/runs/t2i/features.log
wait $ev; stamp fmnist eval; cat $root/runs/eval-call2.log
t=$(ls -d $root/runs/t2i/pixart-teacher/checkpoints/step-* | tail -1)
$LIT convert $t/ema.safetensors $OUT/t2i-teacher.safetensors --dtype fp16 >/dev/null
tar -czf $OUT/t2i-t5.tar.gz -C $t text_encoder_ema -C $root/runs/t2i spiece.model
tar -czf $OUT/logs2.tar.gz -C $root runs/t2i/pixart-teacher.log runs/t2i/pixart-teacher/log.jsonl runs/eval-call2.log 2>/dev/null
ls -l $OUT $OUT/fmnist
stamp done
