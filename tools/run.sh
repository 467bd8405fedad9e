#!/usr/bin/env bash
# The README's first command: install the dependencies, build, and run the main job on the built-in default.
# Until the built-in Fashion-MNIST model exists, the "main job" is `lit --version` and an inspection of the
# checkpoint shipped with the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --parallel "$(nproc)" --target lit
build/tools/lit --version
build/tools/lit inspect tests/fixtures/dit/dit_tiny_fp16.safetensors
