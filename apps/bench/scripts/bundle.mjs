// Build the self-contained bench: apps/bench/bundle/ with
//   bench.mjs                      every JS dependency inlined (built from the workspace sources)
//   node_modules/webgpu/           Dawn for Node: its small index.js loader + dist/<platform>/dawn.node
//   canopy_cuda.node (or similar)  the CUDA addon, when @canopy/backend-cuda has been built here
// It runs with only Node present: `node bundle/bench.mjs --backend auto`. Native parts that are
// missing are reported and the matching backend is skipped at run time ("package not installed").
//
//   pnpm --filter @canopy/bench bundle          (or: node apps/bench/scripts/bundle.mjs)
//   pnpm --filter @canopy/bench bundle -- --portable
//       also adds node.xz (this machine's Node binary) and vulkan/*.deb (the Vulkan loader and GL
//       dispatch libraries from Debian) for a GPU machine that has only a driver and CUDA; run.sh
//       unpacks them there. See docs/gpu.md.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'tsup';

const here = dirname(fileURLToPath(import.meta.url));

const RUN_SH = `#!/usr/bin/env bash
# Usage: bash run.sh [canopy-bench arguments]. Runs bundle/bench.mjs from this folder.
# Works on a machine that has only a GPU driver (and CUDA): uses node from PATH, else unpacks
# node.xz from this folder; if the Vulkan loader is missing, unpacks vulkan/*.deb (WebGPU needs it)
# and points Vulkan at NVIDIA's ICD. See docs/gpu.md.
set -eo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NODE=\${NODE:-}
if [ -z "$NODE" ]; then
  if command -v node >/dev/null 2>&1; then NODE=node
  elif [ -f "$here/node.xz" ]; then
    mkdir -p /tmp/canopy-node
    [ -x /tmp/canopy-node/node ] || { xz -dc "$here/node.xz" > /tmp/canopy-node/node.tmp && mv /tmp/canopy-node/node.tmp /tmp/canopy-node/node; }
    chmod +x /tmp/canopy-node/node
    NODE=/tmp/canopy-node/node
  else
    echo "run.sh: no node on PATH and no node.xz here (bundle with --portable, or set NODE=/path/to/node)" >&2
    exit 1
  fi
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 ' && ls "$here"/vulkan/*.deb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    for f in "$here"/vulkan/*.deb; do dpkg -x "$f" /; done
    ldconfig
  else
    mkdir -p /tmp/canopy-vulkan
    for f in "$here"/vulkan/*.deb; do dpkg -x "$f" /tmp/canopy-vulkan; done
    export LD_LIBRARY_PATH="$(find /tmp/canopy-vulkan -name 'libvulkan.so.1' -printf '%h' -quit)\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
if [ -z "\${VK_DRIVER_FILES:-}\${VK_ICD_FILENAMES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then export VK_DRIVER_FILES="$f"; break; fi
  done
fi
exec "$NODE" "$here/bench.mjs" "$@"
`;
const app = join(here, '..');
const root = join(app, '..', '..');
const outDir = process.env.CANOPY_BUNDLE_DIR ?? join(app, 'bundle');
const LIMIT = 40 * 1024 * 1024;
const portable = process.argv.includes('--portable');

// The commit baked into the bundle (results name it); "-dirty" when tracked files had changes.
function commit() {
  try {
    const sha = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${sha}-dirty` : sha;
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
  // The verification worker is its own file beside bench.mjs (workers load a file).
  entry: { bench: join(app, 'src', 'cli.ts'), 'verify-worker': join(app, 'src', 'verify-worker.ts') },
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

// run.sh: starts the bench with the Node and Vulkan loader of this folder when the machine lacks them.
writeFileSync(join(outDir, 'run.sh'), RUN_SH, { mode: 0o755 });

let extras = 0;
if (portable) {
  const node = join(outDir, 'node.xz');
  // Compressing Node takes minutes on 2 cores: keep one per version in node_modules/.cache.
  const cacheDir = join(app, 'node_modules', '.cache', 'canopy-bench');
  const cached = join(cacheDir, `node-${process.version}-${process.platform}-${process.arch}.xz`);
  if (!existsSync(cached)) {
    mkdirSync(cacheDir, { recursive: true });
    console.log(`bundle: compressing ${process.execPath} (${process.version}) with xz (cached for next time)`);
    execFileSync('bash', ['-c', `xz -T2 -6 -c "${process.execPath}" > "${cached}.tmp" && mv "${cached}.tmp" "${cached}"`]);
  }
  copyFileSync(cached, node);
  writeFileSync(join(outDir, 'node.version'), `${process.version}\n`);
  const vk = join(outDir, 'vulkan');
  mkdirSync(vk, { recursive: true });
  const debs = ['libvulkan1', 'libegl1', 'libglvnd0', 'libopengl0', 'libgl1', 'libglx0', 'libgles2'];
  try {
    execFileSync('apt-get', ['download', ...debs], { cwd: vk, stdio: 'pipe' });
  } catch {
    execFileSync('bash', ['-c', `apt-get update -qq && apt-get download ${debs.join(' ')}`], { cwd: vk, stdio: 'pipe' });
  }
}

let total = 0;
const sizes = [];
const isExtra = (rel) => rel === 'node.xz' || rel === 'node.version' || rel.startsWith('vulkan/');
const walkSize = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    const s = statSync(p);
    if (s.isDirectory()) walkSize(p);
    else {
      const rel = relative(outDir, p);
      if (isExtra(rel)) extras += s.size;
      else total += s.size;
      sizes.push(`${(s.size / 2 ** 20).toFixed(1).padStart(6)} MiB  ${rel}`);
    }
  }
};
walkSize(outDir);
console.log(`bundle: ${relative(process.cwd(), outDir) || '.'}`);
for (const s of sizes) console.log(`  ${s}`);
for (const n of notes) console.log(`  ${n}`);
console.log(`  total ${(total / 2 ** 20).toFixed(1)} MiB (limit 40 MiB)${portable ? `, plus ${(extras / 2 ** 20).toFixed(1)} MiB of Node and Vulkan loader for the GPU machine` : ''}`);
if (missing.length) console.log(`  not bundled (absent here): ${missing.join(', ')}`);
if (total > LIMIT) {
  console.error(`bundle: ${(total / 2 ** 20).toFixed(1)} MiB is over the 40 MiB limit`);
  process.exit(1);
}

