import { describe, expect, it } from 'vitest';
import { kvBytesPerToken, uniqueKvTokens, validateBatch, visibleKvTokens, requestKvTokens } from '@canopy/core';
import { buildBatch, parseTreeJson, scaleTree } from '../src/tree.js';
import { builtinWorkload, resolveWorkloadIds, sweepTree, planStressTree, modelPreset } from '../src/workloads.js';

const cfg = '"config": {"numQoHeads": 32, "numKvHeads": 8, "headDim": 128, "pageSize": 16, "kvDtype": "f16"}';

function errorOf(text: string): string {
  try {
    parseTreeJson(text, 'tree.json');
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

describe('tree JSON errors name the line and the field', () => {
  it('syntax error: line and column', () => {
    const text = `{\n  ${cfg},\n  "nodes": [\n    {"id": 0, "parent": null, "tokens": 10},,\n  ],\n  "requests": [{"leaf": 0}]\n}`;
    const msg = errorOf(text);
    expect(msg).toMatch(/^tree\.json: line 4, column \d+: Unexpected token ","/);
  });
  it('unterminated input', () => {
    expect(errorOf(`{\n  ${cfg},\n  "nodes": [`)).toMatch(/line 3, column \d+: Unexpected end of input/);
  });
  it('parent that does not exist', () => {
    const text = `{\n  ${cfg},\n  "nodes": [\n    {"id": 0, "parent": null, "tokens": 10},\n    {"id": 1, "parent": 0, "tokens": 5},\n    {"id": 2, "parent": 0, "tokens": 5},\n    {"id": 3, "parent": 7, "tokens": 5}\n  ],\n  "requests": [{"leaf": 3}]\n}`;
    expect(errorOf(text)).toBe('tree.json line 7: nodes[3].parent: node 7 does not exist');
  });
  it('bad field values and unknown fields', () => {
    const node = (n: string) => `{\n  ${cfg},\n  "nodes": [\n    ${n}\n  ],\n  "requests": [{"leaf": 0}]\n}`;
    expect(errorOf(node('{"id": 0, "parent": null, "tokens": -3}'))).toBe('tree.json line 4: nodes[0].tokens: must be a positive integer, got -3');
    expect(errorOf(node('{"id": 0, "parent": null, "tokens": 4, "tokns": 3}'))).toMatch(/line 4: nodes\[0\]\.tokns: unknown field/);
    expect(errorOf(node('{"id": 0, "parent": 0, "tokens": 4}'))).toMatch(/nodes\[0\]\.parent: node 0 cannot be its own parent/);
    expect(errorOf(node('{"id": 0, "parent": "root", "tokens": 4}'))).toMatch(/nodes\[0\]\.parent: must be a node id or null/);
  });
  it('config, requests and cycles', () => {
    expect(errorOf(`{"config": {"numQoHeads": 30, "numKvHeads": 8, "headDim": 128, "pageSize": 16, "kvDtype": "f16"}, "nodes": [{"id": 0, "parent": null, "tokens": 1}], "requests": [{"leaf": 0}]}`)).toMatch(
      /line 1: config\.numQoHeads: 30 is not a multiple of numKvHeads \(8\)/,
    );
    expect(errorOf(`{${cfg.replace('"f16"', '"bf16"')}, "nodes": [{"id": 0, "parent": null, "tokens": 1}], "requests": [{"leaf": 0}]}`)).toMatch(/config\.kvDtype: must be "f16" or "f32", got "bf16"/);
    expect(errorOf(`{${cfg}, "nodes": [{"id": 0, "parent": null, "tokens": 1}], "requests": [{"leaf": 4}]}`)).toMatch(/requests\[0\]\.leaf: node 4 does not exist/);
    expect(errorOf(`{${cfg}, "nodes": [{"id": 0, "parent": 1, "tokens": 1}, {"id": 1, "parent": 0, "tokens": 1}], "requests": [{"leaf": 0}]}`)).toMatch(/nodes\[0\]\.parent: the parent chain of node 0 loops/);
    expect(errorOf(`{${cfg}, "nodes": [{"id": 0, "parent": null, "tokens": 1}, {"id": 0, "parent": null, "tokens": 1}], "requests": [{"leaf": 0}]}`)).toMatch(/nodes\[1\]\.id: duplicate id 0 \(also nodes\[0\]\)/);
    expect(errorOf(`{${cfg}, "nodes": [], "requests": []}`)).toMatch(/nodes: must be a non-empty array/);
    expect(errorOf(`[1, 2]`)).toMatch(/\(top level\): the tree must be a JSON object/);
  });
});

describe('paged layout', () => {
  it('each node owns its pages; the last page of a node is partly filled; requests concatenate their path', () => {
    const spec = parseTreeJson(
      `{${cfg}, "nodes": [{"id": 5, "parent": null, "tokens": 40}, {"id": 9, "parent": 5, "tokens": 3}, {"id": 2, "parent": 5, "tokens": 17}], "requests": [{"leaf": 9}, {"leaf": 2}, {"leaf": 5}]}`,
    );
    const b = buildBatch(spec);
    validateBatch(b);
    // root: pages 0,1,2 (16+16+8); node 9: page 3 (3); node 2: pages 4,5 (16+1)
    expect(b.numPages).toBe(6);
    expect(Array.from(b.requests[0].pageIds)).toEqual([0, 1, 2, 3]);
    expect(Array.from(b.requests[0].pageTokens)).toEqual([16, 16, 8, 3]);
    expect(Array.from(b.requests[1].pageIds)).toEqual([0, 1, 2, 4, 5]);
    expect(Array.from(b.requests[1].pageTokens)).toEqual([16, 16, 8, 16, 1]);
    expect(Array.from(b.requests[2].pageTokens)).toEqual([16, 16, 8]);
    expect(b.requests.every((r) => r.numQueries === 1)).toBe(true);
    expect(Array.from(b.tree!.parent)).toEqual([-1, 0, 0]);
    expect(Array.from(b.tree!.requestLeaf)).toEqual([1, 2, 0]);
    expect(uniqueKvTokens(b)).toBe(60);
  });

  it('a child listed before its parent still gets parent-first numbering', () => {
    const spec = parseTreeJson(`{${cfg}, "nodes": [{"id": 1, "parent": 0, "tokens": 4}, {"id": 0, "parent": null, "tokens": 20}], "requests": [{"leaf": 1}]}`);
    const b = buildBatch(spec);
    validateBatch(b);
    expect(Array.from(b.tree!.parent)).toEqual([-1, 0]);
    expect(Array.from(b.requests[0].pageTokens)).toEqual([16, 4, 4]);
  });

  it('built-in W1–W5 match the canonical table (unique tokens and tokens without sharing)', () => {
    const table: Record<string, [number, number, number]> = {
      W1: [64, 36_864, 294_912],
      W2: [128, 66_560, 688_128],
      W3: [64, 17_312, 296_960],
      W4: [64, 294_912, 294_912],
      W5: [256, 32_768, 4_210_688],
    };
    for (const [id, [requests, unique, total]] of Object.entries(table)) {
      const b = buildBatch(builtinWorkload(id));
      validateBatch(b);
      expect(b.requests.length, id).toBe(requests);
      expect(uniqueKvTokens(b), id).toBe(unique);
      expect(visibleKvTokens(b), id).toBe(total);
      expect(kvBytesPerToken(b.config), id).toBe(4096);
    }
  });

  it('W6–W8, the sweep family and the planner stress tree are valid batches', () => {
    for (const id of ['W6', 'W7', 'W8']) validateBatch(buildBatch(builtinWorkload(id)));
    const c = builtinWorkload('W1').config;
    const s = buildBatch(sweepTree({ prefix: 100, requests: 6, branching: 3, mid: 20, leaf: 5 }, c));
    validateBatch(s);
    expect(s.requests.length).toBe(6);
    expect(s.requests.map(requestKvTokens)).toEqual([125, 125, 125, 125, 125, 125]);
    expect(uniqueKvTokens(s)).toBe(100 + 3 * 20 + 6 * 5);
    const noPrefix = buildBatch(sweepTree({ prefix: 0, requests: 4, branching: 1, mid: 0, leaf: 7 }, c));
    expect(uniqueKvTokens(noPrefix)).toBe(28);
    const p = buildBatch(planStressTree(c));
    validateBatch(p);
    expect(p.requests.length).toBe(1024);
  });

  it('scaling shrinks tokens, keeps an even spread of requests (first and last) and drops unused nodes', () => {
    const w2 = builtinWorkload('W2');
    const s = scaleTree(w2, { tokens: 1 / 16, requests: 1 / 4 });
    expect(s.requests.length).toBe(32);
    expect(s.requests[0]).toEqual(w2.requests[0]);
    expect(s.requests[31]).toEqual(w2.requests[127]);
    const b = buildBatch(s);
    validateBatch(b);
    // root 64 + 8 documents of 256 + 32 leaves of 16
    expect(uniqueKvTokens(b)).toBe(64 + 8 * 256 + 32 * 16);
    expect(s.nodes.length).toBe(1 + 8 + 32);
  });

  it('workload ids and model presets', () => {
    expect(resolveWorkloadIds(['w1,W3'])).toEqual(['W1', 'W3']);
    expect(resolveWorkloadIds(['all'])).toHaveLength(11);
    expect(() => resolveWorkloadIds(['W9'])).toThrow(/unknown workload "W9"/);
    expect(modelPreset('Llama-3-70B')).toMatchObject({ numQoHeads: 64, numKvHeads: 8, headDim: 128 });
    expect(modelPreset('qwen2-7b')).toMatchObject({ numQoHeads: 28, numKvHeads: 4 });
    expect(() => modelPreset('gpt-5')).toThrow(/unknown model "gpt-5"/);
  });
});
