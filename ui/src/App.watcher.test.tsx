// @vitest-environment happy-dom
// A watcher's console: everything is shown, nothing that would change anything is offered.
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Backend } from './lib/backend';
import type { EventMessage, Snapshot } from './lib/api/types';
import { approval, cast, egressAsk, humanRequest, networkView, operator, sandbox, snapshot } from './test/fixtures';

const listLinks = vi.fn(async () => []);
const fake = cast<Backend>({
  kind: 'web',
  auth: null,
  me: async () => operator('wes', 'watcher'),
  subscribe: (_onEvent: (m: EventMessage) => void, onStatus: (s: string) => void, onSnapshot: (s: Snapshot) => void) => {
    queueMicrotask(() => {
      onSnapshot({ ...snapshot([sandbox('sb-1')], [approval(3, 'sb-1')]), human_requests: [humanRequest(5, 'sb-1')] });
      onStatus('open');
    });
    return () => undefined;
  },
  viewUrl: async () => {
    throw new Error('no viewer in tests');
  },
  pendingEgress: async () => [egressAsk(8, 'sb-1', { deadline_ms: Date.now() + 60_000 })],
  network: async () => networkView(),
  policy: async () => ({ version: 'abc', default: 'ask', mode: 'enforce', text: '' }),
  blob: async () => new Blob([]),
  listLinks,
  notify: vi.fn(async () => undefined),
});

vi.mock('./lib/backend', async (orig) => ({ ...(await orig<typeof import('./lib/backend')>()), getBackend: () => Promise.resolve(fake) }));
vi.mock('./lib/blobs', () => ({ useBlobUrl: () => ({ url: null, error: null }) }));

const { App } = await import('./App');

const go = async (hash: string): Promise<void> => {
  await act(async () => {
    location.hash = hash;
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  });
};
const buttons = (): string[] => [...document.querySelectorAll('button')].map((b) => b.textContent?.trim() ?? '');

describe('a watcher', () => {
  const root = document.createElement('div');
  beforeAll(async () => {
    document.body.append(root);
    location.hash = '#/grid';
    act(() => render(<App />, root));
    await vi.waitFor(() => expect(root.querySelector('[aria-label="Sandbox sb-1"]')).not.toBeNull());
  });
  afterAll(() => render(null, root));

  it('is told the console is view only', () => {
    expect(root.querySelector('.topbar')?.textContent).toContain('View only');
  });

  it('sees the sandboxes but cannot create, destroy, pause or resume them', () => {
    expect(buttons()).toContain('Open');
    for (const b of ['New sandbox', 'Destroy', 'Pause agent', 'Resume agent']) expect(buttons()).not.toContain(b);
  });

  it('sees approvals, network asks and requests for a human read-only in the inbox', async () => {
    await go('#/inbox');
    await vi.waitFor(() => expect(document.querySelector('[aria-label="Network request 8 in sb-1"]')).not.toBeNull());
    expect(document.querySelector('[aria-label="Approval 3"]')?.textContent).toContain('view only');
    for (const b of ['Approve', 'Edit', 'Deny', 'Allow similar']) expect(buttons()).not.toContain(b);
    act(() => (document.querySelector('[aria-label="Network request 8 in sb-1"]') as HTMLElement).click());
    expect(document.querySelector('section[aria-label="Network ask"]')?.textContent).toContain('view only');
    for (const b of ['Allow once', 'Allow for this sandbox', 'Add to policy', 'Deny']) expect(buttons()).not.toContain(b);
    act(() => (document.querySelector('[aria-label="Human request 5 in sb-1"]') as HTMLElement).click());
    expect(document.querySelector('section[aria-label="Human request 5 in sb-1"]')?.textContent).toContain('The site wants a login');
    expect(buttons()).not.toContain('Take control');
  });

  it('watches a session without take-over, hand-back, pause, links or files', async () => {
    await go('#/session/sb-1');
    expect(document.querySelector('[aria-label="Live screen of sb-1"]')).not.toBeNull();
    for (const b of ['Take control', 'Hand back', 'Pause agent', 'Share view-only link', 'Upload']) expect(buttons()).not.toContain(b);
    expect(document.querySelector('[aria-label="View links"]')).toBeNull();
    expect(document.querySelector('[aria-label="Files"]')).toBeNull();
    expect(listLinks).not.toHaveBeenCalled();
    // the request for a human shows as a banner, read-only
    expect(document.querySelector('[aria-label="The agent asks for a human"]')?.textContent).toContain('Log in');
  });

  it('sees the policy mode without the switch', async () => {
    await go('#/policy');
    expect(root.textContent).toContain('Enforce');
    expect(document.querySelector('[role="switch"]')).toBeNull();
  });
});
