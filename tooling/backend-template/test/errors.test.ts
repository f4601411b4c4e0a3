import { CanopyError, randomKvCache, type AttentionConfig } from '@canopy/core';
import { expect, it } from 'vitest';
import { TemplateBackend } from '../src/index.js';

it('raises CanopyError for misuse', async () => {
  const b = new TemplateBackend();
  const config: AttentionConfig = { numQoHeads: 2, numKvHeads: 1, headDim: 16, kvDtype: 'f32' };
  const plan = { config, numQueries: 1 } as never;
  await expect(b.run(plan, new Float32Array(32))).rejects.toThrow(/setKvCache\(\) before run/);
  await b.setKvCache(randomKvCache(2, 4, config, 1));
  await expect(b.run(plan, new Float32Array(3))).rejects.toThrow(CanopyError);
  await b.dispose();
  await expect(b.setKvCache(randomKvCache(2, 4, config, 1))).rejects.toThrow(/after dispose/);
});
