import { describeBackendConformance } from '@canopy/backend-testkit';
import { templateBackendFactory } from '../src/index.js';

// Every conformance case (deep chains, wide fans, 1000 requests, causal prefill chunks, GQA 1/4/8,
// d64/128/256, f16/f32) with both planners of @canopy/planner, against float64 ground truth.
describeBackendConformance(templateBackendFactory);
