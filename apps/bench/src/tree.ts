/**
 * The bench's tree JSON (`--tree FILE`, and the built-in workloads in `workloads/*.json`):
 *
 *   {"config": {"numQoHeads": 32, "numKvHeads": 8, "headDim": 128, "pageSize": 16, "kvDtype": "f16"},
 *    "nodes": [{"id": 0, "parent": null, "tokens": 4096}, {"id": 1, "parent": 0, "tokens": 512}],
 *    "requests": [{"leaf": 1}]}
 *
 * Each request decodes one query token that attends to all KV on the path root → leaf. A node's
 * pages are its own (allocated consecutively, in node order); its last page may be partly filled.
 *
 * Hybrid batches (prefill chunks, speculative decoding):
 * - `requests[i].queries` (default 1): a prefill chunk of n query tokens, the last n KV tokens of the
 *   request's path root → leaf. Query j (0-based) sees the path's first L − n + j + 1 tokens (causal
 *   within the chunk, everything before it in full). n must not exceed the path's tokens.
 * - `nodes[i].draft: true`: a node of a speculative-decoding draft tree. It holds exactly one token
 *   (its draft token) and carries one query of its own, which sees its ancestors only (the tree
 *   mask). The file lists no request for a draft node: the batch gets one request (numQueries 1,
 *   leaf = the draft node) per draft node, after the file's requests, in tree order (parents first).
 *   A draft node needs a parent (the context the draft grows from). `requests` may be empty when
 *   draft nodes supply the queries.
 *
 * Errors name the file, the line and the field: `tree.json line 9: nodes[3].parent: node 7 does not exist`.
 */
import { CanopyError, type AttentionConfig, type Batch, type BatchRequest, type ExplicitTree, type KvDtype } from '@canopy/core';
import { parseLocatedJson, type Located } from './json-loc.js';

export interface TreeConfig {
  numQoHeads: number;
  numKvHeads: number;
  headDim: number;
  pageSize: number;
  kvDtype: KvDtype;
}

export interface TreeNodeSpec {
  id: number;
  parent: number | null;
  tokens: number;
  /** A draft-tree node: one token, carries a query of its own (see the header). */
  draft?: boolean;
}

export interface TreeRequestSpec {
  leaf: number;
  /** Query tokens (a prefill chunk: the last `queries` tokens of the path); default 1. */
  queries?: number;
}

export interface TreeSpec {
  name?: string;
  description?: string;
  config: TreeConfig;
  nodes: TreeNodeSpec[];
  requests: TreeRequestSpec[];
}

const CONFIG_KEYS = ['numQoHeads', 'numKvHeads', 'headDim', 'pageSize', 'kvDtype'] as const;
const TOP_KEYS = ['$schema', 'name', 'description', 'config', 'nodes', 'requests'];

/** Parse and check tree JSON text. `source` names the file in messages. */
export function parseTreeJson(text: string, source = 'tree JSON'): TreeSpec {
  const { value, locations } = parseLocatedJson(text, source);
  const fail = (path: string, detail: string): never => {
    const at: Located | undefined = locations.get(path);
    throw new CanopyError('bad-tree-json', `${source}${at ? ` line ${at.line}` : ''}: ${path === '' ? '(top level)' : path}: ${detail}`);
  };
  return checkTreeSpec(value, fail);
}

/** Check an already-parsed value (for example a built-in workload); `fail` names the field. */
export function checkTreeSpec(value: unknown, fail: (path: string, detail: string) => never): TreeSpec {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  const posInt = (v: unknown, path: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(path, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const unknownKeys = (obj: Record<string, unknown>, path: string, allowed: readonly string[]): void => {
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k)) fail(path === '' ? k : `${path}.${k}`, `unknown field (expected one of ${allowed.join(', ')})`);
    }
  };

  if (!isObj(value)) fail('', 'the tree must be a JSON object with "config", "nodes" and "requests"');
  const root = value as Record<string, unknown>;
  unknownKeys(root, '', TOP_KEYS);
  for (const k of ['config', 'nodes', 'requests']) if (!(k in root)) fail('', `missing field "${k}"`);

  const c = root.config;
  if (!isObj(c)) fail('config', 'must be an object');
  const cfg = c as Record<string, unknown>;
  unknownKeys(cfg, 'config', CONFIG_KEYS);
  for (const k of CONFIG_KEYS) if (!(k in cfg)) fail('config', `missing field "${k}"`);
  const config: TreeConfig = {
    numQoHeads: posInt(cfg.numQoHeads, 'config.numQoHeads'),
    numKvHeads: posInt(cfg.numKvHeads, 'config.numKvHeads'),
    headDim: posInt(cfg.headDim, 'config.headDim'),
    pageSize: posInt(cfg.pageSize, 'config.pageSize'),
    kvDtype: cfg.kvDtype as KvDtype,
  };
  if (config.kvDtype !== 'f16' && config.kvDtype !== 'f32') fail('config.kvDtype', `must be "f16" or "f32", got ${JSON.stringify(cfg.kvDtype)}`);
  if (config.numQoHeads % config.numKvHeads !== 0) {
    fail('config.numQoHeads', `${config.numQoHeads} is not a multiple of numKvHeads (${config.numKvHeads})`);
  }

  if (!Array.isArray(root.nodes) || root.nodes.length === 0) fail('nodes', 'must be a non-empty array');
  const nodesIn = root.nodes as unknown[];
  const index = new Map<number, number>();
  const nodes: TreeNodeSpec[] = nodesIn.map((n, i) => {
    const p = `nodes[${i}]`;
    if (!isObj(n)) fail(p, 'must be an object {"id", "parent", "tokens"}');
    const o = n as Record<string, unknown>;
    unknownKeys(o, p, ['id', 'parent', 'tokens', 'draft']);
    for (const k of ['id', 'parent', 'tokens']) if (!(k in o)) fail(p, `missing field "${k}"`);
    if (typeof o.id !== 'number' || !Number.isInteger(o.id) || o.id < 0) fail(`${p}.id`, `must be a non-negative integer, got ${JSON.stringify(o.id)}`);
    const id = o.id as number;
    if (index.has(id)) fail(`${p}.id`, `duplicate id ${id} (also nodes[${index.get(id)}])`);
    index.set(id, i);
    if (o.parent !== null && (typeof o.parent !== 'number' || !Number.isInteger(o.parent))) {
      fail(`${p}.parent`, `must be a node id or null, got ${JSON.stringify(o.parent)}`);
    }
    const node: TreeNodeSpec = { id, parent: o.parent as number | null, tokens: posInt(o.tokens, `${p}.tokens`) };
    if ('draft' in o) {
      if (typeof o.draft !== 'boolean') fail(`${p}.draft`, `must be true or false, got ${JSON.stringify(o.draft)}`);
      if (o.draft) {
        // a draft node is one draft token: its query sees exactly its ancestors and itself
        if (node.tokens !== 1) fail(`${p}.tokens`, `a draft node holds exactly one token (its draft token), got ${node.tokens}`);
        if (node.parent === null) fail(`${p}.parent`, 'a draft node needs a parent (the context its draft tree grows from)');
        node.draft = true;
      }
    }
    return node;
  });
  nodes.forEach((n, i) => {
    if (n.parent === null) return;
    if (n.parent === n.id) fail(`nodes[${i}].parent`, `node ${n.id} cannot be its own parent`);
    if (!index.has(n.parent)) fail(`nodes[${i}].parent`, `node ${n.parent} does not exist`);
  });
  // Cycle check: walk up from each node; a path longer than the node count loops.
  nodes.forEach((n, i) => {
    let cur: TreeNodeSpec | undefined = n;
    for (let steps = 0; cur && cur.parent !== null; steps++) {
      if (steps > nodes.length) fail(`nodes[${i}].parent`, `the parent chain of node ${n.id} loops (a tree has no cycles)`);
      cur = nodes[index.get(cur.parent)!];
    }
  });

  const hasDraft = nodes.some((n) => n.draft);
  if (!Array.isArray(root.requests) || (root.requests.length === 0 && !hasDraft)) {
    fail('requests', 'must be a non-empty array (or the tree must have draft nodes, which carry queries of their own)');
  }
  const pathTokens = (id: number): number => {
    let t = 0;
    for (let n: TreeNodeSpec | undefined = nodes[index.get(id)!]; n; n = n.parent === null ? undefined : nodes[index.get(n.parent)!]) t += n.tokens;
    return t;
  };
  const requests = (root.requests as unknown[]).map((r, i) => {
    const p = `requests[${i}]`;
    if (!isObj(r)) fail(p, 'must be an object {"leaf": <node id>}');
    const o = r as Record<string, unknown>;
    unknownKeys(o, p, ['leaf', 'queries']);
    if (!('leaf' in o)) fail(p, 'missing field "leaf"');
    if (typeof o.leaf !== 'number' || !Number.isInteger(o.leaf)) fail(`${p}.leaf`, `must be a node id, got ${JSON.stringify(o.leaf)}`);
    if (!index.has(o.leaf as number)) fail(`${p}.leaf`, `node ${o.leaf} does not exist`);
    const leaf = o.leaf as number;
    if (nodes[index.get(leaf)!].draft) {
      fail(`${p}.leaf`, `node ${leaf} is a draft node, which carries its own query; list no request for it`);
    }
    const req: TreeRequestSpec = { leaf };
    if ('queries' in o) {
      const q = posInt(o.queries, `${p}.queries`);
      const avail = pathTokens(leaf);
      if (q > avail) fail(`${p}.queries`, `${q} query tokens exceed the ${avail} KV tokens of the path to node ${leaf} (a prefill chunk is the last tokens of its path)`);
      if (q !== 1) req.queries = q;
    }
    return req;
  });

  const spec: TreeSpec = { config, nodes, requests };
  if (typeof root.name === 'string') spec.name = root.name;
  if (typeof root.description === 'string') spec.description = root.description;
  return spec;
}

/** Scale-down of a workload (the CPU reference backend runs small versions). */
export interface WorkloadScale {
  /** Multiplies every node's token count (rounded, at least 1). */
  tokens: number;
  /** Multiplies the request count (requests kept evenly spread, first and last included). */
  requests: number;
}

export const FULL_SCALE: WorkloadScale = { tokens: 1, requests: 1 };

export function isFullScale(s: WorkloadScale): boolean {
  return s.tokens === 1 && s.requests === 1;
}

export function describeScale(s: WorkloadScale): string {
  if (isFullScale(s)) return 'full size';
  const parts: string[] = [];
  if (s.tokens !== 1) parts.push(`tokens ×${fmtFactor(s.tokens)}`);
  if (s.requests !== 1) parts.push(`requests ×${fmtFactor(s.requests)}`);
  return `scaled down: ${parts.join(', ')}`;
}

function fmtFactor(f: number): string {
  return f < 1 && Number.isInteger(1 / f) ? `1/${1 / f}` : String(f);
}

/** Apply a scale: shrink tokens, keep an even spread of requests, drop nodes no request sees. */
/**
 * Apply a scale: shrink tokens, keep an even spread of requests, drop nodes no request sees.
 * Hybrid shapes stay hybrid: every prefill request (queries > 1) is kept and its chunk shrinks with
 * the tokens (at least 2 queries, never more than its scaled path); the decodes are thinned as
 * usual. Draft nodes keep their one token and stay when the context they grow from stays.
 */
export function scaleTree(spec: TreeSpec, scale: WorkloadScale): TreeSpec {
  if (isFullScale(scale)) return spec;
  const decodes = spec.requests.filter((r) => (r.queries ?? 1) === 1);
  const R = decodes.length;
  const keep = R === 0 ? 0 : Math.max(1, Math.min(R, Math.round(R * scale.requests)));
  const kept = new Set<TreeRequestSpec>();
  for (let k = 0; k < keep; k++) {
    const idx = keep === 1 ? 0 : Math.round((k * (R - 1)) / (keep - 1));
    kept.add(decodes[idx]);
  }
  const requests = spec.requests.filter((r) => (r.queries ?? 1) > 1 || kept.has(r));
  const byId = new Map(spec.nodes.map((n) => [n.id, n]));
  const used = new Set<number>();
  const mark = (id: number): void => {
    for (let n = byId.get(id); n && !used.has(n.id); n = n.parent === null ? undefined : byId.get(n.parent)) used.add(n.id);
  };
  for (const r of requests) mark(r.leaf);
  // A draft node stays when the first non-draft node above it stays (its request's context); with
  // no requests at all (draft queries only) every draft tree stays.
  for (const n of spec.nodes) {
    if (!n.draft) continue;
    let a = byId.get(n.parent!);
    while (a?.draft) a = a.parent === null ? undefined : byId.get(a.parent);
    if (requests.length === 0 || (a && used.has(a.id))) mark(n.id);
  }
  const tokensOf = (n: TreeNodeSpec): number => (n.draft ? 1 : Math.max(1, Math.round(n.tokens * scale.tokens)));
  const nodes = spec.nodes.filter((n) => used.has(n.id)).map((n) => ({ ...n, tokens: tokensOf(n) }));
  const scaledById = new Map(nodes.map((n) => [n.id, n]));
  const scaledRequests = requests.map((r) => {
    const q = r.queries ?? 1;
    if (q === 1) return r;
    let path = 0;
    for (let n = scaledById.get(r.leaf); n; n = n.parent === null ? undefined : scaledById.get(n.parent)) path += n.tokens;
    return { ...r, queries: Math.min(path, Math.max(2, Math.round(q * scale.tokens))) };
  });
  return { ...spec, nodes, requests: scaledRequests };
}

/**
 * Every request of the batch a spec builds, in batch order: the file's requests, then one
 * single-query request per draft node in tree order (see `treeOrder`).
 */
export function batchRequestSpecs(spec: TreeSpec): TreeRequestSpec[] {
  const out: TreeRequestSpec[] = spec.requests.map((r) => ({ leaf: r.leaf, queries: r.queries ?? 1 }));
  for (const i of treeOrder(spec)) if (spec.nodes[i].draft) out.push({ leaf: spec.nodes[i].id, queries: 1 });
  return out;
}

/** Override parts of the attention shape (`--model`, `--kv-dtype`, `--page-size`). */
export function withConfig(spec: TreeSpec, patch: Partial<TreeConfig>): TreeSpec {
  return { ...spec, config: { ...spec.config, ...patch } };
}

/**
 * The order of the batch's tree nodes: `order[k]` is the index in `spec.nodes` of batch node k.
 * Topological (parents before children), stable in file order, so the explicit tree satisfies
 * parent[n] < n, which is what a TokenTree needs. Exported so callers (the web page) can map
 * batch nodes back to spec node ids.
 */
export function treeOrder(spec: TreeSpec): number[] {
  const byId = new Map(spec.nodes.map((n, i) => [n.id, i]));
  const order: number[] = [];
  const placed = new Uint8Array(spec.nodes.length);
  const place = (i: number): void => {
    if (placed[i]) return;
    const p = spec.nodes[i].parent;
    if (p !== null) place(byId.get(p)!);
    placed[i] = 1;
    order.push(i);
  };
  spec.nodes.forEach((_, i) => place(i));
  return order;
}

/** The batch of a tree, with its explicit tree and the paged layout described above. */
export function buildBatch(spec: TreeSpec): Batch {
  const { config: tc } = spec;
  const byId = new Map(spec.nodes.map((n, i) => [n.id, i]));
  const order = treeOrder(spec);
  const newIndex = new Int32Array(spec.nodes.length);
  order.forEach((old, k) => (newIndex[old] = k));

  const N = order.length;
  const parent = new Int32Array(N);
  const segBegin = new Int32Array(N + 1);
  const segPageArr: number[] = [];
  const segTokensArr: number[] = [];
  let nextPage = 0;
  order.forEach((old, k) => {
    const n = spec.nodes[old];
    parent[k] = n.parent === null ? -1 : newIndex[byId.get(n.parent)!];
    segBegin[k] = segPageArr.length;
    for (let left = n.tokens; left > 0; left -= tc.pageSize) {
      segPageArr.push(nextPage++);
      segTokensArr.push(Math.min(tc.pageSize, left));
    }
  });
  segBegin[N] = segPageArr.length;
  const segPage = Int32Array.from(segPageArr);
  const segTokens = Int32Array.from(segTokensArr);

  const reqSpecs = batchRequestSpecs(spec);
  const requestLeaf = new Int32Array(reqSpecs.length);
  const requests: BatchRequest[] = reqSpecs.map((r, ri) => {
    const leaf = newIndex[byId.get(r.leaf)!];
    requestLeaf[ri] = leaf;
    const path: number[] = [];
    for (let n = leaf; n >= 0; n = parent[n]) path.push(n);
    path.reverse();
    let count = 0;
    for (const n of path) count += segBegin[n + 1] - segBegin[n];
    const pageIds = new Int32Array(count);
    const pageTokens = new Int32Array(count);
    let k = 0;
    for (const n of path) {
      for (let s = segBegin[n]; s < segBegin[n + 1]; s++, k++) {
        pageIds[k] = segPage[s];
        pageTokens[k] = segTokens[s];
      }
    }
    return { pageIds, pageTokens, numQueries: r.queries ?? 1 };
  });
  const config: AttentionConfig = {
    numQoHeads: tc.numQoHeads,
    numKvHeads: tc.numKvHeads,
    headDim: tc.headDim,
    kvDtype: tc.kvDtype,
  };
  const tree: ExplicitTree = { parent, segBegin, segPage, segTokens, requestLeaf };
  return { config, numPages: Math.max(1, nextPage), pageSize: tc.pageSize, requests, tree };
}
