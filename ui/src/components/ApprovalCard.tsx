// One pending approval: the frame the agent saw with the target drawn over it, the policy's
// reason, the default-deny countdown, and Approve / Edit / Deny / Allow similar.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { actionTarget, describeAction, type Target } from '../lib/actions';
import type { Approval, ResolveRequest, TerminalInput } from '../lib/api/types';
import { errorMessage } from '../lib/backend';
import { useBlobUrl } from '../lib/blobs';
import { countdown } from '../lib/countdown';
import { approveRequest, denyRequest, editFields, editRequest, initialDraft, notEditableReason, type EditDraft } from '../lib/edit';
import { num } from '../lib/num';
import { can } from '../lib/roles';
import { askKey, store, useAppState } from '../lib/store';
import { mapToScreen } from '../lib/video/geometry';
import { useBackend } from './context';
import { Alert, DenyForm, NumberField, useNow } from './common';

/** A request from outside (the inbox keyboard): act on this card. `n` changes with every request. */
export interface CardCommand {
  kind: 'approve' | 'deny' | 'edit';
  n: number;
}

interface Props {
  approval: Approval;
  /** Smaller layout (the inbox detail pane uses the full one). */
  compact?: boolean;
  command?: CardCommand | null;
}

type Phase = 'idle' | 'deny' | 'edit' | 'busy';

export function ApprovalCard({ approval, compact, command }: Props) {
  const backend = useBackend();
  const app = useAppState();
  const now = useNow(1000);
  const id = num(approval.id);
  const sandbox = approval.sandbox;
  const [phase, setPhase] = useState<Phase>('idle');
  const [error, setError] = useState<string | null>(null);
  const [minutes, setMinutes] = useState('10');
  const [reason, setReason] = useState('');
  const [draft, setDraft] = useState<EditDraft>(() => initialDraft(approval.action));
  const editFirstRef = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  const cd = countdown(num(approval.deadline_ms), now);
  const screen = app.sandboxes.get(sandbox)?.screen ?? null;
  const fields = editFields(approval.action);
  const editable = fields.length > 0;
  const askReason = approval.reason || (app.askReasons.get(askKey(sandbox, approval.action)) ?? null);
  const frame = useBlobUrl(approval.frame_png);
  // A watcher sees the card, not the buttons (the server would refuse them).
  const decides = can(app.principal, 'decide');
  const [natural, setNatural] = useState<{ w: number; h: number } | null>(null);
  // Action coordinates are screen pixels: the overlay uses the screen's size (the frame is the
  // whole screen); the image's own size only when the sandbox is unknown here.
  const W = screen ? num(screen.width) : (natural?.w ?? 1280);
  const H = screen ? num(screen.height) : (natural?.h ?? 800);

  const decide = async (req: ResolveRequest): Promise<void> => {
    setPhase('busy');
    setError(null);
    try {
      const resolved = await backend.resolve(sandbox, id, req);
      // The approval_resolved event removes the card; applying the answer now keeps the card
      // from lingering if that event is late.
      if (resolved && typeof resolved === 'object' && resolved.state?.state !== 'pending') {
        store.dispatch({
          type: 'event',
          message: { topic: `sandbox://${sandbox}/approval`, event: { type: 'approval_resolved', approval: resolved } },
        });
      }
    } catch (e) {
      setError(errorMessage(e));
      setPhase('idle');
    }
  };

  const approve = (): void => void decide(approveRequest(null) as ResolveRequest);
  const allowSimilar = (): void => {
    const r = approveRequest(Number(minutes));
    if ('error' in r) setError(r.error);
    else void decide(r);
  };
  const startDeny = (): void => {
    setPhase('deny');
    setError(null);
  };
  const confirmDeny = (): void => void decide(denyRequest(reason));
  const startEdit = (): void => {
    if (!editable) {
      setError(notEditableReason(approval.action));
      return;
    }
    setDraft(initialDraft(approval.action));
    setPhase('edit');
    setError(null);
  };
  const approveEdited = (): void => {
    const r = editRequest(approval.action, draft, { width: num(screen?.width ?? W), height: num(screen?.height ?? H) });
    if ('error' in r) setError(r.error);
    else void decide(r);
  };

  // Commands from the inbox keyboard.
  useEffect(() => {
    if (!command || !decides) return;
    if (command.kind === 'approve') approve();
    else if (command.kind === 'deny') startDeny();
    else startEdit();
    // run once per command
  }, [command?.n]);

  useEffect(() => {
    if (phase === 'edit') editFirstRef.current?.focus();
  }, [phase]);

  const onFrameClick = (e: MouseEvent): void => {
    if (phase !== 'edit' || !(fields.includes('point') || fields.includes('start'))) return;
    const box = e.currentTarget as HTMLElement;
    const p = mapToScreen(e.clientX, e.clientY, box.getBoundingClientRect(), W, H);
    if (!p || !p.inside) return;
    if (e.shiftKey && fields.includes('start')) setDraft({ ...draft, startX: p.x, startY: p.y });
    else setDraft({ ...draft, x: p.x, y: p.y });
  };

  const target = actionTarget(approval.action);
  const busy = phase === 'busy';
  const numInput = (label: string, value: number | null, set: (v: number | null) => void, first = false) => (
    <label class="field small">
      <span>{label}</span>
      <input
        ref={first ? editFirstRef : undefined}
        type="number"
        min={0}
        step={1}
        inputMode="numeric"
        value={value === null ? '' : String(value)}
        onInput={(e) => {
          const v = (e.currentTarget as HTMLInputElement).value;
          set(v === '' ? null : Math.floor(Number(v)));
        }}
      />
    </label>
  );

  return (
    <section class={`approval-card ${compact ? 'compact' : ''}`} aria-label={`Approval ${id}`} data-phase={phase}>
      <header class="approval-head">
        <span class="approval-title">
          <span class="approval-kind">{approval.action.kind.replace(/_/g, ' ')}</span>
          <span class="approval-summary" title={describeAction(approval.action, 400)}>
            {describeAction(approval.action)}
          </span>
        </span>
        <span class={`countdown ${cd.warn ? 'warn' : ''}`} aria-live="off">
          {cd.text}
        </span>
        {!decides && <span class="badge view-only">view only</span>}
      </header>

      <div
        class={`frame-box ${phase === 'edit' && (fields.includes('point') || fields.includes('start')) ? 'editing' : ''}`}
        style={{ aspectRatio: `${W} / ${H}`, width: `min(100%, calc(${compact ? 45 : 62}vh * ${(W / H).toFixed(4)}))` }}
        onClick={onFrameClick}
      >
        {frame.url ? (
          <img
            src={frame.url}
            alt={`Frame the agent saw for approval ${id}`}
            onLoad={(e) => {
              const img = e.currentTarget as HTMLImageElement;
              if (img.naturalWidth > 0 && img.naturalHeight > 0) setNatural({ w: img.naturalWidth, h: img.naturalHeight });
            }}
          />
        ) : (
          <span class="still-placeholder">{frame.error ? `Frame unavailable: ${frame.error}` : 'Loading frame…'}</span>
        )}
        <FrameOverlay target={target} width={W} height={H} draft={phase === 'edit' ? draft : null} kind={approval.action.kind} />
      </div>

      <TargetDetail target={target} />
      <TerminalDetail terminal={approval.terminal} />

      <div class="approval-why">
        {askReason && <p class="why-reason">{askReason}</p>}
        <p class="why-rules">
          {approval.reasons.length > 0 ? (
            <>
              Rule{approval.reasons.length > 1 ? 's' : ''}:{' '}
              {approval.reasons.map((r) => (
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

      <Alert message={error} />

      {decides && phase === 'edit' && (
        <div class="edit-panel">
          {fields.includes('start') && (
            <div class="field-row">
              {numInput('Start X', draft.startX, (v) => setDraft({ ...draft, startX: v }))}
              {numInput('Start Y', draft.startY, (v) => setDraft({ ...draft, startY: v }))}
            </div>
          )}
          {fields.includes('point') && (
            <div class="field-row">
              {numInput('X', draft.x, (v) => setDraft({ ...draft, x: v }), !fields.includes('start'))}
              {numInput('Y', draft.y, (v) => setDraft({ ...draft, y: v }))}
              <span class="hint">
                Click the frame to move the point{fields.includes('start') ? ' (Shift+click moves the start)' : ''}.
              </span>
            </div>
          )}
          {fields.includes('text') && (
            <label class="field">
              <span>Text</span>
              <textarea
                ref={editFirstRef}
                rows={3}
                value={draft.text}
                onInput={(e) => setDraft({ ...draft, text: (e.currentTarget as HTMLTextAreaElement).value })}
              />
            </label>
          )}
          {fields.includes('keys') && (
            <label class="field">
              <span>Text</span>
              <input
                ref={editFirstRef}
                type="text"
                class="mono"
                value={draft.text}
                spellcheck={false}
                onInput={(e) => setDraft({ ...draft, text: (e.currentTarget as HTMLInputElement).value })}
              />
            </label>
          )}
          {fields.includes('command') && (
            <label class="field">
              <span>Command</span>
              <input
                ref={editFirstRef}
                type="text"
                class="mono"
                value={draft.command}
                spellcheck={false}
                onInput={(e) => setDraft({ ...draft, command: (e.currentTarget as HTMLInputElement).value })}
                onKeyDown={(e) => {
                  if (e.key === 'Enter') {
                    e.preventDefault();
                    approveEdited();
                  }
                }}
              />
            </label>
          )}
          <div class="button-row">
            <button type="button" class="primary" disabled={busy} onClick={approveEdited}>
              Approve edited
            </button>
            <button type="button" disabled={busy} onClick={() => setPhase('idle')}>
              Cancel edit
            </button>
          </div>
        </div>
      )}

      {decides && phase === 'deny' && (
        <DenyForm
          reason={reason}
          onReason={setReason}
          placeholder="Optional: the agent reads it"
          busy={busy}
          onConfirm={confirmDeny}
          onCancel={() => setPhase('idle')}
        />
      )}

      {decides && (phase === 'idle' || phase === 'busy') && (
        <div class="decision-row">
          <button type="button" class="primary" disabled={busy || cd.expired} onClick={approve}>
            Approve
          </button>
          <button
            type="button"
            disabled={busy || cd.expired || !editable}
            title={editable ? 'Change the point, text or command, then approve' : notEditableReason(approval.action)}
            onClick={startEdit}
          >
            Edit
          </button>
          <button type="button" class="danger" disabled={busy || cd.expired} onClick={startDeny}>
            Deny
          </button>
          <span class="allow-similar">
            <button
              type="button"
              disabled={busy || cd.expired || approval.grantable === false}
              title={
                approval.grantable === false
                  ? 'The policy asks about each of these on its own: approve it without a grant'
                  : `Approve, and allow ${grantKind(approval).replace(/_/g, ' ')} actions in ${sandbox} for the minutes given`
              }
              onClick={allowSimilar}
            >
              Allow similar
            </button>
            <NumberField class="minutes" label="Minutes" min={1} max={1440} value={minutes} onInput={setMinutes} />
          </span>
          {busy && <span class="muted">Sending…</span>}
        </div>
      )}
    </section>
  );
}

/** What the agent wants, drawn over the frame (SVG in screen coordinates, scaled with the image). */
function FrameOverlay({
  target,
  width,
  height,
  draft,
  kind,
}: {
  target: Target;
  width: number;
  height: number;
  draft: EditDraft | null;
  kind: string;
}) {
  const r = Math.max(10, Math.round(Math.min(width, height) / 40));
  const sw = Math.max(2, Math.round(r / 5));
  const markerId = useMemo(() => `arrow-${Math.random().toString(36).slice(2, 8)}`, []);
  const point = (x: number, y: number, cls: string) => (
    <g class={cls}>
      <line x1={x - r * 2.2} y1={y} x2={x - r * 0.5} y2={y} stroke-width={sw} />
      <line x1={x + r * 0.5} y1={y} x2={x + r * 2.2} y2={y} stroke-width={sw} />
      <line x1={x} y1={y - r * 2.2} x2={x} y2={y - r * 0.5} stroke-width={sw} />
      <line x1={x} y1={y + r * 0.5} x2={x} y2={y + r * 2.2} stroke-width={sw} />
      <circle cx={x} cy={y} r={r} fill="none" stroke-width={sw} />
    </g>
  );
  const shapes = [];
  switch (target.kind) {
    case 'point':
      shapes.push(point(target.at.x, target.at.y, draft ? 'ov-orig' : 'ov-target'));
      break;
    case 'path':
      shapes.push(
        <g class={draft ? 'ov-orig' : 'ov-target'}>
          <polyline
            points={target.points.map((p) => `${p.x},${p.y}`).join(' ')}
            fill="none"
            stroke-width={sw}
            marker-end={`url(#${markerId})`}
          />
          <circle cx={target.from.x} cy={target.from.y} r={r * 0.6} fill="none" stroke-width={sw} />
        </g>,
      );
      break;
    case 'scroll': {
      const { x, y } = target.at;
      const len = r * 3;
      const ex = x + Math.sign(target.dx) * len;
      const ey = y + Math.sign(target.dy) * len;
      shapes.push(
        <g class={draft ? 'ov-orig' : 'ov-target'}>
          <circle cx={x} cy={y} r={r} fill="none" stroke-width={sw} />
          <line x1={x} y1={y} x2={ex} y2={ey} stroke-width={sw} marker-end={`url(#${markerId})`} />
        </g>,
      );
      break;
    }
    case 'region':
      shapes.push(
        <rect
          class="ov-target"
          x={target.from.x}
          y={target.from.y}
          width={Math.max(1, target.to.x - target.from.x)}
          height={Math.max(1, target.to.y - target.from.y)}
          fill="none"
          stroke-width={sw}
        />,
      );
      break;
    default:
      break;
  }
  if (draft && draft.x !== null && draft.y !== null) {
    if (kind === 'drag' && draft.startX !== null && draft.startY !== null) {
      shapes.push(
        <g class="ov-edit">
          <line x1={draft.startX} y1={draft.startY} x2={draft.x} y2={draft.y} stroke-width={sw} marker-end={`url(#${markerId})`} />
          <circle cx={draft.startX} cy={draft.startY} r={r * 0.6} fill="none" stroke-width={sw} />
        </g>,
      );
    } else {
      shapes.push(point(draft.x, draft.y, 'ov-edit'));
    }
  }
  return (
    <svg class="frame-overlay" viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="xMidYMid meet" aria-hidden="true">
      <defs>
        <marker id={markerId} viewBox="0 0 10 10" refX="8" refY="5" markerWidth="4" markerHeight="4" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" class="ov-arrow" />
        </marker>
      </defs>
      {shapes}
    </svg>
  );
}

/** Text as typed: newlines and tabs become visible marks (the keys they press). */
function showControlChars(text: string): string {
  return text.replace(/\r?\n/g, '⏎\n').replace(/\n$/, '').replace(/\t/g, '⇥');
}

/** Zero-width and bidirectional-control characters, which make text read as something it is not. */
const INVISIBLE = /[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/;

export function hasInvisible(text: string): boolean {
  return INVISIBLE.test(text);
}

function InvisibleWarning({ text }: { text: string }) {
  return hasInvisible(text) ? (
    <p class="warn-note">It holds invisible or direction-changing characters: what you see is not all it says.</p>
  ) : null;
}

/** The kind a grant from this approval covers (the server's `Approval::grant_kind`). */
function grantKind(a: Approval): string {
  return a.terminal ? 'terminal_command' : a.action.kind;
}

/** What keystrokes do in a terminal: the command lines they submit, and what a paste inserts. */
function TerminalDetail({ terminal }: { terminal: TerminalInput | null | undefined }) {
  if (!terminal) return null;
  return (
    <div class="terminal-detail" aria-label="In the terminal">
      <p class="muted">In the terminal{terminal.window ? ` “${terminal.window}”` : ''}, this runs:</p>
      {terminal.lines.map((l, i) => (
        <div key={i} class="terminal-line">
          <pre class="command-line" aria-label="Command line">
            <code>{l.text === '' ? '(an empty line)' : l.text}</code>
          </pre>
          <InvisibleWarning text={l.text} />
          {l.unknown && <p class="warn-note">The gateway cannot know the whole line: {l.unknown}.</p>}
          {l.unparsed && <p class="warn-note">It cannot be parsed: {l.unparsed}.</p>}
        </div>
      ))}
      {terminal.paste && (
        <div class="terminal-paste">
          <p class="muted">
            A paste from the {terminal.paste.source}
            {terminal.paste.truncated ? ' (cut to the first 64 KiB)' : ''}:
          </p>
          {terminal.paste.error ? (
            <p class="warn-note">It could not be read: {terminal.paste.error}.</p>
          ) : (
            <>
              <pre class="command-line" aria-label="Pasted text">
                <code>{terminal.paste.text === '' ? '(nothing)' : terminal.paste.text}</code>
              </pre>
              <InvisibleWarning text={terminal.paste.text} />
            </>
          )}
        </div>
      )}
    </div>
  );
}

/** Text, keys and commands, which have no place on the frame. */
function TargetDetail({ target }: { target: Target }) {
  switch (target.kind) {
    case 'text':
      return (
        <blockquote class="typed-text" aria-label="Text to type">
          {showControlChars(target.text)}
        </blockquote>
      );
    case 'keys':
      return (
        <p class="key-combo" aria-label="Key combination">
          {target.combo.split('+').map((k, i) => (
            <>
              {i > 0 && <span class="plus">+</span>}
              <kbd>{k}</kbd>
            </>
          ))}
        </p>
      );
    case 'command':
      return (
        <pre class="command-line" aria-label="Command line">
          <code>{target.line}</code>
        </pre>
      );
    default:
      return null;
  }
}
