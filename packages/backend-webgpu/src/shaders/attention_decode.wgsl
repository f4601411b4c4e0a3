enable subgroups;
// Streaming partial attention for decode-like units of 4 rows (one query × GQA 4, or up to 4
// queries of GQA 1): the whole GQA group scores each KV token from one read. Same units, bindings
// and outputs as attention.wgsl; joined with attention_common.wgsl and a KV reader.
//
// Why: the `direct` 4-row variant of attention.wgsl gives each row its own lanes, so every K/V
// word is loaded by 4 rows and each warp load brings 64 distinct bytes; on the H100 it streamed
// 1.3 TB/s of the 3 TB/s the read probe reaches (not enough bytes in flight). Here a lane group of
// LPT = D4 / KV_RAW4 consecutive lanes reads one token's K (and V) row, one raw word per lane
// (f16: 8 halves = 16 bytes, a 256-byte row per 16 lanes at d128), fully coalesced and read once.
// Each lane keeps q and o of all 4 rows for its dims; the 4 partial scores are summed over the
// group with subgroup shuffles (the host checks the adapter's minimum subgroup size against LPT).
// NG = WG / LPT groups take interleaved tokens (t0 + j * NG + g, j < TT) and keep their own
// online-softmax state (m, l per row, identical in the group's lanes); the next block's raw words
// are loaded into registers before this block is computed on. No barriers in the token loop; the
// NG states are combined through workgroup memory at the end.

const ROWS: u32 = 4u;
const WG: u32 = {{WG}}u;
const TT: u32 = {{TT}}u; // tokens per lane group per block
const LPT: u32 = D4 / KV_RAW4; // lanes per token
const NG: u32 = WG / LPT;
const KV_BLOCK: u32 = NG * TT;
const RW: u32 = KV_RAW4; // vec4<f32> per raw word

var<workgroup> combO: array<vec4<f32>, NG * ROWS * D4>;
var<workgroup> combM: array<vec4<f32>, NG>;
var<workgroup> combL: array<vec4<f32>, NG>;

fn rowOf(u: Unit, t: u32, nkv: u32, lane: u32) -> u32 {
  // masked tokens past the unit's end read its last token (their p is 0)
  let tok = min(t, u.ntok - 1u);
  return (planBuf[params.offTok + u.tok + tok] * nkv + u.head) * LPT + lane;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let uid = wid.x + wid.y * params.gridX;
  let GROUP = params.group;
  let NQO = params.numQoHeads;
  let NKV = params.numKvHeads;
  if (uid >= params.unitCount) {
    return;
  }
  let b = (params.unitOffset + uid) * 8u;
  let u = Unit(planBuf[b], planBuf[b + 1u], planBuf[b + 2u], planBuf[b + 3u],
               planBuf[b + 4u], planBuf[b + 5u], planBuf[b + 6u], planBuf[b + 7u]);
  let lane = lid % LPT;
  let g = lid / LPT;

  // q of the 4 rows for this lane's dims (scaled), and the rows' KV limits (0 past the item's end)
  var q: array<vec4<f32>, ROWS * RW>;
  var lim = vec4<u32>(0u);
  for (var r = 0u; r < ROWS; r++) {
    let row = u.row0 + r;
    if (row < u.nrows) {
      let qid = planBuf[params.offItemQ + u.qbase + row / GROUP];
      lim[r] = planBuf[params.offLimit + qid];
      let qb = (qid * NQO + u.head * GROUP + row % GROUP) * D4 + lane * RW;
      for (var h = 0u; h < RW; h++) {
        q[r * RW + h] = queries[qb + h] * params.scaleLog2e;
      }
    }
  }
  var o: array<vec4<f32>, ROWS * RW>;
  var m = vec4<f32>(NEG);
  var l = vec4<f32>(0.0);

  var kr: array<KvRaw, TT>;
  var vr: array<KvRaw, TT>;
  if (u.ntok > 0u) {
    for (var j = 0u; j < TT; j++) {
      let src = rowOf(u, j * NG + g, NKV, lane);
      kr[j] = loadKRaw(src);
      vr[j] = loadVRaw(src);
    }
  }
  for (var t0 = 0u; t0 < u.ntok; t0 += KV_BLOCK) {
    let kc = kr;
    let vc = vr;
    if (t0 + KV_BLOCK < u.ntok) {
      for (var j = 0u; j < TT; j++) {
        let src = rowOf(u, t0 + KV_BLOCK + j * NG + g, NKV, lane);
        kr[j] = loadKRaw(src);
        vr[j] = loadVRaw(src);
      }
    }
    // scores of the 4 rows for each of the group's TT tokens, summed over the group's lanes
    var s: array<vec4<f32>, TT>;
    var mb = m;
    for (var j = 0u; j < TT; j++) {
      var acc = vec4<f32>(0.0);
      for (var h = 0u; h < RW; h++) {
        let k = kvDecode(kc[j], h);
        acc += vec4<f32>(dot(q[h], k), dot(q[RW + h], k), dot(q[2u * RW + h], k), dot(q[3u * RW + h], k));
      }
      for (var off = 1u; off < LPT; off <<= 1u) {
        acc += subgroupShuffleXor(acc, off);
      }
      let t = t0 + j * NG + g;
      let ok = (vec4<u32>(u.pos + t) < lim) & vec4<bool>(t < u.ntok);
      s[j] = select(vec4<f32>(NEG), acc, ok);
      mb = max(mb, s[j]);
    }
    let alpha = exp2(m - mb);
    m = mb;
    l *= alpha;
    for (var h = 0u; h < RW; h++) {
      o[h] *= alpha.x;
      o[RW + h] *= alpha.y;
      o[2u * RW + h] *= alpha.z;
      o[3u * RW + h] *= alpha.w;
    }
    for (var j = 0u; j < TT; j++) {
      let p = select(vec4<f32>(0.0), exp2(s[j] - m), s[j] != vec4<f32>(NEG));
      l += p;
      for (var h = 0u; h < RW; h++) {
        let v = kvDecode(vc[j], h);
        o[h] = fma(vec4<f32>(p.x), v, o[h]);
        o[RW + h] = fma(vec4<f32>(p.y), v, o[RW + h]);
        o[2u * RW + h] = fma(vec4<f32>(p.z), v, o[2u * RW + h]);
        o[3u * RW + h] = fma(vec4<f32>(p.w), v, o[3u * RW + h]);
      }
    }
  }

  // combine the NG groups' states: each group publishes (m, l, o); then invocations take (row, dims)
  for (var r = 0u; r < ROWS; r++) {
    for (var h = 0u; h < RW; h++) {
      combO[(g * ROWS + r) * D4 + lane * RW + h] = o[r * RW + h];
    }
  }
  if (lane == 0u) {
    combM[g] = m;
    combL[g] = l;
  }
  workgroupBarrier();
  for (var e = lid; e < ROWS * D4; e += WG) {
    let r = e / D4;
    let c = e % D4;
    let row = u.row0 + r;
    if (row >= u.nrows) {
      continue;
    }
    var mm = NEG;
    for (var k = 0u; k < NG; k++) {
      mm = max(mm, combM[k][r]);
    }
    var ll = 0.0;
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < NG; k++) {
      let lk = combL[k][r];
      let w = select(0.0, exp2(combM[k][r] - mm), lk > 0.0);
      ll += w * lk;
      acc = fma(vec4<f32>(w), combO[(k * ROWS + r) * D4 + c], acc);
    }
    let lse = select(NEG, (mm + log2(ll)) * LN2, ll > 0.0);
    let inv = select(0.0, 1.0 / ll, ll > 0.0);
    let lq = row / GROUP;
    let head = u.head * GROUP + row % GROUP;
    let qid = planBuf[params.offItemQ + u.qbase + lq];
    if (planBuf[params.offDirect + qid] != 0u) {
      // the query's only partial: write the final output, no merge needed
      let ob = qid * NQO + head;
      store4(true, ob * D4 + c, acc * inv);
      if (c == 0u) {
        outBuf[params.outLseOffset + ob] = lse;
      }
    } else {
      let pb = (u.obase + lq) * NQO + head;
      store4(false, pb * D4 + c, acc * inv);
      if (c == 0u) {
        partBuf[params.partLseOffset + pb] = lse;
      }
    }
  }
}
