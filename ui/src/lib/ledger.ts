// Ledger entries for people: decision, actor, one-line summary, stills, filters. Pure. Each entry's
// body is the typed record of its kind (`LedgerRecord`, generated from `records/src/lib.rs`); a body
// that does not fit its kind falls back to compact JSON.

import { describeAction, ellipsize, holderShort } from './actions';
import type {
  AccessRecord,
  Action,
  Entry,
  EntryKind,
  FileTransfer,
  Forbidden,
  Holder,
  HumanAction,
  HumanInput,
  HumanRequestRecord,
  InputSummary,
  LedgerRecord,
  Lifecycle,
  Permission,
  PolicyChanged,
  VerifyReport,
} from './api/types';
import { egressDecision, egressSummary, isEgressRecord } from './egress';
import { sizeText } from './files';
import { dateTime, shortHash } from './format';
import { helpKindText } from './human';
import { num } from './num';

export const ENTRY_KINDS: readonly EntryKind[] = [
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
  'access',
  'human_request',
  'file_transfer',
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

/**
 * An entry's body as the record its kind names (`records/src/lib.rs`, generated `LedgerRecord`).
 * The supervisor writes every body from these types; older bodies of the same kinds have the same
 * shapes (a mode switch recorded before it had an `event` is read as `mode_set`).
 */
export function recordOf(e: Entry): LedgerRecord {
  const what = e.body.what;
  if (e.body.kind === 'policy_changed' && isObj(what) && what.event === undefined && typeof what.mode === 'string') {
    return { kind: 'policy_changed', what: { event: 'mode_set', ...(what as object) } as PolicyChanged };
  }
  return { kind: e.body.kind, what } as LedgerRecord;
}

/** The decision or outcome an entry records, if any. */
export function entryDecision(e: Entry): string | null {
  const r = recordOf(e);
  if (!isObj(r.what)) return null;
  switch (r.kind) {
    case 'action_decided':
      return r.what.shadow_denied ? 'shadow_denied' : r.what.decision;
    case 'approval_requested':
      return 'ask';
    case 'approval_resolved':
      return r.what.state.state;
    case 'action_refused':
      return 'refused';
    case 'action_executed':
      return 'error' in r.what.result ? 'failed' : 'done';
    case 'human_input':
      return r.what.ok === false ? 'failed' : 'done';
    case 'egress':
      return isEgressRecord(r.what) ? egressDecision(r.what) : null;
    case 'access':
      return r.what.event === 'refused' || r.what.event === 'link_refused' ? 'refused' : null;
    case 'file_transfer':
      return r.what.error ? 'failed' : 'done';
    case 'grant_issued':
    case 'lease_changed':
    case 'lifecycle':
    case 'policy_changed':
    case 'human_request':
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

/** An operator's input through the live view, in words: "3 keys, 1 click, 12 pointer moves". */
export function inputWords(s: InputSummary): string {
  const parts: string[] = [];
  const add = (n: number, one: string, many: string): void => {
    if (n > 0) parts.push(`${n} ${n === 1 ? one : many}`);
  };
  add(num(s.key_presses), 'key', 'keys');
  add(num(s.button_presses), 'click', 'clicks');
  add(num(s.wheel_events), 'wheel step', 'wheel steps');
  add(num(s.pointer_moves), 'pointer move', 'pointer moves');
  add(num(s.refused), 'input refused', 'inputs refused');
  return parts.length ? parts.join(', ') : 'no input';
}

function humanAction(a: HumanAction): string {
  if ('text_sha256' in a) return `type ${num(a.text_len)} bytes (text redacted)`;
  return describeJsonAction(a);
}

function humanInputSummary(h: HumanInput): string {
  const what = h.action
    ? humanAction(h.action)
    : h.summary
      ? `${inputWords(h.summary)} in the live view${h.transport ? ` (${h.transport})` : ''}`
      : 'input';
  const err = h.error ? ` — failed: ${brief(h.error, 120)}` : '';
  const note = h.handback_note ? ` — hand-back note: ${ellipsize(h.handback_note, 80)}` : '';
  return `${what}${err}${note}`;
}

function lifecycleSummary(l: Lifecycle): string {
  switch (l.event) {
    case 'supervisor_started':
      return `supervisor started — mode ${l.mode}, policy ${l.policy_version.slice(0, 12)}`;
    case 'supervisor_stopped':
      return 'supervisor stopped';
    case 'sandbox_created':
      return `sandbox created — ${l.backend} ${l.profile}, ${l.placement}${l.boot_ms !== null ? `, booted in ${num(l.boot_ms)} ms` : ''}`;
    case 'sandbox_destroyed':
      return l.outside ? 'sandbox destroyed outside this supervisor' : 'sandbox destroyed';
    case 'sandbox_adopted':
      return 'sandbox adopted (started outside this supervisor)';
    case 'sandbox_lost':
      return `sandbox lost — ${l.reason}`;
  }
}

/** What a permission lets one do (the server's `Permission::describe`). */
function permissionWords(p: Permission): string {
  switch (p) {
    case 'see':
      return 'see sandboxes';
    case 'decide':
      return 'decide approvals or network asks';
    case 'drive':
      return 'take control or send input';
    case 'manage':
      return 'create or destroy sandboxes';
    case 'files':
      return 'move files into or out of a sandbox';
    case 'links':
      return 'create or revoke view links';
    case 'share':
      return 'share host folders into a sandbox';
    case 'policy':
      return 'change the policy';
    case 'operators':
      return 'manage operators';
  }
}

/** Why a request was refused, as the server words it. */
export function forbiddenText(f: Forbidden): string {
  switch (f.why) {
    case 'role':
      return `${f.who} is ${f.role === 'watcher' ? 'a' : 'an'} ${f.role} and may not ${permissionWords(f.permission)}`;
    case 'scope':
      return `${f.who} is a view link for sandbox ${f.allowed} and cannot reach ${f.asked ?? 'anything beyond it'}`;
  }
}

function accessSummary(a: AccessRecord): string {
  switch (a.event) {
    case 'link_created':
      return `view link ${a.link.id} created by ${a.link.created_by} for ${a.link.sandbox}, until ${dateTime(num(a.link.expires_ms))}`;
    case 'link_used':
      return `view link ${a.link} used`;
    case 'link_revoked':
      return `view link ${a.link.id} revoked${a.link.revoked_by ? ` by ${a.link.revoked_by}` : ''}`;
    case 'link_refused':
      return `view link ${a.link} refused: ${a.reason}`;
    case 'refused':
      return `refused ${a.request}: ${forbiddenText(a.forbidden)}`;
  }
}

function humanRequestSummary(h: HumanRequestRecord): string {
  switch (h.event) {
    case 'requested':
      return `agent asked for a human (request ${num(h.request)}, ${helpKindText(h.kind).toLowerCase()}): ${ellipsize(h.reason, 120)}`;
    case 'answered':
      return `human request ${num(h.request)} answered by ${h.operator}${h.note ? ` — note: ${ellipsize(h.note, 80)}` : ''}`;
    case 'timed_out':
      return `human request ${num(h.request)} timed out: nobody helped in time`;
    case 'abandoned':
      return `human request ${num(h.request)} abandoned: ${h.reason}`;
  }
}

function fileTransferSummary(f: FileTransfer): string {
  const what = f.content === 'folder_archive' ? 'folder (tar)' : 'file';
  const way = f.direction === 'in' ? `${what} into the sandbox` : `${what} out of the sandbox`;
  const hash = f.sha256 ? `, sha256 ${shortHash(f.sha256)}` : '';
  const via = f.via ? ` via ${f.via}` : '';
  const err = f.error ? ` — failed: ${brief(f.error, 120)}` : '';
  return `${way}: ${f.path} (${sizeText(f.size)}${hash})${via}${err}`;
}

/** One line saying what an entry records. */
export function entrySummary(e: Entry): string {
  const r = recordOf(e);
  if (!isObj(r.what)) return brief(r.what);
  try {
    switch (r.kind) {
      case 'action_decided': {
        const { reason, rules } = r.what.evaluation;
        const d = entryDecision(e) ?? '?';
        return `${describeJsonAction(r.what.action)} → ${d}${rules.length ? ` [${rules.join(', ')}]` : ''}${reason ? ` — ${reason}` : ''}`;
      }
      case 'action_executed': {
        const res = r.what.result;
        return `${describeJsonAction(r.what.action)}${'error' in res ? ` — failed: ${brief(res.error, 120)}` : ''}`;
      }
      case 'action_refused':
        return `${describeJsonAction(r.what.action)} refused${r.what.reason ? `: ${r.what.reason}` : ''}`;
      case 'approval_requested': {
        const reasons = r.what.reasons;
        return `approval ${num(r.what.approval)}: ${describeJsonAction(r.what.action)}${reasons.length ? ` [${reasons.join(', ')}]` : ''}`;
      }
      case 'approval_resolved': {
        const st = r.what.state;
        const by = 'by' in st ? st.by : null;
        const reason = st.state === 'denied' ? st.reason : null;
        const edited = st.state === 'edited' ? `, ran instead: ${describeJsonAction(st.action)}` : '';
        const counts = r.what.counts_as;
        return `approval ${num(r.what.approval)} ${st.state}${by ? ` by ${by}` : ''}${reason ? `: ${reason}` : ''}${edited}${counts ? ` (counts as ${counts})` : ''}`;
      }
      case 'grant_issued':
        return `${r.what.grant.kind} allowed for ${num(r.what.minutes)} min (approval ${num(r.what.approval)})`;
      case 'lease_changed': {
        const cmd = r.what.command;
        const note = cmd.command === 'hand_back' ? cmd.note : null;
        return `control ${holderWords(r.what.from)} → ${holderWords(r.what.to)} (${cmd.command.replace(/_/g, ' ')})${note ? ` — note: ${ellipsize(note, 80)}` : ''}`;
      }
      case 'human_input':
        return humanInputSummary(r.what);
      case 'lifecycle':
        return lifecycleSummary(r.what);
      case 'policy_changed':
        return r.what.event === 'mode_set' ? `mode → ${r.what.mode}` : `rule added — policy ${r.what.policy_version.slice(0, 12)}`;
      case 'egress':
        return isEgressRecord(r.what) ? egressSummary(r.what) : brief(r.what);
      case 'access':
        return accessSummary(r.what);
      case 'human_request':
        return humanRequestSummary(r.what);
      case 'file_transfer':
        return fileTransferSummary(r.what);
    }
  } catch {
    // A body that does not have its kind's shape (hand-edited, or from a future version).
  }
  return brief(r.what);
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
  // An agent's call for a human carries the screen it asked with, and its answer the one it got.
  if (e.body.kind === 'human_request' && isObj(e.body.what)) add('screen', e.body.what.frame);
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
