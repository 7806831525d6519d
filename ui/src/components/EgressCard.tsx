// One pending network ask: where the sandbox wants to connect, how many connections wait, why the
// policy asks (and the agent's reason when it asked ahead), the screen when it was asked, the
// default-deny countdown, and the scopes to allow it in — once, for N minutes, for the sandbox's
// life, in the policy (the Cedar rule shown) — or Deny with a reason.

import { useEffect, useState } from 'preact/hooks';
import type { EgressAsk, EgressResolution } from '../lib/api/types';
import { errorMessage } from '../lib/backend';
import { countdown } from '../lib/countdown';
import {
  allowForMinutes,
  allowForSandbox,
  allowInPolicy,
  allowOnce,
  DEFAULT_GRANT_MINUTES,
  denyEgress,
  destinationText,
  destinationsText,
  grantMinutes,
  grantUnavailable,
  overBudgetText,
  uploadBudget,
  MAX_GRANT_MINUTES,
  onceUnavailable,
  protocolText,
} from '../lib/egress';
import { num } from '../lib/num';
import { can } from '../lib/roles';
import { store, useAppState } from '../lib/store';
import type { CardCommand } from './ApprovalCard';
import { useBackend } from './context';
import { Alert, DenyForm, NumberField, StillImage, useNow } from './common';

interface Props {
  ask: EgressAsk;
  /** Smaller layout (the session's side column). */
  compact?: boolean;
  /** A request from the inbox keyboard: approve = allow once, deny = deny. */
  command?: CardCommand | null;
}

type Phase = 'idle' | 'deny' | 'busy';

export function EgressCard({ ask, compact, command }: Props) {
  const backend = useBackend();
  const app = useAppState();
  const now = useNow(1000);
  const id = num(ask.id);
  // A watcher sees the ask, not the buttons (the server would refuse them).
  const decides = can(app.principal, 'decide');
  const sandbox = ask.sandbox;
  const [phase, setPhase] = useState<Phase>('idle');
  const [error, setError] = useState<string | null>(null);
  const [minutes, setMinutes] = useState(String(DEFAULT_GRANT_MINUTES));
  const [budgetKiB, setBudgetKiB] = useState('');
  const [reason, setReason] = useState('');
  const cd = countdown(num(ask.deadline_ms), now);
  const noOnce = onceUnavailable(ask);
  const noGrant = grantUnavailable(ask);
  const busy = phase === 'busy';
  const closed = busy || cd.expired;
  const waiting = num(ask.waiting);
  const minutesShown = grantMinutes(minutes) ?? 'N';

  const decide = async (resolution: EgressResolution): Promise<void> => {
    setPhase('busy');
    setError(null);
    try {
      const resolved = await backend.resolveEgress(sandbox, id, resolution);
      // The egress_resolved event removes the card; applying the answer now keeps it from
      // lingering if that event is late.
      if (resolved && typeof resolved === 'object' && resolved.state?.state !== 'pending') {
        store.dispatch({
          type: 'event',
          message: { topic: `sandbox://${sandbox}/egress`, event: { type: 'egress_resolved', ask: resolved } },
        });
      }
    } catch (e) {
      setError(errorMessage(e));
      setPhase('idle');
    }
  };

  /** The upload budget field in bytes, or null after showing why it is not one. */
  const budget = (): number | null | undefined => {
    const b = uploadBudget(budgetKiB);
    if (b !== null && typeof b === 'object') {
      setError(b.error);
      return undefined;
    }
    return b;
  };
  const once = (): void => {
    if (noOnce) return setError(noOnce);
    const b = budget();
    if (b !== undefined) void decide(allowOnce(b));
  };
  const forMinutes = (): void => {
    const b = budget();
    if (b === undefined) return;
    const r = allowForMinutes(minutes, b);
    if ('error' in r) setError(r.error);
    else void decide(r);
  };
  const forSandbox = (): void => {
    const b = budget();
    if (b !== undefined) void decide(allowForSandbox(b));
  };
  const paused = overBudgetText(ask);
  const startDeny = (): void => {
    setPhase('deny');
    setError(null);
  };

  // Commands from the inbox keyboard.
  useEffect(() => {
    if (!command || closed || !decides) return;
    if (command.kind === 'approve') once();
    else if (command.kind === 'deny') startDeny();
    else setError('A network ask has nothing to edit: choose how far to allow it, or deny it.');
    // run once per command
  }, [command?.n]);

  const agent = ask.agent.trim();

  return (
    <section class={`approval-card egress-card ${compact ? 'compact' : ''}`} aria-label="Network ask" data-ask={id} data-phase={phase}>
      <header class="approval-head">
        <span class="approval-title">
          <span class="approval-kind">network · {sandbox}</span>
          <span class="approval-summary" title={destinationsText(ask.destinations)}>
            {destinationsText(ask.destinations)}
          </span>
        </span>
        <span class={`countdown ${cd.warn ? 'warn' : ''}`} aria-live="off">
          {cd.text}
        </span>
        {!decides && <span class="badge view-only">view only</span>}
      </header>

      <dl class="egress-facts">
        <div>
          <dt>Sandbox</dt>
          <dd class="mono">{sandbox}</dd>
        </div>
        <div>
          <dt>Agent</dt>
          <dd>{agent || <span class="muted">no agent yet</span>}</dd>
        </div>
        <div>
          <dt>Protocol</dt>
          <dd>{protocolText(ask.protocol)}</dd>
        </div>
        <div>
          <dt>Waiting</dt>
          <dd>
            {ask.protocol === null
              ? 'no connection'
              : waiting === 1
                ? '1 connection waits'
                : `${waiting} connections wait`}
          </dd>
        </div>
      </dl>

      <ul class="egress-destinations" aria-label="Destinations">
        {ask.destinations.map((d) => (
          <li key={destinationText(d)}>
            <code>{destinationText(d)}</code>
          </li>
        ))}
      </ul>

      {ask.agent_reason !== null && (
        <blockquote class="agent-reason" aria-label="The agent's reason">
          {ask.agent_reason === '' ? '(the agent gave no reason)' : ask.agent_reason}
        </blockquote>
      )}

      <div class="approval-why">
        {ask.reason && <p class="why-reason">{ask.reason}</p>}
        <p class="why-rules">
          {ask.rules.length > 0 ? (
            <>
              Rule{ask.rules.length > 1 ? 's' : ''}:{' '}
              {ask.rules.map((r) => (
                <code key={r} class="rule-id">
                  {r}
                </code>
              ))}
            </>
          ) : (
            'No rule matched: the policy default asks.'
          )}
        </p>
      </div>

      {ask.frame_png ? (
        <StillImage hash={ask.frame_png} alt={`Screen when network ask ${id} was made`} class="egress-frame" />
      ) : (
        <p class="muted small">No screen was captured with this ask.</p>
      )}

      <div class="policy-rule">
        <p class="muted small">“Add to policy” adds this rule (every sandbox, from now on):</p>
        <pre class="command-line" aria-label="Rule added to the policy">
          <code>{ask.policy_rule.trimEnd()}</code>
        </pre>
      </div>

      {paused && (
        <p class="warn-note" aria-label="Upload budget">
          {paused}
        </p>
      )}

      {noGrant && <p class="warn-note small">{noGrant}</p>}

      <Alert message={error} />

      {decides && phase === 'deny' && (
        <DenyForm
          reason={reason}
          onReason={setReason}
          placeholder="Optional: the program is told it"
          busy={busy}
          onConfirm={() => void decide(denyEgress(reason))}
          onCancel={() => setPhase('idle')}
        />
      )}

      {decides && (phase === 'idle' || phase === 'busy') && (
        <div class="decision-row egress-scopes">
          <button
            type="button"
            class="primary"
            disabled={closed || noOnce !== null}
            title={noOnce ?? 'Let the waiting connections through; ask again next time'}
            onClick={once}
          >
            Allow once
          </button>
          <span class="allow-similar">
            <button
              type="button"
              disabled={closed || noGrant !== null}
              title={noGrant ?? `Allow these destinations in ${sandbox} for the minutes given`}
              onClick={forMinutes}
            >
              Allow for {minutesShown} min
            </button>
            <NumberField class="minutes" label="Minutes" min={1} max={MAX_GRANT_MINUTES} value={minutes} onInput={setMinutes} />
          </span>
          <button
            type="button"
            disabled={closed || noGrant !== null}
            title={noGrant ?? `Allow these destinations in ${sandbox} for as long as it lives`}
            onClick={forSandbox}
          >
            Allow for this sandbox
          </button>
          <button
            type="button"
            disabled={closed || noGrant !== null}
            title={noGrant ?? 'Add the rule shown above to the policy in force: every sandbox, from now on'}
            onClick={() => void decide(allowInPolicy())}
          >
            Add to policy
          </button>
          <NumberField
            class="upload-budget"
            label="Upload budget (KiB)"
            min={1}
            max={1024 * 1024 * 1024}
            value={budgetKiB}
            onInput={setBudgetKiB}
          />
          <button type="button" class="danger" disabled={closed} onClick={startDeny}>
            Deny
          </button>
          {busy && <span class="muted">Sending…</span>}
        </div>
      )}
    </section>
  );
}
