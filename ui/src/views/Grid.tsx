// Every sandbox at a glance: live thumbnail, state, who drives, pending asks, the agent's last step.

import { useState } from 'preact/hooks';
import { holderShort } from '../lib/actions';
import type { BackendChoice, CreateRequest, Profile } from '../lib/api/types';
import { errorMessage } from '../lib/backend';
import { ago, newJobId } from '../lib/format';
import { can } from '../lib/roles';
import { emptyShareRow, sharesFrom, type ShareRow } from '../lib/shares';
import { navigate } from '../lib/router';
import { askCount, holderOf, sandboxState, store, useAppState, type CreateJob } from '../lib/store';
import { useBackend } from '../components/context';
import { Alert, Modal, NumberField, useNow, useViewer } from '../components/common';

export function Grid() {
  const app = useAppState();
  const [creating, setCreating] = useState(false);
  const ids = [...app.sandboxes.keys()].sort();
  const jobs = [...app.jobs.values()].sort((a, b) => a.startedAt - b.startedAt);
  return (
    <div class="view grid-view">
      <div class="view-head">
        <h1>Sandboxes</h1>
        <span class="muted count">{app.loaded ? `${ids.length} running` : ''}</span>
        <span class="spacer" />
        {can(app.principal, 'manage') && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New sandbox
          </button>
        )}
      </div>
      {app.loaded && ids.length === 0 && jobs.length === 0 && (
        <p class="empty">No sandboxes yet. Create one with “New sandbox”, or let an agent create one over MCP.</p>
      )}
      {!app.loaded && <p class="empty">Loading sandboxes…</p>}
      <div class="card-grid">
        {ids.map((id) => (
          <SandboxCard key={id} id={id} />
        ))}
        {jobs.map((j) => (
          <JobCard key={j.job} job={j} />
        ))}
      </div>
      {creating && <NewSandboxDialog onClose={() => setCreating(false)} />}
    </div>
  );
}

function SandboxCard({ id }: { id: string }) {
  const backend = useBackend();
  const app = useAppState();
  const now = useNow(5000);
  const info = app.sandboxes.get(id);
  const { snap } = useViewer(id, backend, { focused: false, noVideo: true });
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (!info) return null;
  const holder = holderOf(app, id);
  const state = sandboxState(app, id);
  const pending = askCount(app, id);
  const step = app.lastStep.get(id);
  const paused = holder?.holder === 'paused';
  const detail = app.lifecycle.get(id)?.detail;

  const lease = async (command: 'pause' | 'resume'): Promise<void> => {
    setBusy(command);
    setError(null);
    try {
      await backend.lease(id, { command, note: null });
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(null);
    }
  };

  const destroy = async (): Promise<void> => {
    setBusy('destroy');
    setError(null);
    try {
      await backend.destroySandbox(id);
      setConfirm(false);
      store.dispatch({ type: 'sandbox_removed', id });
    } catch (e) {
      setError(errorMessage(e));
      setConfirm(false);
    } finally {
      setBusy(null);
    }
  };

  return (
    <article class="sandbox-card" aria-label={`Sandbox ${id}`} data-state={state}>
      <div class="thumb-box">
        {snap?.thumbnailUrl ? (
          <img src={snap.thumbnailUrl} alt={`Thumbnail of ${id}`} />
        ) : (
          <span class="still-placeholder">
            {snap?.socket === 'closed' ? 'Viewer disconnected — retrying' : 'Waiting for the screen…'}
          </span>
        )}
        <span class={`pending-badge ${pending > 0 ? 'has' : ''}`}>
          {pending > 0 ? `${pending} pending` : ''}
        </span>
      </div>
      <div class="card-body">
        <div class="card-line">
          <span class="card-id mono" title={id}>
            {id}
          </span>
          <span class={`state-chip state-${state}`}>{state}</span>
        </div>
        <div class="card-line muted small">
          <span>
            {info.backend} · {info.profile} · {info.screen.width}×{info.screen.height}
          </span>
        </div>
        <div class="card-line small">
          <span class={`holder holder-${holder?.holder ?? 'none'}`}>Control: {holderShort(holder)}</span>
        </div>
        <div class="card-step small" title={step ? `${step.kind}: ${step.summary}` : undefined}>
          {step ? (
            <>
              <span class={`step-kind tone-${toneOf(step.outcome)}`}>{step.kind}</span>
              <span class="step-summary">{step.summary}</span>
              <span class="muted step-when">{ago(step.at, now)}</span>
            </>
          ) : (
            <span class="muted">{detail ?? 'No agent step yet'}</span>
          )}
        </div>
        <Alert message={error} />
        <div class="button-row">
          <button type="button" class="primary" onClick={() => navigate({ view: 'session', id })}>
            Open
          </button>
          {can(app.principal, 'drive') && (
            <button type="button" disabled={busy !== null} onClick={() => void lease(paused ? 'resume' : 'pause')}>
              {paused ? 'Resume agent' : 'Pause agent'}
            </button>
          )}
          {can(app.principal, 'manage') && (
            <button type="button" class="danger subtle" disabled={busy !== null} onClick={() => setConfirm(true)}>
              Destroy
            </button>
          )}
        </div>
      </div>
      {confirm && (
        <Modal title={`Destroy ${id}?`} onClose={() => setConfirm(false)}>
          <p>
            The sandbox stops and its disk is deleted. Its agent loses the sandbox; the ledger keeps its history. This
            cannot be undone.
          </p>
          <div class="button-row end">
            <button type="button" onClick={() => setConfirm(false)} disabled={busy === 'destroy'}>
              Cancel
            </button>
            <button type="button" class="danger" onClick={() => void destroy()} disabled={busy === 'destroy'}>
              {busy === 'destroy' ? 'Destroying…' : 'Destroy sandbox'}
            </button>
          </div>
        </Modal>
      )}
    </article>
  );
}

function toneOf(outcome: string): string {
  if (['allow', 'done'].includes(outcome)) return 'allow';
  if (['ask', 'shadow_denied'].includes(outcome)) return 'ask';
  if (['deny', 'refused', 'failed'].includes(outcome)) return 'deny';
  return 'other';
}

function JobCard({ job }: { job: CreateJob }) {
  const now = useNow(1000);
  const secs = Math.max(0, Math.round((now - job.startedAt) / 1000));
  const last = job.steps[job.steps.length - 1];
  return (
    <article
      class="sandbox-card job-card"
      aria-label={job.foreign ? `New sandbox (${job.job})` : `New sandbox (${job.profile})`}
      aria-busy={job.error === null}
    >
      <div class="thumb-box">
        <span class="still-placeholder">{job.error ? 'Creation failed' : (last?.step ?? 'Starting…')}</span>
      </div>
      <div class="card-body">
        <div class="card-line">
          <span class="card-id">{job.foreign ? `New sandbox (${job.job})` : `New ${job.profile} sandbox`}</span>
          <span class={`state-chip ${job.error ? 'state-lost' : 'state-creating'}`}>{job.error ? 'failed' : 'creating'}</span>
        </div>
        <div class="card-line muted small">
          <span>
            {job.backend ? `${job.backend} · ` : ''}
            {secs} s
          </span>
        </div>
        <ol class="job-steps small" aria-label="Progress">
          {job.steps.slice(-4).map((s, i) => (
            <li key={`${s.at}-${i}`}>{s.step}</li>
          ))}
          {job.steps.length === 0 && !job.error && <li class="muted">Waiting for the supervisor…</li>}
        </ol>
        {job.error && (
          <>
            <p class="card-error" role="alert">
              {job.error}
            </p>
            <div class="button-row">
              <button type="button" onClick={() => store.dispatch({ type: 'job_dismissed', job: job.job })}>
                Dismiss
              </button>
            </div>
          </>
        )}
      </div>
    </article>
  );
}

function NewSandboxDialog({ onClose }: { onClose: () => void }) {
  const backend = useBackend();
  const mayShare = can(useAppState().principal, 'share');
  const [profile, setProfile] = useState<Profile>('desktop');
  const [be, setBe] = useState<BackendChoice>('auto');
  const [vcpus, setVcpus] = useState('2');
  const [memory, setMemory] = useState('2048');
  const [shares, setShares] = useState<ShareRow[]>([]);
  const [error, setError] = useState<string | null>(null);
  const setRow = (i: number, row: Partial<ShareRow>): void =>
    setShares((rows) => rows.map((r, j) => (j === i ? { ...r, ...row } : r)));

  const submit = (): void => {
    const v = Number(vcpus);
    const m = Number(memory);
    if (!Number.isInteger(v) || v < 1 || v > 8) {
      setError('vCPUs must be a whole number from 1 to 8.');
      return;
    }
    if (!Number.isInteger(m) || m < 256 || m > 16384) {
      setError('Memory must be a whole number of MiB from 256 to 16384.');
      return;
    }
    const shared = sharesFrom(shares);
    if ('error' in shared) {
      setError(shared.error);
      return;
    }
    const job = newJobId();
    const req: CreateRequest = { backend: be, profile, vcpus: v, memory_mib: m, job, ...(shared.length > 0 ? { shares: shared } : {}) };
    store.dispatch({ type: 'job_started', job, profile, backend: be, at: Date.now() });
    onClose();
    backend.createSandbox(req).then(
      (sandbox) => store.dispatch({ type: 'job_done', job, sandbox }),
      (e: unknown) => store.dispatch({ type: 'job_failed', job, message: errorMessage(e) }),
    );
  };

  return (
    <Modal title="New sandbox" onClose={onClose}>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <label class="field">
          <span>Image profile</span>
          <select value={profile} onChange={(e) => setProfile((e.currentTarget as HTMLSelectElement).value as Profile)}>
            <option value="desktop">desktop — a full desktop with a browser</option>
            <option value="minimal">minimal — a bare X session</option>
          </select>
        </label>
        <label class="field">
          <span>Backend</span>
          <select value={be} onChange={(e) => setBe((e.currentTarget as HTMLSelectElement).value as BackendChoice)}>
            <option value="auto">auto — microVM where KVM is available, else gVisor</option>
            <option value="gvisor">gvisor</option>
            <option value="microvm">microvm</option>
          </select>
        </label>
        <div class="field-row">
          <NumberField class="field" label="vCPUs" min={1} max={8} value={vcpus} onInput={setVcpus} />
          <NumberField class="field" label="Memory (MiB)" min={256} max={16384} step={256} value={memory} onInput={setMemory} />
        </div>
        {mayShare && (
          <fieldset class="shares">
            <legend>Shared folders</legend>
            {shares.length === 0 && <p class="hint small">None: the sandbox sees no host folder.</p>}
            {shares.map((r, i) => (
              <div class="share-row" key={i} role="group" aria-label={`Shared folder ${i + 1}`}>
                <label class="field">
                  <span>Host folder</span>
                  <input
                    type="text"
                    class="mono"
                    value={r.host}
                    placeholder="/home/you/project"
                    spellcheck={false}
                    onInput={(e) => setRow(i, { host: (e.currentTarget as HTMLInputElement).value })}
                  />
                </label>
                <label class="field">
                  <span>In the sandbox</span>
                  <input
                    type="text"
                    class="mono"
                    value={r.guest}
                    placeholder="/mnt/project"
                    spellcheck={false}
                    onInput={(e) => setRow(i, { guest: (e.currentTarget as HTMLInputElement).value })}
                  />
                </label>
                <label class="check">
                  <input type="checkbox" checked={r.writable} onChange={(e) => setRow(i, { writable: (e.currentTarget as HTMLInputElement).checked })} />
                  <span>Writable</span>
                </label>
                <button type="button" class="subtle" aria-label={`Remove shared folder ${i + 1}`} onClick={() => setShares((rows) => rows.filter((_, j) => j !== i))}>
                  Remove
                </button>
              </div>
            ))}
            <button type="button" onClick={() => setShares((rows) => [...rows, emptyShareRow()])}>
              Add shared folder
            </button>
            <p class="hint small">Read-only unless “Writable” is ticked: then the sandbox can change and delete files there, and what it writes belongs to the folder’s owner. Writable needs a microVM and a folder of an ordinary user (not root).</p>
          </fieldset>
        )}
        <p class="hint">The first desktop sandbox builds its image, which takes a few minutes; progress shows on the grid.</p>
        <Alert message={error} />
        <div class="button-row end">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Create
          </button>
        </div>
      </form>
    </Modal>
  );
}
