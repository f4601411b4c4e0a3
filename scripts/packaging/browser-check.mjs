#!/usr/bin/env node
// Browser check: the packages browser apps use must not import Node built-ins.
//
//   node scripts/packaging/browser-check.mjs
//
// Bundles each package's built entry (dist/index.js, what npm ships) for `platform: 'browser'`
// with esbuild, following its @canopy dependencies to their dist/ too, and fails on any static
// import or require of a Node built-in (`fs`, `node:fs`, …) anywhere in the bundle graph.
// Dynamic imports of computed specifiers (core's plugin loader) are not followed by bundlers,
// which is what keeps them out of browser bundles.
import { builtinModules, createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { assertBuilt, publishablePackages, repoRoot } from './lib.mjs';

export const BROWSER_PACKAGES = ['@canopy/core', '@canopy/merge', '@canopy/planner', '@canopy/backend-webgpu'];

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const isBuiltin = (spec) => spec.startsWith('node:') || builtins.has(spec) || builtins.has(spec.split('/')[0]);

async function loadEsbuild() {
  const req = createRequire(join(repoRoot, 'tooling/consumer-test/package.json'));
  return import(pathToFileURL(req.resolve('esbuild')).href);
}

/**
 * Bundle `entry` for the browser; returns the Node built-ins it reaches ("spec (from file)")
 * and any other bundling error. [] means browser-safe.
 */
export async function browserBundleProblems(entry) {
  const esbuild = await loadEsbuild();
  const found = [];
  const noNode = {
    name: 'no-node-builtins',
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === 'entry-point' || !isBuiltin(args.path)) return undefined;
        found.push(`${args.path} (imported by ${args.importer.replace(`${repoRoot}/`, '')})`);
        return { path: args.path, external: true };
      });
    },
  };
  try {
    await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
      plugins: [noNode],
    });
  } catch (e) {
    const errors = e.errors?.map((m) => `${m.text}${m.location ? ` (${m.location.file}:${m.location.line})` : ''}`) ?? [String(e.message)];
    return [...found.map((f) => `Node built-in ${f}`), ...errors.map((m) => `bundle error: ${m}`)];
  }
  return found.map((f) => `Node built-in ${f}`);
}

/** name → problems for every browser package (from its dist/). */
export async function checkBrowserPackages() {
  const byName = new Map(publishablePackages().map((p) => [p.name, p]));
  const out = new Map();
  for (const name of BROWSER_PACKAGES) {
    const p = byName.get(name);
    if (!p) {
      out.set(name, [`${name} is not a publishable workspace package`]);
      continue;
    }
    assertBuilt(p);
    out.set(name, await browserBundleProblems(join(p.dir, 'dist/index.js')));
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  let bad = 0;
  for (const [name, problems] of await checkBrowserPackages()) {
    if (problems.length) bad++;
    console.log(`${problems.length ? 'FAIL' : 'ok  '} ${name}${problems.map((p) => `\n     ${p}`).join('')}`);
  }
  if (bad) process.exit(1);
}
