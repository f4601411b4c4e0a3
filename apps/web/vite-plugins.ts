/**
 * Build checks for the browser bundle.
 *
 * - `noNodeBuiltins`: the page imports @canopy/core, planner and backend-webgpu exactly as Node
 *   does; if any of them (or anything they pull in) imports a Node built-in, the build fails here
 *   instead of Vite quietly swapping in an empty `__vite-browser-external` module that breaks at run
 *   time. This build is CI's check that no Node-only API leaks into the browser packages.
 * - `wgslText`: .wgsl shader sources are imported as text (as backend-webgpu's tsup build does), so
 *   the page can bundle the backend from its TypeScript sources.
 */
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import type { Plugin } from 'vite';

const BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith('_')));

export function isNodeBuiltin(id: string): boolean {
  if (id.startsWith('node:')) return true;
  return BUILTINS.has(id) || BUILTINS.has(id.split('/')[0]);
}

// Node globals that do not exist in a browser; `globalThis.process` (a guarded lookup) is fine.
const NODE_GLOBALS = /(?<![.\w$])(process\.(?:stdout|stderr|stdin|exit|argv|cwd|hrtime|memoryUsage|binding|platform|versions\.node)|Buffer\.(?:from|alloc|allocUnsafe|concat|isBuffer)|__dirname|__filename|require\.resolve)\b/;

/** Drop comments (roughly: enough that a comment mentioning process.stdout is not flagged). */
function stripComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:\\'"`])\/\/.*$/gm, '$1');
}

/** Line and text of the first Node-only global in (transformed) code, if any. */
export function findNodeGlobal(code: string): { line: number; text: string } | undefined {
  const lines = stripComments(code).split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = NODE_GLOBALS.exec(lines[i]);
    if (m) return { line: i + 1, text: m[1] };
  }
  return undefined;
}

export function noNodeBuiltins(): Plugin {
  return {
    name: 'canopy-no-node-builtins',
    enforce: 'pre',
    transform: {
      order: 'post',
      handler(code, id) {
        // Our sources and the workspace packages only: bundler runtimes and npm libraries guard
        // their Buffer/process uses with typeof checks this simple scan cannot see.
        if (id.startsWith('\0') || id.includes('/node_modules/') || !/\.[cm]?[jt]sx?$/.test(id.split('?')[0])) return null;
        const hit = findNodeGlobal(code);
        if (hit) {
          this.error(`${id}: uses the Node global '${hit.text}' (near line ${hit.line} of the transformed module), which does not exist in a browser; the page bundles this module.`);
        }
        return null;
      },
    },
    resolveId(source, importer) {
      if (!isNodeBuiltin(source)) return null;
      this.error(
        `'${source}' is a Node built-in, imported by ${importer ?? '(entry)'}. ` +
          'The browser page bundles @canopy/core, @canopy/planner and @canopy/backend-webgpu; they must not import Node-only modules ' +
          '(keep Node code behind a runtime check and a non-static import, as backend-webgpu does for the npm "webgpu" package).',
      );
    },
  };
}

export function wgslText(): Plugin {
  return {
    name: 'canopy-wgsl-text',
    enforce: 'pre',
    load(id) {
      const file = id.split('?')[0];
      if (!file.endsWith('.wgsl')) return null;
      return { code: `export default ${JSON.stringify(readFileSync(file, 'utf8'))};`, moduleType: 'js' };
    },
  };
}
