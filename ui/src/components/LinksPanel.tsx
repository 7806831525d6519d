// View-only links to one sandbox: make one (its URL is shown once, with Copy), list the live ones
// for this sandbox, revoke them (their viewers are cut off at once).

import { useEffect, useState } from 'preact/hooks';
import type { ViewLink } from '../lib/api/types';
import { errorMessage, type SharedLink } from '../lib/backend';
import { dateTime } from '../lib/format';
import { spanText } from '../lib/human';
import { num } from '../lib/num';
import { useBackend } from './context';
import { Alert, useNow } from './common';

/** How long a new link works. */
export const LINK_LIFETIMES: readonly { label: string; seconds: number }[] = [
  { label: '15 minutes', seconds: 15 * 60 },
  { label: '1 hour', seconds: 60 * 60 },
  { label: '8 hours', seconds: 8 * 60 * 60 },
  { label: '24 hours', seconds: 24 * 60 * 60 },
];
const DEFAULT_LIFETIME = 60 * 60;

export function LinksPanel({ sandbox }: { sandbox: string }) {
  const backend = useBackend();
  const now = useNow(10_000);
  const [links, setLinks] = useState<ViewLink[] | null>(null);
  const [choosing, setChoosing] = useState(false);
  const [ttl, setTtl] = useState(DEFAULT_LIFETIME);
  const [made, setMade] = useState<SharedLink | null>(null);
  const [copied, setCopied] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const read = (): void => {
    backend.listLinks().then(
      (all) => setLinks(all.filter((l) => l.sandbox === sandbox)),
      (e: unknown) => setError(errorMessage(e)),
    );
  };
  useEffect(read, [sandbox]);

  const create = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    setCopied(false);
    try {
      setMade(await backend.createLink(sandbox, ttl));
      setChoosing(false);
      read();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (id: string): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      await backend.revokeLink(id);
      if (made?.link.id === id) setMade(null);
      read();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const copy = async (url: string): Promise<void> => {
    try {
      await navigator.clipboard.writeText(url);
      setCopied(true);
    } catch (e) {
      setError(`The link could not be copied (${errorMessage(e)}): select it and copy it by hand.`);
    }
  };

  const live = (links ?? []).filter((l) => !l.revoked_by && num(l.expires_ms) > now);

  return (
    <section class="links-panel" aria-label="View links">
      <h2>
        View-only links <span class="count-badge">{live.length}</span>
      </h2>
      {!choosing && (
        <button type="button" onClick={() => setChoosing(true)} disabled={busy}>
          Share view-only link
        </button>
      )}
      {choosing && (
        <form
          class="form link-form"
          onSubmit={(e) => {
            e.preventDefault();
            void create();
          }}
        >
          <label class="field">
            <span>Works for</span>
            <select value={String(ttl)} onChange={(e) => setTtl(Number((e.currentTarget as HTMLSelectElement).value))}>
              {LINK_LIFETIMES.map((l) => (
                <option key={l.seconds} value={String(l.seconds)}>
                  {l.label}
                </option>
              ))}
            </select>
          </label>
          <p class="hint small">Whoever opens it watches this sandbox — the live screen and the command view — and can change nothing.</p>
          <div class="button-row">
            <button type="submit" class="primary" disabled={busy}>
              Create link
            </button>
            <button type="button" disabled={busy} onClick={() => setChoosing(false)}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {made && (
        <div class="link-made">
          <label class="field">
            <span>Link (shown once: copy it now)</span>
            <input type="text" readOnly class="mono" value={made.url} onFocus={(e) => (e.currentTarget as HTMLInputElement).select()} />
          </label>
          <div class="button-row">
            <button type="button" class="primary" onClick={() => void copy(made.url)}>
              {copied ? 'Copied' : 'Copy'}
            </button>
            <button type="button" class="subtle" onClick={() => setMade(null)}>
              Done
            </button>
          </div>
        </div>
      )}
      <Alert message={error} />
      {live.length > 0 && (
        <ul class="link-list" aria-label="Live view links">
          {live.map((l) => (
            <li key={l.id} aria-label={`View link ${l.id}`}>
              <span class="link-text small">
                <span class="mono">{l.id}</span> by {l.created_by} · ends {dateTime(num(l.expires_ms))} (in {spanText(num(l.expires_ms) - now)})
              </span>
              <button type="button" class="danger subtle" disabled={busy} onClick={() => void revoke(l.id)}>
                Revoke
              </button>
            </li>
          ))}
        </ul>
      )}
      {links !== null && live.length === 0 && <p class="muted small">No live links to this sandbox.</p>}
    </section>
  );
}
