// The one place that knows whether the console runs inside the desktop app (Tauri commands and
// events) or in a browser against `airlock serve` (HTTP + WebSocket). Everything else talks to a
// `Backend`.

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

export { ApiError, errorMessage, toApiError } from './errors';

export type StreamStatus = 'connecting' | 'open' | 'closed';

/** A view link as made, with the whole URL that opens it (its token inside: shown once). */
export interface SharedLink {
  link: ViewLink;
  token: string;
  /** The address to hand out: the console on that sandbox alone, view only. */
  url: string;
}

/** A file (or a folder as a tar archive) read out of a sandbox. */
export interface Download {
  blob: Blob;
  /** The name the server gave it (`Content-Disposition`), if any. */
  name: string | null;
}

/** Upload progress: bytes sent of the total. */
export type UploadProgress = (sent: number, total: number) => void;

/**
 * A link as the server made it, its `path` made a whole URL against `origin` (null: the path is
 * whole already, as the desktop app gives it).
 */
export function sharedLink(made: CreatedLink, origin: string | null): SharedLink {
  let url = made.path;
  if (origin !== null) {
    try {
      url = new URL(made.path, origin).href;
    } catch {
      /* not a path the origin can take: hand it out as it came */
    }
  }
  return { link: made.link, token: made.token, url };
}

export interface Backend {
  readonly kind: 'tauri' | 'web';
  me(): Promise<Me>;
  snapshot(): Promise<Snapshot>;
  listSandboxes(): Promise<SandboxInfo[]>;
  createSandbox(req: CreateRequest): Promise<SandboxInfo>;
  destroySandbox(id: string): Promise<void>;
  lease(id: string, req: LeaseRequest): Promise<LeaseChange>;
  resolve(id: string, approvalId: number, req: ResolveRequest): Promise<Approval>;
  pending(): Promise<Approval[]>;
  /** Every pending network ask, across sandboxes (the snapshot does not carry them). */
  pendingEgress(): Promise<EgressAsk[]>;
  /** An operator's answer to a network ask; resolves to the ask in its final state. */
  resolveEgress(sandbox: string, askId: number, resolution: EgressResolution): Promise<EgressAsk>;
  /** A sandbox's network: destinations, pending asks, grants, refused DNS lookups. */
  network(sandbox: string): Promise<NetworkView>;
  ledger(q: LedgerQuery): Promise<Entry[]>;
  verifyLedger(): Promise<VerifyReport>;
  /** Every entry as JSON Lines. */
  exportLedger(): Promise<string>;
  /** A stored still (PNG or WebP) by its hex SHA-256. */
  blob(hash: string): Promise<Blob>;
  policy(): Promise<PolicyView>;
  setMode(mode: Mode): Promise<void>;
  /** A view-only link to one sandbox, working for `ttlS` seconds (the server's default: an hour). */
  createLink(sandbox: string, ttlS?: number): Promise<SharedLink>;
  /** The view links still working. */
  listLinks(): Promise<ViewLink[]>;
  /** Ends a view link at once (its viewers' sockets close); resolves to the link as it ended. */
  revokeLink(link: string): Promise<ViewLink>;
  /** A directory in a sandbox. */
  listFiles(sandbox: string, path: string): Promise<FileListing>;
  /** Writes `data` to `path` in a sandbox (1 GiB at most) with permission bits `mode`. */
  uploadFile(sandbox: string, path: string, data: Blob, mode: number, onProgress?: UploadProgress): Promise<FileWritten>;
  /** A file's bytes, or a folder as a tar archive. */
  downloadFile(sandbox: string, path: string): Promise<Download>;
  /**
   * Follows the supervisor's events. `onSnapshot` receives the full state at every (re)connection
   * and after a lag (it REPLACES what the caller holds); `onEvent` every event in between.
   * Returns the unsubscribe function.
   */
  subscribe(
    onEvent: (m: EventMessage) => void,
    onStatus: (s: StreamStatus) => void,
    onSnapshot: (s: Snapshot) => void,
  ): () => void;
  /** The viewer WebSocket URL of a sandbox (token included). */
  viewUrl(sandboxId: string): Promise<string>;
  /** A desktop notification (best effort: resolves even when notifications are refused). */
  notify(title: string, body: string): Promise<void>;
  /** Browser only: the sign-in state. The desktop app is always signed in. */
  readonly auth: Auth | null;
}

/** Token sign-in (browser against `airlock serve`). */
export interface Auth {
  /** Whether a token is stored. */
  hasToken(): boolean;
  /** Stores the token and checks it; rejects (and forgets it) when the server refuses it. */
  signIn(token: string): Promise<Me>;
  /** Forgets the token. */
  signOut(): void;
  /**
   * Called when the server refuses the token in use (401), with its message and code
   * (`link_ended` for an expired or revoked view link).
   */
  onUnauthorized(fn: (message: string, code: string) => void): () => void;
}

let chosen: Promise<Backend> | null = null;

/** The backend for this window: Tauri's when running inside the desktop app, else the web one. */
export function getBackend(): Promise<Backend> {
  chosen ??=
    typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window
      ? import('./tauri').then((m) => m.createTauriBackend())
      : import('./web').then((m) => m.createWebBackend());
  return chosen;
}
