// Register-blocked partial attention, second layout ("b2"), for units with many rows. Same units,
// bindings and outputs as attention.wgsl and attention_blocked.wgsl; joined with
// attention_common.wgsl, a KV reader (kv_f16/kv_f32), a row reduction (blocked_rows_subgroup /
// blocked_rows_shared, which defines rowMax2 and rowSum2) and blocked_kv_stage.wgsl (the KV
// prefetch and staging, shared with attention_blocked.wgsl).
//
// What changes against attention_blocked.wgsl (4 rows × 1 token per invocation in S, softmax on one
// invocation per row):
//  - q is staged row-major (qs[row][dim quad], padded rows) and S = Q·Kᵀ is tiled 2 rows × 2 tokens
//    per invocation: per 4 dims 4 vec4 loads feed 16 FMAs (was 5 loads), and on a 32-wide subgroup
//    each load touches 4 or 8 distinct, bank-disjoint vec4 (one wavefront each).
//  - the online-softmax step runs where the scores are: the TP invocations that share a row pair
//    (consecutive lanes) take the block max with rowMax2 (subgroup shuffles, or workgroup memory
//    without subgroups), each keeps a partial row sum for its own tokens (summed once at the end),
//    and P goes to workgroup memory already exponentiated. No serial per-row phase.
//  - O += P·V: invocation (rg, dg) owns PV_RQ row quads × PV_D4 vec4 dims (as before; P rows padded
//    so the scalar P stores of a subgroup hit distinct banks).
// Per KV block: stage K | barrier | S, softmax, P | barrier | stage V, prefetch next | barrier | P·V |
// barrier (top of the next block).

const ROWS: u32 = {{ROWS}}u;
const KV_BLOCK: u32 = {{KV_BLOCK}}u;
const WG: u32 = {{WG}}u;       // (ROWS / 2) * (KV_BLOCK / 2)
const PV_RQ: u32 = {{PV_RQ}}u; // row quads per invocation in O += P·V
const PV_D4: u32 = {{PV_D4}}u; // vec4 dims per invocation in O += P·V

const RP: u32 = ROWS / 2u;     // S: rows rp and rp + RP
const TP: u32 = KV_BLOCK / 2u; // S: tokens tp and tp + TP (TP consecutive invocations share rows)
const RQ4: u32 = ROWS / 4u;
const PSQ: u32 = RQ4 + 1u;     // P row stride in vec4 (padded)
const PV_RG: u32 = RQ4 / PV_RQ;
const PV_DG: u32 = D4 / PV_D4;
const KS: u32 = D4 + 1u;       // padded q/K/V row stride (vec4)
const NO: u32 = PV_RQ * 4u * PV_D4;

var<workgroup> qs: array<vec4<f32>, ROWS * KS>;
var<workgroup> kv: array<vec4<f32>, KV_BLOCK * KS>;
var<workgroup> ps: array<vec4<f32>, KV_BLOCK * PSQ>;
var<workgroup> rowA: array<vec4<f32>, RQ4>;
var<workgroup> wNtok: u32;

fn hsum(a: vec4<f32>) -> f32 {
  return (a.x + a.y) + (a.z + a.w);
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
  if (lid == 0u) {
    wNtok = planBuf[b + 1u];
  }
  // loop bounds around barriers must be uniform
  let ntok = workgroupUniformLoad(&wNtok);
  let u = unitAt(b, ntok);

  // q rows, scaled, row-major (rows past the item's end are zeros; their limit is 0)
  for (var e = lid; e < ROWS * D4; e += WG) {
    let lr = e / D4;
    let d4 = e % D4;
    let r = u.row0 + lr;
    var qv = vec4<f32>(0.0);
    if (r < u.nrows) {
      let qid = planBuf[params.offItemQ + u.qbase + r / GROUP];
      qv = queries[(qid * NQO + u.head * GROUP + r % GROUP) * D4 + d4] * params.scaleLog2e;
    }
    qs[lr * KS + d4] = qv;
  }

  // S micro-tile: rows ra, rb × tokens ta, tb
  let tp = lid % TP;
  let rp = lid / TP;
  let ra = rp;
  let rb = rp + RP;
  let ta = tp;
  let tb = tp + TP;
  var lim = vec2<u32>(0u);
  if (u.row0 + ra < u.nrows) {
    lim.x = planBuf[params.offLimit + planBuf[params.offItemQ + u.qbase + (u.row0 + ra) / GROUP]];
  }
  if (u.row0 + rb < u.nrows) {
    lim.y = planBuf[params.offLimit + planBuf[params.offItemQ + u.qbase + (u.row0 + rb) / GROUP]];
  }
  // softmax state of rows ra, rb: m is the same in every lane of the row pair, l is this lane's share
  var m = vec2<f32>(NEG);
  var l = vec2<f32>(0.0);

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
    var a00 = vec4<f32>(0.0);
    var a01 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    for (var d4 = 0u; d4 < D4; d4++) {
      let qa = qs[ra * KS + d4];
      let qb = qs[rb * KS + d4];
      let ka = kv[ta * KS + d4];
      let kb = kv[tb * KS + d4];
      a00 = fma(qa, ka, a00);
      a01 = fma(qa, kb, a01);
      a10 = fma(qb, ka, a10);
      a11 = fma(qb, kb, a11);
    }
    // masking exactly as attention.wgsl: token inside the unit and below the row's KV limit
    let okA = t0 + ta < ntok;
    let okB = t0 + tb < ntok;
    let pa = u.pos + t0 + ta;
    let pb = u.pos + t0 + tb;
    let ok00 = okA && pa < lim.x;
    let ok01 = okB && pb < lim.x;
    let ok10 = okA && pa < lim.y;
    let ok11 = okB && pb < lim.y;
    let s00 = select(NEG, hsum(a00), ok00);
    let s01 = select(NEG, hsum(a01), ok01);
    let s10 = select(NEG, hsum(a10), ok10);
    let s11 = select(NEG, hsum(a11), ok11);
    let mb = max(m, rowMax2(vec2<f32>(max(s00, s01), max(s10, s11)), lid));
    let alpha = exp2(m - mb);
    m = mb;
    let p00 = select(0.0, exp2(s00 - m.x), ok00);
    let p01 = select(0.0, exp2(s01 - m.x), ok01);
    let p10 = select(0.0, exp2(s10 - m.y), ok10);
    let p11 = select(0.0, exp2(s11 - m.y), ok11);
    l = l * alpha + vec2<f32>(p00 + p01, p10 + p11);
    ps[ta * PSQ + ra / 4u][ra % 4u] = p00;
    ps[tb * PSQ + ra / 4u][ra % 4u] = p01;
    ps[ta * PSQ + rb / 4u][rb % 4u] = p10;
    ps[tb * PSQ + rb / 4u][rb % 4u] = p11;
    if (tp == 0u) {
      rowA[ra / 4u][ra % 4u] = alpha.x;
      rowA[rb / 4u][rb % 4u] = alpha.y;
    }
    workgroupBarrier(); // P and alpha are in place; K is no longer read

    stageRaw(true, lid);
    if (t0 + KV_BLOCK < ntok) {
      prefetch(u, t0 + KV_BLOCK, lid, NKV);
    }
    workgroupBarrier(); // the V block is in place

    // o[(i * 4 + x) * PV_D4 + c]: row x of quad i, vec4 dims c
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
        let p = ps[t * PSQ + rg + i * PV_RG];
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

  // the row sums of the TP lanes; lane tp == 0 publishes 1/l (through rowA) and writes lse
  l = rowSum2(l, lid);
  workgroupBarrier(); // the last P·V is done with rowA
  if (tp == 0u) {
    let inv = select(vec2<f32>(0.0), 1.0 / l, l > vec2<f32>(0.0));
    rowA[ra / 4u][ra % 4u] = inv.x;
    rowA[rb / 4u][rb % 4u] = inv.y;
    for (var k = 0u; k < 2u; k++) {
      let r = u.row0 + select(ra, rb, k == 1u);
      if (r < u.nrows) {
        let lse = select(NEG, (m[k] + log2(l[k])) * LN2, l[k] > 0.0);
        let qid = planBuf[params.offItemQ + u.qbase + r / GROUP];
        if (planBuf[params.offDirect + qid] != 0u) {
          outBuf[params.outLseOffset + qid * NQO + u.head * GROUP + r % GROUP] = lse;
        } else {
          partBuf[params.partLseOffset + (u.obase + r / GROUP) * NQO + u.head * GROUP + r % GROUP] = lse;
        }
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
