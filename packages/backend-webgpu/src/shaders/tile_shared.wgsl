// KV through workgroup memory: each block of KV_BLOCK tokens of one KV head is copied once
// (converted to f32) and read by every row of the unit.

// K block at [0, KV_BLOCK * D4), V block after it; reused for the split combine at the end.
var<workgroup> smem: array<vec4<f32>, SMEM4>;
// the unit's token count, read by one invocation: loop bounds around barriers must be uniform
var<workgroup> wNtok: u32;

fn unitTokens(b: u32, lid: u32) -> u32 {
  if (lid == 0u) {
    wNtok = planBuf[b + 1u];
  }
  return workgroupUniformLoad(&wNtok);
}

fn loadKvBlock(u: Unit, t0: u32, lid: u32, nkv: u32) {
  workgroupBarrier();
  for (var e = lid; e < KV_BLOCK * D4; e += WG) {
    let t = e / D4;
    let c = e % D4;
    if (t0 + t < u.ntok) {
      let src = (planBuf[params.offTok + u.tok + t0 + t] * nkv + u.head) * D4 + c;
      smem[e] = loadK4(src);
      smem[KV_BLOCK * D4 + e] = loadV4(src);
    } else {
      smem[e] = vec4<f32>(0.0);
      smem[KV_BLOCK * D4 + e] = vec4<f32>(0.0);
    }
  }
  workgroupBarrier();
}

// where token t of the block starts (in vec4 units)
fn kvRowBase(u: Unit, t0: u32, t: u32, nkv: u32) -> u32 {
  return t * D4;
}

fn kAt(i: u32) -> vec4<f32> {
  return smem[i];
}

fn vAt(i: u32) -> vec4<f32> {
  return smem[KV_BLOCK * D4 + i];
}
