// KV through workgroup memory like tile_shared.wgsl, but the next block is loaded into registers
// while the current one is computed on, so global-memory latency overlaps the arithmetic.

var<workgroup> smem: array<vec4<f32>, SMEM4>;
var<workgroup> wNtok: u32;

const PF: u32 = (KV_BLOCK * D4 + WG - 1u) / WG; // vec4s of K (and of V) per invocation per block
var<private> pfK: array<vec4<f32>, PF>;
var<private> pfV: array<vec4<f32>, PF>;

fn unitTokens(b: u32, lid: u32) -> u32 {
  if (lid == 0u) {
    wNtok = planBuf[b + 1u];
  }
  return workgroupUniformLoad(&wNtok);
}

fn prefetch(u: Unit, t0: u32, lid: u32, nkv: u32) {
  for (var k = 0u; k < PF; k++) {
    let e = lid + k * WG;
    let t = e / D4;
    let c = e % D4;
    if (e < KV_BLOCK * D4 && t0 + t < u.ntok) {
      let src = (planBuf[params.offTok + u.tok + t0 + t] * nkv + u.head) * D4 + c;
      pfK[k] = loadK4(src);
      pfV[k] = loadV4(src);
    } else {
      pfK[k] = vec4<f32>(0.0);
      pfV[k] = vec4<f32>(0.0);
    }
  }
}

fn loadKvBlock(u: Unit, t0: u32, lid: u32, nkv: u32) {
  if (t0 == 0u) {
    prefetch(u, 0u, lid, nkv);
  }
  workgroupBarrier();
  for (var k = 0u; k < PF; k++) {
    let e = lid + k * WG;
    if (e < KV_BLOCK * D4) {
      smem[e] = pfK[k];
      smem[KV_BLOCK * D4 + e] = pfV[k];
    }
  }
  workgroupBarrier();
  if (t0 + KV_BLOCK < u.ntok) {
    prefetch(u, t0 + KV_BLOCK, lid, nkv);
  }
}

fn kvRowBase(u: Unit, t0: u32, t: u32, nkv: u32) -> u32 {
  return t * D4;
}

fn kAt(i: u32) -> vec4<f32> {
  return smem[i];
}

fn vAt(i: u32) -> vec4<f32> {
  return smem[KV_BLOCK * D4 + i];
}
