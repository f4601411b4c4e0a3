// f32 KV pools, indexed in vec4 units.
@group(0) @binding(7) var<storage, read> kPool: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> vPool: array<vec4<f32>>;

fn loadK4(i: u32) -> vec4<f32> {
  return kPool[i];
}

fn loadV4(i: u32) -> vec4<f32> {
  return vPool[i];
}

// Raw words for staging kernels (attention_blocked.wgsl): one vec4<f32> each (KV_RAW4 = 1).
const KV_RAW4: u32 = 1u;
alias KvRaw = vec4<f32>;

fn loadKRaw(i: u32) -> KvRaw {
  return kPool[i];
}

fn loadVRaw(i: u32) -> KvRaw {
  return vPool[i];
}

fn kvDecode(w: KvRaw, h: u32) -> vec4<f32> {
  return w;
}
