#!/usr/bin/env bash
# Trains the built-in Fashion-MNIST model and the runs of its replication table (docs/builtin-model.md), with
# the project's own tools only, on a CUDA machine. Every training stage resumes. Stages:
#   tools/builtin-model.sh teacher   RUNS   DiT teacher, from scratch
#   tools/builtin-model.sh students  RUNS   LiT students from the teacher's last checkpoint, one after the
#                                           other (PARALLEL=1: side by side; on one H200 that gave no more
#                                           steps per second in all); STUDENTS picks some of: lit-scratch
#                                           lit-inherit lit-inherit-kd lit-inherit-kd-4heads (all by default)
#   tools/builtin-model.sh curve     RUNS   FD-FMNIST of every CURVE_EVERY-th step's checkpoint not yet
#                                           evaluated (CURVE_SAMPLES class-cycled samples each, FD against the
#                                           test split's statistics, computed once) -> RUNS/curve.tsv
#   tools/builtin-model.sh table     RUNS   SAMPLES samples of the teacher's last checkpoint and of every student
#                                           at the students' common step -> RUNS/table.tsv (FD, P, R, accuracy)
#   tools/builtin-model.sh accept    RUNS   the students at the first command's settings (20 DPM-Solver++
#                                           steps, float32, ACCEPT_SAMPLES) at each guidance scale of
#                                           ACCEPT_CFGS (default 4) -> RUNS/accept.tsv
#   tools/builtin-model.sh package   RUNS [RUN]  RUN's (default lit-inherit-kd) EMA at the common step, fp16,
#                                           -> PACKAGE_TO (default model/builtin/lit-fmnist.safetensors)
#   tools/builtin-model.sh bundle    RUNS DIR [RUN...]  what a device call brings back, in few files (a call returns
#                                           at most 8, 16 MiB each: the 2026-12-03 models were lost to that):
#                                           DIR/results.tar.gz (tables, logs, curve, log.jsonl of every run)
#                                           and each RUN's fp16 EMA at the common step (default lit-inherit-kd
#                                           lit-inherit; 15 MB each) as DIR/RUN.safetensors
#   tools/builtin-model.sh lease     RUNS   teacher, students, curve, table and accept inside a time budget:
#                                           TEACHER_SECONDS, then STUDENT_SECONDS, evaluating checkpoints while
#                                           the runs train (TEACHER_SECONDS=0: the students only, resuming)
# Environment: LIT (the lit binary, default build-cuda/tools/lit), DATA (Fashion-MNIST folder), STEPS (the step
# budget of every run, default 20000), TIME_LIMIT (seconds; a training stage stops there instead, with a
# checkpoint: the table then compares the students at the last checkpoint step all of them reached), BATCH
# (256), LR (5e-4), CKPT_EVERY (checkpoint and curve interval, 500), KEEP (checkpoints kept per run, 0 = all),
# DEVICE (cuda), EVAL_THREADS (CPU threads of each evaluation process, 2).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:?stage: teacher, students, curve, table, accept, package or lease}
runs=${2:?run folder}
LIT=${LIT:-build-cuda/tools/lit}
DATA=$(cd "${DATA:-/usr/share/datasets/fashion-mnist}" && pwd)
STEPS=${STEPS:-20000}
DEVICE=${DEVICE:-cuda}
CKPT_EVERY=${CKPT_EVERY:-500}
CLASSIFIER=model/builtin/fmnist-classifier.safetensors
ALL_STUDENTS="lit-scratch lit-inherit lit-inherit-kd lit-inherit-kd-4heads"
STUDENTS=${STUDENTS:-$ALL_STUDENTS}
common=(--data "fashion-mnist:$DATA" --device "$DEVICE" --bf16 --batch-size "${BATCH:-256}" --max-steps "$STEPS"
  --lr "${LR:-5e-4}" --warmup 500 --grad-clip 1 --ema-decay 0.999 --checkpoint-every "$CKPT_EVERY"
  --keep "${KEEP:-0}" --log-every 500 --seed 1)
mkdir -p "$runs"

resume_flag() { [ -d "$1/checkpoints" ] && echo "--resume $1" || true; }
# A training command, stopped with SIGINT (lit saves a checkpoint and exits) after TIME_LIMIT seconds if set.
train() {
  local status=0
  if [ -n "${TIME_LIMIT:-}" ]; then timeout -s INT -k 60 "$TIME_LIMIT" "$LIT" "$@" || status=$?; else "$LIT" "$@" || status=$?; fi
  [ $status = 0 ] || [ $status = 124 ] || [ $status = 130 ] || { echo "$LIT $1 failed ($status)" >&2; return $status; }
}
steps_of() { ls "$runs/$1/checkpoints" 2>/dev/null | sed -n 's/^step-0*\([0-9][0-9]*\)$/\1/p' | sort -n; }
last_checkpoint() { ls -d "$runs/$1/checkpoints"/step-* | tail -1; }
checkpoint() { printf '%s/%s/checkpoints/step-%07d' "$runs" "$1" "$2"; }
# The last checkpoint step, a multiple of CKPT_EVERY, that every student has.
common_step() {
  local min=
  for r in $STUDENTS; do
    local s
    s=$(steps_of "$r" | awk -v e="$CKPT_EVERY" '$1 % e == 0' | tail -1)
    [ -n "$s" ] || { echo 0; return; }
    if [ -z "$min" ] || [ "$s" -lt "$min" ]; then min=$s; fi
  done
  echo "${min:-0}"
}
# evaluate MODEL OUT N CFG STEPS DTYPE: N class-cycled samples, then FD-FMNIST (+ P/R with PR=1) against the
# test split (its images with PR=1, else its statistics); prints "fd precision recall accuracy class0..class9".
# Few CPU threads each: many evaluation processes beside the training runs otherwise crawl (the test split's
# 10,000 images went through the classifier at 70 images/s in 13 processes of 16 threads on 16 cores).
EVAL_THREADS=${EVAL_THREADS:-2}
reference() {
  if [ -n "${PR:-}" ]; then echo "fashion-mnist:$DATA:t10k"; return; fi
  [ -f "$runs/t10k-stats.npz" ] || OMP_NUM_THREADS=$EVAL_THREADS "$LIT" fid --feature-network "$CLASSIFIER" "fashion-mnist:$DATA:t10k" \
    --device "$DEVICE" --save-stats "$runs/t10k-stats.npz" >/dev/null 2>&1
  echo "$runs/t10k-stats.npz"
}
evaluate() {
  local model=$1 out=$2 n=$3 cfg=$4 steps=$5 dtype=$6
  rm -rf "$out" "$out.npz"
  OMP_NUM_THREADS=$EVAL_THREADS "$LIT" generate -q --model "$model" --all-classes -n "$n" --batch-size 1000 --sampler dpm++2m --steps "$steps" \
    --cfg-scale "$cfg" --seed 0 --device "$DEVICE" --dtype "$dtype" -o "$out" --npz "$out.npz" >/dev/null
  OMP_NUM_THREADS=$EVAL_THREADS "$LIT" fid --feature-network "$CLASSIFIER" "$(reference)" "$out.npz" --device "$DEVICE" \
    --metrics "fid${PR:+,pr}" >"$out.txt" 2>/dev/null
  rm -rf "$out"
  awk '/^FD-FMNIST/ {fd=$NF} /^Precision/ {p=$NF} /^Recall/ {r=$NF} /^class accuracy/ {a=$(NF-1)}
       /^  [0-9] / {c[$1]=$(NF-1)}
       END {printf "%s\t%s\t%s\t%s", fd, (p==""?"-":p), (r==""?"-":r), a; for (i=0;i<10;i++) printf "\t%s", c[i]; print ""}' "$out.txt"
}
student_args() {
  case $1 in
  lit-scratch) echo "--init scratch --lambda-eps 0 --lambda-var 0" ;;
  lit-inherit) echo "--init inherit --lambda-eps 0 --lambda-var 0" ;;
  lit-inherit-kd) echo "--init inherit --lambda-eps 0.5 --lambda-var 0.05" ;;
  lit-inherit-kd-4heads) echo "--init inherit --lambda-eps 0.5 --lambda-var 0.05 --student-heads 4" ;;
  *) echo "unknown student '$1'" >&2; return 2 ;;
  esac
}

case "$stage" in
teacher)
  # shellcheck disable=SC2046 # --resume RUN or nothing
  train train --config model/builtin/dit-fmnist.json "${common[@]}" -o "$runs/dit-teacher" \
    $(resume_flag "$runs/dit-teacher") >>"$runs/dit-teacher.log" 2>&1
  tail -n 2 "$runs/dit-teacher.log"
  ;;
students)
  t=$(last_checkpoint dit-teacher)/ema.safetensors
  echo "teacher $t"
  pids=()
  status=0
  # One after the other, a time limit is shared out between the students.
  if [ -n "${TIME_LIMIT:-}" ] && [ "${PARALLEL:-0}" != 1 ]; then TIME_LIMIT=$((TIME_LIMIT / $(echo $STUDENTS | wc -w))); fi
  for r in $STUDENTS; do
    # shellcheck disable=SC2046 # word lists
    train distill --teacher "$t" $(student_args "$r") "${common[@]}" -o "$runs/$r" $(resume_flag "$runs/$r") \
      >>"$runs/$r.log" 2>&1 &
    if [ "${PARALLEL:-0}" = 1 ]; then pids+=($!); else wait $! || status=1; fi
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  for r in $STUDENTS; do tail -n 1 "$runs/$r.log"; done
  exit $status
  ;;
curve)
  [ -f "$runs/curve.tsv" ] || printf 'run\tstep\tfd_fmnist\tprecision\trecall\taccuracy\tc0\tc1\tc2\tc3\tc4\tc5\tc6\tc7\tc8\tc9\n' >"$runs/curve.tsv"
  mkdir -p "$runs/eval"
  for r in dit-teacher $ALL_STUDENTS; do
    (for s in $(steps_of "$r"); do
      [ $((s % ${CURVE_EVERY:-$CKPT_EVERY})) = 0 ] || continue
      grep -q "^$r"$'\t'"$s"$'\t' "$runs/curve.tsv" && continue
      line=$(evaluate "$(checkpoint "$r" "$s")/ema.safetensors" "$runs/eval/curve-$r-$s" "${CURVE_SAMPLES:-1000}" 1.5 25 bf16)
      printf '%s\t%s\t%s\n' "$r" "$s" "$line" | tee -a "$runs/curve.tsv"
    done) &
  done
  wait
  ;;
table)
  step=$(common_step)
  echo "students at step $step"
  printf 'run\tstep\tfd_fmnist\tprecision\trecall\taccuracy\tc0\tc1\tc2\tc3\tc4\tc5\tc6\tc7\tc8\tc9\n' >"$runs/table.tsv"
  mkdir -p "$runs/eval"
  tstep=$(steps_of dit-teacher | tail -1)
  for r in dit-teacher $STUDENTS; do
    s=$step
    [ $r = dit-teacher ] && s=$tstep
    (PR=1 evaluate "$(checkpoint "$r" "$s")/ema.safetensors" "$runs/eval/table-$r" "${SAMPLES:-5000}" 1.5 25 bf16 |
      sed "s/^/$r	$s	/" >"$runs/eval/table-$r.row") &
  done
  wait
  for r in dit-teacher $STUDENTS; do cat "$runs/eval/table-$r.row"; done | tee -a "$runs/table.tsv"
  ;;
accept)
  # Every student at each guidance scale of ACCEPT_CFGS (default 4, the first command's) -> one row each.
  step=$(common_step)
  printf 'run\tstep\tcfg\tfd_fmnist\tprecision\trecall\taccuracy\tc0\tc1\tc2\tc3\tc4\tc5\tc6\tc7\tc8\tc9\n' >"$runs/accept.tsv"
  mkdir -p "$runs/eval"
  for r in $STUDENTS; do
    for cfg in ${ACCEPT_CFGS:-4}; do
      (evaluate "$(checkpoint "$r" "$step")/ema.safetensors" "$runs/eval/accept-$r-$cfg" "${ACCEPT_SAMPLES:-1000}" "$cfg" 20 fp32 |
        sed "s/^/$r	$step	$cfg	/" >"$runs/eval/accept-$r-$cfg.row") &
    done
  done
  wait
  for r in $STUDENTS; do for cfg in ${ACCEPT_CFGS:-4}; do cat "$runs/eval/accept-$r-$cfg.row"; done; done | tee -a "$runs/accept.tsv"
  ;;
package)
  run=${3:-lit-inherit-kd}
  d=$(checkpoint "$run" "$(common_step)")
  case $run in
  lit-scratch) how="LiT trained from scratch" ;;
  lit-inherit) how="LiT distilled from a DiT, weight inheritance" ;;
  *) how="LiT distilled from a DiT, weight inheritance + hybrid KD" ;;
  esac
  "$LIT" convert "$d/ema.safetensors" "${PACKAGE_TO:-model/builtin/lit-fmnist.safetensors}" --dtype fp16 \
    --class-names model/builtin/fmnist-classes.txt \
    --metadata "recipe=tools/builtin-model.sh ($how; run $run, $(basename "$d"))"
  ;;
bundle)
  out=${3:?bundle folder}
  shift 3
  mkdir -p "$out"
  for r in "${@:-lit-inherit-kd lit-inherit}"; do
    for run in $r; do PACKAGE_TO=$out/$run.safetensors "$0" package "$runs" "$run" >/dev/null; done
  done
  tmp=$(mktemp -d)
  cp "$runs"/*.tsv "$runs"/*.log "$tmp"/ 2>/dev/null || true
  for r in dit-teacher $ALL_STUDENTS; do [ -f "$runs/$r/log.jsonl" ] && cp "$runs/$r/log.jsonl" "$tmp/$r.log.jsonl"; done
  tar -czf "$out/results.tar.gz" -C "$tmp" .
  rm -rf "$tmp"
  ls -l "$out"
  ;;
lease)
  # Checkpoints are evaluated while the runs train (the small models leave most of the GPU idle).
  touch "$runs/.training"
  (while [ -f "$runs/.training" ]; do "$0" curve "$runs" >>"$runs/curve.log" 2>&1 || true; sleep 5; done) &
  watcher=$!
  [ "${TEACHER_SECONDS:?}" -gt 0 ] && TIME_LIMIT=$TEACHER_SECONDS "$0" teacher "$runs"
  TIME_LIMIT=${STUDENT_SECONDS:?} "$0" students "$runs" || true
  rm -f "$runs/.training"
  wait "$watcher"
  "$0" table "$runs" &
  "$0" accept "$runs" &
  "$0" curve "$runs" >>"$runs/curve.log" 2>&1
  wait
  ;;
*) echo "unknown stage '$stage'" >&2; exit 2 ;;
esac
