#!/usr/bin/env bash
# The README's second command: install the dependencies, build everything, run every test with ctest.
#   tools/test.sh            (build folder: build/)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLIT_TESTS=ON
cmake --build build --parallel "$(nproc)"
cd build && ctest --output-on-failure --parallel "$(nproc)" --timeout 1500
