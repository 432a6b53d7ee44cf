#!/bin/bash
# What the fat CUDA module costs: builds aha_cuda.node twice in scratch folders, for sm_90 alone (AHA_CUDA_ARCH=90,
# an H100-only build) and for every architecture (the default: sm_75 … sm_120 machine code, PTX for the newest),
# and prints each build's wall time, CPU time (user + system, all processes: what 2 idle cores need is about half of
# it), module size, and what the fat module holds per architecture (scripts/cuda-fatbin.ts). Needs nvcc; no GPU.
#   bash bench/fat-build.sh            (from the repository root; leaves nothing behind)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "nvcc not found: the CUDA module is not built here"; exit 1; }
tmp=$(mktemp -d /tmp/aha-fat-build.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
build() {  # $1 label, $2 AHA_CUDA_ARCH (empty: the default list)
  local out="$tmp/$1"
  if [ -n "$2" ]; then export AHA_CUDA_ARCH="$2"; else unset AHA_CUDA_ARCH; fi
  AHA_NO_CUDA_EMU=1 npx cmake-js configure --directory native --out "$out" >/dev/null
  # (the CPU addon first, untimed: only the CUDA module's compile is measured)
  cmake --build "$out" --target aha_cpu >/dev/null
  local t0=$(date +%s.%N)
  local times; times=$( { /usr/bin/time -f "%U %S" cmake --build "$out" --target aha_cuda >/dev/null; } 2>&1 | tail -1)
  local t1=$(date +%s.%N)
  local mod="$out/Release/aha_cuda.node"
  printf "%-10s wall %6.1f s, CPU %6.1f s, aha_cuda.node %6.1f MiB\n" "$1" "$(echo "$t1 - $t0" | bc)" "$(echo "$times" | awk '{print $1 + $2}')" \
    "$(echo "$(stat -c %s "$mod") / 1048576" | bc -l)"
  node --import tsx scripts/cuda-fatbin.ts "$mod"
}
echo "CUDA module builds on $(nproc) cores, $(nvcc --version | tail -1 2>/dev/null || /usr/local/cuda/bin/nvcc --version | tail -1)"
build sm_90 90
build fat ""
