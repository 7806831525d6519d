// Network egress for people: destinations, sizes and durations, the scopes an operator answers an
// ask with, and one-line summaries of what the egress gateway records. Pure.

import type {
  Destination,
  EgressAsk,
  EgressAskState,
  EgressRecord,
  EgressResolution,
  EgressScope,
} from './api/types';
import { num } from './num';

/** Longest grant an operator may give, in minutes (the server's `MAX_GRANT_MINUTES`). */
export const MAX_GRANT_MINUTES = 1440;

/** The minutes "Allow for N min" starts with. */
export const DEFAULT_GRANT_MINUTES = 15;

/** "web.test:80"; an IPv6 literal in brackets ("[2001:db8::1]:443"). */
export function destinationText(d: Destination): string {
  return d.host.includes(':') ? `[${d.host}]:${num(d.port)}` : `${d.host}:${num(d.port)}`;
}

/** Several destinations, comma-separated. */
export function destinationsText(ds: readonly Destination[]): string {
  return ds.map(destinationText).join(', ');
}

/** "120 B", "2.1 KB", "15 KB", "1.5 MB" (binary multiples). */
export function bytesText(v: number | bigint): string {
  const n = num(v);
  if (!Number.isFinite(n) || n < 0) return '—';
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let x = n / 1024;
  let u = 0;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  const shown = x < 10 ? x.toFixed(1).replace(/\.0$/, '') : String(Math.round(x));
  return `${shown} ${units[u]}`;
}

/** "35 ms", "2.4 s", "3 min 5 s". */
export function durationText(v: number | bigint): string {
  const ms = num(v);
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')} s`;
  const s = Math.round(ms / 1000);
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}

/** How the connections reached the gateway, in words. */
export function protocolText(p: EgressAsk['protocol']): string {
  switch (p) {
    case 'http':
      return 'HTTP (proxied request)';
    case 'connect':
      return 'HTTP CONNECT tunnel';
    case 'socks5':
      return 'SOCKS5';
    case null:
      return 'asked ahead (no connection yet)';
  }
}

// ------------------------------------------------------------------------------------------
// Answers
// ------------------------------------------------------------------------------------------

export const allowOnce = (budget: number | null = null): EgressResolution => ({
  decision: 'allow',
  scope: { kind: 'once' },
  upload_budget: budget,
});
export const allowForSandbox = (budget: number | null = null): EgressResolution => ({
  decision: 'allow',
  scope: { kind: 'sandbox' },
  upload_budget: budget,
});
export const allowInPolicy = (): EgressResolution => ({ decision: 'allow', scope: { kind: 'policy' }, upload_budget: null });

/** The upload-budget field (KiB; empty for none) in bytes, or why it is not a budget. */
export function uploadBudget(text: string): number | null | { error: string } {
  const t = text.trim();
  if (t === '') return null;
  const k = Number(t);
  return Number.isInteger(k) && k >= 1 && k <= 1024 * 1024 * 1024
    ? k * 1024
    : { error: 'The upload budget must be a whole number of KiB (1 or more), or empty for none.' };
}

/** What a paused connection has sent, when an ask is about an upload over its budget. */
export function overBudgetText(ask: EgressAsk): string | null {
  const o = ask.over_budget;
  return o === null
    ? null
    : `Paused after sending ${bytesText(num(o.sent))} of its ${bytesText(num(o.budget))} upload budget: allowing lets it go on (with the budget given below, if any).`;
}

/** The minutes field's text as a grant length, or null when it is not 1 to MAX_GRANT_MINUTES. */
export function grantMinutes(text: string): number | null {
  const t = text.trim();
  const m = Number(t);
  return t !== '' && Number.isInteger(m) && m >= 1 && m <= MAX_GRANT_MINUTES ? m : null;
}

/** "Allow for N min" from the minutes field's text, or why the text is not a valid length. */
export function allowForMinutes(text: string, budget: number | null = null): EgressResolution | { error: string } {
  const m = grantMinutes(text);
  if (m === null) return { error: `Minutes must be a whole number from 1 to ${MAX_GRANT_MINUTES}.` };
  return { decision: 'allow', scope: { kind: 'minutes', minutes: m }, upload_budget: budget };
}

/** Deny, with the reason when one was typed. */
export function denyEgress(reason: string): EgressResolution {
  const r = reason.trim();
  return { decision: 'deny', reason: r === '' ? null : r };
}

/** Why "Allow once" cannot be used on an ask, or null when it can. */
export function onceUnavailable(ask: EgressAsk): string | null {
  return ask.protocol === null
    ? 'The agent asked ahead: no connection waits to be let through once. Allow it for a time, for this sandbox, or in the policy.'
    : null;
}

/** Why the longer scopes cannot be used on an ask, or null when they can. */
export function grantUnavailable(ask: EgressAsk): string | null {
  return ask.grantable ? null : 'The policy asks about each of these connections on its own: allow it once, or deny it.';
}

/** "once", "for 15 min", "for the sandbox's life", "in the policy". */
export function scopeText(s: EgressScope): string {
  switch (s.kind) {
    case 'once':
      return 'once';
    case 'minutes':
      return `for ${num(s.minutes)} min`;
    case 'sandbox':
      return "for the sandbox's life";
    case 'policy':
      return 'in the policy';
  }
}

/** "allowed once by ana", "denied by ana: not needed", "expired (counts as deny)", "pending". */
export function askStateText(s: EgressAskState): string {
  switch (s.state) {
    case 'pending':
      return 'pending';
    case 'allowed':
      return s.scope.kind === 'policy' ? `added to the policy by ${s.by}` : `allowed ${scopeText(s.scope)} by ${s.by}`;
    case 'denied':
      return `denied by ${s.by}${s.reason ? `: ${s.reason}` : ''}`;
    case 'expired':
      return 'expired (counts as deny)';
  }
}

// ------------------------------------------------------------------------------------------
// Ledger records
// ------------------------------------------------------------------------------------------

const RECORD_EVENTS: ReadonlySet<string> = new Set<EgressRecord['event']>([
  'decided',
  'closed',
  'dns_refused',
  'requested',
  'ask_resolved',
]);

/** Whether a ledger entry's `what` is an egress record (by its `event` tag). */
export function isEgressRecord(v: unknown): v is EgressRecord {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    typeof (v as { event?: unknown }).event === 'string' &&
    RECORD_EVENTS.has((v as { event: string }).event)
  );
}

function rulesText(rules: readonly string[]): string {
  return rules.length > 0 ? rules.join(', ') : 'the policy default';
}

function decidedText(r: Extract<EgressRecord, { event: 'decided' }>): string {
  const shadow = r.shadow_denied ? ' (shadow mode: the policy would deny it)' : '';
  return decidedOutcomeText(r) + shadow;
}

function decidedOutcomeText(r: Extract<EgressRecord, { event: 'decided' }>): string {
  const d = destinationText(r.destination);
  const why = r.reason ? ` — ${r.reason}` : '';
  switch (r.outcome) {
    case 'allowed':
      return `${d} allowed by ${rulesText(r.rules)}`;
    case 'granted':
      return `${d} allowed by a grant${r.approver ? ` from ${r.approver}` : ''}`;
    case 'approved':
      return `${d} approved by ${r.approver ?? 'an operator'}`;
    case 'denied':
      return `${d} denied by ${rulesText(r.rules)}${why}`;
    case 'refused':
      return `${d} refused${r.approver ? ` by ${r.approver}` : ''}${why}`;
    case 'failed':
      return `${d} failed${why}`;
  }
}

/** One line saying what an egress record records. */
export function egressSummary(r: EgressRecord): string {
  switch (r.event) {
    case 'decided':
      return decidedText(r);
    case 'closed':
      return (
        `closed ${destinationText(r.destination)} ↑${bytesText(r.bytes_up)} ↓${bytesText(r.bytes_down)} ` +
        `${durationText(r.duration_ms)}${r.error ? ` — ${r.error}` : ''}`
      );
    case 'dns_refused': {
      const groups = r.groups.map((g) => `${g.group} ×${num(g.count)}`).join(', ');
      const unlisted = num(r.unlisted);
      if (unlisted <= 0) return groups ? `DNS refused: ${groups}` : 'DNS refused';
      const more = `${unlisted} unlisted lookup${unlisted === 1 ? '' : 's'}`;
      return groups ? `DNS refused: ${groups} (+${more})` : `DNS refused: ${more}`;
    }
    case 'requested':
      return `${r.agent || 'the agent'} asks ahead for ${destinationsText(r.destinations)}${r.reason ? ` — ${r.reason}` : ''}`;
    case 'ask_resolved':
      return `network ask ${num(r.ask.id)} (${destinationsText(r.ask.destinations)}) ${askStateText(r.ask.state)}`;
  }
}

/** The decision or outcome an egress record carries, for the ledger's badge and filter. */
export function egressDecision(r: EgressRecord): string | null {
  switch (r.event) {
    case 'decided':
      return r.outcome;
    case 'closed':
      return r.error ? 'failed' : null;
    case 'dns_refused':
      return 'refused';
    case 'requested':
      return 'ask';
    case 'ask_resolved':
      return r.ask.state.state;
  }
}
