enable subgroups;
// Streaming partial attention for decode-like units of 4 rows (one query × GQA 4, or up to 4
// queries of GQA 1): the whole GQA group scores each KV token from one read. Same units, bindings
// and outputs as attention.wgsl; joined with attention_common.wgsl and a KV reader.
//
// Why: the `direct` 4-row variant of attention.wgsl gives each row its own lanes, so every K/V
// word is loaded by 4 rows and each warp load brings 64 distinct bytes; on the H100 it streamed
// 1.3 TB/s of the 3 TB/s the read probe reaches (not enough bytes in flight). Here a lane group of
// LPT consecutive lanes reads one token's K (and V) row, WPL raw words per lane at stride LPT
// (f16: 8 halves = 16 bytes per word; at d128 on the H100 16 lanes × 1 word = the 256-byte row),
// fully coalesced and read once. Each lane keeps q and o of all 4 rows for its dims; the 4
// partial scores are summed over the group with subgroup shuffles (the host picks LPT, a power of
// two, no larger than the adapter's minimum subgroup size: lavapipe's 4- or 8-wide subgroups get
// more words per lane).
// NG = WG / LPT groups take interleaved tokens (t0 + j * NG + g, j < TT) and keep their own
// online-softmax state (m, l per row, identical in the group's lanes); the next block's raw words
// are loaded into registers before this block is computed on. No barriers in the token loop; the
// NG states are combined through workgroup memory at the end.

const ROWS: u32 = 4u;
const WG: u32 = {{WG}}u;
const TT: u32 = {{TT}}u; // tokens per lane group per block
const LPT: u32 = {{LPT}}u; // lanes per token row
const WPL: u32 = D4 / KV_RAW4 / LPT; // raw words per lane per token row
const NG: u32 = WG / LPT;
const KV_BLOCK: u32 = NG * TT;
const RW: u32 = KV_RAW4; // vec4<f32> per raw word
const QV: u32 = WPL * RW; // vec4<f32> of q (and of o) per row per lane

var<workgroup> combO: array<vec4<f32>, NG * ROWS * D4>;
var<workgroup> combM: array<vec4<f32>, NG>;
var<workgroup> combL: array<vec4<f32>, NG>;

fn rowOf(u: Unit, t: u32, nkv: u32, lane: u32) -> u32 {
  // masked tokens past the unit's end read its last token (their p is 0)
  let tok = min(t, u.ntok - 1u);
  return (planBuf[params.offTok + u.tok + tok] * nkv + u.head) * (LPT * WPL) + lane;
}

// the dim quad of vec4 x (< QV) of this lane: word i = x / RW at lane + i * LPT, half h = x % RW
fn dimQuad(lane: u32, x: u32) -> u32 {
  return (lane + (x / RW) * LPT) * RW + x % RW;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = unitRecord(wid);
  let GROUP = params.group;
  let NQO = params.numQoHeads;
  let NKV = params.numKvHeads;
  if (b == NO_UNIT) {
    return;
  }
  let u = unitAt(b, planBuf[b + 1u]);
  let lane = lid % LPT;
  let g = lid / LPT;

  // q of the 4 rows for this lane's dims (scaled), and the rows' KV limits (0 past the item's end)
  var q: array<vec4<f32>, ROWS * QV>;
  var lim = vec4<u32>(0u);
  for (var r = 0u; r < ROWS; r++) {
    let row = u.row0 + r;
    if (row < u.nrows) {
      let qid = planBuf[params.offItemQ + u.qbase + row / GROUP];
      lim[r] = planBuf[params.offLimit + qid];
      let qb = (qid * NQO + u.head * GROUP + row % GROUP) * D4;
      for (var x = 0u; x < QV; x++) {
        q[r * QV + x] = queries[qb + dimQuad(lane, x)] * params.scaleLog2e;
      }
    }
  }
  var o: array<vec4<f32>, ROWS * QV>;
  var m = vec4<f32>(NEG);
  var l = vec4<f32>(0.0);

  var kr: array<KvRaw, TT * WPL>;
  var vr: array<KvRaw, TT * WPL>;
  if (u.ntok > 0u) {
    for (var j = 0u; j < TT; j++) {
      let src = rowOf(u, j * NG + g, NKV, lane);
      for (var i = 0u; i < WPL; i++) {
        kr[j * WPL + i] = loadKRaw(src + i * LPT);
        vr[j * WPL + i] = loadVRaw(src + i * LPT);
      }
    }
  }
  for (var t0 = 0u; t0 < u.ntok; t0 += KV_BLOCK) {
    let kc = kr;
    let vc = vr;
    if (t0 + KV_BLOCK < u.ntok) {
      for (var j = 0u; j < TT; j++) {
        let src = rowOf(u, t0 + KV_BLOCK + j * NG + g, NKV, lane);
        for (var i = 0u; i < WPL; i++) {
          kr[j * WPL + i] = loadKRaw(src + i * LPT);
          vr[j * WPL + i] = loadVRaw(src + i * LPT);
        }
      }
    }
    // scores of the 4 rows for each of the group's TT tokens, summed over the group's lanes
    var s: array<vec4<f32>, TT>;
    var mb = m;
    for (var j = 0u; j < TT; j++) {
      var acc = vec4<f32>(0.0);
      for (var x = 0u; x < QV; x++) {
        let k = kvDecode(kc[j * WPL + x / RW], x % RW);
        acc += vec4<f32>(dot(q[x], k), dot(q[QV + x], k), dot(q[2u * QV + x], k), dot(q[3u * QV + x], k));
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
    for (var x = 0u; x < QV; x++) {
      o[x] *= alpha.x;
      o[QV + x] *= alpha.y;
      o[2u * QV + x] *= alpha.z;
      o[3u * QV + x] *= alpha.w;
    }
    for (var j = 0u; j < TT; j++) {
      let p = select(vec4<f32>(0.0), exp2(s[j] - m), s[j] != vec4<f32>(NEG));
      l += p;
      for (var x = 0u; x < QV; x++) {
        let v = kvDecode(vc[j * WPL + x / RW], x % RW);
        o[x] = fma(vec4<f32>(p.x), v, o[x]);
        o[QV + x] = fma(vec4<f32>(p.y), v, o[QV + x]);
        o[2u * QV + x] = fma(vec4<f32>(p.z), v, o[2u * QV + x]);
        o[3u * QV + x] = fma(vec4<f32>(p.w), v, o[3u * QV + x]);
      }
    }
  }

  // combine the NG groups' states: each group publishes (m, l, o); then invocations take (row, dims)
  for (var r = 0u; r < ROWS; r++) {
    for (var x = 0u; x < QV; x++) {
      combO[(g * ROWS + r) * D4 + dimQuad(lane, x)] = o[r * QV + x];
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
