// What an agent action is, in words and in screen geometry (for the approval card's overlay). Pure.

import { bytesText } from './egress';
import type { Action, Holder } from './api/types';
import { num } from './num';

type Pt = { x: number; y: number };

const pt = (p: { x: number | bigint; y: number | bigint }): Pt => ({ x: num(p.x), y: num(p.y) });

/** Cuts text to `max` characters with an ellipsis. */
export function ellipsize(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, Math.max(1, max - 1)).join('')}…`;
}

/** One line for a program and its arguments, quoting what needs it. */
export function commandLine(argv: readonly string[]): string {
  return argv
    .map((a) => (a === '' ? "''" : /[\s'"\\$`|&;<>(){}*?!#~]/.test(a) ? `'${a.replace(/'/g, `'\\''`)}'` : a))
    .join(' ');
}

const fmtPt = (p: Pt): string => `(${p.x}, ${p.y})`;

function clickName(button: string, count: number): string {
  const times = count === 2 ? 'double ' : count === 3 ? 'triple ' : '';
  return button === 'left' ? `${times}click` : `${times}${button} click`;
}

/** A short summary: "click (412, 300)", "type “hello”", "exec rm -rf build". */
export function describeAction(a: Action, maxText = 60): string {
  switch (a.kind) {
    case 'key':
      return `key ${a.combo}`;
    case 'type':
      return `type “${ellipsize(a.text.replace(/\n/g, '⏎'), maxText)}”`;
    case 'mouse_move':
      return `move to ${fmtPt(pt(a.to))}`;
    case 'click': {
      const base = clickName(a.button, num(a.count));
      const held = a.hold ? ` holding ${a.hold}` : '';
      return a.at ? `${base} ${fmtPt(pt(a.at))}${held}` : `${base} at the pointer${held}`;
    }
    case 'mouse_down':
      return `press ${a.button} button`;
    case 'mouse_up':
      return `release ${a.button} button`;
    case 'drag': {
      const path = a.path.map(pt);
      const first = path[0];
      const last = path[path.length - 1];
      return first && last ? `drag ${fmtPt(first)} → ${fmtPt(last)}` : 'drag';
    }
    case 'scroll': {
      const dx = num(a.dx);
      const dy = num(a.dy);
      const parts: string[] = [];
      if (dy !== 0) parts.push(`${dy > 0 ? 'down' : 'up'} ${Math.abs(dy)}`);
      if (dx !== 0) parts.push(`${dx > 0 ? 'right' : 'left'} ${Math.abs(dx)}`);
      const where = a.at ? ` at ${fmtPt(pt(a.at))}` : '';
      return `scroll ${parts.join(', ') || '0'}${where}`;
    }
    case 'hold_key':
      return `hold ${a.combo} for ${(num(a.duration_ms) / 1000).toFixed(1)} s`;
    case 'wait':
      return `wait ${(num(a.duration_ms) / 1000).toFixed(1)} s`;
    case 'screenshot':
      return 'screenshot';
    case 'cursor_position':
      return 'cursor position';
    case 'zoom': {
      const f = pt(a.region.from);
      const t = pt(a.region.to);
      return `zoom ${fmtPt(f)}–${fmtPt(t)}`;
    }
    case 'exec':
      return `exec ${ellipsize(commandLine(a.argv), maxText)}`;
    case 'read_file':
      return `read ${ellipsize(a.path, maxText)}${num(a.size) > 0 ? ` (${bytesText(a.size)})` : ''}`;
    case 'write_file':
      return `write ${ellipsize(a.path, maxText)} (${bytesText(a.size)})`;
    case 'list_files':
      return `list ${ellipsize(a.path, maxText)}`;
  }
}

/** What the approval card draws over the frame the agent saw. */
export type Target =
  | { kind: 'point'; at: Pt; label: string }
  | { kind: 'path'; from: Pt; to: Pt; points: Pt[] }
  | { kind: 'scroll'; at: Pt; dx: number; dy: number }
  | { kind: 'region'; from: Pt; to: Pt }
  | { kind: 'text'; text: string }
  | { kind: 'keys'; combo: string }
  | { kind: 'command'; line: string }
  | { kind: 'none' };

export function actionTarget(a: Action): Target {
  switch (a.kind) {
    case 'click':
      return a.at ? { kind: 'point', at: pt(a.at), label: clickName(a.button, num(a.count)) } : { kind: 'none' };
    case 'mouse_move':
      return { kind: 'point', at: pt(a.to), label: 'move' };
    case 'drag': {
      const points = a.path.map(pt);
      const from = points[0];
      const to = points[points.length - 1];
      return from && to ? { kind: 'path', from, to, points } : { kind: 'none' };
    }
    case 'scroll':
      return a.at ? { kind: 'scroll', at: pt(a.at), dx: num(a.dx), dy: num(a.dy) } : { kind: 'none' };
    case 'zoom':
      return { kind: 'region', from: pt(a.region.from), to: pt(a.region.to) };
    case 'type':
      return { kind: 'text', text: a.text };
    case 'key':
    case 'hold_key':
      return { kind: 'keys', combo: a.combo };
    case 'exec':
      return { kind: 'command', line: commandLine(a.argv) };
    case 'read_file':
    case 'write_file':
    case 'list_files':
      return { kind: 'text', text: describeAction(a, 200) };
    case 'mouse_down':
    case 'mouse_up':
    case 'wait':
    case 'screenshot':
    case 'cursor_position':
      return { kind: 'none' };
  }
}

/** Who holds control, for people. */
export function holderText(h: Holder | null | undefined, me: string | null): string {
  if (!h) return 'Unknown';
  switch (h.holder) {
    case 'agent':
      return 'Agent is driving';
    case 'human':
      return me !== null && h.operator === me ? 'You are in control' : `${h.operator} is in control`;
    case 'paused':
      return `Paused by ${h.by}`;
  }
}

/** A short holder label for the grid: "agent", "operator NAME", "paused". */
export function holderShort(h: Holder | null | undefined): string {
  if (!h) return '—';
  switch (h.holder) {
    case 'agent':
      return 'agent';
    case 'human':
      return `operator ${h.operator}`;
    case 'paused':
      return 'paused';
  }
}
