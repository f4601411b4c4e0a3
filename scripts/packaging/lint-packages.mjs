#!/usr/bin/env node
// publint and @arethetypeswrong/cli over the packed tarball of every publishable package.
//
//   node scripts/packaging/lint-packages.mjs        # packs into a temp dir, lints, exit 1 on problems
//
// Both tools come from tooling/consumer-test's devDependencies. Linting the tarball (not the
// folder) is the point: it sees exactly what npm would serve, after publishConfig is applied.
// attw runs with the esm-only profile: the packages are ESM only (Node >= 20.19 can require()
// them), so the node10 and node16-from-CJS resolutions are not targets.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { packAll, publishablePackages, repoRoot } from './lib.mjs';

const run = promisify(execFile);
const toolRequire = createRequire(join(repoRoot, 'tooling/consumer-test/package.json'));

/** publint messages (warnings and errors) for one tarball, formatted. */
export async function publintTarball(tarball) {
  const { publint } = await import(pathToFileURL(toolRequire.resolve('publint')).href);
  const { formatMessage } = await import(pathToFileURL(toolRequire.resolve('publint/utils')).href);
  const data = readFileSync(tarball);
  const tar = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  const { messages, pkg } = await publint({ pack: { tarball: tar }, level: 'warning', strict: true });
  return messages.map((m) => `${m.type}: ${formatMessage(m, pkg, { color: false }) ?? m.code}`);
}

/** attw problems for one tarball ([] when none), as text. */
export async function attwTarball(tarball) {
  const attwDir = dirname(toolRequire.resolve('@arethetypeswrong/cli/package.json'));
  const bin = join(attwDir, JSON.parse(readFileSync(join(attwDir, 'package.json'), 'utf8')).bin.attw);
  try {
    const { stdout } = await run(process.execPath, [bin, tarball, '--profile', 'esm-only', '--no-definitely-typed', '--format', 'ascii', '--no-color', '--no-emoji'], {
      maxBuffer: 16 << 20,
      env: { ...process.env, FORCE_COLOR: '0' },
    });
    // attw exits 0 for a package without types; every package of ours must ship them.
    if (/does not contain types/.test(stdout)) return [`no types found in the tarball: ${stdout.trim().split('\n')[0]}`];
    return [];
  } catch (e) {
    const out = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim();
    return [out || String(e.message)];
  }
}

async function main() {
  const dest = mkdtempSync(join(tmpdir(), 'canopy-lint-'));
  let failed = 0;
  try {
    const tarballs = await packAll(publishablePackages(), dest);
    for (const [name, tgz] of tarballs) {
      const problems = [...(await publintTarball(tgz)).map((m) => `publint ${m}`), ...(await attwTarball(tgz)).map((m) => `attw ${m}`)];
      if (problems.length) failed++;
      console.log(`${problems.length ? 'FAIL' : 'ok  '} ${name}${problems.map((p) => `\n     ${p.replace(/\n/g, '\n     ')}`).join('')}`);
    }
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
  if (failed) {
    console.error(`lint-packages: ${failed} package(s) with packaging problems`);
    process.exit(1);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
