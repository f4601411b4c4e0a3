import { makeKernel, type KernelIo, type KernelKv, type KernelPlan, type KernelWasm } from './kernel.js';

/** Messages main → worker. */
export type ToWorker =
  | { type: 'kv'; seq: number; k: Float32Array; v: Float32Array; wasm?: KernelWasm }
  | { type: 'plan'; seq: number; id: number; plan: KernelPlan; io: KernelIo; units: Int32Array; qBegin: number; qEnd: number }
  | { type: 'drop'; id: number }
  | { type: 'run'; seq: number; id: number }
  | { type: 'merge'; seq: number; id: number };

/** Messages worker → main. */
export type FromWorker = { type: 'done'; seq: number } | { type: 'error'; seq: number; message: string };

/**
 * Body of a worker thread. Like `makeKernel` it is shipped as source text, so it may only use its
 * parameter and globals. Typed arrays posted to it view SharedArrayBuffers: nothing is copied per
 * run, a run message carries only ids.
 */
function workerMain(parentPort: import('node:worker_threads').MessagePort, kernelFactory: typeof makeKernel): void {
  const kernel = kernelFactory();
  let kv: KernelKv | undefined;
  const plans = new Map<number, { plan: KernelPlan; io: KernelIo; units: Int32Array; qBegin: number; qEnd: number }>();
  parentPort.on('message', (msg: ToWorker) => {
    const seq = 'seq' in msg ? msg.seq : -1;
    try {
      if (msg.type === 'kv') {
        kv = { k: msg.k, v: msg.v, wasm: msg.wasm };
      } else if (msg.type === 'plan') {
        plans.set(msg.id, { plan: msg.plan, io: msg.io, units: msg.units, qBegin: msg.qBegin, qEnd: msg.qEnd });
      } else if (msg.type === 'drop') {
        plans.delete(msg.id);
        return;
      } else {
        const e = plans.get(msg.id);
        if (!e) throw new Error(`plan ${msg.id} is not loaded in this worker`);
        if (msg.type === 'run') {
          if (!kv) throw new Error('no KV cache loaded in this worker');
          kernel.runUnits(e.plan, kv, e.io, e.units, 0, e.units.length / 3);
        } else {
          kernel.mergeQueries(e.plan, e.io, e.qBegin, e.qEnd);
        }
      }
      parentPort.postMessage({ type: 'done', seq } satisfies FromWorker);
    } catch (err) {
      parentPort.postMessage({ type: 'error', seq, message: String((err as Error)?.stack ?? err) } satisfies FromWorker);
    }
  });
}

/**
 * Source text for `new Worker(src, { eval: true })`. Node evaluates it as CommonJS or as an ES
 * module depending on the process (`--input-type=module` makes it ESM), so it uses only what
 * both have: a dynamic import. Messages posted meanwhile wait in the port until the listener
 * starts it. `import(` and `require` appear only in this string: bundlers rewrite them inside
 * functions (esbuild turns `require` into `__require`), which would break the stringified bodies;
 * test/bundled.test.ts checks a bundled build.
 */
export function workerSource(): string {
  return `'use strict';\nimport('node:worker_threads').then((wt) => (${workerMain.toString()})(wt.parentPort, ${makeKernel.toString()}));\n`;
}
