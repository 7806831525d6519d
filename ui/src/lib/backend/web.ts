// The browser backend: `airlock serve`'s operator API on the same origin, the operator token as a
// bearer token, events over `/api/events`, notifications through the Notification API.

import type {
  Approval,
  CreateRequest,
  EgressAsk,
  EgressResolution,
  Entry,
  EventMessage,
  LeaseChange,
  LeaseRequest,
  LedgerQuery,
  Me,
  Mode,
  NetworkView,
  PolicyView,
  ResolveRequest,
  SandboxInfo,
  Snapshot,
  VerifyReport,
} from '../api/types';
import { backoffDelay } from '../backoff';
import { ApiError, errorFromResponse, toApiError } from './errors';
import type { Auth, Backend, StreamStatus } from './index';

const TOKEN_KEY = 'airlock.operatorToken';

/** Reads `token=…` from a location hash (`#token=T` or `#/route?token=T`); returns the token and the hash without it. */
export function takeTokenFromHash(hash: string): { token: string | null; rest: string } {
  const h = hash.replace(/^#/, '');
  const q = h.indexOf('?');
  const [path, query] = h.startsWith('token=') ? ['', h] : q >= 0 ? [h.slice(0, q), h.slice(q + 1)] : [h, ''];
  if (!query) return { token: null, rest: hash };
  const params = new URLSearchParams(query);
  const token = params.get('token');
  if (!token) return { token: null, rest: hash };
  params.delete('token');
  const left = params.toString();
  const rest = path + (left ? `?${left}` : '');
  return { token, rest: rest ? `#${rest}` : '' };
}

/** The query string of a ledger page request. */
export function ledgerSearch(q: LedgerQuery): string {
  const p = new URLSearchParams();
  if (q.sandbox) p.set('sandbox', q.sandbox);
  if (q.after !== null && q.after !== undefined) p.set('after', String(q.after));
  if (q.limit !== null && q.limit !== undefined) p.set('limit', String(q.limit));
  if (q.kind && q.kind.length > 0) p.set('kind', q.kind.join(','));
  const s = p.toString();
  return s ? `?${s}` : '';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Classifies one text message from the events socket. */
export function parseEventsMessage(
  text: string,
):
  | { kind: 'snapshot'; snapshot: Snapshot }
  | { kind: 'event'; message: EventMessage }
  | { kind: 'lagged'; missed: number }
  | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObj(v)) return null;
  if (v.type === 'snapshot') {
    if (!Array.isArray(v.sandboxes)) return null;
    const snapshot = {
      sandboxes: v.sandboxes,
      pending: Array.isArray(v.pending) ? v.pending : [],
      mode: v.mode === 'shadow' ? 'shadow' : 'enforce',
    } as unknown as Snapshot;
    return { kind: 'snapshot', snapshot };
  }
  if (v.type === 'lagged') return { kind: 'lagged', missed: typeof v.missed === 'number' ? v.missed : 0 };
  if (typeof v.topic === 'string' && isObj(v.event) && typeof v.event.type === 'string') {
    return { kind: 'event', message: v as unknown as EventMessage };
  }
  return null;
}

class WebAuth implements Auth {
  private token: string | null;
  private readonly listeners = new Set<(message: string) => void>();
  private readonly backend: () => WebBackend;

  constructor(backend: () => WebBackend) {
    this.backend = backend;
    this.token = readStored();
    if (typeof location !== 'undefined' && typeof history !== 'undefined') {
      const { token, rest } = takeTokenFromHash(location.hash);
      if (token) {
        this.store(token);
        history.replaceState(null, '', `${location.pathname}${location.search}${rest || '#/grid'}`);
      }
    }
  }

  get current(): string | null {
    return this.token;
  }

  hasToken(): boolean {
    return this.token !== null && this.token !== '';
  }

  async signIn(token: string): Promise<Me> {
    const t = token.trim();
    if (!t) throw new ApiError(0, 'invalid_request', 'Enter the operator token.');
    this.store(t);
    try {
      return await this.backend().me();
    } catch (e) {
      const err = toApiError(e);
      if (err.unauthorized) this.forget();
      throw err.unauthorized ? new ApiError(401, 'unauthorized', 'That token was refused by the server.') : err;
    }
  }

  signOut(): void {
    this.forget();
  }

  onUnauthorized(fn: (message: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  refused(message: string): void {
    this.forget();
    for (const fn of this.listeners) fn(message);
  }

  private store(token: string): void {
    this.token = token;
    try {
      localStorage.setItem(TOKEN_KEY, token);
    } catch {
      /* storage unavailable: keep it for this page only */
    }
  }

  private forget(): void {
    this.token = null;
    try {
      localStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage unavailable */
    }
  }
}

function readStored(): string | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

class WebBackend implements Backend {
  readonly kind = 'web' as const;
  readonly auth: WebAuth;

  constructor() {
    this.auth = new WebAuth(() => this);
    if (typeof window !== 'undefined') {
      // Browsers grant notification permission only from a user gesture: ask on the first one.
      const ask = (): void => {
        window.removeEventListener('pointerdown', ask, true);
        window.removeEventListener('keydown', ask, true);
        if (typeof Notification !== 'undefined' && Notification.permission === 'default') {
          Notification.requestPermission().catch(() => undefined);
        }
      };
      window.addEventListener('pointerdown', ask, true);
      window.addEventListener('keydown', ask, true);
    }
  }

  private async request(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    const token = this.auth.current;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`api${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'network', `Cannot reach the Airlock server: ${toApiError(e).message}`);
    }
    if (!res.ok) {
      let text = '';
      try {
        text = await res.text();
      } catch {
        /* no body */
      }
      const err = errorFromResponse(res.status, res.statusText, text);
      if (res.status === 401) this.auth.refused(err.message);
      throw err;
    }
    return res;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    try {
      return (await res.json()) as T;
    } catch (e) {
      throw new ApiError(res.status, 'bad_response', `The server sent an unreadable answer: ${toApiError(e).message}`);
    }
  }

  me(): Promise<Me> {
    return this.json('GET', '/me');
  }
  snapshot(): Promise<Snapshot> {
    return this.json('GET', '/snapshot');
  }
  listSandboxes(): Promise<SandboxInfo[]> {
    return this.json('GET', '/sandboxes');
  }
  createSandbox(req: CreateRequest): Promise<SandboxInfo> {
    return this.json('POST', '/sandboxes', req);
  }
  async destroySandbox(id: string): Promise<void> {
    await this.request('DELETE', `/sandboxes/${encodeURIComponent(id)}`);
  }
  lease(id: string, req: LeaseRequest): Promise<LeaseChange> {
    return this.json('POST', `/sandboxes/${encodeURIComponent(id)}/lease`, req);
  }
  resolve(id: string, approvalId: number, req: ResolveRequest): Promise<Approval> {
    return this.json('POST', `/sandboxes/${encodeURIComponent(id)}/approvals/${approvalId}`, req);
  }
  pending(): Promise<Approval[]> {
    return this.json('GET', '/approvals');
  }
  pendingEgress(): Promise<EgressAsk[]> {
    return this.json('GET', '/egress');
  }
  resolveEgress(sandbox: string, askId: number, resolution: EgressResolution): Promise<EgressAsk> {
    return this.json('POST', `/sandboxes/${encodeURIComponent(sandbox)}/egress/${askId}`, resolution);
  }
  network(sandbox: string): Promise<NetworkView> {
    return this.json('GET', `/sandboxes/${encodeURIComponent(sandbox)}/network`);
  }
  ledger(q: LedgerQuery): Promise<Entry[]> {
    return this.json('GET', `/ledger${ledgerSearch(q)}`);
  }
  verifyLedger(): Promise<VerifyReport> {
    return this.json('GET', '/ledger/verify');
  }
  async exportLedger(): Promise<string> {
    return (await this.request('GET', '/ledger/export')).text();
  }
  async blob(hash: string): Promise<Blob> {
    return (await this.request('GET', `/blobs/${encodeURIComponent(hash)}`)).blob();
  }
  policy(): Promise<PolicyView> {
    return this.json('GET', '/policy');
  }
  async setMode(mode: Mode): Promise<void> {
    await this.request('POST', '/policy/mode', { mode });
  }

  private wsBase(): string {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // Relative to the page, so a console served under a path prefix still finds its API.
    const dir = location.pathname.replace(/[^/]*$/, '');
    return `${proto}//${location.host}${dir}api`;
  }

  async viewUrl(sandboxId: string): Promise<string> {
    const token = this.auth.current ?? '';
    return `${this.wsBase()}/sandboxes/${encodeURIComponent(sandboxId)}/view?token=${encodeURIComponent(token)}`;
  }

  async notify(title: string, body: string): Promise<void> {
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    try {
      const n = new Notification(title, { body, tag: `airlock-${title}` });
      n.onclick = () => {
        window.focus();
        n.close();
      };
    } catch {
      /* some browsers only allow notifications from a service worker */
    }
  }

  subscribe(
    onEvent: (m: EventMessage) => void,
    onStatus: (s: StreamStatus) => void,
    onSnapshot: (s: Snapshot) => void,
  ): () => void {
    let stopped = false;
    let ws: WebSocket | null = null;
    let attempt = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;

    // After a lag the snapshot is fetched again; events arriving meanwhile are held and applied
    // after it (it replaces state, so applying them first would lose those it predates).
    let held: EventMessage[] | null = null;
    let generation = 0; // bumped by every snapshot source, so a stale refetch is dropped
    const deliver = (m: EventMessage): void => {
      if (held) held.push(m);
      else onEvent(m);
    };
    const refetch = (): void => {
      if (held) return; // one is on its way already
      held = [];
      const mine = ++generation;
      const release = (): void => {
        if (mine !== generation) return; // superseded by a reconnection's snapshot
        const replay = held ?? [];
        held = null;
        for (const m of replay) {
          try {
            onEvent(m);
          } catch (e) {
            console.error('[airlock] event handling failed', e);
          }
        }
      };
      this.snapshot().then(
        (s) => {
          if (!stopped && mine === generation) onSnapshot(s);
          release();
        },
        (e: unknown) => {
          console.warn('[airlock] snapshot refetch failed:', toApiError(e).message);
          release();
        },
      );
    };

    const connect = (): void => {
      if (stopped) return;
      onStatus('connecting');
      const token = this.auth.current ?? '';
      let opened = false;
      let sock: WebSocket;
      try {
        sock = new WebSocket(`${this.wsBase()}/events?token=${encodeURIComponent(token)}`);
      } catch (e) {
        console.warn('[airlock] events socket:', toApiError(e).message);
        retry();
        return;
      }
      ws = sock;
      sock.onopen = () => {
        opened = true;
      };
      sock.onmessage = (ev: MessageEvent) => {
        if (stopped || typeof ev.data !== 'string') return;
        const m = parseEventsMessage(ev.data);
        if (!m) return;
        try {
          if (m.kind === 'snapshot') {
            attempt = 0;
            held = null; // a fresh connection's snapshot supersedes a refetch on its way
            generation++;
            onSnapshot(m.snapshot);
            onStatus('open');
          } else if (m.kind === 'event') deliver(m.message);
          else refetch();
        } catch (e) {
          console.error('[airlock] event handling failed', e);
        }
      };
      sock.onerror = () => {
        /* a close event follows */
      };
      sock.onclose = () => {
        if (ws !== sock) return;
        ws = null;
        if (stopped) return;
        onStatus('closed');
        // A refused upgrade looks like any other close: ask the API whether the token still works.
        if (!opened) this.me().catch(() => undefined);
        retry();
      };
    };

    const retry = (): void => {
      if (stopped) return;
      if (!this.auth.hasToken()) return; // signed out: the sign-in screen takes over
      onStatus('closed');
      clearTimeout(timer);
      timer = setTimeout(connect, backoffDelay(attempt++));
    };

    connect();
    return () => {
      stopped = true;
      clearTimeout(timer);
      const s = ws;
      ws = null;
      try {
        s?.close(1000, 'console closed');
      } catch {
        /* closed */
      }
    };
  }
}

export function createWebBackend(): Backend {
  return new WebBackend();
}
