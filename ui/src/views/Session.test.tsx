// @vitest-environment happy-dom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ViewerSnapshot } from '../lib/video/connection';
import type { TimelineStep } from '../lib/video/steps';
import { timelineStep as step } from '../test/fixtures';
import { Timeline } from './Session';


describe('Session command view', () => {
  let root: HTMLElement;
  beforeEach(() => {
    root = document.createElement('div');
    document.body.append(root);
  });
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const mount = (steps: TimelineStep[]): void => {
    act(() => {
      render(<Timeline snap={{ steps } as unknown as ViewerSnapshot} />, root);
    });
  };
  const row = (seq: number): Element => {
    const li = root.querySelector(`.step[data-seq="${seq}"]`);
    if (!li) throw new Error(`no step ${seq}`);
    return li;
  };

  it('shows no image box for a step that has no still', () => {
    mount([step(1, { kind: 'approval', decision: 'pending' })]);
    expect(row(1).querySelector('.step-still-box')).toBeNull();
    expect(row(1).classList.contains('has-still')).toBe(false);
  });

  it('keeps an image box for a step whose still is on its way', () => {
    mount([step(2, { still: { x: 0, y: 0, w: 1280, h: 800 } })]);
    expect(row(2).querySelector('.step-still-box img')).toBeNull();
    expect(row(2).querySelector('.step-still-box')).not.toBeNull();
  });

  it('shows the still of a step once it has arrived', () => {
    mount([step(3, { stillUrl: 'blob:still-3' })]);
    expect(row(3).querySelector('.step-still-box img')?.getAttribute('src')).toBe('blob:still-3');
  });
});
