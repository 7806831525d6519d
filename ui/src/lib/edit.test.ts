import { describe, expect, it } from 'vitest';
import { action } from '../test/fixtures';
import { approveRequest, denyRequest, editFields, editRequest, initialDraft, parseCommandLine } from './edit';

const screen = { width: 1280, height: 800 };
const click = action({ kind: 'click', at: { x: 10, y: 20 }, button: 'left', count: 1, hold: null });

describe('approve and deny', () => {
  it('approves, with an optional grant', () => {
    expect(approveRequest()).toEqual({ decision: 'approve', grant_minutes: null });
    expect(approveRequest(10)).toMatchObject({ decision: 'approve', grant_minutes: 10 });
    expect(approveRequest(0)).toHaveProperty('error');
    expect(approveRequest(1441)).toHaveProperty('error');
    expect(approveRequest(Number.NaN)).toHaveProperty('error');
  });

  it('denies with a trimmed reason or none', () => {
    expect(denyRequest('  not now ')).toMatchObject({ decision: 'deny', reason: 'not now' });
    expect(denyRequest('   ')).toEqual({ decision: 'deny', reason: null });
  });
});

describe('edits', () => {
  it('moves a click in computer-use form, keeping button, count and held keys', () => {
    const d = { ...initialDraft(click), x: 100, y: 200 };
    expect(editRequest(click, d, screen)).toEqual({
      decision: 'edit', argv: null,
      computer: { action: 'left_click', coordinate: [100, 200] },
    });
    const dbl = action({ kind: 'click', at: { x: 1, y: 1 }, button: 'left', count: 2, hold: 'shift' });
    expect(editRequest(dbl, initialDraft(dbl), screen)).toMatchObject({
      computer: { action: 'double_click', coordinate: [1, 1], text: 'shift' },
    });
    const right = action({ kind: 'click', at: { x: 1, y: 1 }, button: 'right', count: 1, hold: null });
    expect(editRequest(right, initialDraft(right), screen)).toMatchObject({ computer: { action: 'right_click' } });
  });

  it('refuses points off the screen or missing', () => {
    expect(editRequest(click, { ...initialDraft(click), x: 1280 }, screen)).toHaveProperty('error');
    expect(editRequest(click, { ...initialDraft(click), y: null }, screen)).toHaveProperty('error');
    expect(editRequest(click, { ...initialDraft(click), x: 1.5 }, screen)).toHaveProperty('error');
  });

  it('edits drags, scrolls and moves', () => {
    const drag = action({ kind: 'drag', path: [{ x: 1, y: 2 }, { x: 5, y: 5 }, { x: 3, y: 4 }], button: 'left' });
    expect(initialDraft(drag)).toMatchObject({ startX: 1, startY: 2, x: 3, y: 4 });
    expect(editRequest(drag, { ...initialDraft(drag), x: 30 }, screen)).toMatchObject({
      computer: { action: 'left_click_drag', start_coordinate: [1, 2], coordinate: [30, 4] },
    });
    const scroll = action({ kind: 'scroll', at: { x: 5, y: 6 }, dx: 0, dy: -3, hold: null });
    expect(editRequest(scroll, { ...initialDraft(scroll), x: 50 }, screen)).toMatchObject({
      computer: { action: 'scroll', coordinate: [50, 6], scroll_direction: 'up', scroll_amount: 3 },
    });
    const move = action({ kind: 'mouse_move', to: { x: 9, y: 9 } });
    expect(editRequest(move, initialDraft(move), screen)).toMatchObject({ computer: { action: 'mouse_move', coordinate: [9, 9] } });
  });

  it('edits text, keys and commands', () => {
    const type = action({ kind: 'type', text: 'hello' });
    expect(editRequest(type, { ...initialDraft(type), text: 'bye' }, screen)).toMatchObject({ computer: { action: 'type', text: 'bye' } });
    expect(editRequest(type, { ...initialDraft(type), text: '' }, screen)).toHaveProperty('error');
    const key = action({ kind: 'key', combo: 'ctrl+alt+t' });
    expect(editRequest(key, { ...initialDraft(key), text: ' ctrl+t ' }, screen)).toMatchObject({ computer: { action: 'key', text: 'ctrl+t' } });
    const hold = action({ kind: 'hold_key', combo: 'shift', duration_ms: 1500 });
    expect(editRequest(hold, initialDraft(hold), screen)).toMatchObject({ computer: { action: 'hold_key', text: 'shift', duration: 1.5 } });
    const exec = action({ kind: 'exec', argv: ['rm', '-rf', 'my dir'], stdin: '', timeout_ms: 1000 });
    expect(initialDraft(exec).command).toBe("rm -rf 'my dir'");
    expect(editRequest(exec, { ...initialDraft(exec), command: 'rm -r "my dir"' }, screen)).toEqual({
      decision: 'edit', computer: null, argv: ['rm', '-r', 'my dir'],
    });
    expect(editRequest(exec, { ...initialDraft(exec), command: '  ' }, screen)).toHaveProperty('error');
  });

  it('says which actions cannot be edited', () => {
    expect(editFields(action({ kind: 'screenshot' }))).toEqual([]);
    expect(editFields(action({ kind: 'click', at: null, button: 'back', count: 1, hold: null }))).toEqual([]);
    expect(editFields(action({ kind: 'scroll', at: { x: 1, y: 1 }, dx: 1, dy: 1, hold: null }))).toEqual([]);
    const r = editRequest(action({ kind: 'wait', duration_ms: 1 }), initialDraft(action({ kind: 'wait', duration_ms: 1 })), screen);
    expect(r).toHaveProperty('error');
  });
});

describe('command lines', () => {
  it('splits with simple quoting', () => {
    expect(parseCommandLine('ls -la /tmp')).toEqual({ argv: ['ls', '-la', '/tmp'] });
    expect(parseCommandLine(`echo 'a b' "c \\"d\\"" e\\ f ''`)).toEqual({ argv: ['echo', 'a b', 'c "d"', 'e f', ''] });
    expect(parseCommandLine('  sh   -c  "x"  ')).toEqual({ argv: ['sh', '-c', 'x'] });
    expect(parseCommandLine(`echo 'oops`)).toHaveProperty('error');
    expect(parseCommandLine('')).toHaveProperty('error');
  });
});
