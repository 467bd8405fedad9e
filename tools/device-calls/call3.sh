#!/usr/bin/env bash
# call 3: the teacher's EMA encoder's caption features, the three LiT-T2I students at one time budget each, then
# the evaluation of all four, then the bundle. Straight after T2 on the same machine it takes the teacher run's
# last checkpoint; on a fresh machine it builds, makes the canvases and takes the teacher in .devcalls/init.
DEADLINE=${DEADLINE:-570}
EVAL_SECONDS=${EVAL_SECONDS:-150}
source .devcalls/common.sh
[ -x $LIT ] || build_lit || exit 1
[ -f $root/runs/t2i/canvases/captions.json ] || [ -f $root/runs/t2i/canvases/make-captions.json ] || t2i_data
[ -d $root/runs/t2i/pixart-teacher/checkpoints ] || export TEACHER=$root/.devcalls/init
cd .devsnap
tools/builtin-t2i.sh features $root/runs/t2i >$root/runs/t2i/features.log 2>&1
stamp features rc $?
export STUDENTS="lit-t2i-inherit-kd lit-t2i-inherit lit-t2i-scratch" CKPT_EVERY=250
per=$(( ($(left) - EVAL_SECONDS) / 3 ))
stamp "students, $per s each"
TIME_LIMIT=$per tools/builtin-t2i.sh students $root/runs/t2i
for r in $STUDENTS; do rate $root/runs/t2i/$r/log.jsonl; done
stamp eval
timeout $(( $(left) - 25 )) tools/builtin-t2i.sh eval $root/runs/t2i; stamp eval rc $?
tools/builtin-t2i.sh bundle $root/runs/t2i $OUT/t2i
stamp done
