import { describe, expect, it } from 'vitest';
import { showsStill, upsertStep, type TimelineStep } from './steps';
import { step } from '../../test/fixtures';
import type { Step } from './wire';

const row = (s: Step, stillUrl: string | null = null): TimelineStep =>
  upsertStep([], s, 'a1', stillUrl).list[0] as TimelineStep;

describe('command-view stills', () => {
  it('a step that sends no still has none to show', () => {
    expect(showsStill(row(step(1, { kind: 'decision', decision: 'allow' })))).toBe(false);
  });

  it('a step that says a still is coming shows one before it arrives', () => {
    expect(showsStill(row(step(2, { still: { x: 0, y: 0, w: 1280, h: 800 } })))).toBe(true);
  });

  it('a step whose still has arrived shows it', () => {
    expect(showsStill(row(step(3), 'blob:still-3'))).toBe(true);
  });

  it('a step re-sent without its still region keeps the still it has', () => {
    const first = upsertStep([], step(4), 'a1', 'blob:still-4').list;
    const again = upsertStep(first, step(4, { decision: 'done' }), 'a2', null).list;
    expect(showsStill(again[0] as TimelineStep)).toBe(true);
  });
});
