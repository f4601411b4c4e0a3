// Partial attention over work units. A unit is (plan item, KV head, block of rows, KV chunk):
// with tile_shared.wgsl the workgroup copies KV_BLOCK tokens of K and V of one KV head into
// workgroup memory (f32), then every row of the unit (item queries x GQA group) scores them and
// folds them into its online-softmax state, so KV is read from memory once per unit whatever its
// row count. tile_direct.wgsl reads KV straight from the pools instead (no barriers: for CPU
// adapters, where workgroup memory buys nothing and barriers make shader compiles very slow).
//
// Thread layout: lid = (split * ROWS + row) * TPR + lane. TPR lanes share a row and own interleaved
// vec4 slices of the head dimension (conflict-free workgroup reads); SPLITS groups of rows take
// disjoint tokens of each block and are combined at the end (for few-row, decode-like units).
//
// Specialized by the host (the double-brace constants, see specialize.ts). The KV reader
// (kv_f16/kv_f32), the KV tiling (tile_shared/tile_direct) and the row reduction
// (reduce_subgroup/reduce_shared) are separate files concatenated in, with attention_common.wgsl
// (head dim, params, unit record, bindings). In one-dispatch mode (attention_roles.wgsl) the host
// renames this file's entry point and per-variant names so several variants share one module.

const TPR: u32 = {{TPR}}u;
const SPLITS: u32 = {{SPLITS}}u;
const ROWS: u32 = {{ROWS}}u;
const WG: u32 = {{WG}}u;
const KV_BLOCK: u32 = {{KV_BLOCK}}u;
const SMEM4: u32 = {{SMEM_VEC4}}u;

const NV: u32 = D4 / TPR; // vec4 slices of q and o per thread
const TT: u32 = KV_BLOCK / SPLITS; // tokens per split per block

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = unitRecord(wid);
  // head counts and scale are run-time values so one pipeline serves every model shape
  let GROUP = params.group;
  let NQO = params.numQoHeads;
  let NKV = params.numKvHeads;
  if (b == NO_UNIT) {
    return;
  }
  let ntok = unitTokens(b, lid);
  let u = unitAt(b, ntok);

  let lane = lid % TPR;
  let row = (lid / TPR) % ROWS;
  let split = lid / (TPR * ROWS);
  let r = u.row0 + row;
  let valid = r < u.nrows;
  let lq = r / GROUP;
  let head = u.head * GROUP + r % GROUP;

  var qid = 0u;
  var limit = 0u; // rows past the item's end see nothing
  var q: array<vec4<f32>, NV>;
  if (valid) {
    qid = planBuf[params.offItemQ + u.qbase + lq];
    limit = planBuf[params.offLimit + qid];
    let qb = (qid * NQO + head) * D4;
    for (var j = 0u; j < NV; j++) {
      q[j] = queries[qb + j * TPR + lane] * params.scaleLog2e;
    }
  }
  var o: array<vec4<f32>, NV>;
  var m = NEG;
  var l = 0.0;

  for (var t0 = 0u; t0 < ntok; t0 += KV_BLOCK) {
    loadKvBlock(u, t0, lid, NKV);
    var s: array<f32, TT>;
    for (var j = 0u; j < TT; j++) {
      let kb = kvRowBase(u, t0, split * TT + j, NKV) + lane;
      var acc = vec4<f32>(0.0);
      for (var c = 0u; c < NV; c++) {
        acc = fma(q[c], kAt(kb + c * TPR), acc);
      }
      s[j] = (acc.x + acc.y) + (acc.z + acc.w);
    }
    reduceRow(&s, lid);

    var mb = m;
    for (var j = 0u; j < TT; j++) {
      let t = t0 + split * TT + j;
      let ok = t < u.ntok && u.pos + t < limit;
      s[j] = select(NEG, s[j], ok);
      mb = max(mb, s[j]);
    }
    let alpha = exp2(m - mb);
    m = mb;
    l *= alpha;
    for (var c = 0u; c < NV; c++) {
      o[c] *= alpha;
    }
    for (var j = 0u; j < TT; j++) {
      let p = select(0.0, exp2(s[j] - m), s[j] != NEG);
      l += p;
      let vb = kvRowBase(u, t0, split * TT + j, NKV) + lane;
      for (var c = 0u; c < NV; c++) {
        o[c] = fma(vec4<f32>(p), vAt(vb + c * TPR), o[c]);
      }
    }
  }

  if (SPLITS > 1u) {
    // Fold the token splits of each row into split 0 through workgroup memory (split 0 keeps
    // its own state in registers, so only SPLITS - 1 states are stored).
    workgroupBarrier();
    if (split > 0u) {
      let base = ((split - 1u) * ROWS + row) * (D4 + 1u);
      for (var c = 0u; c < NV; c++) {
        smem[base + c * TPR + lane] = o[c];
      }
      if (lane == 0u) {
        smem[base + D4] = vec4<f32>(m, l, 0.0, 0.0);
      }
    }
    workgroupBarrier();
    if (split == 0u) {
      var mm = m;
      for (var k = 1u; k < SPLITS; k++) {
        mm = max(mm, smem[((k - 1u) * ROWS + row) * (D4 + 1u) + D4].x);
      }
      let w0 = select(0.0, exp2(m - mm), l > 0.0);
      l *= w0;
      for (var c = 0u; c < NV; c++) {
        o[c] *= w0;
      }
      for (var k = 1u; k < SPLITS; k++) {
        let b = ((k - 1u) * ROWS + row) * (D4 + 1u);
        let ml = smem[b + D4];
        let w = select(0.0, exp2(ml.x - mm), ml.y > 0.0);
        l += w * ml.y;
        for (var c = 0u; c < NV; c++) {
          o[c] = fma(vec4<f32>(w), smem[b + c * TPR + lane], o[c]);
        }
      }
      m = mm;
    }
  }

  if (valid && split == 0u) {
    let lse = select(NEG, (m + log2(l)) * LN2, l > 0.0);
    let inv = select(0.0, 1.0 / l, l > 0.0);
    if (planBuf[params.offDirect + qid] != 0u) {
      // the query's only partial: write the final output, no merge needed
      let ob = qid * NQO + head;
      for (var c = 0u; c < NV; c++) {
        store4(true, ob * D4 + c * TPR + lane, o[c] * inv);
      }
      if (lane == 0u) {
        outBuf[params.outLseOffset + ob] = lse;
      }
    } else {
      let pb = (u.obase + lq) * NQO + head;
      for (var c = 0u; c < NV; c++) {
        store4(false, pb * D4 + c * TPR + lane, o[c] * inv);
      }
      if (lane == 0u) {
        partBuf[params.partLseOffset + pb] = lse;
      }
    }
  }
}
