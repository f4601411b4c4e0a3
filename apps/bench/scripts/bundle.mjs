// Build the self-contained bench: apps/bench/bundle/ with
//   bench.mjs                      every JS dependency inlined (built from the workspace sources)
//   node_modules/webgpu/           Dawn for Node: its small index.js loader + dist/<platform>/dawn.node
//   canopy_cuda.node (or similar)  the CUDA addon, when @canopy/backend-cuda has been built here
// It runs with only Node present: `node bundle/bench.mjs --backend auto`. Native parts that are
// missing are reported and the matching backend is skipped at run time ("package not installed").
//
//   pnpm --filter @canopy/bench bundle          (or: node apps/bench/scripts/bundle.mjs)
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'tsup';

const here = dirname(fileURLToPath(import.meta.url));
const app = join(here, '..');
const root = join(app, '..', '..');
const outDir = process.env.CANOPY_BUNDLE_DIR ?? join(app, 'bundle');
const LIMIT = 40 * 1024 * 1024;

function commit() {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const pkgDir = (name) => {
  const dir = join(root, 'packages', name.replace('@canopy/', ''));
  return existsSync(join(dir, 'package.json')) ? dir : null;
};

// Optional backends that are absent here stay external: their dynamic import fails at run time
// and the bench reports them as skipped.
const optional = ['@canopy/backend-cuda', '@canopy/backend-webgpu', '@canopy/backend-cpu'];
// Present = linked into apps/bench/node_modules (a dependency of the bench) with its sources.
const linked = (p) => existsSync(join(app, 'node_modules', p, 'package.json')) && existsSync(join(app, 'node_modules', p, 'src', 'index.ts'));
const missing = optional.filter((p) => !linked(p));
const externals = ['webgpu', ...missing, 'canvas'];
const version = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')).version;

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

await build({
  entry: { bench: join(app, 'src', 'cli.ts') },
  outDir,
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  bundle: true,
  splitting: false,
  sourcemap: false,
  dts: false,
  clean: false,
  minify: false,
  silent: true,
  config: false,
  // Inline everything except Dawn (loaded from node_modules/webgpu beside the bundle), absent
  // optional backends, and vega's optional node-canvas (SVG rendering does not need it).
  noExternal: [new RegExp(`^(?!(${externals.map((e) => e.replace(/[/.]/g, '\\$&')).join('|')})$).*`)],
  external: externals,
  loader: { '.wgsl': 'text' },
  outExtension: () => ({ js: '.mjs' }),
  // CommonJS dependencies inside an ESM bundle may call require() for Node built-ins.
  banner: { js: "import { createRequire as __canopyCreateRequire } from 'node:module'; const require = __canopyCreateRequire(import.meta.url);" },
  define: { __CANOPY_COMMIT__: JSON.stringify(commit()), __CANOPY_BENCH_VERSION__: JSON.stringify(version) },
  esbuildOptions(o) {
    // Build from the workspace TypeScript sources (no dist/ needed).
    o.conditions = ['@canopy/source', 'node', 'import', 'module', 'default'];
  },
});

const notes = [];
// Dawn for Node, beside the bundle where Node's resolution finds it.
const webgpuFrom = pkgDir('@canopy/backend-webgpu') ?? app;
try {
  const req = createRequire(join(webgpuFrom, 'package.json'));
  const wgDir = dirname(req.resolve('webgpu/package.json'));
  const arch = process.platform === 'darwin' ? 'universal' : process.arch;
  const plat = `${process.platform}-${arch}`;
  const dst = join(outDir, 'node_modules', 'webgpu');
  mkdirSync(join(dst, 'dist', plat), { recursive: true });
  const pj = JSON.parse(readFileSync(join(wgDir, 'package.json'), 'utf8'));
  writeFileSync(join(dst, 'package.json'), `${JSON.stringify({ name: pj.name, version: pj.version, type: 'module', main: 'index.js', license: pj.license }, null, 2)}\n`);
  copyFileSync(join(wgDir, 'index.js'), join(dst, 'index.js'));
  copyFileSync(join(wgDir, 'LICENSE.md'), join(dst, 'LICENSE.md'));
  copyFileSync(join(wgDir, 'dist', plat, 'dawn.node'), join(dst, 'dist', plat, 'dawn.node'));
  notes.push(`webgpu ${pj.version}: node_modules/webgpu/dist/${plat}/dawn.node`);
} catch (e) {
  notes.push(`webgpu: not included (${e.message.split('\n')[0]}); the WebGPU backend will be skipped`);
}

// The CUDA addon: any .node file the backend-cuda package built (build/, native/ or dist/).
const cudaDir = pkgDir('@canopy/backend-cuda');
if (cudaDir) {
  const found = [];
  const walk = (d, depth) => {
    if (depth > 4 || !existsSync(d)) return;
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (f === 'node_modules') continue;
      if (statSync(p).isDirectory()) walk(p, depth + 1);
      else if (f.endsWith('.node')) found.push(p);
    }
  };
  for (const sub of ['build', 'native', 'dist', 'prebuilds']) walk(join(cudaDir, sub), 0);
  for (const p of found) {
    copyFileSync(p, join(outDir, p.split('/').pop()));
    notes.push(`cuda addon: ${relative(root, p)} → ${p.split('/').pop()}`);
  }
  if (found.length === 0) notes.push('cuda addon: none built (build it in packages/backend-cuda first); the CUDA backend will report it missing');
} else {
  notes.push('cuda: @canopy/backend-cuda is not in this checkout; the CUDA backend will be skipped');
}

let total = 0;
const sizes = [];
const walkSize = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    const s = statSync(p);
    if (s.isDirectory()) walkSize(p);
    else {
      total += s.size;
      sizes.push(`${(s.size / 2 ** 20).toFixed(1).padStart(6)} MiB  ${relative(outDir, p)}`);
    }
  }
};
walkSize(outDir);
console.log(`bundle: ${relative(process.cwd(), outDir) || '.'}`);
for (const s of sizes) console.log(`  ${s}`);
for (const n of notes) console.log(`  ${n}`);
console.log(`  total ${(total / 2 ** 20).toFixed(1)} MiB (limit 40 MiB)`);
if (missing.length) console.log(`  not bundled (absent here): ${missing.join(', ')}`);
if (total > LIMIT) {
  console.error(`bundle: ${(total / 2 ** 20).toFixed(1)} MiB is over the 40 MiB limit`);
  process.exit(1);
}
