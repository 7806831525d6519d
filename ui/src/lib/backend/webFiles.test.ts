// @vitest-environment happy-dom
// Files over the web backend: uploads through XMLHttpRequest (for progress), downloads named by
// the server.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createWebBackend } from './web';

class FakeXhr {
  static last: FakeXhr | null = null;
  method = '';
  url = '';
  headers: Record<string, string> = {};
  body: unknown = null;
  status = 0;
  statusText = '';
  responseText = '';
  upload: { onprogress: ((e: ProgressEvent) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  constructor() {
    FakeXhr.last = this;
  }
  open(method: string, url: string): void {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(k: string, v: string): void {
    this.headers[k] = v;
  }
  send(body: unknown): void {
    this.body = body;
  }
  answer(status: number, body: unknown): void {
    this.status = status;
    this.responseText = JSON.stringify(body);
    this.onload?.();
  }
}

describe('web backend files', () => {
  beforeEach(() => {
    sessionStorage.clear();
    localStorage.setItem('airlock.operatorToken', 'OP');
    history.replaceState(null, '', '/#/session/sb-1');
    vi.stubGlobal('XMLHttpRequest', FakeXhr);
  });
  afterEach(() => vi.unstubAllGlobals());

  it('uploads the raw bytes with the token, reports progress and resolves to what was written', async () => {
    const progress = vi.fn();
    const file = new Blob(['0123456789']);
    const done = createWebBackend().uploadFile('sb 1', '/root/a b.txt', file, 0o644, progress);
    const xhr = FakeXhr.last as FakeXhr;
    expect(xhr.method).toBe('POST');
    expect(xhr.url).toBe('api/sandboxes/sb%201/files?path=%2Froot%2Fa%20b.txt&mode=644');
    expect(xhr.headers.Authorization).toBe('Bearer OP');
    expect(xhr.body).toBe(file);
    xhr.upload.onprogress?.({ loaded: 4, total: 10, lengthComputable: true } as ProgressEvent);
    expect(progress).toHaveBeenCalledWith(4, 10);
    xhr.answer(201, { sandbox: 'sb 1', path: '/root/a b.txt', size: 10, sha256: 'ab' });
    await expect(done).resolves.toMatchObject({ size: 10 });
  });

  it('rejects with the server message when the upload is refused', async () => {
    const done = createWebBackend().uploadFile('sb-1', '/root/big', new Blob(['x']), 0o644);
    (FakeXhr.last as FakeXhr).answer(413, { code: 'too_large', message: 'uploads are at most 1 GiB' });
    await expect(done).rejects.toMatchObject({ status: 413, code: 'too_large', message: 'uploads are at most 1 GiB' });
  });

  it('downloads under the name the server gives', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => new Response('tar bytes', { status: 200, headers: { 'Content-Disposition': 'attachment; filename="Downloads.tar"' } })),
    );
    const got = await createWebBackend().downloadFile('sb-1', '/root/Downloads');
    expect(got.name).toBe('Downloads.tar');
    expect(await got.blob.text()).toBe('tar bytes');
    expect(vi.mocked(fetch).mock.calls[0]?.[0]).toBe('api/sandboxes/sb-1/files?path=%2Froot%2FDownloads');
  });
});
