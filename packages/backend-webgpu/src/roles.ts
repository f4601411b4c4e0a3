import { CanopyError } from '@canopy/core';
import { specialize } from './specialize.js';

/** Module-scope names of one variant's body (attention.wgsl, a tile_*.wgsl, a reduce_*.wgsl). */
const PER_VARIANT = ['TPR', 'SPLITS', 'ROWS', 'WG', 'KV_BLOCK', 'SMEM4', 'NV', 'TT', 'PF', 'pfK', 'pfV', 'unitTokens', 'prefetch', 'loadKvBlock', 'kvRowBase', 'kAt', 'vAt', 'reduceRow'];
const RENAME = new RegExp(`\\b(${PER_VARIANT.join('|')})\\b`, 'g');
/** Workgroup arrays every body uses under the same name: declared once, sized for the largest. */
const SHARED_DECL = /^var<workgroup> (smem|wNtok|red): [^;]*;[ \t]*$/gm;
const ENTRY = /@compute @workgroup_size\(\w+\)\s*fn main\(@builtin\(workgroup_id\) wid: vec3<u32>, @builtin\(local_invocation_index\) lid: u32\)/;

export interface RoleBody {
  /** The variant's files in order (reduce, attention.wgsl, tile), not yet specialized. */
  files: string[];
  constants: Record<string, number>;
  /** f32 words of the shared-memory reduction (reduce_shared.wgsl), 0 with subgroups. */
  redWords: number;
  smemVec4: number;
  subgroups: boolean;
}

/**
 * The one-dispatch attention module: the shared part (attention_common.wgsl, the KV reader), one
 * renamed body per variant, the shared workgroup arrays, and attention_roles.wgsl's entry point.
 */
export function rolesModule(common: string[], bodies: RoleBody[], roles: string, workgroupSize: number): string {
  if (bodies.length === 0 || bodies.length > 8) throw new CanopyError('bad-variant', `webgpu: one-dispatch mode takes 1 to 8 variants, got ${bodies.length}`);
  const parts: string[] = [];
  if (bodies.some((b) => b.subgroups)) parts.push('enable subgroups;');
  parts.push(...common);
  const smem = Math.max(1, ...bodies.map((b) => b.smemVec4));
  parts.push(`var<workgroup> smem: array<vec4<f32>, ${smem}u>;`, 'var<workgroup> wNtok: u32;');
  const red = Math.max(0, ...bodies.map((b) => b.redWords));
  if (red > 0) parts.push(`var<workgroup> red: array<f32, ${red}u>;`);
  bodies.forEach((b, v) => {
    let text = specialize(b.files, b.constants).replace(/^enable subgroups;\s*$/m, '').replace(SHARED_DECL, '');
    if (!ENTRY.test(text)) throw new CanopyError('wgsl-error', 'webgpu: attention.wgsl entry point not found for the one-dispatch module');
    text = text.replace(ENTRY, `fn body_v${v}(wid: vec3<u32>, lid: u32)`).replace(RENAME, `$1_v${v}`);
    parts.push(`// ---- variant ${v} ----`, text);
  });
  const calls = bodies
    .map((_, v) => {
      const call = `{\n    body_v${v}(wid, lid);\n  }`;
      if (v === bodies.length - 1) return v === 0 ? `  ${call}` : ` else ${call}`;
      const end = `params.roleEnd[${v >> 2}u].${'xyzw'[v & 3]}`;
      return `${v === 0 ? '  ' : ' else '}if (uid < ${end}) ${call}`;
    })
    .join('');
  parts.push(specialize([roles], { WG: workgroupSize, ROLE_CALLS: calls }));
  return parts.join('\n');
}
