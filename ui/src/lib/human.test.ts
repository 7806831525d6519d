import { describe, expect, it } from 'vitest';
import { helpKindText, humanWait, spanText } from './human';

describe('requests for a human in words', () => {
  it('names each kind of help', () => {
    expect((['login', 'captcha', 'confirm', 'other'] as const).map(helpKindText)).toEqual(['Log in', 'Solve a CAPTCHA', 'Confirm something', 'Help']);
  });

  it('words spans of seconds, minutes and hours', () => {
    expect(spanText(45_400)).toBe('45 s');
    expect(spanText(185_000)).toBe('3 min 05 s');
    expect(spanText(3_720_000)).toBe('1 h 02 min');
    expect(spanText(-5)).toBe('0 s');
  });

  it('says how long the agent waited and how long it still waits, warning near the end', () => {
    expect(humanWait(0, 300_000, 60_000)).toEqual({ waited: 'waiting 1 min 00 s', left: 'Gives up in 4 min 00 s', warn: false, expired: false });
    expect(humanWait(0, 300_000, 290_500)).toMatchObject({ left: 'Gives up in 10 s', warn: true });
    expect(humanWait(0, 300_000, 300_000)).toMatchObject({ expired: true, warn: true });
  });
});
