// @vitest-environment happy-dom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ViewerSnapshot } from '../lib/video/connection';
import type { TimelineStep } from '../lib/video/steps';
import { humanRequest, timelineStep as step } from '../test/fixtures';
import { HandBackDialog, Timeline } from './Session';


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

describe('Session hand-back', () => {
  let root: HTMLElement;
  beforeEach(() => {
    root = document.createElement('div');
    document.body.append(root);
  });
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  it('asks for an answer the agent will get while it waits for a human, and sends the note', () => {
    const onConfirm = vi.fn();
    act(() => {
      render(<HandBackDialog busy={false} requests={[humanRequest(2)]} onCancel={() => undefined} onConfirm={onConfirm} />, root);
    });
    expect(root.textContent).toContain('The agent asked: The site wants a login I do not have');
    const field = root.querySelector('.note-answer');
    expect(field?.textContent).toContain('the agent will get this note');
    const text = field?.querySelector('textarea') as HTMLTextAreaElement;
    expect(document.activeElement).toBe(text);
    act(() => {
      text.value = 'Logged in as ci-bot; carry on';
      text.dispatchEvent(new Event('input', { bubbles: true }));
    });
    act(() => (root.querySelector('button[type="submit"]') as HTMLButtonElement).click());
    expect(onConfirm).toHaveBeenCalledWith('Logged in as ci-bot; carry on');
  });

  it('keeps the plain optional note when no one asked for help', () => {
    act(() => {
      render(<HandBackDialog busy={false} requests={[]} onCancel={() => undefined} onConfirm={() => undefined} />, root);
    });
    expect(root.querySelector('.note-answer')).toBeNull();
    expect(root.textContent).toContain('Note to the agent');
  });
});
