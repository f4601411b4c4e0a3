#!/usr/bin/env bash
# Runs on the device machine from the repo root (through .device/remote.sh): the full driver
# (conformance suite for both launch strategies + W1–W5 timings), then compute-sanitizer memcheck
# and racecheck over the conformance suite's small cases. Everything lands in $OUT.
set -o pipefail
D=.device/cuda
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv > "$OUT/nvidia-smi.txt" 2>&1
# SASS check: the wgmma variants must contain HGMMA instructions.
CUOBJ=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
echo "HGMMA instructions in the addon: $("$CUOBJ" -sass $D/canopy_cuda.node 2>/dev/null | grep -c HGMMA)" | tee "$OUT/sass.txt"
mode=${1:-all}
if [ "$mode" = hybrid ]; then
  # Issue 7 in one call: conformance of every strategy (fused first: it is the new kernel; a
  # failure or hang shows here within the timeout), then W1–W5 and the hybrid batches H1/H2/S1
  # with all three strategies, then compute-sanitizer memcheck + racecheck on the fused kernel.
  timeout 150 node $D/driver.mjs --mode small --strategies fused,persistent,streams --out "$OUT/conformance.json" > "$OUT/conformance.log" 2>&1
  echo "conformance rc=$?"; grep -E "^(FAIL|fail)|✗|not ok" "$OUT/conformance.log" | head -20
  node -e 'const r=require(process.argv[1]).conformance||{};for(const[k,v]of Object.entries(r))console.log(k,"pass",v.pass,"fail",v.fail,"skip",v.skip)' "$OUT/conformance.json"
  timeout ${FULL_TIMEOUT:-300} node $D/driver.mjs --out "$OUT/cuda-hybrid.json" --no-conformance --strategies persistent,fused,streams --balance 0 --hybrid H1,H2,S1 --hybrid-variants ${VARIANTS:-fused:f1,fused:f0.5,fused:bal,persistent:bal,streams:bal} "${@:2}" 2>&1 | tee "$OUT/full.log" | grep -vE "^  W[1-5] " | tail -80
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  # Sanitizers on the fused kernel over the small conformance cases; the racecheck/synccheck runs
  # use a -lineinfo build (.device/cuda-li, when carried) so hazards name source lines.
  LI=$D/canopy_cuda.node; [ -f .device/cuda-li/canopy_cuda.node ] && LI=$(pwd)/.device/cuda-li/canopy_cuda.node
  S="$OUT/sanitizer.txt"; : > "$S"
  timeout 100 "$SAN" --tool memcheck --error-exitcode 9 node $D/driver.mjs --mode small --strategies fused --out /tmp/memcheck.json > /tmp/memcheck.log 2>&1
  echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' /tmp/memcheck.log | tail -1)" | tee -a "$S"
  for tool in racecheck synccheck; do
    CANOPY_CUDA_ADDON=$LI timeout 120 "$SAN" --tool $tool --error-exitcode 9 node $D/driver.mjs --mode small --strategies fused --out /tmp/$tool.json > /tmp/$tool.log 2>&1
    echo "$tool rc=$? $(grep -E 'SUMMARY' /tmp/$tool.log | tail -1)" | tee -a "$S"
    grep -E "^========= +(Error|and|Warning|Barrier|Invalid|at )" /tmp/$tool.log | sed -E 's/\[[0-9]+ hazards?\]//' | sort | uniq -c | sort -rn | head -40 >> "$S"
  done
  CUOBJ=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
  echo "--- SASS of attnFusedKernel<64> (normal build), 0x800-0x9ff ---" >> "$S"
  "$CUOBJ" -sass $D/canopy_cuda.node 2>/dev/null | awk '/Function : .*attnFusedKernelILi64/{f=1} f&&/Function : /&&!/attnFusedKernelILi64/{f=0} f' | grep -E "/\*0[89][0-9a-f]{2}\*/" >> "$S"
  exit 0
fi
if [ "$mode" = all ] || [ "$mode" = full ]; then
  timeout 300 node $D/driver.mjs --out "$OUT/cuda-full.json" "${@:2}" 2>&1 | tee "$OUT/full.log"
fi
if [ "$mode" = profile ]; then
  NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  M=""
  for r in barrier long_scoreboard short_scoreboard mio_throttle math_pipe_throttle wait not_selected selected dispatch_stall lg_throttle tex_throttle membar branch_resolving no_instruction drain misc; do
    M="$M,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
  done
  # --no-conformance: otherwise the conformance cases' kernels come first and use up the launch count.
  timeout 400 "$NCU" --clock-control none -k regex:${NCU_KERNEL:-'attn|merge'} --launch-count ${NCU_COUNT:-40} \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats \
    --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --metrics "${M:1}" \
    node $D/driver.mjs --mode profile --no-conformance --out "$OUT/profile.json" "${@:2}" > "$OUT/ncu.txt" 2>&1
  echo "ncu rc=$?"; grep -E "attn|Duration|Warp Cycles|Issued Warp|Eligible Warps|issue_stalled" "$OUT/ncu.txt" | head -150
fi
if [ "$mode" = all ] || [ "$mode" = sanitize ]; then
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  echo "--- memcheck ---"
  timeout 200 "$SAN" --tool memcheck --error-exitcode 9 node $D/driver.mjs --mode small --strategies streams,persistent --out "$OUT/memcheck.json" > "$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$?"; tail -5 "$OUT/memcheck.log"
  echo "--- racecheck ---"
  timeout 200 "$SAN" --tool racecheck --error-exitcode 9 node $D/driver.mjs --mode small --strategies persistent --out "$OUT/racecheck.json" > "$OUT/racecheck.log" 2>&1
  echo "racecheck rc=$?"; tail -5 "$OUT/racecheck.log"
  # One JSON with both tools' summaries, the device and the date (the driver JSONs hold the tests).
  {
    printf '{"device": "%s", "date": "%s", "commit": "%s",\n' "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" "$(date -u +%FT%TZ)" "$(grep -o '"commit": *"[^"]*"' "$OUT/memcheck.json" | head -1 | sed 's/.*: *"//; s/"$//')"
    printf ' "memcheck": "%s",\n' "$(grep 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1)"
    printf ' "racecheck": "%s"}\n' "$(grep 'RACECHECK SUMMARY' "$OUT/racecheck.log" | tail -1)"
  } > "$OUT/sanitizer-summary.json"
  cat "$OUT/sanitizer-summary.json"
fi
