import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { attentionFlops, numQueriesOf, queryKvLimits, randomKvCache, randomQueries, referenceAttention, requestKvTokens, uniqueKvTokens, validateBatch } from '@canopy/core';
import { combineOutputs, splitHybrid } from '../src/hybrid.js';
import type { BenchRun } from '../src/records.js';
import { batchRequestSpecs, buildBatch, parseTreeJson, scaleTree } from '../src/tree.js';
import { verificationQueries } from '../src/verify.js';
import { builtinWorkload, resolveWorkloadIds } from '../src/workloads.js';
import { runCli, tempDir, TINY } from './helpers.js';

// hybrid steps hold prefill chunks (quadratic work): smaller than TINY keeps each run a few ms
const SMALL = [...TINY.slice(0, 5), '--scale', '1/256', '--request-scale', '1/16'];

const here = fileURLToPath(new URL('.', import.meta.url));
const schema = JSON.parse(readFileSync(join(here, '..', 'schema', 'run.schema.json'), 'utf8'));
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);
const cfg = '"config": {"numQoHeads": 8, "numKvHeads": 2, "headDim": 16, "pageSize": 4, "kvDtype": "f32"}';

function errorOf(text: string): string {
  try {
    parseTreeJson(text, 'tree.json');
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

describe('tree JSON: prefill chunks and draft nodes', () => {
  const tree = (nodes: string, requests: string) => `{\n  ${cfg},\n  "nodes": [\n    ${nodes.split('\n').join(',\n    ')}\n  ],\n  "requests": [\n    ${requests.split('\n').join(',\n    ')}\n  ]\n}`;

  it('errors name the line and the field', () => {
    const nodes = '{"id": 0, "parent": null, "tokens": 10}\n{"id": 1, "parent": 0, "tokens": 6}';
    expect(errorOf(tree(nodes, '{"leaf": 1}\n{"leaf": 1, "queries": 17}'))).toBe(
      'tree.json line 9: requests[1].queries: 17 query tokens exceed the 16 KV tokens of the path to node 1 (a prefill chunk is the last tokens of its path)',
    );
    expect(errorOf(tree(nodes, '{"leaf": 1, "queries": 0}'))).toBe('tree.json line 8: requests[0].queries: must be a positive integer, got 0');
    expect(errorOf(tree(`${nodes}\n{"id": 2, "parent": 1, "tokens": 2, "draft": true}`, '{"leaf": 1}'))).toBe(
      'tree.json line 6: nodes[2].tokens: a draft node holds exactly one token (its draft token), got 2',
    );
    expect(errorOf(tree(`${nodes}\n{"id": 2, "parent": null, "tokens": 1, "draft": true}`, '{"leaf": 1}'))).toMatch(/line 6: nodes\[2\]\.parent: a draft node needs a parent/);
    expect(errorOf(tree(`${nodes}\n{"id": 2, "parent": 1, "tokens": 1, "draft": "yes"}`, '{"leaf": 1}'))).toMatch(/line 6: nodes\[2\]\.draft: must be true or false, got "yes"/);
    expect(errorOf(tree(`${nodes}\n{"id": 2, "parent": 1, "tokens": 1, "draft": true}`, '{"leaf": 2}'))).toMatch(
      /line 9: requests\[0\]\.leaf: node 2 is a draft node, which carries its own query; list no request for it/,
    );
    expect(errorOf(tree(nodes, '{"leaf": 1, "querys": 2}'))).toMatch(/line 8: requests\[0\]\.querys: unknown field \(expected one of leaf, queries\)/);
    expect(errorOf(`{${cfg}, "nodes": [{"id": 0, "parent": null, "tokens": 1}], "requests": []}`)).toMatch(/requests: must be a non-empty array \(or the tree must have draft nodes/);
  });

  it('prefill requests carry their chunk; every draft node gets a single-query request after the file’s, parents first', () => {
    const spec = parseTreeJson(
      `{${cfg}, "nodes": [{"id": 0, "parent": null, "tokens": 10}, {"id": 7, "parent": 5, "tokens": 1, "draft": true}, {"id": 5, "parent": 1, "tokens": 1, "draft": true}, {"id": 1, "parent": 0, "tokens": 6}, {"id": 6, "parent": 1, "tokens": 1, "draft": true}], "requests": [{"leaf": 1, "queries": 6}, {"leaf": 1}]}`,
    );
    expect(batchRequestSpecs(spec)).toEqual([
      { leaf: 1, queries: 6 },
      { leaf: 1, queries: 1 },
      { leaf: 5, queries: 1 },
      { leaf: 7, queries: 1 },
      { leaf: 6, queries: 1 },
    ]);
    const b = buildBatch(spec);
    validateBatch(b);
    expect(b.requests.map((r) => r.numQueries)).toEqual([6, 1, 1, 1, 1]);
    expect(b.requests.map(requestKvTokens)).toEqual([16, 16, 17, 18, 17]);
    // the chunk is causal over its last 6 tokens; a draft query sees its ancestors only (not its siblings)
    expect(Array.from(queryKvLimits(b))).toEqual([11, 12, 13, 14, 15, 16, 16, 17, 18, 17]);
    // drafts 5 and 6 hang off node 1: 10 + 6 + 3 draft tokens in all
    expect(uniqueKvTokens(b)).toBe(19);
  });
});

describe('hybrid workloads H1, H2, S1', () => {
  it('have the shapes of issue #7', () => {
    const h1 = buildBatch(builtinWorkload('H1'));
    validateBatch(h1);
    expect(h1.requests.length).toBe(129);
    const pre = h1.requests.filter((r) => r.numQueries > 1);
    expect(pre.map((r) => [requestKvTokens(r), r.numQueries])).toEqual([[16384, 2048]]);
    expect(h1.requests.filter((r) => r.numQueries === 1).every((r) => requestKvTokens(r) === 4096 + 512)).toBe(true);
    // the prefill chunk alone is ~515 GFLOP: 2048 queries × (14336 + mean 1024.5 visible)
    const prefillOnly = { ...h1, requests: pre, tree: undefined };
    expect(attentionFlops(prefillOnly) / 1e9).toBeCloseTo(515.5, 0);

    const h2 = buildBatch(builtinWorkload('H2'));
    validateBatch(h2);
    expect(h2.requests.filter((r) => r.numQueries === 512).map(requestKvTokens)).toEqual([16896, 16896, 16896, 16896]);
    expect(h2.requests.filter((r) => r.numQueries === 1)).toHaveLength(256);
    // prefill chunks pack with the decodes under W5's root: 16384 + 4 × 512 + 256 × 64 unique tokens
    expect(uniqueKvTokens(h2)).toBe(16384 + 4 * 512 + 256 * 64);

    const s1 = buildBatch(builtinWorkload('S1'));
    validateBatch(s1);
    expect(s1.requests).toHaveLength(8 + 8 * 64);
    expect(numQueriesOf(s1)).toBe(520);
    expect(uniqueKvTokens(s1)).toBe(4096 + 8 * 256 + 8 * 64);
    // deepest draft tokens see prefix + own 256 + 4 draft levels
    expect(Math.max(...s1.requests.map(requestKvTokens))).toBe(4096 + 256 + 4);
    for (const id of ['H1', 'H2', 'S1']) expect(builtinWorkload(id).config).toEqual({ numQoHeads: 32, numKvHeads: 8, headDim: 128, pageSize: 16, kvDtype: 'f16' });
  });

  it('--workload hybrid and all', () => {
    expect(resolveWorkloadIds(['hybrid'])).toEqual(['H1', 'H2', 'S1']);
    expect(resolveWorkloadIds(['all'])).toEqual(['W1', 'W2', 'W3', 'W4', 'W5', 'W6', 'W7', 'W8', 'H1', 'H2', 'S1']);
  });

  it('scaling keeps every prefill chunk (shrunk with the tokens) and the draft trees of kept requests', () => {
    const h1 = scaleTree(builtinWorkload('H1'), { tokens: 1 / 16, requests: 1 / 8 });
    const b = buildBatch(h1);
    validateBatch(b);
    expect(b.requests.filter((r) => r.numQueries > 1).map((r) => [requestKvTokens(r), r.numQueries])).toEqual([[1024, 128]]);
    expect(b.requests.filter((r) => r.numQueries === 1)).toHaveLength(16);
    const h2 = buildBatch(scaleTree(builtinWorkload('H2'), { tokens: 1 / 64, requests: 1 / 8 }));
    expect(h2.requests.filter((r) => r.numQueries > 1).map((r) => r.numQueries)).toEqual([8, 8, 8, 8]);
    const s1 = scaleTree(builtinWorkload('S1'), { tokens: 1 / 16, requests: 1 / 8 });
    const sb = buildBatch(s1);
    validateBatch(sb);
    // one request kept, with its whole 64-node draft tree (draft tokens stay one token each)
    expect(s1.requests).toHaveLength(1);
    expect(sb.requests).toHaveLength(65);
    expect(uniqueKvTokens(sb)).toBe(256 + 16 + 64);
    // decode-only workloads scale exactly as before
    expect(scaleTree(builtinWorkload('W1'), { tokens: 1, requests: 1 / 8 }).requests.map((r) => r.leaf)).toEqual([1, 10, 19, 28, 37, 46, 55, 64]);
  });

  it('verification samples prefill and decode queries alike on mixed batches', () => {
    const h1 = buildBatch(builtinWorkload('H1'));
    const { ids, mode } = verificationQueries(h1);
    expect(mode).toBe('mixed');
    expect(ids.length).toBe(64);
    const pre = Array.from(ids).filter((q) => q < 2048);
    expect(pre).toHaveLength(32);
    expect(pre[0]).toBe(0);
    expect(pre[31]).toBe(2047);
    expect(ids[63]).toBe(2175);
    for (let i = 1; i < 64; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]);
  });

  it('splitting into prefill and decode halves and putting the outputs back gives the whole batch’s answer', () => {
    const spec = scaleTree(builtinWorkload('H2'), { tokens: 1 / 256, requests: 1 / 32 });
    const batch = buildBatch({ ...spec, config: { ...spec.config, numQoHeads: 4, numKvHeads: 2, headDim: 16 } });
    const cache = randomKvCache(batch.numPages, batch.pageSize, batch.config, 3);
    const queries = randomQueries(numQueriesOf(batch), batch.config, 4);
    const split = splitHybrid(batch, queries)!;
    expect(split.map((p) => p.kind)).toEqual(['prefill', 'decode']);
    expect(split[0].requests).toEqual([0, 1, 2, 3]);
    const outs = split.map((p) => {
      const r = referenceAttention(p.batch, cache, p.queries);
      return { out: Float32Array.from(r.out), lse: Float32Array.from(r.lse) };
    });
    const both = combineOutputs(batch, split, outs, numQueriesOf(batch));
    const ref = referenceAttention(batch, cache, queries);
    let err = 0;
    for (let i = 0; i < ref.out.length; i++) err = Math.max(err, Math.abs(both.out[i] - ref.out[i]));
    expect(err).toBeLessThan(1e-6);
    expect(splitHybrid(buildBatch(builtinWorkload('W1')), new Float32Array(64 * 32 * 128))).toBeNull();
  });
});

describe('canopy-bench on hybrid workloads', () => {
  it('times fused, back-to-back and two-stream steps, checks the split plans, and writes them to JSON and HTML', async () => {
    const dir = tempDir();
    const r = await runCli(['--workload', 'hybrid', ...SMALL, '--json', join(dir, 'r.json'), '--html', join(dir, 'r.html')]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/H1 {2}prefill chunk \+ decodes/);
    expect(r.out).toMatch(/back to back +two streams +fused vs back to back/);
    expect(r.out).toMatch(/S1 {2}speculative decoding/);
    const run: BenchRun = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(validate(run) ? '' : JSON.stringify(validate.errors)).toBe('');
    expect(run.records).toHaveLength(6);
    for (const rec of run.records) {
      expect(rec.verification.passed, rec.workload).toBe(true);
      if (rec.workload === 'S1') {
        // draft queries are all single-query requests: no prefill half, no baselines
        expect(rec.hybrid).toBeUndefined();
        continue;
      }
      const h = rec.hybrid!;
      expect(h.verification?.passed).toBe(true);
      expect(h.serialUs!.iters).toBe(3);
      expect(h.concurrentUs!.iters).toBe(3);
      expect(h.fusedSpeedupVsSerial).toBeCloseTo(h.serialUs!.median / rec.timeUs!.median, 9);
      expect(h.prefillRequests).toBe(rec.workload === 'H1' ? 1 : 4);
      expect(h.prefillQueries + h.decodeQueries).toBe(rec.queries);
    }
    expect(readFileSync(join(dir, 'r.html'), 'utf8')).toMatch(/fused vs back to back/);
  }, 120_000);

  it('--hybrid-layout separate plans prefill and decode queries in separate items (verified, recorded in the JSON)', async () => {
    const dir = tempDir();
    const r = await runCli(['--workload', 'H2', ...SMALL, '--planner', 'prefix', '--hybrid-layout', 'separate', '--json', join(dir, 'r.json')]);
    expect(r.code, r.err).toBe(0);
    const run: BenchRun = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(validate(run) ? '' : JSON.stringify(validate.errors)).toBe('');
    expect(run.options).toMatchObject({ hybridLayout: 'separate' });
    const rec = run.records[0];
    expect(rec.verification.passed).toBe(true);
    // one plan holding exactly the prefill plan's and the decode plan's items
    expect(rec.workItems).toBe(rec.hybrid!.workItems.prefill + rec.hybrid!.workItems.decode);
    const bad = await runCli(['--workload', 'H2', ...SMALL, '--hybrid-layout', 'mixed']);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--hybrid-layout must be packed or separate, got "mixed"/);
  }, 120_000);

  it('--dump lists every request of a draft-tree step, draft queries included', async () => {
    const dir = tempDir();
    const r = await runCli(['--workload', 'S1', ...SMALL, '--planner', 'prefix', '--dump', dir]);
    expect(r.code, r.err).toBe(0);
    const reqs = JSON.parse(readFileSync(join(dir, 'requests.json'), 'utf8')) as Array<{ leaf: number; numQueries: number; pageIds: number[] }>;
    expect(reqs).toHaveLength(65);
    expect(reqs.every((q) => Number.isInteger(q.leaf) && q.numQueries === 1)).toBe(true);
    // draft node ids follow their request's context node in the generated file
    expect(reqs[1].leaf).toBe(reqs[0].leaf + 1);
  });

  it('a backend without timeGroup gets a note; a wrong split plan gets no time and exit code 1', async () => {
    const fixture = join(here, 'fixtures', 'hybrid-backends.ts');
    const dir = tempDir();
    const r = await runCli(['--workload', 'H1', '--backend-module', fixture, '--backend', 'nogroup,wrongsplit', ...SMALL.slice(2), '--planner', 'perRequest', '--json', join(dir, 'r.json')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/ERROR H1 wrongsplit perRequest prefill\+decode baselines: wrong result from the prefill\/decode plans/);
    const run: BenchRun = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(validate(run) ? '' : JSON.stringify(validate.errors)).toBe('');
    for (const rec of run.records) {
      // the fused plans are right on both
      expect(rec.verification.passed).toBe(true);
      expect(rec.hybrid!.serialUs).toBeNull();
      expect(rec.hybrid!.note).toMatch(rec.backend === 'nogroup' ? /nogroup has no timeGroup/ : /^wrong result/);
    }
  }, 120_000);
});
