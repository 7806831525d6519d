// The audit ledger: entries in seq order with filters and stills, paging, verify and export.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Entry, EntryKind, LedgerQuery } from '../lib/api/types';
import { errorMessage } from '../lib/backend';
import { dateTime } from '../lib/format';
import {
  DECISIONS,
  ENTRY_KINDS,
  actorLabel,
  actorOptions,
  entryDecision,
  entryStills,
  entrySummary,
  filterEntries,
  mergePage,
  verifyText,
} from '../lib/ledger';
import { num } from '../lib/num';
import { navigate } from '../lib/router';
import { useAppState } from '../lib/store';
import { decisionTone } from '../lib/video/steps';
import { useBackend } from '../components/context';
import { Alert, Modal, StillImage } from '../components/common';

const PAGE = 200;

export function Ledger({ id }: { id: string | null }) {
  const backend = useBackend();
  const app = useAppState();
  const [kind, setKind] = useState('');
  const [decision, setDecision] = useState('');
  const [actor, setActor] = useState('');
  const [entries, setEntries] = useState<Entry[]>([]);
  const [loading, setLoading] = useState(false);
  const [done, setDone] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [verify, setVerify] = useState<{ text: string; ok: boolean } | null>(null);
  const [verifying, setVerifying] = useState(false);
  const [exporting, setExporting] = useState(false);
  const [enlarged, setEnlarged] = useState<{ hash: string; label: string } | null>(null);
  const gen = useRef(0);

  const query = (after: number | null): LedgerQuery => ({
    sandbox: id,
    after,
    limit: PAGE,
    kind: kind ? [kind as EntryKind] : [],
  });

  const load = async (reset: boolean): Promise<void> => {
    const g = reset ? ++gen.current : gen.current;
    const last = reset ? null : entries[entries.length - 1];
    setLoading(true);
    setError(null);
    try {
      const page = await backend.ledger(query(last ? num(last.seq) : null));
      if (g !== gen.current) return;
      setEntries((have) => (reset ? mergePage([], page) : mergePage(have, page)));
      setDone(page.length < PAGE);
    } catch (e) {
      if (g === gen.current) setError(errorMessage(e));
    } finally {
      if (g === gen.current) setLoading(false);
    }
  };

  useEffect(() => {
    setEntries([]);
    setDone(false);
    void load(true);
  }, [id, kind]);

  const shown = useMemo(() => filterEntries(entries, { kind: '', decision, actor }), [entries, decision, actor]);
  const actors = useMemo(() => actorOptions(entries), [entries]);
  const sandboxIds = useMemo(() => {
    const s = new Set(app.sandboxes.keys());
    if (id) s.add(id);
    return [...s].sort();
  }, [app.sandboxes, id]);

  const runVerify = async (): Promise<void> => {
    setVerifying(true);
    setVerify(null);
    try {
      const r = await backend.verifyLedger();
      setVerify({ text: verifyText(r), ok: !r.first_broken });
    } catch (e) {
      setVerify({ text: `Verification failed: ${errorMessage(e)}`, ok: false });
    } finally {
      setVerifying(false);
    }
  };

  const runExport = async (): Promise<void> => {
    setExporting(true);
    setError(null);
    try {
      const text = await backend.exportLedger();
      const url = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = 'airlock-ledger.jsonl';
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      setError(`Export failed: ${errorMessage(e)}`);
    } finally {
      setExporting(false);
    }
  };

  return (
    <div class="view ledger-view">
      <div class="view-head">
        <h1>Ledger</h1>
        <span class="muted count">
          {shown.length === entries.length ? `${entries.length} entries loaded` : `${shown.length} of ${entries.length} loaded entries shown`}
        </span>
        <span class="spacer" />
        <button type="button" disabled={verifying} onClick={() => void runVerify()}>
          {verifying ? 'Verifying…' : 'Verify'}
        </button>
        <button type="button" disabled={exporting} onClick={() => void runExport()}>
          {exporting ? 'Exporting…' : 'Export'}
        </button>
      </div>
      <p class={`verify-result ${verify ? (verify.ok ? 'ok' : 'bad') : ''}`} role="status">
        {verify?.text ?? ''}
      </p>
      <div class="filters">
        <label class="field inline">
          <span>Sandbox</span>
          <select
            aria-label="Sandbox"
            value={id ?? ''}
            onChange={(e) => {
              const v = (e.currentTarget as HTMLSelectElement).value;
              navigate({ view: 'ledger', id: v || null });
            }}
          >
            <option value="">All sandboxes</option>
            {sandboxIds.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label class="field inline">
          <span>Kind</span>
          <select aria-label="Kind" value={kind} onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">All kinds</option>
            {ENTRY_KINDS.map((k) => (
              <option key={k} value={k}>
                {k.replace(/_/g, ' ')}
              </option>
            ))}
          </select>
        </label>
        <label class="field inline">
          <span>Decision</span>
          <select aria-label="Decision" value={decision} onChange={(e) => setDecision((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">Any decision</option>
            {DECISIONS.map((d) => (
              <option key={d} value={d}>
                {d.replace(/_/g, ' ')}
              </option>
            ))}
          </select>
        </label>
        <label class="field inline">
          <span>Actor</span>
          <select aria-label="Actor" value={actor} onChange={(e) => setActor((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">Anyone</option>
            {actors.map((a) => (
              <option key={a} value={a}>
                {a.replace(':', ' ')}
              </option>
            ))}
          </select>
        </label>
      </div>
      <Alert message={error} />
      <div class="table-wrap">
        <table class="ledger-table" aria-label="Ledger entries">
          <thead>
            <tr>
              <th scope="col" class="num">
                Seq
              </th>
              <th scope="col">Time</th>
              <th scope="col">Sandbox</th>
              <th scope="col">Kind</th>
              <th scope="col">Actor</th>
              <th scope="col">Summary</th>
              <th scope="col">Stills</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e) => {
              const d = entryDecision(e);
              const stills = entryStills(e);
              const seq = num(e.seq);
              return (
                <tr key={seq} data-seq={seq}>
                  <td class="num mono">{seq}</td>
                  <td class="nowrap small">{dateTime(num(e.body.ts_ms))}</td>
                  <td class="mono small">{e.body.sandbox ?? '—'}</td>
                  <td class="nowrap">
                    <span class="kind">{e.body.kind.replace(/_/g, ' ')}</span>
                    {d && <span class={`badge tone-${decisionTone(d)}`}>{d.replace(/_/g, ' ')}</span>}
                  </td>
                  <td class="small">{actorLabel(e)}</td>
                  <td class="summary">{entrySummary(e)}</td>
                  <td>
                    <div class="stills">
                      {stills.map((s) => (
                        <StillImage
                          key={s.hash}
                          hash={s.hash}
                          alt={`Entry ${seq} ${s.label}`}
                          class="ledger-thumb"
                          onClick={() => setEnlarged({ hash: s.hash, label: `Entry ${seq} ${s.label}` })}
                        />
                      ))}
                    </div>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {!loading && shown.length === 0 && !error && <p class="empty">No entries match.</p>}
      </div>
      <div class="button-row center">
        {loading ? (
          <span class="muted">Loading…</span>
        ) : done ? (
          <span class="muted small">End of the ledger{entries.length > 0 ? ` (seq ${num(entries[entries.length - 1]?.seq)})` : ''}</span>
        ) : (
          <button type="button" onClick={() => void load(false)}>
            Load more
          </button>
        )}
        <button type="button" disabled={loading} onClick={() => void load(false)} title="Fetch entries appended since">
          Refresh
        </button>
      </div>
      {enlarged && (
        <Modal title={enlarged.label} onClose={() => setEnlarged(null)} class="wide">
          <StillImage hash={enlarged.hash} alt={enlarged.label} class="enlarged" />
          <p class="mono small muted">{enlarged.hash}</p>
          <div class="button-row end">
            <button type="button" onClick={() => setEnlarged(null)}>
              Close
            </button>
          </div>
        </Modal>
      )}
    </div>
  );
}
