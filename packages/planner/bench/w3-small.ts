// W3 at 1/16 tokens planned for the reference capabilities (one unit): prefix vs perRequest.
import { REFERENCE_CAPABILITIES } from '@canopy/core';
import { buildTokenTree, explainPlan, perRequestPlanner, planMetrics, prefixPlanner } from '../src/index.js';
import { treeBatch } from '../test/workloads.js';

const parent = [-1];
const tokens = [250];
const l1: number[] = [];
for (let i = 0; i < 4; i++) (parent.push(0), tokens.push(16), l1.push(parent.length - 1));
const l2: number[] = [];
for (const p of l1) for (let i = 0; i < 4; i++) (parent.push(p), tokens.push(16), l2.push(parent.length - 1));
const b = treeBatch({ parent, tokens, requestNode: l2.flatMap((p) => [p, p, p, p]), ownTokens: 8 });
const caps = REFERENCE_CAPABILITIES;
for (const [name, plan] of [['prefix', prefixPlanner(b, caps)], ['prefix nofuse', prefixPlanner(b, caps, { fuse: false })], ['perRequest', perRequestPlanner(b, caps)]] as const) {
  const m = planMetrics(plan, b, caps);
  console.log(name, 'items', m.workItems, 'read', m.kvTokensRead, 'loaded', m.kvTokensLoaded, 'pred µs', m.predictedTimeUs.toFixed(2), JSON.stringify(m.predicted));
}
if (process.env.EXPLAIN) console.log(explainPlan(prefixPlanner(b, caps), buildTokenTree(b)).slice(0, 3000));
for (const fm of [64, 300, 1e9]) {
  const plan = prefixPlanner(b, caps, { fuseMaxTokens: fm });
  const m = planMetrics(plan, b, caps);
  console.log('fuseMaxTokens', fm, 'items', m.workItems, 'read', m.kvTokensRead, 'pred µs', m.predictedTimeUs.toFixed(2));
}
