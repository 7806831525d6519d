// The policy in force: version, default, mode (with the shadow-mode switch) and the Cedar text —
// the rules about agent actions, then the network rules (those about `Action::"connect"`).

import { useEffect, useState } from 'preact/hooks';
import type { Mode, PolicyView } from '../lib/api/types';
import { errorMessage } from '../lib/backend';
import { highlightCedar, policySections } from '../lib/cedar';
import { can } from '../lib/roles';
import { store, useAppState } from '../lib/store';
import { useBackend } from '../components/context';
import { Alert, Modal } from '../components/common';

export function Policy() {
  const backend = useBackend();
  const app = useAppState();
  const [policy, setPolicy] = useState<PolicyView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<Mode | null>(null);
  const [busy, setBusy] = useState(false);
  const [switchError, setSwitchError] = useState<string | null>(null);

  const load = (): void => {
    setError(null);
    backend.policy().then(setPolicy, (e: unknown) => setError(errorMessage(e)));
  };
  useEffect(load, []);

  // The live mode comes from events; the fetched view may be older.
  const mode: Mode = app.loaded ? app.mode : (policy?.mode ?? 'enforce');
  const shadow = mode === 'shadow';

  const setMode = async (m: Mode): Promise<void> => {
    setBusy(true);
    setSwitchError(null);
    try {
      await backend.setMode(m);
      store.dispatch({ type: 'mode', mode: m });
      setConfirm(null);
    } catch (e) {
      setSwitchError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="view policy-view">
      <div class="view-head">
        <h1>Policy</h1>
        <span class="spacer" />
        <button type="button" onClick={load}>
          Reload
        </button>
      </div>
      <Alert message={error} />
      <dl class="policy-facts">
        <div>
          <dt>Version</dt>
          <dd class="mono" title={policy?.version}>
            {policy ? policy.version.slice(0, 16) : '…'}
          </dd>
        </div>
        <div>
          <dt>Default decision</dt>
          <dd>
            <span class={`badge tone-${policy?.default === 'allow' ? 'allow' : policy?.default === 'deny' ? 'deny' : 'ask'}`}>
              {policy?.default ?? '…'}
            </span>
          </dd>
        </div>
        <div>
          <dt>Mode</dt>
          <dd class="mode-switch">
            {/* Only an admin may switch the mode: others see it. */}
            {can(app.principal, 'policy') && (
              <button
                type="button"
                role="switch"
                aria-checked={shadow}
                aria-label="Shadow mode"
                class={`switch ${shadow ? 'on' : ''}`}
                onClick={() => setConfirm(shadow ? 'enforce' : 'shadow')}
              >
                <span class="knob" aria-hidden="true" />
              </button>
            )}
            <span class={shadow ? 'warn-text' : ''}>{shadow ? 'Shadow: denials are logged, not enforced' : 'Enforce'}</span>
          </dd>
        </div>
      </dl>
      <Alert message={confirm ? null : switchError} />
      <section class="policy-text" aria-label="Policy text">
        {policy ? (
          <PolicyText text={policy.text} />
        ) : (
          !error && <p class="empty">Loading the policy…</p>
        )}
      </section>
      {confirm && (
        <Modal title={confirm === 'shadow' ? 'Switch to shadow mode?' : 'Switch to enforce mode?'} onClose={() => setConfirm(null)}>
          {confirm === 'shadow' ? (
            <p>
              In shadow mode the policy still runs on every action, but a <strong>deny</strong> no longer stops anything:
              the action goes ahead and the ledger records it as <code>shadow_denied</code>. Asks still wait for an
              operator. Use it to try a new policy on real traffic — not to run agents unguarded.
            </p>
          ) : (
            <p>Denials will refuse actions again. Asks keep waiting for an operator.</p>
          )}
          <Alert message={switchError} />
          <div class="button-row end">
            <button type="button" onClick={() => setConfirm(null)} disabled={busy}>
              Cancel
            </button>
            <button type="button" class={confirm === 'shadow' ? 'danger' : 'primary'} disabled={busy} onClick={() => void setMode(confirm)}>
              {confirm === 'shadow' ? 'Switch to shadow mode' : 'Switch to enforce mode'}
            </button>
          </div>
        </Modal>
      )}
    </div>
  );
}

/** The Cedar text, the network rules under their own heading. */
function PolicyText({ text }: { text: string }) {
  const { actions, network, networkRules } = policySections(text);
  if (networkRules === 0) return <Cedar text={text} label="Policy rules" />;
  return (
    <>
      <h2 class="policy-heading">Actions</h2>
      <Cedar text={actions} label="Action rules" />
      <h2 class="policy-heading">
        Network <span class="muted small">{networkRules === 1 ? '1 rule' : `${networkRules} rules`} about connections</span>
      </h2>
      <Cedar text={network} label="Network rules" />
    </>
  );
}

function Cedar({ text, label }: { text: string; label: string }) {
  return (
    <pre class="cedar" aria-label={label}>
      <code>
        {highlightCedar(text).map((t, i) =>
          t.cls ? (
            <span key={i} class={`tok-${t.cls}`}>
              {t.text}
            </span>
          ) : (
            t.text
          ),
        )}
      </code>
    </pre>
  );
}
