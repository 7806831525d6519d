// @vitest-environment happy-dom
// Smoke test of the whole console over a fake backend: every view renders with the contract's
// accessible names, and events flow into the views.
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Backend } from './lib/backend';
import type { EventMessage, Snapshot } from './lib/api/types';
import { approval, cast, entry, sandbox, snapshot } from './test/fixtures';

let emit: (m: EventMessage) => void = () => undefined;
const fake = cast<Backend>({
  kind: 'web',
  auth: null,
  me: async () => ({ operator: 'ana' }),
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
  ledger: async () => [entry(1, 'lifecycle', { event: 'supervisor_started' })],
  policy: async () => ({ version: 'abc', default: 'ask', mode: 'enforce', text: '@id("x")\npermit (principal, action, resource);' }),
  blob: async () => new Blob([]),
  notify: vi.fn(async () => undefined),
});

vi.mock('./lib/backend', async (orig) => ({ ...(await orig<typeof import('./lib/backend')>()), getBackend: () => Promise.resolve(fake) }));
vi.mock('./lib/blobs', () => ({ useBlobUrl: () => ({ url: null, error: null }) }));

const { App } = await import('./App');

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
    expect(byLabel('Sandbox sb-1')?.textContent).toContain('1 pending');
    expect(buttons()).toEqual(expect.arrayContaining(['Open', 'Pause agent', 'Destroy', 'New sandbox']));
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

  it('shows the session', async () => {
    await go('#/session/sb-2');
    expect(root.textContent).toContain('bo is in control');
    expect(byLabel('Command view timeline')).not.toBeNull();
    expect(byLabel('Live screen of sb-2')).not.toBeNull();
    expect(buttons()).toContain('Take control');
  });

  it('shows the ledger and policy', async () => {
    await go('#/ledger');
    await tick();
    for (const l of ['Sandbox', 'Kind', 'Decision', 'Actor', 'Ledger entries']) expect(byLabel(l)).not.toBeNull();
    expect(byLabel('Ledger entries')?.textContent).toContain('supervisor started');
    await go('#/policy');
    await tick();
    const sw = document.querySelector('[role="switch"][aria-label="Shadow mode"]');
    expect(sw?.getAttribute('aria-checked')).toBe('false');
    expect(root.querySelector('pre')?.textContent).toContain('@id("x")');
  });
});
