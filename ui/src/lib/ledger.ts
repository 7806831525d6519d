// Ledger entries for people: decision, actor, one-line summary, stills, filters. Pure. The `what`
// payloads are free-form JSON written by the supervisor's record calls; everything is read
// defensively (an unknown shape falls back to compact JSON). Egress entries hold a typed
// `EgressRecord` and are read through it (`./egress`).

import { describeAction, ellipsize, holderShort } from './actions';
import type { Action, Entry, EntryKind, Holder, VerifyReport } from './api/types';
import { egressDecision, egressSummary, isEgressRecord } from './egress';
import { num } from './num';

export const ENTRY_KINDS: readonly EntryKind[] = [
  'action_proposed',
  'action_decided',
  'action_executed',
  'action_refused',
  'approval_requested',
  'approval_resolved',
  'grant_issued',
  'lease_changed',
  'human_input',
  'lifecycle',
  'egress',
  'policy_changed',
];

export const DECISIONS: readonly string[] = [
  'allow',
  'ask',
  'deny',
  'shadow_denied',
  'allowed',
  'granted',
  'approved',
  'edited',
  'denied',
  'expired',
  'refused',
  'done',
  'failed',
];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** Compact JSON, cut to `max` characters. */
export function brief(v: unknown, max = 160): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return ellipsize(v, max);
  let s: string;
  try {
    s = JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return ellipsize(s, max);
}

const ACTION_KINDS = new Set([
  'key', 'type', 'mouse_move', 'click', 'mouse_down', 'mouse_up', 'drag', 'scroll', 'hold_key', 'wait',
  'screenshot', 'cursor_position', 'zoom', 'exec',
]);

/** A JSON action (as the ledger stores it) in words; redacted typing shows its length. */
export function describeJsonAction(v: unknown): string {
  if (!isObj(v) || typeof v.kind !== 'string') return brief(v, 120);
  if (v.kind === 'type' && typeof v.text !== 'string' && typeof v.text_len === 'number') {
    return `type ${v.text_len} bytes (text redacted)`;
  }
  if (!ACTION_KINDS.has(v.kind)) return brief(v, 120);
  try {
    return describeAction(v as unknown as Action);
  } catch {
    return brief(v, 120);
  }
}

function holderWords(v: unknown): string {
  if (!isObj(v) || typeof v.holder !== 'string') return brief(v, 40);
  if (v.holder === 'agent' || v.holder === 'human' || v.holder === 'paused') {
    try {
      return holderShort(v as unknown as Holder);
    } catch {
      return v.holder;
    }
  }
  return v.holder;
}

/** The decision or outcome an entry records, if any. */
export function entryDecision(e: Entry): string | null {
  const w = e.body.what;
  const what: Obj = isObj(w) ? w : {};
  switch (e.body.kind) {
    case 'action_decided':
      if (what.shadow_denied === true) return 'shadow_denied';
      return str(what.decision) ?? (isObj(what.evaluation) ? str(what.evaluation.decision) : null);
    case 'approval_requested':
      return 'ask';
    case 'approval_resolved':
      return isObj(what.state) ? str(what.state.state) : str(what.state);
    case 'action_refused':
      return 'refused';
    case 'action_executed': {
      const r = what.result;
      return isObj(r) && r.error !== undefined && r.error !== null ? 'failed' : 'done';
    }
    case 'human_input':
      return what.ok === false ? 'failed' : 'done';
    case 'egress':
      return isEgressRecord(w) ? egressDecision(w) : null;
    default:
      return null;
  }
}

/** Who caused an entry: 'agent' / 'operator' / 'system'. */
export function actorCategory(e: Entry): 'agent' | 'operator' | 'system' {
  const a = e.body.actor;
  if (a?.operator) return 'operator';
  if (a?.agent) return 'agent';
  return 'system';
}

/** "agent claude", "operator ana", "system". */
export function actorLabel(e: Entry): string {
  const a = e.body.actor;
  if (a?.operator) return `operator ${a.operator}`;
  if (a?.agent) return a.principal ? `agent ${a.agent} (for ${a.principal})` : `agent ${a.agent}`;
  return 'system';
}

/** Filter values for actors seen: 'agent', 'operator', 'system', then 'agent:NAME' / 'operator:NAME'. */
export function actorOptions(entries: readonly Entry[]): string[] {
  const names = new Set<string>();
  for (const e of entries) {
    const a = e.body.actor;
    if (a?.operator) names.add(`operator:${a.operator}`);
    else if (a?.agent) names.add(`agent:${a.agent}`);
  }
  return ['agent', 'operator', 'system', ...[...names].sort()];
}

/** Whether an entry's actor matches a filter value from `actorOptions`. */
export function actorMatches(e: Entry, filter: string): boolean {
  if (filter === '' || filter === 'all') return true;
  const cat = actorCategory(e);
  if (filter === 'agent' || filter === 'operator' || filter === 'system') return cat === filter;
  const i = filter.indexOf(':');
  if (i < 0) return false;
  const kind = filter.slice(0, i);
  const name = filter.slice(i + 1);
  const a = e.body.actor;
  return kind === 'operator' ? a?.operator === name : kind === 'agent' ? !a?.operator && a?.agent === name : false;
}

export interface LedgerFilter {
  kind: string;
  decision: string;
  actor: string;
}

export const NO_FILTER: LedgerFilter = { kind: '', decision: '', actor: '' };

export function filterEntries(entries: readonly Entry[], f: LedgerFilter): Entry[] {
  return entries.filter(
    (e) =>
      (f.kind === '' || e.body.kind === f.kind) &&
      (f.decision === '' || entryDecision(e) === f.decision) &&
      actorMatches(e, f.actor),
  );
}

/** One line saying what an entry records. */
export function entrySummary(e: Entry): string {
  const w = e.body.what;
  const what: Obj = isObj(w) ? w : {};
  switch (e.body.kind) {
    case 'action_proposed':
      return describeJsonAction(what.action ?? w);
    case 'action_decided': {
      const ev = isObj(what.evaluation) ? what.evaluation : {};
      const reason = str(ev.reason);
      const rules = Array.isArray(ev.rules) ? ev.rules.filter((r): r is string => typeof r === 'string') : [];
      const d = entryDecision(e) ?? '?';
      return `${describeJsonAction(what.action)} → ${d}${rules.length ? ` [${rules.join(', ')}]` : ''}${reason ? ` — ${reason}` : ''}`;
    }
    case 'action_executed': {
      const r = what.result;
      const err = isObj(r) ? r.error : undefined;
      return `${describeJsonAction(what.action)}${err !== undefined && err !== null ? ` — failed: ${brief(err, 120)}` : ''}`;
    }
    case 'action_refused': {
      const reason = str(what.reason) ?? brief(what.reason);
      const act = what.action !== undefined ? describeJsonAction(what.action) : 'action';
      return `${act} refused${reason ? `: ${reason}` : ''}`;
    }
    case 'approval_requested': {
      const reasons = Array.isArray(what.reasons) ? what.reasons.filter((r): r is string => typeof r === 'string') : [];
      return `approval ${brief(what.approval)}: ${describeJsonAction(what.action)}${reasons.length ? ` [${reasons.join(', ')}]` : ''}`;
    }
    case 'approval_resolved': {
      const st = isObj(what.state) ? what.state : {};
      const state = str(st.state) ?? brief(what.state);
      const by = str(st.by);
      const reason = str(st.reason);
      const edited = st.action !== undefined ? `, ran instead: ${describeJsonAction(st.action)}` : '';
      const counts = str(what.counts_as);
      return `approval ${brief(what.approval)} ${state}${by ? ` by ${by}` : ''}${reason ? `: ${reason}` : ''}${edited}${counts ? ` (counts as ${counts})` : ''}`;
    }
    case 'grant_issued': {
      const g = isObj(what.grant) ? what.grant : {};
      const kind = str(g.kind) ?? 'action';
      const minutes = typeof what.minutes === 'number' ? `${what.minutes} min` : 'a while';
      return `${kind} allowed for ${minutes}${what.approval !== undefined ? ` (approval ${brief(what.approval)})` : ''}`;
    }
    case 'lease_changed': {
      const cmd = isObj(what.command) ? str(what.command.command) : null;
      const note = isObj(what.command) ? str(what.command.note) : null;
      return `control ${holderWords(what.from)} → ${holderWords(what.to)}${cmd ? ` (${cmd.replace(/_/g, ' ')})` : ''}${note ? ` — note: ${ellipsize(note, 80)}` : ''}`;
    }
    case 'human_input': {
      const err = what.error;
      return `${describeJsonAction(what.action)}${err !== undefined && err !== null ? ` — failed: ${brief(err, 120)}` : ''}`;
    }
    case 'lifecycle': {
      const ev = str(what.event);
      if (!ev) return brief(w);
      const rest = Object.entries(what)
        .filter(([k, v]) => k !== 'event' && v !== null && v !== undefined)
        .map(([k, v]) => `${k}=${brief(v, 40)}`)
        .join(' ');
      return `${ev.replace(/_/g, ' ')}${rest ? ` — ${rest}` : ''}`;
    }
    case 'policy_changed': {
      const mode = str(what.mode);
      return mode ? `mode → ${mode}` : brief(w);
    }
    case 'egress':
      return isEgressRecord(w) ? egressSummary(w) : brief(w);
    default:
      return brief(w);
  }
}

/** The still hashes an entry references (before, after), without duplicates. */
export function entryStills(e: Entry): { label: string; hash: string }[] {
  const out: { label: string; hash: string }[] = [];
  const seen = new Set<string>();
  const add = (label: string, h: unknown): void => {
    if (typeof h === 'string' && /^[0-9a-f]{64}$/.test(h) && !seen.has(h)) {
      seen.add(h);
      out.push({ label, hash: h });
    }
  };
  add('before', e.body.frame_before);
  add('after', e.body.frame_after);
  return out;
}

/** The Verify button's result line. */
export function verifyText(r: VerifyReport): string {
  if (r.first_broken) return `Chain broken at entry ${num(r.first_broken.seq)}: ${r.first_broken.reason}`;
  return `Chain intact — ${num(r.entries)} entries, ${num(r.blobs_checked)} blobs checked`;
}

/** Adds a page to the loaded entries: in seq order, without duplicates. */
export function mergePage(have: readonly Entry[], page: readonly Entry[]): Entry[] {
  const bySeq = new Map<number, Entry>();
  for (const e of have) bySeq.set(num(e.seq), e);
  for (const e of page) bySeq.set(num(e.seq), e);
  return [...bySeq.values()].sort((a, b) => num(a.seq) - num(b.seq));
}
