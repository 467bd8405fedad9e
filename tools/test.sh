#!/usr/bin/env bash
# The README's second command: install the dependencies, build everything, run every test with ctest; then
# the file readers (the code that parses untrusted checkpoints, .npz and safetensors files) once more under
# AddressSanitizer + UBSan.
#   tools/test.sh            (build folders: build/ and build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLIT_TESTS=ON
cmake --build build --parallel "$(nproc)"
(cd build && ctest --output-on-failure --parallel "$(nproc)" --timeout 1500)

# Sanitizer pass: only lit_tests_weights (about 5 minutes to build on 2 cores, 1 minute to run). LibTorch
# itself is not instrumented and needs no ASAN_OPTIONS; UBSan only prints by default, so make it fatal.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIT_ASAN=ON -DLIT_GUI=OFF -DLIT_BENCH=OFF
cmake --build build-asan --parallel "$(nproc)" --target lit_tests_weights
(cd build-asan && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest -L weights --output-on-failure --parallel "$(nproc)" --timeout 1500)
