/**
 * Finding backends. The bench registers the reference backend (always there) and, when their
 * packages can be imported, the CUDA and WebGPU backends; an import failure becomes
 * "skipped: <reason>". `--backend-module PATH` adds any module that exports BackendFactory
 * objects (a third-party backend written against @canopy/core alone).
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import {
  pickBestReport,
  BackendRegistry,
  CanopyError,
  referenceBackendFactory,
  type BackendFactory,
  type ProbeReport,
} from '@canopy/core';
import { loadCpu, loadCuda, loadWebgpu } from './optional-backends.js';

export interface BackendLoadReport {
  name: string;
  /** Where it came from: "@canopy/core", a package name, or a module path. */
  from: string;
  loaded: boolean;
  reason?: string;
}

interface OptionalBackend {
  name: string;
  pkg: string;
  exportName: string;
  load: () => Promise<Record<string, unknown>>;
}

// The import() calls live in optional-backends.js (see there for why).
const OPTIONAL_BACKENDS: OptionalBackend[] = [
  {
    name: 'cuda',
    pkg: '@canopy/backend-cuda',
    exportName: 'cudaBackendFactory',
    load: loadCuda,
  },
  {
    name: 'cpu',
    pkg: '@canopy/backend-cpu',
    exportName: 'cpuBackendFactory',
    load: loadCpu,
  },
  {
    name: 'webgpu',
    pkg: '@canopy/backend-webgpu',
    exportName: 'webgpuBackendFactory',
    load: loadWebgpu,
  },
];

export const KNOWN_BACKENDS = ['reference', ...OPTIONAL_BACKENDS.map((b) => b.name)];

function isFactory(v: unknown): v is BackendFactory {
  const f = v as BackendFactory;
  return !!f && typeof f === 'object' && typeof f.name === 'string' && typeof f.probe === 'function' && typeof f.create === 'function';
}

function shortReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const first = msg.split('\n')[0];
  if (/Cannot find (package|module)|ERR_MODULE_NOT_FOUND|Failed to (resolve|load)/i.test(first)) return `package not installed (${first.slice(0, 160)})`;
  return first.slice(0, 240);
}

export interface LoadOptions {
  /** Backend names that will be used; optional packages not in it are not imported. `undefined` = all. */
  wanted?: string[];
  /** Extra modules (`--backend-module PATH`). */
  modules?: string[];
}

export interface LoadedBackends {
  registry: BackendRegistry;
  loads: BackendLoadReport[];
}

export async function loadBackends(opts: LoadOptions = {}): Promise<LoadedBackends> {
  const registry = new BackendRegistry();
  registry.register(referenceBackendFactory);
  const loads: BackendLoadReport[] = [{ name: 'reference', from: '@canopy/core', loaded: true }];
  for (const b of OPTIONAL_BACKENDS) {
    if (opts.wanted && !opts.wanted.includes(b.name)) continue;
    try {
      const mod = await b.load();
      const f = mod[b.exportName];
      if (!isFactory(f)) throw new Error(`${b.pkg} does not export ${b.exportName}`);
      registry.register(f);
      loads.push({ name: f.name, from: b.pkg, loaded: true });
    } catch (e) {
      loads.push({ name: b.name, from: b.pkg, loaded: false, reason: shortReason(e) });
    }
  }
  for (const path of opts.modules ?? []) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(resolve(path)).href)) as Record<string, unknown>;
    } catch (e) {
      throw new CanopyError('bad-backend-module', `--backend-module ${path}: cannot import: ${shortReason(e)}`);
    }
    const factories = Object.values(mod).filter(isFactory);
    if (factories.length === 0) throw new CanopyError('bad-backend-module', `--backend-module ${path}: exports no BackendFactory (an object with name, priority, probe() and create())`);
    for (const f of factories) {
      registry.register(f, { replace: true });
      loads.push({ name: f.name, from: path, loaded: true });
    }
  }
  return { registry, loads };
}

export interface Selection {
  /** Backends to run, in order. */
  factories: BackendFactory[];
  /** Every known backend's state: why it is used or skipped. */
  notes: Array<{ name: string; used: boolean; reason: string }>;
  /** The one line `--backend auto` prints. */
  line: string;
}

/**
 * `auto`: the highest-priority available backend (CUDA, then WebGPU, then CPU, then reference),
 * where a backend that only runs in software emulation (WebGPU on lavapipe) ranks after native ones.
 * `all`: every available one. Otherwise a comma list of names, each of which must be available.
 */
export async function selectBackends(spec: string, loaded: LoadedBackends): Promise<Selection> {
  const { registry, loads } = loaded;
  const reports: ProbeReport[] = await registry.probeAll();
  const byName = new Map(reports.map((r) => [r.name, r]));
  const failedLoads = loads.filter((l) => !l.loaded);
  const allNames = [...new Set([...reports.map((r) => r.name), ...failedLoads.map((l) => l.name)])];
  const why = (name: string): string => {
    const r = byName.get(name);
    if (r) return r.reason;
    return failedLoads.find((l) => l.name === name)?.reason ?? 'not loaded';
  };
  let chosen: string[];
  const lower = spec.trim().toLowerCase();
  if (lower === 'auto') {
    const best = pickBestReport(reports); // priority order, native backends before emulated ones
    if (!best) throw new CanopyError('no-backend', `no backend is available: ${allNames.map((n) => `${n}: ${why(n)}`).join('; ')}`);
    chosen = [best.name];
  } else if (lower === 'all') {
    chosen = reports.filter((r) => r.available).map((r) => r.name);
  } else {
    chosen = lower.split(',').map((s) => s.trim()).filter(Boolean);
    for (const name of chosen) {
      if (!byName.has(name) && !failedLoads.some((l) => l.name === name)) {
        throw new CanopyError('unknown-backend', `unknown backend "${name}" (known: auto, all, ${[...new Set([...KNOWN_BACKENDS, ...allNames])].join(', ')})`);
      }
      const r = byName.get(name);
      if (!r || !r.available) throw new CanopyError('backend-unavailable', `backend "${name}" is not available here: ${why(name)}`);
    }
  }
  const notes = allNames.map((name) => {
    const used = chosen.includes(name);
    const r = byName.get(name);
    let reason = why(name);
    if (!used && r?.available) {
      reason =
        lower !== 'auto'
          ? 'available, not asked for'
          : r.emulated
            ? `available only in software emulation (${r.reason}); ${chosen[0]} runs natively`
            : `available, lower priority than ${chosen[0]}`;
    }
    return { name, used, reason };
  });
  const skipped = notes.filter((n) => !n.used).map((n) => `${n.name} skipped: ${n.reason}`);
  const line =
    `backend ${lower === 'auto' ? 'auto → ' : ''}${chosen.join(', ')}` +
    ` (${chosen.map((c) => why(c)).join('; ')})` +
    (skipped.length ? `; ${skipped.join('; ')}` : '');
  return { factories: chosen.map((n) => registry.get(n)!), notes, line };
}

