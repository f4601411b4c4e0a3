// The browser-facing packages bundle for the browser from dist/ without any Node built-in.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BROWSER_PACKAGES, browserBundleProblems, checkBrowserPackages } from '../../../scripts/packaging/browser-check.mjs';

const scratch: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'canopy-browser-'));
  scratch.push(d);
  return d;
};
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('browser bundles', () => {
  it('core, merge, planner and backend-webgpu import no Node built-ins', async () => {
    const res = await checkBrowserPackages();
    expect([...res.keys()]).toEqual(BROWSER_PACKAGES);
    for (const [name, problems] of res) expect(problems, name).toEqual([]);
  });

  it('the check fails on static node: and bare built-in imports, and on require', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'dep.mjs'), 'import { join } from "path";\nexport const j = join;\n');
    writeFileSync(join(dir, 'bad.mjs'), 'import { readFileSync } from "node:fs";\nexport { j } from "./dep.mjs";\nexport const r = readFileSync;\n');
    writeFileSync(join(dir, 'cjs.cjs'), 'module.exports = require("worker_threads");\n');
    const bad = await browserBundleProblems(join(dir, 'bad.mjs'));
    expect(bad.join('\n')).toMatch(/node:fs \(imported by .*bad\.mjs\)/);
    expect(bad.join('\n')).toMatch(/path \(imported by .*dep\.mjs\)/);
    expect((await browserBundleProblems(join(dir, 'cjs.cjs'))).join('\n')).toMatch(/worker_threads/);
  });

  it('dynamic imports of computed specifiers stay out of the bundle (core plugin loader pattern)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'ok.mjs'), "export const load = () => import(['node', 'fs'].join(':'));\n");
    expect(await browserBundleProblems(join(dir, 'ok.mjs'))).toEqual([]);
  });
});
