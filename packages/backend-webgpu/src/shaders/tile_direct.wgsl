// KV straight from the pools: no KV in workgroup memory and no barriers in the token loop
// (workgroup memory only holds the split combine at the end, when SPLITS > 1). Rows of one GQA
// group read the same K/V, which the cache serves.

var<workgroup> smem: array<vec4<f32>, SMEM4>;

fn unitTokens(b: u32, lid: u32) -> u32 {
  return planBuf[b + 1u];
}

fn loadKvBlock(u: Unit, t0: u32, lid: u32, nkv: u32) {
}

// where token t0 + t of the unit starts in the pools (in vec4 units); masked tokens read row 0
fn kvRowBase(u: Unit, t0: u32, t: u32, nkv: u32) -> u32 {
  let tok = min(t0 + t, u.ntok - 1u);
  return (planBuf[params.offTok + u.tok + tok] * nkv + u.head) * D4;
}

fn kAt(i: u32) -> vec4<f32> {
  return loadK4(i);
}

fn vAt(i: u32) -> vec4<f32> {
  return loadV4(i);
}
