/**
 * Human-readable account of a plan over its token tree: the tree, each node's group (queries and
 * rows), its KV split into chunks and rows, the tiles, and the merge lists. Runs of sibling nodes
 * that look alike are printed once. Pure: returns a string (`canopy-bench plan --explain`).
 */
import type { Plan, TokenTree } from '@canopy/core';
import { COST_DEFAULTS } from './cost.js';

interface NodeLine {
  key: string;
  text: string;
}

function fmtRange(a: number, b: number): string {
  return `[${a}, ${b})`;
}

function compactList(xs: number[], max = 8): string {
  if (xs.length <= max) return xs.join(', ');
  return `${xs.slice(0, max - 2).join(', ')}, …, ${xs[xs.length - 1]} (${xs.length})`;
}

export function explainPlan(plan: Plan, tree: TokenTree): string {
  const N = tree.numNodes;
  const g = plan.config.numQoHeads / plan.config.numKvHeads;
  const out: string[] = [];
  const depth = new Int32Array(N);
  const here = new Int32Array(N);
  const sub = new Int32Array(N);
  for (let k = 0; k < N; k++) depth[k] = tree.parent[k] < 0 ? 0 : depth[tree.parent[k]] + 1;
  for (let q = 0; q < tree.queryNode.length; q++) here[tree.queryNode[q]]++;
  sub.set(here);
  for (let k = N - 1; k >= 0; k--) if (tree.parent[k] >= 0) sub[tree.parent[k]] += sub[k];

  const itemTokens = (i: number): number => {
    let t = 0;
    for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) t += plan.segTokens[s];
    return t;
  };
  const itemsOf: number[][] = Array.from({ length: N }, () => []);
  const orphan: number[] = [];
  for (let i = 0; i < plan.numItems; i++) {
    const k = plan.itemNode ? plan.itemNode[i] : -1;
    if (k >= 0 && k < N) itemsOf[k].push(i);
    else orphan.push(i);
  }
  let totalTok = 0;
  for (let k = 0; k < N; k++) totalTok += tree.nodeTokens[k];

  out.push(`${plan.planner} plan: ${plan.numItems} work items, ${plan.numQueries} queries, ${plan.numPartials} partial states`);
  out.push(`config: ${plan.config.numQoHeads} query heads / ${plan.config.numKvHeads} KV heads (GQA ${g}), head dim ${plan.config.headDim}, ${plan.config.kvDtype} KV`);
  out.push(`tiles (rows × kvBlock): ${plan.tiles.map((t, i) => `#${i} ${t.rows}×${t.kvBlock}`).join(', ')}`);
  out.push('');
  out.push(`token tree: ${N} nodes, ${totalTok} KV tokens`);

  if (!plan.itemNode) {
    // A plan without node ids (perRequest): its items per request, alike requests collapsed.
    out.push(explainPerRequest(plan, g, itemTokens).join('\n'));
  } else {
    // One line per node; alike consecutive siblings collapse.
    const lines: NodeLine[] = [];
    for (let k = 0; k < N; k++) {
      const items = itemsOf[k];
      const chunks = new Map<number, number[]>();
      for (const i of items) {
        const l = chunks.get(plan.itemPos[i]);
        if (l) l.push(i);
        else chunks.set(plan.itemPos[i], [i]);
      }
      const nodeEnd = tree.nodePos[k] + tree.nodeTokens[k];
      const pages = tree.segBegin[k + 1] - tree.segBegin[k];
      const head = `${'  '.repeat(depth[k])}node ${k}${tree.parent[k] >= 0 ? ` (parent ${tree.parent[k]})` : ' (root)'}: KV ${fmtRange(tree.nodePos[k], nodeEnd)} = ${tree.nodeTokens[k]} tokens in ${pages} page segments; ${sub[k]} quer${sub[k] === 1 ? 'y' : 'ies'} below${here[k] ? ` (${here[k]} sit here)` : ''}`;
      let body: string;
      if (items.length === 0) {
        body = `${'  '.repeat(depth[k] + 1)}group: none of its own (its KV is read inside its children's items: fused)`;
      } else {
        const starts = [...chunks.keys()].sort((a, b) => a - b);
        const first = chunks.get(starts[0])!;
        const i0 = first[0];
        const colStart = plan.itemPos[i0];
        const fused = colStart < tree.nodePos[k] ? `, carries ancestors' KV ${fmtRange(colStart, tree.nodePos[k])} (fused)` : '';
        const groupQ = new Set<number>();
        for (const i of first) for (let x = plan.itemQueryBegin[i]; x < plan.itemQueryBegin[i + 1]; x++) groupQ.add(plan.itemQueries[x]);
        const rows = groupQ.size * g;
        const lens = starts.map((p) => itemTokens(chunks.get(p)![0]));
        const uniqLens = [...new Set(lens)];
        const tileCount = new Map<string, number>();
        const rowCount = new Map<number, number>();
        for (const i of items) {
          const t = plan.tiles[plan.itemTile[i]];
          const key = `${t.rows}×${t.kvBlock}`;
          tileCount.set(key, (tileCount.get(key) ?? 0) + 1);
          const r = (plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i]) * g;
          rowCount.set(r, (rowCount.get(r) ?? 0) + 1);
        }
        const ind = '  '.repeat(depth[k] + 1);
        body =
          `${ind}group: ${groupQ.size} quer${groupQ.size === 1 ? 'y' : 'ies'} × ${g} = ${rows} rows per KV head${fused}\n` +
          `${ind}split: ${starts.length} KV chunk${starts.length > 1 ? 's' : ''} of ${uniqLens.join('/')} tokens × ${first.length} row block${first.length > 1 ? 's' : ''} = ${items.length} item${items.length === 1 ? '' : 's'} (item${items.length === 1 ? '' : 's'} ${compactList(items, 6)})\n` +
          `${ind}tiles: ${[...tileCount].map(([t, n]) => `${n}× ${t}`).join(', ')}; rows per item: ${[...rowCount].map(([r, n]) => `${n}× ${r}`).join(', ')}`;
      }
      // key for collapsing alike siblings: everything but ids and positions
      const key = `${depth[k]}|${tree.nodeTokens[k]}|${pages}|${sub[k]}|${here[k]}|${body.replace(/items? \(items? [^)]*\)/, '').replace(/\[\d+, \d+\)/g, '')}`;
      lines.push({ key, text: `${head}\n${body}` });
    }
    // Print depth-first; among a node's children, runs of alike subtrees (same shape, groups,
    // splits and tiles) print once with a count.
    const kids: number[][] = Array.from({ length: N }, () => []);
    const roots: number[] = [];
    for (let k = 0; k < N; k++) (tree.parent[k] >= 0 ? kids[tree.parent[k]] : roots).push(k);
    const sigId = new Map<string, number>();
    const sig = new Int32Array(N);
    for (let k = N - 1; k >= 0; k--) {
      const s = `${lines[k].key}[${kids[k].map((c) => sig[c]).join(',')}]`;
      let id = sigId.get(s);
      if (id === undefined) sigId.set(s, (id = sigId.size));
      sig[k] = id;
    }
    const printList = (list: number[]): void => {
      for (let a = 0; a < list.length; ) {
        let e = a + 1;
        while (e < list.length && sig[list[e]] === sig[list[a]]) e++;
        printNode(list[a]);
        if (e - a > 1) {
          const others = list.slice(a + 1, e);
          out.push(`${'  '.repeat(depth[list[a]])}… ${e - a - 1} more like node ${list[a]}${kids[list[a]].length ? ' and its subtree' : ''} (nodes ${compactList(others, 6)})`);
        }
        a = e;
      }
    };
    const printNode = (k: number): void => {
      out.push(lines[k].text);
      printList(kids[k]);
    };
    printList(roots);
  }
  if (orphan.length && plan.itemNode) out.push(`items without a node: ${compactList(orphan)}`);

  // merge lists
  out.push('');
  const hist = new Map<number, number>();
  let maxP = 0;
  for (let q = 0; q < plan.numQueries; q++) {
    const n = plan.mergeBegin[q + 1] - plan.mergeBegin[q];
    if (n > maxP) maxP = n;
    hist.set(n, (hist.get(n) ?? 0) + 1);
  }
  out.push(`merge: partials per query → queries: ${[...hist].sort((a, b) => a[0] - b[0]).map(([n, c]) => `${n}→${c}`).join(', ')} (${maxP > COST_DEFAULTS.twoLevelMergeAt ? `two levels: some query has more than ${COST_DEFAULTS.twoLevelMergeAt}` : 'one pass'}; lists in KV order, root → leaf)`);
  const slotItem = new Int32Array(plan.numPartials).fill(-1);
  for (let i = 0; i < plan.numItems; i++) {
    for (let x = plan.itemQueryBegin[i]; x < plan.itemQueryBegin[i + 1]; x++) slotItem[plan.itemPartialBase[i] + x - plan.itemQueryBegin[i]] = i;
  }
  const show = new Set<number>([0, Math.floor(plan.numQueries / 2), plan.numQueries - 1].filter((q) => q >= 0 && q < plan.numQueries));
  for (const q of show) {
    const parts: string[] = [];
    for (let x = plan.mergeBegin[q]; x < plan.mergeBegin[q + 1]; x++) {
      const s = plan.mergeSlots[x];
      const i = slotItem[s];
      const node = plan.itemNode ? plan.itemNode[i] : -1;
      parts.push(`slot ${s} (item ${i}${node >= 0 ? `, node ${node}` : ''}, KV ${fmtRange(plan.itemPos[i], plan.itemPos[i] + itemTokens(i))})`);
    }
    out.push(`  query ${q} (request ${plan.queryRequest[q]}, sees ${plan.queryKvLimit[q]} tokens): ${parts.length <= 12 ? parts.join(' + ') : `${parts.slice(0, 10).join(' + ')} + … (${parts.length} partials)`}`);
  }
  return out.join('\n');
}

function explainPerRequest(plan: Plan, g: number, itemTokens: (i: number) => number): string[] {
  const out: string[] = ['items per request (no shared groups: every request reads its whole KV):'];
  const byReq = new Map<number, number[]>();
  for (let i = 0; i < plan.numItems; i++) {
    const r = plan.queryRequest[plan.itemQueries[plan.itemQueryBegin[i]]];
    const l = byReq.get(r);
    if (l) l.push(i);
    else byReq.set(r, [i]);
  }
  let prevKey = '';
  let run: number[] = [];
  const flush = (): void => {
    if (run.length > 1) out.push(`  … ${run.length - 1} more requests alike (${compactList(run.slice(1), 6)})`);
  };
  for (const [r, items] of [...byReq].sort((a, b) => a[0] - b[0])) {
    const chunks = new Set(items.map((i) => plan.itemPos[i]));
    const lens = [...new Set(items.map(itemTokens))];
    const tiles = [...new Set(items.map((i) => `${plan.tiles[plan.itemTile[i]].rows}×${plan.tiles[plan.itemTile[i]].kvBlock}`))];
    const q = new Set<number>();
    for (const i of items) for (let x = plan.itemQueryBegin[i]; x < plan.itemQueryBegin[i + 1]; x++) q.add(plan.itemQueries[x]);
    const key = `${chunks.size}|${lens.join('/')}|${tiles.join(',')}|${q.size}|${items.length}`;
    if (key === prevKey) {
      run.push(r);
      continue;
    }
    flush();
    run = [r];
    prevKey = key;
    out.push(
      `  request ${r}: ${q.size} quer${q.size === 1 ? 'y' : 'ies'} × ${g} = ${q.size * g} rows per KV head; ${chunks.size} KV chunk${chunks.size === 1 ? '' : 's'} of ${lens.join('/')} tokens × ${items.length / chunks.size} row block${items.length / chunks.size === 1 ? '' : 's'}; tiles ${tiles.join(', ')}`,
    );
  }
  flush();
  return out;
}
