import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { attentionFlops, kvBytesPerToken, uniqueKvTokens, visibleKvTokens } from '@canopy/core';
import type { BenchRun } from '../src/records.js';
import { buildBatch, scaleTree } from '../src/tree.js';
import { builtinWorkload } from '../src/workloads.js';
import { runCli, tempDir, TINY } from './helpers.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const schema = JSON.parse(readFileSync(join(here, '..', 'schema', 'run.schema.json'), 'utf8'));
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);

function schemaErrors(doc: unknown): string {
  return validate(doc) ? '' : JSON.stringify(validate.errors, null, 1);
}

describe('argument errors', () => {
  it('unknown workload', async () => {
    const r = await runCli(['--workload', 'W9', '--backend', 'reference']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown workload "W9" \(built in: W1, W2, W3, W4, W5, W6, W7, W8/);
    expect(r.out).toBe('');
  });
  it('unknown backend', async () => {
    const r = await runCli(['--workload', 'W1', '--backend', 'tpu', ...TINY.slice(2)]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown backend "tpu" \(known: auto, all, reference/);
  });
  it('unknown planner, option, command and bad numbers', async () => {
    expect((await runCli(['--planner', 'greedy'])).err).toMatch(/unknown planner "greedy"/);
    const opt = await runCli(['--wrkload', 'W1']);
    expect(opt.code).toBe(2);
    expect(opt.err).toMatch(/Unknown option '--wrkload'/);
    expect((await runCli(['bench'])).err).toMatch(/unknown command "bench"/);
    expect((await runCli(['--iters', 'ten'])).err).toMatch(/--iters must be an integer, got "ten"/);
    expect((await runCli(['--scale', '2'])).err).toMatch(/--scale must be a factor in \(0, 1\]/);
    expect((await runCli(['--model', 'gpt-5'])).err).toMatch(/unknown model "gpt-5"/);
    expect((await runCli(['compare', 'a.json'])).err).toMatch(/compare needs two JSON files/);
  });
  it('bad tree JSON names the file, line and field', async () => {
    const dir = tempDir();
    const f = join(dir, 'mytree.json');
    writeFileSync(
      f,
      '{\n  "config": {"numQoHeads": 8, "numKvHeads": 2, "headDim": 16, "pageSize": 4, "kvDtype": "f32"},\n  "nodes": [\n    {"id": 0, "parent": null, "tokens": 8},\n    {"id": 1, "parent": 3, "tokens": 4}\n  ],\n  "requests": [{"leaf": 1}]\n}\n',
    );
    const r = await runCli(['--tree', f, '--backend', 'reference']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${f} line 5: nodes[1].parent: node 3 does not exist`);
    writeFileSync(f, '{\n  "config": {"numQoHeads": 8,\n  "numKvHeads" 2}\n}');
    const s = await runCli(['--tree', f, '--backend', 'reference']);
    expect(s.code).toBe(2);
    expect(s.err).toMatch(/line 3, column 16: Unexpected token "2", expected ':' after property name "numKvHeads"/);
    const missing = await runCli(['--tree', join(dir, 'nope.json')]);
    expect(missing.err).toMatch(/nope\.json: cannot read: ENOENT/);
  });
  it('--help and --version', async () => {
    const h = await runCli(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/--workload W/);
    expect((await runCli(['--version'])).out.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('a run: table, JSON records, HTML', () => {
  let run: BenchRun;
  let out: string;
  let err: string;
  let html: string;
  beforeAll(async () => {
    const dir = tempDir();
    const r = await runCli(['--workload', 'W1,W5', ...TINY, '--json', join(dir, 'run.json'), '--html', join(dir, 'run.html')]);
    expect(r.code, r.err).toBe(0);
    out = r.out;
    err = r.err;
    run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    html = readFileSync(join(dir, 'run.html'), 'utf8');
  }, 120_000);

  it('prints one table per workload and says the workloads are scaled', () => {
    expect(out).toMatch(/W1 {2}shared system prompt/);
    expect(out).toMatch(/W5 {2}long shared context/);
    expect(out).toMatch(/scaled down: tokens ×1\/64, requests ×1\/8/);
    expect(out).toMatch(/reference +perRequest/);
    expect(out).toMatch(/reference +prefix/);
    expect(err).toMatch(/\[4\/4\] W5 reference prefix: /);
  });

  it('JSON follows the shipped schema', () => {
    expect(schemaErrors(run)).toBe('');
    expect(run.records).toHaveLength(4);
    expect(run.complete).toBe(true);
  });

  it('records carry the workload metrics of the batch that ran', () => {
    for (const rec of run.records) {
      const b = buildBatch(scaleTree(builtinWorkload(rec.workload), rec.scale));
      const bpt = kvBytesPerToken(b.config);
      expect(rec.uniqueKvTokens).toBe(uniqueKvTokens(b));
      expect(rec.uniqueKvBytes).toBe(uniqueKvTokens(b) * bpt);
      expect(rec.kvBytesNoSharing).toBe(visibleKvTokens(b) * bpt);
      expect(rec.attentionFlops).toBe(attentionFlops(b));
      expect(rec.requests).toBe(b.requests.length);
      expect(rec.verification.passed).toBe(true);
      expect(rec.verification.checkedQueries).toBe(rec.queries);
      expect(rec.verification.maxRelError).toBeLessThan(1e-4);
      expect(rec.timeUs!.iters).toBe(3);
      expect(rec.timeUs!.p10).toBeLessThanOrEqual(rec.timeUs!.median);
      expect(rec.timeUs!.median).toBeLessThanOrEqual(rec.timeUs!.p90);
      expect(rec.bandwidthGBs).toBeCloseTo(rec.uniqueKvBytes / (rec.timeUs!.median * 1e3), 6);
      expect(rec.floor.floorUs).toBeCloseTo(Math.max(rec.floor.bytesUs!, rec.floor.flopsUs!), 9);
      expect(rec.pctOfFloor).toBeCloseTo((rec.floor.floorUs! / rec.timeUs!.median) * 100, 6);
      // perRequest reads every request's whole path; prefix reads no more than that
      if (rec.planner === 'perRequest') expect(rec.planKvTokens).toBe(visibleKvTokens(b));
      else expect(rec.planKvTokens).toBeLessThanOrEqual(visibleKvTokens(b));
      expect(rec.planKvTokens).toBeGreaterThanOrEqual(uniqueKvTokens(b));
      const base = run.records.find((x) => x.workload === rec.workload && x.planner === 'perRequest')!;
      expect(rec.speedupVsPerRequest).toBeCloseTo(base.timeUs!.median / rec.timeUs!.median, 9);
    }
  });

  it('HTML report is self-contained with SVG charts', () => {
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|<link |src="http/);
    expect(html).toContain('W5 — long shared context');
  });
});

describe('model presets and config overrides', () => {
  it('--model, --kv-dtype and --page-size reshape the workload', async () => {
    const dir = tempDir();
    const r = await runCli(['--workload', 'W1', '--model', 'Qwen2-7B', '--kv-dtype', 'f32', '--page-size', '32', ...TINY, '--planner', 'prefix', '--json', join(dir, 'r.json')]);
    expect(r.code, r.err).toBe(0);
    const run: BenchRun = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(run.options.model).toBe('Qwen2-7B');
    const rec = run.records[0];
    expect(rec.config).toMatchObject({ numQoHeads: 28, numKvHeads: 4, headDim: 128, pageSize: 32, kvDtype: 'f32' });
    expect(rec.uniqueKvBytes).toBe(rec.uniqueKvTokens * 2 * 4 * 128 * 4);
    expect(rec.verification.tolerance).toBe(1e-4);
    expect(rec.verification.passed).toBe(true);
    expect(r.out).toMatch(/28\/4\/128 f32/);
  });
});

describe('partial results', () => {
  it('the run document is handed out after every record (the CLI rewrites --json), marked incomplete', async () => {
    const { parseCli } = await import('../src/args.js');
    const { collectWorkloads, runConfig } = await import('../src/options.js');
    const { runBench } = await import('../src/run.js');
    const argv = ['--workload', 'W1,W3', ...TINY];
    const { options } = parseCli(argv);
    const cfg = runConfig(options, argv, collectWorkloads(options));
    const seen: Array<{ n: number; complete: boolean }> = [];
    cfg.onRecord = (partial) => {
      expect(schemaErrors(JSON.parse(JSON.stringify(partial)))).toBe('');
      seen.push({ n: partial.records.length, complete: partial.complete });
    };
    const { run } = await runBench(cfg, { out: () => {}, err: () => {}, isTTY: false });
    expect(seen).toEqual([1, 2, 3, 4].map((n) => ({ n, complete: false })));
    expect(run.complete).toBe(true);
  });
});

describe('wrong results get no time', () => {
  it('a backend that returns wrong values is reported with the error and exit code 1', async () => {
    const dir = tempDir();
    const fixture = join(here, 'fixtures', 'broken-backend.mjs');
    const r = await runCli(['--workload', 'W1', '--backend-module', fixture, '--backend', 'broken', '--iters', '3', '--quiet', '--scale', '1/64', '--request-scale', '1/8', '--json', join(dir, 'r.json')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/ERROR W1 broken perRequest: wrong result: max \|out - reference\|/);
    expect(r.out).toMatch(/no time/);
    const run: BenchRun = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(schemaErrors(run)).toBe('');
    for (const rec of run.records) {
      expect(rec.timeUs).toBeNull();
      expect(rec.verification.passed).toBe(false);
      expect(rec.failure).toMatch(/^wrong result/);
    }
  });
});

describe('a backend that fails to start', () => {
  it('is skipped with its reason while the others run', async () => {
    const dir = tempDir();
    const fixture = join(here, 'fixtures', 'broken-backend.mjs');
    const r = await runCli(['--workload', 'W1', '--backend-module', fixture, '--backend', 'failing,reference', ...TINY.slice(2), '--json', join(dir, 'r.json')]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/failing skipped: failed to start: device lost during init/);
    const run: BenchRun = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(schemaErrors(run)).toBe('');
    expect(run.backends.find((b) => b.name === 'failing')).toMatchObject({ used: false, reason: 'failed to start: device lost during init' });
    expect(run.records.map((x) => x.backend)).toEqual(['reference', 'reference']);
    const only = await runCli(['--workload', 'W1', '--backend-module', fixture, '--backend', 'failing', ...TINY.slice(2)]);
    expect(only.code).toBe(2);
    expect(only.err).toMatch(/no backend could be started: .*failing: failed to start: device lost during init/);
  });
});

describe('a backend that hangs', () => {
  it('times out, is skipped for the rest of the run, and the others still run', async () => {
    const dir = tempDir();
    const fixture = join(here, 'fixtures', 'broken-backend.mjs');
    const r = await runCli(['--workload', 'W1,W3', '--backend-module', fixture, '--backend', 'hanging,reference', '--timeout', '1', ...TINY.slice(2), '--json', join(dir, 'r.json')]);
    expect(r.code).toBe(1);
    const run: BenchRun = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    const hanging = run.records.filter((x) => x.backend === 'hanging');
    expect(hanging.map((x) => x.failure)).toEqual([
      'error: run did not finish within 1 s (the backend counts as hung; --timeout S changes the limit)',
      'error: skipped: the backend hung in run() earlier in this run',
      'error: skipped: the backend hung in run() earlier in this run',
      'error: skipped: the backend hung in run() earlier in this run',
    ]);
    expect(run.records.filter((x) => x.backend === 'reference' && x.timeUs !== null)).toHaveLength(4);
  });
});

describe('compare', () => {
  it('ratios between two runs, regressions past the threshold', async () => {
    const dir = tempDir();
    const a = join(dir, 'a.json');
    const r = await runCli(['--workload', 'W1', ...TINY, '--json', a]);
    expect(r.code).toBe(0);
    const run: BenchRun = JSON.parse(readFileSync(a, 'utf8'));
    const slower = structuredClone(run);
    slower.records[0].timeUs!.median *= 1.2;
    slower.records[1].timeUs!.median *= 0.5;
    slower.records.push({ ...slower.records[1], workload: 'W9' });
    const b = join(dir, 'b.json');
    writeFileSync(b, JSON.stringify(slower));
    const c = await runCli(['compare', a, b, '--threshold', '10', '--json', join(dir, 'cmp.json')]);
    expect(c.code).toBe(1);
    expect(c.out).toMatch(/perRequest .* 1\.200 +\+20\.0% REGRESSION/);
    expect(c.out).toMatch(/prefix .* 0\.500 +-50\.0%/);
    expect(c.out).toMatch(/geometric mean B\/A: 0\.775/);
    expect(c.out).toMatch(/only in B: W9 reference prefix/);
    const cmp = JSON.parse(readFileSync(join(dir, 'cmp.json'), 'utf8'));
    expect(cmp.regressions).toBe(1);
    expect(cmp.rows.map((x: { ratio: number }) => x.ratio)).toEqual([expect.closeTo(1.2, 9), expect.closeTo(0.5, 9)]);
    expect((await runCli(['compare', a, b, '--threshold', '25'])).code).toBe(0);
    expect((await runCli(['compare', a, b])).code).toBe(0);
    writeFileSync(b, '{"records": []}');
    const bad = await runCli(['compare', a, b]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/not a canopy-bench run/);
  });
});

describe('sweep and plan', () => {
  it('sweep varies one dimension and reports the crossover', async () => {
    const dir = tempDir();
    const r = await runCli(['sweep', '--dim', 'requests', '--values', '1,8', '--prefix', '256', '--leaf', '16', '--backend', 'reference', '--iters', '3', '--quiet', '--json', join(dir, 's.json'), '--html', join(dir, 's.html')]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/sweep over requests/);
    const run: BenchRun = JSON.parse(readFileSync(join(dir, 's.json'), 'utf8'));
    expect(schemaErrors(run)).toBe('');
    expect(run.sweep!.values).toEqual([1, 8]);
    expect(run.records.map((x) => `${x.sweep!.value}/${x.planner}`)).toEqual(['1/perRequest', '1/prefix', '8/perRequest', '8/prefix']);
    expect(run.records.find((x) => x.sweep!.value === 8)!.requests).toBe(8);
    expect(run.sweep!.crossovers).toHaveLength(1);
    expect(readFileSync(join(dir, 's.html'), 'utf8')).toContain('<svg');
    expect((await runCli(['sweep', '--dim', 'width'])).err).toMatch(/unknown sweep dimension "width"/);
  });

  it('plan --explain prints the planner explanation', async () => {
    const r = await runCli(['plan', '--workload', 'W2', '--explain']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/W2 · planner prefix/);
    expect(r.out.split('\n').length).toBeGreaterThan(5);
  });

  it('plan times planning and writes JSON', async () => {
    const dir = tempDir();
    const r = await runCli(['plan', '--workload', 'W1', '--iters', '2', '--quiet', '--json', join(dir, 'p.json')]);
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(readFileSync(join(dir, 'p.json'), 'utf8'));
    expect(doc.schema).toBe('canopy-bench/plan@1');
    expect(doc.results[0].workload).toBe('W1');
    expect(doc.results[0].requests).toBe(64);
  });
});
