#!/usr/bin/env bash
# Run the benchmark on the best backend available here (CUDA, then WebGPU, then the CPU
# reference), all canonical workloads, both planners; writes bench-report.json and .html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node apps/bench/dist/cli.js --backend auto --planner both --json bench-report.json --html bench-report.html "$@"
