#!/usr/bin/env bash
# One device call that takes the measurements a GPU session needs, most important first; each part
# has its own time limit, so a call that is cut off still returns the parts before. Run on the GPU
# machine from the repository root, with the bench bundle built here first:
#   pnpm --filter @canopy/backend-cuda build:native && pnpm --filter @canopy/bench bundle -- --portable
# then the device tool's run with carry ["apps/bench/bundle"] and the command `bash scripts/h100.sh`.
# Writes under $OUT: h100.json/.html (every workload, CUDA and WebGPU, both planners, defaults: the
# README table), h100-hybrid-packed.json (H1/H2/S1 with the prefix planner's other hybridLayout,
# 'packed'), webgpu-unblocked.json (W1–W5 with the WebGPU menu before the register-blocked
# kernel, CANOPY_WEBGPU_BLOCKED=0), and a log per part.
set -u
OUT=${OUT:-/tmp/canopy-h100}
mkdir -p "$OUT"
B=apps/bench/bundle
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/nvidia-smi.txt" 2>&1
part() {
  local name=$1 secs=$2
  shift 2
  echo "== $name (limit ${secs} s)"
  timeout "$secs" bash "$B/run.sh" "$@" > "$OUT/$name.log" 2>&1
  echo "rc=$?"
  tail -n 4 "$OUT/$name.log"
}
part bench 330 --backend cuda,webgpu --workload all --planner both --json "$OUT/h100.json" --html "$OUT/h100.html"
part hybrid-packed 140 --backend cuda,webgpu --workload hybrid --planner prefix --hybrid-layout packed --json "$OUT/h100-hybrid-packed.json"
(export CANOPY_WEBGPU_BLOCKED=0; part webgpu-unblocked 110 --backend webgpu --workload W1,W2,W3,W4,W5 --planner both --json "$OUT/webgpu-unblocked.json")
