// Times and sizes for people. Pure.

const p2 = (v: number): string => String(v).padStart(2, '0');

/** "14:03:07" (local time) for Unix ms. */
export function clock(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
}

/** "2025-01-31 14:03:07" (local time) for Unix ms. */
export function dateTime(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${clock(ms)}`;
}

/** "12 s ago", "3 min ago", "2 h ago" relative to now. */
export function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  return `${Math.floor(m / 60)} h ago`;
}

/** A short hash for display: the first 12 hex characters. */
export function shortHash(h: string | null | undefined): string {
  return h ? h.slice(0, 12) : '—';
}

/** A random id for create jobs (1–64 characters, as the server wants). */
export function newJobId(): string {
  const rnd =
    typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function'
      ? crypto.randomUUID().slice(0, 8)
      : Math.random().toString(36).slice(2, 10);
  return `create-${Date.now().toString(36)}-${rnd}`;
}
