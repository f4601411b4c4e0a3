/**
 * The tree JSON the page edits (the same schema as the bench's `--tree` files and its workloads):
 *
 *   {"config": {"numQoHeads": 32, "numKvHeads": 8, "headDim": 128, "pageSize": 16, "kvDtype": "f16"},
 *    "nodes": [{"id": 0, "parent": null, "tokens": 4096}, {"id": 1, "parent": 0, "tokens": 512}],
 *    "requests": [{"leaf": 1}]}
 *
 * Parsing, checking, scaling and the tree → batch layout are the bench's (`@canopy/bench/tree`,
 * which imports only @canopy/core and a small JSON parser, so the page bundles nothing Node-only),
 * so a scaled workload here is exactly the bench's workload. What lives here is the page's own:
 * the editor's serialisation, size estimates for auto-scaling, and the node/page maps the tree
 * picture needs.
 */
import { CanopyError, type Batch } from '@canopy/core';
import {
  buildBatch as buildBenchBatch,
  checkTreeSpec as checkBenchTreeSpec,
  parseTreeJson as parseBenchTreeJson,
  treeOrder,
  type TreeSpec,
} from '@canopy/bench/tree';

export { scaleTree, type TreeConfig, type TreeNodeSpec, type TreeSpec, type WorkloadScale } from '@canopy/bench/tree';

/** Parse tree JSON text; errors name the line and field (`tree JSON line 9: nodes[3].parent: node 7 does not exist`). */
export function parseTreeJson(text: string): TreeSpec {
  try {
    return parseBenchTreeJson(text, 'tree JSON');
  } catch (e) {
    // A syntax error (the bench's 'bad-json', with line and column) is reported as "does not parse".
    if (e instanceof CanopyError && e.code === 'bad-json') throw new CanopyError('bad-tree-json', `tree JSON does not parse: ${e.message.replace(/^tree JSON: /, '')}`);
    throw e;
  }
}

/** Check a parsed value and return it as a TreeSpec (throws CanopyError naming the field). */
export function checkTreeSpec(value: unknown): TreeSpec {
  return checkBenchTreeSpec(value, (path, detail) => {
    throw new CanopyError('bad-tree-json', `${path === '' ? 'tree' : path}: ${detail}`);
  });
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
    spec.nodes.map((n) => `    ${JSON.stringify({ id: n.id, parent: n.parent, tokens: n.tokens, ...(n.draft !== undefined ? { draft: n.draft } : {}) })}`).join(',\n'),
    '  ],',
    '  "requests": [',
    spec.requests.map((r) => `    ${JSON.stringify({ leaf: r.leaf, ...(r.queries !== undefined ? { queries: r.queries } : {}) })}`).join(',\n'),
    '  ]',
    '}',
  ].join('\n');
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

/** The bench's batch of a tree, plus the maps from batch nodes to spec ids and from pages to nodes. */
export function buildBatch(spec: TreeSpec): BuiltBatch {
  const batch = buildBenchBatch(spec);
  const nodeIds = Int32Array.from(treeOrder(spec), (i) => spec.nodes[i].id);
  const { segBegin, segPage } = batch.tree!;
  const pageNode = new Int32Array(segPage.length);
  for (let k = 0; k + 1 < segBegin.length; k++) {
    for (let s = segBegin[k]; s < segBegin[k + 1]; s++) pageNode[segPage[s]] = k;
  }
  return { batch, nodeIds, pageNode };
}
