// The default-deny countdown of an approval. Pure: the caller passes the clock.

/** Seconds left below which the countdown turns to the warning colour. */
export const WARN_BELOW_S = 15;

export interface Countdown {
  /** Whole seconds left (rounded up), 0 once the deadline has passed. */
  seconds: number;
  text: string;
  warn: boolean;
  expired: boolean;
}

export function countdown(deadlineMs: number, nowMs: number): Countdown {
  if (!Number.isFinite(deadlineMs)) return { seconds: 0, text: 'No deadline', warn: false, expired: false };
  const left = deadlineMs - nowMs;
  if (left <= 0) return { seconds: 0, text: 'Deadline passed — counts as deny', warn: true, expired: true };
  const seconds = Math.ceil(left / 1000);
  return { seconds, text: `Denies in ${seconds} s`, warn: seconds < WARN_BELOW_S, expired: false };
}

/** Milliseconds until the displayed second changes (so a timer ticks exactly on the boundary). */
export function msToNextTick(deadlineMs: number, nowMs: number): number {
  const left = deadlineMs - nowMs;
  if (!(left > 0)) return 1000;
  const r = left % 1000;
  return r === 0 ? 1000 : r + 5;
}
