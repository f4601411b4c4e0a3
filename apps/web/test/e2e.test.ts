/**
 * End to end: build the page, serve dist/ on 127.0.0.1, open it in Debian's Chromium (headless,
 * WebGPU through SwiftShader on a CPU-only machine), run W1 scaled down with both planners, and
 * check the page's verdict — and, independently, recompute the sampled outputs it reports with
 * core's float64 referenceAttention here in Node. A screenshot goes to apps/web/test-output/.
 *
 * Without Chromium or without a WebGPU adapter in it, the test fails when CI is set and skips
 * (saying why) otherwise.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomKvCache, randomQueries, referenceAttention } from '@canopy/core';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { buildBatch, checkTreeSpec } from '../src/tree.js';
import { serveDir, type StaticServer } from './serve.js';

const here = dirname(fileURLToPath(import.meta.url));
const appDir = join(here, '..');
const outDir = join(appDir, 'test-output');
const CHROMIUM = process.env.CANOPY_CHROMIUM ?? '/usr/bin/chromium';
const inCI = !!process.env.CI;

// Chromium flags: WebGPU on (SwiftShader gives a CPU adapter where there is no GPU), nothing that
// reaches the network (first-run, background, component updates, sync, QUIC).
const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

// W1 scaled down: root 4096 → 512 tokens, 64 → 16 requests with 64-token leaves.
// Two timed iterations, no warm-up: SwiftShader runs this in about 2 s per step.
const QUERY = '?workload=W1&tokens=1/8&requests=1/4&backend=auto&iters=2&warmup=0&autorun=1';

let server: StaticServer | undefined;
const contexts: BrowserContext[] = [];
const userDirs: string[] = [];
let unavailable: string | undefined;
const outside: string[] = [];
const consoleLines: string[] = [];

async function launch(args: string[]): Promise<BrowserContext> {
  const dir = mkdtempSync(join(tmpdir(), 'canopy-chromium-'));
  userDirs.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args, viewport: { width: 1440, height: 1000 } });
  contexts.push(ctx);
  // Offline: any request that is not to our server is refused and remembered.
  await ctx.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(server!.url) || url.startsWith('data:')) return route.continue();
    outside.push(url);
    return route.abort();
  });
  return ctx;
}

beforeAll(async () => {
  mkdirSync(outDir, { recursive: true });
  if (!existsSync(CHROMIUM)) {
    unavailable = `${CHROMIUM} not found (Debian: apt-get install chromium, or bash scripts/setup.sh --system)`;
    return;
  }
  // A fresh production build: this is also the check that nothing Node-only is bundled.
  await build({ root: appDir, logLevel: 'warn', build: { outDir: join(appDir, 'dist'), emptyOutDir: true } });
  server = await serveDir(join(appDir, 'dist'));
});

afterAll(async () => {
  for (const c of contexts) await c.close();
  await server?.close();
  for (const d of userDirs) rmSync(d, { recursive: true, force: true });
});

/** Open the page and wait until its run is done (or failed). */
async function openAndRun(ctx: BrowserContext, query: string, shot: string): Promise<Page> {
  const page = await ctx.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(server!.url + query);
  try {
    await page.waitForFunction(() => {
      const s = document.querySelector('#verdict')?.getAttribute('data-state');
      return s === 'done' || s === 'error';
    }, undefined, { timeout: 90_000, polling: 250 });
  } catch (e) {
    await shoot(page, shot.replace('.png', '-timeout.png'));
    throw new Error(`the page did not finish in 90 s: ${(e as Error).message}\n${consoleLines.join('\n')}`);
  }
  await shoot(page, shot);
  const verdict = page.locator('#verdict');
  expect(await verdict.getAttribute('data-state'), `page error: ${await verdict.textContent()}\n${consoleLines.join('\n')}`).toBe('done');
  return page;
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(outDir, name), fullPage: true });
}

test('W1 (scaled down) on WebGPU in Chromium: both planners verified against the reference', async (ctx) => {
  if (unavailable) {
    if (inCI) throw new Error(`browser test cannot run in CI: ${unavailable}`);
    ctx.skip(`browser test skipped: ${unavailable}`);
    return;
  }
  const page = await openAndRun(await launch(CHROMIUM_ARGS), QUERY, 'web-W1.png');
  const verdict = page.locator('#verdict');
  const backend = await verdict.getAttribute('data-backend');
  if (backend !== 'webgpu') {
    const why = (await page.locator('#device').textContent()) ?? '';
    if (inCI) throw new Error(`Chromium gave no WebGPU adapter, the page fell back to the reference backend: ${why}`);
    ctx.skip(`no WebGPU adapter in this Chromium (${why}); the page fell back to the CPU reference backend`);
    return;
  }
  const adapter = await verdict.getAttribute('data-adapter');
  console.log(`web e2e: WebGPU adapter: ${adapter}`);

  // The page's own verdict.
  expect(await verdict.getAttribute('data-verified')).toBe('true');
  expect(await verdict.getAttribute('data-planners')).toBe('perRequest,prefix');
  const tol = Number(await verdict.getAttribute('data-tolerance'));
  const outErr = Number(await verdict.getAttribute('data-max-out-error'));
  const lseErr = Number(await verdict.getAttribute('data-max-lse-error'));
  expect(tol).toBeGreaterThan(0);
  expect(outErr).toBeLessThanOrEqual(tol);
  expect(lseErr).toBeLessThanOrEqual(tol);
  await expect.poll(() => page.locator('#results-table tbody tr[data-verified="true"]').count()).toBe(2);
  expect(await page.locator('#trees svg.treeview').count()).toBe(2);

  // Independent check: recompute the rows the page reports from the same tree and seed.
  const reported = (await page.evaluate(() => (window as unknown as { canopy: unknown }).canopy)) as {
    spec: unknown;
    seed: number;
    sampleIds: number[];
    results: Array<{ planner: string; verified: boolean; sampleOut: number[]; sampleLse: number[]; workItems: number; kvTokensRead: number }>;
  };
  const spec = checkTreeSpec(reported.spec);
  expect(spec.requests.length).toBe(16);
  expect(spec.nodes[0].tokens).toBe(512);
  const { batch } = buildBatch(spec);
  const cache = randomKvCache(batch.numPages, batch.pageSize, batch.config, reported.seed);
  const queries = randomQueries(batch.requests.length, batch.config, reported.seed + 1);
  const ids = Int32Array.from(reported.sampleIds);
  expect(ids.length).toBeGreaterThanOrEqual(2);
  const ref = referenceAttention(batch, cache, queries, { queryIds: ids });
  for (const r of reported.results) {
    expect(r.sampleOut.length).toBe(ref.out.length);
    expect(r.sampleLse.length).toBe(ref.lse.length);
    let outMax = 0;
    let lseMax = 0;
    for (let i = 0; i < ref.out.length; i++) outMax = Math.max(outMax, Math.abs(r.sampleOut[i] - ref.out[i]));
    for (let i = 0; i < ref.lse.length; i++) lseMax = Math.max(lseMax, Math.abs(r.sampleLse[i] - ref.lse[i]));
    expect(outMax, `${r.planner} out`).toBeLessThan(tol);
    expect(lseMax, `${r.planner} lse`).toBeLessThan(tol);
  }
  // The prefix plan reads the shared root once; the per-request plan once per request.
  const per = reported.results.find((r) => r.planner === 'perRequest')!;
  const pre = reported.results.find((r) => r.planner === 'prefix')!;
  expect(pre.kvTokensRead).toBeLessThan(per.kvTokensRead);

  // Edit the tree with the generator form and re-run: a tree no workload has, unscaled.
  await page.evaluate(() => ((window as unknown as { canopy?: unknown }).canopy = undefined));
  await page.locator('details:has(#gen-write) summary').click();
  await page.fill('#gen-root', '100');
  await page.fill('#gen-groups', '2');
  await page.fill('#gen-group-tokens', '40');
  await page.fill('#gen-requests', '5');
  await page.fill('#gen-leaf', '7');
  await page.click('#gen-write');
  expect(await page.locator('#workload').inputValue()).toBe('custom');
  await page.selectOption('#tokens-scale', '1');
  await page.selectOption('#requests-scale', '1');
  await page.click('#run');
  await page.waitForFunction(() => {
    const s = document.querySelector('#verdict')?.getAttribute('data-state');
    return s === 'error' || (s === 'done' && (window as unknown as { canopy?: unknown }).canopy !== undefined);
  }, undefined, { timeout: 60_000, polling: 250 });
  await shoot(page, 'web-custom-tree.png');
  expect(await verdict.getAttribute('data-state'), (await verdict.textContent()) ?? '').toBe('done');
  expect(await verdict.getAttribute('data-verified')).toBe('true');
  const edited = (await page.evaluate(() => (window as unknown as { canopy: { spec: unknown } }).canopy.spec)) as { nodes: Array<{ tokens: number }>; requests: unknown[] };
  expect(edited.nodes.map((n) => n.tokens)).toEqual([100, 40, 40, 7, 7, 7, 7, 7]);
  expect(edited.requests.length).toBe(5);

  expect(outside, 'requests that left 127.0.0.1').toEqual([]);
}, 180_000);

test('without WebGPU the page falls back to the CPU reference backend, visibly, and still verifies', async (ctx) => {
  if (unavailable) {
    if (inCI) throw new Error(`browser test cannot run in CI: ${unavailable}`);
    ctx.skip(`browser test skipped: ${unavailable}`);
    return;
  }
  // Chromium without the WebGPU flags: no adapter on a machine without a GPU.
  const args = CHROMIUM_ARGS.filter((a) => a !== '--enable-unsafe-webgpu' && a !== '--enable-unsafe-swiftshader');
  const page = await openAndRun(await launch(args), '?workload=W1&tokens=1/16&requests=1/8&iters=1&autorun=1', 'web-W1-fallback.png');
  const verdict = page.locator('#verdict');
  if ((await verdict.getAttribute('data-backend')) === 'webgpu') {
    ctx.skip('this Chromium has a WebGPU adapter even without the flags (a real GPU): no fallback to see');
    return;
  }
  expect(await verdict.getAttribute('data-backend')).toBe('reference');
  expect(await page.locator('#device').textContent()).toMatch(/CPU reference backend .*no WebGPU/);
  expect(await verdict.getAttribute('data-verified')).toBe('true');
  expect(Number(await verdict.getAttribute('data-max-out-error'))).toBeLessThanOrEqual(Number(await verdict.getAttribute('data-tolerance')));
  expect(outside, 'requests that left 127.0.0.1').toEqual([]);
});
