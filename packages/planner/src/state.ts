/**
 * Incremental planning. A decode step appends a token to every request and a few requests finish
 * or join; `stepPlanner` updates the radix tree in place (extending leaves, removing finished
 * requests, inserting new ones) instead of rebuilding it, then emits the plan with the same code
 * as a fresh build. Plans equal those of a fresh build of the new batch (tested).
 */
import { fail, validateBatch, type BackendCapabilities, type Batch, type Plan, type TokenTree } from '@canopy/core';
import { appendOnlyStep, emitPrefixPlan, patchAppendPlan, PlanBuffer, PlanLayout, type AppendDelta, type PrefixPlannerOptions } from './prefix.js';
import { buildRadix, RadixTree } from './tree.js';
import { concatPlans, isHybridBatch, splitHybridBatch } from './hybrid.js';

export interface PlannerState {
  batch: Batch;
  capabilities: BackendCapabilities;
  options: PrefixPlannerOptions;
  /** The planner's radix tree (mutable pool). */
  tree: RadixTree;
  /** Node ids in canonical order (index = TokenTree node id). */
  order: Int32Array;
  /** The current plan. */
  plan: Plan;
  /** Steps since the last full build (for reports). */
  steps: number;
  /** Full rebuilds a step fell back to (explicit trees, page-size changes, key collisions). */
  rebuilds: number;
  /** The two plan buffers steps write into in turn (see `PrefixPlannerOptions.recyclePlans`). */
  planBuffers: PlanBuffer[];
  /** Which of them the next step writes. */
  nextBuffer: number;
  /** Per-column record of `plan` (append-only steps patch the plan from it). */
  layout: PlanLayout;
  /** Steps that patched the previous plan instead of emitting it in full (for reports, tests). */
  patched: number;
}

/** What changed between two consecutive batches. */
export interface StepDelta {
  /** Indices (in the previous batch) of requests that finished. Survivors keep their order and
   * come first in the new batch. */
  finished?: ArrayLike<number>;
  /** Requests that joined, at the end of the new batch. Default: new length − survivors. */
  joined?: number;
  /**
   * For an append-only decode step (nobody finished or joined, every request one decode query):
   * the caller's account of it. Every request gained exactly one KV token, in its last page, or
   * in a new page for the requests listed here (`newPageIds[k]` for `newPageRequests[k]`). The
   * planner then updates its records from this instead of reading every request's page lists
   * (scattered heap objects: on 1024 requests, reading them is most of a step). A wrong account
   * gives a wrong plan; with `validate` the account is checked against the batch. Impossible
   * accounts (an index out of range, a request listed twice, a page id out of range, a full page
   * grown) get a CanopyError. Ignored where the step cannot be patched (the batch is read).
   */
  appended?: AppendDelta;
}

function checkCaps(caps: BackendCapabilities): void {
  if (!caps || !Array.isArray(caps.tileMenu) || caps.tileMenu.length === 0) fail('bad-capabilities', 'capabilities.tileMenu must list at least one tile shape');
  for (const t of caps.tileMenu) {
    if (!(Number.isInteger(t.rows) && t.rows > 0 && Number.isInteger(t.kvBlock) && t.kvBlock > 0)) {
      fail('bad-capabilities', `capabilities.tileMenu has a bad tile ${JSON.stringify(t)}`);
    }
  }
  if (!(caps.parallelUnits >= 1)) fail('bad-capabilities', `capabilities.parallelUnits must be ≥ 1, got ${caps.parallelUnits}`);
}

const SCR: Int32Array[] = [];
function scratchI32(slot: number, n: number): Int32Array {
  let a = SCR[slot];
  if (!a || a.length < n) SCR[slot] = a = new Int32Array(Math.max(64, n, 2 * (a?.length ?? 0)));
  a.fill(0, 0, n);
  return a;
}

/** Cheap shape checks the tree builder relies on (ids and token counts are checked as pages enter the tree). */
export function checkBatchShape(batch: Batch): void {
  checkBatchTop(batch);
  const reqs = batch.requests;
  for (let i = 0; i < reqs.length; i++) {
    const r = reqs[i];
    if (!(r.pageIds instanceof Int32Array) || !(r.pageTokens instanceof Int32Array)) fail('bad-batch', `request ${i}: pageIds and pageTokens must be Int32Arrays`);
    if (r.pageIds.length !== r.pageTokens.length) fail('bad-batch', `request ${i}: pageIds has ${r.pageIds.length} entries, pageTokens ${r.pageTokens.length}`);
    if (r.pageIds.length === 0) fail('bad-batch', `request ${i} has no KV pages`);
  }
}

/** The batch-level part of checkBatchShape (config, page size, pool size, a request list). */
function checkBatchTop(batch: Batch): void {
  if (!batch || typeof batch !== 'object') fail('bad-batch', 'batch must be an object');
  if (!batch.config || !(batch.config.numQoHeads % batch.config.numKvHeads === 0)) {
    fail('bad-config', `config.numQoHeads (${batch.config?.numQoHeads}) must be a multiple of config.numKvHeads (${batch.config?.numKvHeads}) for GQA`);
  }
  if (!(Number.isInteger(batch.pageSize) && batch.pageSize >= 1)) fail('bad-batch', `batch.pageSize must be a positive integer, got ${batch.pageSize}`);
  if (!(Number.isInteger(batch.numPages) && batch.numPages >= 1)) fail('bad-batch', `batch.numPages must be a positive integer, got ${batch.numPages}`);
  if (!Array.isArray(batch.requests) || batch.requests.length === 0) fail('bad-batch', 'batch.requests must be a non-empty array');
}

// One default options object: the cost model is cached per (capabilities, options) identity, and
// a fresh `{}` per call would rebuild it (tile tables included) for every plan.
const NO_OPTIONS: PrefixPlannerOptions = Object.freeze({});

/** Full build: tree, canonical order, plan. */
export function createPlannerState(batch: Batch, capabilities: BackendCapabilities, options: PrefixPlannerOptions = NO_OPTIONS): PlannerState {
  checkCaps(capabilities);
  checkBatchShape(batch);
  // Explicit trees get core's full check (cycles, missing nodes, paths that differ from pages).
  if (batch.tree || options.validate) validateBatch(batch);
  const tree = buildRadix(batch, options.trustPageIds === true && !batch.tree);
  const order = tree.canonicalOrder();
  const layout = new PlanLayout();
  let plan: Plan;
  if (options.hybridLayout !== 'packed' && isHybridBatch(batch)) {
    // The state keeps the whole batch's tree (later steps may be decode-only); the plan is the
    // two halves' plans in one. The layout stays unpatchable, so steps never patch it (they
    // rebuild while the batch is hybrid).
    const parts = splitHybridBatch(batch);
    const packed = packedOptions(options);
    plan = concatPlans(batch, parts, parts.map((p) => createPlannerState(p.batch, capabilities, packed).plan));
  } else plan = emitPrefixPlan(tree, order, batch, capabilities, options, undefined, layout);
  return { batch, capabilities, options, tree, order, plan, steps: 0, rebuilds: 0, planBuffers: [], nextBuffer: 0, layout, patched: 0 };
}

// The halves are planned with the caller's options but the packed layout; one derived object
// per options object (the cost model is cached by options identity).
const PACKED = new WeakMap<PrefixPlannerOptions, PrefixPlannerOptions>();
function packedOptions(options: PrefixPlannerOptions): PrefixPlannerOptions {
  let o = PACKED.get(options);
  if (!o) PACKED.set(options, (o = Object.freeze({ ...options, hybridLayout: 'packed' as const })));
  return o;
}

/** The buffer for the next step's plan: the older of the state's two (never the one the current
 * plan lives in). Buffers grow with headroom so that growing leaves do not reallocate every step. */
function stepBuffer(state: PlannerState): PlanBuffer {
  const i = state.nextBuffer;
  state.nextBuffer = 1 - i;
  let b = state.planBuffers[i];
  if (!b) state.planBuffers[i] = b = new PlanBuffer();
  return b;
}

function sameConfig(a: Batch, b: Batch): boolean {
  const x = a.config;
  const y = b.config;
  return x.numQoHeads === y.numQoHeads && x.numKvHeads === y.numKvHeads && x.headDim === y.headDim && x.kvDtype === y.kvDtype && x.scale === y.scale && a.pageSize === b.pageSize;
}

function rebuild(state: PlannerState, next: Batch): Plan {
  const fresh = createPlannerState(next, state.capabilities, state.options);
  Object.assign(state, { batch: fresh.batch, tree: fresh.tree, order: fresh.order, plan: fresh.plan, layout: fresh.layout });
  state.steps = 0;
  state.rebuilds++;
  return state.plan;
}

/**
 * Advance the state to `next` and return its plan. The caller promises that every survivor's KV
 * is its previous KV plus appended tokens (its pages before the last one unchanged); the planner
 * checks the last old page and re-inserts a request whose last page changed id. A survivor whose
 * leaf is shared (forks) is re-inserted; joined requests are inserted. Explicit trees and changes
 * of config or page size fall back to a full build.
 */
export function stepPlanner(state: PlannerState, next: Batch, delta: StepDelta = NO_DELTA): Plan {
  checkBatchTop(next);
  const prevBatch = state.batch;
  // The common decode step first: it checks each request as it reads it, and leaves the state
  // untouched when the step is not one it handles (the general path below then checks the batch).
  // It never takes a hybrid batch (every request must have one query), so the hybrid check, which
  // reads every request, stays off this path.
  const fast = fastStep(state, next, delta);
  if (fast) return fast;
  // hybrid batches under the separate layout: a full build (createPlannerState checks the batch)
  if (state.options.hybridLayout !== 'packed' && isHybridBatch(next)) return rebuild(state, next);
  checkBatchShape(next);
  try {
    return step(state, next, delta);
  } catch (e) {
    // A step that fails half-way (bad page ids, bad delta) leaves the tree half-updated: restore
    // the previous batch's state so the caller can go on, then report the problem.
    const fresh = createPlannerState(prevBatch, state.capabilities, state.options);
    Object.assign(state, { batch: fresh.batch, tree: fresh.tree, order: fresh.order, plan: fresh.plan, layout: fresh.layout });
    throw e;
  }
}

const NO_DELTA: StepDelta = Object.freeze({});

/** An append-only step (appendOnlyStep) where it applies; null (state untouched) elsewhere. */
function fastStep(state: PlannerState, next: Batch, delta: StepDelta): Plan | null {
  const prev = state.batch;
  if ((delta.finished !== undefined && delta.finished.length !== 0) || (delta.joined !== undefined && delta.joined !== 0)) {
    if (delta.appended) fail('bad-delta', 'appended describes an append-only step: no request may finish or join');
    return null;
  }
  if (delta.appended && next.requests.length !== prev.requests.length) fail('bad-delta', `appended describes an append-only step, but the batch went from ${prev.requests.length} to ${next.requests.length} requests`);
  if (next.tree || prev.tree || next.requests.length !== prev.requests.length || !sameConfig(prev, next) || next.numPages < prev.numPages) return null;
  const recycle = state.options.recyclePlans !== false;
  const buf = recycle ? stepBuffer(state) : undefined;
  let r: ReturnType<typeof appendOnlyStep>;
  try {
    r = appendOnlyStep(state.tree, next, state.capabilities, state.options, state.layout, buf, delta.appended);
  } catch (e) {
    // a rejected account: the state is untouched, and the buffer holding the current plan must
    // not be the next one written
    if (recycle) state.nextBuffer = 1 - state.nextBuffer;
    throw e;
  }
  if (r === null) {
    if (recycle) state.nextBuffer = 1 - state.nextBuffer; // not used: hand it out again
    return null;
  }
  state.batch = next;
  state.steps++;
  if (r === 'emit') {
    // the tree is current (leaves advanced); the split search changed a chunk count
    if (recycle) state.nextBuffer = 1 - state.nextBuffer;
    state.plan = emitPrefixPlan(state.tree, state.order, next, state.capabilities, state.options, recycle ? (n) => stepBuffer(state).take(n) : undefined, state.layout);
    return state.plan;
  }
  state.plan = r;
  state.patched++;
  return r;
}

function step(state: PlannerState, next: Batch, delta: StepDelta): Plan {
  if (next.tree || state.batch.tree || !sameConfig(state.batch, next) || next.numPages < state.batch.numPages) return rebuild(state, next);
  const t = state.tree;
  // (t.requests may be the caller's list of the previous batch: its length is not relied on)
  const R0 = t.reqLeaf.length;
  const fin = scratchI32(0, R0);
  const finished = delta.finished ?? [];
  for (let i = 0; i < finished.length; i++) {
    const f = finished[i];
    if (!(Number.isInteger(f) && f >= 0 && f < R0)) fail('bad-delta', `finished request ${f} is not a request of the previous batch (0..${R0 - 1})`);
    if (fin[f]) fail('bad-delta', `finished request ${f} listed twice`);
    fin[f] = 1;
  }
  const S = R0 - finished.length;
  const joined = delta.joined ?? next.requests.length - S;
  if (S + joined !== next.requests.length || joined < 0) {
    fail('bad-delta', `previous batch had ${R0} requests, ${finished.length} finished and ${joined} joined, but the new batch has ${next.requests.length}`);
  }
  t.numPages = next.numPages;
  const KM = t.keyMul;

  // 1. finished requests leave the tree
  for (let r = 0; r < R0; r++) if (fin[r]) t.remove(r);

  // 2. classify survivors: 0 extend the leaf in place, 1 re-insert, 2 extend and re-key the leaf
  const surv = scratchI32(1, S);
  const kind = scratchI32(2, S);
  // each survivor's old page count and old last-page tokens (the extension below needs them)
  // (read from the tree's record of the previous batch: the old batch's arrays are not touched)
  const oldN = scratchI32(3, S);
  const oldLast = scratchI32(4, S);
  const nreqs = next.requests;
  const refCount = t.refCount;
  const tpb = t.pb;
  const leafOf = t.reqLeaf;
  const lastN = t.lastN;
  const lastId = t.lastId;
  const lastTok = t.lastTok;
  for (let r = 0, i = 0; r < R0; r++) {
    if (fin[r]) continue;
    surv[i] = r;
    const nw = nreqs[i];
    const nTk = nw.pageTokens;
    const n0 = lastN[r];
    const n1 = nTk.length;
    const L = leafOf[r];
    const last = lastTok[r];
    oldN[i] = n0;
    oldLast[i] = last;
    const ok = n1 >= n0 && nw.pageIds[n0 - 1] === lastId[r] && nTk[n0 - 1] >= last;
    if (!ok || refCount[L] !== 1) kind[i] = 1;
    else if (tpb[L] === n0 - 1 && nTk[n0 - 1] !== last) kind[i] = 2;
    else kind[i] = 0;
    i++;
  }
  // 3. re-inserted survivors leave first (their old path may be shared or stale)
  for (let i = 0; i < S; i++) if (kind[i] === 1) t.remove(surv[i]);
  // 4. re-key leaves whose first segment grew (merges above may have made it a plain extension)
  for (let i = 0; i < S; i++) {
    if (kind[i] !== 2) continue;
    const r = surv[i];
    const L = t.reqLeaf[r];
    const n0 = oldN[i];
    if (t.pb[L] !== n0 - 1) {
      kind[i] = 0;
      continue;
    }
    const nw = next.requests[i];
    const newKey = nw.pageIds[n0 - 1] * KM + nw.pageTokens[n0 - 1];
    if (!t.rekey(L, newKey)) return rebuild(state, next);
  }

  // 5. switch to the new batch's requests; placed survivors keep their leaves
  const R1 = next.requests.length;
  // Append-only step (nobody finished, joined or forked): requests keep their indices and leaves,
  // the tree keeps its shape, node order and `src` (smallest request through each node).
  let appendOnly = finished.length === 0 && joined === 0;
  for (let i = 0; appendOnly && i < S; i++) if (kind[i] === 1) appendOnly = false;
  t.requests = next.requests.slice();
  t.byteViews.length = 0;
  if (!appendOnly) {
    const oldLeaf = t.reqLeaf;
    t.reqLeaf = new Int32Array(R1).fill(-1);
    for (let i = 0; i < S; i++) if (kind[i] !== 1) t.reqLeaf[i] = oldLeaf[surv[i]];
    t.refreshSrc(); // src := a placed request through each node
  }
  const NP = t.numPages;
  const PS = t.pageSize;
  const tpe = t.pe;
  const ttok = t.tokens;
  const leaves = t.reqLeaf;
  for (let i = 0; i < S; i++) {
    if (kind[i] === 1) continue;
    const nw = nreqs[i];
    const ids = nw.pageIds;
    const tks = nw.pageTokens;
    const n0 = oldN[i];
    const n1 = ids.length;
    const L = leaves[i];
    let d = -oldLast[i];
    for (let s = n0 - 1; s < n1; s++) {
      const pg = ids[s];
      const k = tks[s];
      if (!(pg >= 0 && pg < NP) || (pg | 0) !== pg) fail('page-out-of-range', `request ${i} segment ${s}: page id ${pg} out of range [0, ${NP})`);
      if (!(k >= 1 && k <= PS) || (k | 0) !== k) fail('bad-segment', `request ${i} segment ${s}: uses ${k} tokens of page ${pg}; must be 1..pageSize (${PS})`);
      d += k;
    }
    tpe[L] = n1;
    ttok[L] += d;
    if (appendOnly) {
      // survivor i is request i of both batches (t.requests is the new list): update the record in place
      t.recordLastOf(i);
    }
  }
  const recycle = state.options.recyclePlans !== false;
  // Append-only: patch the previous plan's leaf items when the split search keeps every chunk count.
  if (appendOnly) {
    // leaves may have gained pages: a recycled buffer's page counts are no longer known current
    state.layout.pageEpoch++;
    const buf = recycle ? stepBuffer(state) : undefined;
    const plan = patchAppendPlan(t, next, state.capabilities, state.options, state.layout, buf);
    if (!plan && recycle) state.nextBuffer = 1 - state.nextBuffer; // not used: hand it out again
    if (plan) {
      state.batch = next;
      state.plan = plan;
      state.steps++;
      state.patched++;
      return plan;
    }
  }
  // 6. re-inserted survivors and joined requests enter (index order, as a fresh build would)
  for (let i = 0; i < S; i++) if (kind[i] === 1) t.insert(i, null);
  for (let i = S; i < R1; i++) t.insert(i, null);
  if (!appendOnly) t.recordLast();

  state.order = t.canonicalOrder();
  state.batch = next;
  state.plan = emitPrefixPlan(t, state.order, next, state.capabilities, state.options, recycle ? (n) => stepBuffer(state).take(n) : undefined, state.layout);
  state.steps++;
  return state.plan;
}

/** Copy a state (benchmarks replay one step from the same state many times). */
export function clonePlannerState(state: PlannerState): PlannerState {
  const { batch, capabilities, options, plan, steps, rebuilds, nextBuffer, patched } = state;
  // The copy gets its own plan buffers (copies: a step of the copy behaves as one of the
  // original would); sharing them would let one state overwrite the other's plans.
  const planBuffers = state.planBuffers.map((b) => b.clone());
  return { batch, capabilities, options, tree: state.tree.clone(), order: state.order.slice(), plan, steps, rebuilds, planBuffers, nextBuffer, layout: state.layout.clone(), patched };
}

/** The token tree of a state (canonical node order: the ids `plan.itemNode` refers to). */
export function stateTokenTree(state: PlannerState): TokenTree {
  return state.tree.toTokenTree(state.order, state.batch);
}

/** Build the token tree of a batch: radix tree over page ids, explicit nodes kept when `batch.tree` is given. */
export function buildTokenTree(batch: Batch): TokenTree {
  checkBatchShape(batch);
  if (batch.tree) validateBatch(batch);
  const tree = buildRadix(batch);
  return tree.toTokenTree(tree.canonicalOrder(), batch);
}

/** The `prefix` planner. */
export function prefixPlanner(batch: Batch, capabilities: BackendCapabilities, options: PrefixPlannerOptions = NO_OPTIONS): Plan {
  return createPlannerState(batch, capabilities, options).plan;
}
