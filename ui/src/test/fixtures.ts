// Test fixtures. The generated types may use bigint for u64 fields while JSON gives numbers: the
// fixtures are built as JSON would arrive and cast.

import type {
  Action,
  Approval,
  EgressAsk,
  Entry,
  EventMessage,
  Event,
  HumanRequest,
  Me,
  NetworkView,
  Role,
  SandboxInfo,
  Snapshot,
} from '../lib/api/types';
import type { TimelineStep } from '../lib/video/steps';
import type { Step } from '../lib/video/wire';

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

export function egressAsk(id: number, sandbox = 'sb-1', extra: Record<string, unknown> = {}): EgressAsk {
  return cast<EgressAsk>({
    id,
    sandbox,
    agent: 'claude',
    destinations: [{ host: 'web.test', port: 80 }],
    protocol: 'http',
    waiting: 2,
    agent_reason: null,
    frame_png: 'b'.repeat(64),
    rules: ['new-destination'],
    reason: 'a connection to a destination no rule names',
    policy_rule:
      '// Added by an operator: allow connections to web.test port 80.\n@id("allow-connect-web.test-80")\n' +
      'permit (principal, action == Action::"connect", resource)\nwhen { context.host == "web.test" && context.port == 80 };\n',
    grantable: true,
    over_budget: null,
    requested_ms: 2000 + id,
    deadline_ms: 122000 + id,
    state: { state: 'pending' },
    ...extra,
  });
}

/** A signed-in operator reaching every sandbox. */
export function operator(name: string, role: Role = 'operator'): Me {
  return { operator: name, role, scope: { kind: 'all' } };
}

/** What a view link is signed in as. */
export function viewLink(sandbox: string, id = 'l-1'): Me {
  return { operator: `link:${id}`, role: 'watcher', scope: { kind: 'sandbox', sandbox } };
}

export function humanRequest(request: number, sandbox = 'sb-1', extra: Record<string, unknown> = {}): HumanRequest {
  return cast<HumanRequest>({
    request,
    sandbox,
    agent: 'claude',
    reason: 'The site wants a login I do not have',
    kind: 'login',
    asked_ms: Date.now() - 65_000,
    deadline_ms: Date.now() + 300_000,
    frame: 'c'.repeat(64),
    ...extra,
  });
}

export function networkView(extra: Record<string, unknown> = {}): NetworkView {
  return cast<NetworkView>({
    sandbox: 'sb-1',
    destinations: [
      {
        destination: { host: 'web.test', port: 80 },
        outcome: 'allowed',
        rules: ['test-upstreams'],
        connections: 3,
        open: 1,
        bytes_up: 120,
        bytes_down: 2150,
        last_seen_ms: Date.now() - 12_000,
      },
      {
        destination: { host: 'pastebin.com', port: 443 },
        outcome: 'denied',
        rules: ['exfiltration-helpers'],
        connections: 1,
        open: 0,
        bytes_up: 0,
        bytes_down: 0,
        last_seen_ms: Date.now() - 5_000,
      },
    ],
    asks: [],
    grants: [
      { destination: { host: 'api.test', port: 443 }, by: 'ana', from_ms: 1, until_ms: null },
      { destination: { host: 'cdn.test', port: 443 }, by: 'bo', from_ms: 1, until_ms: Date.now() + 10 * 60_000 },
    ],
    dns_refused: [{ group: 'exfil.test', count: 1000, examples: ['a1.exfil.test', 'a2.exfil.test', 'a3.exfil.test'] }],
    dns_unlisted: 7,
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

/** A command-view step as the viewer socket sends it: step `seq`, an executed agent action. */
export function step(seq: number, extra: Partial<Step> = {}): Step {
  return {
    seq,
    at_ms: 1000 * seq,
    kind: 'executed',
    title: `step ${seq}`,
    actor: 'agent',
    decision: null,
    detail: null,
    ...extra,
  };
}

/** The same step as the timeline keeps it, with no still yet. */
export function timelineStep(seq: number, extra: Partial<TimelineStep> = {}): TimelineStep {
  return { ...step(seq), key: `s${seq}`, stillUrl: null, ...extra };
}
