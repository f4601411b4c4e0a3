import './style.css';
import type { Plan } from '@canopy/core';
import { buildTokenTree, explainPlan } from '@canopy/planner';
import { barChart, type Bar } from './charts.js';
import { fmtErr, fmtFactor, fmtInt, fmtUs, h } from './dom.js';
import { PLANNER_NAMES, type PlannerName } from './planners.js';
import { getBackend, runWorkload, type BackendChoice, type BackendSession, type RunResult } from './runner.js';
import { parseTreeJson, scaleTree, treeToJson, type TreeSpec, type WorkloadScale } from './tree.js';
import { treeView } from './treeview.js';
import { WORKLOADS, autoScale, type ScaleLimits } from './workloads.js';

const PLANNER_COLORS: Record<PlannerName, string> = { perRequest: '#8c8c8c', prefix: '#2f7d4f' };
const SCALES = ['auto', '1', '1/2', '1/4', '1/8', '1/16', '1/32', '1/64'];

// ---- URL parameters ---------------------------------------------------------------------------
const params = new URLSearchParams(location.search);
function parseFactor(v: string | null, what: string): number | undefined {
  if (v === null || v === '' || v === 'auto') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(\d+(?:\.\d+)?))?\s*$/.exec(v);
  const f = m ? Number(m[1]) / (m[2] ? Number(m[2]) : 1) : NaN;
  if (!(f > 0 && f <= 1)) throw new Error(`URL parameter ${what}=${v}: expected a factor in (0, 1] like 1/8 or 0.25, or auto`);
  return f;
}
function intParam(name: string, def: number, min: number): number {
  const v = params.get(name);
  if (v === null) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`URL parameter ${name}=${v}: expected an integer ≥ ${min}`);
  return n;
}

// ---- page skeleton ----------------------------------------------------------------------------
const app = document.getElementById('app')!;
const deviceLine = h('p', { id: 'device', class: 'device' }, 'Looking for a WebGPU adapter…');
const workloadSel = h('select', { id: 'workload' });
for (const [id, spec] of WORKLOADS) workloadSel.append(h('option', { value: id }, `${id}: ${spec.name ?? ''}`));
workloadSel.append(h('option', { value: 'custom' }, 'custom (edited tree)'));
const tokensSel = h('select', { id: 'tokens-scale' }, ...SCALES.map((v) => h('option', { value: v }, v === 'auto' ? 'auto (fit adapter)' : `× ${v}`)));
const requestsSel = h('select', { id: 'requests-scale' }, ...SCALES.map((v) => h('option', { value: v }, v === 'auto' ? 'auto' : `× ${v}`)));
const backendSel = h(
  'select',
  { id: 'backend' },
  h('option', { value: 'auto' }, 'auto (WebGPU, else reference)'),
  h('option', { value: 'webgpu' }, 'WebGPU'),
  h('option', { value: 'reference' }, 'CPU reference (JavaScript)'),
);
const itersIn = h('input', { id: 'iters', type: 'number', min: 0, max: 1000, value: 5, size: 4 });
const plannerBoxes = PLANNER_NAMES.map((p) => h('input', { type: 'checkbox', value: p, checked: true, id: `planner-${p}` }));
const runBtn = h('button', { id: 'run', type: 'button', class: 'primary' }, 'Run');
const statusLine = h('p', { id: 'status', class: 'status' }, 'Idle.');
const verdict = h('section', { id: 'verdict', class: 'verdict', 'data-state': 'idle' }, 'Not run yet.');
const summary = h('div', { id: 'summary', class: 'summary' });
const results = h('div', { id: 'results' });
const charts = h('div', { id: 'charts', class: 'charts' });
const trees = h('div', { id: 'trees', class: 'trees' });
const editor = h('textarea', { id: 'tree-json', spellcheck: false, rows: 22, 'aria-label': 'token tree JSON' });
const editorMsg = h('p', { id: 'tree-error', class: 'editor-msg' });

const gen = {
  root: h('input', { type: 'number', min: 1, value: 4096, id: 'gen-root' }),
  groups: h('input', { type: 'number', min: 0, value: 0, id: 'gen-groups' }),
  groupTokens: h('input', { type: 'number', min: 1, value: 1024, id: 'gen-group-tokens' }),
  requests: h('input', { type: 'number', min: 1, value: 64, id: 'gen-requests' }),
  leaf: h('input', { type: 'number', min: 1, value: 512, id: 'gen-leaf' }),
};
const genBtn = h('button', { type: 'button', id: 'gen-write' }, 'Write tree');

const field = (label: string, el: HTMLElement): HTMLElement => h('label', { class: 'field' }, h('span', {}, label), el);

app.append(
  h(
    'header',
    {},
    h('h1', {}, 'Canopy ', h('span', { class: 'sub' }, 'prefix-aware attention, in your browser')),
    h(
      'p',
      { class: 'lede' },
      'One decode step of the benchmark workloads on this browser’s WebGPU adapter with both planners: ',
      h('b', {}, 'perRequest'),
      ' reads every request’s whole KV path; ',
      h('b', {}, 'prefix'),
      ' reads each shared node once and merges partial softmax states. Results are checked against a float64 reference before they are timed.',
    ),
    deviceLine,
  ),
  h(
    'main',
    {},
    h(
      'aside',
      { class: 'panel' },
      h('h2', {}, 'Workload'),
      field('tree', workloadSel),
      field('tokens', tokensSel),
      field('requests', requestsSel),
      field('backend', backendSel),
      field('timed iterations', itersIn),
      h('div', { class: 'field planners' }, h('span', {}, 'planners'), ...plannerBoxes.map((b) => h('label', {}, b, ` ${b.value}`))),
      runBtn,
      h('h2', {}, 'Edit the tree'),
      h('p', { class: 'hint' }, 'JSON as in the bench’s ', h('code', {}, '--tree'), ' files: nodes own KV tokens, each request decodes one token at its leaf. Sizes are before scaling.'),
      editor,
      editorMsg,
      h('details', {}, h('summary', {}, 'or generate one'), h('div', { class: 'gen' },
        field('shared root tokens', gen.root),
        field('document nodes under it (0: none)', gen.groups),
        field('tokens per document', gen.groupTokens),
        field('requests (spread over documents)', gen.requests),
        field('own leaf tokens per request', gen.leaf),
        genBtn,
      )),
    ),
    h('section', { class: 'out' }, statusLine, verdict, summary, results, charts, trees),
  ),
  h('footer', {}, 'Everything runs in this page: the workloads, planners, kernels and reference are bundled; nothing is fetched from the network.'),
);

// ---- state ------------------------------------------------------------------------------------
let editedSpec: TreeSpec | undefined;

function loadWorkload(id: string): void {
  const spec = WORKLOADS.get(id);
  if (!spec) return;
  editor.value = treeToJson(spec);
  editorMsg.textContent = '';
  editedSpec = undefined;
}

editor.addEventListener('input', () => {
  workloadSel.value = 'custom';
  try {
    editedSpec = parseTreeJson(editor.value);
    editorMsg.textContent = `✓ ${editedSpec.nodes.length} nodes, ${editedSpec.requests.length} requests`;
    editorMsg.className = 'editor-msg ok';
  } catch (e) {
    editedSpec = undefined;
    editorMsg.textContent = (e as Error).message;
    editorMsg.className = 'editor-msg bad';
  }
});
workloadSel.addEventListener('change', () => workloadSel.value !== 'custom' && loadWorkload(workloadSel.value));

genBtn.addEventListener('click', () => {
  const v = (el: HTMLInputElement, min: number) => Math.max(min, Math.floor(Number(el.value) || min));
  let config = WORKLOADS.values().next().value?.config ?? { numQoHeads: 32, numKvHeads: 8, headDim: 128, pageSize: 16, kvDtype: 'f16' as const };
  try {
    config = parseTreeJson(editor.value).config;
  } catch {
    /* keep the default shape */
  }
  const G = v(gen.groups, 0);
  const R = v(gen.requests, 1);
  const nodes: TreeSpec['nodes'] = [{ id: 0, parent: null, tokens: v(gen.root, 1) }];
  for (let g = 0; g < G; g++) nodes.push({ id: nodes.length, parent: 0, tokens: v(gen.groupTokens, 1) });
  const requests: TreeSpec['requests'] = [];
  for (let r = 0; r < R; r++) {
    const parent = G === 0 ? 0 : 1 + Math.floor((r * G) / R);
    const id = nodes.length;
    nodes.push({ id, parent, tokens: v(gen.leaf, 1) });
    requests.push({ leaf: id });
  }
  const spec: TreeSpec = { name: 'generated', config, nodes, requests };
  editor.value = treeToJson(spec);
  editor.dispatchEvent(new Event('input'));
});

function currentSpec(): TreeSpec {
  if (workloadSel.value === 'custom') {
    return parseTreeJson(editor.value);
  }
  return WORKLOADS.get(workloadSel.value) ?? parseTreeJson(editor.value);
}

function limitsFor(session: BackendSession): ScaleLimits {
  const maxPoolBytes = session.backend.capabilities.maxKvPoolBytes ?? 256 * 2 ** 20;
  if (session.kind === 'reference') {
    return { maxPoolBytes, maxPathTokens: 24_000, budgetReason: 'the CPU reference backend runs in JavaScript (a small version keeps it interactive)' };
  }
  if (session.adapter?.software) {
    return { maxPoolBytes, maxPathTokens: 12_000, budgetReason: `the WebGPU adapter is a CPU implementation (${session.adapter.architecture || session.adapter.vendor})` };
  }
  return { maxPoolBytes, maxPathTokens: Infinity, budgetReason: '' };
}

function describeSession(session: BackendSession): string {
  if (session.kind === 'webgpu') {
    const a = session.adapter;
    const name = a ? [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' / ') : session.backend.device;
    const notable = (a?.features ?? []).filter((f) => ['subgroups', 'shader-f16', 'timestamp-query'].includes(f));
    return `WebGPU adapter: ${name}${a?.software ? ' (software, on the CPU)' : ''} · ${notable.length ? notable.join(', ') : 'no subgroups, f16 or timestamps'} · backend ${session.backend.name}`;
  }
  return `CPU reference backend (JavaScript)${session.fallbackReason ? ` — no WebGPU: ${session.fallbackReason}` : ''}`;
}

// ---- running ----------------------------------------------------------------------------------
let running = false;

function setVerdict(state: string, text: string | Node, attrs: Record<string, string> = {}): void {
  for (const a of [...verdict.attributes]) if (a.name.startsWith('data-')) verdict.removeAttribute(a.name);
  verdict.setAttribute('data-state', state);
  for (const [k, v] of Object.entries(attrs)) verdict.setAttribute(`data-${k}`, v);
  verdict.replaceChildren(text);
}

async function run(): Promise<void> {
  if (running) return;
  running = true;
  runBtn.disabled = true;
  setVerdict('running', 'Running…');
  results.replaceChildren();
  charts.replaceChildren();
  trees.replaceChildren();
  summary.replaceChildren();
  const progress = (m: string) => {
    statusLine.textContent = m;
  };
  try {
    const spec = currentSpec();
    progress('starting the backend');
    const session = await getBackend(backendSel.value as BackendChoice);
    deviceLine.textContent = describeSession(session);
    deviceLine.className = `device ${session.kind}`;
    const fixed: Partial<WorkloadScale> = {};
    if (tokensSel.value !== 'auto') fixed.tokens = parseFactor(tokensSel.value, 'tokens');
    if (requestsSel.value !== 'auto') fixed.requests = parseFactor(requestsSel.value, 'requests');
    const choice = autoScale(spec, limitsFor(session), fixed);
    const scaled = scaleTree(spec, choice.scale);
    const planners = plannerBoxes.filter((b) => b.checked).map((b) => b.value as PlannerName);
    if (planners.length === 0) throw new Error('pick at least one planner');
    const iters = Math.max(0, Math.floor(Number(itersIn.value) || 0));
    // yield so the status paints before the work starts
    await new Promise((r) => setTimeout(r, 0));
    const result = await runWorkload(
      session,
      { spec: scaled, planners, seed: intParam('seed', 1, 0), warmup: intParam('warmup', Math.min(3, iters), 0), iters, sample: intParam('sample', 8, 1) },
      progress,
    );
    render(result, spec, choice.scale, choice.reasons);
    progress(`Done: ${result.results.length} planner${result.results.length === 1 ? '' : 's'} on ${result.backendKind}.`);
  } catch (e) {
    console.error(e);
    progress('Failed.');
    setVerdict('error', `Error: ${(e as Error).message}`, { verified: 'false', error: (e as Error).message });
  } finally {
    running = false;
    runBtn.disabled = false;
  }
}
runBtn.addEventListener('click', () => void run());

function render(r: RunResult, full: TreeSpec, scale: WorkloadScale, reasons: string[]): void {
  const scaledText =
    scale.tokens === 1 && scale.requests === 1
      ? 'full size'
      : `scaled: tokens × ${fmtFactor(scale.tokens)}, requests × ${fmtFactor(scale.requests)} of ${full.requests.length}`;
  const t = r.tolerance;
  const ok = r.verified;
  setVerdict(
    'done',
    h(
      'span',
      {},
      h('b', {}, ok ? '✔ Verified' : '✘ Not verified'),
      `: ${r.results.map((x) => x.planner).join(' and ')} on ${r.backendKind === 'webgpu' ? 'WebGPU' : 'the CPU reference backend'} vs float64 reference on ${r.sampleIds.length} sampled queries — max rel. error out ${fmtErr(r.maxOutErr)}, lse ${fmtErr(r.maxLseErr)} (tolerance ${fmtErr(t.out)} / ${fmtErr(t.lse)}).`,
    ),
    {
      verified: String(ok),
      backend: r.backendKind,
      adapter: r.adapter ? [r.adapter.vendor, r.adapter.architecture, r.adapter.device, r.adapter.description].filter(Boolean).join(' / ') : '',
      'max-out-error': String(r.maxOutErr),
      'max-lse-error': String(r.maxLseErr),
      tolerance: String(t.out),
      planners: r.results.map((x) => x.planner).join(','),
    },
  );
  verdict.classList.toggle('ok', ok);
  verdict.classList.toggle('bad', !ok);

  summary.replaceChildren(
    h(
      'p',
      {},
      h('b', {}, full.name ?? 'custom tree'),
      ` — ${scaledText}${reasons.length ? ` (${reasons.join('; ')})` : ''}. `,
      `${r.built.batch.tree!.parent.length} nodes, ${r.numQueries} requests, ${fmtInt(r.uniqueKvTokens)} unique KV tokens (${fmtInt(r.pathTokens)} without sharing), `,
      `${r.built.batch.config.numQoHeads}/${r.built.batch.config.numKvHeads} heads × ${r.built.batch.config.headDim}, ${r.built.batch.config.kvDtype} KV, page ${r.built.batch.pageSize}. `,
      r.probe?.readBandwidthGBs
        ? `Floor from the backend’s probe: read ${r.probe.readBandwidthGBs.toFixed(1)} GB/s${r.probe.peakTflops ? `, ${r.probe.peakTflops.toFixed(3)} TFLOP/s` : ''}.`
        : 'No bandwidth probe on this backend: no floor.',
    ),
  );

  const head = ['planner', 'work items', 'partials', 'KV tokens read', '÷ unique', 'plan time', 'step median', 'p10–p90', 'GB/s', '% of floor', 'vs per­Request', 'max err out', 'max err lse', 'ok'];
  const table = h('table', { id: 'results-table' }, h('thead', {}, h('tr', {}, ...head.map((x) => h('th', {}, x)))));
  const body = h('tbody');
  for (const x of r.results) {
    const tm = x.timing;
    body.append(
      h(
        'tr',
        { 'data-planner': x.planner, 'data-verified': String(x.verified) },
        h('td', {}, h('span', { class: 'swatch', style: `background:${PLANNER_COLORS[x.planner]}` }), x.planner),
        h('td', {}, fmtInt(x.workItems)),
        h('td', {}, fmtInt(x.partials)),
        h('td', {}, fmtInt(x.kvTokensRead)),
        h('td', {}, `${(x.kvTokensRead / r.uniqueKvTokens).toFixed(2)}×`),
        h('td', {}, fmtUs(x.planTimeMs * 1000)),
        h('td', { title: tm ? `${tm.iters} iterations, ${tm.clock} clock` : 'not timed' }, tm ? `${fmtUs(tm.medianUs)} ${tm.clock}` : '–'),
        h('td', {}, tm ? `${fmtUs(tm.p10Us)}–${fmtUs(tm.p90Us)}` : '–'),
        h('td', {}, x.gbPerS !== undefined ? (x.gbPerS >= 100 ? x.gbPerS.toFixed(0) : x.gbPerS.toPrecision(3)) : '–'),
        h('td', {}, x.pctOfFloor !== undefined ? `${x.pctOfFloor.toFixed(1)}%` : '–'),
        h('td', {}, x.speedupVsPerRequest !== undefined ? `${x.speedupVsPerRequest.toFixed(2)}×` : '–'),
        h('td', {}, fmtErr(x.maxOutErr)),
        h('td', {}, fmtErr(x.maxLseErr)),
        h('td', { class: x.verified ? 'ok' : 'bad' }, x.verified ? '✔' : '✘'),
      ),
    );
  }
  table.append(body);
  results.replaceChildren(h('h2', {}, 'Results'), table);

  const timed = r.results.filter((x) => x.timing);
  const floorUs = timed.find((x) => x.floorUs !== undefined)?.floorUs;
  const timeBars: Bar[] = timed.map((x) => ({
    label: x.planner,
    value: x.timing!.medianUs,
    lo: x.timing!.p10Us,
    hi: x.timing!.p90Us,
    color: PLANNER_COLORS[x.planner],
    text: fmtUs(x.timing!.medianUs),
    tooltip: `${x.planner}: median ${fmtUs(x.timing!.medianUs)}, p10 ${fmtUs(x.timing!.p10Us)}, p90 ${fmtUs(x.timing!.p90Us)} (${x.timing!.clock} clock)`,
  }));
  const chartEls: Element[] = [];
  if (timeBars.length) {
    chartEls.push(barChart({ title: 'Time per decode step (median, p10–p90)', bars: timeBars, ...(floorUs !== undefined ? { ref: { value: floorUs, label: `floor ${fmtUs(floorUs)}` } } : {}) }));
  }
  const pct = timed.filter((x) => x.pctOfFloor !== undefined);
  if (pct.length) {
    chartEls.push(
      barChart({
        title: '% of floor (floor ÷ time; 100% = as fast as the device allows)',
        bars: pct.map((x) => ({ label: x.planner, value: x.pctOfFloor!, color: PLANNER_COLORS[x.planner], text: `${x.pctOfFloor!.toFixed(1)}%` })),
        max: Math.max(100, ...pct.map((x) => x.pctOfFloor!)),
      }),
    );
  }
  chartEls.push(
    barChart({
      title: 'KV tokens read per step',
      bars: r.results.map((x) => ({ label: x.planner, value: x.kvTokensRead, color: PLANNER_COLORS[x.planner], text: fmtInt(x.kvTokensRead) })),
      ref: { value: r.uniqueKvTokens, label: `unique ${fmtInt(r.uniqueKvTokens)}` },
    }),
  );
  charts.replaceChildren(h('h2', {}, 'Charts'), h('div', { class: 'chart-row' }, ...chartEls));

  const width = Math.max(480, Math.min(1100, trees.clientWidth || 900));
  trees.replaceChildren(
    h('h2', {}, 'Token tree and work items'),
    h(
      'p',
      { class: 'hint' },
      'Columns: requests (depth-first). Grey boxes: tree nodes, height ∝ KV tokens (per depth level). Coloured boxes: work items — the token range of a node they read × the requests whose queries they serve. “read k×”: how many times the plan reads that node’s KV. Hover for details.',
    ),
    ...r.results.map((x) =>
      h(
        'figure',
        {},
        treeView(r.built, x.plan, x.pieces, { title: `${x.planner}: ${fmtInt(x.workItems)} work items · tiles (rows×KV block) ${tileCounts(x.plan)}`, width }),
        h('details', { class: 'explain' }, h('summary', {}, `${x.planner} plan, explained`), h('pre', {}, explain(x.plan, r))),
      ),
    ),
  );

  // For tests and the console: what was run and the sampled outputs, so a checker can recompute them.
  (window as unknown as { canopy: unknown }).canopy = {
    verified: r.verified,
    backend: r.backendKind,
    device: r.device,
    adapter: r.adapter,
    spec: scaleTree(full, scale),
    scale,
    seed: r.settings.seed,
    sampleIds: Array.from(r.sampleIds),
    tolerance: r.tolerance,
    results: r.results.map((x) => ({
      planner: x.planner,
      verified: x.verified,
      workItems: x.workItems,
      kvTokensRead: x.kvTokensRead,
      maxOutErr: x.maxOutErr,
      maxLseErr: x.maxLseErr,
      medianUs: x.timing?.medianUs ?? null,
      clock: x.timing?.clock ?? null,
      pctOfFloor: x.pctOfFloor ?? null,
      sampleOut: Array.from(x.sampleOut),
      sampleLse: Array.from(x.sampleLse),
    })),
  };
}

/** "16×64 ×12, 1×64 ×5": how many work items use each tile shape. */
function tileCounts(plan: Plan): string {
  const counts = new Map<number, number>();
  for (let i = 0; i < plan.numItems; i++) counts.set(plan.itemTile[i], (counts.get(plan.itemTile[i]) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${plan.tiles[k] ? `${plan.tiles[k].rows}×${plan.tiles[k].kvBlock}` : `#${k}`} ×${n}`)
    .join(', ');
}

function explain(plan: Plan, r: RunResult): string {
  try {
    return explainPlan(plan, buildTokenTree(r.built.batch));
  } catch (e) {
    return `explainPlan failed: ${(e as Error).message}`;
  }
}

// ---- start ------------------------------------------------------------------------------------
try {
  const w = params.get('workload');
  if (w && !WORKLOADS.has(w)) throw new Error(`URL parameter workload=${w}: known workloads are ${[...WORKLOADS.keys()].join(', ')}`);
  const first = w ?? (WORKLOADS.has('W1') ? 'W1' : WORKLOADS.keys().next().value);
  if (first) {
    workloadSel.value = first;
    loadWorkload(first);
  }
  const tk = params.get('tokens');
  if (tk !== null) {
    const f = parseFactor(tk, 'tokens');
    const opt = f === undefined ? 'auto' : fmtFactor(f);
    if (!SCALES.includes(opt)) tokensSel.append(h('option', { value: opt }, `× ${opt}`));
    tokensSel.value = opt;
  }
  const rq = params.get('requests');
  if (rq !== null) {
    const f = parseFactor(rq, 'requests');
    const opt = f === undefined ? 'auto' : fmtFactor(f);
    if (!SCALES.includes(opt)) requestsSel.append(h('option', { value: opt }, `× ${opt}`));
    requestsSel.value = opt;
  }
  const b = params.get('backend');
  if (b !== null) {
    if (!['auto', 'webgpu', 'reference'].includes(b)) throw new Error(`URL parameter backend=${b}: expected auto, webgpu or reference`);
    backendSel.value = b;
  }
  itersIn.value = String(intParam('iters', 5, 0));
  const pl = params.get('planners');
  if (pl !== null) for (const box of plannerBoxes) box.checked = pl.split(',').includes(box.value);
  if (params.get('autorun') === '1') void run();
  else {
    // Show the adapter before the first run.
    void getBackend(backendSel.value as BackendChoice)
      .then((sess) => {
        deviceLine.textContent = describeSession(sess);
        deviceLine.className = `device ${sess.kind}`;
      })
      .catch((e: Error) => (deviceLine.textContent = e.message));
  }
} catch (e) {
  setVerdict('error', `Error: ${(e as Error).message}`, { verified: 'false', error: (e as Error).message });
}
