// One dispatch for every attention variant of a plan ("role selection"): each variant's body
// (attention.wgsl with its tiling and reduction, renamed body_v0, body_v1, … by the host) is in
// this module, and each workgroup runs the body of the variant whose unit range holds its unit.
// The ranges come from the uniform params and the unit id from the workgroup id, so the choice is
// uniform over the workgroup and the bodies' barriers stay in uniform control flow. All variants
// run with one workgroup size (the host uses this path only when their sizes agree) and share one
// workgroup-memory array sized for the largest.

@compute @workgroup_size({{WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let uid = wid.x + wid.y * params.gridX;
{{ROLE_CALLS}}
}
