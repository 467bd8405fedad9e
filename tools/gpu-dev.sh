#!/usr/bin/env bash
# Development loop on the GPU machine (see tools/gpu-check.sh for the full check): configure once, build the
# given targets (continuing past failures), print errors. Usage: tools/gpu-dev.sh target...
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
for kit in .devkit .devkit-slim; do [ -f $kit/setup-kit.sh ] && { source $kit/setup-kit.sh >/dev/null; break; }; done
[ -f build-cuda/build.ninja ] || cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="${LIT_PREFIX_PATH:-}" -DCMAKE_CUDA_ARCHITECTURES=90 -DLIT_CUDA=ON -DLIT_GUI=OFF \
  >"$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
start=$(date +%s)
ninja -C build-cuda -k 0 "$@" >"$OUT/build.log" 2>&1
rc=$?
echo "build ($*): rc $rc, $(( $(date +%s) - start )) s, warnings: $(grep -c 'warning:' "$OUT/build.log")"
grep -E "error|FAILED" -A3 "$OUT/build.log" | head -40
exit 0
