// publint and @arethetypeswrong/cli over the packed tarball of every publishable package, plus
// checks that these linters do fail on a broken package (so a pass means something).
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestProblems } from '../../../scripts/packaging/consumer-test.mjs';
import { packAll, publishablePackages } from '../../../scripts/packaging/lib.mjs';
import { attwTarball, publintTarball } from '../../../scripts/packaging/lint-packages.mjs';

const pkgs = publishablePackages();
const dest = mkdtempSync(join(tmpdir(), 'canopy-pack-'));
let tarballs = new Map<string, string>();
const attw = new Map<string, Promise<string[]>>();

beforeAll(async () => {
  tarballs = await packAll(pkgs, dest);
  // attw starts a TypeScript program per package (seconds each): run two at a time up front.
  const queue = [...tarballs];
  const chain: Promise<unknown>[] = [Promise.resolve(), Promise.resolve()];
  queue.forEach(([name, tgz], i) => {
    const p = chain[i % 2].then(() => attwTarball(tgz));
    chain[i % 2] = p.catch(() => undefined);
    attw.set(name, p);
  });
});
const scratch: string[] = [];
afterAll(() => [dest, ...scratch].forEach((d) => rmSync(d, { recursive: true, force: true })));

const packedManifest = (tgz: string) => JSON.parse(execFileSync('tar', ['-xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }));
const packedFiles = (tgz: string) => execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).split('\n').filter(Boolean);

it('finds the publishable packages (and not the private ones)', () => {
  const names = pkgs.map((p) => p.name);
  for (const n of ['@canopy/core', '@canopy/merge', '@canopy/planner', '@canopy/backend-testkit', '@canopy/backend-cuda']) expect(names).toContain(n);
  expect(names).not.toContain('@canopy/bench');
  expect(names).not.toContain('@canopy/presets');
});

describe.each(pkgs.map((p) => [p.name]))('%s', (name) => {
  it('publint: no warnings or errors on the tarball', async () => {
    expect(await publintTarball(tarballs.get(name)!)).toEqual([]);
  });

  it('attw (esm-only profile): types resolve for node16-ESM and bundler', async () => {
    expect(await attw.get(name)!).toEqual([]);
  });

  it('ships dist, README, LICENSE and no sources, tests or build leftovers', () => {
    const tgz = tarballs.get(name)!;
    const files = packedFiles(tgz);
    for (const f of ['package/package.json', 'package/README.md', 'package/LICENSE', 'package/dist/index.js', 'package/dist/index.d.ts']) expect(files).toContain(f);
    expect(files.filter((f) => /^package\/(src|test|build|node_modules|\.turbo)\//.test(f) || f.endsWith('.node') || f.endsWith('.tsbuildinfo'))).toEqual([]);
    const m = packedManifest(tgz);
    expect(manifestProblems(m)).toEqual([]);
    expect(Object.keys(m.exports['.'])[0]).toBe('types');
    expect(m.engines.node).toBe('>=20.19');
    expect(m.sideEffects).toBe(false);
    expect(m.license).toBe('MIT');
  });
});

describe('the linters catch broken packages', () => {
  const broken = (edit: (pkg: Record<string, any>) => void, dropFile?: string) => {
    const work = mkdtempSync(join(tmpdir(), 'canopy-broken-'));
    scratch.push(work);
    execFileSync('tar', ['-xzf', tarballs.get('@canopy/merge')!, '-C', work]);
    const file = join(work, 'package/package.json');
    const pkg = JSON.parse(readFileSync(file, 'utf8'));
    edit(pkg);
    writeFileSync(file, JSON.stringify(pkg));
    if (dropFile) rmSync(join(work, 'package', dropFile));
    mkdirSync(join(work, 'out'));
    const tgz = join(work, 'out/broken.tgz');
    execFileSync('tar', ['-czf', tgz, '-C', work, 'package']);
    return tgz;
  };

  it('publint: an exports path that is not in the tarball', async () => {
    const tgz = broken((p) => {
      p.exports['.'].default = './dist/missing.js';
    });
    expect((await publintTarball(tgz)).join('\n')).toMatch(/missing\.js.*does not exist/);
  });

  it('attw: declared types file missing from the tarball', async () => {
    const tgz = broken(() => {}, 'dist/index.d.ts');
    expect((await attwTarball(tgz)).join('\n')).toMatch(/resolve|types|untyped/i);
  });

  it('manifest check: install scripts and workspace-only conditions', () => {
    const problems = manifestProblems({
      scripts: { postinstall: 'node build.js' },
      exports: { '.': { '@canopy/source': './src/index.ts', default: './dist/index.js' } },
      dependencies: { '@canopy/core': 'workspace:^' },
    });
    expect(problems.join('\n')).toMatch(/postinstall/);
    expect(problems.join('\n')).toMatch(/@canopy\/source/);
    expect(problems.join('\n')).toMatch(/workspace:\^/);
  });
});
