// @vitest-environment happy-dom
// Tokens in the browser: one that arrives in the address stays in its tab until the server says
// it reaches every sandbox, so a view link never replaces the operator token stored there.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Me } from '../api/types';
import { createWebBackend } from './web';

const OP_KEY = 'airlock.operatorToken';
const TAB_KEY = 'airlock.tabToken';

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

describe('web sign-in', () => {
  let reply: (token: string | null) => Response;
  beforeEach(() => {
    localStorage.clear();
    sessionStorage.clear();
    vi.stubGlobal(
      'fetch',
      vi.fn(async (_url: string, init: RequestInit) => {
        const auth = (init.headers as Record<string, string>).Authorization ?? null;
        return reply(auth ? auth.replace(/^Bearer /, '') : null);
      }),
    );
  });
  afterEach(() => vi.unstubAllGlobals());

  const me = (scope: Me['scope'], role: Me['role'] = 'watcher'): Me => ({ operator: 'x', role, scope });

  it('keeps a view link token in its tab and leaves the stored operator token alone', async () => {
    localStorage.setItem(OP_KEY, 'OP');
    history.replaceState(null, '', '/#/session/sb-1?token=LINK');
    reply = (t) => (t === 'LINK' ? answer(200, me({ kind: 'sandbox', sandbox: 'sb-1' })) : answer(401, {}));
    const b = createWebBackend();
    expect(location.hash).toBe('#/session/sb-1');
    await b.me();
    expect(sessionStorage.getItem(TAB_KEY)).toBe('LINK');
    expect(localStorage.getItem(OP_KEY)).toBe('OP');
  });

  it('forgets an ended link, says why, and still leaves the operator token alone', async () => {
    localStorage.setItem(OP_KEY, 'OP');
    history.replaceState(null, '', '/#/session/sb-1?token=LINK');
    reply = () => answer(401, { code: 'link_ended', message: 'view link l-1 expired' });
    const b = createWebBackend();
    const told = vi.fn();
    b.auth?.onUnauthorized(told);
    await expect(b.me()).rejects.toMatchObject({ code: 'link_ended', message: 'view link l-1 expired' });
    expect(told).toHaveBeenCalledWith('view link l-1 expired', 'link_ended');
    expect(sessionStorage.getItem(TAB_KEY)).toBeNull();
    expect(localStorage.getItem(OP_KEY)).toBe('OP');
  });

  it('keeps a token from the address for later visits once the server says it reaches every sandbox', async () => {
    history.replaceState(null, '', '/#token=NEWOP');
    reply = (t) => (t === 'NEWOP' ? answer(200, me({ kind: 'all' }, 'operator')) : answer(401, {}));
    const b = createWebBackend();
    await b.me();
    expect(localStorage.getItem(OP_KEY)).toBe('NEWOP');
    expect(sessionStorage.getItem(TAB_KEY)).toBeNull();
  });

  it('uses the stored operator token when the address brings none', async () => {
    localStorage.setItem(OP_KEY, 'OP');
    history.replaceState(null, '', '/#/grid');
    reply = (t) => (t === 'OP' ? answer(200, me({ kind: 'all' }, 'admin')) : answer(401, {}));
    await expect(createWebBackend().me()).resolves.toMatchObject({ role: 'admin' });
  });
});
