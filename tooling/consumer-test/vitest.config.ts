import { packageProject } from '@canopy/presets/vitest';

// Packing and installing into a fresh project takes tens of seconds (npm install, W1 on the
// reference backend twice); the other tests are quick.
export default packageProject('consumer-test', { testTimeout: 180_000, hookTimeout: 180_000 });
