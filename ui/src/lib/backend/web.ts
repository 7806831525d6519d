// The browser backend: `airlock serve`'s operator API on the same origin, the operator token as a
// bearer token, events over `/api/events`, notifications through the Notification API.

import type {
  Approval,
  CreateRequest,
  CreatedLink,
  EgressAsk,
  EgressResolution,
  Entry,
  EventMessage,
  FileListing,
  FileWritten,
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
  ViewLink,
} from '../api/types';
import { backoffDelay } from '../backoff';
import { ApiError, errorFromResponse, toApiError } from './errors';
import { dispositionName } from '../files';
import { sharedLink, type Auth, type Backend, type Download, type SharedLink, type StreamStatus, type UploadProgress } from './index';

/** The operator's own token, kept across visits. */
const TOKEN_KEY = 'airlock.operatorToken';
/**
 * A token that came in the address (a view link, or an operator's link to the console), kept for
 * this tab only until the server says it reaches every sandbox: a view link opened in a browser
 * never replaces the operator token stored there.
 */
const TAB_TOKEN_KEY = 'airlock.tabToken';

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
      human_requests: Array.isArray(v.human_requests) ? v.human_requests : [],
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
  /** Where the token in use is kept: `stored` (localStorage) or `tab` (sessionStorage). */
  private where: 'stored' | 'tab';
  private readonly listeners = new Set<(message: string, code: string) => void>();
  private readonly backend: () => WebBackend;

  constructor(backend: () => WebBackend) {
    this.backend = backend;
    const tab = readKey(sessionStore(), TAB_TOKEN_KEY);
    this.where = tab ? 'tab' : 'stored';
    this.token = tab ?? readKey(localStore(), TOKEN_KEY);
    if (typeof location !== 'undefined' && typeof history !== 'undefined') {
      const { token, rest } = takeTokenFromHash(location.hash);
      if (token) {
        this.keep(token, 'tab');
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
    this.keep(t, 'tab');
    try {
      return await this.backend().me();
    } catch (e) {
      const err = toApiError(e);
      if (err.unauthorized) this.forget();
      throw err.unauthorized && err.code !== 'link_ended' ? new ApiError(401, 'unauthorized', 'That token was refused by the server.') : err;
    }
  }

  signOut(): void {
    this.forget();
  }

  onUnauthorized(fn: (message: string, code: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  refused(message: string, code: string): void {
    this.forget();
    for (const fn of this.listeners) fn(message, code);
  }

  /**
   * What the server said the token in use is: a tab token that reaches every sandbox is an
   * operator's, and is kept across visits from now on; a view link's stays in this tab.
   */
  learnt(me: Me): void {
    if (this.where !== 'tab' || !this.token || me.scope?.kind === 'sandbox') return;
    const token = this.token;
    removeKey(sessionStore(), TAB_TOKEN_KEY);
    this.keep(token, 'stored');
  }

  private keep(token: string, where: 'stored' | 'tab'): void {
    this.token = token;
    this.where = where;
    // Unavailable storage keeps it for this page only.
    if (where === 'tab') writeKey(sessionStore(), TAB_TOKEN_KEY, token);
    else writeKey(localStore(), TOKEN_KEY, token);
  }

  /** Forgets the token in use, and only it (a refused view link leaves the stored token alone). */
  private forget(): void {
    this.token = null;
    if (this.where === 'tab') removeKey(sessionStore(), TAB_TOKEN_KEY);
    else removeKey(localStore(), TOKEN_KEY);
  }
}

function localStore(): Storage | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}

function sessionStore(): Storage | null {
  try {
    return typeof sessionStorage === 'undefined' ? null : sessionStorage;
  } catch {
    return null;
  }
}

function readKey(st: Storage | null, key: string): string | null {
  try {
    return st?.getItem(key) || null;
  } catch {
    return null;
  }
}

function writeKey(st: Storage | null, key: string, value: string): void {
  try {
    st?.setItem(key, value);
  } catch {
    /* storage unavailable */
  }
}

function removeKey(st: Storage | null, key: string): void {
  try {
    st?.removeItem(key);
  } catch {
    /* storage unavailable */
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
      if (res.status === 401) this.auth.refused(err.message, err.code);
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

  async me(): Promise<Me> {
    const me = await this.json<Me>('GET', '/me');
    this.auth.learnt(me);
    return me;
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

  async createLink(sandbox: string, ttlS?: number): Promise<SharedLink> {
    const made = await this.json<CreatedLink>(
      'POST',
      `/sandboxes/${encodeURIComponent(sandbox)}/links`,
      ttlS === undefined ? {} : { ttl_s: ttlS },
    );
    return sharedLink(made, location.origin);
  }
  listLinks(): Promise<ViewLink[]> {
    return this.json('GET', '/links');
  }
  revokeLink(link: string): Promise<ViewLink> {
    return this.json('DELETE', `/links/${encodeURIComponent(link)}`);
  }

  listFiles(sandbox: string, path: string): Promise<FileListing> {
    return this.json('GET', `/sandboxes/${encodeURIComponent(sandbox)}/files/list?path=${encodeURIComponent(path)}`);
  }
  async downloadFile(sandbox: string, path: string): Promise<Download> {
    const res = await this.request('GET', `/sandboxes/${encodeURIComponent(sandbox)}/files?path=${encodeURIComponent(path)}`);
    return { blob: await res.blob(), name: dispositionName(res.headers.get('Content-Disposition')) };
  }
  /** XMLHttpRequest rather than fetch: only it reports upload progress. */
  uploadFile(sandbox: string, path: string, data: Blob, mode: number, onProgress?: UploadProgress): Promise<FileWritten> {
    const url = `api/sandboxes/${encodeURIComponent(sandbox)}/files?path=${encodeURIComponent(path)}&mode=${mode.toString(8)}`;
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      const token = this.auth.current;
      if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.onprogress = (e: ProgressEvent) => onProgress?.(e.loaded, e.lengthComputable ? e.total : data.size);
      xhr.onerror = () => reject(new ApiError(0, 'network', 'Cannot reach the Airlock server: the upload was cut off.'));
      xhr.onabort = () => reject(new ApiError(0, 'aborted', 'The upload was cancelled.'));
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(JSON.parse(xhr.responseText) as FileWritten);
          } catch (e) {
            reject(new ApiError(xhr.status, 'bad_response', `The server sent an unreadable answer: ${toApiError(e).message}`));
          }
          return;
        }
        const err = errorFromResponse(xhr.status, xhr.statusText, xhr.responseText);
        if (xhr.status === 401) this.auth.refused(err.message, err.code);
        reject(err);
      };
      xhr.send(data);
    });
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
