/**
 * The tree JSON the page edits (the same schema as the bench's `--tree` files and its workloads):
 *
 *   {"config": {"numQoHeads": 32, "numKvHeads": 8, "headDim": 128, "pageSize": 16, "kvDtype": "f16"},
 *    "nodes": [{"id": 0, "parent": null, "tokens": 4096}, {"id": 1, "parent": 0, "tokens": 512}],
 *    "requests": [{"leaf": 1}]}
 *
 * Parsing, scaling and the tree → batch conversion live here rather than in apps/bench so the page
 * bundles nothing Node-only; the layout (a node's pages are its own, allocated in node order, its
 * last page possibly partial) is the bench's, so a scaled workload here is the bench's workload.
 */
import { CanopyError, type AttentionConfig, type Batch, type BatchRequest, type ExplicitTree, type KvDtype } from '@canopy/core';

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
}

export interface TreeSpec {
  name?: string;
  description?: string;
  config: TreeConfig;
  nodes: TreeNodeSpec[];
  requests: Array<{ leaf: number }>;
}

const CONFIG_KEYS = ['numQoHeads', 'numKvHeads', 'headDim', 'pageSize', 'kvDtype'] as const;
const TOP_KEYS = ['$schema', 'name', 'description', 'config', 'nodes', 'requests'];

function bad(path: string, detail: string): never {
  throw new CanopyError('bad-tree-json', `${path === '' ? 'tree' : path}: ${detail}`);
}

/** Parse tree JSON text; errors name the field (`nodes[3].parent: node 7 does not exist`). */
export function parseTreeJson(text: string): TreeSpec {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CanopyError('bad-tree-json', `tree JSON does not parse: ${(e as Error).message}`);
  }
  return checkTreeSpec(value);
}

/** Check a parsed value and return it as a TreeSpec (throws CanopyError naming the field). */
export function checkTreeSpec(value: unknown): TreeSpec {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  const posInt = (v: unknown, path: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) bad(path, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const onlyKeys = (obj: Record<string, unknown>, path: string, allowed: readonly string[]): void => {
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k)) bad(path === '' ? k : `${path}.${k}`, `unknown field (expected one of ${allowed.join(', ')})`);
    }
  };
  if (!isObj(value)) bad('', 'must be a JSON object with "config", "nodes" and "requests"');
  onlyKeys(value, '', TOP_KEYS);
  for (const k of ['config', 'nodes', 'requests']) if (!(k in value)) bad('', `missing field "${k}"`);
  const c = value.config;
  if (!isObj(c)) bad('config', 'must be an object');
  onlyKeys(c, 'config', CONFIG_KEYS);
  for (const k of CONFIG_KEYS) if (!(k in c)) bad('config', `missing field "${k}"`);
  const config: TreeConfig = {
    numQoHeads: posInt(c.numQoHeads, 'config.numQoHeads'),
    numKvHeads: posInt(c.numKvHeads, 'config.numKvHeads'),
    headDim: posInt(c.headDim, 'config.headDim'),
    pageSize: posInt(c.pageSize, 'config.pageSize'),
    kvDtype: c.kvDtype as KvDtype,
  };
  if (config.kvDtype !== 'f16' && config.kvDtype !== 'f32') bad('config.kvDtype', `must be "f16" or "f32", got ${JSON.stringify(c.kvDtype)}`);
  if (config.numQoHeads % config.numKvHeads !== 0) bad('config.numQoHeads', `${config.numQoHeads} is not a multiple of numKvHeads (${config.numKvHeads})`);

  if (!Array.isArray(value.nodes) || value.nodes.length === 0) bad('nodes', 'must be a non-empty array');
  const index = new Map<number, number>();
  const nodes: TreeNodeSpec[] = (value.nodes as unknown[]).map((n, i) => {
    const p = `nodes[${i}]`;
    if (!isObj(n)) bad(p, 'must be an object {"id", "parent", "tokens"}');
    onlyKeys(n, p, ['id', 'parent', 'tokens']);
    for (const k of ['id', 'parent', 'tokens']) if (!(k in n)) bad(p, `missing field "${k}"`);
    if (typeof n.id !== 'number' || !Number.isInteger(n.id) || n.id < 0) bad(`${p}.id`, `must be a non-negative integer, got ${JSON.stringify(n.id)}`);
    if (index.has(n.id)) bad(`${p}.id`, `duplicate id ${n.id} (also nodes[${index.get(n.id)}])`);
    index.set(n.id, i);
    if (n.parent !== null && (typeof n.parent !== 'number' || !Number.isInteger(n.parent))) {
      bad(`${p}.parent`, `must be a node id or null, got ${JSON.stringify(n.parent)}`);
    }
    return { id: n.id, parent: n.parent as number | null, tokens: posInt(n.tokens, `${p}.tokens`) };
  });
  nodes.forEach((n, i) => {
    if (n.parent === null) return;
    if (n.parent === n.id) bad(`nodes[${i}].parent`, `node ${n.id} cannot be its own parent`);
    if (!index.has(n.parent)) bad(`nodes[${i}].parent`, `node ${n.parent} does not exist`);
  });
  // A parent chain longer than the node count loops.
  nodes.forEach((n, i) => {
    let cur: TreeNodeSpec | undefined = n;
    for (let steps = 0; cur && cur.parent !== null; steps++) {
      if (steps > nodes.length) bad(`nodes[${i}].parent`, `the parent chain of node ${n.id} loops (a tree has no cycles)`);
      cur = nodes[index.get(cur.parent)!];
    }
  });

  if (!Array.isArray(value.requests) || value.requests.length === 0) bad('requests', 'must be a non-empty array');
  const requests = (value.requests as unknown[]).map((r, i) => {
    const p = `requests[${i}]`;
    if (!isObj(r)) bad(p, 'must be an object {"leaf": <node id>}');
    onlyKeys(r, p, ['leaf']);
    if (typeof r.leaf !== 'number' || !Number.isInteger(r.leaf)) bad(`${p}.leaf`, `must be a node id, got ${JSON.stringify(r.leaf)}`);
    if (!index.has(r.leaf)) bad(`${p}.leaf`, `node ${r.leaf} does not exist`);
    return { leaf: r.leaf };
  });
  const spec: TreeSpec = { config, nodes, requests };
  if (typeof value.name === 'string') spec.name = value.name;
  if (typeof value.description === 'string') spec.description = value.description;
  return spec;
}

/** Serialise a spec the way the workload files look: one node or request per line. */
export function treeToJson(spec: TreeSpec): string {
  const head: string[] = [];
  if (spec.name !== undefined) head.push(`  "name": ${JSON.stringify(spec.name)},`);
  if (spec.description !== undefined) head.push(`  "description": ${JSON.stringify(spec.description)},`);
  return [
    '{',
    ...head,
    `  "config": ${JSON.stringify(spec.config)},`,
    '  "nodes": [',
    spec.nodes.map((n) => `    ${JSON.stringify({ id: n.id, parent: n.parent, tokens: n.tokens })}`).join(',\n'),
    '  ],',
    '  "requests": [',
    spec.requests.map((r) => `    ${JSON.stringify({ leaf: r.leaf })}`).join(',\n'),
    '  ]',
    '}',
  ].join('\n');
}

export interface WorkloadScale {
  /** Multiplies every node's token count (rounded, at least 1). */
  tokens: number;
  /** Multiplies the request count (requests kept evenly spread, first and last included). */
  requests: number;
}

/** Shrink tokens, keep an even spread of requests, drop nodes no kept request sees. */
export function scaleTree(spec: TreeSpec, scale: WorkloadScale): TreeSpec {
  if (scale.tokens === 1 && scale.requests === 1) return spec;
  const R = spec.requests.length;
  const keep = Math.max(1, Math.min(R, Math.round(R * scale.requests)));
  const requests: Array<{ leaf: number }> = [];
  for (let k = 0; k < keep; k++) requests.push(spec.requests[keep === 1 ? 0 : Math.round((k * (R - 1)) / (keep - 1))]);
  const byId = new Map(spec.nodes.map((n) => [n.id, n]));
  const used = new Set<number>();
  for (const r of requests) {
    for (let n = byId.get(r.leaf); n && !used.has(n.id); n = n.parent === null ? undefined : byId.get(n.parent)) used.add(n.id);
  }
  const nodes = spec.nodes.filter((n) => used.has(n.id)).map((n) => ({ ...n, tokens: Math.max(1, Math.round(n.tokens * scale.tokens)) }));
  return { ...spec, nodes, requests };
}

/** KV pages the batch of a spec allocates (each node its own pages). */
export function specPages(spec: TreeSpec): number {
  let pages = 0;
  for (const n of spec.nodes) pages += Math.ceil(n.tokens / spec.config.pageSize);
  return pages;
}

/** Bytes of one KV pool (K or V) for a spec. */
export function specPoolBytes(spec: TreeSpec): number {
  const c = spec.config;
  return specPages(spec) * c.pageSize * c.numKvHeads * c.headDim * (c.kvDtype === 'f16' ? 2 : 4);
}

/** Σ over requests of their path tokens (the KV a plan without sharing reads). */
export function specPathTokens(spec: TreeSpec): number {
  const byId = new Map(spec.nodes.map((n) => [n.id, n]));
  let total = 0;
  for (const r of spec.requests) {
    for (let n = byId.get(r.leaf); n; n = n.parent === null ? undefined : byId.get(n.parent)) total += n.tokens;
  }
  return total;
}

export interface BuiltBatch {
  batch: Batch;
  /** Spec node id of each batch tree node (batch order is topological). */
  nodeIds: Int32Array;
  /** Batch tree node that owns each page. */
  pageNode: Int32Array;
}

/** The batch of a tree, with its explicit tree and the paged layout described at the top. */
export function buildBatch(spec: TreeSpec): BuiltBatch {
  const tc = spec.config;
  const byId = new Map(spec.nodes.map((n, i) => [n.id, i]));
  // Topological order (parents first, otherwise file order): the explicit tree needs parent[n] < n.
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
  const newIndex = new Int32Array(spec.nodes.length);
  order.forEach((old, k) => (newIndex[old] = k));

  const N = order.length;
  const parent = new Int32Array(N);
  const nodeIds = new Int32Array(N);
  const segBegin = new Int32Array(N + 1);
  const segPageArr: number[] = [];
  const segTokensArr: number[] = [];
  const pageNodeArr: number[] = [];
  order.forEach((old, k) => {
    const n = spec.nodes[old];
    nodeIds[k] = n.id;
    parent[k] = n.parent === null ? -1 : newIndex[byId.get(n.parent)!];
    segBegin[k] = segPageArr.length;
    for (let left = n.tokens; left > 0; left -= tc.pageSize) {
      pageNodeArr.push(k);
      segPageArr.push(segPageArr.length);
      segTokensArr.push(Math.min(tc.pageSize, left));
    }
  });
  segBegin[N] = segPageArr.length;
  const segPage = Int32Array.from(segPageArr);
  const segTokens = Int32Array.from(segTokensArr);
  const requestLeaf = new Int32Array(spec.requests.length);
  const requests: BatchRequest[] = spec.requests.map((r, ri) => {
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
    return { pageIds, pageTokens, numQueries: 1 };
  });
  const config: AttentionConfig = { numQoHeads: tc.numQoHeads, numKvHeads: tc.numKvHeads, headDim: tc.headDim, kvDtype: tc.kvDtype };
  const tree: ExplicitTree = { parent, segBegin, segPage, segTokens, requestLeaf };
  const batch: Batch = { config, numPages: Math.max(1, segPage.length), pageSize: tc.pageSize, requests, tree };
  return { batch, nodeIds, pageNode: Int32Array.from(pageNodeArr) };
}
