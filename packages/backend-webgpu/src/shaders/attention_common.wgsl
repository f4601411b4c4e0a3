// What every attention variant shares: head dim constants, the parameter and unit records, the
// bindings and the output store. Joined with one or more variant bodies (attention.wgsl) into a
// module; see attention.wgsl for the algorithm.

const D: u32 = {{HEAD_DIM}}u;
const D4: u32 = D / 4u;
const NEG: f32 = -1e30; // the empty state's max / lse (finite so arithmetic stays NaN-free)
const LN2: f32 = 0.6931471805599453;

struct Params {
  unitOffset: u32,
  unitCount: u32,
  gridX: u32,
  offTok: u32,
  offItemQ: u32,
  offLimit: u32,
  offDirect: u32,
  group: u32,   // query heads per KV head
  numQoHeads: u32,
  numKvHeads: u32,
  scaleLog2e: f32, // softmax scale times log2(e): scores live in the log2 domain (exp2)
  partLseOffset: u32, // where the lse values start in partBuf
  outLseOffset: u32,  // where the lse values start in outBuf
  pad0: u32,
  pad1: u32,
  pad2: u32,
  // one-dispatch mode (attention_roles.wgsl): unit ids below roleEnd[v / 4][v % 4] and at or
  // above the previous variant's end run variant v
  roleEnd: array<vec4<u32>, 2>,
}

struct Unit {
  tok: u32,   // first entry of this unit's tokens in the token-row table
  ntok: u32,  // tokens in this unit
  pos: u32,   // absolute position of the first token
  head: u32,  // KV head
  qbase: u32, // index in itemQueries of the item's first query
  nrows: u32, // rows of the item (queries x GROUP)
  row0: u32,  // first row of this unit
  obase: u32, // partial slot of the item's first query for this unit's chunk
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> planBuf: array<u32>;
@group(0) @binding(2) var<storage, read> queries: array<vec4<f32>>;
// o then lse in one buffer each: lavapipe ran the first dispatch of a pipeline for close to a
// minute when four separate writable buffers were bound
@group(0) @binding(3) var<storage, read_write> partBuf: array<f32>;
@group(0) @binding(5) var<storage, read_write> outBuf: array<f32>;


// Past the dispatch's units (the grid is rounded up to whole rows of gridX workgroups).
const NO_UNIT: u32 = 0xffffffffu;

// Where this workgroup's unit record (8 words) starts in planBuf, or NO_UNIT. It depends only on
// the workgroup id and uniform params, so a body may return on it before its first barrier.
fn unitRecord(wid: vec3<u32>) -> u32 {
  let uid = wid.x + wid.y * params.gridX;
  if (uid >= params.unitCount) {
    return NO_UNIT;
  }
  return (params.unitOffset + uid) * 8u;
}

// The unit record at b with its token count given (bodies whose token loops hold barriers pass a
// workgroup-uniform copy of it).
fn unitAt(b: u32, ntok: u32) -> Unit {
  return Unit(planBuf[b], ntok, planBuf[b + 2u], planBuf[b + 3u],
              planBuf[b + 4u], planBuf[b + 5u], planBuf[b + 6u], planBuf[b + 7u]);
}

fn store4(isOut: bool, i: u32, v: vec4<f32>) {
  if (isOut) {
    outBuf[4u * i] = v.x;
    outBuf[4u * i + 1u] = v.y;
    outBuf[4u * i + 2u] = v.z;
    outBuf[4u * i + 3u] = v.w;
  } else {
    partBuf[4u * i] = v.x;
    partBuf[4u * i + 1u] = v.y;
    partBuf[4u * i + 2u] = v.z;
    partBuf[4u * i + 3u] = v.w;
  }
}
