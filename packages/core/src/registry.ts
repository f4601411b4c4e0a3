import { fail } from './errors.js';
import { CONTRACT_VERSION, type BackendFactory } from './types.js';

export interface ProbeReport {
  name: string;
  priority: number;
  available: boolean;
  reason: string;
  /** Available only through a software emulation of its device (see BackendAvailability). */
  emulated: boolean;
}

/** Major contract versions a registry accepts. Bump CONTRACT_VERSION on breaking changes. */
export function isCompatibleContract(version: number): boolean {
  return Number.isInteger(version) && version === CONTRACT_VERSION;
}

/**
 * A set of backend factories. Registries are plain instances: make your own, or use the
 * process-wide default (`getDefaultRegistry`), which lives on `globalThis` under a versioned
 * symbol so two copies of @canopy/core in one process share it instead of colliding.
 */
export class BackendRegistry {
  private readonly factories = new Map<string, BackendFactory>();

  /**
   * Add a factory. Registering the same name again is idempotent when priority and contract
   * version match (a second copy of a package registering itself); a different factory under a
   * taken name needs `{ replace: true }`.
   */
  register(factory: BackendFactory, opts: { replace?: boolean } = {}): void {
    if (!factory || typeof factory.name !== 'string' || factory.name === '') {
      fail('bad-backend', 'registerBackend: a factory needs a non-empty name');
    }
    if (typeof factory.probe !== 'function' || typeof factory.create !== 'function') {
      fail('bad-backend', `registerBackend(${factory.name}): a factory needs probe() and create() functions`);
    }
    if (!isCompatibleContract(factory.contractVersion)) {
      fail(
        'contract-version',
        `backend "${factory.name}" was written for Canopy contract v${factory.contractVersion}; this @canopy/core implements v${CONTRACT_VERSION}`,
      );
    }
    const existing = this.factories.get(factory.name);
    if (existing && existing !== factory && !opts.replace) {
      if (existing.priority === factory.priority && existing.contractVersion === factory.contractVersion) return;
      fail('duplicate-backend', `a different backend is already registered as "${factory.name}" (pass { replace: true } to replace it)`);
    }
    this.factories.set(factory.name, factory);
  }

  unregister(name: string): boolean {
    return this.factories.delete(name);
  }

  get(name: string): BackendFactory | undefined {
    return this.factories.get(name);
  }

  /** Factories by descending priority. */
  list(): BackendFactory[] {
    return [...this.factories.values()].sort((a, b) => b.priority - a.priority);
  }

  /** Probe every backend concurrently; a probe that throws counts as unavailable with its message. */
  async probeAll(): Promise<ProbeReport[]> {
    return Promise.all(
      this.list().map(async (f) => {
        try {
          const r = await f.probe();
          return {
            name: f.name,
            priority: f.priority,
            available: !!r.available,
            reason: r.reason ?? (r.available ? 'available' : 'unavailable'),
            emulated: !!r.emulated,
          };
        } catch (e) {
          return { name: f.name, priority: f.priority, available: false, reason: `probe failed: ${(e as Error).message}`, emulated: false };
        }
      }),
    );
  }

  /**
   * The best available backend, with every probe's report (why others were skipped): the
   * highest-priority one that runs natively, else the highest-priority emulated one.
   */
  async pickBest(): Promise<{ factory: BackendFactory; reports: ProbeReport[] }> {
    const reports = await this.probeAll();
    const best = pickBestReport(reports);
    if (!best) {
      fail('no-backend', `no backend is available: ${reports.map((r) => `${r.name}: ${r.reason}`).join('; ') || 'none registered'}`);
    }
    return { factory: this.factories.get(best.name)!, reports };
  }
}

/** The report `pickBest` chooses: first native available backend in priority order, else first emulated one. */
export function pickBestReport(reports: readonly ProbeReport[]): ProbeReport | undefined {
  return reports.find((r) => r.available && !r.emulated) ?? reports.find((r) => r.available);
}

const REGISTRY_KEY = Symbol.for(`@canopy/core.backend-registry.v${CONTRACT_VERSION}`);

export function getDefaultRegistry(): BackendRegistry {
  const g = globalThis as unknown as Record<symbol, BackendRegistry | undefined>;
  let r = g[REGISTRY_KEY];
  if (!r) {
    r = new BackendRegistry();
    g[REGISTRY_KEY] = r;
  }
  return r;
}

export function registerBackend(factory: BackendFactory, opts?: { replace?: boolean }): void {
  getDefaultRegistry().register(factory, opts);
}
