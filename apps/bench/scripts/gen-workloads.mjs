// Writes the built-in workload trees to apps/bench/workloads/*.json (committed; the bench embeds them).
// Run: node apps/bench/scripts/gen-workloads.mjs. The tree JSON schema is the one `--tree FILE` reads.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'workloads');
const config = { numQoHeads: 32, numKvHeads: 8, headDim: 128, pageSize: 16, kvDtype: 'f16' };

function builder() {
  const nodes = [];
  const requests = [];
  return {
    nodes,
    requests,
    node(parent, tokens, extra = {}) {
      nodes.push({ id: nodes.length, parent, tokens, ...extra });
      return nodes.length - 1;
    },
    request(leaf, queries = 1) {
      requests.push(queries === 1 ? { leaf } : { leaf, queries });
    },
  };
}

function write(id, name, description, b) {
  const parent = new Map(b.nodes.map((n) => [n.id, n]));
  let unique = 0;
  for (const n of b.nodes) unique += n.tokens;
  let total = 0;
  const all = [...b.requests, ...b.nodes.filter((n) => n.draft).map((n) => ({ leaf: n.id }))];
  for (const r of all) for (let n = parent.get(r.leaf); n; n = n.parent === null ? undefined : parent.get(n.parent)) total += n.tokens;
  const queries = all.reduce((a, r) => a + (r.queries ?? 1), 0);
  // One node / request per line keeps the files readable and diffable.
  const text =
    `{\n  "name": ${JSON.stringify(name)},\n  "description": ${JSON.stringify(description)},\n` +
    `  "config": ${JSON.stringify(config)},\n  "nodes": [\n` +
    b.nodes.map((n) => `    ${JSON.stringify(n)}`).join(',\n') +
    `\n  ],\n  "requests": [\n` +
    b.requests.map((r) => `    ${JSON.stringify(r)}`).join(',\n') +
    `\n  ]\n}\n`;
  writeFileSync(join(out, `${id}.json`), text);
  console.log(`${id}: ${all.length} requests (${queries} queries), ${b.nodes.length} nodes, unique KV tokens ${unique}, without sharing ${total}`);
}

{
  const b = builder();
  const root = b.node(null, 4096);
  for (let r = 0; r < 64; r++) b.request(b.node(root, 512));
  write('W1', 'shared system prompt', 'root of 4096 tokens shared by 64 requests, each with its own 512-token leaf', b);
}
{
  const b = builder();
  const root = b.node(null, 1024);
  for (let d = 0; d < 8; d++) {
    const doc = b.node(root, 4096);
    for (let r = 0; r < 16; r++) b.request(b.node(doc, 256));
  }
  write('W2', 'shared documents', 'root of 1024 tokens; 8 document nodes of 4096 tokens, each under 16 requests with their own 256-token leaves', b);
}
{
  const b = builder();
  const root = b.node(null, 4000);
  const grow = (parent, depth) => {
    for (let c = 0; c < 4; c++) {
      if (depth === 3) b.request(b.node(parent, 128));
      else grow(b.node(parent, 256), depth + 1);
    }
  };
  grow(root, 1);
  write('W3', 'tree of thought', 'root of 4000 tokens, then a full 4-ary tree of depth 3: 256 tokens per internal node, 128 per leaf (64 requests)', b);
}
{
  const b = builder();
  for (let r = 0; r < 64; r++) b.request(b.node(null, 4608));
  write('W4', 'no sharing', '64 independent requests of 4608 tokens (the control: prefix planning must not lose here)', b);
}
{
  const b = builder();
  const root = b.node(null, 16384);
  for (let r = 0; r < 256; r++) b.request(b.node(root, 64));
  write('W5', 'long shared context', 'root of 16384 tokens shared by 256 requests, each with its own 64-token leaf', b);
}
// Real-world shaped workloads: parameters and sources in workloads/README.md.
{
  const b = builder();
  const sys = b.node(null, 1024);
  for (let g = 0; g < 8; g++) {
    const shared = b.node(sys, 2560);
    for (let r = 0; r < 8; r++) b.request(b.node(shared, 4006));
  }
  write('W6', 'chat serving', 'chat serving: 7590-token contexts (Mooncake trace mean input) of which 47% is shared, near the trace\'s ~50% prefix-cache hit ratio: a 1024-token system prompt under all 64 requests, 8 shared 2560-token contexts under 8 requests each, 4006 tokens of each request\'s own', b);
}
{
  const b = builder();
  const inst = b.node(null, 512);
  for (let d = 0; d < 8; d++) {
    const first = b.node(inst, 1024);
    for (let e = 0; e < 4; e++) {
      const second = b.node(first, 1024);
      for (let r = 0; r < 4; r++) b.request(b.node(second, 96));
    }
  }
  write('W7', 'RAG document reuse', 'retrieval-augmented generation: 512-token instructions, top-2 retrieval of 1024-token chunks with skewed reuse (8 first chunks x 4 second chunks, 4 questions of 96 tokens each)', b);
}
{
  const b = builder();
  const prompt = b.node(null, 1024);
  for (let i = 0; i < 5; i++) {
    const s1 = b.node(prompt, 128);
    for (let j = 0; j < 5; j++) {
      const s2 = b.node(s1, 128);
      for (let k = 0; k < 5; k++) b.request(b.node(s2, 64));
    }
  }
  write('W8', 'agent tree search', 'tree-of-thought search: a 1024-token few-shot prompt, breadth 5 for 3 steps (128, 128, 64 tokens per thought): 125 live branches', b);
}
// Hybrid workloads (prefill chunks beside decodes; speculative decoding): choices in workloads/README.md.
{
  const b = builder();
  // the prefill request: 14336 tokens of context, then its 2048-token chunk (its queries)
  const ctx = b.node(null, 14336);
  b.request(b.node(ctx, 2048), 2048);
  const root = b.node(null, 4096);
  for (let r = 0; r < 128; r++) b.request(b.node(root, 512));
  write('H1', 'prefill chunk + decodes', 'one 2048-token prefill chunk on a 16384-token context (a request whose last 2048 KV tokens are its queries) beside 128 decodes sharing a 4096-token prefix with their own 512-token leaves', b);
}
{
  const b = builder();
  const root = b.node(null, 16384);
  // four prefill chunks under W5's shared root: each its own 512-token leaf holding its chunk
  for (let p = 0; p < 4; p++) b.request(b.node(root, 512), 512);
  for (let r = 0; r < 256; r++) b.request(b.node(root, 64));
  write('H2', 'prefill chunks + long shared context', "W5's tree (16384-token root, 256 decodes with their own 64-token leaves) plus four 512-token prefill chunks under the same root, each its own 512-token leaf", b);
}
{
  const b = builder();
  const root = b.node(null, 4096);
  // draft tree per request: 4 candidates, then 3, 2 and 1 continuations each (4 + 12 + 24 + 24 = 64 nodes)
  const fanout = [4, 3, 2, 1];
  for (let r = 0; r < 8; r++) {
    const own = b.node(root, 256);
    b.request(own);
    let level = [own];
    for (const f of fanout) {
      const next = [];
      for (const p of level) for (let c = 0; c < f; c++) next.push(b.node(p, 1, { draft: true }));
      level = next;
    }
  }
  write('S1', 'speculative decoding (draft trees)', '8 requests sharing a 4096-token prefix, each with 256 tokens of its own and a 64-token draft tree (branching 4, 3, 2, 1 over 4 levels); every draft token carries a query that sees its ancestors only', b);
}
