// One sandbox: the live screen (focused viewer), take control / hand back, the command-view
// timeline, agents asking for a human, this sandbox's pending approvals and network asks, its
// network, and view-only links. A watcher sees it all without the buttons; a view link sees the
// live screen and the command view only.

import { useEffect, useRef, useState } from 'preact/hooks';
import { holderText } from '../lib/actions';
import { errorMessage } from '../lib/backend';
import { clock } from '../lib/format';
import { num } from '../lib/num';
import { can, linkSandbox } from '../lib/roles';
import { navigate } from '../lib/router';
import { egressList, holderOf, humanList, pendingList, sandboxState, useAppState } from '../lib/store';
import type { HumanRequest } from '../lib/api/types';
import type { ViewerConnection, ViewerSnapshot } from '../lib/video/connection';
import type { Scaling } from '../lib/video/geometry';
import { InputCapture } from '../lib/video/input';
import { isTakeoverShortcut } from '../lib/video/keys';
import { usePictureBox } from '../lib/video/picture';
import { decisionTone, showsStill } from '../lib/video/steps';
import { ApprovalCard } from '../components/ApprovalCard';
import { EgressCard } from '../components/EgressCard';
import { FilesPanel, type DropTarget } from '../components/FilesPanel';
import { HumanRequestCard } from '../components/HumanRequestCard';
import { LinksPanel } from '../components/LinksPanel';
import { NetworkPanel } from '../components/NetworkPanel';
import { useBackend } from '../components/context';
import { Alert, Modal, useViewer } from '../components/common';

export function Session({ id }: { id: string }) {
  const backend = useBackend();
  const app = useAppState();
  const info = app.sandboxes.get(id);
  const [focused, setFocused] = useState(() => typeof document === 'undefined' || !document.hidden);
  const { conn, snap } = useViewer(id, info ? backend : null, { focused });
  const [handing, setHanding] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [scaling, setScaling] = useState<Scaling>('fit');
  const holder = holderOf(app, id);
  const me = app.me;
  const iControl = holder?.holder === 'human' && me !== null && holder.operator === me;
  const drive = can(app.principal, 'drive');
  const viaLink = linkSandbox(app.principal) !== null;
  const files = !viaLink && can(app.principal, 'files');
  // Files dropped anywhere on the view go to the files panel's folder.
  const dropRef = useRef<((files: File[]) => void) | null>(null);
  const [dragging, setDragging] = useState(false);
  const helpWanted = humanList(app, id);
  const pending = pendingList(app, id);
  const asks = egressList(app, id);
  // Approvals and network asks together, oldest first.
  const waiting = [
    ...pending.map((a) => ({ at: num(a.requested_ms), id: num(a.id), card: <ApprovalCard key={`approval:${a.sandbox}/${num(a.id)}`} approval={a} compact /> })),
    ...asks.map((a) => ({ at: num(a.requested_ms), id: num(a.id), card: <EgressCard key={`egress:${a.sandbox}/${num(a.id)}`} ask={a} compact /> })),
  ].sort((a, b) => a.at - b.at || a.id - b.id);

  // The video follows the window's visibility: hidden windows get the command view.
  useEffect(() => {
    const on = (): void => setFocused(!document.hidden);
    document.addEventListener('visibilitychange', on);
    return () => document.removeEventListener('visibilitychange', on);
  }, []);

  // What the last granted take / hand back leads to, until the lease event shows it.
  const expectControl = useRef<boolean | null>(null);
  const lease = async (command: 'take' | 'hand_back' | 'pause' | 'resume', note: string | null = null): Promise<boolean> => {
    setBusy(true);
    setError(null);
    try {
      await backend.lease(id, { command, note: command === 'hand_back' && note && note.trim() ? note.trim() : null });
      if (command === 'take') expectControl.current = true;
      if (command === 'hand_back') expectControl.current = false;
      return true;
    } catch (e) {
      setError(errorMessage(e));
      return false;
    } finally {
      setBusy(false);
    }
  };

  // Ctrl+Alt+Enter toggles control; it is never forwarded to the sandbox.
  // A press while a take or hand back is still on its way is kept and applied once it lands.
  const toggleRef = useRef<() => void>(() => undefined);
  const queuedToggle = useRef(false);
  toggleRef.current = () => {
    if (!drive) return;
    if (busy) {
      queuedToggle.current = !queuedToggle.current;
      return;
    }
    if (iControl) {
      setHanding(false);
      void lease('hand_back');
    } else void lease('take');
  };
  useEffect(() => {
    // A queued press waits until the lease shown agrees with the request that just landed (the
    // reply can come before the lease event), so it toggles from the right state.
    if (expectControl.current !== null && expectControl.current !== iControl) return;
    expectControl.current = null;
    if (!busy && queuedToggle.current) {
      queuedToggle.current = false;
      toggleRef.current();
    }
  }, [busy, iControl]);
  useEffect(() => {
    const on = (e: KeyboardEvent): void => {
      if (!isTakeoverShortcut(e)) return;
      e.preventDefault();
      e.stopPropagation();
      toggleRef.current();
    };
    document.addEventListener('keydown', on, true);
    return () => document.removeEventListener('keydown', on, true);
  }, []);

  if (!info) {
    return (
      <div class="view session-view">
        <div class="view-head">
          <h1>Sandbox {id}</h1>
        </div>
        <p class="empty">
          {app.loaded ? `No sandbox ${id} is supervised here (it may have been destroyed).` : 'Loading…'}{' '}
          {!viaLink && (
            <button type="button" onClick={() => navigate({ view: 'grid' })}>
              Back to the grid
            </button>
          )}
        </p>
      </div>
    );
  }

  const banner = iControl
    ? 'You are in control — agent actions are refused'
    : holder?.holder === 'human'
      ? `${holder.operator} is in control`
      : holder?.holder === 'paused'
        ? `Agent is paused (by ${holder.by})`
        : holderText(holder, me);
  const state = sandboxState(app, id);

  const hasFiles = (e: DragEvent): boolean => !!e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  const dropProps = files
    ? {
        onDragOver: (e: DragEvent) => {
          if (!hasFiles(e)) return;
          e.preventDefault();
          if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
          setDragging(true);
        },
        onDragLeave: (e: DragEvent) => {
          if (e.currentTarget === e.target) setDragging(false);
        },
        onDrop: (e: DragEvent) => {
          if (!hasFiles(e)) return;
          e.preventDefault();
          setDragging(false);
          dropRef.current?.([...(e.dataTransfer?.files ?? [])]);
        },
      }
    : {};

  return (
    <div class={`view session-view ${dragging ? 'dropping' : ''}`} {...dropProps}>
      <div class="view-head">
        <h1 class="mono">{id}</h1>
        <span class={`state-chip state-${state}`}>{state}</span>
        <span class="muted small">
          {info.backend} · {info.profile} · {info.screen.width}×{info.screen.height}
        </span>
        <span class="spacer" />
        {!viaLink && (
          <button type="button" onClick={() => navigate({ view: 'ledger', id })}>
            Ledger
          </button>
        )}
      </div>
      <div class="session-layout">
        <div class="live-column">
          <div class={`control-bar holder-${iControl ? 'you' : (holder?.holder ?? 'none')}`}>
            <span class="control-banner" role="status">
              {banner}
            </span>
            <span class="spacer" />
            {drive && !iControl && (
              <button
                type="button"
                class="primary"
                disabled={busy || holder?.holder === 'human'}
                title="Take the mouse and keyboard (Ctrl+Alt+Enter)"
                onClick={() => void lease('take')}
              >
                Take control
              </button>
            )}
            {drive && iControl && (
              <button
                type="button"
                class="primary"
                disabled={busy}
                onClick={() => setHanding(true)}
                title={helpWanted.length > 0 ? 'The agent asked for help: your note answers it' : 'Ctrl+Alt+Enter hands back at once'}
              >
                {helpWanted.length > 0 ? 'Hand back with a note' : 'Hand back'}
              </button>
            )}
            {drive &&
              (holder?.holder === 'paused' ? (
                <button type="button" disabled={busy} onClick={() => void lease('resume')}>
                  Resume agent
                </button>
              ) : (
                <button type="button" disabled={busy || iControl} onClick={() => void lease('pause')}>
                  Pause agent
                </button>
              ))}
            <ScalingButton scaling={scaling} onChange={setScaling} />
          </div>
          <Alert message={error} />
          {!viaLink && helpWanted.length > 0 && (
            <div class="human-banner" role="region" aria-label="The agent asks for a human">
              {helpWanted.map((r) => (
                <HumanRequestCard key={`human:${r.sandbox}/${num(r.request)}`} request={r} compact />
              ))}
            </div>
          )}
          <LiveView id={id} conn={conn} snap={snap} inControl={iControl} drive={drive} scaling={scaling} />
          {files && <FilesPanel sandbox={id} drop={dropRef as DropTarget} />}
          {!viaLink && <NetworkPanel sandbox={id} />}
        </div>
        <aside class="side-column">
          {!viaLink && can(app.principal, 'links') && <LinksPanel sandbox={id} />}
          {!viaLink && waiting.length > 0 && (
            <div class="session-approvals">
              <h2>
                Waiting for you <span class="count-badge">{waiting.length}</span>
              </h2>
              {waiting.map((w) => w.card)}
            </div>
          )}
          <Timeline snap={snap} />
        </aside>
      </div>
      {handing && (
        <HandBackDialog
          busy={busy}
          requests={helpWanted}
          onCancel={() => setHanding(false)}
          onConfirm={async (note) => {
            if (await lease('hand_back', note)) setHanding(false);
          }}
        />
      )}
    </div>
  );
}

export function HandBackDialog({
  busy,
  requests,
  onCancel,
  onConfirm,
}: {
  busy: boolean;
  /** Open requests for a human in this sandbox: the note is the agent's answer then. */
  requests: readonly HumanRequest[];
  onCancel: () => void;
  onConfirm: (note: string) => void | Promise<void>;
}) {
  const [note, setNote] = useState('');
  const asked = requests[0];
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (asked) ref.current?.focus();
  }, []);
  return (
    <Modal title={asked ? 'Answer the agent and hand back' : 'Hand control back to the agent'} onClose={onCancel}>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void onConfirm(note);
        }}
      >
        {asked && (
          <p class="human-asked">
            The agent asked: <q>{asked.reason}</q>
          </p>
        )}
        <label class={`field ${asked ? 'note-answer' : ''}`}>
          <span>{asked ? 'Your answer — the agent will get this note' : 'Note to the agent'}</span>
          <textarea
            ref={ref}
            rows={asked ? 6 : 4}
            maxLength={1000}
            value={note}
            placeholder={asked ? 'What you did (logged in, solved it…) and what it should do next' : 'Optional: what you changed, what it should do next'}
            onInput={(e) => setNote((e.currentTarget as HTMLTextAreaElement).value)}
          />
        </label>
        <p class="hint">The agent gets a summary of what you did, your note, and a fresh screenshot.</p>
        <div class="button-row end">
          <button type="button" onClick={onCancel} disabled={busy}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            Hand back to agent
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** Switches the live picture between fitting its space and one screen pixel per device pixel. */
function ScalingButton({ scaling, onChange }: { scaling: Scaling; onChange: (s: Scaling) => void }) {
  return scaling === 'fit' ? (
    <button type="button" title="One screen pixel per device pixel; the screen scrolls when it does not fit" onClick={() => onChange('1:1')}>
      1:1
    </button>
  ) : (
    <button type="button" title="Scale the screen to fit (never past 1:1)" onClick={() => onChange('fit')}>
      Fit
    </button>
  );
}

function LiveView({
  id,
  conn,
  snap,
  inControl,
  drive,
  scaling,
}: {
  id: string;
  conn: ViewerConnection | null;
  snap: ViewerSnapshot | null;
  inControl: boolean;
  /** Whether this operator may drive at all (a watcher's view takes no input). */
  drive: boolean;
  scaling: Scaling;
}) {
  const boxRef = useRef<HTMLDivElement>(null);
  const stageRef = useRef<HTMLDivElement>(null);
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const videoRef = useRef<HTMLVideoElement>(null);
  const refineRef = useRef<HTMLCanvasElement>(null);
  const [cursor, setCursor] = useState<{ x: number; y: number } | null>(null);
  const [locked, setLocked] = useState(false);

  useEffect(() => {
    if (!conn) return;
    conn.attach({ canvas: canvasRef.current, video: videoRef.current, refine: refineRef.current });
    return () => conn.attach({ canvas: null, video: null, refine: null });
  }, [conn]);

  useEffect(() => {
    const stage = stageRef.current;
    if (!conn || !stage || !drive) return;
    const cap = new InputCapture(stage, conn, { onPointer: setCursor, onLockChange: setLocked });
    return () => cap.dispose();
  }, [conn, drive]);

  // Leaving control releases the pointer lock.
  useEffect(() => {
    if (!inControl && typeof document !== 'undefined' && document.pointerLockElement === stageRef.current) {
      document.exitPointerLock();
    }
  }, [inControl]);

  const displayed = snap?.displayed ?? null;
  const w = snap?.welcome?.width ?? 1280;
  const h = snap?.welcome?.height ?? 800;
  const picture = usePictureBox(boxRef, w, h, scaling);
  const live = `Live screen of ${id}`;
  let overlay = '';
  if (!snap || snap.socket === 'connecting') overlay = displayed ? '' : 'Connecting…';
  else if (snap.socket === 'closed') overlay = 'Viewer disconnected — reconnecting…';
  else if (!displayed) overlay = snap.mode?.mode === 'video' ? 'Waiting for video…' : 'Waiting for the screen…';
  const mode = snap?.mode;
  const modeText = mode
    ? [mode.mode === 'command' ? 'command view' : mode.mode, mode.codec, mode.fps ? `${mode.fps} fps` : '', mode.bitrate_kbps ? `${mode.bitrate_kbps} kbps` : '']
        .filter(Boolean)
        .join(' · ')
    : '';
  // The box takes the column's width; the stage is the picture, sized to fit the box or 1:1 (then
  // the box scrolls). The refine canvas, on top, gets lossless patches of regions at rest.
  return (
    <div class="live">
      <div ref={boxRef} class={`live-box ${inControl ? 'controlling' : ''}`} style={{ aspectRatio: `${w} / ${h}` }}>
        <div class={`live-scroll ${scaling === '1:1' ? 'scrolls' : ''}`}>
          <div
            ref={stageRef}
            class={`stage ${inControl ? 'controlling' : ''} ${locked ? 'locked' : ''} ${picture?.pixelated ? 'pixelated' : ''}`}
            tabIndex={0}
            aria-label={inControl ? `Control ${id}: keyboard and mouse go to the sandbox` : `Screen of ${id}`}
            style={picture ? { width: `${picture.width}px`, height: `${picture.height}px` } : undefined}
          >
            <canvas
              ref={canvasRef}
              class={`layer ${displayed === 'video' ? '' : 'shown'}`}
              aria-label={displayed === 'video' ? undefined : live}
              aria-hidden={displayed === 'video' ? true : undefined}
              role="img"
              width={w}
              height={h}
              data-frames="0"
            />
            <video
              ref={videoRef}
              class={`layer ${displayed === 'video' ? 'shown' : ''}`}
              aria-label={displayed === 'video' ? live : undefined}
              aria-hidden={displayed === 'video' ? undefined : true}
              muted
              autoplay
              playsInline
              disablePictureInPicture
              data-frames="0"
            />
            <canvas ref={refineRef} class="layer refine" aria-hidden="true" width={w} height={h} />
            {inControl && cursor && locked && (
              <span
                class="local-cursor"
                aria-hidden="true"
                style={{ left: `${(cursor.x / w) * 100}%`, top: `${(cursor.y / h) * 100}%` }}
              />
            )}
          </div>
        </div>
        {overlay && <div class="stage-overlay">{overlay}</div>}
      </div>
      <div class="live-foot small muted">
        <span class="live-mode">{modeText}</span>
        {mode?.reason && <span title={mode.reason}> — {mode.reason}</span>}
        <span class="spacer" />
        {inControl && (
          <span>{locked ? 'Pointer locked — Esc releases it' : 'Click the screen to capture the pointer'} · Ctrl+Alt+Enter hands back</span>
        )}
      </div>
      {snap?.notice && (
        <p class="notice small" role="alert" key={snap.notice.at}>
          {snap.notice.text}
        </p>
      )}
    </div>
  );
}

export function Timeline({ snap }: { snap: ViewerSnapshot | null }) {
  const steps = snap?.steps ?? [];
  return (
    <section class="timeline" aria-labelledby="timeline-title">
      <h2 id="timeline-title">
        Command view <span class="muted small">newest first</span>
      </h2>
      <ol aria-label="Command view timeline" class="steps">
        {steps.map((s) => (
          <li key={s.key} class={`step tone-${decisionTone(s.decision)} ${showsStill(s) ? 'has-still' : ''}`} data-seq={s.seq ?? undefined}>
            {showsStill(s) && (
              <span class="step-still-box">
                {s.stillUrl ? <img src={s.stillUrl} alt={`Screen after step ${s.seq ?? ''}`.trim()} /> : null}
              </span>
            )}
            <span class="step-body">
              <span class="step-head">
                <span class="step-time">{s.at_ms !== null ? clock(s.at_ms) : ''}</span>
                <span class="step-kind">{s.kind}</span>
                {s.decision && <span class={`badge tone-${decisionTone(s.decision)}`}>{s.decision}</span>}
              </span>
              <span class="step-title" title={s.title}>
                {s.title}
              </span>
              {(s.actor || s.detail) && (
                <span class="step-detail muted" title={s.detail ?? undefined}>
                  {[s.actor, s.detail].filter(Boolean).join(' · ')}
                </span>
              )}
            </span>
          </li>
        ))}
      </ol>
      {steps.length === 0 && <p class="empty small">No steps yet: they appear as the agent acts.</p>}
    </section>
  );
}
