// Streaming read probe: every invocation XOR-folds a grid-strided run of vec4<u32> words, so the
// kernel's time is the time to read the buffer once. The sink write is kept to defeat dead-code
// elimination but (for random data) never happens.
struct P { n: u32, stride: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> sink: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var acc = vec4<u32>(0u);
  var i = gid.x;
  for (; i + 3u * p.stride < p.n; i += 4u * p.stride) {
    acc ^= src[i] ^ src[i + p.stride] ^ src[i + 2u * p.stride] ^ src[i + 3u * p.stride];
  }
  for (; i < p.n; i += p.stride) {
    acc ^= src[i];
  }
  if (all(acc == vec4<u32>(0x9e3779b9u))) {
    sink[0] = acc.x;
  }
}
