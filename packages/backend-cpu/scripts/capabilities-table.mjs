#!/usr/bin/env node
/**
 * Generates docs/capabilities.md from the in-tree backends' own capability objects, so the table
 * cannot drift from the code. Run from anywhere:
 *
 *   node packages/backend-cpu/scripts/capabilities-table.mjs          # rewrite docs/capabilities.md
 *   node packages/backend-cpu/scripts/capabilities-table.mjs --check  # exit 1 if it is stale
 *
 * Convention (docs/writing-a-backend.md): a backend package exports
 *   - its factory (name, priority), and
 *   - `<NAME>_CAPABILITIES: BackendCapabilities`: what every created backend reports wherever it
 *     does not depend on the device, plus optionally `<NAME>_CAPABILITY_NOTES`
 *     (`{ field: 'text' }`) describing fields a created backend refines from the device.
 * The backends' TypeScript sources are bundled with esbuild (no build needed) and imported here.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const docPath = join(root, 'docs/capabilities.md');

/** The in-tree backends, in priority order of the contract (reference 0, CPU 10, WebGPU 50, CUDA 100). */
const BACKENDS = [
  { key: 'reference', pkg: '@canopy/core', dir: 'packages/core', prefix: 'REFERENCE' },
  { key: 'cpu', pkg: '@canopy/backend-cpu', dir: 'packages/backend-cpu', prefix: 'CPU' },
  { key: 'webgpu', pkg: '@canopy/backend-webgpu', dir: 'packages/backend-webgpu', prefix: 'WEBGPU' },
  { key: 'cuda', pkg: '@canopy/backend-cuda', dir: 'packages/backend-cuda', prefix: 'CUDA' },
];

async function loadModules() {
  const dir = mkdtempSync(join(tmpdir(), 'canopy-caps-'));
  try {
    const mods = {};
    for (const b of BACKENDS) {
      const outfile = join(dir, `${b.key}.mjs`);
      try {
        await build({
          entryPoints: [join(root, b.dir, 'src/index.ts')],
          bundle: true,
          format: 'esm',
          platform: 'node',
          target: 'node20',
          conditions: ['@canopy/source'],
          loader: { '.wgsl': 'text' },
          // native and GPU runtime packages are never loaded just to read capabilities
          external: ['webgpu', '*.node'],
          outfile,
          logLevel: 'silent',
        });
        mods[b.key] = { mod: await import(pathToFileURL(outfile).href) };
      } catch (e) {
        mods[b.key] = { error: String(e?.message ?? e).split('\n')[0] };
      }
    }
    return mods;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const isCaps = (v) => v && typeof v === 'object' && Array.isArray(v.kvDtypes) && Array.isArray(v.headDims) && Array.isArray(v.tileMenu);
const isFactory = (v) => v && typeof v === 'object' && typeof v.name === 'string' && typeof v.create === 'function' && typeof v.probe === 'function';

const fmtBytes = (n) => {
  if (n === undefined) return 'no limit';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  let x = n;
  while (x >= 1024 && u < units.length - 1 && x % 1024 === 0) {
    x /= 1024;
    u++;
  }
  return `${x} ${units[u]}`;
};

export async function generate() {
  const mods = await loadModules();
  const rows = [];
  const notes = [];
  const missing = [];
  for (const b of BACKENDS) {
    const m = mods[b.key];
    if (m.error) {
      // the reason goes to stderr only: the document must not depend on the machine
      console.error(`capabilities-table: ${b.pkg}: ${m.error}`);
      missing.push(`- **${b.key}** (\`${b.pkg}\`): its sources could not be loaded when this file was generated.`);
      continue;
    }
    const caps = m.mod[`${b.prefix}_CAPABILITIES`];
    const factory = Object.values(m.mod).find((v) => isFactory(v) && v.name === b.key);
    if (!isCaps(caps)) {
      missing.push(`- **${b.key}** (\`${b.pkg}\`): exports no \`${b.prefix}_CAPABILITIES\` object yet, so it is not in the table.`);
      continue;
    }
    const n = m.mod[`${b.prefix}_CAPABILITY_NOTES`] ?? {};
    const cell = (field, text) => (n[field] ? `${text} ¹` : text);
    rows.push(
      [
        `\`${b.key}\``,
        `\`${b.pkg}\``,
        factory ? String(factory.priority) : '?',
        cell('kvDtypes', caps.kvDtypes.join(', ')),
        cell('headDims', caps.headDims.join(', ')),
        cell('masks', caps.masks.join(', ')),
        cell('tileMenu', caps.tileMenu.map((t) => `${t.rows}×${t.kvBlock}`).join(', ')),
        cell('maxPageSize', caps.maxPageSize === undefined ? 'no limit' : String(caps.maxPageSize)),
        cell('maxKvPoolBytes', fmtBytes(caps.maxKvPoolBytes)),
        cell('gpuTimers', caps.gpuTimers ? 'yes' : 'no'),
        cell('parallelUnits', String(caps.parallelUnits)),
        cell('readBandwidthGBs', caps.readBandwidthGBs === undefined ? '—' : String(caps.readBandwidthGBs)),
      ].join(' | '),
    );
    for (const [field, text] of Object.entries(n)) notes.push(`- \`${b.key}\` ${field}: ${text}`);
  }
  const lines = [
    '# Backend capabilities',
    '',
    '<!-- Generated by packages/backend-cpu/scripts/capabilities-table.mjs from each package\'s',
    '     <NAME>_CAPABILITIES export. Do not edit by hand: run the script (a test fails when stale). -->',
    '',
    'What each in-tree backend declares in its `capabilities` (see `BackendCapabilities` in',
    '`packages/core/src/types.ts`). Planners read these through `@canopy/core` to shape plans; the',
    'conformance kit skips cases outside them. Tiles are rows (queries × GQA group per KV head) ×',
    'KV block tokens. Values marked ¹ are refined by a created backend from its device (see notes).',
    '',
    '| backend | package | priority | KV dtypes | head dims | masks | tile menu | max page size | max KV pool (K or V) | GPU timers | parallel units | read GB/s |',
    '|---|---|---:|---|---|---|---|---|---|---|---:|---:|',
    ...rows.map((r) => `| ${r} |`),
    '',
  ];
  if (notes.length) lines.push('Notes:', '', ...notes.map((x) => x.replace(/^- /, '- ¹ ')), '');
  if (missing.length) lines.push('Not listed:', '', ...missing, '');
  return lines.join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = await generate();
  if (process.argv.includes('--check')) {
    let old = '';
    try {
      old = readFileSync(docPath, 'utf8');
    } catch {
      /* missing counts as stale */
    }
    if (old !== text) {
      console.error(`${docPath} is stale: run node packages/backend-cpu/scripts/capabilities-table.mjs`);
      process.exit(1);
    }
    console.log(`${docPath} is up to date`);
  } else {
    writeFileSync(docPath, text);
    console.log(`wrote ${docPath}`);
  }
}
