import { describe, expect, it } from 'vitest';
import { CUTOVER_PHASES, shopCutoverState } from '../../../src/contracts/cutover-phase.js';

describe('shopCutoverState (per-shop progress from the latest cutover phase)', () => {
  it('maps every phase to the state an operator tracks', () => {
    expect(shopCutoverState(undefined)).toBe('pending');
    expect(shopCutoverState('dry-run')).toBe('pending');
    expect(CUTOVER_PHASES.map((p) => shopCutoverState(p))).toEqual([
      'pending',
      'fenced',
      'fenced',
      'fenced',
      'fenced',
      'verifying',
      'verifying',
      'fenced',
      'flipped',
    ]);
    expect(shopCutoverState('finalized')).toBe('flipped');
    expect(shopCutoverState('aborted')).toBe('failed');
    expect(shopCutoverState('rolled-back')).toBe('rolled back');
  });
});
