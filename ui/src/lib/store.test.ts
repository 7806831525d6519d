import { describe, expect, it } from 'vitest';
import type { Snapshot } from './api/types';
import { approval, cast, egressAsk, ev, humanRequest, operator, sandbox, snapshot } from '../test/fixtures';
import { apply, askCount, askKey, egressList, holderOf, humanList, initialState, pendingList, reduce, sandboxState, Store, type AppState } from './store';

const snap = (s: AppState, ...args: Parameters<typeof snapshot>): AppState =>
  reduce(s, { type: 'snapshot', snapshot: snapshot(...args) });

describe('store reducer', () => {
  it('a snapshot replaces sandboxes, approvals and leases', () => {
    let s = snap(initialState, [sandbox('a'), sandbox('b')], [approval(1, 'a')]);
    expect([...s.sandboxes.keys()]).toEqual(['a', 'b']);
    expect(s.pending.size).toBe(1);
    expect(s.loaded).toBe(true);
    s = snap(s, [sandbox('b', { holder: 'paused', by: 'ana' }, 3)], [approval(2, 'b')], 'shadow');
    expect([...s.sandboxes.keys()]).toEqual(['b']);
    expect([...s.pending.keys()]).toEqual(['b/2']);
    expect(s.lease.get('b')).toEqual({ holder: { holder: 'paused', by: 'ana' }, epoch: 3 });
    expect(s.lease.has('a')).toBe(false);
    expect(s.mode).toBe('shadow');
    expect(sandboxState(s, 'b')).toBe('paused');
  });

  it('approval requested adds, resolved removes', () => {
    let s = snap(initialState, [sandbox('a')], []);
    s = apply(s, ev({ type: 'approval_requested', approval: approval(7, 'a') }));
    expect(pendingList(s).map((a) => Number(a.id))).toEqual([7]);
    s = apply(s, ev({ type: 'approval_resolved', approval: approval(7, 'a', { state: { state: 'expired' } }) }));
    expect(s.pending.size).toBe(0);
    // resolving twice (our own answer, then the event) is harmless
    const again = apply(s, ev({ type: 'approval_resolved', approval: approval(7, 'a', { state: { state: 'expired' } }) }));
    expect(again.pending.size).toBe(0);
  });

  it('no duplicates after a reconnect: the snapshot replaces what events added', () => {
    let s = snap(initialState, [sandbox('a')], []);
    s = apply(s, ev({ type: 'approval_requested', approval: approval(1, 'a') }));
    s = apply(s, ev({ type: 'approval_requested', approval: approval(1, 'a') })); // re-delivered
    expect(s.pending.size).toBe(1);
    s = snap(s, [sandbox('a')], [approval(1, 'a'), approval(2, 'a')]);
    expect(pendingList(s).map((a) => Number(a.id))).toEqual([1, 2]);
    // an approval resolved while disconnected disappears with the next snapshot
    s = snap(s, [sandbox('a')], [approval(2, 'a')]);
    expect([...s.pending.keys()]).toEqual(['a/2']);
  });

  it('keys approvals by sandbox and id (ids may repeat across sandboxes)', () => {
    let s = snap(initialState, [sandbox('a'), sandbox('b')], []);
    s = apply(s, ev({ type: 'approval_requested', approval: approval(1, 'a') }));
    s = apply(s, ev({ type: 'approval_requested', approval: approval(1, 'b') }));
    expect(s.pending.size).toBe(2);
    expect(pendingList(s, 'b')).toHaveLength(1);
  });

  it('pending list is oldest first', () => {
    const s = snap(initialState, [sandbox('a')], [
      approval(3, 'a', { requested_ms: 30 }),
      approval(1, 'a', { requested_ms: 50 }),
      approval(2, 'a', { requested_ms: 10 }),
    ]);
    expect(pendingList(s).map((a) => Number(a.id))).toEqual([2, 3, 1]);
  });

  it('falls back to the approvals inside sessions when the snapshot lists none', () => {
    const sb = sandbox('a');
    (sb.session as unknown as { pending: unknown[] }).pending = [approval(4, 'a')];
    const s = snap(initialState, [sb], []);
    expect([...s.pending.keys()]).toEqual(['a/4']);
  });

  it('lease changes follow the epoch and ignore late, older ones', () => {
    let s = snap(initialState, [sandbox('a', { holder: 'agent' }, 2)], []);
    s = apply(s, ev({ type: 'lease_changed', sandbox: 'a', from: { holder: 'agent' }, to: { holder: 'human', operator: 'ana' }, epoch: 3, at_ms: 5 }));
    expect(holderOf(s, 'a')).toEqual({ holder: 'human', operator: 'ana' });
    s = apply(s, ev({ type: 'lease_changed', sandbox: 'a', from: { holder: 'human', operator: 'ana' }, to: { holder: 'agent' }, epoch: 2, at_ms: 6 }));
    expect(holderOf(s, 'a')).toEqual({ holder: 'human', operator: 'ana' });
    s = apply(s, ev({ type: 'lease_changed', sandbox: 'a', from: { holder: 'human', operator: 'ana' }, to: { holder: 'paused', by: 'ana' }, epoch: 4, at_ms: 7 }));
    expect(sandboxState(s, 'a')).toBe('paused');
  });

  it('keeps the last agent step per sandbox and the policy reason of asks', () => {
    let s = snap(initialState, [sandbox('a')], []);
    const act = { kind: 'exec', argv: ['rm', '-rf', 'build'], stdin: '', timeout_ms: 30000 };
    s = apply(s, ev({ type: 'action_decided', sandbox: 'a', agent: 'claude', action: act, decision: 'ask', reason: 'a recursive forced delete', shadow_denied: false, at_ms: 9 }));
    expect(s.lastStep.get('a')).toMatchObject({ kind: 'decided', outcome: 'ask', summary: 'exec rm -rf build' });
    expect(s.askReasons.get(askKey('a', act))).toBe('a recursive forced delete');
    s = apply(s, ev({ type: 'action_refused', sandbox: 'a', agent: 'claude', reason: 'paused', at_ms: 10 }));
    expect(s.lastStep.get('a')).toMatchObject({ kind: 'refused', summary: 'paused' });
    s = apply(s, ev({ type: 'action_executed', sandbox: 'a', by: 'operator:ana', action: { kind: 'key', combo: 'ctrl+c' }, ok: false, error: 'x', frame_after: null, at_ms: 11 }));
    expect(s.lastStep.get('a')).toMatchObject({ kind: 'executed', outcome: 'failed', summary: 'key ctrl+c (by ana)' });
    s = apply(s, ev({ type: 'action_decided', sandbox: 'a', agent: 'c', action: { kind: 'screenshot' }, decision: 'allow', reason: '', shadow_denied: true, at_ms: 12 }));
    expect(s.lastStep.get('a')?.outcome).toBe('shadow_denied');
  });

  it('sandbox lifecycle: lost shows, destroyed removes everything about it', () => {
    let s = snap(initialState, [sandbox('a'), sandbox('b')], [approval(1, 'a'), approval(2, 'b')]);
    s = apply(s, ev({ type: 'sandbox_state', sandbox: 'b', state: 'lost', detail: 'keeper died', at_ms: 1 }));
    expect(sandboxState(s, 'b')).toBe('lost');
    s = apply(s, ev({ type: 'sandbox_state', sandbox: 'a', state: 'destroyed', detail: null, at_ms: 2 }));
    expect(s.sandboxes.has('a')).toBe(false);
    expect([...s.pending.keys()]).toEqual(['b/2']);
  });

  it('create jobs collect progress and end with the sandbox or an error', () => {
    let s = reduce(initialState, { type: 'job_started', job: 'j1', profile: 'desktop', backend: 'auto', at: 1 });
    s = apply(s, ev({ type: 'create_progress', job: 'j1', step: 'booting', outcome: { state: 'working' }, at_ms: 2 }));
    expect(s.jobs.get('j1')?.steps.map((x) => x.step)).toEqual(['booting']);
    // Someone else's creation shows until its sandbox runs, or with its failure.
    s = apply(s, ev({ type: 'create_progress', job: 'startup', step: 'building', outcome: { state: 'working' }, at_ms: 2 }));
    expect(s.jobs.get('startup')?.foreign).toBe(true);
    const broken = apply(s, ev({ type: 'create_progress', job: 'startup', step: 'runsc is missing', outcome: { state: 'failed' }, at_ms: 3 }));
    expect(broken.jobs.get('startup')?.error).toBe('runsc is missing');
    s = apply(s, ev({ type: 'create_progress', job: 'startup', step: 'running', outcome: { state: 'running', sandbox: 'x' }, at_ms: 3 }));
    expect(s.jobs.has('startup')).toBe(false);
    const failed = reduce(s, { type: 'job_failed', job: 'j1', message: 'no KVM' });
    expect(failed.jobs.get('j1')?.error).toBe('no KVM');
    s = reduce(s, { type: 'job_done', job: 'j1', sandbox: sandbox('new') });
    expect(s.jobs.size).toBe(0);
    expect(s.sandboxes.has('new')).toBe(true);
    expect(holderOf(s, 'new')).toEqual({ holder: 'agent' });
  });

  it('policy mode events and unknown events', () => {
    let s = apply(initialState, ev({ type: 'policy_mode', mode: 'shadow', by: 'ana', at_ms: 1 }));
    expect(s.mode).toBe('shadow');
    s = apply(s, ev({ type: 'something_new', x: 1 }));
    expect(s.mode).toBe('shadow');
  });

  it('the store notifies only on change', () => {
    const st = new Store();
    let n = 0;
    st.subscribe(() => n++);
    st.dispatch({ type: 'status', status: 'connecting' }); // same as initial
    st.dispatch({ type: 'status', status: 'open' });
    expect(n).toBe(1);
    expect(st.get().status).toBe('open');
  });
});

describe('network asks in the store', () => {
  const ids = (s: AppState, sb?: string): number[] => egressList(s, sb).map((a) => Number(a.id));

  it('an ask arrives, grows, and leaves when resolved; a late re-send does not bring it back', () => {
    let s = snap(initialState, [sandbox('a')], [approval(1, 'a')]);
    s = apply(s, ev({ type: 'egress_asked', ask: egressAsk(5, 'a', { waiting: 1 }) }));
    s = apply(s, ev({ type: 'egress_asked', ask: egressAsk(5, 'a', { waiting: 2 }) })); // another connection joined
    expect(ids(s)).toEqual([5]);
    expect(Number(egressList(s)[0]?.waiting)).toBe(2);
    expect(askCount(s)).toBe(2);
    expect(askCount(s, 'a')).toBe(2);
    const rev = s.networkRev.get('a') ?? 0;
    s = apply(s, ev({ type: 'egress_resolved', ask: egressAsk(5, 'a', { state: { state: 'expired' } }) }));
    expect(ids(s)).toEqual([]);
    expect(s.networkRev.get('a')).toBe(rev + 1);
    s = apply(s, ev({ type: 'egress_asked', ask: egressAsk(5, 'a', { waiting: 3 }) }));
    expect(ids(s)).toEqual([]);
    s = apply(s, ev({ type: 'egress', sandbox: 'a', record: { event: 'dns_refused', groups: [], unlisted: 1 } }));
    expect(s.networkRev.get('a')).toBe(rev + 2);
  });

  it('the list read after a snapshot replaces the asks, keeping those events brought meanwhile', () => {
    let s = snap(initialState, [sandbox('a'), sandbox('b')], []);
    s = apply(s, ev({ type: 'egress_asked', ask: egressAsk(1, 'a') })); // from before: resolved while away
    s = reduce(s, { type: 'egress_fetch' });
    s = apply(s, ev({ type: 'egress_asked', ask: egressAsk(9, 'b', { requested_ms: 1 }) })); // newer than the list
    s = apply(s, ev({ type: 'egress_resolved', ask: egressAsk(3, 'a', { state: { state: 'denied', by: 'ana', reason: null } }) }));
    s = reduce(s, { type: 'egress_pending', asks: [egressAsk(2, 'a'), egressAsk(3, 'a')] });
    expect(ids(s)).toEqual([9, 2]);
    expect(ids(s, 'a')).toEqual([2]);
    expect(s.egressFresh).toBeNull();
    // a failed read keeps what is shown
    s = reduce(reduce(s, { type: 'egress_fetch' }), { type: 'egress_pending', asks: null });
    expect(ids(s)).toEqual([9, 2]);
  });

  it('a destroyed sandbox takes its asks along', () => {
    let s = snap(initialState, [sandbox('a'), sandbox('b')], []);
    s = reduce(s, { type: 'egress_pending', asks: [egressAsk(1, 'a'), egressAsk(2, 'b')] });
    s = apply(s, ev({ type: 'sandbox_state', sandbox: 'a', state: 'destroyed', detail: null, at_ms: 1 }));
    expect(ids(s)).toEqual([2]);
    s = snap(s, [sandbox('c')], []);
    expect(ids(s)).toEqual([]);
  });
});

describe('requests for a human in the store', () => {
  const snap = (sbs: string[], human: unknown[]) => cast<Snapshot>({ ...snapshot(sbs.map((id) => sandbox(id)), []), human_requests: human });

  it('the snapshot lists them, the two events add and end them, oldest first', () => {
    let s = reduce(initialState, { type: 'snapshot', snapshot: snap(['sb-1', 'sb-2'], [humanRequest(1, 'sb-1', { asked_ms: 50 })]) });
    s = reduce(s, { type: 'event', message: ev({ type: 'human_requested', request: humanRequest(1, 'sb-2', { asked_ms: 10 }) }) });
    expect(humanList(s).map((r) => `${r.sandbox}/${r.request}`)).toEqual(['sb-2/1', 'sb-1/1']);
    expect(humanList(s, 'sb-1')).toHaveLength(1);
    expect(askCount(s, 'sb-2')).toBe(1);
    s = reduce(s, { type: 'event', message: ev({ type: 'human_request_ended', sandbox: 'sb-2', request: 1, outcome: { outcome: 'timed_out' } }) });
    expect(humanList(s).map((r) => r.sandbox)).toEqual(['sb-1']);
  });

  it('a reconnect replaces them, and a destroyed sandbox takes its own along', () => {
    let s = reduce(initialState, { type: 'snapshot', snapshot: snap(['sb-1'], [humanRequest(1, 'sb-1')]) });
    s = reduce(s, { type: 'snapshot', snapshot: snap(['sb-1'], [humanRequest(1, 'sb-1')]) });
    expect(humanList(s)).toHaveLength(1);
    s = reduce(s, { type: 'sandbox_removed', id: 'sb-1' });
    expect(humanList(s)).toEqual([]);
  });

  it('remembers who is signed in, with role and reach', () => {
    const s = reduce(initialState, { type: 'me', me: operator('ana', 'watcher') });
    expect(s.me).toBe('ana');
    expect(s.principal?.role).toBe('watcher');
    expect(reduce(s, { type: 'me', me: null }).principal).toBeNull();
  });
});
