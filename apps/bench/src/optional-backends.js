// Loaders for the optional backend packages. Plain JavaScript on purpose: the literal specifiers
// let a bundler inline the packages when present (scripts/bundle.mjs marks absent ones external),
// while TypeScript sees only optional-backends.d.ts and never type-checks those packages' sources
// (which need their own ambient types, e.g. @webgpu/types).
export const loadCuda = () => import('@canopy/backend-cuda');
export const loadCpu = () => import('@canopy/backend-cpu');
export const loadWebgpu = () => import('@canopy/backend-webgpu');
