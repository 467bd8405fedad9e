#!/usr/bin/env bash
# call C: the text-to-image teacher on until EVAL_SECONDS before the deadline; its prompt adherence (lit
# eval-prompts on the 240 held-out prompts); its fp16 EMA, T5 folder, tokenizer and logs back (builtin-t2i.sh
# bundle: 2 files), for the students of a later session
DEADLINE=${DEADLINE:-420}
EVAL_SECONDS=${EVAL_SECONDS:-110}
source .devcalls/common.sh
cd .devsnap
export STUDENTS=none
CKPT_EVERY=1000 TIME_LIMIT=$(( $(left) - EVAL_SECONDS )) tools/builtin-t2i.sh teacher $root/runs/t2i
stamp t2i teacher; rate $root/runs/t2i/pixart-teacher/log.jsonl
timeout $(( $(left) - 30 )) tools/builtin-t2i.sh eval $root/runs/t2i; stamp eval rc $?
tools/builtin-t2i.sh bundle $root/runs/t2i $OUT/t2i
stamp done
