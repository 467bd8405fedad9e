#!/usr/bin/env bash
# call T1 (issue 19; first run 2026-12-03, fourth session): build lit; the canvases + tokens on the CPUs; a
# profile of 5 training steps of the text teacher (and with PROFILE_DIT=1 of the class DiT): tables in
# $OUT/trace-*.txt, traces gzipped; the text teacher goes on from the weights that came back
# (.devcalls/init: its fp16 EMA + fp16 T5 folder, 18 MB; INIT_TEACHER) until EVAL_SECONDS before the deadline,
# then its prompt adherence (lit eval-prompts) and the bundle
# (fp16 EMA + T5 folder + logs: a fresh machine continues from them). 7 files back.
DEADLINE=${DEADLINE:-560}
EVAL_SECONDS=${EVAL_SECONDS:-90}
source .devcalls/common.sh
build_lit || exit 1
t2i_data
stamp t2i data rc $?
cd .devsnap
profile() {  # profile NAME lit-train-arguments...: 5 steps after 20, bf16, batch 256
  local name=$1
  shift
  $LIT train "$@" ${TRAIN_FLAGS:-} --device cuda --bf16 --batch-size 256 --max-steps 30 --log-every 10 \
    --profile $root/runs/$name.json --profile-wait 20 --profile-steps 5 >$root/runs/profile-$name.log 2>&1
  stamp profile $name rc $?
  python3 tools/trace_summary.py $root/runs/$name.json --top 30 >$OUT/trace-$name.txt 2>&1
  head -4 $OUT/trace-$name.txt
  gzip -c $root/runs/$name.json >$OUT/$name.json.gz
}
profile t2i-teacher --model $root/.devcalls/init/pixart-teacher.safetensors --text-encoder-init $root/.devcalls/init/t5 \
  --tokenizer $root/runs/t2i/spiece.model --data $root/runs/t2i/tokens
# The pinned, non-blocking copies (new in the fourth session) are checked by this first CUDA run: if it fails,
# the teacher trains with pageable copies (--no-pin-memory) and the log says why.
if ! grep -q '^done:' $root/runs/profile-t2i-teacher.log; then
  tail -3 $root/runs/profile-t2i-teacher.log
  export TRAIN_FLAGS=--no-pin-memory
  stamp "profile failed: again with $TRAIN_FLAGS"
  mv $root/runs/profile-t2i-teacher.log $root/runs/profile-t2i-teacher-pinned.log
  profile t2i-teacher --model $root/.devcalls/init/pixart-teacher.safetensors --text-encoder-init $root/.devcalls/init/t5 \
    --tokenizer $root/runs/t2i/spiece.model --data $root/runs/t2i/tokens
fi
[ "${PROFILE_DIT:-0}" = 1 ] && profile dit-fmnist --config model/builtin/dit-fmnist.json --data fashion-mnist:$DATA
teacher_and_eval
tar -czf $OUT/profile-logs.tar.gz -C $root/runs $(cd $root/runs && ls profile-*.log)
tools/builtin-t2i.sh bundle $root/runs/t2i $OUT/t2i >/dev/null
stamp done
