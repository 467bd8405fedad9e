#!/usr/bin/env bash
# Installs every Debian (bookworm) package lit.cpp needs, by name. Safe to run twice: apt-get skips
# what is already installed, and the package lists are refreshed only when they are missing or stale.
#   tools/install-deps.sh          build + test dependencies (CPU LibTorch, GUI, test tools)
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-format
  # LibTorch 1.13 (CPU). Without the pthread OpenBLAS its matrix products fall back to the reference
  # BLAS and run about 30 times slower.
  libtorch-dev libopenblas0-pthread
  # Gloo's headers: LibTorch's ProcessGroupGloo (data-parallel training on CPUs) includes them
  libgloo-dev
  # file formats, images, CLI, logging
  zlib1g-dev libzip-dev libpng-dev libstb-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libeigen3-dev
  # T5's tokenizer (spiece.model) for the text encoder
  libsentencepiece-dev sentencepiece
  # GUI: Dear ImGui (static library with the GLFW + OpenGL 3 backends), GLFW, OpenGL
  libimgui-dev libglfw3-dev libgl-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev xvfb xauth xdotool x11-apps imagemagick
  # the built-in model's real data set (IDX files under /usr/share/datasets/fashion-mnist)
  dataset-fashion-mnist
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  $sudo apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
