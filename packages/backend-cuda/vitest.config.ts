import { packageProject } from '@canopy/presets/vitest';

export default packageProject('backend-cuda');
