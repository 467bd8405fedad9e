#!/usr/bin/env bash
# Build, test and benchmark lit.cpp on a CUDA machine in one go (the project's lent GPU machine: run
# the kit preparation script (see README, "With CUDA") here first and carry .devkit). Logs go to $OUT (default: gpu-out/).
#   tools/gpu-check.sh [quick]      quick: build + tests + kernel benchmark only
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
[ -f .devkit/setup-kit.sh ] && source .devkit/setup-kit.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="${LIT_PREFIX_PATH:-}" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DLIT_CUDA=ON >"$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
grep -E "lit.cpp|LibTorch|CUDA kernels|GUI" "$OUT/configure.log"
start=$(date +%s)
cmake --build build-cuda >"$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
echo "build: $(( $(date +%s) - start )) s, warnings: $(grep -c 'warning:' "$OUT/build.log")"
# 8 tests at a time with 2 intra-op threads each: without the limit every test takes all 16 cores and the
# CPU-heavy VAE tiling tests crawl (412 s for one of them).
(cd build-cuda && OMP_NUM_THREADS=2 ctest --parallel 8 --timeout 600 --output-on-failure >"$OUT/ctest.log" 2>&1)
grep -E "tests passed|Total Test time" "$OUT/ctest.log"
grep -E "\(Failed\)|\(Timeout\)|Not Run" "$OUT/ctest.log" | head -20
build-cuda/kernels/bench/lit_bench_kernels | tee "$OUT/bench_kernels.txt"
[ "${1:-}" = quick ] && exit 0
lit=build-cuda/tools/lit
for m in DiT-XL/2 LiT-XL/2; do
  timeout 150 $lit bench generate --preset $m --batch-size 32 --steps 20 --device cuda --dtype fp32 --dtype bf16 \
    --repeats 3 2>&1 | tee -a "$OUT/bench_generate.txt"
done
for b in 32 64; do
  timeout 120 $lit distill --teacher-preset DiT-XL/2 --student-preset LiT-XL/2 --synthetic-data --device cuda --bf16 \
    --batch-size $b --max-steps 25 --log-every 5 2>&1 | tail -3 | tee -a "$OUT/bench_distill.txt"
done
