#!/usr/bin/env bash
# Trains the built-in Fashion-MNIST model and the runs of the README's replication table, with the project's
# own tools only, on a CUDA machine. Every stage resumes; run the stages in order:
#   tools/builtin-model.sh teacher   RUNS   DiT teacher, from scratch
#   tools/builtin-model.sh students  RUNS   LiT from scratch, with inheritance, inheritance + KD, KD with 4 heads
#   tools/builtin-model.sh samples   RUNS   5,000 class-cycled samples of every run (SAMPLES to change)
#   tools/builtin-model.sh package   RUNS   the distilled LiT's EMA as model/builtin/lit-fmnist.safetensors (fp16)
# Environment: LIT (the lit binary, default build-cuda/tools/lit), DATA (Fashion-MNIST folder),
# STEPS (the step budget of every run, default 5000), BATCH (default 256), DEVICE (default cuda), KEEP
# (checkpoints kept per run, default 2; 0 keeps all).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:?stage: teacher, students, samples or package}
runs=${2:?run folder}
LIT=${LIT:-build-cuda/tools/lit}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
STEPS=${STEPS:-5000}
DEVICE=${DEVICE:-cuda}
common=(--data "fashion-mnist:$DATA" --device "$DEVICE" --bf16 --batch-size "${BATCH:-256}" --max-steps "$STEPS" --lr 3e-4
  --warmup 500 --ema-decay 0.999 --checkpoint-every 1000 --keep "${KEEP:-2}" --log-every 500 --seed 1)
resume_flag() { [ -d "$1/checkpoints" ] && echo "--resume $1" || true; }
teacher="$runs/dit-teacher/checkpoints"

case "$stage" in
teacher)
  $LIT train --config model/builtin/dit-fmnist.json "${common[@]}" -o "$runs/dit-teacher" \
    --sample-every "$STEPS" $(resume_flag "$runs/dit-teacher")
  ;;
students)
  t=$(ls -d "$teacher"/step-* | tail -1)/ema.safetensors
  # The four students run side by side: one small model leaves most of the GPU idle.
  $LIT distill --teacher "$t" --init scratch --lambda-eps 0 --lambda-var 0 "${common[@]}" \
    -o "$runs/lit-scratch" $(resume_flag "$runs/lit-scratch") >"$runs/lit-scratch.log" 2>&1 &
  $LIT distill --teacher "$t" --init inherit --lambda-eps 0 --lambda-var 0 "${common[@]}" \
    -o "$runs/lit-inherit" $(resume_flag "$runs/lit-inherit") >"$runs/lit-inherit.log" 2>&1 &
  $LIT distill --teacher "$t" --init inherit "${common[@]}" \
    -o "$runs/lit-inherit-kd" $(resume_flag "$runs/lit-inherit-kd") >"$runs/lit-inherit-kd.log" 2>&1 &
  $LIT distill --teacher "$t" --init inherit --student-heads 4 "${common[@]}" \
    -o "$runs/lit-inherit-kd-4heads" $(resume_flag "$runs/lit-inherit-kd-4heads") >"$runs/lit-inherit-kd-4heads.log" 2>&1 &
  wait
  tail -n 3 "$runs"/lit-*.log
  ;;
samples)
  for run in dit-teacher lit-scratch lit-inherit lit-inherit-kd lit-inherit-kd-4heads; do
    model=$(ls -d "$runs/$run/checkpoints"/step-* | tail -1)/ema.safetensors
    classes=()
    for c in 0 1 2 3 4 5 6 7 8 9; do classes+=(--class "$c"); done
    $LIT generate -q --model "$model" "${classes[@]}" -n "${SAMPLES:-5000}" --batch-size 500 --sampler dpm++2m --steps 25 \
      --cfg-scale 1.5 --seed 0 --device "$DEVICE" -o "$runs/samples-$run" --npz "$runs/$run.npz" $( [ -d "$runs/samples-$run" ] && echo --resume)
  done
  ;;
package)
  d=$(ls -d "$runs/lit-inherit-kd/checkpoints"/step-* | tail -1)
  $LIT convert "$d/ema.safetensors" model/builtin/lit-fmnist.safetensors --dtype fp16 \
    --class-names model/builtin/fmnist-classes.txt \
    --metadata "recipe=tools/builtin-model.sh (LiT distilled from a DiT, weight inheritance + hybrid KD)"
  ;;
*) echo "unknown stage '$stage'" >&2; exit 2 ;;
esac
