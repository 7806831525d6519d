// @vitest-environment happy-dom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EgressAsk } from '../lib/api/types';
import type { Backend } from '../lib/backend';
import { ApiError } from '../lib/backend/errors';
import { apply, egressList, store } from '../lib/store';
import { egressAsk, ev, sandbox, snapshot, operator } from '../test/fixtures';
import type { CardCommand } from './ApprovalCard';
import { BackendContext } from './context';
import { EgressCard } from './EgressCard';

vi.mock('../lib/blobs', () => ({ useBlobUrl: () => ({ url: null, error: null }) }));

function fakeBackend(resolveEgress: Backend['resolveEgress']): Backend {
  return { kind: 'web', auth: null, resolveEgress } as unknown as Backend;
}

const flush = async (): Promise<void> => {
  await act(async () => {
    await new Promise((r) => setTimeout(r, 0));
  });
};

const ALLOW = { decision: 'allow', upload_budget: null } as const;

describe('EgressCard', () => {
  let root: HTMLElement;
  beforeEach(() => {
    root = document.createElement('div');
    document.body.append(root);
    store.dispatch({ type: 'snapshot', snapshot: snapshot([sandbox('sb-1')], []) });
    store.dispatch({ type: 'me', me: operator('ana') });
  });
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const live = (extra: Record<string, unknown> = {}): EgressAsk => egressAsk(12, 'sb-1', { deadline_ms: Date.now() + 42_000, ...extra });
  const mount = (b: Backend, a: EgressAsk = live(), command: CardCommand | null = null): void => {
    act(() => {
      render(
        <BackendContext.Provider value={b}>
          <EgressCard ask={a} command={command} />
        </BackendContext.Provider>,
        root,
      );
    });
  };
  const card = (): HTMLElement => {
    const c = root.querySelector<HTMLElement>('section[aria-label="Network ask"]');
    if (!c) throw new Error('no card');
    return c;
  };
  const button = (name: string | RegExp): HTMLButtonElement => {
    const b = [...root.querySelectorAll('button')].find((x) => {
      const t = x.textContent?.replace(/\s+/g, ' ').trim() ?? '';
      return typeof name === 'string' ? t === name : name.test(t);
    });
    if (!b) throw new Error(`no button ${String(name)}`);
    return b;
  };
  const input = (label: string): HTMLInputElement => {
    const i = [...root.querySelectorAll('label')].find((l) => l.textContent?.startsWith(label))?.querySelector('input');
    if (!i) throw new Error(`no input ${label}`);
    return i;
  };
  const type = (el: HTMLInputElement, value: string): void => {
    act(() => {
      el.value = value;
      el.dispatchEvent(new Event('input', { bubbles: true }));
    });
  };

  it('shows the destinations, the sandbox and agent, the protocol, the waiting count, the rules and the countdown', () => {
    mount(
      fakeBackend(vi.fn()),
      live({ destinations: [{ host: 'web.test', port: 80 }, { host: '2001:db8::1', port: 443 }], waiting: 3 }),
    );
    const c = card();
    expect(c.getAttribute('data-ask')).toBe('12');
    const dests = [...c.querySelectorAll('[aria-label="Destinations"] li')].map((l) => l.textContent);
    expect(dests).toEqual(['web.test:80', '[2001:db8::1]:443']);
    expect(c.textContent).toContain('sb-1');
    expect(c.textContent).toContain('claude');
    expect(c.textContent).toContain('HTTP (proxied request)');
    expect(c.textContent).toContain('3 connections wait');
    expect(c.textContent).toContain('a connection to a destination no rule names');
    expect(c.querySelector('.rule-id')?.textContent).toBe('new-destination');
    expect(c.textContent).toMatch(/Denies in 4[12] s/);
    expect(c.querySelector('[aria-label="Rule added to the policy"]')?.textContent).toContain(
      'permit (principal, action == Action::"connect", resource)',
    );
    expect(c.querySelector('.egress-frame')).not.toBeNull();
    for (const name of ['Allow once', 'Allow for 15 min', 'Allow for this sandbox', 'Add to policy', 'Deny']) {
      expect(button(name).disabled).toBe(false);
    }
    expect(input('Minutes').value).toBe('15');
  });

  it('says when no agent has acted yet, and shows the reason of an agent that asked ahead', () => {
    mount(fakeBackend(vi.fn()), live({ agent: '', protocol: null, waiting: 0, agent_reason: 'fetch the docs' }));
    expect(card().textContent).toContain('no agent yet');
    expect(card().querySelector('[aria-label="The agent\'s reason"]')?.textContent).toBe('fetch the docs');
    expect(card().textContent).toContain('asked ahead');
  });

  it('sends the scope each button names', async () => {
    const resolveEgress = vi.fn().mockResolvedValue(live({ state: { state: 'allowed', by: 'ana', scope: { kind: 'once' } } }));
    const b = fakeBackend(resolveEgress);
    const cases: [string, unknown][] = [
      ['Allow once', { ...ALLOW, scope: { kind: 'once' } }],
      ['Allow for 15 min', { ...ALLOW, scope: { kind: 'minutes', minutes: 15 } }],
      ['Allow for this sandbox', { ...ALLOW, scope: { kind: 'sandbox' } }],
      ['Add to policy', { ...ALLOW, scope: { kind: 'policy' } }],
    ];
    for (const [name, body] of cases) {
      render(null, root);
      mount(b);
      act(() => button(name).click());
      await flush();
      expect(resolveEgress).toHaveBeenLastCalledWith('sb-1', 12, body);
    }

    render(null, root);
    mount(b);
    type(input('Upload budget (KiB)'), '64');
    act(() => button('Allow once').click());
    await flush();
    expect(resolveEgress).toHaveBeenLastCalledWith('sb-1', 12, { ...ALLOW, scope: { kind: 'once' }, upload_budget: 65536 });

    render(null, root);
    mount(b);
    type(input('Minutes'), '90');
    act(() => button('Allow for 90 min').click());
    await flush();
    expect(resolveEgress).toHaveBeenLastCalledWith('sb-1', 12, { ...ALLOW, scope: { kind: 'minutes', minutes: 90 } });

    render(null, root);
    mount(b);
    const calls = resolveEgress.mock.calls.length;
    type(input('Minutes'), '0');
    act(() => button('Allow for N min').click());
    await flush();
    expect(resolveEgress).toHaveBeenCalledTimes(calls);
    expect(root.querySelector('[role="alert"]')?.textContent).toBe('Minutes must be a whole number from 1 to 1440.');
  });

  it('denies with an optional reason', async () => {
    const resolveEgress = vi.fn().mockResolvedValue(live({ state: { state: 'denied', by: 'ana', reason: null } }));
    mount(fakeBackend(resolveEgress));
    act(() => button('Deny').click());
    act(() => button('Confirm deny').click());
    await flush();
    expect(resolveEgress).toHaveBeenLastCalledWith('sb-1', 12, { decision: 'deny', reason: null });

    render(null, root);
    mount(fakeBackend(resolveEgress));
    act(() => button('Deny').click());
    type(input('Reason'), '  not for this task ');
    act(() => button('Confirm deny').click());
    await flush();
    expect(resolveEgress).toHaveBeenLastCalledWith('sb-1', 12, { decision: 'deny', reason: 'not for this task' });
  });

  it('cannot allow once an ask made ahead (no connection waits)', () => {
    mount(fakeBackend(vi.fn()), live({ protocol: null, waiting: 0, agent_reason: 'docs' }));
    expect(button('Allow once').disabled).toBe(true);
    expect(button('Allow once').title).toContain('asked ahead');
    expect(button('Allow for 15 min').disabled).toBe(false);
    expect(button('Add to policy').disabled).toBe(false);
  });

  it('offers only once and deny when the ask is not grantable', () => {
    mount(fakeBackend(vi.fn()), live({ grantable: false }));
    expect(button('Allow once').disabled).toBe(false);
    expect(button('Deny').disabled).toBe(false);
    for (const name of ['Allow for 15 min', 'Allow for this sandbox', 'Add to policy']) expect(button(name).disabled).toBe(true);
  });

  it('disables every answer once the deadline passed', () => {
    mount(fakeBackend(vi.fn()), live({ deadline_ms: Date.now() - 1 }));
    expect(card().textContent).toContain('Deadline passed');
    for (const name of ['Allow once', 'Allow for 15 min', 'Allow for this sandbox', 'Add to policy', 'Deny']) {
      expect(button(name).disabled).toBe(true);
    }
  });

  it('shows the server message when the answer is refused', async () => {
    const resolveEgress = vi.fn().mockRejectedValue(new ApiError(400, 'invalid_request', 'network ask 12 is already decided'));
    mount(fakeBackend(resolveEgress));
    act(() => button('Allow once').click());
    await flush();
    expect(root.querySelector('[role="alert"]')?.textContent).toBe('network ask 12 is already decided');
    expect(button('Allow once').disabled).toBe(false);
  });

  it('takes the inbox keys: approve allows once, deny opens the reason', async () => {
    const resolveEgress = vi.fn().mockResolvedValue(live({ state: { state: 'allowed', by: 'ana', scope: { kind: 'once' } } }));
    mount(fakeBackend(resolveEgress), live(), { kind: 'approve', n: 1 });
    await flush();
    expect(resolveEgress).toHaveBeenLastCalledWith('sb-1', 12, { ...ALLOW, scope: { kind: 'once' } });

    render(null, root);
    mount(fakeBackend(resolveEgress), live(), { kind: 'deny', n: 2 });
    expect(input('Reason')).toBeTruthy();

    render(null, root);
    const calls = resolveEgress.mock.calls.length;
    mount(fakeBackend(resolveEgress), live({ protocol: null }), { kind: 'approve', n: 3 });
    await flush();
    expect(resolveEgress).toHaveBeenCalledTimes(calls);
    expect(root.querySelector('[role="alert"]')?.textContent).toContain('asked ahead');
  });

  it('the answer removes the ask from the store', async () => {
    const ask = egressAsk(40, 'sb-1', { deadline_ms: Date.now() + 42_000 });
    store.dispatch({ type: 'event', message: ev({ type: 'egress_asked', ask }) });
    expect(egressList(store.get(), 'sb-1').map((a) => Number(a.id))).toEqual([40]);
    const resolveEgress = vi.fn().mockResolvedValue({ ...ask, state: { state: 'allowed', by: 'ana', scope: { kind: 'sandbox' } } });
    mount(fakeBackend(resolveEgress), ask);
    act(() => button('Allow for this sandbox').click());
    await flush();
    expect(egressList(store.get(), 'sb-1')).toHaveLength(0);
    // a late re-send of the same ask does not bring it back
    expect(egressList(apply(store.get(), ev({ type: 'egress_asked', ask: { ...ask, waiting: 3 } })))).toHaveLength(0);
  });
});
