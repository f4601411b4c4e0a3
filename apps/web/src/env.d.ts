/// <reference types="vite/client" />
// backend-webgpu's shader sources, bundled as text (see vite-plugins.ts).
declare module '*.wgsl' {
  const source: string;
  export default source;
}
