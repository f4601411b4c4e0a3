/**
 * A minimal stand-in for the parts of vitest that @canopy/backend-testkit's conformance suite
 * uses (describe / it / it.skip / ctx.skip / expect), so the very same suite runs inside a bundled
 * script on the GPU machine, which has Node but no node_modules. Tests are collected when
 * `describe` runs and executed in order by `runCollected`; every `toBeLessThanOrEqual` check is
 * recorded with its message so the driver can report the measured errors.
 */
type TestFn = (ctx: { skip: (why?: string) => never }) => unknown;
interface Collected {
  name: string;
  fn: TestFn;
  skip?: string;
}
export interface Check {
  message: string;
  actual: number;
  bound: number;
}
export interface TestResult {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  ms: number;
  reason?: string;
  checks: Check[];
}

const collected: Collected[] = [];
const stack: string[] = [];
let checks: Check[] = [];

class SkipSignal extends Error {}

export function describe(name: string, fn: () => void): void {
  stack.push(name);
  try {
    fn();
  } finally {
    stack.pop();
  }
}

export function it(name: string, fn: TestFn): void {
  collected.push({ name: [...stack, name].join(' > '), fn });
}
it.skip = (name: string, fn: TestFn): void => {
  collected.push({ name: [...stack, name].join(' > '), fn, skip: 'it.skip' });
};
export const test = it;

function fmt(v: unknown): string {
  return typeof v === 'number' ? String(v) : JSON.stringify(v);
}

export function expect(actual: unknown, message?: string) {
  const fail = (what: string): never => {
    throw new Error(`${message ? message + ': ' : ''}${what}`);
  };
  return {
    toBe(expected: unknown) {
      if (!Object.is(actual, expected)) fail(`expected ${fmt(actual)} to be ${fmt(expected)}`);
    },
    toEqual(expected: unknown) {
      if (JSON.stringify(actual) !== JSON.stringify(expected)) fail(`expected ${fmt(actual)} to equal ${fmt(expected)}`);
    },
    toBeLessThanOrEqual(bound: number) {
      checks.push({ message: message ?? '', actual: actual as number, bound });
      if (!((actual as number) <= bound)) fail(`expected ${fmt(actual)} <= ${bound}`);
    },
    toBeGreaterThan(bound: number) {
      if (!((actual as number) > bound)) fail(`expected ${fmt(actual)} > ${bound}`);
    },
    toBeTruthy() {
      if (!actual) fail(`expected ${fmt(actual)} to be truthy`);
    },
    toContain(item: unknown) {
      const ok = typeof actual === 'string' ? actual.includes(String(item)) : Array.isArray(actual) && actual.some((x) => Object.is(x, item));
      if (!ok) fail(`expected ${fmt(actual)} to contain ${fmt(item)}`);
    },
  };
}

/** Run (and forget) everything collected so far. */
export async function runCollected(log: (line: string) => void = () => {}): Promise<TestResult[]> {
  const list = collected.splice(0, collected.length);
  const results: TestResult[] = [];
  for (const t of list) {
    checks = [];
    const t0 = performance.now();
    if (t.skip) {
      results.push({ name: t.name, status: 'skip', ms: 0, reason: t.skip, checks: [] });
      continue;
    }
    let r: TestResult;
    try {
      await t.fn({
        skip: (why?: string) => {
          throw new SkipSignal(why ?? 'skipped');
        },
      });
      r = { name: t.name, status: 'pass', ms: performance.now() - t0, checks };
    } catch (e) {
      if (e instanceof SkipSignal) r = { name: t.name, status: 'skip', ms: 0, reason: e.message, checks };
      else r = { name: t.name, status: 'fail', ms: performance.now() - t0, reason: (e as Error).stack ?? String(e), checks };
    }
    results.push(r);
    log(`${r.status.padEnd(4)} ${r.name}${r.status === 'fail' ? `\n     ${r.reason?.split('\n')[0]}` : r.status === 'skip' ? ` (${r.reason})` : ''}`);
  }
  return results;
}
