// @vitest-environment happy-dom
// A view link's console: the one sandbox it shows, watched, and nothing else; an ended link says so.
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Backend } from './lib/backend';
import type { EventMessage, Snapshot } from './lib/api/types';
import { approval, cast, humanRequest, sandbox, snapshot, viewLink } from './test/fixtures';

const unauthorized: ((message: string, code: string) => void)[] = [];
const pendingEgress = vi.fn(async () => []);
const ledger = vi.fn(async () => []);
const blob = vi.fn(async () => new Blob([]));
const fake = cast<Backend>({
  kind: 'web',
  auth: {
    hasToken: () => true,
    signIn: async () => viewLink('sb-1'),
    signOut: () => undefined,
    onUnauthorized: (fn: (message: string, code: string) => void) => {
      unauthorized.push(fn);
      return () => undefined;
    },
  },
  me: async () => viewLink('sb-1'),
  subscribe: (_onEvent: (m: EventMessage) => void, onStatus: (s: string) => void, onSnapshot: (s: Snapshot) => void) => {
    queueMicrotask(() => {
      // The server shows a link its sandbox only.
      onSnapshot({ ...snapshot([sandbox('sb-1')], [approval(3, 'sb-1')]), human_requests: [humanRequest(5, 'sb-1')] });
      onStatus('open');
    });
    return () => undefined;
  },
  viewUrl: async () => {
    throw new Error('no viewer in tests');
  },
  pendingEgress,
  ledger,
  blob,
  network: vi.fn(async () => {
    throw new Error('not for links');
  }),
  listLinks: vi.fn(async () => []),
  notify: vi.fn(async () => undefined),
});

vi.mock('./lib/backend', async (orig) => ({ ...(await orig<typeof import('./lib/backend')>()), getBackend: () => Promise.resolve(fake) }));

const { App } = await import('./App');

const go = async (hash: string): Promise<void> => {
  await act(async () => {
    location.hash = hash;
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  });
};
const buttons = (): string[] => [...document.querySelectorAll('button')].map((b) => b.textContent?.trim() ?? '');

describe('a view link', () => {
  const root = document.createElement('div');
  beforeAll(async () => {
    document.body.append(root);
    location.hash = '#/session/sb-1';
    act(() => render(<App />, root));
    await vi.waitFor(() => expect(root.querySelector('[aria-label="Live screen of sb-1"]')).not.toBeNull());
  });
  afterAll(() => render(null, root));

  it('shows that one session, live screen and command view, marked view only', () => {
    expect(root.querySelector('[aria-label="Command view timeline"]')).not.toBeNull();
    expect(root.querySelector('.topbar')?.textContent).toContain('View only');
    expect(root.querySelector('h1')?.textContent).toBe('sb-1');
  });

  it('offers no way to the grid, inbox, ledger or policy, nor any button that changes something', () => {
    expect(root.querySelector('nav')).toBeNull();
    for (const b of ['Ledger', 'Take control', 'Pause agent', 'Share view-only link', 'Approve', 'Sign out']) expect(buttons()).not.toContain(b);
    expect(root.querySelector('[aria-label="Approval 3"]')).toBeNull();
    expect(root.querySelector('[aria-label="The agent asks for a human"]')).toBeNull();
  });

  it('stays on its session whatever the address says', async () => {
    await go('#/inbox');
    expect(root.querySelector('[aria-label="Live screen of sb-1"]')).not.toBeNull();
    expect(root.querySelector('[aria-label="Pending approvals"]')).toBeNull();
    await go('#/ledger');
    expect(root.querySelector('[aria-label="Ledger entries"]')).toBeNull();
  });

  it('never asks for what a link may not read (each refusal would go on the ledger)', () => {
    expect(pendingEgress).not.toHaveBeenCalled();
    expect(ledger).not.toHaveBeenCalled();
    expect(blob).not.toHaveBeenCalled();
  });

  it('shows the server message when the link has ended', async () => {
    act(() => {
      for (const fn of unauthorized) fn('view link l-1 was revoked by ana', 'link_ended');
    });
    const ended = root.querySelector('[aria-label="View link ended"]');
    expect(ended?.querySelector('[role="alert"]')?.textContent).toBe('view link l-1 was revoked by ana');
    expect(root.querySelector('[aria-label="Live screen of sb-1"]')).toBeNull();
  });
});
