#!/usr/bin/env node
/**
 * Start a backend from this template: copy it to DIR and rename everything.
 *
 *   node tooling/backend-template/scripts/new-backend.mjs DIR NAME [--package PKG] [--version V]
 *
 *   DIR   where to create the package (must not exist or be empty)
 *   NAME  backend name, lower case (`--backend NAME`): 'mine' gives MineBackend, mineBackendFactory,
 *         MINE_CAPABILITIES
 *   PKG   package name (default canopy-backend-NAME)
 *   V     version range for @canopy/* dependencies when DIR is outside this monorepo
 *         (default ^0.1.0); inside it they stay workspace: links
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const templateDir = resolve(here, '..');
const repoRoot = resolve(templateDir, '../..');

/** Files of the template that make a new package (no node_modules, dist, scripts). */
const FILES = ['package.json', 'README.md', 'tsconfig.json', 'tsup.config.ts', 'vitest.config.ts', 'src/index.ts', 'test/conformance.test.ts', 'test/errors.test.ts'];

export function newBackend(dir, name, opts = {}) {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`backend name must be lower case letters, digits and dashes, got "${name}"`);
  const target = resolve(dir);
  if (existsSync(target) && (!statSync(target).isDirectory() || readdirSync(target).length > 0)) {
    throw new Error(`${target} exists and is not an empty directory`);
  }
  const camel = name.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
  const Pascal = camel[0].toUpperCase() + camel.slice(1);
  const UPPER = name.replace(/-/g, '_').toUpperCase();
  const pkgName = opts.packageName ?? `canopy-backend-${name}`;
  const inRepo = !relative(repoRoot, target).startsWith('..');
  const rename = (text) =>
    text
      .replaceAll('canopy-backend-template', pkgName)
      .replaceAll('TemplateBackend', `${Pascal}Backend`)
      .replaceAll('templateBackendFactory', `${camel}BackendFactory`)
      .replaceAll('TEMPLATE_CAPABILITIES', `${UPPER}_CAPABILITIES`)
      .replaceAll("'template'", `'${name}'`)
      .replaceAll('template backend', `${name} backend`)
      .replaceAll("name: 'backend-template'", `name: '${pkgName}'`);
  for (const f of FILES) {
    let text = rename(readFileSync(join(templateDir, f), 'utf8'));
    if (f === 'package.json') {
      const pkg = JSON.parse(text);
      pkg.version = '0.1.0';
      pkg.description = `Canopy attention backend "${name}".`;
      if (!inRepo) {
        // published versions instead of workspace links; the @canopy/source condition is harmless outside
        for (const deps of [pkg.dependencies, pkg.devDependencies]) {
          for (const k of Object.keys(deps ?? {})) if (deps[k].startsWith('workspace:')) deps[k] = opts.version ?? '^0.1.0';
        }
      }
      text = `${JSON.stringify(pkg, null, 2)}\n`;
    }
    if (f === 'README.md') {
      text = `# ${pkgName}\n\nA Canopy attention backend ("${name}"), started from tooling/backend-template.\n\n${text.split('\n').slice(2).join('\n')}`;
    }
    mkdirSync(dirname(join(target, f)), { recursive: true });
    writeFileSync(join(target, f), text);
  }
  return { target, packageName: pkgName, inRepo };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const flag = (n) => {
    const i = args.indexOf(`--${n}`);
    if (i < 0) return undefined;
    const v = args[i + 1];
    args.splice(i, 2);
    return v;
  };
  const packageName = flag('package');
  const version = flag('version');
  const [dir, name] = args;
  if (!dir || !name) {
    console.error('usage: node tooling/backend-template/scripts/new-backend.mjs DIR NAME [--package PKG] [--version V]');
    process.exit(2);
  }
  try {
    const r = newBackend(dir, name, { packageName, version });
    console.log(`created ${r.packageName} in ${r.target}${r.inRepo ? ' (workspace package: run pnpm install at the repo root)' : ''}`);
    console.log('next: pnpm install && pnpm test (the conformance kit passes before you change anything), then make run() fast');
  } catch (e) {
    console.error(`new-backend: ${e.message}`);
    process.exit(1);
  }
}
