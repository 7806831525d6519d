// @vitest-environment happy-dom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FileEntry, FileListing } from '../lib/api/types';
import type { Backend } from '../lib/backend';
import { ApiError } from '../lib/backend/errors';
import { BackendContext } from './context';
import { FilesPanel, type DropTarget } from './FilesPanel';

const saveBlob = vi.fn();
vi.mock('../lib/files', async (orig) => ({ ...(await orig<typeof import('../lib/files')>()), saveBlob: (...a: unknown[]) => saveBlob(...a) }));

const entry = (name: string, kind: FileEntry['kind'], size = 10): FileEntry => ({ name, kind, size, mode: 0o644, mtime_s: 1_700_000_000 });
const TREE: Record<string, FileEntry[]> = {
  '/root': [entry('notes.txt', 'file', 2048), entry('Downloads', 'dir')],
  '/root/Downloads': [entry('report.pdf', 'file', 1_500_000)],
};

const settle = async (): Promise<void> => {
  await act(async () => {
    await new Promise((r) => setTimeout(r, 0));
  });
};

describe('FilesPanel', () => {
  let root: HTMLElement;
  let listFiles: ReturnType<typeof vi.fn>;
  beforeEach(() => {
    root = document.createElement('div');
    document.body.append(root);
    saveBlob.mockReset();
    listFiles = vi.fn(async (_sb: string, path: string): Promise<FileListing> => {
      const entries = TREE[path];
      if (!entries) throw new ApiError(404, 'not_found', `${path} does not exist in the sandbox`);
      return { path, entries, truncated: false };
    });
  });
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const mount = async (b: Partial<Backend>, drop?: DropTarget): Promise<void> => {
    act(() => {
      render(
        <BackendContext.Provider value={{ kind: 'web', auth: null, listFiles, ...b } as unknown as Backend}>
          <FilesPanel sandbox="sb-1" drop={drop} />
        </BackendContext.Provider>,
        root,
      );
    });
    await settle();
  };
  const byLabel = (l: string): HTMLElement => {
    const el = root.querySelector<HTMLElement>(`[aria-label="${l}"]`);
    if (!el) throw new Error(`nothing labelled ${l}`);
    return el;
  };
  const names = (): string[] => [...root.querySelectorAll('.file-name')].map((td) => td.textContent?.trim() ?? '');

  it('lists /root first, folders before files, with sizes', async () => {
    await mount({});
    expect(listFiles).toHaveBeenCalledWith('sb-1', '/root');
    expect(names()).toEqual(['📁 Downloads', 'notes.txt']);
    expect(byLabel('Files in /root').textContent).toContain('2.0 KiB');
  });

  it('opens a folder, and goes back up by its breadcrumbs', async () => {
    await mount({});
    act(() => byLabel('Open folder Downloads').click());
    await settle();
    expect(listFiles).toHaveBeenLastCalledWith('sb-1', '/root/Downloads');
    expect(names()).toEqual(['report.pdf']);
    const crumb = [...root.querySelectorAll('.breadcrumbs button')].find((b) => b.textContent === 'root') as HTMLButtonElement;
    act(() => crumb.click());
    await settle();
    expect(listFiles).toHaveBeenLastCalledWith('sb-1', '/root');
  });

  it('shows the server message for a folder it cannot list', async () => {
    await mount({});
    act(() => [...root.querySelectorAll('button')].find((b) => b.textContent === '/')?.click());
    await settle();
    expect(root.querySelector('[role="alert"]')?.textContent).toBe('/ does not exist in the sandbox');
  });

  it('downloads a file under the server name, and a folder as a .tar', async () => {
    const downloadFile = vi.fn(async (_sb: string, path: string) => ({ blob: new Blob(['x']), name: path.endsWith('.txt') ? 'notes.txt' : null }));
    await mount({ downloadFile });
    act(() => byLabel('Download notes.txt').click());
    await settle();
    expect(downloadFile).toHaveBeenCalledWith('sb-1', '/root/notes.txt');
    expect(saveBlob).toHaveBeenLastCalledWith(expect.any(Blob), 'notes.txt');
    act(() => byLabel('Download folder Downloads as .tar').click());
    await settle();
    expect(downloadFile).toHaveBeenLastCalledWith('sb-1', '/root/Downloads');
    expect(saveBlob).toHaveBeenLastCalledWith(expect.any(Blob), 'Downloads.tar');
  });

  it('uploads dropped files into the folder shown, shows progress, then lists it again', async () => {
    let finish: () => void = () => undefined;
    const uploadFile = vi.fn(
      (_sb: string, path: string, data: Blob, _mode: number, progress?: (s: number, t: number) => void) =>
        new Promise((resolve) => {
          progress?.(5, 10);
          finish = () => resolve({ sandbox: 'sb-1', path, size: data.size, sha256: 'ab'.repeat(32) });
        }),
    );
    const drop: DropTarget = { current: null };
    await mount({ uploadFile: uploadFile as unknown as Backend['uploadFile'] }, drop);
    act(() => byLabel('Open folder Downloads').click());
    await settle();
    const file = new File(['0123456789'], 'data.csv');
    act(() => drop.current?.([file]));
    await settle();
    expect(uploadFile).toHaveBeenCalledWith('sb-1', '/root/Downloads/data.csv', file, 0o644, expect.any(Function));
    expect(byLabel('Upload progress').textContent).toContain('Uploading data.csv');
    expect((byLabel('Upload progress').querySelector('progress') as HTMLProgressElement).value).toBe(50);
    const reads = listFiles.mock.calls.length;
    finish();
    await settle();
    expect(root.querySelector('[aria-label="Upload progress"]')).toBeNull();
    expect(root.textContent).toContain('Uploaded data.csv to /root/Downloads.');
    expect(listFiles.mock.calls.length).toBe(reads + 1);
  });

  it('shows the server message when an upload is refused', async () => {
    const uploadFile = vi.fn(async () => {
      throw new ApiError(413, 'too_large', 'the upload is 2147483648 bytes; uploads are at most 1073741824 bytes (1 GiB)');
    });
    const drop: DropTarget = { current: null };
    await mount({ uploadFile }, drop);
    act(() => drop.current?.([new File(['x'], 'big.iso')]));
    await settle();
    expect(root.querySelector('[role="alert"]')?.textContent).toBe(
      'big.iso was not uploaded: the upload is 2147483648 bytes; uploads are at most 1073741824 bytes (1 GiB)',
    );
  });
});
