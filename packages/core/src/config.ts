import { fail } from './errors.js';
import type { AttentionConfig, KvDtype } from './types.js';

/** The softmax scale: `config.scale` or 1/sqrt(headDim). */
export function softmaxScale(config: AttentionConfig): number {
  return config.scale ?? 1 / Math.sqrt(config.headDim);
}

export function kvBytesPerElement(dtype: KvDtype): 2 | 4 {
  return dtype === 'f16' ? 2 : 4;
}

/** Bytes of K plus V for one token over all KV heads (4096 for 8 heads × 128 dims in f16). */
export function kvBytesPerToken(config: AttentionConfig): number {
  return 2 * config.numKvHeads * config.headDim * kvBytesPerElement(config.kvDtype);
}

/** Query heads per KV head. */
export function gqaGroupSize(config: AttentionConfig): number {
  return config.numQoHeads / config.numKvHeads;
}

function positiveInt(v: unknown, name: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    fail('bad-config', `config.${name} must be a positive integer, got ${String(v)}`);
  }
}

export function validateConfig(config: AttentionConfig): void {
  if (config === null || typeof config !== 'object') fail('bad-config', 'config must be an object');
  positiveInt(config.numQoHeads, 'numQoHeads');
  positiveInt(config.numKvHeads, 'numKvHeads');
  positiveInt(config.headDim, 'headDim');
  if (config.numQoHeads % config.numKvHeads !== 0) {
    fail(
      'bad-config',
      `config.numQoHeads (${config.numQoHeads}) must be a multiple of config.numKvHeads (${config.numKvHeads}) for GQA`,
    );
  }
  if (config.kvDtype !== 'f16' && config.kvDtype !== 'f32') {
    fail('bad-config', `config.kvDtype must be "f16" or "f32", got ${JSON.stringify(config.kvDtype)}`);
  }
  if (config.scale !== undefined && !(Number.isFinite(config.scale) && config.scale > 0)) {
    fail('bad-config', `config.scale must be a positive finite number, got ${config.scale}`);
  }
}
