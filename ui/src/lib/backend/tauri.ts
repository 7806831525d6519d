// The desktop app backend: Tauri commands (the shell forwards them to the supervisor) and Tauri
// events on `airlock://…` channels. Rejections are `{code, message}` objects.

import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
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
import { toApiError } from './errors';
import { sharedLink, type Backend, type Download, type SharedLink, type StreamStatus, type UploadProgress } from './index';

/** The event channels the shell emits on, each payload an EventMessage. */
export const EVENT_CHANNELS = [
  'airlock://action',
  'airlock://approval',
  'airlock://egress',
  'airlock://network',
  'airlock://grant',
  'airlock://lease',
  'airlock://state',
  'airlock://policy',
  'airlock://create',
  'airlock://human',
] as const;

/** Emitted when the shell's subscription fell behind: the snapshot is read again. */
export const LAGGED_CHANNEL = 'airlock://lagged';

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toApiError(e);
  }
}

/** Bytes as Tauri hands them back: an ArrayBuffer, a typed array, or a plain number array. */
export function toBytes(v: unknown): Uint8Array<ArrayBuffer> {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer);
  if (Array.isArray(v)) return Uint8Array.from(v as number[]);
  throw toApiError({ code: 'bad_response', message: 'The app sent a blob in an unknown form.' });
}

/** The image type of a still, from its magic bytes. */
export function sniffImageType(b: Uint8Array): string {
  if (b.length >= 4 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'image/png';
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45)
    return 'image/webp';
  return 'application/octet-stream';
}

class TauriBackend implements Backend {
  readonly kind = 'tauri' as const;
  readonly auth = null;

  me(): Promise<Me> {
    return call('me');
  }
  snapshot(): Promise<Snapshot> {
    return call('snapshot');
  }
  listSandboxes(): Promise<SandboxInfo[]> {
    return call('list_sandboxes');
  }
  createSandbox(request: CreateRequest): Promise<SandboxInfo> {
    return call('create_sandbox', { request });
  }
  async destroySandbox(id: string): Promise<void> {
    await call<unknown>('destroy_sandbox', { id });
  }
  lease(id: string, request: LeaseRequest): Promise<LeaseChange> {
    return call('lease', { id, request });
  }
  resolve(id: string, approval: number, request: ResolveRequest): Promise<Approval> {
    return call('resolve', { id, approval, request });
  }
  pending(): Promise<Approval[]> {
    return call('pending');
  }
  pendingEgress(): Promise<EgressAsk[]> {
    return call('pending_egress');
  }
  resolveEgress(id: string, ask: number, resolution: EgressResolution): Promise<EgressAsk> {
    return call('resolve_egress', { id, ask, resolution });
  }
  network(id: string): Promise<NetworkView> {
    return call('network', { id });
  }
  ledger(query: LedgerQuery): Promise<Entry[]> {
    return call('ledger', { query });
  }
  verifyLedger(): Promise<VerifyReport> {
    return call('verify_ledger');
  }
  exportLedger(): Promise<string> {
    return call('export_ledger');
  }
  async blob(hash: string): Promise<Blob> {
    const bytes = toBytes(await call<unknown>('blob', { hash }));
    return new Blob([bytes], { type: sniffImageType(bytes) });
  }
  policy(): Promise<PolicyView> {
    return call('policy');
  }
  async setMode(mode: Mode): Promise<void> {
    await call<unknown>('set_mode', { mode });
  }
  async createLink(id: string, ttlS?: number): Promise<SharedLink> {
    // The app's `path` is already the whole URL of its server.
    const made = await call<CreatedLink>('create_link', { id, request: ttlS === undefined ? {} : { ttl_s: ttlS } });
    return sharedLink(made, null);
  }
  listLinks(): Promise<ViewLink[]> {
    return call('list_links');
  }
  revokeLink(link: string): Promise<ViewLink> {
    return call('revoke_link', { link });
  }
  listFiles(id: string, path: string): Promise<FileListing> {
    return call('list_files', { id, path });
  }
  async uploadFile(id: string, path: string, data: Blob, mode: number, onProgress?: UploadProgress): Promise<FileWritten> {
    // The command takes the bytes in one piece: progress is all or nothing.
    const bytes = new Uint8Array(await data.arrayBuffer());
    onProgress?.(0, bytes.length);
    const written = await call<FileWritten>('upload_file', { id, path, mode, data: Array.from(bytes) });
    onProgress?.(bytes.length, bytes.length);
    return written;
  }
  async downloadFile(id: string, path: string): Promise<Download> {
    const bytes = toBytes(await call<unknown>('download_file', { id, path }));
    return { blob: new Blob([bytes], { type: 'application/octet-stream' }), name: null };
  }
  viewUrl(id: string): Promise<string> {
    return call('view_url', { id });
  }
  async notify(title: string, body: string): Promise<void> {
    try {
      await call<unknown>('notify', { title, body });
    } catch (e) {
      console.warn('[airlock] notification failed:', toApiError(e).message);
    }
  }

  subscribe(
    onEvent: (m: EventMessage) => void,
    onStatus: (s: StreamStatus) => void,
    onSnapshot: (s: Snapshot) => void,
  ): () => void {
    let stopped = false;
    const unlisten: UnlistenFn[] = [];
    // Events that arrive while a snapshot is on its way are held and applied after it: the
    // snapshot replaces state, so applying them first would lose any the snapshot predates.
    let held: EventMessage[] | null = null;
    onStatus('connecting');
    const deliver = (m: EventMessage): void => {
      try {
        onEvent(m);
      } catch (e) {
        console.error('[airlock] event handling failed', e);
      }
    };
    const handler = (payload: unknown): void => {
      if (stopped) return;
      const m = payload as EventMessage | null;
      if (!m || typeof m !== 'object' || typeof m.event !== 'object' || m.event === null) return;
      if (held) held.push(m);
      else deliver(m);
    };
    const start = async (): Promise<void> => {
      // Listen first, then take the snapshot, holding events meanwhile.
      for (const ch of EVENT_CHANNELS) {
        const un = await listen<unknown>(ch, (e) => handler(e.payload));
        if (stopped) un();
        else unlisten.push(un);
      }
      const lagged = await listen<unknown>(LAGGED_CHANNEL, () => {
        if (!stopped) void resync();
      });
      if (stopped) lagged();
      else unlisten.push(lagged);
      await resync();
    };
    const resync = async (): Promise<void> => {
      if (held) return; // one is on its way already
      held = [];
      let attempt = 0;
      for (;;) {
        if (stopped) return;
        try {
          const s = await this.snapshot();
          if (stopped) return;
          onSnapshot(s);
          const replay = held ?? [];
          held = null;
          for (const m of replay) deliver(m);
          onStatus('open');
          return;
        } catch (e) {
          console.warn('[airlock] snapshot failed:', toApiError(e).message);
          onStatus('closed');
          await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** attempt++)));
        }
      }
    };
    start().catch((e: unknown) => {
      console.error('[airlock] cannot follow events:', toApiError(e).message);
      if (!stopped) onStatus('closed');
    });
    return () => {
      stopped = true;
      for (const un of unlisten.splice(0)) un();
    };
  }
}

export function createTauriBackend(): Backend {
  return new TauriBackend();
}
