// Row reductions of attention_blocked2.wgsl without subgroups: each invocation writes its value,
// one barrier, then each reads the TP values of its row pair. Called in uniform control flow; the
// next write to rowRed comes after at least one more barrier (the top of the next KV block).
var<workgroup> rowRed: array<vec2<f32>, WG>;

fn rowMax2(v: vec2<f32>, lid: u32) -> vec2<f32> {
  rowRed[lid] = v;
  workgroupBarrier();
  let base = lid - lid % TP;
  var x = v;
  for (var k = 0u; k < TP; k++) {
    x = max(x, rowRed[base + k]);
  }
  return x;
}

fn rowSum2(v: vec2<f32>, lid: u32) -> vec2<f32> {
  rowRed[lid] = v;
  workgroupBarrier();
  let base = lid - lid % TP;
  var x = vec2<f32>(0.0);
  for (var k = 0u; k < TP; k++) {
    x += rowRed[base + k];
  }
  return x;
}
