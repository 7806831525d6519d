import { describe, expect, it } from 'vitest';
import { countdown, msToNextTick, WARN_BELOW_S } from './countdown';

describe('countdown', () => {
  it('counts whole seconds up to the deadline', () => {
    expect(countdown(42_000, 0)).toEqual({ seconds: 42, text: 'Denies in 42 s', warn: false, expired: false });
    expect(countdown(42_000, 500).text).toBe('Denies in 42 s'); // 41.5 s left rounds up
    expect(countdown(120_000, 0).text).toBe('Denies in 120 s');
  });

  it('warns under 15 s', () => {
    expect(countdown(15_000, 0).warn).toBe(false);
    expect(countdown(14_999, 0)).toMatchObject({ seconds: 15, warn: false });
    expect(countdown(14_000, 0)).toMatchObject({ seconds: 14, warn: true });
    expect(WARN_BELOW_S).toBe(15);
  });

  it('says when the deadline passed', () => {
    expect(countdown(1000, 1000)).toMatchObject({ seconds: 0, expired: true, warn: true });
    expect(countdown(Number.NaN, 0)).toMatchObject({ expired: false, text: 'No deadline' });
  });

  it('ticks on second boundaries', () => {
    expect(msToNextTick(10_250, 0)).toBe(255);
    expect(msToNextTick(10_000, 0)).toBe(1000);
    expect(msToNextTick(0, 5)).toBe(1000);
  });
});
