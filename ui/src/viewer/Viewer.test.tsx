// @vitest-environment happy-dom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ViewerConnection, ViewerSnapshot } from '../lib/video/connection';
import type { TimelineStep } from '../lib/video/steps';
import { timelineStep as step } from '../test/fixtures';
import { Viewer } from './Viewer';

const snapshot = (steps: TimelineStep[]): ViewerSnapshot => ({
  socket: 'open',
  transport: 'webcodecs',
  focused: true,
  welcome: null,
  mode: null,
  lease: null,
  youControl: false,
  displayed: 'canvas',
  framesShown: 1,
  thumbnailUrl: null,
  steps,
  notice: null,
  reconnectAt: null,
});

const fakeConn = (snap: ViewerSnapshot): ViewerConnection =>
  ({
    snapshot: snap,
    subscribe: (fn: (s: ViewerSnapshot) => void) => {
      fn(snap);
      return () => undefined;
    },
  }) as unknown as ViewerConnection;


describe('Viewer', () => {
  let root: HTMLElement;
  beforeEach(() => {
    root = document.createElement('div');
    document.body.append(root);
  });
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const mount = (steps: TimelineStep[] = [], scaling?: '1:1' | 'fit'): void => {
    act(() => {
      render(<Viewer conn={fakeConn(snapshot(steps))} sandbox="sb-1" scaling={scaling} />, root);
    });
  };
  const row = (seq: number): Element => {
    const li = root.querySelector(`.step[data-seq="${seq}"]`);
    if (!li) throw new Error(`no step ${seq}`);
    return li;
  };

  it('shows no image box for a step that has no still', () => {
    mount([step(1, { kind: 'decision', decision: 'allow' })]);
    expect(row(1).querySelector('img')).toBeNull();
  });

  it('keeps an image box for a step whose still is on its way', () => {
    mount([step(2, { still: { x: 0, y: 0, w: 1280, h: 800 } })]);
    const img = row(2).querySelector('img');
    expect(img?.className).toBe('step-still');
    expect(img?.getAttribute('src')).toBeNull();
  });

  it('shows the still of a step once it has arrived', () => {
    mount([step(3, { still: { x: 0, y: 0, w: 1280, h: 800 }, stillUrl: 'blob:still-3' })]);
    const img = row(3).querySelector('img');
    expect(img?.className).toBe('step-still loaded');
    expect(img?.getAttribute('src')).toBe('blob:still-3');
  });

  it('stacks the refinement canvas over the picture, inside the stage', () => {
    mount();
    const layers = [...(root.querySelector('#stage')?.children ?? [])].map((e) => e.id);
    expect(layers).toEqual(['video', 'canvas', 'refine']);
    expect(root.querySelector('#refine')?.getAttribute('aria-hidden')).toBe('true');
  });

  it('switches between fitting the window and 1:1 with the scale button', () => {
    mount();
    const button = root.querySelector<HTMLButtonElement>('#btn-scale');
    const area = root.querySelector('#area');
    expect([button?.textContent, area?.getAttribute('data-scaling')]).toEqual(['1:1', 'fit']);
    act(() => button?.click());
    expect([button?.textContent, area?.getAttribute('data-scaling')]).toEqual(['Fit', '1:1']);
    act(() => button?.click());
    expect([button?.textContent, area?.getAttribute('data-scaling')]).toEqual(['1:1', 'fit']);
  });

  it('starts in 1:1 when the address asks for it', () => {
    mount([], '1:1');
    expect(root.querySelector('#area')?.getAttribute('data-scaling')).toBe('1:1');
    expect(root.querySelector('#btn-scale')?.textContent).toBe('Fit');
  });
});
