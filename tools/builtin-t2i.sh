#!/usr/bin/env bash
# The recipe of the built-in text-to-image model (issue 19), with the project's own tools only: captioned
# Fashion-MNIST canvases, a SentencePiece tokenizer trained on their captions, a PixArt-layout teacher trained
# jointly with a small T5 encoder from scratch, then LiT-T2I students from it (the teacher's encoder frozen,
# as PixArt-Σ's T5 is), scored for prompt adherence. Every stage resumes or is skipped when its output exists.
#   tools/builtin-t2i.sh data      RUNS  lit make-captions: COUNT training canvases (train split) and 10,000 real
#                                        canvases of the test split (the FD reference and eval-prompts.jsonl)
#   tools/builtin-t2i.sh tokenizer RUNS  spm_train on the captions -> RUNS/spiece.model (T5 ids: pad 0, eos 1, unk 2)
#   tools/builtin-t2i.sh tokens    RUNS  lit extract-latents --tokenizer --no-flip -> RUNS/tokens (pixel crops + ids)
#   tools/builtin-t2i.sh teacher   RUNS  lit train (PixArt + T5 jointly) -> RUNS/pixart-teacher; with
#                                        INIT_TEACHER=DIR (a bundle's pixart-teacher.safetensors and t5/, e.g. an
#                                        earlier run's, or model/builtin/t2i/teacher, the one kept in the
#                                        repository), a new run starts from those weights (not from scratch)
#                                        unless RUNS/pixart-teacher has checkpoints (then it resumes as usual)
#   tools/builtin-t2i.sh features  RUNS  the teacher's EMA encoder's features of every caption -> RUNS/features;
#                                        with TEACHER=DIR (a bundle, as INIT_TEACHER) the students, eval and bundle
#                                        stages take that teacher and its t5/ instead of the teacher run's
#   tools/builtin-t2i.sh students  RUNS  lit distill: lit-t2i-scratch, lit-t2i-inherit, lit-t2i-inherit-kd
#   tools/builtin-t2i.sh eval      RUNS  lit eval-prompts of the teacher (last checkpoint) and every student at the
#                                        students' common checkpoint step (one step budget) -> RUNS/eval-*.json
#   tools/builtin-t2i.sh bundle    RUNS DIR  what a device call brings back in few files (at most 8, 16 MiB each):
#                                        DIR/results.tar.gz (logs, evaluations, tokenizer, the teacher's EMA T5
#                                        folder) and the fp16 EMA of the teacher and of every student at the
#                                        common step (RUN.safetensors) and, where it went further, at its last
#                                        checkpoint (RUN-last.safetensors): at most 8 files
# Environment: LIT (default build-cuda/tools/lit), DATA (Fashion-MNIST folder), COUNT (60000), STEPS (20000),
# BATCH (256), LR (5e-4), CKPT_EVERY (1000), TIME_LIMIT (seconds per training stage, stopped with a checkpoint),
# DEVICE (cuda), STUDENTS (a subset of the three), PER_PROMPT (4 images per evaluation prompt), CFG (guidance
# scale of the evaluation, 4.5), LR_SCHEDULE and MIN_LR (lit train --lr-schedule, --min-lr; constant by default),
# TRAIN_FLAGS (more flags for every lit train and lit distill).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:?stage: data, tokenizer, tokens, teacher, features, students, eval or bundle}
runs=${2:?run folder}
LIT=${LIT:-build-cuda/tools/lit}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
DEVICE=${DEVICE:-cuda}
MAX_LENGTH=48  # model/builtin/t2i/pixart-canvas.json's model_max_length
STUDENTS=${STUDENTS:-lit-t2i-scratch lit-t2i-inherit lit-t2i-inherit-kd}
common=(--device "$DEVICE" --bf16 --batch-size "${BATCH:-256}" --max-steps "${STEPS:-20000}" --lr "${LR:-5e-4}"
  --warmup 500 --grad-clip 1 --ema-decay 0.999 --checkpoint-every "${CKPT_EVERY:-1000}" --keep 0 --log-every 500 --seed 1)
# LR_SCHEDULE (constant: DiT's and PixArt's recipe), or linear/cosine decay to MIN_LR at STEPS
common+=(--lr-schedule "${LR_SCHEDULE:-constant}" --min-lr "${MIN_LR:-0}")
# shellcheck disable=SC2206 # TRAIN_FLAGS: extra lit train/distill flags, split at spaces (e.g. --no-pin-memory)
common+=(${TRAIN_FLAGS:-})
mkdir -p "$runs"

train() {  # a training command, stopped with SIGINT (lit saves a checkpoint) after TIME_LIMIT seconds if set
  local status=0
  if [ -n "${TIME_LIMIT:-}" ]; then timeout -s INT -k 60 "$TIME_LIMIT" "$LIT" "$@" || status=$?; else "$LIT" "$@" || status=$?; fi
  [ $status = 0 ] || [ $status = 124 ] || [ $status = 130 ] || { echo "$LIT $1 failed ($status)" >&2; return $status; }
}
resume_flag() { [ -d "$1/checkpoints" ] && echo "--resume $1" || true; }
last_checkpoint() { ls -d "$runs/$1/checkpoints"/step-* | tail -1; }
# The teacher the students learn from and the T5 that encodes their captions: TEACHER=DIR (a bundle's
# pixart-teacher.safetensors and t5/, e.g. what an earlier device call brought back) or the teacher run's last
# checkpoint (its EMA and EMA encoder).
teacher_model() {
  if [ -n "${TEACHER:-}" ]; then echo "$TEACHER/pixart-teacher.safetensors"; else echo "$(last_checkpoint pixart-teacher)/ema.safetensors"; fi
}
teacher_t5() {
  if [ -n "${TEACHER:-}" ]; then echo "$TEACHER/t5"; else echo "$(last_checkpoint pixart-teacher)/text_encoder_ema"; fi
}
steps_of() { ls "$runs/$1/checkpoints" 2>/dev/null | sed -n 's/^step-0*\([0-9][0-9]*\)$/\1/p' | sort -n; }
# The last checkpoint step that every student has (their common step budget).
common_step() {
  local min=
  for r in $STUDENTS; do
    local s
    s=$(steps_of "$r" | tail -1)
    [ -n "$s" ] || continue
    if [ -z "$min" ] || [ "$s" -lt "$min" ]; then min=$s; fi
  done
  echo "${min:-0}"
}
# The EMA weights a run is evaluated and bundled with: the teacher's (teacher_model) or a student's at the common
# step; fails for a run that has none.
model_of() {
  if [ "$1" = pixart-teacher ]; then
    [ -n "${TEACHER:-}" ] || [ -d "$runs/pixart-teacher/checkpoints" ] || return 1
    teacher_model
  else
    [ -d "$runs/$1/checkpoints" ] || return 1
    local c
    c=$(student_checkpoint "$1") || return 1
    echo "$c/ema.safetensors"
  fi
}
student_checkpoint() { # the checkpoint at the common step, or the run's last one below it (fails if none)
  local s
  s=$(steps_of "$1" | awk -v c="$(common_step)" '$1 <= c' | tail -1)
  [ -n "$s" ] || { echo "$1: no checkpoint at or below the common step $(common_step)" >&2; return 1; }
  printf '%s/%s/checkpoints/step-%07d' "$runs" "$1" "$s"
}

case "$stage" in
data)
  [ -f "$runs/canvases/captions.json" ] || [ -f "$runs/canvases/make-captions.json" ] ||
    "$LIT" make-captions -o "$runs/canvases" -n "${COUNT:-60000}" --seed 0 --data "$DATA" --split train
  [ -f "$runs/t10k-canvases/make-captions.json" ] ||
    "$LIT" make-captions -o "$runs/t10k-canvases" -n 10000 --seed 1 --data "$DATA" --split t10k
  ;;
tokenizer)
  # The captions have under a hundred distinct words: a word-level vocabulary, no hard limit.
  # Debian's spm_train; where it is missing (the GPU machine), the same trainer through Python's sentencepiece.
  spm=(--input="$runs/canvases/corpus.txt" --model_prefix="$runs/spiece" --vocab_size=128 --hard_vocab_limit=false
    --model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1 --character_coverage=1.0 --num_threads=2
    --minloglevel=1)
  if [ ! -f "$runs/spiece.model" ]; then
    if command -v spm_train >/dev/null; then
      spm_train "${spm[@]}"
    else
      python3 -c 'import sys, sentencepiece as s; s.SentencePieceTrainer.Train(" ".join(sys.argv[1:]))' "${spm[@]}"
    fi
  fi
  ;;
tokens)
  [ -f "$runs/tokens/captions.json" ] || "$LIT" extract-latents --tokenizer "$runs/spiece.model" --data "$runs/canvases" \
    --image-size 64 --max-length $MAX_LENGTH --no-flip -o "$runs/tokens"
  ;;
teacher)
  # From scratch, or from INIT_TEACHER's weights (no optimizer state: a new run) until the first checkpoint.
  start=(--config model/builtin/t2i/pixart-canvas.json --text-encoder-config model/builtin/t2i/t5-canvas.json)
  if [ -n "${INIT_TEACHER:-}" ] && [ ! -d "$runs/pixart-teacher/checkpoints" ]; then
    start=(--model "$INIT_TEACHER/pixart-teacher.safetensors" --text-encoder-init "$INIT_TEACHER/t5")
  fi
  # shellcheck disable=SC2046 # --resume RUN or nothing
  train train "${start[@]}" --tokenizer "$runs/spiece.model" --data "$runs/tokens" "${common[@]}" \
    -o "$runs/pixart-teacher" $(resume_flag "$runs/pixart-teacher") >>"$runs/pixart-teacher.log" 2>&1
  tail -n 2 "$runs/pixart-teacher.log"
  ;;
features)
  m=$(teacher_model) t5=$(teacher_t5)
  rm -rf "$runs/features"
  "$LIT" extract-latents --text-encoder "$t5" --data "$runs/canvases" --image-size 64 \
    --max-length $MAX_LENGTH --no-flip --device "$DEVICE" -o "$runs/features"
  printf '%s\n%s\n' "$m" "$t5" >"$runs/features/teacher.txt"  # the teacher model, its T5 folder
  ;;
students)
  m=$(sed -n 1p "$runs/features/teacher.txt")
  for r in $STUDENTS; do
    case $r in
    lit-t2i-scratch) args=(--init scratch --lambda-eps 0 --lambda-var 0) ;;
    lit-t2i-inherit) args=(--init inherit --lambda-eps 0 --lambda-var 0) ;;
    lit-t2i-inherit-kd) args=(--init inherit --lambda-eps 0.5 --lambda-var 0.05) ;;
    *) echo "unknown student '$r'" >&2; exit 2 ;;
    esac
    # shellcheck disable=SC2046
    train distill --teacher "$m" "${args[@]}" --data "$runs/features" "${common[@]}" -o "$runs/$r" \
      $(resume_flag "$runs/$r") >>"$runs/$r.log" 2>&1
    tail -n 1 "$runs/$r.log"
  done
  ;;
eval)
  # lit generate with the learned null caption (the model was trained with y_embedding as its dropped caption),
  # then lit eval-prompts on the folder: image i has prompt i mod the prompt count.
  t5=$(teacher_t5)
  prompts=$runs/t10k-canvases/eval-prompts.jsonl
  "$LIT" eval-prompts --prompts "$prompts" --captions-out "$runs/eval-captions.txt" >/dev/null
  n=$(($(wc -l <"$runs/eval-captions.txt") * ${PER_PROMPT:-4}))
  for r in pixart-teacher $STUDENTS; do
    m=$(model_of "$r") || continue
    echo "$r: $m"
    rm -rf "$runs/eval-$r"
    "$LIT" generate -q --model "$m" --text-encoder "$t5" \
      --null-caption learned --cfg-scale "${CFG:-4.5}" --prompts-file "$runs/eval-captions.txt" -n "$n" --batch-size 240 --device "$DEVICE" \
      -o "$runs/eval-$r"
    "$LIT" eval-prompts -q --prompts "$prompts" --images "$runs/eval-$r" --per-prompt "${PER_PROMPT:-4}" \
      --real "$runs/t10k-canvases" --json "$runs/eval-$r.json" | tee "$runs/eval-$r.txt"
  done
  ;;
bundle)
  out=${3:?bundle folder}
  mkdir -p "$out"
  tmp=$(mktemp -d)
  cp "$runs"/*.log "$runs"/eval-*.json "$runs"/eval-*.txt "$runs/spiece.model" "$tmp"/ 2>/dev/null || true
  cp -r "$(teacher_t5)" "$tmp/t5"
  cp "$runs/spiece.model" "$tmp/t5/spiece.model"
  for r in pixart-teacher $STUDENTS; do
    m=$(model_of "$r") || continue
    [ -f "$runs/$r/log.jsonl" ] && cp "$runs/$r/log.jsonl" "$tmp/$r.log.jsonl"
    "$LIT" convert "$m" "$out/$r.safetensors" --dtype fp16 \
      --metadata "recipe=tools/builtin-t2i.sh (run $r, $(basename "$(dirname "$m")"))" >/dev/null
    # A student that trained on past the common step: its last checkpoint too (the one to ship).
    [ $r = pixart-teacher ] || [ "$(last_checkpoint "$r")/ema.safetensors" = "$m" ] ||
      "$LIT" convert "$(last_checkpoint "$r")/ema.safetensors" "$out/$r-last.safetensors" --dtype fp16 \
        --metadata "recipe=tools/builtin-t2i.sh (run $r, $(basename "$(last_checkpoint "$r")"))" >/dev/null
  done
  tar -czf "$out/results.tar.gz" -C "$tmp" .
  rm -rf "$tmp"
  ls -l "$out"
  ;;
*) echo "unknown stage '$stage'" >&2; exit 2 ;;
esac
