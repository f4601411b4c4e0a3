import { defineConfig, defaultClientConditions } from 'vite';
import { noNodeBuiltins, wgslText } from './vite-plugins.js';

export default defineConfig({
  // Relative asset URLs: dist/ works from any path of any static server (or a subfolder of one).
  base: './',
  // Bundle the workspace packages from their TypeScript sources (the '@canopy/source' export
  // condition), so dev and build never see a stale dist/ of a sibling package.
  resolve: { conditions: ['@canopy/source', ...defaultClientConditions] },
  plugins: [noNodeBuiltins(), wgslText()],
  build: { target: 'es2022', sourcemap: true, reportCompressedSize: false },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
