#!/usr/bin/env node
// Summarises the output of a CANOPY_TRACE=1 addon build (native/common.cuh): the driver's
// `--mode profile --profile-runs N` prints one "CTRACE kind smid startNs endNs item kvHead
// rowBlock rg [tA tB]" line per work unit (tA, tB: the end of its prologue and of its main loop). Runs are told apart by gaps of more than 200 µs between CTAs
// and named, in order, by the driver's "profile W… prefix …" lines. Per run: the span from the
// first CTA's start to the last CTA's end, per (kernel kind, rg) the units, their mean time and
// when the first started and the last ended, the share of SM time that held at least one CTA,
// and a timeline of the CTAs resident per kind in 16 time slices.
//   node trace-summary.mjs trace.txt [--last-of N]   (N runs per profile entry: print only the last)
import { readFileSync } from 'node:fs';

const KIND = { 0: 'tile', 1: 'tile16s', 2: 'persist', 3: 'tile16t', 5: 'pipe128', 6: 'merge' };
const file = process.argv[2];
const lastOfIdx = process.argv.indexOf('--last-of');
const lastOf = lastOfIdx > 0 ? Number(process.argv[lastOfIdx + 1]) : 1;
const units = [];
const names = [];
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const m = /^CTRACE (\d+) (\d+) (\d+) (\d+) (-?\d+) (-?\d+) (-?\d+) (-?\d+)(?: (\d+) (\d+))?/.exec(line);
  if (m) {
    const [kind, sm, t0, t1, item, head, rb, rg, tA, tB] = m.slice(1).map((x, i) => (i === 2 || i === 3 || i >= 8 ? BigInt(x ?? 0) : Number(x)));
    units.push({ kind, sm, t0, t1, item, head, rb, rg, tA, tB });
    continue;
  }
  const p = /^profile (\S+) (\S+) (\S+): ([\d.]+) µs/.exec(line);
  if (p) names.push(`${p[1]} ${p[2]} ${p[3]} (event ${p[4]} µs)`);
}
units.sort((a, b) => (a.t0 < b.t0 ? -1 : a.t0 > b.t0 ? 1 : 0));
const runs = [];
let cur = [];
let lastEnd = 0n;
for (const u of units) {
  if (cur.length && u.t0 - lastEnd > 200_000n) {
    runs.push(cur);
    cur = [];
  }
  cur.push(u);
  if (u.t1 > lastEnd) lastEnd = u.t1;
}
if (cur.length) runs.push(cur);
console.log(`${units.length} traced units in ${runs.length} runs; ${names.length} profile lines`);
// Group label of a unit: its kernel kind, and its tile (rg) except for merge CTAs.
const groupOf = (u) => `${KIND[u.kind] ?? u.kind}${u.kind === 6 ? '' : ` rg${u.rg}`}`;
runs.forEach((run, ri) => {
  if (lastOf > 1 && ri % lastOf !== lastOf - 1) return;
  const t0 = run.reduce((a, u) => (u.t0 < a ? u.t0 : a), run[0].t0);
  const t1 = run.reduce((a, u) => (u.t1 > a ? u.t1 : a), run[0].t1);
  const us = (t) => Number(t - t0) / 1000;
  const span = us(t1);
  console.log(`\n== run ${ri + 1}: ${names[ri] ?? '?'} — traced span ${span.toFixed(1)} µs, ${run.length} units`);
  const groups = new Map();
  for (const u of run) {
    const k = groupOf(u);
    const g = groups.get(k) ?? { units: [], sum: 0, first: Infinity, last: 0, sms: new Set(), marked: 0, pro: 0, loop: 0, epi: 0 };
    if (u.tA > 0n && u.tB > 0n) {
      g.marked++;
      g.pro += Number(u.tA - u.t0) / 1000;
      g.loop += Number(u.tB - u.tA) / 1000;
      g.epi += Number(u.t1 - u.tB) / 1000;
    }
    g.units.push(u);
    g.sum += us(u.t1) - us(u.t0);
    g.first = Math.min(g.first, us(u.t0));
    g.last = Math.max(g.last, us(u.t1));
    g.sms.add(u.sm);
    groups.set(k, g);
  }
  for (const [k, g] of groups)
    console.log(`  ${k.padEnd(14)} units ${String(g.units.length).padStart(5)}  mean ${(g.sum / g.units.length).toFixed(2).padStart(7)} µs  first start ${g.first.toFixed(1).padStart(6)}  last end ${g.last.toFixed(1).padStart(6)}  SMs ${g.sms.size}` +
      (g.marked ? `  [prologue ${(g.pro / g.marked).toFixed(2)} | loop ${(g.loop / g.marked).toFixed(2)} | epilogue ${(g.epi / g.marked).toFixed(2)} µs]` : ''));
  // SM time with at least one resident CTA (union of intervals per SM).
  const perSm = new Map();
  for (const u of run) (perSm.get(u.sm) ?? perSm.set(u.sm, []).get(u.sm)).push([us(u.t0), us(u.t1)]);
  let busy = 0;
  for (const iv of perSm.values()) {
    iv.sort((a, b) => a[0] - b[0]);
    let [s, e] = iv[0];
    for (const [a, b] of iv.slice(1)) {
      if (a > e) {
        busy += e - s;
        [s, e] = [a, b];
      } else e = Math.max(e, b);
    }
    busy += e - s;
  }
  console.log(`  SMs seen ${perSm.size}; SM-time with a CTA resident: ${((100 * busy) / (132 * span)).toFixed(1)}% of 132 × span`);
  const slices = 16;
  console.log(`  timeline (mean resident CTAs per slice of ${(span / slices).toFixed(1)} µs): ${[...groups.keys()].join(' | ')}`);
  for (let s = 0; s < slices; s++) {
    const a = (span * s) / slices;
    const b = (span * (s + 1)) / slices;
    const row = [...groups.values()].map((g) => {
      let t = 0;
      for (const u of g.units) t += Math.max(0, Math.min(b, us(u.t1)) - Math.max(a, us(u.t0)));
      return (t / (b - a)).toFixed(0).padStart(5);
    });
    console.log(`   ${a.toFixed(1).padStart(7)} µs ${row.join(' ')}`);
  }
});
