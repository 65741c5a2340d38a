#!/usr/bin/env bash
# Build the precompiled gsplat wheel that the Space uses (wheels/), on a CUDA machine with
# Python 3.12, torch 2.11.0+cu130 and nvcc 13 (the H100 device machine matches):
#   bash tools/build_gsplat_wheel.sh gsplat-1.5.3.tar.gz OUT_DIR
# Kernels for Hopper (sm_90, benchmarks) and Blackwell (sm_120, ZeroGPU's RTX PRO 6000) plus
# PTX for newer GPUs. About 3 minutes with 16 cores. The sdist comes from PyPI:
#   BUILD_NO_CUDA=1 pip download --no-deps --no-binary :all: --no-build-isolation gsplat==1.5.3
set -euo pipefail
sdist=$1 out=$2
work=$(mktemp -d)
tar xzf "$sdist" -C "$work"
cd "$work"/gsplat-*
TORCH_CUDA_ARCH_LIST="9.0;12.0+PTX" MAX_JOBS=${MAX_JOBS:-16} \
  python3 -m pip wheel -q --no-deps --no-build-isolation . -w "$out"
ls -la "$out"
