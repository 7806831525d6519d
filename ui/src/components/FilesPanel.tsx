// A sandbox's files: one directory listed (folders first; /root to start, shortcuts to /root and
// Downloads), breadcrumbs and folders to move around, each file or folder downloadable (a folder
// as a .tar), uploads by button or by dropping files on the session view, with progress.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { FileEntry, FileListing } from '../lib/api/types';
import { errorMessage } from '../lib/backend';
import { dateTime } from '../lib/format';
import { breadcrumbs, downloadName, HOME, joinPath, saveBlob, SHORTCUTS, sizeText, sortEntries, UPLOAD_MODE } from '../lib/files';
import { num } from '../lib/num';
import { useBackend } from './context';
import { Alert } from './common';

/** What the session view calls with files dropped on it. */
export type DropTarget = { current: ((files: File[]) => void) | null };

interface Upload {
  name: string;
  sent: number;
  total: number;
  /** This one of how many. */
  index: number;
  count: number;
}

export function FilesPanel({ sandbox, drop }: { sandbox: string; drop?: DropTarget }) {
  const backend = useBackend();
  const [dir, setDir] = useState(HOME);
  const [listing, setListing] = useState<FileListing | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [upload, setUpload] = useState<Upload | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [downloading, setDownloading] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const gen = useRef(0);

  /** Lists `path`; `keepError` leaves a message shown (an upload's, read again after it). */
  const read = (path: string, keepError = false): void => {
    const mine = ++gen.current;
    setLoading(true);
    if (!keepError) setError(null);
    backend.listFiles(sandbox, path).then(
      (l) => {
        if (mine !== gen.current) return;
        setListing(l);
        setLoading(false);
      },
      (e: unknown) => {
        if (mine !== gen.current) return;
        setListing(null);
        setError(errorMessage(e));
        setLoading(false);
      },
    );
  };
  useEffect(() => read(dir), [sandbox, dir]);

  const go = (path: string): void => {
    setDone(null);
    setDir(path);
  };

  const uploadAll = async (files: File[]): Promise<void> => {
    if (files.length === 0 || upload) return;
    const into = dir;
    setError(null);
    setDone(null);
    let sent = 0;
    try {
      for (const [i, f] of files.entries()) {
        setUpload({ name: f.name, sent: 0, total: f.size, index: i + 1, count: files.length });
        await backend.uploadFile(sandbox, joinPath(into, f.name), f, UPLOAD_MODE, (s, total) =>
          setUpload({ name: f.name, sent: s, total, index: i + 1, count: files.length }),
        );
        sent++;
      }
      setDone(sent === 1 ? `Uploaded ${files[0]?.name ?? 'the file'} to ${into}.` : `Uploaded ${sent} files to ${into}.`);
    } catch (e) {
      const name = files[sent]?.name ?? 'the file';
      setError(`${name} was not uploaded: ${errorMessage(e)}`);
    } finally {
      setUpload(null);
      read(into, true);
    }
  };

  // Files dropped on the session view land in the directory shown.
  const uploadRef = useRef(uploadAll);
  uploadRef.current = uploadAll;
  useEffect(() => {
    if (!drop) return;
    drop.current = (files) => void uploadRef.current(files);
    return () => {
      drop.current = null;
    };
  }, [drop]);

  const download = async (entry: FileEntry): Promise<void> => {
    const path = joinPath(dir, entry.name);
    setDownloading(path);
    setError(null);
    try {
      const got = await backend.downloadFile(sandbox, path);
      saveBlob(got.blob, got.name ?? downloadName(path, entry.kind === 'dir'));
    } catch (e) {
      setError(`${entry.name} could not be downloaded: ${errorMessage(e)}`);
    } finally {
      setDownloading(null);
    }
  };

  const entries = listing ? sortEntries(listing.entries) : [];
  const pct = upload && upload.total > 0 ? Math.min(100, Math.round((upload.sent / upload.total) * 100)) : 0;

  return (
    <section class="files-panel" aria-label="Files">
      <div class="panel-head">
        <h2>Files</h2>
        <span class="spacer" />
        {SHORTCUTS.map((s) => (
          <button key={s.path} type="button" class="subtle" aria-pressed={dir === s.path} onClick={() => go(s.path)}>
            {s.label}
          </button>
        ))}
        <button type="button" class="subtle" onClick={() => read(dir)} disabled={loading}>
          Refresh
        </button>
        <button type="button" class="primary" disabled={upload !== null} onClick={() => fileInput.current?.click()}>
          Upload
        </button>
        <input
          ref={fileInput}
          type="file"
          multiple
          hidden
          aria-label="Files to upload"
          onChange={(e) => {
            const input = e.currentTarget as HTMLInputElement;
            const files = [...(input.files ?? [])];
            input.value = '';
            void uploadAll(files);
          }}
        />
      </div>
      <nav class="breadcrumbs small" aria-label="Folder">
        {breadcrumbs(dir).map((c, i, all) => (
          <span key={c.path}>
            {i > 1 && <span class="crumb-sep">/</span>}
            {i === all.length - 1 ? (
              <span class="mono" aria-current="location">
                {c.label}
              </span>
            ) : (
              <button type="button" class="link-button mono" onClick={() => go(c.path)}>
                {c.label}
              </button>
            )}
          </span>
        ))}
      </nav>
      {upload && (
        <div class="upload-progress small" role="status" aria-label="Upload progress">
          <span>
            Uploading {upload.name}
            {upload.count > 1 ? ` (${upload.index} of ${upload.count})` : ''} — {sizeText(upload.sent)} of {sizeText(upload.total)}
          </span>
          <progress max={100} value={pct}>
            {pct}%
          </progress>
        </div>
      )}
      {done && (
        <p class="muted small" role="status">
          {done}
        </p>
      )}
      <Alert message={error} />
      {listing && (
        <table class="files-table small" aria-label={`Files in ${listing.path}`}>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Size</th>
              <th scope="col">Modified</th>
              <th scope="col">
                <span class="sr-only">Download</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => {
              const path = joinPath(dir, e.name);
              return (
                <tr key={e.name} data-kind={e.kind}>
                  <td class="file-name">
                    {e.kind === 'dir' ? (
                      <button type="button" class="link-button" onClick={() => go(path)} aria-label={`Open folder ${e.name}`}>
                        <span aria-hidden="true">📁 </span>
                        {e.name}
                      </button>
                    ) : (
                      <span title={e.kind === 'symlink' ? 'A symbolic link (not followed)' : undefined}>
                        {e.kind === 'symlink' ? '↪ ' : ''}
                        {e.name}
                      </span>
                    )}
                  </td>
                  <td class="num">{e.kind === 'file' ? sizeText(e.size) : ''}</td>
                  <td>{dateTime(num(e.mtime_s) * 1000)}</td>
                  <td>
                    {(e.kind === 'file' || e.kind === 'dir') && (
                      <button
                        type="button"
                        class="subtle"
                        disabled={downloading === path}
                        aria-label={e.kind === 'dir' ? `Download folder ${e.name} as .tar` : `Download ${e.name}`}
                        onClick={() => void download(e)}
                      >
                        {downloading === path ? 'Downloading…' : e.kind === 'dir' ? 'Download .tar' : 'Download'}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {listing && entries.length === 0 && <p class="muted small">This folder is empty.</p>}
      {listing?.truncated && <p class="warn-note small">This folder holds more entries than are listed here.</p>}
      {!listing && loading && <p class="muted small">Loading…</p>}
      <p class="hint small">Drop files on the session view to upload them here.</p>
    </section>
  );
}
