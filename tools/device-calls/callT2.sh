#!/usr/bin/env bash
# call T2 (issue 19), straight after T1 on the same machine: the text teacher resumes from its last checkpoint
# (or, on a fresh machine, from .devcalls/init again after the canvases), then its prompt adherence; the
# teacher's fp16 EMA and T5 folder come back (results.tar.gz).
DEADLINE=${DEADLINE:-560}
EVAL_SECONDS=${EVAL_SECONDS:-90}
source .devcalls/common.sh
[ -x $LIT ] || build_lit || exit 1
[ -f $root/runs/t2i/tokens/captions.json ] || t2i_data
cd .devsnap
teacher_and_eval
STUDENTS= tools/builtin-t2i.sh bundle $root/runs/t2i $OUT/t2i
stamp done
