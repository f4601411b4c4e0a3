import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { test } from 'vitest';
import { serveDir } from '/work/main/apps/web/test/serve.ts';
test('prof', async () => {
  const srv = { url: 'http://127.0.0.1:5199/', close: async () => {} };
  const flags = process.env.NOFLAGS ? ['--headless=new','--no-sandbox'] : ['--headless=new','--no-sandbox','--enable-unsafe-webgpu','--enable-unsafe-swiftshader'];
  const ctx = await chromium.launchPersistentContext(mkdtempSync('/tmp/chr-'), { executablePath: '/usr/bin/chromium', headless: true, args: flags });
  const page = await ctx.newPage();
  const t0 = Date.now();
  page.on('console', m => console.log((Date.now()-t0)+'ms', m.text()));
  await page.exposeFunction('noop', () => {});
  await page.goto(srv.url + (process.env.Q ?? '?workload=W1&tokens=1/8&requests=1/4&iters=1&autorun=1'));
  let last = '';
  for (;;) {
    const st = await page.locator('#status').textContent();
    if (st !== last) { console.log((Date.now()-t0)+'ms', st); last = st; }
    const s = await page.locator('#verdict').getAttribute('data-state');
    if (s === 'done' || s === 'error') break;
    await new Promise(r => setTimeout(r, 100));
  }
  await page.screenshot({ path: '/tmp/shot-' + (process.env.SHOT ?? 'x') + '.png', fullPage: true });
  console.log(await page.locator('#verdict').textContent(), await page.locator('#device').textContent());
  await ctx.close(); await srv.close();
}, 200000);
