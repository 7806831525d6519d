// Test fixtures. The generated types may use bigint for u64 fields while JSON gives numbers: the
// fixtures are built as JSON would arrive and cast.

import type { Action, Approval, Entry, EventMessage, Event, SandboxInfo, Snapshot } from '../lib/api/types';

export const cast = <T>(v: unknown): T => v as T;

export function action(v: Record<string, unknown>): Action {
  return cast<Action>(v);
}

export function approval(id: number, sandbox = 'sb-1', extra: Record<string, unknown> = {}): Approval {
  return cast<Approval>({
    id,
    sandbox,
    action: { kind: 'click', at: { x: 10, y: 20 }, button: 'left', count: 1, hold: null },
    frame: 'f'.repeat(64),
    frame_png: 'a'.repeat(64),
    reasons: ['exec-other'],
    reason: 'running a program outside the exec allowlist',
    terminal: null,
    grantable: true,
    requested_ms: 1000 + id,
    deadline_ms: 121000 + id,
    state: { state: 'pending' },
    ...extra,
  });
}

export function sandbox(id: string, holder: Record<string, unknown> = { holder: 'agent' }, epoch = 1): SandboxInfo {
  return cast<SandboxInfo>({
    id,
    backend: 'gvisor',
    profile: 'desktop',
    screen: { width: 1280, height: 800 },
    state: 'running',
    vcpus: 1,
    memory_mib: 1024,
    session: { sandbox: id, screen: { width: 1280, height: 800 }, holder, epoch, pending: [], grants: [] },
  });
}

export function snapshot(sandboxes: SandboxInfo[], pending: Approval[], mode = 'enforce'): Snapshot {
  return cast<Snapshot>({ sandboxes, pending, mode });
}

export function ev(event: Record<string, unknown>): EventMessage {
  return cast<EventMessage>({ topic: 'test://topic', event: cast<Event>(event) });
}

export function entry(seq: number, kind: string, what: unknown, extra: Record<string, unknown> = {}): Entry {
  return cast<Entry>({
    seq,
    prev: '0'.repeat(64),
    hash: '1'.repeat(64),
    body: {
      ts_ms: 1_700_000_000_000 + seq,
      sandbox: 'sb-1',
      kind,
      actor: { agent: null, principal: null, operator: null },
      epoch: 1,
      policy_hash: null,
      frame_before: null,
      frame_after: null,
      what,
      ...extra,
    },
  });
}
