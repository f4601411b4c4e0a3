import { CanopyError } from '@canopy/core';

/**
 * Fill the `{{NAME}}` constants of WGSL sources and join them into one module. Shader logic stays
 * in the .wgsl files; the host only supplies numbers and picks which files to join (the first file
 * may carry `enable` directives, which WGSL wants before any declaration).
 */
export function specialize(sources: string[], constants: Record<string, number | string>): string {
  const code = sources.join('\n');
  const out = code.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_m, name: string) => {
    const v = constants[name];
    if (v === undefined) throw new CanopyError('wgsl-constant', `WGSL constant {{${name}}} has no value`);
    return typeof v === 'number' ? formatNumber(name, v) : v;
  });
  return out;
}

function formatNumber(name: string, v: number): string {
  if (!Number.isFinite(v)) throw new CanopyError('wgsl-constant', `WGSL constant {{${name}}} is not finite: ${v}`);
  if (Number.isInteger(v)) return String(v);
  // f32 literal: enough digits to round-trip, never an integer-looking literal
  const s = v.toPrecision(9);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}
