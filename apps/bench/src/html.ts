/**
 * `--html FILE`: one self-contained page (inline CSS, inline SVG, no scripts, no CDN). Charts are
 * Vega-Lite specs compiled and rendered to SVG headlessly in Node (`View.toSVG()`).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { BenchRecord, BenchRun } from './records.js';
import { fmtBytes, fmtFlops, groupKey, HYBRID_HEADER, hybridCells, plural } from './report-text.js';
import { fmtTflops, fmtUs } from './run.js';
import { describeScale } from './tree.js';
import { SUMMARY_HEADER, summaryCells, summaryRows } from './summary.js';
import { crossoverSentence } from './sweep.js';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const COLORS = { perRequest: '#9aa5b1', prefix: '#2f7d4f' };

export async function specToSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** Pick µs, ms or s so axis labels stay short. */
function timeUnit(maxUs: number): { div: number; label: string } {
  if (maxUs >= 2e6) return { div: 1e6, label: 's' };
  if (maxUs >= 2e3) return { div: 1e3, label: 'ms' };
  return { div: 1, label: 'µs' };
}

/** Bars of median time per backend · planner, p10–p90 whiskers, and each backend's floor. */
function workloadChart(recs: BenchRecord[]): TopLevelSpec | null {
  const timed = recs.filter((r) => r.timeUs);
  if (timed.length === 0) return null;
  const u = timeUnit(Math.max(...timed.map((r) => r.timeUs!.p90)));
  const rows = timed.map((r) => ({
    run: `${r.backend} · ${r.planner}`,
    planner: r.planner,
    median: r.timeUs!.median / u.div,
    p10: r.timeUs!.p10 / u.div,
    p90: r.timeUs!.p90 / u.div,
    floor: r.floor.floorUs === null ? null : r.floor.floorUs / u.div,
  }));
  const y = { field: 'run', type: 'nominal' as const, title: null, sort: null };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width: 560,
    height: { step: 26 },
    data: { values: rows },
    layer: [
      {
        mark: { type: 'bar', cornerRadiusEnd: 2 },
        encoding: {
          y,
          x: { field: 'median', type: 'quantitative', title: `time per decode step (${u.label}; median, whiskers p10–p90, red tick: floor)` },
          color: { field: 'planner', type: 'nominal', scale: { domain: Object.keys(COLORS), range: Object.values(COLORS) }, legend: { orient: 'bottom', title: null, labelLimit: 400 } },
        },
      },
      { mark: { type: 'rule', color: '#333' }, encoding: { y, x: { field: 'p10', type: 'quantitative' }, x2: { field: 'p90' } } },
      {
        transform: [{ filter: 'datum.floor != null' }],
        mark: { type: 'tick', color: '#c0392b', thickness: 2, size: 22 },
        encoding: { y, x: { field: 'floor', type: 'quantitative' } },
      },
      {
        mark: { type: 'text', align: 'left', dx: 4, dy: -7, fontSize: 10 },
        encoding: { y, x: { field: 'median', type: 'quantitative' }, text: { field: 'median', type: 'quantitative', format: '.3~r' } },
      },
    ],
  } as TopLevelSpec;
}

/** Speedup of prefix over perRequest per workload and backend. */
function speedupChart(run: BenchRun): TopLevelSpec | null {
  const rows = run.records
    .filter((r) => r.planner === 'prefix' && r.speedupVsPerRequest !== null && !r.sweep)
    .map((r) => ({ workload: r.workload, backend: r.scaled ? `${r.backend} (scaled down)` : r.backend, speedup: r.speedupVsPerRequest }));
  if (rows.length === 0) return null;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width: { step: 56 },
    height: 220,
    data: { values: rows },
    layer: [
      {
        mark: 'bar',
        encoding: {
          x: { field: 'workload', type: 'nominal', title: null, sort: null, axis: { labelAngle: 0 } },
          xOffset: { field: 'backend' },
          y: { field: 'speedup', type: 'quantitative', title: 'prefix speedup over perRequest (×)' },
          color: { field: 'backend', type: 'nominal', legend: { orient: 'bottom', title: null, labelLimit: 400 } },
        },
      },
      { mark: { type: 'rule', color: '#c0392b', strokeDash: [4, 3] }, encoding: { y: { datum: 1 } } },
    ],
  } as TopLevelSpec;
}

/** Sweep: median time against the swept value, one line per backend · planner, floor dashed. */
function sweepChart(run: BenchRun): TopLevelSpec | null {
  if (!run.sweep) return null;
  const timed = run.records.filter((r) => r.sweep && r.timeUs);
  if (timed.length === 0) return null;
  const u = timeUnit(Math.max(...timed.map((r) => r.timeUs!.median)));
  const rows = timed.map((r) => ({ value: r.sweep!.value, run: `${r.backend} · ${r.planner}`, median: r.timeUs!.median / u.div, backend: r.backend }));
  const floors = [
    ...new Map(
      run.records.filter((r) => r.sweep && r.floor.floorUs !== null).map((r) => [`${r.backend}|${r.sweep!.value}`, { value: r.sweep!.value, run: `${r.backend} · floor`, median: r.floor.floorUs! / u.div }]),
    ).values(),
  ];
  const xScale = run.sweep.values.every((v) => v > 0) ? { type: 'log' as const, base: 2 } : { type: 'symlog' as const };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width: 560,
    height: 280,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'value', type: 'quantitative', title: run.sweep.dim, scale: xScale },
          y: { field: 'median', type: 'quantitative', title: `time per decode step (${u.label}, median; dashed: floor)`, scale: { type: 'log' } },
          color: { field: 'run', type: 'nominal', legend: { orient: 'bottom', title: null, labelLimit: 400 } },
        },
      },
      {
        data: { values: floors },
        mark: { type: 'line', strokeDash: [4, 3], color: '#c0392b' },
        encoding: { x: { field: 'value', type: 'quantitative', scale: xScale }, y: { field: 'median', type: 'quantitative' }, detail: { field: 'run' } },
      },
    ],
  } as TopLevelSpec;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d232a;max-width:1100px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 4px;border-bottom:1px solid #e3e7eb;padding-bottom:4px}
.meta{color:#5b6672;font-size:13px}table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{padding:3px 9px;text-align:right;border-bottom:1px solid #eef1f4}th{background:#f6f8fa;font-weight:600}
td.l,th.l{text-align:left}.bad{color:#c0392b;font-weight:600}.good{color:#2f7d4f;font-weight:600}
.note{color:#5b6672;font-size:12px}svg{max-width:100%;height:auto}figure{margin:8px 0}
`;

function recordTable(recs: BenchRecord[]): string {
  const head = ['backend', 'planner', 'median', 'p10', 'p90', 'GB/s', '% floor', 'vs perRequest', 'KV read / unique', 'work items', 'rel. error'];
  const rows = recs.map((r) => {
    const t = r.timeUs;
    const sp = r.speedupVsPerRequest;
    return `<tr><td class="l">${esc(r.backend)}</td><td class="l">${esc(r.planner)}</td>${
      t ? `<td>${fmtUs(t.median)}</td><td>${fmtUs(t.p10)}</td><td>${fmtUs(t.p90)}</td>` : `<td class="bad" colspan="3">${esc(r.failure ?? 'no time')}</td>`
    }<td>${r.bandwidthGBs === null ? '–' : r.bandwidthGBs.toFixed(r.bandwidthGBs < 10 ? 2 : 0)}</td><td>${r.pctOfFloor === null ? '–' : `${r.pctOfFloor.toFixed(1)}%`}</td><td class="${
      sp !== null && sp >= 1.05 ? 'good' : ''
    }">${sp === null ? '–' : `${sp.toFixed(2)}×`}</td><td>${(r.planKvBytes / r.uniqueKvBytes).toFixed(2)}× (${fmtBytes(r.planKvBytes)})</td><td>${r.workItems}</td><td class="${r.verification.passed ? '' : 'bad'}">${
      r.verification.passed ? r.verification.maxRelError.toExponential(1) : 'FAIL'
    }</td></tr>`;
  });
  return `<table><tr>${head.map((h, i) => `<th class="${i < 2 ? 'l' : ''}">${h}</th>`).join('')}</tr>${rows.join('')}</table>`;
}

export async function renderHtml(run: BenchRun): Promise<string> {
  const parts: string[] = [];
  const devices = [...new Set(run.records.map((r) => r.device))];
  parts.push(`<h1>canopy-bench report</h1>`);
  parts.push(
    `<div class="meta">${esc(run.createdAt)} · commit <code>${esc(run.commit.slice(0, 12))}</code> · ${esc(devices.join('; '))} · Node ${esc(run.host.node)} on ${esc(
      `${run.host.cpuModel} (${run.host.cpus} CPUs)`,
    )}<br><code>canopy-bench ${esc(run.command.join(' '))}</code></div>`,
  );
  // Backends and their ceilings
  parts.push('<h2>Backends</h2><table><tr><th class="l">backend</th><th class="l">status</th><th class="l">device</th><th>read GB/s</th><th>peak</th><th class="l">ceilings from</th></tr>');
  for (const b of run.backends) {
    parts.push(
      `<tr><td class="l">${esc(b.name)}</td><td class="l">${b.used ? 'used' : `skipped: ${esc(b.reason)}`}</td><td class="l">${esc(b.device ?? '')}</td><td>${
        b.probe?.readBandwidthGBs ? b.probe.readBandwidthGBs.toFixed(b.probe.readBandwidthGBs >= 100 ? 0 : 2) : '–'
      }</td><td>${b.probe?.peakTflops ? `${fmtTflops(b.probe.peakTflops)} ${esc(b.probe.peakUnits ?? '')}` : '–'}</td><td class="l">${esc(b.probe?.source ?? '')}</td></tr>`,
    );
  }
  parts.push('</table>');
  const sweep = sweepChart(run);
  if (sweep && run.sweep) {
    parts.push(`<h2>Sweep over ${esc(run.sweep.dim)}</h2>`);
    for (const c of run.sweep.crossovers) parts.push(`<p><b>${esc(c.backend)}</b>: ${esc(crossoverSentence(run.sweep.dim, c))}</p>`);
    parts.push(`<figure>${await specToSvg(sweep)}</figure>`);
  }
  const sp = speedupChart(run);
  if (sp && !run.sweep) {
    parts.push('<h2>What prefix-aware planning buys</h2>');
    const rows = summaryRows(run).map(summaryCells);
    parts.push(`<table><tr>${SUMMARY_HEADER.map((h, i) => `<th class="${i < 2 ? 'l' : ''}">${esc(h)}</th>`).join('')}</tr>${rows
      .map((r) => `<tr>${r.map((c, i) => `<td class="${i < 2 ? 'l' : ''}">${esc(c)}</td>`).join('')}</tr>`)
      .join('')}</table>`);
    parts.push(`<figure>${await specToSvg(sp)}</figure>`);
  }
  const groups = new Map<string, BenchRecord[]>();
  for (const r of run.records) {
    const k = groupKey(r);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  for (const recs of groups.values()) {
    const r0 = recs[0];
    const title = r0.sweep ? `${r0.sweep.dim} = ${r0.sweep.value}` : `${r0.workload} — ${r0.workloadName}`;
    parts.push(`<h2>${esc(title)}</h2>`);
    parts.push(
      `<div class="meta">${r0.requests} requests · unique KV ${r0.uniqueKvTokens.toLocaleString('en-US')} tokens (${fmtBytes(r0.uniqueKvBytes)}) · without sharing ${fmtBytes(
        r0.kvBytesNoSharing,
      )} · ${fmtFlops(r0.attentionFlops)} · ${r0.config.numQoHeads}/${r0.config.numKvHeads}/${r0.config.headDim} ${r0.config.kvDtype}, page ${r0.config.pageSize} · ${esc(describeScale(r0.scale))}</div>`,
    );
    const floors = [...new Map(recs.map((r) => [r.backend, r.floor])).entries()]
      .filter(([, f]) => f.floorUs !== null)
      .map(([b, f]) => `${esc(b)}: ${fmtUs(f.floorUs!)} (${f.bound}-bound${f.bytesUs !== null ? `; bytes ${fmtUs(f.bytesUs)}` : ''}${f.flopsUs !== null ? `; FLOPs ${fmtUs(f.flopsUs)}` : ''})`);
    if (floors.length) parts.push(`<div class="note">floor ${floors.join(' · ')}</div>`);
    parts.push(recordTable(recs));
    const hy = recs.filter((r) => r.hybrid);
    if (hy.length > 0) {
      const h0 = hy[0].hybrid!;
      parts.push(
        `<div class="note">Prefill + decode: <b>fused</b> is the one plan of the whole batch (above); <b>back to back</b> and <b>two streams</b> plan the prefill requests (${plural(h0.prefillRequests, 'request')}, ${h0.prefillQueries} queries) and the decode requests (${plural(h0.decodeRequests, 'request')}) separately with the same planner and time both plans as one step (timeGroup, serial / concurrent). Their outputs are checked against the reference too.</div>`,
      );
      parts.push(
        `<table><tr>${HYBRID_HEADER.map((h, i) => `<th class="${i < 2 ? 'l' : ''}">${esc(h)}</th>`).join('')}</tr>${hy
          .map((r) => {
            const cells = hybridCells(r);
            const wrong = r.hybrid!.verification?.passed === false;
            return `<tr>${cells.map((c, i) => `<td class="${i < 2 ? 'l' : ''}${(i === 5 || i === 6) && parseFloat(c) >= 1.05 ? ' good' : ''}${i === 8 && wrong ? ' bad' : ''}">${esc(c)}</td>`).join('')}</tr>${
              r.hybrid!.note ? `<tr><td class="l note" colspan="${HYBRID_HEADER.length}">${esc(r.hybrid!.note)}</td></tr>` : ''
            }`;
          })
          .join('')}</table>`,
      );
    }
    if (!r0.sweep) {
      const chart = workloadChart(recs);
      if (chart) parts.push(`<figure>${await specToSvg(chart)}</figure>`);
    }
  }
  parts.push('<h2>Notes</h2><ul class="note">');
  for (const n of run.notes) parts.push(`<li>${esc(n)}</li>`);
  parts.push(
    '<li>GB/s: unique KV bytes / median time. Floor: max(unique KV bytes / read bandwidth, attention FLOPs / arithmetic peak), both measured once per run by the backend’s probes. KV read / unique: bytes the plan’s work items read over the bytes a perfect plan reads once.</li></ul>',
  );
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>canopy-bench report</title><style>${CSS}</style></head><body>\n${parts.join(
    '\n',
  )}\n</body></html>\n`;
}
