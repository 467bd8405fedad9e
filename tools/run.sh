#!/usr/bin/env bash
# The README's first command: install the dependencies, build, and run the main job on the built-in default:
# a labelled grid of all ten classes from the built-in Fashion-MNIST LiT (model/builtin/lit-fmnist.safetensors),
# two images per class, on the CPU, written to out/fashion-grid.png (the single images go to out/first-run/).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --parallel "$(nproc)" --target lit
build/tools/lit --version
rm -rf out/first-run
build/tools/lit generate --all-classes -n 20 --sampler dpm++2m --steps 20 --cfg-scale 2 --seed 0 \
  -o out/first-run --grid out/fashion-grid.png --grid-columns 10 --grid-scale 3 --grid-labels
echo "wrote out/fashion-grid.png"
