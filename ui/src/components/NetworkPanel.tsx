// A sandbox's network: every destination it tried (outcome, rules, connections, bytes), the
// grants in force, the asks waiting, and the DNS lookups its resolver refused. Read from
// `network(sandbox)` and read again (at most twice a second) when a network event for it arrives.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { NetworkView } from '../lib/api/types';
import { toApiError } from '../lib/backend';
import { bytesText, destinationText, destinationsText } from '../lib/egress';
import { ago, clock } from '../lib/format';
import { num } from '../lib/num';
import { useAppState } from '../lib/store';
import { decisionTone } from '../lib/video/steps';
import { useBackend } from './context';
import { Alert, useNow } from './common';

/** Least time between two reads of the same sandbox's network, ms. */
const MIN_INTERVAL_MS = 500;

export function NetworkPanel({ sandbox }: { sandbox: string }) {
  const backend = useBackend();
  const app = useAppState();
  const now = useNow(5000);
  const rev = app.networkRev.get(sandbox) ?? 0;
  const [view, setView] = useState<NetworkView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [readAt, setReadAt] = useState<number | null>(null);
  // One read at a time; events during a read ask for one more after it.
  const reader = useRef({ live: true, inFlight: false, again: false, last: 0, timer: undefined as ReturnType<typeof setTimeout> | undefined });

  const read = (): void => {
    const r = reader.current;
    if (r.inFlight) {
      r.again = true;
      return;
    }
    if (r.timer !== undefined) return;
    const wait = Math.max(0, r.last + MIN_INTERVAL_MS - Date.now());
    r.timer = setTimeout(() => {
      r.timer = undefined;
      r.inFlight = true;
      r.last = Date.now();
      backend
        .network(sandbox)
        .then(
          (v) => {
            if (!r.live) return;
            setView(v);
            setError(null);
            setReadAt(Date.now());
          },
          (e: unknown) => r.live && setError(networkError(e, sandbox)),
        )
        .finally(() => {
          r.inFlight = false;
          if (r.live && r.again) {
            r.again = false;
            read();
          }
        });
    }, wait);
  };

  useEffect(() => {
    const r = reader.current;
    r.live = true;
    return () => {
      r.live = false;
      clearTimeout(r.timer);
      r.timer = undefined;
    };
  }, []);

  useEffect(read, [sandbox, rev]);

  return (
    <section class="network-panel" aria-label="Network">
      <div class="panel-head">
        <h2>Network</h2>
        <span class="muted small">{readAt !== null ? `as of ${clock(readAt)}` : ''}</span>
        <span class="spacer" />
        <button type="button" class="subtle" onClick={read}>
          Refresh network
        </button>
      </div>
      <Alert message={error} />
      {view ? <NetworkTables view={view} now={now} /> : !error && <p class="empty small">Loading the network…</p>}
    </section>
  );
}

/** The tables of a NetworkView (no fetching: the panel's body, and what tests render). */
export function NetworkTables({ view, now }: { view: NetworkView; now: number }) {
  const unlisted = num(view.dns_unlisted);
  return (
    <div class="network-body">
      {view.asks.length > 0 && (
        <p class="network-asks warn-text small">
          Waiting for you: {view.asks.map((a) => destinationsText(a.destinations)).join('; ')}
        </p>
      )}

      <h3>Destinations</h3>
      {view.destinations.length === 0 ? (
        <p class="empty small">No connection tried yet.</p>
      ) : (
        <div class="table-wrap">
          <table class="data-table" aria-label="Destinations">
            <thead>
              <tr>
                <th scope="col">Destination</th>
                <th scope="col">Outcome</th>
                <th scope="col">Rules</th>
                <th scope="col" class="num">
                  Connections
                </th>
                <th scope="col" class="num">
                  Open
                </th>
                <th scope="col" class="num">
                  Up
                </th>
                <th scope="col" class="num">
                  Down
                </th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {view.destinations.map((d) => {
                const dest = destinationText(d.destination);
                const seen = num(d.last_seen_ms);
                return (
                  <tr key={dest}>
                    <td class="mono">{dest}</td>
                    <td>
                      <span class={`badge tone-${decisionTone(d.outcome)}`}>{d.outcome}</span>
                    </td>
                    <td class="small">
                      {d.rules.length > 0 ? (
                        d.rules.map((r) => (
                          <code key={r} class="rule-id">
                            {r}
                          </code>
                        ))
                      ) : (
                        <span class="muted">—</span>
                      )}
                    </td>
                    <td class="num">{num(d.connections)}</td>
                    <td class="num">{num(d.open)}</td>
                    <td class="num nowrap">{bytesText(d.bytes_up)}</td>
                    <td class="num nowrap">{bytesText(d.bytes_down)}</td>
                    <td class="nowrap small" title={clock(seen)}>
                      {ago(seen, now)}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}

      <h3>Grants in force</h3>
      {view.grants.length === 0 ? (
        <p class="empty small">No grants: every new destination asks.</p>
      ) : (
        <div class="table-wrap">
          <table class="data-table" aria-label="Grants">
            <thead>
              <tr>
                <th scope="col">Destination</th>
                <th scope="col">By</th>
                <th scope="col">Until</th>
              </tr>
            </thead>
            <tbody>
              {view.grants.map((g) => {
                const dest = destinationText(g.destination);
                const until = g.until_ms === null ? null : num(g.until_ms);
                return (
                  <tr key={dest}>
                    <td class="mono">{dest}</td>
                    <td>{g.by}</td>
                    <td class="nowrap">
                      {until === null ? 'sandbox life' : until <= now ? 'lapsed' : `${clock(until)} (${minutesLeft(until, now)})`}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}

      <h3>Refused DNS lookups</h3>
      {view.dns_refused.length === 0 && unlisted === 0 ? (
        <p class="empty small">None refused.</p>
      ) : (
        <>
          {view.dns_refused.length > 0 && (
            <div class="table-wrap">
              <table class="data-table" aria-label="Refused DNS lookups">
                <thead>
                  <tr>
                    <th scope="col">Group</th>
                    <th scope="col" class="num">
                      Lookups
                    </th>
                    <th scope="col">Examples</th>
                  </tr>
                </thead>
                <tbody>
                  {view.dns_refused.map((g) => (
                    <tr key={g.group}>
                      <td class="mono">{g.group}</td>
                      <td class="num">{num(g.count)}</td>
                      <td class="mono small">{g.examples.join(', ')}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {unlisted > 0 && (
            <p class="muted small">
              {unlisted === 1 ? '1 more lookup' : `${unlisted} more lookups`} not listed (too many distinct names).
            </p>
          )}
        </>
      )}
    </div>
  );
}

/** The sentence for a failed read: a sandbox without an egress gateway has no network at all. */
function networkError(e: unknown, sandbox: string): string {
  const err = toApiError(e);
  return err.code === 'unknown_sandbox'
    ? `No network to show: the supervisor has no egress gateway for ${sandbox} (without one, its connections are refused).`
    : err.message;
}

function minutesLeft(until: number, now: number): string {
  const m = Math.ceil((until - now) / 60_000);
  return m <= 1 ? 'under a minute left' : `${m} min left`;
}
