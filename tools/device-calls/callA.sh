#!/usr/bin/env bash
# call A: build lit; the Fashion-MNIST DiT teacher for TEACHER_SECONDS; the LiT student (inheritance + KD) to the deadline
DEADLINE=${DEADLINE:-570}
source .devcalls/common.sh
cmake -S .devsnap -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$LIT_PREFIX_PATH" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DLIT_CUDA=ON -DLIT_TESTS=OFF -DLIT_BENCH=OFF -DLIT_GUI=OFF >$OUT/cmake.log 2>&1 || { tail -30 $OUT/cmake.log; exit 1; }
ninja -C $B lit >$OUT/build.log 2>&1 || { grep -m5 -A5 error $OUT/build.log; exit 1; }
stamp build
mkdir -p runs
cd .devsnap
export CKPT_EVERY=1000
TIME_LIMIT=${TEACHER_SECONDS:-330} tools/builtin-model.sh teacher $root/runs
stamp fmnist teacher; rate $root/runs/dit-teacher/log.jsonl
STUDENTS=lit-inherit-kd TIME_LIMIT=$(( $(left) - 12 )) tools/builtin-model.sh students $root/runs
stamp fmnist student; rate $root/runs/lit-inherit-kd/log.jsonl
tar -czf $OUT/logsA.tar.gz -C $root runs/dit-teacher.log runs/dit-teacher/log.jsonl runs/lit-inherit-kd.log runs/lit-inherit-kd/log.jsonl
stamp done
