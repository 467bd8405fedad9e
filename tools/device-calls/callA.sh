#!/usr/bin/env bash
# call A: build lit; the captioned canvases + tokens on the CPUs beside the Fashion-MNIST DiT teacher (TEACHER_SECONDS);
# then the LiT student (inheritance + KD) towards STUDENT_STEPS until the deadline
DEADLINE=${DEADLINE:-560}
source .devcalls/common.sh
build_lit || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t2i_data &
data=$!
cd .devsnap
export CKPT_EVERY=1000
TIME_LIMIT=${TEACHER_SECONDS:-330} tools/builtin-model.sh teacher $root/runs
stamp fmnist teacher; rate $root/runs/dit-teacher/log.jsonl
wait $data; stamp t2i data rc $?; tail -n 3 $root/runs/t2i/data.log
STEPS=${STUDENT_STEPS:-6000} STUDENTS=lit-inherit-kd TIME_LIMIT=$(( $(left) - 12 )) tools/builtin-model.sh students $root/runs
stamp fmnist student; rate $root/runs/lit-inherit-kd/log.jsonl
tar -czf $OUT/logsA.tar.gz -C $root runs/dit-teacher.log runs/dit-teacher/log.jsonl runs/lit-inherit-kd.log runs/lit-inherit-kd/log.jsonl runs/t2i/data.log
stamp done
