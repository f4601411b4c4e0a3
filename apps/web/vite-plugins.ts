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

export function noNodeBuiltins(): Plugin {
  return {
    name: 'canopy-no-node-builtins',
    enforce: 'pre',
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
