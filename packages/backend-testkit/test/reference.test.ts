import { referenceBackendFactory } from '@canopy/core';
import { describeBackendConformance } from '../src/index.js';

// The reference backend is the first to pass the suite: it proves the suite's own plumbing
// (batches, planners, validatePlan, tolerance checks) against the float64 oracle.
describeBackendConformance(referenceBackendFactory);
