#!/usr/bin/env bash
# call T0 (issue 19; 2026-12-03, fifth session): the text teacher from scratch on a fresh machine, for when no
# earlier weights are at hand (.devcalls/init absent): build lit, the canvases, a new tokenizer (Python's
# sentencepiece: the GPU machine has no spm_train) and the tokens on the CPUs, then the teacher from
# model/builtin/t2i/pixart-canvas.json + t5-canvas.json until EVAL_SECONDS before the deadline, its prompt
# adherence and the bundle (fp16 EMA + T5 folder with the tokenizer + logs). If the first training run dies
# (the pinned, non-blocking copies ran on no GPU before), it trains again with --no-pin-memory.
DEADLINE=${DEADLINE:-560}
EVAL_SECONDS=${EVAL_SECONDS:-60}
source .devcalls/common.sh
build_lit || exit 1
t2i_data
stamp t2i data rc $?
ls -l $root/runs/t2i/spiece.model || { tail -5 $root/runs/t2i/data.log; exit 1; }
cd .devsnap
teacher_and_eval
if ! ls $root/runs/t2i/pixart-teacher/checkpoints >/dev/null 2>&1; then
  tail -5 $root/runs/t2i/pixart-teacher.log
  export TRAIN_FLAGS=--no-pin-memory
  stamp "teacher failed: again with $TRAIN_FLAGS"
  teacher_and_eval
fi
STUDENTS= tools/builtin-t2i.sh bundle $root/runs/t2i $OUT/t2i
stamp done
