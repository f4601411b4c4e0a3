#!/usr/bin/env node
// Changeset check: a change to a publishable package's source must come with a changeset.
//
//   node scripts/packaging/check-changesets.mjs [--base <rev>]
//
// Compares the working tree (committed and uncommitted changes, untracked files included) with a
// base revision: --base, else $CANOPY_CHANGESET_BASE, else `git merge-base HEAD origin/main` when
// origin/main exists. Without any base there is nothing to compare with; it says so and exits 0.
//
// "Source" is what ships and changes behaviour: src/ and native/ of a package that is not private.
// Tests, READMEs and package.json edits need no changeset. A package is covered when a
// .changeset/*.md added or changed since the base names it in its frontmatter. A changeset with
// empty frontmatter (`pnpm changeset --empty`) declares the change needs no release and covers all.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { publishablePackages, repoRoot } from './lib.mjs';

const SOURCE_DIRS = ['src', 'native'];

function git(root, args) {
  return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Package names in a changeset's frontmatter; [] for an empty changeset; undefined if it has none. */
export function changesetPackages(text) {
  const m = /^---\r?\n([\s\S]*?)\r?\n?---/.exec(text.replace(/^\uFEFF/, ''));
  if (!m) return undefined;
  const names = [];
  for (const line of m[1].split(/\r?\n/)) {
    const kv = /^\s*(['"]?)([^'":]+)\1\s*:\s*(major|minor|patch|none)\s*$/.exec(line);
    if (kv) names.push(kv[2].trim());
  }
  return names;
}

/** The base to compare with, or undefined (with the reason) when none is known. */
export function resolveBase(root, explicit) {
  if (explicit) return { base: explicit, how: 'given' };
  if (process.env.CANOPY_CHANGESET_BASE) return { base: process.env.CANOPY_CHANGESET_BASE, how: '$CANOPY_CHANGESET_BASE' };
  try {
    git(root, ['rev-parse', '--verify', '--quiet', 'origin/main']);
    return { base: git(root, ['merge-base', 'HEAD', 'origin/main']).trim(), how: 'merge-base HEAD origin/main' };
  } catch {
    return { base: undefined, how: 'no --base, no $CANOPY_CHANGESET_BASE and no origin/main' };
  }
}

/**
 * Packages whose source changed since `base` without a changeset naming them.
 * @param {{ root?: string, base: string }} opts
 * @returns {{ changed: string[], covered: string[], missing: string[], changesets: string[] }}
 */
export function checkChangesets({ root = repoRoot, base }) {
  // Fails loudly on an unknown base rather than comparing with nothing.
  git(root, ['rev-parse', '--verify', `${base}^{commit}`]);
  const files = new Set(
    [...git(root, ['diff', '--name-only', '--no-renames', base]).split('\n'), ...git(root, ['ls-files', '--others', '--exclude-standard']).split('\n')].filter(Boolean),
  );
  const pkgs = publishablePackages(root).map((p) => ({ name: p.name, rel: relative(root, p.dir).split(sep).join('/') }));
  const changed = pkgs.filter((p) => [...files].some((f) => SOURCE_DIRS.some((d) => f.startsWith(`${p.rel}/${d}/`)))).map((p) => p.name);

  const changesets = [...files].filter((f) => /^\.changeset\/[^/]+\.md$/.test(f) && !/README\.md$/i.test(f) && existsSync(join(root, f)));
  const named = new Set();
  let empty = false;
  for (const f of changesets) {
    const names = changesetPackages(readFileSync(join(root, f), 'utf8'));
    if (names === undefined) continue;
    if (names.length === 0) empty = true;
    names.forEach((n) => named.add(n));
  }
  const covered = changed.filter((n) => empty || named.has(n));
  return { changed, covered, missing: changed.filter((n) => !covered.includes(n)), changesets };
}

function main() {
  const i = process.argv.indexOf('--base');
  const { base, how } = resolveBase(repoRoot, i > 0 ? process.argv[i + 1] : undefined);
  if (!base) {
    console.log(`check-changesets: skipped (${how}). In CI set CANOPY_CHANGESET_BASE to the target branch's commit.`);
    return;
  }
  const r = checkChangesets({ root: repoRoot, base });
  const short = base.slice(0, 12);
  if (r.missing.length) {
    console.error(
      `check-changesets: source changed since ${short} (${how}) without a changeset for: ${r.missing.join(', ')}\n` +
        '  Add one with `pnpm changeset` (pick the package and bump, write one line for the changelog),\n' +
        '  or `pnpm changeset --empty` when the change needs no release. See CONTRIBUTING.md.',
    );
    process.exit(1);
  }
  console.log(`check-changesets: ok since ${short} (${how}); changed: ${r.changed.join(', ') || 'none'}; changesets: ${r.changesets.length}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
