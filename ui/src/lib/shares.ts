// Host folders shared into a new sandbox, as the form holds them: rows of text turned into
// `Share`s, or the sentence saying what to fix. The server checks each against the host's rules
// (never `/`, a home itself, `~/.ssh` or Airlock's state); this only catches what is plainly wrong. Pure.

import type { Share } from './api/types';

export interface ShareRow {
  host: string;
  guest: string;
  writable: boolean;
}

export const emptyShareRow = (): ShareRow => ({ host: '', guest: '', writable: false });

/** The rows as shares (blank rows left out), or why they cannot be. */
export function sharesFrom(rows: readonly ShareRow[]): Share[] | { error: string } {
  const out: Share[] = [];
  const guests = new Set<string>();
  for (const [i, r] of rows.entries()) {
    const host = r.host.trim();
    const guest = r.guest.trim();
    if (host === '' && guest === '') continue;
    const n = i + 1;
    if (!host.startsWith('/') && !host.startsWith('~')) return { error: `Shared folder ${n}: the host folder must be an absolute path.` };
    if (!guest.startsWith('/')) return { error: `Shared folder ${n}: the path in the sandbox must be absolute (like /mnt/data).` };
    if (guests.has(guest)) return { error: `Shared folder ${n}: ${guest} is shared twice.` };
    guests.add(guest);
    out.push({ host, guest, writable: r.writable });
  }
  return out;
}
