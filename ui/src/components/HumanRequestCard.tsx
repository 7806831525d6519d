// An agent asking for a human: what it needs in its words, the kind of help, which agent, how long
// it has waited and still waits, the screen when it asked, and Take control (which opens the
// sandbox's session, where the hand-back note answers the agent).

import { useState } from 'preact/hooks';
import type { HumanRequest } from '../lib/api/types';
import { errorMessage } from '../lib/backend';
import { helpKindText, humanWait } from '../lib/human';
import { num } from '../lib/num';
import { can } from '../lib/roles';
import { navigate } from '../lib/router';
import { holderOf, useAppState } from '../lib/store';
import { useBackend } from './context';
import { Alert, StillImage, useNow } from './common';

interface Props {
  request: HumanRequest;
  /** The banner form in the session view (no screen: the live view is beside it). */
  compact?: boolean;
}

export function HumanRequestCard({ request, compact }: Props) {
  const backend = useBackend();
  const app = useAppState();
  const now = useNow(1000);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const id = num(request.request);
  const sandbox = request.sandbox;
  const wait = humanWait(num(request.asked_ms), num(request.deadline_ms), now);
  const holder = holderOf(app, sandbox);
  const mine = holder?.holder === 'human' && app.me !== null && holder.operator === app.me;
  const drive = can(app.principal, 'drive');

  const take = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      await backend.lease(sandbox, { command: 'take', note: null });
      navigate({ view: 'session', id: sandbox });
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section
      class={`approval-card human-card ${compact ? 'compact' : ''}`}
      aria-label={`Human request ${id} in ${sandbox}`}
      data-kind={request.kind}
    >
      <header class="approval-head">
        <span class="approval-title">
          <span class="approval-kind">agent needs a human · {sandbox}</span>
          <span class="approval-summary">
            <span class="badge tone-ask help-kind">{helpKindText(request.kind)}</span>{' '}
            <span class="muted small">{request.agent ? `agent ${request.agent}` : 'the agent'} · {wait.waited}</span>
          </span>
        </span>
        <span class={`countdown ${wait.warn ? 'warn' : ''}`} aria-live="off">
          {wait.left}
        </span>
        {!drive && <span class="badge view-only">view only</span>}
      </header>
      <blockquote class="human-reason" aria-label="What the agent needs">
        {request.reason || 'The agent gave no reason.'}
      </blockquote>
      {!compact && <StillImage hash={request.frame} alt={`Screen when the agent asked (request ${id})`} class="egress-frame" />}
      <Alert message={error} />
      {drive && (
        <div class="decision-row">
          {mine ? (
            <span class="muted">You are in control: hand back with a note when done — the agent will get it.</span>
          ) : (
            <button
              type="button"
              class="primary"
              disabled={busy || wait.expired || holder?.holder === 'human'}
              title={holder?.holder === 'human' ? `${holder.operator} is in control` : 'Take the mouse and keyboard, then hand back with a note'}
              onClick={() => void take()}
            >
              Take control
            </button>
          )}
          {busy && <span class="muted">Taking control…</span>}
        </div>
      )}
    </section>
  );
}
