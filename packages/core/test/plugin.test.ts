import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BackendRegistry, CanopyError, CONTRACT_VERSION } from '../src/index.js';
import { findBackendFactories, loadBackendModule } from '../src/plugin.js';

// Plugin modules as a third party ships them: plain ESM files outside the workspace that need
// nothing from Canopy at import time.
const dir = mkdtempSync(join(tmpdir(), 'canopy-plugin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const factorySrc = (name: string, version = CONTRACT_VERSION, priority = 5) =>
  `{ name: ${JSON.stringify(name)}, contractVersion: ${version}, priority: ${priority}, async probe() { return { available: true }; }, async create() { return { name: ${JSON.stringify(name)} }; } }`;
const file = (rel: string, src: string) => {
  const p = join(dir, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, src);
  return p;
};

file('named.mjs', `export const myFactory = ${factorySrc('named')};\nexport const helper = 42;\n`);
file('default.mjs', `export default ${factorySrc('by-default')};\n`);
file('list.mjs', `export const factories = [${factorySrc('one')}, ${factorySrc('two')}];\n`);
file('conv.mjs', `const f = ${factorySrc('conv')};\nexport const backendFactory = f;\nexport const alsoF = f;\n`);
file('none.mjs', `export const notAFactory = { name: 'x' };\nexport function create() {}\n`);
file('v99.mjs', `export const good = ${factorySrc('good')};\nexport const future = ${factorySrc('future', 99)};\n`);
file('noversion.mjs', `export const f = { name: 'nov', priority: 1, async probe() { return { available: true }; }, async create() {} };\n`);
file('throws.mjs', `throw new Error('plugin init exploded');\n`);
file('node_modules/canopy-backend-fake/package.json', JSON.stringify({ name: 'canopy-backend-fake', type: 'module', exports: { '.': { import: './main.mjs' } } }));
file('node_modules/canopy-backend-fake/main.mjs', `export const fakeBackendFactory = ${factorySrc('fake-pkg', CONTRACT_VERSION, 7)};\n`);

describe('loadBackendModule', () => {
  it('loads a relative path against cwd and registers the factory', async () => {
    const registry = new BackendRegistry();
    const fs = await loadBackendModule('./named.mjs', { registry, cwd: dir });
    expect(fs.map((f) => f.name)).toEqual(['named']);
    expect(registry.get('named')).toBe(fs[0]);
    expect(await registry.get('named')!.create()).toEqual({ name: 'named' });
  });

  it('accepts absolute paths and file URLs, default exports, factories arrays and dedupes aliases', async () => {
    const registry = new BackendRegistry();
    expect((await loadBackendModule(join(dir, 'default.mjs'), { registry })).map((f) => f.name)).toEqual(['by-default']);
    expect((await loadBackendModule(pathToFileURL(join(dir, 'list.mjs')).href, { registry })).map((f) => f.name)).toEqual(['one', 'two']);
    expect((await loadBackendModule('./conv.mjs', { registry, cwd: dir })).map((f) => f.name)).toEqual(['conv']);
    expect(registry.list().map((f) => f.name).sort()).toEqual(['by-default', 'conv', 'one', 'two']);
  });

  it('resolves a package name from cwd (installed in the user project, not next to core)', async () => {
    const registry = new BackendRegistry();
    const fs = await loadBackendModule('canopy-backend-fake', { registry, cwd: dir });
    expect(fs.map((f) => [f.name, f.priority])).toEqual([['fake-pkg', 7]]);
    expect(registry.get('fake-pkg')).toBe(fs[0]);
  });

  it('names the problem: not found, no factory, wrong or missing contract version, throwing module', async () => {
    const registry = new BackendRegistry();
    const err = async (spec: string) => {
      try {
        await loadBackendModule(spec, { registry, cwd: dir });
      } catch (e) {
        expect(e).toBeInstanceOf(CanopyError);
        return e as CanopyError;
      }
      throw new Error(`${spec} loaded`);
    };
    const nf = await err('./missing.mjs');
    expect(nf.code).toBe('backend-module-not-found');
    expect(nf.message).toMatch(/missing\.mjs not found/);
    const np = await err('canopy-backend-does-not-exist');
    expect(np.code).toBe('backend-module-not-found');
    expect(np.message).toMatch(/canopy-backend-does-not-exist not found/);
    const none = await err('./none.mjs');
    expect(none.code).toBe('no-backend-factory');
    expect(none.message).toMatch(/exports no BackendFactory.*notAFactory, create/);
    const v = await err('./v99.mjs');
    expect(v.code).toBe('contract-version');
    expect(v.message).toMatch(new RegExp(`"future" from ./v99.mjs was written for Canopy contract v99; this @canopy/core implements v${CONTRACT_VERSION}`));
    expect(registry.get('good')).toBeUndefined(); // all or nothing
    expect((await err('./noversion.mjs')).message).toMatch(/"nov" .* declares no contractVersion/);
    const t = await err('./throws.mjs');
    expect(t.code).toBe('backend-module-failed');
    expect(t.message).toMatch(/plugin init exploded/);
    await expect(loadBackendModule('  ', { registry })).rejects.toThrow(/give a path/);
    expect(registry.list()).toEqual([]);
  });

  it('refuses to shadow a different backend of the same name unless replace is set', async () => {
    const registry = new BackendRegistry();
    const other = { name: 'named', contractVersion: CONTRACT_VERSION, priority: 99, probe: async () => ({ available: true }), create: async () => ({}) as never };
    registry.register(other);
    await expect(loadBackendModule('./named.mjs', { registry, cwd: dir })).rejects.toThrow(/already registered as "named"/);
    expect(registry.get('named')).toBe(other);
    const [f] = await loadBackendModule('./named.mjs', { registry, cwd: dir, replace: true });
    expect(registry.get('named')).toBe(f);
  });

  it('findBackendFactories: default first, then conventions, then other exports', () => {
    const mk = (name: string) => ({ name, contractVersion: 1, priority: 0, probe: async () => ({ available: true }), create: async () => ({}) as never });
    const a = mk('a');
    const b = mk('b');
    const c = mk('c');
    expect(findBackendFactories({ z: c, factories: [b], default: a, backendFactory: a }).map((f) => f.name)).toEqual(['a', 'b', 'c']);
    expect(findBackendFactories({ x: 1, y: { name: 'no-create', probe() {} } })).toEqual([]);
  });
});
