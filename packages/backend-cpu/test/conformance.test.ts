import { describeBackendConformance } from '@canopy/backend-testkit';
import { cpuBackendFactory, createCpuBackendFactory } from '../src/index.js';
import { testPlanners } from './planners.js';

// The registered factory (small cases run on the calling thread: below `inlineBelow`)…
describeBackendConformance(cpuBackendFactory, { planners: testPlanners });
// …and the worker path forced for every case, with two workers and a KV block that splits items.
describeBackendConformance(createCpuBackendFactory({ workers: 2, inlineBelow: 0, kvBlock: 5, rowsMax: 7 }, 'cpu-workers'), { planners: testPlanners });
// …and the plain JavaScript inner loops (where WebAssembly SIMD is missing, or head dims not divisible by 16).
describeBackendConformance(createCpuBackendFactory({ workers: 2, inlineBelow: 0, simd: false }, 'cpu-js'), { planners: testPlanners });
