#!/usr/bin/env node
// Consumer test: use the packages the way npm users get them.
//
//   node scripts/packaging/consumer-test.mjs [--keep]
//
// 1. `pnpm pack` every publishable package (publishConfig applied, workspace: ranges rewritten).
// 2. Check each packed manifest: no install-time scripts, no workspace-only export conditions,
//    no workspace: ranges.
// 3. Install all tarballs together into a fresh project under the system temp dir (outside the
//    workspace: no workspace links, none of our devDependencies) with plain npm.
// 4. Import every package, run tooling/consumer-test/fixture/consumer.mjs (W1, prefix planner,
//    reference backend, checked against referenceAttention), type-check consumer.ts with the
//    workspace's TypeScript (`tsc --noEmit`), then compile and run it.
// A file missing from `files`, a wrong `exports` path or broken .d.ts makes one of these fail.
// Needs a build first (`pnpm build`); says so if dist/ is missing. --keep leaves the temp dir.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { packAll, publishablePackages, repoRoot } from './lib.mjs';

const exec = promisify(execFile);
const fixtureDir = join(repoRoot, 'tooling/consumer-test/fixture');
const LIFECYCLE = ['preinstall', 'install', 'postinstall', 'prepare', 'preprepare', 'postprepare'];

/** Problems in a packed package.json (the manifest npm would serve). */
export function manifestProblems(pkg) {
  const problems = [];
  for (const s of LIFECYCLE) {
    if (pkg.scripts?.[s]) problems.push(`has a "${s}" script (${pkg.scripts[s]}): installing must not run, download or compile anything`);
  }
  const entryFields = JSON.stringify([pkg.exports, pkg.imports, pkg.main, pkg.types, pkg.module]);
  if (entryFields.includes('@canopy/source') || entryFields.includes('/src/')) problems.push('published exports still carry the workspace-only "@canopy/source" condition or src/ paths (set publishConfig.exports)');
  for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
    for (const [dep, range] of Object.entries(pkg[field] ?? {})) {
      if (String(range).startsWith('workspace:')) problems.push(`${field}.${dep} is still "${range}"`);
    }
  }
  return problems;
}

async function sh(cmd, args, opts) {
  try {
    return await exec(cmd, args, { maxBuffer: 64 << 20, ...opts });
  } catch (e) {
    const out = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(-40).join('\n');
    throw new Error(`\`${[cmd, ...args].join(' ')}\` failed in ${opts?.cwd ?? process.cwd()}:\n${out}`);
  }
}

async function readTarManifest(tgz) {
  const { stdout } = await sh('tar', ['-xzOf', tgz, 'package/package.json']);
  return JSON.parse(stdout);
}

/**
 * Runs the whole consumer test; resolves to a summary, throws with the failing step's output.
 * @param {{ keep?: boolean, log?: (s: string) => void }} [opts]
 */
export async function consumerTest(opts = {}) {
  const log = opts.log ?? ((s) => console.log(s));
  const work = mkdtempSync(join(tmpdir(), 'canopy-consumer-'));
  /** @type {{ work: string, packages: string[], imports: Record<string, number>, esm: any, ts: any }} */
  const summary = { work, packages: [], imports: {}, esm: null, ts: null };
  try {
    const pkgs = publishablePackages();
    const tarDir = join(work, 'tarballs');
    mkdirSync(tarDir);
    const tarballs = await packAll(pkgs, tarDir);
    summary.packages = [...tarballs.keys()];
    log(`packed ${summary.packages.join(', ')}`);

    const problems = [];
    for (const [name, tgz] of tarballs) for (const p of manifestProblems(await readTarManifest(tgz))) problems.push(`${name}: ${p}`);
    if (problems.length) throw new Error(`packed manifests:\n  ${problems.join('\n  ')}`);

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'canopy-consumer', version: '0.0.0', private: true, type: 'module' }, null, 2)}\n`);
    const t0 = Date.now();
    // A clean environment for npm: no workspace .npmrc, no pnpm settings leaking in.
    const env = { ...process.env, npm_config_workspaces: undefined, npm_config_user_agent: undefined, npm_config_update_notifier: 'false' };
    for (const k of Object.keys(env)) if (k.startsWith('npm_config_') && !['npm_config_cache', 'npm_config_registry', 'npm_config_update_notifier'].includes(k)) delete env[k];
    await sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...tarballs.values()], { cwd: app, env });
    log(`npm install of ${tarballs.size} tarballs: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    for (const f of readdirSync(fixtureDir)) copyFileSync(join(fixtureDir, f), join(app, f));

    // A fresh install has no CUDA addon: no prebuilt package is published yet and nothing is
    // built at install time. Keep a developer's explicit addon path out of the consumer runs.
    const runEnv = { ...process.env };
    delete runEnv.CANOPY_CUDA_ADDON;

    // Every package imports from the fresh project and exports something.
    const importer = [
      'const out = {};',
      ...summary.packages.map((n) => `out[${JSON.stringify(n)}] = Object.keys(await import(${JSON.stringify(n)})).length;`),
      'console.log(JSON.stringify(out));',
    ].join('\n');
    writeFileSync(join(app, 'imports.mjs'), importer);
    summary.imports = JSON.parse((await sh(process.execPath, ['imports.mjs'], { cwd: app, env: runEnv })).stdout.trim().split('\n').pop());
    const empty = Object.entries(summary.imports).filter(([, n]) => n === 0);
    if (empty.length) throw new Error(`packages with no exports when installed: ${empty.map(([n]) => n).join(', ')}`);
    log(`imports: ${JSON.stringify(summary.imports)}`);

    // The ESM run and the TypeScript check/compile are independent: overlap them.
    const tsc = createRequire(join(repoRoot, 'package.json')).resolve('typescript/bin/tsc');
    const esmRun = sh(process.execPath, ['consumer.mjs'], { cwd: app, env: runEnv });
    const tsBuild = (async () => {
      await sh(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json'], { cwd: app });
      await sh(process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit', 'false'], { cwd: app });
    })();
    const [esm] = await Promise.all([esmRun, tsBuild]);
    summary.esm = JSON.parse(esm.stdout.trim().split('\n').pop());
    log(`consumer.mjs: ${JSON.stringify(summary.esm)}`);
    summary.ts = JSON.parse((await sh(process.execPath, ['out/consumer.js'], { cwd: app, env: runEnv })).stdout.trim().split('\n').pop());
    log(`consumer.ts (tsc --noEmit passed): ${JSON.stringify(summary.ts)}`);
    return summary;
  } finally {
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    await consumerTest({ keep: process.argv.includes('--keep') });
    console.log('consumer-test: ok');
  } catch (e) {
    console.error(`consumer-test: FAILED\n${e.message}`);
    process.exit(1);
  }
}
