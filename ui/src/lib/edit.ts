// Approval decisions → ResolveRequest bodies. An edit keeps the action's kind and changes its
// point, text or command; it is sent in Anthropic's computer-use form (or as argv for exec), which
// the supervisor parses and checks against the screen. Pure.

import type { Action, JsonValue, ResolveRequest } from './api/types';
import { commandLine } from './actions';
import { num } from './num';

/** What the operator changed in edit mode. */
export interface EditDraft {
  /** The point (click, move, scroll) or the drag's end. */
  x: number | null;
  y: number | null;
  /** The drag's start. */
  startX: number | null;
  startY: number | null;
  /** Text to type, or the key combination. */
  text: string;
  /** The exec command line. */
  command: string;
}

export type EditField = 'point' | 'start' | 'text' | 'keys' | 'command';

/** Which fields an action's edit offers; empty when it cannot be edited. */
export function editFields(a: Action): EditField[] {
  switch (a.kind) {
    case 'click':
      return a.button === 'left' || a.button === 'right' || a.button === 'middle' ? ['point'] : [];
    case 'mouse_move':
      return ['point'];
    case 'scroll':
      return num(a.dx) !== 0 && num(a.dy) !== 0 ? [] : ['point'];
    case 'drag':
      return a.button === 'left' && a.path.length >= 2 ? ['start', 'point'] : [];
    case 'type':
      return ['text'];
    case 'key':
    case 'hold_key':
      return ['keys'];
    case 'exec':
      return ['command'];
    case 'mouse_down':
    case 'mouse_up':
    case 'wait':
    case 'screenshot':
    case 'cursor_position':
    case 'zoom':
    case 'read_file':
    case 'write_file':
    case 'list_files':
      return [];
  }
}

/** Why an action cannot be edited (for the disabled Edit button's description). */
export function notEditableReason(a: Action): string {
  switch (a.kind) {
    case 'click':
      return `A ${a.button}-button click has no editable computer-use form; approve or deny it.`;
    case 'scroll':
      return 'A diagonal scroll cannot be edited; approve or deny it.';
    case 'drag':
      return 'Only a left-button drag can be edited; approve or deny it.';
    default:
      return `A ${a.kind.replace(/_/g, ' ')} action has nothing to edit; approve or deny it.`;
  }
}

/** The starting draft: the action as asked. */
export function initialDraft(a: Action): EditDraft {
  const d: EditDraft = { x: null, y: null, startX: null, startY: null, text: '', command: '' };
  switch (a.kind) {
    case 'click':
      if (a.at) {
        d.x = num(a.at.x);
        d.y = num(a.at.y);
      }
      break;
    case 'mouse_move':
      d.x = num(a.to.x);
      d.y = num(a.to.y);
      break;
    case 'scroll':
      if (a.at) {
        d.x = num(a.at.x);
        d.y = num(a.at.y);
      }
      break;
    case 'drag': {
      const first = a.path[0];
      const last = a.path[a.path.length - 1];
      if (first) {
        d.startX = num(first.x);
        d.startY = num(first.y);
      }
      if (last) {
        d.x = num(last.x);
        d.y = num(last.y);
      }
      break;
    }
    case 'type':
      d.text = a.text;
      break;
    case 'key':
    case 'hold_key':
      d.text = a.combo;
      break;
    case 'exec':
      d.command = commandLine(a.argv);
      break;
    default:
      break;
  }
  return d;
}

/**
 * Splits a command line into argv: whitespace separates; '…' keeps everything literally; "…" keeps
 * spaces and honours \" and \\; a backslash outside quotes escapes the next character.
 */
export function parseCommandLine(line: string): { argv: string[] } | { error: string } {
  const argv: string[] = [];
  let cur = '';
  let have = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) cur += line[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      have = true;
    } else if (c === '\\') {
      if (i + 1 < line.length) {
        cur += line[++i];
        have = true;
      }
    } else if (/\s/.test(c)) {
      if (have) argv.push(cur);
      cur = '';
      have = false;
    } else {
      cur += c;
      have = true;
    }
  }
  if (quote) return { error: `The command has an unclosed ${quote === '"' ? 'double' : 'single'} quote.` };
  if (have) argv.push(cur);
  if (argv.length === 0) return { error: 'The command is empty.' };
  return { argv };
}

/** Approve as asked; with `grantMinutes`, also allow similar actions for that long. */
export function approveRequest(grantMinutes?: number | null): ResolveRequest | { error: string } {
  if (grantMinutes === undefined || grantMinutes === null) return { decision: 'approve', grant_minutes: null };
  const m = Math.floor(Number(grantMinutes));
  if (!Number.isFinite(m) || m < 1 || m > 1440) return { error: 'Minutes must be a whole number from 1 to 1440.' };
  return { decision: 'approve', grant_minutes: m };
}

export function denyRequest(reason: string): ResolveRequest {
  const r = reason.trim();
  return { decision: 'deny', reason: r === '' ? null : r };
}

function checkPoint(x: number | null, y: number | null, w: number, h: number, what: string): [number, number] | string {
  if (x === null || y === null || !Number.isInteger(x) || !Number.isInteger(y))
    return `Give the ${what} as whole-number X and Y.`;
  if (x < 0 || y < 0 || x >= w || y >= h) return `The ${what} (${x}, ${y}) is outside the ${w}×${h} screen.`;
  return [x, y];
}

/** The edited action as a ResolveRequest, or why the draft is not valid. */
export function editRequest(
  a: Action,
  d: EditDraft,
  screen: { width: number; height: number },
): ResolveRequest | { error: string } {
  const w = num(screen.width);
  const h = num(screen.height);
  const fields = editFields(a);
  if (fields.length === 0) return { error: notEditableReason(a) };
  const edit = (computer: Record<string, unknown>): ResolveRequest => ({
    decision: 'edit',
    computer: computer as JsonValue,
    argv: null,
  });
  switch (a.kind) {
    case 'click': {
      const p = checkPoint(d.x, d.y, w, h, 'click point');
      if (typeof p === 'string') return { error: p };
      const count = num(a.count);
      const name =
        a.button === 'right'
          ? 'right_click'
          : a.button === 'middle'
            ? 'middle_click'
            : count === 2
              ? 'double_click'
              : count === 3
                ? 'triple_click'
                : 'left_click';
      return edit(a.hold ? { action: name, coordinate: p, text: a.hold } : { action: name, coordinate: p });
    }
    case 'mouse_move': {
      const p = checkPoint(d.x, d.y, w, h, 'point');
      return typeof p === 'string' ? { error: p } : edit({ action: 'mouse_move', coordinate: p });
    }
    case 'scroll': {
      const p = checkPoint(d.x, d.y, w, h, 'scroll point');
      if (typeof p === 'string') return { error: p };
      const dx = num(a.dx);
      const dy = num(a.dy);
      const [direction, amount] = dy !== 0 ? [dy > 0 ? 'down' : 'up', Math.abs(dy)] : [dx > 0 ? 'right' : 'left', Math.abs(dx)];
      const c: Record<string, unknown> = { action: 'scroll', coordinate: p, scroll_direction: direction, scroll_amount: amount };
      if (a.hold) c.text = a.hold;
      return edit(c);
    }
    case 'drag': {
      const s = checkPoint(d.startX, d.startY, w, h, 'drag start');
      if (typeof s === 'string') return { error: s };
      const e = checkPoint(d.x, d.y, w, h, 'drag end');
      if (typeof e === 'string') return { error: e };
      return edit({ action: 'left_click_drag', start_coordinate: s, coordinate: e });
    }
    case 'type':
      if (d.text === '') return { error: 'The text to type is empty.' };
      return edit({ action: 'type', text: d.text });
    case 'key': {
      const combo = d.text.trim();
      if (combo === '') return { error: 'The key combination is empty.' };
      return edit({ action: 'key', text: combo });
    }
    case 'hold_key': {
      const combo = d.text.trim();
      if (combo === '') return { error: 'The key combination is empty.' };
      return edit({ action: 'hold_key', text: combo, duration: num(a.duration_ms) / 1000 });
    }
    case 'exec': {
      const r = parseCommandLine(d.command);
      if ('error' in r) return r;
      return { decision: 'edit', computer: null, argv: r.argv };
    }
    default:
      return { error: notEditableReason(a) };
  }
}
