// f32 FMA peak probe: 8 independent vec4 FMA chains per invocation (enough to hide latency),
// iteration count from a uniform so the compiler cannot fold the loop.
struct P { iters: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = f32(gid.x) * 1e-7;
  var a0 = vec4<f32>(s, s + 1e-3, s + 2e-3, s + 3e-3);
  var a1 = a0 + 0.1;
  var a2 = a0 + 0.2;
  var a3 = a0 + 0.3;
  var a4 = a0 + 0.4;
  var a5 = a0 + 0.5;
  var a6 = a0 + 0.6;
  var a7 = a0 + 0.7;
  let mul = vec4<f32>(0.999999);
  let add = vec4<f32>(1e-7);
  for (var i = 0u; i < p.iters; i++) {
    a0 = fma(a0, mul, add);
    a1 = fma(a1, mul, add);
    a2 = fma(a2, mul, add);
    a3 = fma(a3, mul, add);
    a4 = fma(a4, mul, add);
    a5 = fma(a5, mul, add);
    a6 = fma(a6, mul, add);
    a7 = fma(a7, mul, add);
  }
  let t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
  if (t.x + t.y + t.z + t.w == 1234.5678) {
    sink[0] = t.x;
  }
}
