// @vitest-environment happy-dom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Backend } from '../lib/backend';
import { ApiError } from '../lib/backend/errors';
import { store } from '../lib/store';
import { egressAsk, ev, networkView, sandbox, snapshot } from '../test/fixtures';
import { BackendContext } from './context';
import { NetworkPanel } from './NetworkPanel';

const tick = async (ms = 0): Promise<void> => {
  await act(async () => {
    await new Promise((r) => setTimeout(r, ms));
  });
};

const rows = (root: Element, label: string): string[][] =>
  [...root.querySelectorAll(`table[aria-label="${label}"] tbody tr`)].map((tr) =>
    [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? ''),
  );

describe('NetworkPanel', () => {
  let root: HTMLElement;
  beforeEach(() => {
    root = document.createElement('div');
    document.body.append(root);
    store.dispatch({ type: 'snapshot', snapshot: snapshot([sandbox('sb-1')], []) });
  });
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const mount = (network: Backend['network']): void => {
    const b = { kind: 'web', auth: null, network } as unknown as Backend;
    act(() => {
      render(
        <BackendContext.Provider value={b}>
          <NetworkPanel sandbox="sb-1" />
        </BackendContext.Provider>,
        root,
      );
    });
  };

  it('renders destinations, grants and refused DNS lookups', async () => {
    const network = vi.fn().mockResolvedValue(networkView({ asks: [egressAsk(4, 'sb-1', { destinations: [{ host: 'new.test', port: 443 }] })] }));
    mount(network);
    await tick();
    expect(network).toHaveBeenCalledWith('sb-1');
    const panel = root.querySelector('section[aria-label="Network"]');
    expect(panel).not.toBeNull();
    expect(rows(root, 'Destinations')).toEqual([
      ['web.test:80', 'allowed', 'test-upstreams', '3', '1', '120 B', '2.1 KB', '12 s ago'],
      ['pastebin.com:443', 'denied', 'exfiltration-helpers', '1', '0', '0 B', '0 B', '5 s ago'],
    ]);
    const grants = rows(root, 'Grants');
    expect(grants[0]).toEqual(['api.test:443', 'ana', 'sandbox life']);
    expect(grants[1]?.slice(0, 2)).toEqual(['cdn.test:443', 'bo']);
    expect(grants[1]?.[2]).toMatch(/\d\d:\d\d:\d\d \(10 min left\)/);
    expect(rows(root, 'Refused DNS lookups')).toEqual([['exfil.test', '1000', 'a1.exfil.test, a2.exfil.test, a3.exfil.test']]);
    expect(panel?.textContent).toContain('7 more lookups not listed');
    expect(panel?.textContent).toContain('Waiting for you: new.test:443');
  });

  it('says when nothing happened yet', async () => {
    mount(vi.fn().mockResolvedValue(networkView({ destinations: [], grants: [], dns_refused: [], dns_unlisted: 0 })));
    await tick();
    const text = root.textContent ?? '';
    expect(text).toContain('No connection tried yet.');
    expect(text).toContain('No grants');
    expect(text).toContain('None refused.');
  });

  it('reads again when a network event for the sandbox arrives', async () => {
    const network = vi.fn().mockResolvedValue(networkView());
    mount(network);
    await tick();
    expect(network).toHaveBeenCalledTimes(1);
    act(() => store.dispatch({ type: 'event', message: ev({ type: 'egress', sandbox: 'other', record: { event: 'dns_refused', groups: [], unlisted: 1 } }) }));
    await tick(600);
    expect(network).toHaveBeenCalledTimes(1);
    act(() => store.dispatch({ type: 'event', message: ev({ type: 'egress', sandbox: 'sb-1', record: { event: 'dns_refused', groups: [], unlisted: 1 } }) }));
    await tick(600);
    expect(network).toHaveBeenCalledTimes(2);
  });

  it('explains a sandbox without an egress gateway', async () => {
    mount(vi.fn().mockRejectedValue(new ApiError(404, 'unknown_sandbox', 'no sandbox sb-1 is supervised here')));
    await tick();
    expect(root.querySelector('[role="alert"]')?.textContent).toContain('no egress gateway for sb-1');
  });
});
