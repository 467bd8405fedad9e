#!/usr/bin/env bash
# Build, test and benchmark lit.cpp on a CUDA machine (the project's lent GPU machine: run the kit preparation
# script (see README, "With CUDA") here first and carry .devkit). Logs and tables go to $OUT (default:
# gpu-out/). Stages, in this order, all by default; name some to run only those (a device call is limited to
# 10 minutes, so split them over calls: e.g. "build test", then "kernels forward", then "generate distill"):
#   build     configure (once) and build everything, or only $TARGETS (e.g. TARGETS="lit lit_tests_kernels"
#             for a development loop; the build goes on past failures and prints the errors)
#   test      every test, 8 at a time (the CUDA tests run here; the CPU tests too)
#   kernels   kernel benchmarks: modulate, linear attention (versions, kernel by kernel, training, memory)
#   forward   backbone forward per image, DiT-XL/2 and LiT-XL/2 (its attention fused, then composed) at
#             256/512/1024 px, and the PyTorch eager baseline of the same architectures (tools/bench_eager.py)
#   generate  images/s end to end (sampling + SD-VAE decode, random weights): 250 DDPM steps at 256 px and 20
#             DPM-Solver++ steps at 1024 px with guidance, eager and with --cuda-graphs
#   distill   distillation training throughput, LiT-XL/2 <- DiT-XL/2
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
for kit in .devkit .devkit-slim; do [ -f $kit/setup-kit.sh ] && { source $kit/setup-kit.sh >/dev/null; break; }; done
stages=${*:-build test kernels forward generate distill}
has() { [[ " $stages " == *" $1 "* ]]; }
lit=build-cuda/tools/lit

if has build; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
  [ -f build-cuda/build.ninja ] || cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="${LIT_PREFIX_PATH:-}" -DCMAKE_CUDA_ARCHITECTURES=90 -DLIT_CUDA=ON >"$OUT/configure.log" 2>&1 ||
    { tail -30 "$OUT/configure.log"; exit 1; }
  grep -E "lit.cpp|LibTorch|CUDA kernels|GUI" "$OUT/configure.log"
  start=$(date +%s)
  # shellcheck disable=SC2086 # TARGETS is a list of target names
  ninja -C build-cuda -k 0 ${TARGETS:-} >"$OUT/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$OUT/build.log" | head -40; exit 1; }
  echo "build: $(($(date +%s) - start)) s, warnings: $(grep -c 'warning:' "$OUT/build.log")"
fi

if has test; then
  # 8 tests at a time with 2 intra-op threads each: without the limit every test takes all 16 cores and the
  # CPU-heavy VAE tiling tests crawl (412 s for one of them).
  (cd build-cuda && OMP_NUM_THREADS=2 ctest --parallel 8 --timeout 600 --output-on-failure >"$OUT/ctest.log" 2>&1)
  grep -E "tests passed|Total Test time" "$OUT/ctest.log"
  grep -E "\(Failed\)|\(Timeout\)|Not Run" "$OUT/ctest.log" | head -20
  # The measured errors the CUDA tests print (README, "The CUDA fast path").
  (cd build-cuda && tests/lit_tests_kernels --gtest_filter='*LinearAttention*:*Adaln*' &&
    tests/lit_tests_model --gtest_filter='*HalfPrecision*:*CudaGraph*' &&
    tests/lit_tests_cli --gtest_filter='BuiltinModel.Cuda*') 2>&1 |
    grep -E "rel error|fused|cpu fp32|tanh form|FAILED" >"$OUT/cuda_errors.txt"
  tail -12 "$OUT/cuda_errors.txt"
fi

if has kernels; then
  build-cuda/kernels/bench/lit_bench_kernels | tee "$OUT/bench_kernels.txt"
  build-cuda/kernels/bench/lit_bench_linear_attention 4 20 | tee "$OUT/bench_linear_attention.txt"
fi

if has forward; then
  timeout 240 $lit bench forward --preset DiT-XL/2 --preset LiT-XL/2 --dtype bf16 --attention auto --attention composed \
    2>&1 | tee "$OUT/bench_forward.txt"
  timeout 240 $lit bench forward --preset DiT-XL/2 --preset LiT-XL/2 --dtype bf16 --cuda-graphs 2>&1 |
    tee -a "$OUT/bench_forward.txt"
  timeout 400 python3 tools/bench_eager.py --compile 2>&1 | tee "$OUT/bench_eager.txt"
fi

if has generate; then
  for m in DiT-XL/2 LiT-XL/2; do
    for graphs in "" --cuda-graphs; do
      timeout 200 $lit bench generate --preset $m --image-size 256 --batch-size 32 --sampler ddpm --steps 250 \
        --device cuda --dtype bf16 --repeats 1 --decode $graphs 2>&1 | tee -a "$OUT/bench_generate.txt"
    done
    timeout 200 $lit bench generate --preset $m --image-size 1024 --batch-size 4 --sampler dpm++2m --steps 20 \
      --device cuda --dtype bf16 --repeats 3 --decode --cuda-graphs 2>&1 | tee -a "$OUT/bench_generate.txt"
  done
fi

if has distill; then
  for b in 32 64; do
    timeout 120 $lit distill --teacher-preset DiT-XL/2 --student-preset LiT-XL/2 --synthetic-data --device cuda --bf16 \
      --batch-size $b --max-steps 25 --log-every 5 2>&1 | tail -3 | tee -a "$OUT/bench_distill.txt"
  done
fi
