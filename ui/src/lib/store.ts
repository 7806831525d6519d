// The console's state: one pure reducer (`reduce`, with `apply` for supervisor events) and a tiny
// observable store around it. Snapshots REPLACE sandboxes, approvals and leases, so a reconnect
// never duplicates anything. Network asks are not in the snapshot: the shell reads them after
// each one (`egress_fetch` … `egress_pending`), and asks that events bring meanwhile are kept.

import { useEffect, useState } from 'preact/hooks';
import { describeAction } from './actions';
import type { Approval, EgressAsk, EventMessage, Holder, HumanRequest, Me, Mode, SandboxInfo, Snapshot } from './api/types';
import type { StreamStatus } from './backend';
import { num } from './num';

/** The latest thing the agent did in a sandbox. */
export interface StepSummary {
  kind: 'decided' | 'executed' | 'refused';
  /** "click (412, 300)" or the refusal reason. */
  summary: string;
  /** allow / ask / deny / shadow_denied, done / failed, refused. */
  outcome: string;
  at: number;
}

export interface LeaseInfo {
  holder: Holder;
  epoch: number;
}

export interface CreateJob {
  job: string;
  profile: string;
  backend: string;
  startedAt: number;
  steps: { step: string; at: number }[];
  /** Set when the create call failed. */
  error: string | null;
  /** Started elsewhere (not by this console's create call). */
  foreign?: boolean;
}

export interface AppState {
  sandboxes: ReadonlyMap<string, SandboxInfo>;
  /** Lifecycle state from sandbox_state events (`running`, `lost`…), when one was seen. */
  lifecycle: ReadonlyMap<string, { state: string; detail: string | null }>;
  /** Pending approvals keyed `${sandbox}/${id}`. */
  pending: ReadonlyMap<string, Approval>;
  /** Pending network asks keyed `${sandbox}/${id}`. */
  egress: ReadonlyMap<string, EgressAsk>;
  /** Agents waiting for a human, keyed `${sandbox}/${request}`. */
  human: ReadonlyMap<string, HumanRequest>;
  /** Ids of network asks seen decided or expired (a list read earlier must not bring them back). */
  egressSettled: ReadonlySet<number>;
  /** Ids of network asks events brought since the pending list was asked for; null when none is on its way. */
  egressFresh: ReadonlySet<number> | null;
  /** Per sandbox, a number that changes with every network event (the Network panel re-reads then). */
  networkRev: ReadonlyMap<string, number>;
  lastStep: ReadonlyMap<string, StepSummary>;
  lease: ReadonlyMap<string, LeaseInfo>;
  /** The policy's sentence for recent asks, keyed by `askKey(sandbox, action)`. */
  askReasons: ReadonlyMap<string, string>;
  jobs: ReadonlyMap<string, CreateJob>;
  status: StreamStatus;
  /** Whether a snapshot has arrived at least once. */
  loaded: boolean;
  mode: Mode;
  /** The signed-in operator's name. */
  me: string | null;
  /** Who is signed in: name, role and reach (null until the server has said). */
  principal: Me | null;
}

export const initialState: AppState = {
  sandboxes: new Map(),
  lifecycle: new Map(),
  pending: new Map(),
  egress: new Map(),
  human: new Map(),
  egressSettled: new Set(),
  egressFresh: null,
  networkRev: new Map(),
  lastStep: new Map(),
  lease: new Map(),
  askReasons: new Map(),
  jobs: new Map(),
  status: 'connecting',
  loaded: false,
  mode: 'enforce',
  me: null,
  principal: null,
};

export type StoreAction =
  | { type: 'snapshot'; snapshot: Snapshot }
  | { type: 'event'; message: EventMessage }
  | { type: 'sandboxes'; list: SandboxInfo[] }
  /** The pending network asks are being read (after a snapshot). */
  | { type: 'egress_fetch' }
  /** …and here they are (null: the read failed, what is shown stays). */
  | { type: 'egress_pending'; asks: EgressAsk[] | null }
  | { type: 'status'; status: StreamStatus }
  | { type: 'me'; me: Me | null }
  | { type: 'mode'; mode: Mode }
  | { type: 'job_started'; job: string; profile: string; backend: string; at: number }
  | { type: 'job_done'; job: string; sandbox: SandboxInfo }
  | { type: 'job_failed'; job: string; message: string }
  | { type: 'job_dismissed'; job: string }
  | { type: 'sandbox_removed'; id: string };

/** Most ask reasons remembered. */
const MAX_ASK_REASONS = 200;

/** Most settled network ask ids remembered. */
const MAX_SETTLED = 500;

/** Key of an ask: the sandbox and the action as JSON (the approval carries the same action). */
export function askKey(sandbox: string, action: unknown): string {
  let a: string;
  try {
    a = JSON.stringify(action);
  } catch {
    a = String(action);
  }
  return `${sandbox}|${a}`;
}

export const approvalKey = (sandbox: string, id: number | bigint): string => `${sandbox}/${num(id)}`;

/** Key of a network ask. */
export const egressKey = (sandbox: string, id: number | bigint): string => `${sandbox}/${num(id)}`;

/** Key of a request for a human. */
export const humanKey = (sandbox: string, request: number | bigint): string => `${sandbox}/${num(request)}`;

function withSet<K, V>(m: ReadonlyMap<K, V>, k: K, v: V): Map<K, V> {
  const n = new Map(m);
  n.set(k, v);
  return n;
}

function without<K, V>(m: ReadonlyMap<K, V>, k: K): ReadonlyMap<K, V> {
  if (!m.has(k)) return m;
  const n = new Map(m);
  n.delete(k);
  return n;
}

function removeSandbox(s: AppState, id: string): AppState {
  const pending = new Map([...s.pending].filter(([, a]) => a.sandbox !== id));
  const egress = new Map([...s.egress].filter(([, a]) => a.sandbox !== id));
  const human = new Map([...s.human].filter(([, r]) => r.sandbox !== id));
  return {
    ...s,
    sandboxes: without(s.sandboxes, id),
    lifecycle: without(s.lifecycle, id),
    lastStep: without(s.lastStep, id),
    lease: without(s.lease, id),
    networkRev: without(s.networkRev, id),
    pending: pending.size === s.pending.size ? s.pending : pending,
    egress: egress.size === s.egress.size ? s.egress : egress,
    human: human.size === s.human.size ? s.human : human,
  };
}

function bumpNetwork(s: AppState, sandbox: string): ReadonlyMap<string, number> {
  return withSet(s.networkRev, sandbox, (s.networkRev.get(sandbox) ?? 0) + 1);
}

function withId(set: ReadonlySet<number> | null, id: number): ReadonlySet<number> | null {
  if (set === null || set.has(id)) return set;
  const n = new Set(set);
  n.add(id);
  return n;
}

function settle(settled: ReadonlySet<number>, id: number): ReadonlySet<number> {
  if (settled.has(id)) return settled;
  const n = new Set(settled);
  n.add(id);
  while (n.size > MAX_SETTLED) n.delete(n.values().next().value as number);
  return n;
}

/** A network ask that is no longer pending leaves the list, and cannot come back. */
function egressSettled(s: AppState, ask: EgressAsk): AppState {
  const id = num(ask.id);
  return {
    ...s,
    egress: without(s.egress, egressKey(ask.sandbox, id)),
    egressSettled: settle(s.egressSettled, id),
    egressFresh: withId(s.egressFresh, id),
    networkRev: bumpNetwork(s, ask.sandbox),
  };
}

function sandboxesFrom(list: readonly SandboxInfo[]): {
  sandboxes: Map<string, SandboxInfo>;
  lease: Map<string, LeaseInfo>;
} {
  const sandboxes = new Map<string, SandboxInfo>();
  const lease = new Map<string, LeaseInfo>();
  for (const sb of list) {
    if (!sb || typeof sb.id !== 'string') continue;
    sandboxes.set(sb.id, sb);
    if (sb.session?.holder) lease.set(sb.id, { holder: sb.session.holder, epoch: num(sb.session.epoch) });
  }
  return { sandboxes, lease };
}

/** Pending approvals, oldest first. */
export function pendingList(s: AppState, sandbox?: string): Approval[] {
  const out = [...s.pending.values()].filter((a) => sandbox === undefined || a.sandbox === sandbox);
  out.sort((a, b) => num(a.requested_ms) - num(b.requested_ms) || num(a.id) - num(b.id));
  return out;
}

/** Pending network asks, oldest first. */
export function egressList(s: AppState, sandbox?: string): EgressAsk[] {
  const out = [...s.egress.values()].filter((a) => sandbox === undefined || a.sandbox === sandbox);
  out.sort((a, b) => num(a.requested_ms) - num(b.requested_ms) || num(a.id) - num(b.id));
  return out;
}

/** Agents waiting for a human, oldest first. */
export function humanList(s: AppState, sandbox?: string): HumanRequest[] {
  const out = [...s.human.values()].filter((r) => sandbox === undefined || r.sandbox === sandbox);
  out.sort((a, b) => num(a.asked_ms) - num(b.asked_ms) || num(a.request) - num(b.request));
  return out;
}

/** Everything waiting for an operator: approvals, network asks and agents asking for a human. */
export function askCount(s: AppState, sandbox?: string): number {
  return pendingList(s, sandbox).length + egressList(s, sandbox).length + humanList(s, sandbox).length;
}

/** A supervisor event applied to the state. */
export function apply(s: AppState, m: EventMessage): AppState {
  const e = m.event;
  switch (e.type) {
    case 'action_decided': {
      const outcome = e.shadow_denied ? 'shadow_denied' : e.decision;
      let askReasons = s.askReasons;
      if (e.decision === 'ask' && e.reason) {
        const m = new Map(askReasons);
        m.set(askKey(e.sandbox, e.action), e.reason);
        while (m.size > MAX_ASK_REASONS) m.delete(m.keys().next().value as string);
        askReasons = m;
      }
      return {
        ...s,
        askReasons,
        lastStep: withSet(s.lastStep, e.sandbox, {
          kind: 'decided',
          summary: describeAction(e.action),
          outcome,
          at: num(e.at_ms),
        }),
      };
    }
    case 'action_executed':
      return {
        ...s,
        lastStep: withSet(s.lastStep, e.sandbox, {
          kind: 'executed',
          summary: describeAction(e.action) + (e.by !== 'agent' ? ` (by ${e.by.replace(/^operator:/, '')})` : ''),
          outcome: e.ok ? 'done' : 'failed',
          at: num(e.at_ms),
        }),
      };
    case 'action_refused':
      return {
        ...s,
        lastStep: withSet(s.lastStep, e.sandbox, {
          kind: 'refused',
          summary: e.reason,
          outcome: 'refused',
          at: num(e.at_ms),
        }),
      };
    case 'approval_requested': {
      const a = e.approval;
      if (a.state.state !== 'pending') return s;
      return { ...s, pending: withSet(s.pending, approvalKey(a.sandbox, a.id), a) };
    }
    case 'approval_resolved': {
      const a = e.approval;
      return { ...s, pending: without(s.pending, approvalKey(a.sandbox, a.id)) };
    }
    case 'egress_asked': {
      const a = e.ask;
      const id = num(a.id);
      if (a.state.state !== 'pending') return egressSettled(s, a);
      if (s.egressSettled.has(id)) return s; // a late re-send of an ask already decided
      return {
        ...s,
        egress: withSet(s.egress, egressKey(a.sandbox, id), a),
        egressFresh: withId(s.egressFresh, id),
        networkRev: bumpNetwork(s, a.sandbox),
      };
    }
    case 'egress_resolved':
      return egressSettled(s, e.ask);
    case 'egress':
      return { ...s, networkRev: bumpNetwork(s, e.sandbox) };
    case 'grant_issued':
      return s;
    case 'human_requested': {
      const r = e.request;
      return { ...s, human: withSet(s.human, humanKey(r.sandbox, r.request), r) };
    }
    case 'human_request_ended':
      return { ...s, human: without(s.human, humanKey(e.sandbox, e.request)) };
    case 'lease_changed': {
      const epoch = num(e.epoch);
      const cur = s.lease.get(e.sandbox);
      if (cur && cur.epoch > epoch) return s; // an older change arriving late
      return { ...s, lease: withSet(s.lease, e.sandbox, { holder: e.to, epoch }) };
    }
    case 'sandbox_state':
      if (e.state === 'destroyed') return removeSandbox(s, e.sandbox);
      return { ...s, lifecycle: withSet(s.lifecycle, e.sandbox, { state: e.state, detail: e.detail ?? null }) };
    case 'policy_mode':
      return e.mode === 'shadow' || e.mode === 'enforce' ? { ...s, mode: e.mode } : s;
    case 'create_progress': {
      const outcome = e.outcome?.state ?? 'working';
      // A creation this console did not start (the app's startup sandbox, another operator's)
      // shows too, from its first step; it leaves once the sandbox runs (the list has it then).
      const job: CreateJob = s.jobs.get(e.job) ?? {
        job: e.job,
        profile: '',
        backend: '',
        startedAt: num(e.at_ms),
        steps: [],
        error: null,
        foreign: true,
      };
      if (outcome === 'running' && job.foreign) return { ...s, jobs: without(s.jobs, e.job) };
      const steps = [...job.steps, { step: e.step, at: num(e.at_ms) }].slice(-50);
      const error = outcome === 'failed' ? e.step : job.error;
      return { ...s, jobs: withSet(s.jobs, e.job, { ...job, steps, error }) };
    }
    default:
      return s;
  }
}

export function reduce(s: AppState, a: StoreAction): AppState {
  switch (a.type) {
    case 'snapshot': {
      const { sandboxes, lease } = sandboxesFrom(a.snapshot.sandboxes ?? []);
      const pending = new Map<string, Approval>();
      const all = [...(a.snapshot.pending ?? [])];
      // Older servers list pending approvals only inside each sandbox's session.
      if (all.length === 0) for (const sb of sandboxes.values()) all.push(...(sb.session?.pending ?? []));
      for (const ap of all) if (ap.state?.state === 'pending') pending.set(approvalKey(ap.sandbox, ap.id), ap);
      const keep = <V>(m: ReadonlyMap<string, V>): Map<string, V> =>
        new Map([...m].filter(([id]) => sandboxes.has(id)));
      const egress = new Map([...s.egress].filter(([, ask]) => sandboxes.has(ask.sandbox)));
      const human = new Map<string, HumanRequest>();
      for (const r of a.snapshot.human_requests ?? []) if (r && typeof r.sandbox === 'string') human.set(humanKey(r.sandbox, r.request), r);
      return {
        ...s,
        sandboxes,
        lease,
        pending,
        human,
        egress: egress.size === s.egress.size ? s.egress : egress,
        lifecycle: keep(s.lifecycle),
        lastStep: keep(s.lastStep),
        mode: a.snapshot.mode === 'shadow' ? 'shadow' : 'enforce',
        loaded: true,
      };
    }
    case 'event':
      return apply(s, a.message);
    case 'sandboxes': {
      const { sandboxes, lease } = sandboxesFrom(a.list);
      // Keep newer lease epochs learnt from events.
      for (const [id, l] of s.lease) {
        const cur = lease.get(id);
        if (cur && l.epoch > cur.epoch) lease.set(id, l);
      }
      return { ...s, sandboxes, lease };
    }
    case 'egress_fetch':
      return { ...s, egressFresh: new Set() };
    case 'egress_pending': {
      const fresh = s.egressFresh;
      if (a.asks === null) return { ...s, egressFresh: null };
      const egress = new Map<string, EgressAsk>();
      for (const ask of a.asks) {
        if (!ask || ask.state?.state !== 'pending' || s.egressSettled.has(num(ask.id))) continue;
        egress.set(egressKey(ask.sandbox, ask.id), ask);
      }
      // Asks that events brought while the list was on its way are newer than it.
      for (const [k, ask] of s.egress) if (fresh?.has(num(ask.id))) egress.set(k, ask);
      return { ...s, egress, egressFresh: null };
    }
    case 'status':
      return s.status === a.status ? s : { ...s, status: a.status };
    case 'me':
      return { ...s, me: a.me?.operator ?? null, principal: a.me };
    case 'mode':
      return { ...s, mode: a.mode };
    case 'job_started':
      return {
        ...s,
        jobs: withSet(s.jobs, a.job, {
          job: a.job,
          profile: a.profile,
          backend: a.backend,
          startedAt: a.at,
          steps: [],
          error: null,
        }),
      };
    case 'job_done': {
      const sb = a.sandbox;
      const next = { ...s, jobs: without(s.jobs, a.job) };
      if (!sb || typeof sb.id !== 'string') return next;
      return {
        ...next,
        sandboxes: withSet(s.sandboxes, sb.id, sb),
        lease: s.lease.has(sb.id) ? s.lease : withSet(s.lease, sb.id, { holder: sb.session.holder, epoch: num(sb.session.epoch) }),
      };
    }
    case 'job_failed': {
      const job = s.jobs.get(a.job);
      return job ? { ...s, jobs: withSet(s.jobs, a.job, { ...job, error: a.message }) } : s;
    }
    case 'job_dismissed':
      return { ...s, jobs: without(s.jobs, a.job) };
    case 'sandbox_removed':
      return removeSandbox(s, a.id);
  }
}

/**
 * The sandbox's displayed state: lost/stopped from lifecycle events (newer than the snapshot), else
 * the snapshot's state when it is not running, paused from the lease, else running.
 */
export function sandboxState(s: AppState, id: string): string {
  const life = s.lifecycle.get(id)?.state;
  if (life && life !== 'running') return life;
  const listed = s.sandboxes.get(id)?.state;
  if (!life && listed && listed !== 'running') return listed;
  const h = s.lease.get(id)?.holder ?? s.sandboxes.get(id)?.session.holder;
  if (h?.holder === 'paused') return 'paused';
  return 'running';
}

/** The holder of a sandbox's control lease. */
export function holderOf(s: AppState, id: string): Holder | null {
  return s.lease.get(id)?.holder ?? s.sandboxes.get(id)?.session.holder ?? null;
}

// ------------------------------------------------------------------------------------------
// The store
// ------------------------------------------------------------------------------------------

type Listener = (s: AppState) => void;

export class Store {
  private state: AppState;
  private readonly listeners = new Set<Listener>();

  constructor(initial: AppState = initialState) {
    this.state = initial;
  }

  get(): AppState {
    return this.state;
  }

  dispatch(a: StoreAction): void {
    const next = reduce(this.state, a);
    if (next === this.state) return;
    this.state = next;
    for (const fn of this.listeners) fn(next);
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

export const store = new Store();

/** The app state, re-rendering on every change. */
export function useAppState(): AppState {
  const [s, set] = useState(store.get());
  useEffect(() => {
    set(store.get());
    return store.subscribe(set);
  }, []);
  return s;
}
