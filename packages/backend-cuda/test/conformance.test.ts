// The backend-testkit conformance suite on the CUDA backend: runs on a machine with a Hopper GPU
// and a built addon, registered as skipped (with the reason) everywhere else.
import { describeBackendConformance } from '@canopy/backend-testkit';
import { cudaAvailability, cudaBackendFactory } from '../src/index.js';

const avail = await cudaAvailability();
describeBackendConformance(cudaBackendFactory, avail.available ? {} : { skipReason: avail.reason ?? 'CUDA unavailable' });
