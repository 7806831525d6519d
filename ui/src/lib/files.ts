// Sandbox paths and file sizes for the files panel: joining, breadcrumbs, the name a download is
// saved under, sizes for people. Pure, except `saveBlob` (which hands a blob to the browser).

import type { FileEntry } from './api/types';
import { num } from './num';

/** Where the files panel opens, and its shortcuts. */
export const HOME = '/root';
export const SHORTCUTS: readonly { label: string; path: string }[] = [
  { label: '/root', path: '/root' },
  { label: 'Downloads', path: '/root/Downloads' },
];

/** Permission bits an upload gets (rw-r--r--). */
export const UPLOAD_MODE = 0o644;

/** An absolute path without empty, `.` or trailing parts ("/" stays "/"). */
export function normalize(path: string): string {
  const parts: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else parts.push(p);
  }
  return `/${parts.join('/')}`;
}

/** A name inside a directory. */
export function joinPath(dir: string, name: string): string {
  return normalize(`${dir}/${name}`);
}

/** The directory above (the root is its own parent). */
export function parentOf(path: string): string {
  return normalize(`${path}/..`);
}

/** The last part of a path ("/" for the root). */
export function baseName(path: string): string {
  const n = normalize(path);
  return n === '/' ? '/' : (n.slice(n.lastIndexOf('/') + 1) || '/');
}

/** The steps from the root to a directory: [{label:'/', path:'/'}, {label:'root', path:'/root'}, …]. */
export function breadcrumbs(path: string): { label: string; path: string }[] {
  const out = [{ label: '/', path: '/' }];
  let at = '';
  for (const part of normalize(path).split('/').filter(Boolean)) {
    at += `/${part}`;
    out.push({ label: part, path: at });
  }
  return out;
}

/** Folders first, then by name. */
export function sortEntries(entries: readonly FileEntry[]): FileEntry[] {
  const rank = (e: FileEntry): number => (e.kind === 'dir' ? 0 : 1);
  return [...entries].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

/** "512 B", "1.5 KiB", "3.2 MiB", "1.0 GiB". */
export function sizeText(bytes: number | bigint): string {
  const b = num(bytes);
  if (b < 1024) return `${b} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = b / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** The file name a `Content-Disposition` header gives (`filename*=UTF-8''…` preferred), if any. */
export function dispositionName(header: string | null): string | null {
  if (!header) return null;
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(header);
  if (star?.[1]) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      /* fall back to the plain name */
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))/.exec(header);
  const name = plain?.[1]?.replace(/\\(.)/g, '$1') ?? plain?.[2]?.trim();
  return name ? name : null;
}

/** The name a download is saved under when the server names none: a folder comes as a tar. */
export function downloadName(path: string, folder: boolean): string {
  const base = baseName(path);
  const name = base === '/' ? 'root' : base;
  return folder ? `${name}.tar` : name;
}

/** Hands a blob to the browser as a download named `name`. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  a.style.display = 'none';
  document.body.append(a);
  a.click();
  a.remove();
  // The click has started the download; the URL may go once it has been read.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
