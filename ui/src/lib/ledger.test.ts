import { describe, expect, it } from 'vitest';
import { cast, entry } from '../test/fixtures';
import type { VerifyReport } from './api/types';
import {
  actorLabel,
  actorMatches,
  actorOptions,
  describeJsonAction,
  entryDecision,
  entryStills,
  entrySummary,
  filterEntries,
  mergePage,
  NO_FILTER,
  verifyText,
} from './ledger';

const H = (c: string) => c.repeat(64);
const agent = { agent: 'claude', principal: 'ci', operator: null };
const op = (name: string) => ({ agent: null, principal: null, operator: name });

const decided = entry(1, 'action_decided', {
  action: { kind: 'exec', argv: ['rm', '-rf', 'build'], stdin: '', timeout_ms: 30000 },
  evaluation: { decision: 'ask', rules: ['recursive-delete'], reason: 'a recursive forced delete', defaulted: false },
  decision: 'ask',
  shadow_denied: false,
}, { actor: agent });
const shadow = entry(2, 'action_decided', { action: { kind: 'key', combo: 'super' }, evaluation: { decision: 'deny', rules: [], reason: 'r', defaulted: true }, decision: 'allow', shadow_denied: true }, { actor: agent });
const resolved = entry(3, 'approval_resolved', { approval: 4, state: { state: 'denied', by: 'ana', reason: 'not today' } }, { actor: op('ana'), frame_before: H('a') });
const expired = entry(4, 'approval_resolved', { approval: 5, state: { state: 'expired' }, counts_as: 'deny' });
const executed = entry(5, 'action_executed', { action: { kind: 'click', at: { x: 1, y: 2 }, button: 'left', count: 1, hold: null }, result: { error: 'guest down' } }, { actor: agent, frame_after: H('b') });
const human = entry(6, 'human_input', { action: { kind: 'type', text_sha256: H('c'), text_len: 12 }, epoch: 3, ok: true, error: null }, { actor: op('bo') });
const lease = entry(7, 'lease_changed', { command: { command: 'hand_back', operator: 'ana', note: 'done' }, from: { holder: 'human', operator: 'ana' }, to: { holder: 'agent' } }, { actor: op('ana') });
const life = entry(8, 'lifecycle', { event: 'sandbox_created', backend: 'gvisor', profile: 'desktop', placement: 'gVisor (ptrace)', boot_ms: 512 }, { sandbox: null });
const grant = entry(9, 'grant_issued', { grant: { kind: 'exec' }, minutes: 10, approval: 4 }, { actor: op('ana') });
const refused = entry(10, 'action_refused', { action: { kind: 'screenshot' }, reason: 'paused by ana' }, { actor: agent });
const weird = entry(11, 'egress', 'not an object');
const all = [decided, shadow, resolved, expired, executed, human, lease, life, grant, refused, weird];

describe('ledger entries', () => {
  it('finds decisions', () => {
    expect(all.map(entryDecision)).toEqual(['ask', 'shadow_denied', 'denied', 'expired', 'failed', 'done', null, null, null, 'refused', null]);
  });

  it('summarises every kind', () => {
    expect(entrySummary(decided)).toBe('exec rm -rf build → ask [recursive-delete] — a recursive forced delete');
    expect(entrySummary(resolved)).toBe('approval 4 denied by ana: not today');
    expect(entrySummary(expired)).toBe('approval 5 expired (counts as deny)');
    expect(entrySummary(executed)).toBe('click (1, 2) — failed: guest down');
    expect(entrySummary(human)).toBe('type 12 bytes (text redacted)');
    expect(entrySummary(lease)).toBe('control operator ana → agent (hand back) — note: done');
    expect(entrySummary(life)).toBe('sandbox created — gvisor desktop, gVisor (ptrace), booted in 512 ms');
    expect(entrySummary(grant)).toBe('exec allowed for 10 min (approval 4)');
    expect(entrySummary(refused)).toBe('screenshot refused: paused by ana');
    expect(entrySummary(weird)).toBe('not an object');
  });

  it('words an operator\'s typing in the live view instead of an empty line', () => {
    const viewerInput = entry(12, 'human_input', {
      viewer: 3,
      transport: 'webcodecs',
      summary: {
        pointer_moves: 4, button_presses: 1, wheel_events: 0, key_presses: 5, keys_sha256: H('d'),
        refused: 0, first_ms: 1, last_ms: 9, duration_ms: 8,
      },
      ok: true,
      handback_note: 'fixed the typo',
    }, { actor: op('ana') });
    expect(entrySummary(viewerInput)).toBe(
      '5 keys, 1 click, 4 pointer moves in the live view (webcodecs) — hand-back note: fixed the typo',
    );
    expect(entryDecision(viewerInput)).toBe('done');
  });

  it('reads a mode switch recorded before it carried an event', () => {
    expect(entrySummary(entry(13, 'policy_changed', { mode: 'shadow', policy_version: 'v' }))).toBe('mode → shadow');
    expect(entrySummary(entry(14, 'policy_changed', { event: 'mode_set', mode: 'enforce', policy_version: 'v' }))).toBe(
      'mode → enforce',
    );
  });

  it('describes odd actions without throwing', () => {
    expect(describeJsonAction({ kind: 'teleport', to: 'mars' })).toBe('{"kind":"teleport","to":"mars"}');
    expect(describeJsonAction(null)).toBe('');
    expect(describeJsonAction({ kind: 'drag', path: [] })).toBe('drag');
  });

  it('labels and filters actors', () => {
    expect(actorLabel(decided)).toBe('agent claude (for ci)');
    expect(actorLabel(resolved)).toBe('operator ana');
    expect(actorLabel(life)).toBe('system');
    expect(actorOptions(all)).toEqual(['agent', 'operator', 'system', 'agent:claude', 'operator:ana', 'operator:bo']);
    expect(actorMatches(human, 'operator:bo')).toBe(true);
    expect(actorMatches(human, 'operator:ana')).toBe(false);
    expect(actorMatches(human, 'agent')).toBe(false);
    expect(actorMatches(life, 'system')).toBe(true);
  });

  it('filters by kind, decision and actor together', () => {
    expect(filterEntries(all, NO_FILTER)).toHaveLength(all.length);
    expect(filterEntries(all, { kind: 'approval_resolved', decision: '', actor: '' }).map((e) => Number(e.seq))).toEqual([3, 4]);
    expect(filterEntries(all, { kind: '', decision: 'expired', actor: '' }).map((e) => Number(e.seq))).toEqual([4]);
    expect(filterEntries(all, { kind: '', decision: '', actor: 'operator:ana' }).map((e) => Number(e.seq))).toEqual([3, 7, 9]);
    expect(filterEntries(all, { kind: 'action_decided', decision: 'ask', actor: 'agent' }).map((e) => Number(e.seq))).toEqual([1]);
  });

  it('lists stills once', () => {
    expect(entryStills(resolved)).toEqual([{ label: 'before', hash: H('a') }]);
    expect(entryStills(entry(1, 'x', {}, { frame_before: H('d'), frame_after: H('d') }))).toHaveLength(1);
    expect(entryStills(entry(1, 'x', {}, { frame_before: 'nothex' }))).toEqual([]);
  });

  it('merges pages in seq order without duplicates', () => {
    expect(mergePage([refused, decided], [decided, shadow]).map((e) => Number(e.seq))).toEqual([1, 2, 10]);
  });

  it('words the verify result', () => {
    expect(verifyText(cast<VerifyReport>({ entries: 12, blobs_checked: 3, head: null, first_broken: null }))).toBe(
      'Chain intact — 12 entries, 3 blobs checked',
    );
    expect(verifyText(cast<VerifyReport>({ entries: 4, blobs_checked: 0, head: null, first_broken: { seq: 5, reason: 'hash mismatch' } }))).toBe(
      'Chain broken at entry 5: hash mismatch',
    );
  });

  it('words view links and refused requests', () => {
    const link = { id: 'l-1', sandbox: 'sb-1', created_by: 'ana', created_ms: 1, expires_ms: 1_700_003_600_000, revoked_by: null };
    const created = entry(20, 'access', { event: 'link_created', link }, { actor: op('ana') });
    expect(entrySummary(created)).toMatch(/^view link l-1 created by ana for sb-1, until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(entrySummary(entry(21, 'access', { event: 'link_used', link: 'l-1' }))).toBe('view link l-1 used');
    expect(entrySummary(entry(22, 'access', { event: 'link_revoked', link: { ...link, revoked_by: 'bo' } }))).toBe('view link l-1 revoked by bo');
    const linkRefused = entry(23, 'access', { event: 'link_refused', link: 'l-1', reason: 'view link l-1 expired' });
    expect(entrySummary(linkRefused)).toBe('view link l-1 refused: view link l-1 expired');
    const refused = entry(24, 'access', {
      event: 'refused',
      request: 'POST /api/sandboxes/sb-1/lease',
      forbidden: { why: 'role', who: 'wes', role: 'watcher', permission: 'drive' },
    });
    expect(entrySummary(refused)).toBe('refused POST /api/sandboxes/sb-1/lease: wes is a watcher and may not take control or send input');
    const outOfScope = entry(25, 'access', {
      event: 'refused',
      request: 'GET /api/ledger',
      forbidden: { why: 'scope', who: 'link:l-1', allowed: 'sb-1', asked: null },
    });
    expect(entrySummary(outOfScope)).toBe('refused GET /api/ledger: link:l-1 is a view link for sandbox sb-1 and cannot reach anything beyond it');
    expect([created, linkRefused, refused].map(entryDecision)).toEqual([null, 'refused', 'refused']);
  });

  it('words an agent asking for a human, and how it ended', () => {
    const asked = entry(30, 'human_request', { event: 'requested', request: 2, reason: 'needs a login', kind: 'login', deadline_ms: 5, frame: H('e') }, { actor: agent });
    expect(entrySummary(asked)).toBe('agent asked for a human (request 2, log in): needs a login');
    expect(entryStills(asked)).toEqual([{ label: 'screen', hash: H('e') }]);
    expect(entrySummary(entry(31, 'human_request', { event: 'answered', request: 2, operator: 'ana', note: 'logged in', frame: H('f') }))).toBe(
      'human request 2 answered by ana — note: logged in',
    );
    expect(entrySummary(entry(32, 'human_request', { event: 'timed_out', request: 2 }))).toBe('human request 2 timed out: nobody helped in time');
    expect(entrySummary(entry(33, 'human_request', { event: 'abandoned', request: 2, reason: 'the agent disconnected' }))).toBe(
      'human request 2 abandoned: the agent disconnected',
    );
  });

  it('words files moved into and out of a sandbox, and a transfer that broke off', () => {
    const up = entry(40, 'file_transfer', { direction: 'in', path: '/root/data.csv', content: 'file', size: 1536, sha256: 'ab'.repeat(32), blob: 'ab'.repeat(32), via: 'console' }, { actor: op('ana') });
    expect(entrySummary(up)).toBe('file into the sandbox: /root/data.csv (1.5 KiB, sha256 abababababab) via console');
    expect(entryDecision(up)).toBe('done');
    const down = entry(41, 'file_transfer', { direction: 'out', path: '/root/Downloads', content: 'folder_archive', size: 10, sha256: 'cd'.repeat(32), via: 'api' });
    expect(entrySummary(down)).toBe('folder (tar) out of the sandbox: /root/Downloads (10 B, sha256 cdcdcdcdcdcd) via api');
    const broke = entry(42, 'file_transfer', { direction: 'out', path: '/root/big.iso', content: 'file', size: 4096, sha256: null, via: 'api', error: 'the client went away' });
    expect(entrySummary(broke)).toBe('file out of the sandbox: /root/big.iso (4.0 KiB) via api — failed: the client went away');
    expect(entryDecision(broke)).toBe('failed');
  });
});
