import { describe, expect, it } from 'vitest';
import { costModel } from '@canopy/planner';
import { CUDA_CAPABILITIES, TINY_UNIT_TOKENS, cudaPlanningHints, tinyUnitTokensFrom } from '../src/index.js';

describe('planning hints (CANOPY_CUDA_PLANNING_HINTS)', () => {
  it('default: balance against 1.5 × SMs, waves of 2 × SMs, 4 µs per CTA, no per-tile slots; the prefix cost model reads them', () => {
    const h100 = { parallelUnits: 198, waveSlots: 264, itemOverheadUs: 4 };
    expect(cudaPlanningHints(132, '')).toEqual(h100);
    expect(cudaPlanningHints(114, undefined)).toEqual({ parallelUnits: 171, waveSlots: 228, itemOverheadUs: 4 });
    expect(costModel(CUDA_CAPABILITIES)).toMatchObject({ ...h100, tileWaveSlots: [] });
  });
  it('"off" and explicit multiples', () => {
    expect(cudaPlanningHints(132, 'off')).toEqual({});
    expect(costModel({ ...CUDA_CAPABILITIES, planningHints: cudaPlanningHints(132, 'off') })).toMatchObject({ parallelUnits: 132, waveSlots: 0 });
    expect(cudaPlanningHints(132, 'pu=1.25,wq=2')).toEqual({ parallelUnits: 165, waveSlots: 264 });
    expect(cudaPlanningHints(132, 'wq=1')).toEqual({ waveSlots: 132 });
    expect(cudaPlanningHints(132, 'pu=1.5,wq=2,t128=1.5')).toEqual({ parallelUnits: 198, waveSlots: 264, tileWaveSlots: [{ minRows: 128, waveSlots: 198 }] });
    expect(cudaPlanningHints(132, 'pu=1.5,wq=2,ov=2.5')).toEqual({ parallelUnits: 198, waveSlots: 264, itemOverheadUs: 2.5 });
    expect(cudaPlanningHints(132, 'ov=0')).toEqual({ itemOverheadUs: 0 });
    expect(costModel({ ...CUDA_CAPABILITIES, planningHints: cudaPlanningHints(132, 'ov=2.5') }).itemOverheadUs).toBe(2.5);
  });
  it('anything else is refused with the expected form', () => {
    for (const bad of ['on', 'pu=0', 'pu=-1', 'pu=1.5;wq=2', 'xx=2', 'pu=', 'pu=abc', 't64=1', 't128=0', 'ov=-1', 'ov=x']) {
      expect(() => cudaPlanningHints(132, bad), bad).toThrow(/CANOPY_CUDA_PLANNING_HINTS must be "off" or like "pu=1.5,wq=2,t128=1,ov=4"/);
    }
  });
});

describe('tiny-tile limit (CANOPY_CUDA_TINY_TOKENS)', () => {
  it('unset or empty: TINY_UNIT_TOKENS; a whole number of tokens, 0 turning the tile off', () => {
    expect(tinyUnitTokensFrom(undefined)).toBe(TINY_UNIT_TOKENS);
    expect(tinyUnitTokensFrom('')).toBe(TINY_UNIT_TOKENS);
    expect(tinyUnitTokensFrom('0')).toBe(0);
    expect(tinyUnitTokensFrom('128')).toBe(128);
  });
  it('anything else is refused, naming the variable', () => {
    for (const bad of ['-1', '1.5', 'abc', '64k', 'on']) {
      expect(() => tinyUnitTokensFrom(bad), bad).toThrow(/CANOPY_CUDA_TINY_TOKENS must be a whole number of KV tokens/);
    }
  });
});
