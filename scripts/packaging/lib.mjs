// Shared helpers for the packaging checks: which workspace packages are published, and packing
// them the way a release does (`pnpm pack` applies publishConfig and rewrites workspace: ranges).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);

/** Workspace folders whose packages may hold publishable packages (tooling/ and apps/ are private). */
const PACKAGE_GLOBS = ['packages', 'apps'];

/**
 * Every publishable package (no `"private": true`) in the workspace at `root`, sorted by name.
 * @returns {{ name: string, version: string, dir: string, pkg: Record<string, any> }[]}
 */
export function publishablePackages(root = repoRoot) {
  const out = [];
  for (const top of PACKAGE_GLOBS) {
    const base = join(root, top);
    if (!existsSync(base)) continue;
    for (const d of readdirSync(base, { withFileTypes: true })) {
      if (!d.isDirectory()) continue;
      const file = join(base, d.name, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8'));
      if (pkg.private) continue;
      out.push({ name: pkg.name, version: pkg.version, dir: join(base, d.name), pkg });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Entry files a package's published manifest points at that must exist before packing. */
function builtEntries(pkg) {
  const files = new Set();
  const walk = (v) => {
    if (typeof v === 'string') {
      if (v.startsWith('./dist/')) files.add(v);
    } else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(pkg.publishConfig?.exports ?? pkg.exports);
  for (const k of ['main', 'types', 'module']) if (typeof pkg[k] === 'string') walk(`./${pkg[k].replace(/^\.\//, '')}`);
  return [...files];
}

/** Throws naming the missing files when a package is not built (packing it would ship nothing). */
export function assertBuilt(p) {
  const missing = builtEntries(p.pkg).filter((f) => !existsSync(join(p.dir, f)));
  if (missing.length) {
    throw new Error(`${p.name} is not built (missing ${missing.join(', ')}): run \`pnpm build\` (turbo run build) first`);
  }
}

/**
 * `pnpm pack` each package into `dest`; returns name → absolute tarball path.
 * @param {ReturnType<typeof publishablePackages>} pkgs
 * @param {string} dest
 */
export async function packAll(pkgs, dest) {
  for (const p of pkgs) assertBuilt(p);
  const out = new Map();
  // Two at a time: pnpm pack is mostly process start-up and gzip.
  const queue = [...pkgs];
  const worker = async () => {
    for (let p = queue.shift(); p; p = queue.shift()) {
      const { stdout } = await run('pnpm', ['pack', '--pack-destination', dest, '--json'], { cwd: p.dir, maxBuffer: 16 << 20 });
      const info = JSON.parse(stdout.slice(stdout.indexOf('{')));
      out.set(p.name, info.filename);
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}
