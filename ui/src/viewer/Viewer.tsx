// The stand-alone viewer page: one sandbox's screen, its command-view timeline, take control /
// hand back, focus, fit or 1:1. The media elements are made once and never replaced: the
// connection draws into them and the test hooks read them.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { ViewerConnection, ViewerSnapshot } from '../lib/video/connection';
import type { Scaling } from '../lib/video/geometry';
import { usePictureBox } from '../lib/video/picture';
import { decisionTone, showsStill, type TimelineStep } from '../lib/video/steps';

function connText(s: ViewerSnapshot, sandbox: string, now: number): string {
  if (!sandbox) return 'no sandbox';
  if (s.socket === 'connecting') return 'connecting…';
  if (s.socket === 'open') return s.welcome ? `connected · viewer ${s.welcome.viewer}` : 'connected';
  if (s.reconnectAt !== null) return `disconnected · retry in ${Math.max(0, Math.ceil((s.reconnectAt - now) / 1000))} s`;
  return 'disconnected';
}

function modeText(s: ViewerSnapshot): string {
  const m = s.mode;
  if (!m) return '—';
  const parts: string[] = [m.mode];
  if (m.codec) parts.push(m.codec);
  if (m.fps) parts.push(`${m.fps} fps`);
  if (m.bitrate_kbps) parts.push(`${m.bitrate_kbps} kbps`);
  return parts.join(' · ');
}

function leaseView(s: ViewerSnapshot): { text: string; holder: string } {
  const l = s.lease;
  if (!l) return { text: '—', holder: 'none' };
  if (l.you_control) return { text: 'You are in control', holder: 'you' };
  if (l.holder === 'human') return { text: `${l.operator ?? 'An operator'} is in control`, holder: 'human' };
  if (l.holder === 'agent') return { text: 'Agent is driving', holder: 'agent' };
  if (l.holder === 'paused') return { text: 'Paused', holder: 'paused' };
  return { text: l.holder, holder: 'none' };
}

function overlayText(s: ViewerSnapshot, sandbox: string): string {
  if (!sandbox) return 'No sandbox given (add ?sandbox=ID to the address)';
  if (s.socket === 'connecting' && !s.displayed) return 'Connecting…';
  if (s.socket === 'closed') return 'Disconnected — reconnecting';
  if (!s.displayed) return s.mode?.mode === 'video' ? 'Waiting for video…' : 'Waiting for the screen…';
  return '';
}

function fmtTime(at: number | null): string {
  if (at === null) return '';
  if (at > 1e11) {
    const d = new Date(at);
    const p = (v: number): string => String(v).padStart(2, '0');
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  const s = at / 1000;
  return `+${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, '0')}`;
}

function StepRow({ step }: { step: TimelineStep }) {
  const meta = [step.seq !== null ? `#${step.seq}` : '', step.actor ?? ''].filter(Boolean).join(' · ');
  const detail = step.detail ?? '';
  return (
    <li
      class="step"
      data-seq={step.seq ?? undefined}
      data-decision={step.decision ? decisionTone(step.decision) : ''}
      aria-label={`${step.kind}: ${step.title}${step.decision ? ` (${step.decision})` : ''}`}
    >
      {showsStill(step) && (
        <img
          class={step.stillUrl ? 'step-still loaded' : 'step-still'}
          src={step.stillUrl ?? undefined}
          alt={step.seq !== null ? `Step ${step.seq} screenshot` : 'Step screenshot'}
          decoding="async"
        />
      )}
      <div class="step-body">
        <div class="step-head">
          <span class="step-time">{fmtTime(step.at_ms)}</span>
          <span class="step-kind">{step.kind}</span>
          {step.decision && (
            <span class={`badge d-${decisionTone(step.decision)}`} aria-label={`decision ${step.decision}`}>
              {step.decision}
            </span>
          )}
        </div>
        <div class="step-title" title={step.title}>
          {step.title}
        </div>
        <div class="step-meta" title={meta}>
          {meta}
        </div>
        {detail && (
          <div class="step-detail" title={detail.slice(0, 4000)}>
            {detail.length > 300 ? `${detail.slice(0, 300)}…` : detail}
          </div>
        )}
      </div>
    </li>
  );
}

export function Viewer({
  conn,
  sandbox,
  scaling: initialScaling = 'fit',
}: {
  conn: ViewerConnection;
  sandbox: string;
  /** How the screen is scaled at first (`scale=1` in the address: 1:1). */
  scaling?: Scaling;
}) {
  const [s, setS] = useState<ViewerSnapshot>(conn.snapshot);
  const [scaling, setScaling] = useState(initialScaling);
  const screenRef = useRef<HTMLElement>(null);
  const [note, setNote] = useState('');
  const [now, setNow] = useState(() => performance.now());
  const [noticeShown, setNoticeShown] = useState(false);
  useEffect(() => conn.subscribe(setS), [conn]);
  useEffect(() => {
    if (s.reconnectAt === null) return undefined;
    const t = setInterval(() => setNow(performance.now()), 500);
    return () => clearInterval(t);
  }, [s.reconnectAt]);
  useEffect(() => {
    if (!s.notice) return undefined;
    setNoticeShown(true);
    const t = setTimeout(() => setNoticeShown(false), 5000);
    return () => clearTimeout(t);
  }, [s.notice]);

  const open = s.socket === 'open';
  const conn_ = connText(s, sandbox, now);
  const mode = modeText(s);
  const lease = leaseView(s);
  const overlay = overlayText(s, sandbox);
  const picture = usePictureBox(screenRef, s.welcome?.width ?? 1280, s.welcome?.height ?? 800, scaling);
  const handBack = (): void => {
    conn.handback(note);
    setNote('');
  };
  return (
    <>
      <header class="topbar">
        <span class="brand">Airlock</span>
        <span id="sandbox" class="sandbox" aria-label="Sandbox" title={sandbox ? `Sandbox ${sandbox}` : 'No sandbox'}>
          {s.welcome?.sandbox || sandbox || '—'}
        </span>
        <span id="conn" class="conn" role="status" aria-label="Connection" data-state={s.socket} title={`${conn_} (transport ${s.transport})`}>
          <span class="dot" aria-hidden="true" />
          <span id="conn-text">{conn_}</span>
        </span>
        <span id="mode" class="mode" aria-label="Stream mode" title={s.mode?.reason ? `${mode} — ${s.mode.reason}` : mode}>
          {mode}
        </span>
        <span class="spacer" />
        <span id="lease" class="lease" role="status" aria-label="Control" data-holder={lease.holder}
          title={s.lease ? `${lease.text} (epoch ${s.lease.epoch})` : 'No lease information yet'}>
          {lease.text}
        </span>
        <button id="btn-take" type="button" aria-label="Take control" disabled={!open || s.youControl} onClick={() => conn.takeover()}>
          Take control
        </button>
        <input
          id="note"
          type="text"
          aria-label="Hand-back note"
          placeholder="Note for the agent (optional)"
          maxLength={500}
          autoComplete="off"
          spellcheck={false}
          value={note}
          onInput={(e) => setNote(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && s.youControl) {
              e.preventDefault();
              handBack();
            }
          }}
        />
        <button id="btn-hand" type="button" aria-label="Hand back" disabled={!open || !s.youControl} onClick={handBack}>
          Hand back
        </button>
        <button
          id="btn-focus"
          type="button"
          aria-label="Focus"
          aria-pressed={s.focused}
          title={s.focused ? 'Focused: live video requested (click to unfocus)' : 'Not focused: command view (click to focus)'}
          onClick={() => conn.setFocus(!s.focused)}
        >
          Focus
        </button>
        <button
          id="btn-scale"
          type="button"
          title={scaling === 'fit' ? 'One screen pixel per device pixel; the screen scrolls when it does not fit' : 'Scale the screen to fit (never past 1:1)'}
          onClick={() => setScaling(scaling === 'fit' ? '1:1' : 'fit')}
        >
          {scaling === 'fit' ? '1:1' : 'Fit'}
        </button>
      </header>
      <main class="main">
        <section ref={screenRef} class="screen" aria-label="Screen">
          <div id="area" class="area" data-scaling={scaling}>
            <div
              id="stage"
              class="stage"
              tabIndex={0}
              aria-label="Sandbox screen"
              data-control={String(s.youControl)}
              data-transport={s.transport}
              data-pixelated={String(picture?.pixelated ?? false)}
              style={picture ? { width: `${picture.width}px`, height: `${picture.height}px` } : undefined}
            >
              <video id="video" class={s.displayed === 'video' ? 'layer shown' : 'layer'} aria-label="Live video" muted autoplay playsInline disablePictureInPicture />
              <canvas id="canvas" class={s.displayed === 'canvas' ? 'layer shown' : 'layer'} aria-label="Screen canvas" width={1280} height={800} />
              <canvas id="refine" class="layer refine" aria-hidden="true" width={1280} height={800} />
            </div>
          </div>
          <div id="overlay" class={s.displayed ? 'overlay over-content' : 'overlay'} hidden={overlay === ''}>
            {overlay}
          </div>
          <div id="notice" class="notice" role="alert" hidden={!noticeShown || !s.notice}>
            {s.notice?.text ?? ''}
          </div>
        </section>
        <aside class="timeline" aria-label="Timeline">
          <div class="timeline-head">
            <span>Timeline</span>
            <span id="step-count" class="muted" aria-label="Step count">
              {s.steps.length}
            </span>
          </div>
          <ol id="steps" class="steps" aria-label="Steps">
            {s.steps.map((step) => (
              <StepRow key={step.key} step={step} />
            ))}
          </ol>
        </aside>
      </main>
    </>
  );
}
