#!/usr/bin/env bash
# call B: the student goes on for STUDENT_SECONDS; accept (guidance 1.5/2/3) and the table at the common step; bundle
DEADLINE=${DEADLINE:-400}
source .devcalls/common.sh
cd .devsnap
export CKPT_EVERY=1000 STUDENTS=lit-inherit-kd
TIME_LIMIT=${STUDENT_SECONDS:-200} tools/builtin-model.sh students $root/runs
stamp fmnist student; rate $root/runs/lit-inherit-kd/log.jsonl
mkdir -p $OUT/fmnist
PACKAGE_TO=$OUT/fmnist/lit-inherit-kd.safetensors tools/builtin-model.sh package $root/runs lit-inherit-kd; stamp packaged
ACCEPT_CFGS="1.5 2 2.5 3" tools/builtin-model.sh accept $root/runs &
a=$!
timeout $(( $(left) - 20 )) tools/builtin-model.sh table $root/runs; stamp table rc $?
wait $a; stamp accept
tools/builtin-model.sh bundle $root/runs $OUT/fmnist lit-inherit-kd
stamp done
