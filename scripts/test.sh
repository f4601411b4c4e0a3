#!/usr/bin/env bash
# Run every test: installs what the tests need (Node packages, Mesa lavapipe for WebGPU, Chromium),
# builds, then runs the whole vitest suite once and prints its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
# lavapipe compiles each new WGSL pipeline on first dispatch; 128-bit vectors roughly halve that.
export LP_NATIVE_VECTOR_WIDTH=${LP_NATIVE_VECTOR_WIDTH:-128}
exec pnpm exec vitest run "$@"
