enable subgroups;
// Sum each partial score over the TPR lanes of its row with subgroup shuffles. The lanes of a row
// are consecutive invocations, so they sit in one subgroup when TPR <= the subgroup size
// (the host checks the adapter's minimum subgroup size before choosing this file).
fn reduceRow(s: ptr<function, array<f32, TT>>, lid: u32) {
  for (var j = 0u; j < TT; j++) {
    var v = (*s)[j];
    for (var off = 1u; off < TPR; off <<= 1u) {
      v += subgroupShuffleXor(v, off);
    }
    (*s)[j] = v;
  }
}
