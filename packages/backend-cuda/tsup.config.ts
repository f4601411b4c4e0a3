import { libraryBuild } from '@canopy/presets/tsup';

export default libraryBuild();
