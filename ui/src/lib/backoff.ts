// Reconnect delays shared by the event stream and the viewer socket: 1, 2, 4, 8, 10, 10 … s.

export const BACKOFF_MS: readonly number[] = [1000, 2000, 4000, 8000, 10000];

/** The delay before reconnect attempt `attempt` (0 for the first retry after a drop). */
export function backoffDelay(attempt: number): number {
  const i = Math.max(0, Math.min(BACKOFF_MS.length - 1, Math.floor(Number(attempt) || 0)));
  return BACKOFF_MS[i] ?? 10000;
}
