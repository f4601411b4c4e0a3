// Merge each query's partial states (o, lse) into its output: one workgroup per (query, query
// head), one invocation per vec4 of the head dimension. Queries with a single partial were
// written directly by the attention kernel and are not listed here.
const D4: u32 = {{HEAD_DIM}}u / 4u;
const NEG: f32 = -1e30;

struct MergeParams {
  count: u32,   // queries to merge
  gridX: u32,
  offQuery: u32, // query ids
  offBegin: u32, // count + 1 offsets into the slot list
  offList: u32,  // partial slots
  numQoHeads: u32,
  partLseOffset: u32,
  outLseOffset: u32,
}

@group(0) @binding(0) var<uniform> params: MergeParams;
@group(0) @binding(1) var<storage, read> planBuf: array<u32>;
@group(0) @binding(3) var<storage, read_write> partBuf: array<f32>; // o, then lse
@group(0) @binding(5) var<storage, read_write> outBuf: array<f32>;  // o, then lse

@compute @workgroup_size(D4)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let id = wid.x + wid.y * params.gridX;
  let NQO = params.numQoHeads;
  if (id >= params.count * NQO) {
    return;
  }
  let k = id / NQO;
  let head = id % NQO;
  let q = planBuf[params.offQuery + k];
  let b = planBuf[params.offBegin + k];
  let e = planBuf[params.offBegin + k + 1u];
  var mm = NEG;
  for (var i = b; i < e; i++) {
    mm = max(mm, partBuf[params.partLseOffset + planBuf[params.offList + i] * NQO + head]);
  }
  var sum = 0.0;
  var acc = vec4<f32>(0.0);
  for (var i = b; i < e; i++) {
    let p = planBuf[params.offList + i] * NQO + head;
    let x = partBuf[params.partLseOffset + p];
    let w = select(0.0, exp(x - mm), x > NEG * 0.5);
    sum += w;
    let j = 4u * (p * D4 + lid);
    acc = fma(vec4<f32>(w), vec4<f32>(partBuf[j], partBuf[j + 1u], partBuf[j + 2u], partBuf[j + 3u]), acc);
  }
  let ob = q * NQO + head;
  let r = select(vec4<f32>(0.0), acc / sum, sum > 0.0);
  let j = 4u * (ob * D4 + lid);
  outBuf[j] = r.x;
  outBuf[j + 1u] = r.y;
  outBuf[j + 2u] = r.z;
  outBuf[j + 3u] = r.w;
  if (lid == 0u) {
    outBuf[params.outLseOffset + ob] = select(NEG, mm + log(sum), sum > 0.0);
  }
}
