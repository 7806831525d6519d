import { describe, expect, it } from 'vitest';
import { cast, egressAsk, entry } from '../test/fixtures';
import type { EgressRecord } from './api/types';
import {
  allowForMinutes,
  askStateText,
  bytesText,
  denyEgress,
  destinationText,
  durationText,
  egressDecision,
  egressSummary,
  grantUnavailable,
  isEgressRecord,
  onceUnavailable,
  overBudgetText,
  uploadBudget,
} from './egress';
import { entryDecision, entrySummary, filterEntries } from './ledger';

const web = { host: 'web.test', port: 80 };
const rec = (v: Record<string, unknown>): EgressRecord => cast<EgressRecord>(v);
const decided = (outcome: string, extra: Record<string, unknown> = {}): EgressRecord =>
  rec({
    event: 'decided',
    connection: 1,
    destination: web,
    protocol: 'http',
    agent: 'claude',
    outcome,
    rules: ['test-upstreams'],
    approver: null,
    reason: '',
    shadow_denied: false,
    ...extra,
  });

describe('egress words', () => {
  it('writes destinations, sizes and durations', () => {
    expect(destinationText(web)).toBe('web.test:80');
    expect(destinationText({ host: '2001:db8::1', port: 443 })).toBe('[2001:db8::1]:443');
    expect([0, 120, 1024, 2150, 15_000, 1_572_864, 5 * 1024 ** 3].map(bytesText)).toEqual([
      '0 B', '120 B', '1 KB', '2.1 KB', '15 KB', '1.5 MB', '5 GB',
    ]);
    expect([35, 2400, 60_000, 185_000, 3_600_000].map(durationText)).toEqual(['35 ms', '2.4 s', '1 min', '3 min 5 s', '1 h']);
  });

  it('builds the answers', () => {
    expect(allowForMinutes(' 15 ')).toEqual({ decision: 'allow', scope: { kind: 'minutes', minutes: 15 }, upload_budget: null });
    expect(allowForMinutes('15', 65536)).toEqual({ decision: 'allow', scope: { kind: 'minutes', minutes: 15 }, upload_budget: 65536 });
    expect(uploadBudget('')).toBeNull();
    expect(uploadBudget(' 64 ')).toBe(65536);
    for (const bad of ['0', '-1', '1.5', 'x']) expect(uploadBudget(bad)).toHaveProperty('error');
    expect(overBudgetText(egressAsk(1))).toBeNull();
    expect(overBudgetText(egressAsk(1, 'sb-1', { over_budget: { sent: 65536, budget: 65536 } }))).toMatch(/^Paused after sending .* upload budget/);
    for (const bad of ['', '0', '1441', '2.5', 'x']) expect(allowForMinutes(bad)).toHaveProperty('error');
    expect(denyEgress('  ')).toEqual({ decision: 'deny', reason: null });
    expect(denyEgress(' no ')).toEqual({ decision: 'deny', reason: 'no' });
    expect(onceUnavailable(egressAsk(1))).toBeNull();
    expect(onceUnavailable(egressAsk(1, 'sb-1', { protocol: null }))).toMatch(/asked ahead/);
    expect(grantUnavailable(egressAsk(1))).toBeNull();
    expect(grantUnavailable(egressAsk(1, 'sb-1', { grantable: false }))).toMatch(/once/);
  });

  it('words where an ask stands', () => {
    expect(askStateText({ state: 'pending' })).toBe('pending');
    expect(askStateText({ state: 'allowed', by: 'ana', scope: { kind: 'once' }, upload_budget: null })).toBe('allowed once by ana');
    expect(askStateText({ state: 'allowed', by: 'ana', scope: { kind: 'minutes', minutes: 15 }, upload_budget: null })).toBe('allowed for 15 min by ana');
    expect(askStateText({ state: 'allowed', by: 'ana', scope: { kind: 'sandbox' }, upload_budget: null })).toBe("allowed for the sandbox's life by ana");
    expect(askStateText({ state: 'allowed', by: 'ana', scope: { kind: 'policy' }, upload_budget: null })).toBe('added to the policy by ana');
    expect(askStateText({ state: 'denied', by: 'bo', reason: 'no' })).toBe('denied by bo: no');
    expect(askStateText({ state: 'expired' })).toBe('expired (counts as deny)');
  });
});

describe('egress ledger records', () => {
  it('summarises every decision outcome', () => {
    expect(egressSummary(decided('allowed'))).toBe('web.test:80 allowed by test-upstreams');
    expect(egressSummary(decided('allowed', { rules: ['ip-literal'], shadow_denied: true }))).toBe(
      'web.test:80 allowed by ip-literal (shadow mode: the policy would deny it)',
    );
    expect(egressSummary(decided('allowed', { rules: [] }))).toBe('web.test:80 allowed by the policy default');
    expect(egressSummary(decided('granted', { approver: 'ana', rules: [] }))).toBe('web.test:80 allowed by a grant from ana');
    expect(egressSummary(decided('approved', { approver: 'ana', rules: ['new-destination'] }))).toBe('web.test:80 approved by ana');
    expect(egressSummary(decided('denied', { rules: ['ip-literal'], reason: 'a raw address' }))).toBe(
      'web.test:80 denied by ip-literal — a raw address',
    );
    expect(egressSummary(decided('refused', { approver: 'bo', reason: 'not needed' }))).toBe('web.test:80 refused by bo — not needed');
    expect(egressSummary(decided('failed', { reason: 'no such name' }))).toBe('web.test:80 failed — no such name');
  });

  it('summarises closes, refused DNS lookups, asks ahead and resolved asks', () => {
    const closed = rec({ event: 'closed', connection: 1, destination: web, address: '10.0.0.2:80', bytes_up: 120, bytes_down: 2150, duration_ms: 35, error: null });
    expect(egressSummary(closed)).toBe('closed web.test:80 ↑120 B ↓2.1 KB 35 ms');
    expect(egressSummary(rec({ ...closed, error: 'upstream reset' }))).toBe('closed web.test:80 ↑120 B ↓2.1 KB 35 ms — upstream reset');
    expect(egressSummary(rec({ event: 'dns_refused', groups: [{ group: 'exfil.test', count: 1000, examples: ['a.exfil.test'] }], unlisted: 0 }))).toBe(
      'DNS refused: exfil.test ×1000',
    );
    expect(
      egressSummary(rec({ event: 'dns_refused', groups: [{ group: 'exfil.test', count: 2, examples: [] }, { group: 'x.test', count: 1, examples: [] }], unlisted: 5 })),
    ).toBe('DNS refused: exfil.test ×2, x.test ×1 (+5 unlisted lookups)');
    expect(egressSummary(rec({ event: 'dns_refused', groups: [], unlisted: 1 }))).toBe('DNS refused: 1 unlisted lookup');
    expect(
      egressSummary(rec({ event: 'requested', ask: 9, agent: 'claude', destinations: [web, { host: 'docs.test', port: 443 }], reason: 'read the docs' })),
    ).toBe('claude asks ahead for web.test:80, docs.test:443 — read the docs');
    const resolved = rec({ event: 'ask_resolved', ask: egressAsk(9, 'sb-1', { state: { state: 'allowed', by: 'ana', scope: { kind: 'minutes', minutes: 15 } } }) });
    expect(egressSummary(resolved)).toBe('network ask 9 (web.test:80) allowed for 15 min by ana');
    expect(egressDecision(resolved)).toBe('allowed');
  });

  it('reads ledger entries through the typed record', () => {
    const entries = [
      entry(1, 'egress', decided('allowed')),
      entry(2, 'egress', { event: 'closed', connection: 1, destination: web, address: null, bytes_up: 0, bytes_down: 0, duration_ms: 2, error: 'refused' }),
      entry(3, 'egress', { event: 'dns_refused', groups: [{ group: 'exfil.test', count: 1000, examples: [] }], unlisted: 0 }),
      entry(4, 'egress', { event: 'requested', ask: 9, agent: '', destinations: [web], reason: '' }),
      entry(5, 'egress', { event: 'ask_resolved', ask: egressAsk(9, 'sb-1', { state: { state: 'expired' } }) }),
      entry(6, 'egress', { event: 'teleported' }),
    ];
    expect(entries.map(entryDecision)).toEqual(['allowed', 'failed', 'refused', 'ask', 'expired', null]);
    expect(entries.map(entrySummary)).toEqual([
      'web.test:80 allowed by test-upstreams',
      'closed web.test:80 ↑0 B ↓0 B 2 ms — refused',
      'DNS refused: exfil.test ×1000',
      'the agent asks ahead for web.test:80',
      'network ask 9 (web.test:80) expired (counts as deny)',
      '{"event":"teleported"}',
    ]);
    expect(isEgressRecord({ event: 'teleported' })).toBe(false);
    expect(isEgressRecord(null)).toBe(false);
    expect(filterEntries(entries, { kind: 'egress', decision: 'allowed', actor: '' }).map((e) => Number(e.seq))).toEqual([1]);
  });
});
