// Fallback without the `subgroups` feature: sum each partial score over the TPR lanes of its row
// through workgroup memory.
var<workgroup> red: array<f32, WG * TT>;

fn reduceRow(s: ptr<function, array<f32, TT>>, lid: u32) {
  if (TPR == 1u) {
    return;
  }
  for (var j = 0u; j < TT; j++) {
    red[lid * TT + j] = (*s)[j];
  }
  workgroupBarrier();
  let first = lid - lid % TPR;
  for (var j = 0u; j < TT; j++) {
    var v = 0.0;
    for (var k = 0u; k < TPR; k++) {
      v += red[(first + k) * TT + j];
    }
    (*s)[j] = v;
  }
  workgroupBarrier();
}
