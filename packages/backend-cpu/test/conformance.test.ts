import { describeBackendConformance } from '@canopy/backend-testkit';
import { cpuBackendFactory, createCpuBackendFactory } from '../src/index.js';
import { testPlanners } from './planners.js';

// The registered factory with every planner (small cases run on the calling thread: below `inlineBelow`)…
describeBackendConformance(cpuBackendFactory, { planners: testPlanners });
// …the worker path forced for every case: two workers, KV blocks and row passes that split items…
const some = Object.fromEntries(Object.entries(testPlanners).filter(([name]) => name === 'prefix' || name === 'chunked7'));
describeBackendConformance(createCpuBackendFactory({ workers: 2, inlineBelow: 0, kvBlock: 5, rowsMax: 7 }, 'cpu-workers'), { planners: some });
// …and the plain JavaScript inner loops (no WebAssembly SIMD, or head dims not divisible by 16).
describeBackendConformance(createCpuBackendFactory({ workers: 2, inlineBelow: 0, simd: false }, 'cpu-js'), { planners: some });
