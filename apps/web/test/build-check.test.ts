/** The browser build refuses Node built-ins (the CI check that no Node-only API leaks into the page). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';
import { afterAll, expect, test } from 'vitest';
import { findNodeGlobal, isNodeBuiltin, noNodeBuiltins } from '../vite-plugins.js';

const dir = mkdtempSync(join(tmpdir(), 'canopy-web-build-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function buildEntry(name: string, code: string): Promise<unknown> {
  const entry = join(dir, `${name}.js`);
  writeFileSync(entry, code);
  return build({
    configFile: false,
    root: dir,
    logLevel: 'silent',
    plugins: [noNodeBuiltins()],
    build: { write: false, lib: { entry, formats: ['es'], fileName: name } },
  });
}

test('isNodeBuiltin', () => {
  for (const id of ['node:fs', 'fs', 'fs/promises', 'path', 'worker_threads', 'node:test']) expect(isNodeBuiltin(id), id).toBe(true);
  for (const id of ['@canopy/core', './fs.js', 'vite', 'webgpu']) expect(isNodeBuiltin(id), id).toBe(false);
});

test('a bundle importing a Node built-in fails with a message naming it and the importer', async () => {
  await expect(buildEntry('bad1', "import { readFileSync } from 'node:fs'; export const x = readFileSync;")).rejects.toThrow(/'node:fs' is a Node built-in, imported by .*bad1\.js/);
  await expect(buildEntry('bad2', "import { join } from 'path'; export const x = join('a', 'b');")).rejects.toThrow(/'path' is a Node built-in/);
});

test('a bundle using Node globals fails, naming the global', async () => {
  await expect(buildEntry('bad3', "export function log(s) { process.stderr.write(s); }")).rejects.toThrow(/uses the Node global 'process\.stderr'/);
  await expect(buildEntry('bad4', 'export const here = __dirname;')).rejects.toThrow(/'__dirname'/);
  expect(findNodeGlobal('const p = globalThis.process; // process.stderr is Node only\nconst q = obj.process.stdout;')).toBeUndefined();
});

test('a browser-clean bundle builds', async () => {
  await expect(buildEntry('good', 'export const x = globalThis.navigator ? 1 : 2;')).resolves.toBeDefined();
});
