// The command-view timeline: steps kept by seq (a step re-sent with the same seq replaces the old
// one), newest first, with the still of each step once it arrives. Pure.

import type { Step } from './wire';

export interface TimelineStep extends Step {
  /** Stable key for rendering. */
  key: string;
  /** Object URL of the step's still, once received. */
  stillUrl: string | null;
}

/** Most steps kept. */
export const MAX_STEPS = 200;

/**
 * Adds or replaces a step. Returns the new list (newest — highest seq — first) and the still URLs
 * that fell out of the list (for the caller to revoke).
 */
export function upsertStep(
  list: readonly TimelineStep[],
  step: Step,
  anonKey: string,
  pendingStill: string | null,
): { list: TimelineStep[]; dropped: string[] } {
  const dropped: string[] = [];
  const key = step.seq !== null ? `s${step.seq}` : anonKey;
  const idx = step.seq !== null ? list.findIndex((s) => s.seq === step.seq) : -1;
  let next: TimelineStep[];
  if (idx >= 0) {
    const old = list[idx] as TimelineStep;
    const stillUrl = pendingStill ?? old.stillUrl;
    if (pendingStill && old.stillUrl && old.stillUrl !== pendingStill) dropped.push(old.stillUrl);
    next = list.slice();
    next[idx] = { ...step, key: old.key, stillUrl };
  } else {
    const row: TimelineStep = { ...step, key, stillUrl: pendingStill };
    next = list.slice();
    // newest (highest seq) first; steps without a seq go on top
    let at = 0;
    if (step.seq !== null) {
      while (at < next.length) {
        const s = next[at] as TimelineStep;
        if (s.seq === null || s.seq > step.seq) at++;
        else break;
      }
    }
    next.splice(at, 0, row);
  }
  while (next.length > MAX_STEPS) {
    const last = next.pop();
    if (last?.stillUrl) dropped.push(last.stillUrl);
  }
  return { list: next, dropped };
}

/** Attaches a still to the step with `seq`; returns null if no such step is listed. */
export function attachStill(
  list: readonly TimelineStep[],
  seq: number,
  url: string,
): { list: TimelineStep[]; dropped: string[] } | null {
  const idx = list.findIndex((s) => s.seq === seq);
  if (idx < 0) return null;
  const old = list[idx] as TimelineStep;
  const next = list.slice();
  next[idx] = { ...old, stillUrl: url };
  return { list: next, dropped: old.stillUrl && old.stillUrl !== url ? [old.stillUrl] : [] };
}

/**
 * Whether a step has a still to show: one has arrived, or the step says one is coming (`still`).
 * Decisions, approvals and the like have none, and get no image box.
 */
export function showsStill(step: TimelineStep): boolean {
  return step.stillUrl !== null || step.still !== undefined;
}

/** Which way a step's decision leans, for colour: allow / ask / deny / other. */
export function decisionTone(d: string | null): 'allow' | 'ask' | 'deny' | 'other' {
  const v = String(d ?? '').toLowerCase();
  if (['allow', 'allowed', 'granted', 'approve', 'approved', 'edited', 'ok', 'done'].includes(v)) return 'allow';
  if (['ask', 'pending', 'waiting', 'shadow_denied'].includes(v)) return 'ask';
  if (['deny', 'denied', 'reject', 'rejected', 'refused', 'expired', 'failed', 'timeout', 'blocked', 'error'].includes(v))
    return 'deny';
  return 'other';
}
