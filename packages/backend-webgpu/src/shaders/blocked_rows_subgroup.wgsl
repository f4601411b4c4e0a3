enable subgroups;
// Row reductions of attention_blocked2.wgsl with subgroup shuffles: the TP invocations that share
// a row pair are consecutive lanes of one subgroup (the host checks the adapter's minimum
// subgroup size against TP), so butterfly shuffles over offsets 1 … TP/2 reduce them.
fn rowMax2(v: vec2<f32>, lid: u32) -> vec2<f32> {
  var x = v;
  for (var off = 1u; off < TP; off <<= 1u) {
    x = max(x, subgroupShuffleXor(x, off));
  }
  return x;
}

fn rowSum2(v: vec2<f32>, lid: u32) -> vec2<f32> {
  var x = v;
  for (var off = 1u; off < TP; off <<= 1u) {
    x += subgroupShuffleXor(x, off);
  }
  return x;
}
