#!/usr/bin/env bash
# Run every test: installs what the tests need (Node packages, Mesa lavapipe for WebGPU, Chromium),
# builds, then runs the whole vitest suite once and prints its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
exec pnpm exec vitest run "$@"
