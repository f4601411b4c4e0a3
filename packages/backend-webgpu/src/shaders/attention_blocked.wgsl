// Register-blocked ("GEMM-style") partial attention for units with many rows (shared-prefix packs).
// Same units, bindings and outputs as attention.wgsl; joined with attention_common.wgsl, a KV
// reader (kv_f16/kv_f32) and blocked_kv_stage.wgsl (the KV prefetch and staging). Why a second kernel: in attention.wgsl every row re-reads each K/V value
// from workgroup memory (one vec4 load per 4 FMAs) and each score needs a cross-lane reduction, so
// the 64-row tile reached about a third of the H100's f32 FMA rate. Here each invocation computes
// a micro-tile of the score block and of the output, so every value it loads feeds several FMAs
// and no score is reduced across lanes.
//
// Per unit: the unit's q rows (scaled into the log2 domain) are staged once, transposed, in
// workgroup memory (qT[d][row], vec4 = 4 rows at one dim). Then per block of KV_BLOCK tokens:
//  1. K block (f32, padded rows) → kv; S = Q·Kᵀ: invocation (rq, tg) owns 4 rows × QK_ST tokens
//     (tokens tg, tg + QK_TG, …: neighbouring invocations read neighbouring K rows, conflict-free)
//     and loops over the head dim: per 4 dims, 4 + QK_ST vec4 loads feed 16·QK_ST FMAs.
//  2. S → ps[token][row]; V block → kv (K is no longer read); invocation `row` (< ROWS) masks its
//     row by queryKvLimit exactly as attention.wgsl does, takes the block max and the online-softmax
//     step (exp2 domain, f32), keeps (m, l) in registers, writes p back and its alpha to rowA.
//  3. O += P·V: invocation (rg, dg) owns PV_RQ row quads × PV_D4 vec4 dims of O (dims dg, dg + PV_DG,
//     …: conflict-free V reads), rescales them by alpha and accumulates 4·PV_RQ·PV_D4 vec4 FMAs per
//     token from PV_RQ + PV_D4 loads.
// The next block's K and V are loaded into registers (raw words, f16 stays packed) while the
// current one is computed on. At the end, row threads publish 1/l and write lse; O tiles are
// written like attention.wgsl (straight to the output for a query's only partial, else its slot).
// The host (variants.ts blockedShape) picks the sizes so that RQ4 * QK_TG = PV_RG * PV_DG = WG and
// ROWS <= WG, and checks the workgroup memory against the device limit.

const ROWS: u32 = {{ROWS}}u;
const KV_BLOCK: u32 = {{KV_BLOCK}}u;
const WG: u32 = {{WG}}u;
const QK_ST: u32 = {{QK_ST}}u; // tokens per invocation in S = Q·Kᵀ (4 rows each)
const PV_RQ: u32 = {{PV_RQ}}u; // row quads per invocation in O += P·V
const PV_D4: u32 = {{PV_D4}}u; // vec4 dims per invocation in O += P·V

const RQ4: u32 = ROWS / 4u;
const QK_TG: u32 = KV_BLOCK / QK_ST;
const PV_RG: u32 = RQ4 / PV_RQ;
const PV_DG: u32 = D4 / PV_D4;
const KS: u32 = D4 + 1u; // padded K/V row stride (vec4): neighbouring tokens start in different banks
const NO: u32 = PV_RQ * 4u * PV_D4;

var<workgroup> qT: array<vec4<f32>, D * RQ4>;
var<workgroup> kv: array<vec4<f32>, KV_BLOCK * KS>;
var<workgroup> ps: array<vec4<f32>, KV_BLOCK * RQ4>;
var<workgroup> rowA: array<vec4<f32>, RQ4>;
var<workgroup> wNtok: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = unitRecord(wid);
  let GROUP = params.group;
  let NQO = params.numQoHeads;
  let NKV = params.numKvHeads;
  if (b == NO_UNIT) {
    return;
  }
  if (lid == 0u) {
    wNtok = planBuf[b + 1u];
  }
  // loop bounds around barriers must be uniform
  let ntok = workgroupUniformLoad(&wNtok);
  let u = unitAt(b, ntok);

  // q rows, scaled, transposed into qT (rows past the item's end are zeros; their limit is 0).
  // Neighbouring invocations take neighbouring rows of one dim quad, so their stores hit
  // neighbouring words (rows along dims would all hit one bank).
  for (var e = lid; e < ROWS * D4; e += WG) {
    let lr = e % ROWS;
    let d4 = e / ROWS;
    let r = u.row0 + lr;
    var qv = vec4<f32>(0.0);
    if (r < u.nrows) {
      let qid = planBuf[params.offItemQ + u.qbase + r / GROUP];
      qv = queries[(qid * NQO + u.head * GROUP + r % GROUP) * D4 + d4] * params.scaleLog2e;
    }
    for (var x = 0u; x < 4u; x++) {
      qT[(4u * d4 + x) * RQ4 + lr / 4u][lr % 4u] = qv[x];
    }
  }

  // the softmax state of row `lid` (invocations below ROWS)
  var limit = 0u;
  var qidRow = 0u;
  let rowValid = lid < ROWS && u.row0 + lid < u.nrows;
  if (rowValid) {
    qidRow = planBuf[params.offItemQ + u.qbase + (u.row0 + lid) / GROUP];
    limit = planBuf[params.offLimit + qidRow];
  }
  var m = NEG;
  var l = 0.0;

  // S micro-tile: 4 rows (quad rq) × QK_ST tokens (tg, tg + QK_TG, …)
  let tg = lid % QK_TG;
  let rq = lid / QK_TG;
  // O micro-tile: row quads rg, rg + PV_RG, … × vec4 dims dg, dg + PV_DG, …
  let dg = lid % PV_DG;
  let rg = lid / PV_DG;
  var o: array<vec4<f32>, NO>;

  prefetch(u, 0u, lid, NKV);
  for (var t0 = 0u; t0 < ntok; t0 += KV_BLOCK) {
    workgroupBarrier(); // the previous block's P·V is done with kv and ps
    stageRaw(false, lid);
    workgroupBarrier();

    // zeroed explicitly: a declaration inside the loop was not re-zeroed per block on lavapipe
    // two partial sums per token (even and odd dims) so twice as many FMA chains are in flight
    var acc: array<vec4<f32>, QK_ST>;
    var acc2: array<vec4<f32>, QK_ST>;
    for (var j = 0u; j < QK_ST; j++) {
      acc[j] = vec4<f32>(0.0);
      acc2[j] = vec4<f32>(0.0);
    }
    // the 4 dims of a step are spelled out (.x … .w) rather than looped: no dynamic vector index
    for (var d4 = 0u; d4 < D4; d4++) {
      let qb = 4u * d4 * RQ4 + rq;
      let q0 = qT[qb];
      let q1 = qT[qb + RQ4];
      let q2 = qT[qb + 2u * RQ4];
      let q3 = qT[qb + 3u * RQ4];
      for (var j = 0u; j < QK_ST; j++) {
        let k = kv[(tg + j * QK_TG) * KS + d4];
        acc[j] = fma(q2, vec4<f32>(k.z), fma(q0, vec4<f32>(k.x), acc[j]));
        acc2[j] = fma(q3, vec4<f32>(k.w), fma(q1, vec4<f32>(k.y), acc2[j]));
      }
    }
    for (var j = 0u; j < QK_ST; j++) {
      ps[(tg + j * QK_TG) * RQ4 + rq] = acc[j] + acc2[j];
    }
    workgroupBarrier(); // S is in ps; K is no longer read

    stageRaw(true, lid);
    if (t0 + KV_BLOCK < ntok) {
      prefetch(u, t0 + KV_BLOCK, lid, NKV);
    }
    if (lid < ROWS) {
      let q4 = lid / 4u;
      let c = lid % 4u;
      var mb = m;
      for (var t = 0u; t < KV_BLOCK; t++) {
        let ok = t0 + t < ntok && u.pos + t0 + t < limit;
        mb = max(mb, select(NEG, ps[t * RQ4 + q4][c], ok));
      }
      let alpha = exp2(m - mb);
      m = mb;
      l *= alpha;
      for (var t = 0u; t < KV_BLOCK; t++) {
        let ok = t0 + t < ntok && u.pos + t0 + t < limit;
        let p = select(0.0, exp2(ps[t * RQ4 + q4][c] - m), ok);
        l += p;
        ps[t * RQ4 + q4][c] = p;
      }
      rowA[q4][c] = alpha;
    }
    workgroupBarrier(); // P, alpha and the V block are in place

    // o[(i * 4 + x) * PV_D4 + c]: row x of quad i, vec4 dims c; rows spelled out as above
    for (var i = 0u; i < PV_RQ; i++) {
      let a = rowA[rg + i * PV_RG];
      for (var c = 0u; c < PV_D4; c++) {
        let ob = i * 4u * PV_D4 + c;
        o[ob] *= a.x;
        o[ob + PV_D4] *= a.y;
        o[ob + 2u * PV_D4] *= a.z;
        o[ob + 3u * PV_D4] *= a.w;
      }
    }
    for (var t = 0u; t < KV_BLOCK; t++) {
      var vv: array<vec4<f32>, PV_D4>;
      for (var c = 0u; c < PV_D4; c++) {
        vv[c] = kv[t * KS + dg + c * PV_DG];
      }
      for (var i = 0u; i < PV_RQ; i++) {
        let p = ps[t * RQ4 + rg + i * PV_RG];
        for (var c = 0u; c < PV_D4; c++) {
          let ob = i * 4u * PV_D4 + c;
          o[ob] = fma(vec4<f32>(p.x), vv[c], o[ob]);
          o[ob + PV_D4] = fma(vec4<f32>(p.y), vv[c], o[ob + PV_D4]);
          o[ob + 2u * PV_D4] = fma(vec4<f32>(p.z), vv[c], o[ob + 2u * PV_D4]);
          o[ob + 3u * PV_D4] = fma(vec4<f32>(p.w), vv[c], o[ob + 3u * PV_D4]);
        }
      }
    }
  }

  // row threads publish 1/l (through rowA) and write lse; then every invocation writes its O tile
  workgroupBarrier();
  if (lid < ROWS) {
    rowA[lid / 4u][lid % 4u] = select(0.0, 1.0 / l, l > 0.0);
    if (rowValid) {
      let r = u.row0 + lid;
      let lse = select(NEG, (m + log2(l)) * LN2, l > 0.0);
      if (planBuf[params.offDirect + qidRow] != 0u) {
        outBuf[params.outLseOffset + qidRow * NQO + u.head * GROUP + r % GROUP] = lse;
      } else {
        partBuf[params.partLseOffset + (u.obase + r / GROUP) * NQO + u.head * GROUP + r % GROUP] = lse;
      }
    }
  }
  workgroupBarrier();
  for (var i = 0u; i < PV_RQ; i++) {
    let inv = rowA[rg + i * PV_RG];
    for (var x = 0u; x < 4u; x++) {
      let r = u.row0 + (rg + i * PV_RG) * 4u + x;
      if (r < u.nrows) {
        let lq = r / GROUP;
        let head = u.head * GROUP + r % GROUP;
        let qid = planBuf[params.offItemQ + u.qbase + lq];
        let direct = planBuf[params.offDirect + qid] != 0u;
        // the query's only partial goes straight to the output, no merge needed
        let ob = select((u.obase + lq) * NQO + head, qid * NQO + head, direct);
        for (var c = 0u; c < PV_D4; c++) {
          store4(direct, ob * D4 + dg + c * PV_DG, o[(i * 4u + x) * PV_D4 + c] * inv[x]);
        }
      }
    }
  }
}
