import { libraryBuild } from '@canopy/presets/tsup';

// WGSL files are bundled as text; 'webgpu' (Dawn for Node) is loaded at run time only.
export default libraryBuild({ loader: { '.wgsl': 'text' }, external: ['webgpu'] });
