import { CanopyError } from './errors.js';
import { getDefaultRegistry, isCompatibleContract, type BackendRegistry } from './registry.js';
import { CONTRACT_VERSION, type BackendFactory } from './types.js';

export interface LoadBackendModuleOptions {
  /** Registry the factories are added to (default: the process-wide `getDefaultRegistry()`). */
  registry?: BackendRegistry;
  /** Directory relative paths and package names are resolved from (default `process.cwd()`). */
  cwd?: string;
  /** Replace a different factory already registered under the same name (default false: error). */
  replace?: boolean;
}

/** Looks like a factory: what a plugin module exports. Checked in detail by `checkFactory`. */
function looksLikeFactory(v: unknown): v is BackendFactory {
  const f = v as BackendFactory;
  return !!f && typeof f === 'object' && typeof f.name === 'string' && typeof f.create === 'function' && typeof f.probe === 'function';
}

function describeExports(mod: Record<string, unknown>): string {
  const names = Object.keys(mod);
  return names.length === 0 ? 'it has no exports' : `its exports: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''}`;
}

/**
 * Factories a module offers, in this order, without duplicates: the default export (a factory or
 * an array of them), `backendFactory`, the `factories` array, then any other export that looks
 * like a factory (an object with `name`, `probe()` and `create()`).
 */
export function findBackendFactories(mod: Record<string, unknown>): BackendFactory[] {
  const found: BackendFactory[] = [];
  const add = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(add);
    else if (looksLikeFactory(v) && !found.includes(v)) found.push(v);
  };
  add(mod.default);
  add(mod.backendFactory);
  add(mod.factories);
  for (const [k, v] of Object.entries(mod)) if (k !== 'default') add(v);
  return found;
}

function checkFactory(f: BackendFactory, from: string): void {
  if (f.name === '') throw new CanopyError('bad-backend', `backend module ${from}: a factory has an empty name`);
  if (typeof f.contractVersion !== 'number') {
    throw new CanopyError('contract-version', `backend "${f.name}" from ${from} declares no contractVersion (this @canopy/core implements v${CONTRACT_VERSION})`);
  }
  if (!isCompatibleContract(f.contractVersion)) {
    throw new CanopyError(
      'contract-version',
      `backend "${f.name}" from ${from} was written for Canopy contract v${f.contractVersion}; this @canopy/core implements v${CONTRACT_VERSION} (rebuild the backend against a matching @canopy/core)`,
    );
  }
  if (typeof f.priority !== 'number' || !Number.isFinite(f.priority)) {
    throw new CanopyError('bad-backend', `backend "${f.name}" from ${from}: priority must be a finite number, got ${String(f.priority)}`);
  }
}

const isUrl = (s: string) => /^(file|data|https?|node):/i.test(s);
const isPath = (s: string) => s.startsWith('./') || s.startsWith('../') || s === '.' || s === '..' || s.startsWith('/') || /^[A-Za-z]:[\\/]/.test(s) || s.startsWith('.\\') || s.startsWith('..\\');

/** Absolute filesystem path → file URL, without node:url so core stays importable in browsers. */
function fileHref(abs: string): string {
  let p = abs.replace(/\\/g, '/');
  if (/^[A-Za-z]:\//.test(p)) p = `/${p}`;
  return `file://${p
    .split('/')
    .map((seg) => encodeURIComponent(seg).replace(/%3A/gi, ':'))
    .join('/')}`;
}

function currentDir(cwd: string | undefined): string {
  if (cwd) return cwd;
  const proc = (globalThis as { process?: { cwd?: () => string } }).process;
  if (proc?.cwd) return proc.cwd();
  throw new CanopyError('backend-module-not-found', 'loadBackendModule: relative paths need a cwd outside Node (pass opts.cwd)');
}

function isNotFound(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' || code === 'ERR_PACKAGE_PATH_NOT_EXPORTED' || /Cannot find (module|package)|Failed to (resolve|load)/i.test(String((e as Error)?.message));
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0].slice(0, 300);
}

/** The URL or specifier to import, and a text naming it in errors. */
async function importModule(specifier: string, cwd: string | undefined): Promise<Record<string, unknown>> {
  if (isUrl(specifier) || isPath(specifier)) {
    const href = isUrl(specifier)
      ? specifier
      : new URL(specifier.replace(/\\/g, '/'), fileHref(currentDir(cwd).replace(/[\\/]*$/, '/'))).href;
    try {
      return (await import(/* @vite-ignore */ href)) as Record<string, unknown>;
    } catch (e) {
      if (isNotFound(e)) throw new CanopyError('backend-module-not-found', `backend module ${specifier} not found (looked for ${href}): ${firstLine(e)}`);
      throw new CanopyError('backend-module-failed', `backend module ${specifier} failed to load: ${firstLine(e)}`);
    }
  }
  // A package name: first as this copy of core resolves it, then from `cwd` (a plugin installed in
  // the user's project but not next to @canopy/core, as with pnpm's strict node_modules).
  let firstError: unknown;
  try {
    return (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
  } catch (e) {
    if (!isNotFound(e)) throw new CanopyError('backend-module-failed', `backend package ${specifier} failed to load: ${firstLine(e)}`);
    firstError = e;
  }
  let resolved: string | undefined;
  try {
    resolved = await resolveFrom(specifier, currentDir(cwd));
  } catch {
    resolved = undefined;
  }
  if (!resolved) {
    throw new CanopyError('backend-module-not-found', `backend package ${specifier} not found (is it installed where ${cwd ?? 'the current directory'} can see it?): ${firstLine(firstError)}`);
  }
  try {
    return (await import(/* @vite-ignore */ fileHref(resolved))) as Record<string, unknown>;
  } catch (e) {
    throw new CanopyError('backend-module-failed', `backend package ${specifier} (${resolved}) failed to load: ${firstLine(e)}`);
  }
}

/**
 * Resolve a package specifier from a file in `dir`: walk up to node_modules/<name>/package.json
 * and take the ESM entry (the "import", "node" or "default" export, then "module", then "main");
 * failing that, CommonJS resolution (covers NODE_PATH and other layouts).
 */
async function resolveFrom(specifier: string, dir: string): Promise<string | undefined> {
  // computed specifiers: bundlers for the browser must not try to resolve node: builtins
  // structural types: core type-checks without @types/node
  const nodeModule = (await import(/* @vite-ignore */ ['node', 'module'].join(':'))) as { createRequire(path: string): { resolve(id: string): string } };
  const fs = (await import(/* @vite-ignore */ ['node', 'fs'].join(':'))) as {
    existsSync(path: string): boolean;
    readFileSync(path: string, encoding: 'utf8'): string;
  };
  const base = dir.replace(/[\\/]*$/, '');
  const parts = specifier.split('/');
  const nameLen = specifier.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameLen).join('/');
  const sub = parts.length > nameLen ? `./${parts.slice(nameLen).join('/')}` : '.';
  for (let d = base; ; ) {
    const pkgDir = `${d}/node_modules/${name}`;
    if (fs.existsSync(`${pkgDir}/package.json`)) {
      const pkg = JSON.parse(fs.readFileSync(`${pkgDir}/package.json`, 'utf8')) as { exports?: unknown; module?: string; main?: string };
      const entry = esmEntry(pkg, sub);
      if (entry) return `${pkgDir}/${entry.replace(/^\.\//, '')}`;
      break;
    }
    const up = d.replace(/[\\/][^\\/]*$/, '');
    if (up === d || up === '') break;
    d = up;
  }
  try {
    return nodeModule.createRequire(`${base}/package.json`).resolve(specifier);
  } catch {
    return undefined;
  }
}

/** The ESM entry for subpath `sub` ('.' for the root) of a package.json. */
function esmEntry(pkg: { exports?: unknown; module?: string; main?: string }, sub: string): string | undefined {
  const pick = (e: unknown): string | undefined => {
    if (typeof e === 'string') return e;
    if (Array.isArray(e)) return pick(e[0]);
    if (e && typeof e === 'object') {
      const o = e as Record<string, unknown>;
      return pick(o.import) ?? pick(o.node) ?? pick(o.default);
    }
    return undefined;
  };
  const ex = pkg.exports;
  if (ex !== undefined) {
    const isMap = ex && typeof ex === 'object' && !Array.isArray(ex) && Object.keys(ex).some((k) => k.startsWith('.'));
    if (isMap) return pick((ex as Record<string, unknown>)[sub]);
    return sub === '.' ? pick(ex) : undefined;
  }
  if (sub !== '.') return sub.slice(2);
  return pkg.module ?? pkg.main ?? 'index.js';
}

/**
 * Load a third-party backend at run time: import `specifier` (a path relative to `cwd`, an
 * absolute path, a file: URL or a package name), find the BackendFactory objects it exports
 * (see `findBackendFactories`), check each one's contract version and register them all in the
 * registry. All or nothing: if any factory is refused, none is registered.
 *
 * Throws CanopyError: `backend-module-not-found`, `backend-module-failed` (it threw while loading),
 * `no-backend-factory`, `contract-version`, `bad-backend`, `duplicate-backend`.
 *
 *   const [f] = await loadBackendModule('./my-backend/dist/index.js');
 *   const backend = await f.create();
 */
export async function loadBackendModule(specifier: string, opts: LoadBackendModuleOptions = {}): Promise<BackendFactory[]> {
  if (typeof specifier !== 'string' || specifier.trim() === '') {
    throw new CanopyError('backend-module-not-found', 'loadBackendModule: give a path, file URL or package name');
  }
  const mod = await importModule(specifier, opts.cwd);
  const factories = findBackendFactories(mod);
  if (factories.length === 0) {
    throw new CanopyError(
      'no-backend-factory',
      `backend module ${specifier} exports no BackendFactory (looked at the default export, "backendFactory", "factories" and every export for an object with name, probe() and create()); ${describeExports(mod)}`,
    );
  }
  for (const f of factories) checkFactory(f, specifier);
  const registry = opts.registry ?? getDefaultRegistry();
  for (const f of factories) {
    const existing = registry.get(f.name);
    if (existing && existing !== f && !opts.replace && (existing.priority !== f.priority || existing.contractVersion !== f.contractVersion)) {
      throw new CanopyError('duplicate-backend', `backend module ${specifier}: a different backend is already registered as "${f.name}" (pass { replace: true } to replace it)`);
    }
  }
  for (const f of factories) registry.register(f, { replace: opts.replace });
  return factories;
}
