// scripts/packaging/check-changesets.mjs on throwaway git repositories: source changes without a
// changeset fail, with one (or an empty one) pass; tests, docs and private packages need none.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { changesetPackages, checkChangesets, resolveBase } from '../../../scripts/packaging/check-changesets.mjs';
import { repoRoot } from '../../../scripts/packaging/lib.mjs';

const script = join(repoRoot, 'scripts/packaging/check-changesets.mjs');

const scratch: string[] = [];
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

function repo() {
  const root = mkdtempSync(join(tmpdir(), 'canopy-changesets-'));
  scratch.push(root);
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'commit.gpgsign=false', ...args], { cwd: root, encoding: 'utf8' });
  const write = (rel: string, text: string) => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  };
  git('init', '-q', '-b', 'main');
  write('packages/foo/package.json', JSON.stringify({ name: '@canopy/foo', version: '0.1.0' }));
  write('packages/foo/src/index.ts', 'export const a = 1;\n');
  write('packages/bar/package.json', JSON.stringify({ name: '@canopy/bar', version: '0.1.0' }));
  write('packages/bar/src/index.ts', 'export const b = 1;\n');
  write('apps/app/package.json', JSON.stringify({ name: 'app', private: true }));
  write('apps/app/src/main.ts', 'export {};\n');
  write('.changeset/config.json', '{}\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'base');
  const base = git('rev-parse', 'HEAD').trim();
  return { root, git, write, base, done: () => rmSync(root, { recursive: true, force: true }) };
}

describe('checkChangesets', () => {
  it('a committed source change without a changeset is missing; adding one naming the package covers it', () => {
    const r = repo();
    r.write('packages/foo/src/index.ts', 'export const a = 2;\n');
    r.git('commit', '-qam', 'change foo');
    expect(checkChangesets({ root: r.root, base: r.base })).toMatchObject({ changed: ['@canopy/foo'], missing: ['@canopy/foo'] });
    // a changeset for another package does not count
    r.write('.changeset/other.md', '---\n"@canopy/bar": patch\n---\n\nBar.\n');
    expect(checkChangesets({ root: r.root, base: r.base }).missing).toEqual(['@canopy/foo']);
    // an uncommitted (untracked) changeset counts: the check looks at the working tree
    r.write('.changeset/brave-fox.md', "---\n'@canopy/foo': minor\n---\n\nFoo does more.\n");
    expect(checkChangesets({ root: r.root, base: r.base })).toMatchObject({ changed: ['@canopy/foo'], covered: ['@canopy/foo'], missing: [] });
    r.done();
  });

  it('native/ counts as source; tests, READMEs and private packages do not', () => {
    const r = repo();
    r.write('packages/foo/test/a.test.ts', 'test\n');
    r.write('packages/foo/README.md', '# foo\n');
    r.write('apps/app/src/main.ts', 'export const x = 1;\n');
    expect(checkChangesets({ root: r.root, base: r.base })).toMatchObject({ changed: [], missing: [] });
    r.write('packages/bar/native/k.cu', '// kernel\n');
    expect(checkChangesets({ root: r.root, base: r.base }).missing).toEqual(['@canopy/bar']);
    r.done();
  });

  it('an empty changeset declares no release and covers every change', () => {
    const r = repo();
    r.write('packages/foo/src/index.ts', 'export const a = 3;\n');
    r.write('packages/bar/src/index.ts', 'export const b = 3;\n');
    r.write('.changeset/quiet-owl.md', '---\n---\n\nRefactor, no release.\n');
    expect(checkChangesets({ root: r.root, base: r.base })).toMatchObject({ changed: ['@canopy/bar', '@canopy/foo'], missing: [] });
    r.done();
  });

  it('an unknown base is an error, not a pass', () => {
    const r = repo();
    expect(() => checkChangesets({ root: r.root, base: 'no-such-rev' })).toThrow();
    r.done();
  });
});

describe('the script', () => {
  it('exits 1 naming the package, then 0 once a changeset is added', () => {
    const r = repo();
    r.write('packages/foo/src/index.ts', 'export const a = 4;\n');
    // The script checks the repository it lives in; run a copy inside the throwaway repo.
    r.write('scripts/packaging/check-changesets.mjs', execFileSync('cat', [script], { encoding: 'utf8' }));
    r.write('scripts/packaging/lib.mjs', execFileSync('cat', [join(repoRoot, 'scripts/packaging/lib.mjs')], { encoding: 'utf8' }));
    const run = () => {
      try {
        return { code: 0, out: execFileSync(process.execPath, ['scripts/packaging/check-changesets.mjs', '--base', r.base], { cwd: r.root, encoding: 'utf8', stdio: 'pipe' }) };
      } catch (e) {
        const err = e as { status: number; stderr: string };
        return { code: err.status, out: err.stderr };
      }
    };
    const fail = run();
    expect(fail.code).toBe(1);
    expect(fail.out).toMatch(/without a changeset for: @canopy\/foo/);
    r.write('.changeset/x.md', '---\n"@canopy/foo": patch\n---\n\nFix.\n');
    const ok = run();
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/ok since/);
    r.done();
  });

  it('skips with a message when no base is known', () => {
    const r = repo();
    const saved = process.env.CANOPY_CHANGESET_BASE;
    delete process.env.CANOPY_CHANGESET_BASE;
    expect(resolveBase(r.root).base).toBeUndefined();
    process.env.CANOPY_CHANGESET_BASE = r.base;
    expect(resolveBase(r.root)).toEqual({ base: r.base, how: '$CANOPY_CHANGESET_BASE' });
    if (saved === undefined) delete process.env.CANOPY_CHANGESET_BASE;
    else process.env.CANOPY_CHANGESET_BASE = saved;
    r.done();
  });
});

it('parses changeset frontmatter', () => {
  expect(changesetPackages('---\n"@canopy/core": minor\n\'@canopy/merge\': patch\n@canopy/planner: major\n---\n\nText.\n')).toEqual(['@canopy/core', '@canopy/merge', '@canopy/planner']);
  expect(changesetPackages('---\n---\n\nNothing.\n')).toEqual([]);
  expect(changesetPackages('# no frontmatter\n')).toBeUndefined();
});

// On the real repository when CI names a base (CANOPY_CHANGESET_BASE or origin/main): every
// source change since then must come with a changeset.
const realBase = resolveBase(repoRoot);
it.runIf(realBase.base !== undefined)(`this repository: source changes since the base come with changesets (${realBase.how})`, () => {
  expect(checkChangesets({ root: repoRoot, base: realBase.base! }).missing).toEqual([]);
});
