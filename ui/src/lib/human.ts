// Requests for a human, in words: the kind of help, how long the agent has waited and how long it
// still waits. Pure: the caller passes the clock.

import type { HelpKind } from './api/types';
import { countdown } from './countdown';

/** The kind of help, for people. */
export function helpKindText(kind: HelpKind): string {
  switch (kind) {
    case 'login':
      return 'Log in';
    case 'captcha':
      return 'Solve a CAPTCHA';
    case 'confirm':
      return 'Confirm something';
    case 'other':
      return 'Help';
  }
}

/** "45 s", "3 min 05 s", "1 h 02 min". */
export function spanText(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export interface HumanWait {
  /** "waiting 2 min 10 s". */
  waited: string;
  /** "gives up in 4 min 50 s", or that it has given up. */
  left: string;
  warn: boolean;
  expired: boolean;
}

/** How long an agent has waited for a human, and until when it waits (the approval countdown's rules). */
export function humanWait(askedMs: number, deadlineMs: number, nowMs: number): HumanWait {
  const cd = countdown(deadlineMs, nowMs);
  const waited = `waiting ${spanText(nowMs - askedMs)}`;
  if (cd.expired) return { waited, left: 'Deadline passed — the agent stops waiting', warn: true, expired: true };
  if (!Number.isFinite(deadlineMs)) return { waited, left: 'No deadline', warn: false, expired: false };
  return { waited, left: `Gives up in ${spanText(cd.seconds * 1000)}`, warn: cd.warn, expired: false };
}
