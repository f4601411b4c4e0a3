// KV staging shared by the two register-blocked kernels (attention_blocked.wgsl and
// attention_blocked2.wgsl; joined after either): the next block's raw K and V words are loaded into
// registers (prefetch) while the current block is computed on, then decoded into the kernel's
// workgroup array `kv` (stageRaw: K first, then V into the same rows). Uses the kernel's KV_BLOCK,
// WG and KS (padded row stride, vec4) and the KV reader's KvRaw / loadKRaw / loadVRaw / kvDecode.

const RAW_PER_TOK: u32 = D4 / KV_RAW4;
const PF: u32 = (KV_BLOCK * RAW_PER_TOK + WG - 1u) / WG; // raw K (and V) words per invocation per block

var<private> pfK: array<KvRaw, PF>;
var<private> pfV: array<KvRaw, PF>;

fn prefetch(u: Unit, t0: u32, lid: u32, nkv: u32) {
  for (var k = 0u; k < PF; k++) {
    let e = lid + k * WG;
    let t = e / RAW_PER_TOK;
    if (e < KV_BLOCK * RAW_PER_TOK && t0 + t < u.ntok) {
      let src = (planBuf[params.offTok + u.tok + t0 + t] * nkv + u.head) * RAW_PER_TOK + e % RAW_PER_TOK;
      pfK[k] = loadKRaw(src);
      pfV[k] = loadVRaw(src);
    } else {
      // zeros past the unit's end: p = 0 there, and 0 * garbage could be NaN
      pfK[k] = KvRaw();
      pfV[k] = KvRaw();
    }
  }
}

fn stageRaw(v: bool, lid: u32) {
  for (var k = 0u; k < PF; k++) {
    let e = lid + k * WG;
    if (e < KV_BLOCK * RAW_PER_TOK) {
      let base = (e / RAW_PER_TOK) * KS + (e % RAW_PER_TOK) * KV_RAW4;
      for (var h = 0u; h < KV_RAW4; h++) {
        kv[base + h] = kvDecode(select(pfK[k], pfV[k], v), h);
      }
    }
  }
}
