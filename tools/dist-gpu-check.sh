#!/usr/bin/env bash
# Data-parallel lit on a CUDA machine: builds lit with NCCL, runs the Gloo tests (tests/dist), then measures
# `lit distill` images/s three ways on the same small config: the plain process, torchrun with one process
# (the NCCL code path at world size 1: process group, bucketed all-reduces, broadcast), and, when the
# machine has NPROC >= 2 GPUs, torchrun with NPROC processes (one per GPU). Results go to $OUT (default
# gpu-out/): dist_build.log, dist_tests.txt, dist_overhead.txt (the "done:" line of every run).
# On the lent GPU machine: prepare and carry the kit first (README, "With CUDA"), as for tools/gpu-check.sh.
#   OUT=$OUT tools/dist-gpu-check.sh            # single GPU: NCCL world size 1 vs plain
#   NPROC=2 OUT=$OUT tools/dist-gpu-check.sh    # on nvidia-h200-x2: also world size 2
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
for kit in .devkit .devkit-slim; do [ -f $kit/setup-kit.sh ] && { source $kit/setup-kit.sh >/dev/null; break; }; done
# NVLink multicast stays off (it can take the host's shared GPUs out of service): /work/.library/device/KINDS.md.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
NPROC=${NPROC:-1}
lit=build-cuda/tools/lit

[ -f build-cuda/build.ninja ] || cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="${LIT_PREFIX_PATH:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DLIT_CUDA=ON >"$OUT/dist_configure.log" 2>&1 ||
  { tail -30 "$OUT/dist_configure.log"; exit 1; }
cmake build-cuda 2>&1 | grep "data parallel" | tee "$OUT/dist_nccl.txt"  # which NCCL was found, if any
ninja -C build-cuda lit lit_tests_dist >"$OUT/dist_build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$OUT/dist_build.log" | head -40; exit 1; }

# The CPU tests of the data-parallel code (Gloo), when this LibTorch carries Gloo's headers.
(OMP_NUM_THREADS=2 timeout 300 build-cuda/tests/lit_tests_dist 2>&1 | tail -25) | tee "$OUT/dist_tests.txt"

# images/s: DiT-S/2 teacher -> LiT-S/2 student at 256 px (32x32 latents), bf16 autocast, global batch 64.
args="distill --teacher-preset DiT-S/2 --student-preset LiT-S/2 --synthetic-data --device cuda --bf16 \
  --batch-size 64 --max-steps 80 --log-every 40 --seed 1 --dist-timeout 120"
torchrun() { python3 -m torch.distributed.run --standalone --nproc-per-node "$1" --no-python $lit $args; }
: >"$OUT/dist_overhead.txt"
for rep in 1 2 3; do
  timeout 150 $lit $args 2>&1 | grep -E "^done|error" | sed "s/^/plain       /" | tee -a "$OUT/dist_overhead.txt"
  timeout 150 torchrun 1 2>&1 | grep -E "^done|ranks|error" | sed "s/^/nccl ws=1   /" | tee -a "$OUT/dist_overhead.txt"
  if [ "$NPROC" -ge 2 ]; then
    timeout 150 torchrun "$NPROC" 2>&1 | grep -E "^done|ranks|error" | sed "s/^/nccl ws=$NPROC   /" |
      tee -a "$OUT/dist_overhead.txt"
  fi
done
