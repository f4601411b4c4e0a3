#!/usr/bin/env node
// Builds the CUDA addon (build/canopy_cuda.node) by calling nvcc directly.
//
// Why not node-gyp or cmake-js: the addon is four translation units that all go through nvcc
// (nvcc hands the .cpp to the host compiler), node-addon-api is header-only, and node-gyp has no
// CUDA rules while cmake-js would add a CMake dependency for a single link line. Calling nvcc
// keeps the architecture list in one place (CANOPY_CUDA_ARCHS) and needs nothing but nvcc and
// Node's headers.
//
// Environment:
//   CANOPY_CUDA_ARCHS  comma list of targets: sm_XX → SASS, compute_XX → PTX (JIT on newer GPUs).
//                      Default "sm_90a,compute_90" (Hopper SASS with sm_90a features + portable PTX).
//   NVCC               nvcc to use (default: $CUDA_HOME/bin/nvcc, then nvcc on PATH).
//   CANOPY_NVCC_DEFINES  comma list of NAME=VALUE preprocessor defines, for kernel experiments
//                      (e.g. CANOPY_WG_MIN_BLOCKS=1,CANOPY_KT8=128; see native/attention.cu).
//   NODE_HEADERS       directory containing node_api.h (default: next to the running node, then /usr/include/node).
// Flags: --if-available  exit 0 with a note when nvcc is missing (for CI scripts); --debug  -G -lineinfo off, -O0.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(pkgDir, 'native');
const outDir = join(pkgDir, 'build');
const objDir = join(outDir, 'obj');
const ifAvailable = process.argv.includes('--if-available');
const lineinfo = process.argv.includes('--lineinfo');

function findNvcc() {
  const candidates = [];
  if (process.env.NVCC) candidates.push(process.env.NVCC);
  if (process.env.CUDA_HOME) candidates.push(join(process.env.CUDA_HOME, 'bin', 'nvcc'));
  candidates.push('nvcc', '/usr/local/cuda/bin/nvcc');
  for (const c of candidates) {
    try {
      execFileSync(c, ['--version'], { stdio: 'ignore' });
      return c;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

function findNodeHeaders() {
  const candidates = [
    process.env.NODE_HEADERS,
    resolve(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  return candidates.find((d) => existsSync(join(d, 'node_api.h')));
}

function gencodes() {
  const spec = (process.env.CANOPY_CUDA_ARCHS ?? 'sm_90a,compute_90').split(',').map((s) => s.trim()).filter(Boolean);
  const flags = [];
  for (const t of spec) {
    const m = /^(sm|compute)_(\d+[a-z]?)$/.exec(t);
    if (!m) throw new Error(`CANOPY_CUDA_ARCHS: bad target "${t}" (want sm_XX or compute_XX, e.g. sm_90a,compute_90)`);
    flags.push(`-gencode=arch=compute_${m[2]},code=${m[1]}_${m[2]}`);
  }
  if (flags.length === 0) throw new Error('CANOPY_CUDA_ARCHS names no target');
  return flags;
}

function run(cmd, args) {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`${cmd} exited with ${code}`))));
    p.on('error', rej);
  });
}

const nvcc = findNvcc();
if (!nvcc) {
  const msg = 'build-native: nvcc not found (set NVCC or CUDA_HOME); the CUDA backend will report itself unavailable.';
  if (ifAvailable) {
    console.warn(msg);
    process.exit(0);
  }
  console.error(msg);
  process.exit(1);
}
const nodeHeaders = findNodeHeaders();
if (!nodeHeaders) {
  console.error('build-native: Node headers (node_api.h) not found; set NODE_HEADERS.');
  process.exit(1);
}
const require = createRequire(import.meta.url);
const addonApi = require('node-addon-api').include_dir;

mkdirSync(objDir, { recursive: true });
const common = [
  '-std=c++17',
  '-O3',
  '-Xcompiler', '-fPIC',
  '-Xcompiler', '-fvisibility=hidden',
  `-I${nodeHeaders}`,
  `-I${addonApi}`,
  ...gencodes(),
  ...(lineinfo ? ['-lineinfo'] : []),
  ...(process.env.CANOPY_NVCC_DEFINES ?? '').split(',').filter(Boolean).map((d) => `-D${d}`),
];
const sources = ['attention.cu', 'attention_wgpipe.cu', 'merge.cu', 'probe.cu', 'addon.cpp'];
console.log(`build-native: ${nvcc} ${gencodes().join(' ')}`);
const jobs = Math.max(1, Math.min(sources.length, cpus().length));
const queue = [...sources];
const objects = sources.map((s) => join(objDir, `${s}.o`));
async function worker() {
  for (let s = queue.shift(); s; s = queue.shift()) {
    const args = [...common, '-c', join(nativeDir, s), '-o', join(objDir, `${s}.o`)];
    await run(nvcc, args);
  }
}
await Promise.all(Array.from({ length: jobs }, worker));
const target = join(outDir, 'canopy_cuda.node');
await run(nvcc, ['-shared', '-cudart', 'static', ...gencodes(), '-o', target, ...objects]);
console.log(`build-native: wrote ${target}`);
