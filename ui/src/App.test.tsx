// @vitest-environment happy-dom
// Smoke test of the whole console over a fake backend: every view renders with the contract's
// accessible names, and events flow into the views.
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Backend } from './lib/backend';
import type { EventMessage, Snapshot } from './lib/api/types';
import { approval, cast, egressAsk, entry, humanRequest, networkView, sandbox, snapshot } from './test/fixtures';

let emit: (m: EventMessage) => void = () => undefined;
const resolveEgress = vi.fn(async () => {
  throw new Error('network ask 8 is already decided');
});
const createSandbox = vi.fn(() => new Promise<never>(() => undefined));
const fake = cast<Backend>({
  kind: 'web',
  auth: null,
  me: async () => ({ operator: 'ana', role: 'admin', scope: { kind: 'all' } }),
  subscribe: (onEvent: (m: EventMessage) => void, onStatus: (s: string) => void, onSnapshot: (s: Snapshot) => void) => {
    emit = onEvent;
    setTimeout(() => {
      onSnapshot(snapshot([sandbox('sb-1'), sandbox('sb-2', { holder: 'human', operator: 'bo' })], [approval(3, 'sb-1')]));
      onStatus('open');
    }, 0);
    return () => undefined;
  },
  viewUrl: async () => {
    throw new Error('no viewer in tests');
  },
  pendingEgress: async () => [egressAsk(8, 'sb-1', { deadline_ms: Date.now() + 60_000 })],
  network: async () => networkView(),
  resolveEgress,
  ledger: async () => [
    entry(1, 'lifecycle', { event: 'supervisor_started', policy_version: 'abc123', mode: 'enforce' }),
    entry(2, 'egress', { event: 'dns_refused', groups: [{ group: 'exfil.test', count: 1000, examples: [] }], unlisted: 0 }),
  ],
  policy: async () => ({
    version: 'abc',
    default: 'ask',
    mode: 'enforce',
    text: '@id("x")\npermit (principal, action, resource);\n\n@id("new-destination")\npermit (principal, action == Action::"connect", resource);\n',
  }),
  blob: async () => new Blob([]),
  listLinks: async () => [],
  listFiles: async (_sb: string, path: string) => ({ path, entries: [{ name: 'notes.txt', kind: 'file', size: 3, mode: 420, mtime_s: 1 }], truncated: false }),
  createSandbox,
  notify: vi.fn(async () => undefined),
});

vi.mock('./lib/backend', async (orig) => ({ ...(await orig<typeof import('./lib/backend')>()), getBackend: () => Promise.resolve(fake) }));
vi.mock('./lib/blobs', () => ({ useBlobUrl: () => ({ url: null, error: null }) }));

const { App } = await import('./App');
const { store } = await import('./lib/store');

const tick = async (ms = 0): Promise<void> => {
  await act(async () => {
    await new Promise((r) => setTimeout(r, ms));
  });
};
const go = async (hash: string): Promise<void> => {
  location.hash = hash;
  window.dispatchEvent(new HashChangeEvent('hashchange'));
  await tick();
};
const byLabel = (l: string): Element | null => document.querySelector(`[aria-label="${l}"]`);
const buttons = (): string[] => [...document.querySelectorAll('button')].map((b) => b.textContent?.trim() ?? '');

describe('console', () => {
  const root = document.createElement('div');
  beforeAll(async () => {
    document.body.append(root);
    location.hash = '#/grid';
    act(() => render(<App />, root));
    await tick();
    await tick(5);
  });
  afterAll(() => render(null, root));

  it('renders the shell', () => {
    expect(root.textContent).toContain('Signed in as ana');
    for (const name of ['Grid', 'Inbox', 'Ledger', 'Policy']) {
      expect([...root.querySelectorAll('nav a')].some((a) => a.textContent?.startsWith(name))).toBe(true);
    }
    expect(byLabel('Toggle theme')).not.toBeNull();
    expect(root.querySelector('[role="status"]')?.textContent).toContain('Live');
  });

  it('shows the grid', () => {
    expect(byLabel('Sandbox sb-1')).not.toBeNull();
    expect(byLabel('Sandbox sb-2')?.textContent).toContain('operator bo');
    expect(byLabel('Sandbox sb-1')?.textContent).toContain('2 pending'); // an approval and a network ask
    expect(buttons()).toEqual(expect.arrayContaining(['Open', 'Pause agent', 'Destroy', 'New sandbox']));
  });

  it('creates a sandbox with shared folders, read-only unless ticked', async () => {
    const button = (name: string): HTMLButtonElement => [...document.querySelectorAll('button')].find((b) => b.textContent?.trim() === name) as HTMLButtonElement;
    const type = (el: Element | null | undefined, value: string): void => {
      const input = el as HTMLInputElement;
      input.value = value;
      input.dispatchEvent(new Event('input', { bubbles: true }));
    };
    act(() => button('New sandbox').click());
    act(() => button('Add shared folder').click());
    act(() => button('Add shared folder').click());
    const row = (n: number) => document.querySelector(`[aria-label="Shared folder ${n}"]`);
    act(() => {
      type(row(1)?.querySelectorAll('input')[0], '/home/ana/data');
      type(row(1)?.querySelectorAll('input')[1], '/mnt/data');
      type(row(2)?.querySelectorAll('input')[0], '/srv/out');
      type(row(2)?.querySelectorAll('input')[1], '/root/out');
    });
    act(() => (row(2)?.querySelector('input[type="checkbox"]') as HTMLInputElement).click());
    act(() => button('Create').click());
    expect(createSandbox).toHaveBeenCalledWith(
      expect.objectContaining({
        shares: [
          { host: '/home/ana/data', guest: '/mnt/data', writable: false },
          { host: '/srv/out', guest: '/root/out', writable: true },
        ],
      }),
    );
    act(() => store.dispatch({ type: 'job_dismissed', job: (createSandbox.mock.calls[0] as unknown as [{ job: string }])[0].job }));
  });

  it('updates from events', async () => {
    act(() =>
      emit(cast<EventMessage>({ topic: 't', event: { type: 'lease_changed', sandbox: 'sb-1', from: { holder: 'agent' }, to: { holder: 'paused', by: 'ana' }, epoch: 2, at_ms: 1 } })),
    );
    await tick();
    expect(buttons()).toContain('Resume agent');
  });

  it('shows the inbox', async () => {
    await go('#/inbox');
    expect(byLabel('Pending approvals')).not.toBeNull();
    const item = byLabel('Approval 3 in sb-1');
    expect(item?.getAttribute('aria-selected')).toBe('true');
    expect(byLabel('Approval 3')).not.toBeNull();
  });

  it('shows network asks in the inbox, driven by the same keys', async () => {
    const item = byLabel('Network request 8 in sb-1');
    expect(item).not.toBeNull();
    expect(item?.textContent).toContain('web.test:80');
    act(() => (item as HTMLElement).click());
    await tick();
    expect(item?.getAttribute('aria-selected')).toBe('true');
    const card = document.querySelector('section[aria-label="Network ask"]');
    expect(card?.textContent).toContain('web.test:80');
    expect([...(card?.querySelectorAll('button') ?? [])].map((b) => b.textContent?.trim())).toEqual(
      expect.arrayContaining(['Allow once', 'Allow for this sandbox', 'Add to policy', 'Deny']),
    );
    // the approve key allows it once
    act(() => {
      document.dispatchEvent(new KeyboardEvent('keydown', { key: 'a', bubbles: true }));
    });
    await tick();
    expect(resolveEgress).toHaveBeenCalledWith('sb-1', 8, { decision: 'allow', scope: { kind: 'once' }, upload_budget: null });
    expect(card?.querySelector('[role="alert"]')?.textContent).toBe('network ask 8 is already decided');
    // a new ask arrives by event, then leaves when resolved
    act(() => emit(cast<EventMessage>({ topic: 'sandbox://sb-2/egress', event: { type: 'egress_asked', ask: egressAsk(11, 'sb-2', { deadline_ms: Date.now() + 60_000 }) } })));
    await tick();
    expect(byLabel('Network request 11 in sb-2')).not.toBeNull();
    act(() =>
      emit(cast<EventMessage>({ topic: 'sandbox://sb-2/egress', event: { type: 'egress_resolved', ask: egressAsk(11, 'sb-2', { state: { state: 'expired' } }) } })),
    );
    await tick();
    expect(byLabel('Network request 11 in sb-2')).toBeNull();
  });

  it('lists an agent asking for a human in the inbox, notifies, and drops it when it ends', async () => {
    act(() => emit(cast<EventMessage>({ topic: 'sandbox://sb-2/human', event: { type: 'human_requested', request: humanRequest(9, 'sb-2', { kind: 'captcha', reason: 'a CAPTCHA blocks the signup' }) } })));
    await tick();
    const item = byLabel('Human request 9 in sb-2');
    expect(item?.textContent).toContain('Solve a CAPTCHA');
    expect(item?.textContent).toContain('a CAPTCHA blocks the signup');
    expect(fake.notify).toHaveBeenCalledWith('claude needs a human in sb-2', 'Solve a CAPTCHA: a CAPTCHA blocks the signup');
    act(() => emit(cast<EventMessage>({ topic: 'sandbox://sb-2/human', event: { type: 'human_request_ended', sandbox: 'sb-2', request: 9, outcome: { outcome: 'abandoned' } } })));
    await tick();
    expect(byLabel('Human request 9 in sb-2')).toBeNull();
  });

  it('shows the session', async () => {
    await go('#/session/sb-2');
    expect(root.textContent).toContain('bo is in control');
    expect(byLabel('Command view timeline')).not.toBeNull();
    expect(byLabel('Live screen of sb-2')).not.toBeNull();
    expect(buttons()).toContain('Take control');
  });

  it('shows a sandbox\'s network asks and its network', async () => {
    await go('#/session/sb-1');
    await tick(10);
    expect(document.querySelectorAll('section[aria-label="Network ask"]')).toHaveLength(1);
    expect(byLabel('Approval 3')).not.toBeNull();
    expect(byLabel('Files in /root')?.textContent).toContain('notes.txt');
    expect(byLabel('View links')).not.toBeNull();
    const panel = byLabel('Network');
    expect(panel?.textContent).toContain('web.test:80');
    expect(panel?.textContent).toContain('exfil.test');
  });

  it('shows the ledger and policy', async () => {
    await go('#/ledger');
    await tick();
    for (const l of ['Sandbox', 'Kind', 'Decision', 'Actor', 'Ledger entries']) expect(byLabel(l)).not.toBeNull();
    expect(byLabel('Ledger entries')?.textContent).toContain('supervisor started');
    expect(byLabel('Ledger entries')?.textContent).toContain('DNS refused: exfil.test ×1000');
    await go('#/policy');
    await tick();
    const sw = document.querySelector('[role="switch"][aria-label="Shadow mode"]');
    expect(sw?.getAttribute('aria-checked')).toBe('false');
    expect(root.querySelector('pre')?.textContent).toContain('@id("x")');
    expect([...root.querySelectorAll('h2')].some((h) => h.textContent?.startsWith('Network'))).toBe(true);
    expect(byLabel('Network rules')?.textContent).toContain('@id("new-destination")');
    expect(byLabel('Action rules')?.textContent).not.toContain('new-destination');
  });
});
