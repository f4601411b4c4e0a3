// fp16 KV pools as packed u32 (two halves per word), unpacked with unpack2x16float so no
// `shader-f16` feature is needed. Indexed in vec4 units of the f32 view (4 values = 2 words).
@group(0) @binding(7) var<storage, read> kPool: array<vec4<u32>>;
@group(0) @binding(8) var<storage, read> vPool: array<vec4<u32>>;

fn unpack4(w: vec4<u32>, i: u32) -> vec4<f32> {
  let h = select(w.xy, w.zw, (i & 1u) == 1u);
  return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}

fn loadK4(i: u32) -> vec4<f32> {
  return unpack4(kPool[i >> 1u], i);
}

fn loadV4(i: u32) -> vec4<f32> {
  return unpack4(vPool[i >> 1u], i);
}

// Raw words for staging kernels (attention_blocked.wgsl): one vec4<u32> holds 8 halves, i.e.
// KV_RAW4 = 2 vec4<f32>; kept packed in registers while prefetched, decoded when stored.
const KV_RAW4: u32 = 2u;
alias KvRaw = vec4<u32>;

fn loadKRaw(i: u32) -> KvRaw {
  return kPool[i];
}

fn loadVRaw(i: u32) -> KvRaw {
  return vPool[i];
}

fn kvDecode(w: KvRaw, h: u32) -> vec4<f32> {
  return unpack4(w, h);
}
