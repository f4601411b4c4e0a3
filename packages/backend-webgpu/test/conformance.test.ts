import { describeBackendConformance } from '@canopy/backend-testkit';
import { webgpuBackendFactory } from '../src/index.js';
import { gpuAvailability } from './gpu.js';

// In CI a missing adapter fails here (gpuAvailability throws); elsewhere the suite is skipped
// with a message saying how to get lavapipe.
const avail = await gpuAvailability();
describeBackendConformance(webgpuBackendFactory, avail.available ? {} : { skipReason: avail.reason });
