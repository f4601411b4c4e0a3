/**
 * A picture of the token tree and the work items a planner made for it.
 *
 * x: one column per request (depth-first order, so every subtree is a contiguous run of columns);
 * a node spans the columns of the requests below it. y: one band per tree depth; a node's box
 * height is proportional to its KV tokens (band height grows with the deepest level's largest node).
 * Work items are coloured boxes: the token range they read of each node (y) × the requests whose
 * queries they serve (x). A prefix plan reads a shared node in a few wide boxes; a per-request plan
 * stacks one narrow box per request on it. Each node says how many times its KV is read.
 */
import type { Plan } from '@canopy/core';
import { s, tip } from './dom.js';
import type { ItemPiece } from './runner.js';
import type { BuiltBatch } from './tree.js';

export interface TreeLayout {
  numCols: number;
  /** Column of each request. */
  requestCol: Int32Array;
  /** [first, last + 1) columns of each node; first = -1 for a node no request sees. */
  colBegin: Int32Array;
  colEnd: Int32Array;
  depth: Int32Array;
}

export function layoutTree(built: BuiltBatch): TreeLayout {
  const tree = built.batch.tree!;
  const N = tree.parent.length;
  const children: number[][] = Array.from({ length: N }, () => []);
  const roots: number[] = [];
  for (let n = 0; n < N; n++) (tree.parent[n] < 0 ? roots : children[tree.parent[n]]).push(n);
  const atNode: number[][] = Array.from({ length: N }, () => []);
  tree.requestLeaf.forEach((leaf, r) => atNode[leaf].push(r));
  const requestCol = new Int32Array(tree.requestLeaf.length);
  const colBegin = new Int32Array(N).fill(-1);
  const colEnd = new Int32Array(N).fill(-1);
  const depth = new Int32Array(N);
  let col = 0;
  // Iterative DFS (trees can be deep chains).
  const stack: Array<{ n: number; d: number; open: boolean }> = roots.reverse().map((n) => ({ n, d: 0, open: true }));
  while (stack.length) {
    const top = stack.pop()!;
    if (!top.open) {
      colEnd[top.n] = col;
      if (colEnd[top.n] === colBegin[top.n]) colBegin[top.n] = colEnd[top.n] = -1;
      continue;
    }
    depth[top.n] = top.d;
    colBegin[top.n] = col;
    for (const r of atNode[top.n]) requestCol[r] = col++;
    stack.push({ n: top.n, d: top.d, open: false });
    for (let i = children[top.n].length - 1; i >= 0; i--) stack.push({ n: children[top.n][i], d: top.d + 1, open: true });
  }
  return { numCols: col, requestCol, colBegin, colEnd, depth };
}

function itemColor(i: number): string {
  return `hsl(${(i * 137.508) % 360} 62% 56%)`;
}

/** Times each node's KV is read by a plan (Σ piece tokens / node tokens). */
export function nodeReads(built: BuiltBatch, pieces: ItemPiece[]): Float64Array {
  const tree = built.batch.tree!;
  const N = tree.parent.length;
  const read = new Float64Array(N);
  for (const p of pieces) read[p.node] += p.end - p.begin;
  for (let n = 0; n < N; n++) {
    let tokens = 0;
    for (let sg = tree.segBegin[n]; sg < tree.segBegin[n + 1]; sg++) tokens += tree.segTokens[sg];
    read[n] = tokens > 0 ? read[n] / tokens : 0;
  }
  return read;
}

export interface TreeViewOptions {
  title: string;
  width?: number;
}

export function treeView(built: BuiltBatch, plan: Plan, pieces: ItemPiece[], o: TreeViewOptions): SVGElement {
  const tree = built.batch.tree!;
  const N = tree.parent.length;
  const L = layoutTree(built);
  const tokens = new Int32Array(N);
  for (let n = 0; n < N; n++) for (let sg = tree.segBegin[n]; sg < tree.segBegin[n + 1]; sg++) tokens[n] += tree.segTokens[sg];
  const maxDepth = Math.max(0, ...L.depth);
  const depthMax = new Float64Array(maxDepth + 1);
  let maxTok = 1;
  for (let n = 0; n < N; n++) {
    depthMax[L.depth[n]] = Math.max(depthMax[L.depth[n]], tokens[n]);
    maxTok = Math.max(maxTok, tokens[n]);
  }
  // Band height: sqrt-scaled so a 64-token leaf under a 16k root stays visible.
  const bandH = Array.from(depthMax, (t) => Math.max(26, Math.round(170 * Math.sqrt(t / maxTok))));
  const gap = 8;
  const left = 8;
  const top = 22;
  const bandTop: number[] = [];
  let y = top;
  for (const b of bandH) {
    bandTop.push(y);
    y += b + gap;
  }
  const width = o.width ?? 900;
  const cw = Math.max(2, Math.min(48, (width - 2 * left) / Math.max(1, L.numCols)));
  const plotW = cw * L.numCols;
  const height = y + 4;
  const svgW = Math.max(width, plotW + 2 * left);
  const svg = s('svg', { class: 'treeview', width: svgW, height, viewBox: `0 0 ${svgW} ${height}`, role: 'img', 'aria-label': o.title });
  svg.append(s('text', { x: left, y: 14, class: 'chart-title' }, o.title));

  const nodeBox = (n: number) => {
    const h = Math.max(5, bandH[L.depth[n]] * (tokens[n] / depthMax[L.depth[n]]));
    return { x: left + L.colBegin[n] * cw, w: (L.colEnd[n] - L.colBegin[n]) * cw, y: bandTop[L.depth[n]], h };
  };

  // node backgrounds
  for (let n = 0; n < N; n++) {
    if (L.colBegin[n] < 0) continue;
    const b = nodeBox(n);
    svg.append(s('rect', { x: b.x + 0.5, y: b.y, width: Math.max(1, b.w - 1), height: b.h, class: 'node-bg' }));
  }
  // work items: for each piece, one box per contiguous run of request columns
  const qReq = plan.queryRequest;
  for (const p of pieces) {
    if (L.colBegin[p.node] < 0) continue;
    const b = nodeBox(p.node);
    const cols: number[] = [];
    for (let k = plan.itemQueryBegin[p.item]; k < plan.itemQueryBegin[p.item + 1]; k++) cols.push(L.requestCol[qReq[plan.itemQueries[k]]]);
    cols.sort((a, c) => a - c);
    const y0 = b.y + (p.begin / tokens[p.node]) * b.h;
    const y1 = b.y + (p.end / tokens[p.node]) * b.h;
    const nq = plan.itemQueryBegin[p.item + 1] - plan.itemQueryBegin[p.item];
    const tile = plan.tiles[plan.itemTile[p.item]];
    const label = `work item ${p.item}: node ${built.nodeIds[p.node]} tokens ${p.begin}–${p.end} (${p.end - p.begin}), ${nq} quer${nq === 1 ? 'y' : 'ies'}${tile ? `, tile ${tile.rows}×${tile.kvBlock}` : ''}`;
    for (let i = 0; i < cols.length; ) {
      let j = i;
      while (j + 1 < cols.length && cols[j + 1] <= cols[j] + 1) j++;
      const inset = Math.min(1, cw / 6);
      const r = s('rect', {
        x: left + cols[i] * cw + inset,
        y: y0 + 0.5,
        width: Math.max(0.5, (cols[j] - cols[i] + 1) * cw - 2 * inset),
        height: Math.max(0.8, y1 - y0 - 1),
        fill: itemColor(p.item),
        class: 'item',
      });
      r.append(tip(label));
      svg.append(r);
      i = j + 1;
    }
  }
  // node outlines and labels on top
  const reads = nodeReads(built, pieces);
  for (let n = 0; n < N; n++) {
    if (L.colBegin[n] < 0) continue;
    const b = nodeBox(n);
    const outline = s('rect', { x: b.x + 0.5, y: b.y, width: Math.max(1, b.w - 1), height: b.h, class: 'node' });
    outline.append(tip(`node ${built.nodeIds[n]}: ${tokens[n]} KV tokens, read ${fmtReads(reads[n])}`));
    svg.append(outline);
    // The longest label that fits the box (about 6.3 px per character at 11 px).
    const id = built.nodeIds[n];
    const labels = [`node ${id} · ${tokens[n]} tokens · read ${fmtReads(reads[n])}`, `#${id} · ${tokens[n]} tok · ${fmtReads(reads[n])}`, `${tokens[n]}t ${fmtReads(reads[n])}`, fmtReads(reads[n])];
    const fit = b.h >= 12 ? labels.find((l) => l.length * 6.3 + 8 <= b.w) : undefined;
    if (fit) svg.append(s('text', { x: b.x + 4, y: b.y + 12, class: 'node-label' }, fit));
  }
  return svg;
}

function fmtReads(r: number): string {
  return `${Number.isInteger(r) ? r : r.toFixed(2)}×`;
}
