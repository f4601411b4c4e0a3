// f32 KV pools, indexed in vec4 units.
@group(0) @binding(7) var<storage, read> kPool: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> vPool: array<vec4<f32>>;

fn loadK4(i: u32) -> vec4<f32> {
  return kPool[i];
}

fn loadV4(i: u32) -> vec4<f32> {
  return vPool[i];
}
