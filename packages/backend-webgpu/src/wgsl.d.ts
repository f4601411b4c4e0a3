// WGSL sources are imported as text: tsup's `.wgsl: text` loader in builds, a small plugin in vitest.
declare module '*.wgsl' {
  const source: string;
  export default source;
}
