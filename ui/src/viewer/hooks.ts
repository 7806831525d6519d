// `window.airlockViewer`: the stand-alone viewer's hooks for tests and `airlock bench stream`.
// State fields are updated in place on one object; the names are the ones the streaming tests,
// the benchmark and airlock-browser's diagnostics read, so keep them stable.
//
//   state            'connecting' | 'open' | 'closed'   (the socket; 'closed' while waiting to reconnect)
//   welcome, mode, lease   the last message of that type (null before)
//   steps            steps as received (checked), oldest first (a re-sent seq replaces in place; latest 500)
//   stills           {1: n, 2: n, 3: n} stills handled by purpose (counted once drawn or attached)
//   framesDecoded    video frames shown: WebRTC frames (requestVideoFrameCallback) plus WebCodecs
//                    decoder outputs drawn to the canvas, over reconnects
//   frameWidth, frameHeight   size of the last video frame shown
//   keyframesDecoded WebCodecs key frames shown
//   lastFrame        the last ShownFrame (shownMs = performance.timeOrigin + performance.now())
//   inputReplies     `input` messages (latest 500); errors: `error` messages (latest 200)
//   bytesReceived    binary bytes received on the socket; messages: text messages by type
//   transport, sandbox, focused, youControl, displayed ('video' | 'canvas' | null), clientErrors
//   probe(x, y, w, h)      → {r, g, b} average of that screen region as displayed, or null
//   waitFor(fn, timeoutMs) → Promise<boolean> (polls every 20 ms; default 10 s)
//   sendMove, sendButton, sendClick, sendWheel, sendKey, typeText (→ key events sent), releaseAll,
//   sendRaw(bytes), sendText(string)  — sent whether or not this operator holds control
//   takeover(), handback(note), setFocus(bool), rtcStats(), dataChannelOpen()

import type { ServerMessage, Step } from '../lib/api/types';
import type { RtcVideoStats, ShownFrame, ViewerConnection, ViewerTap } from '../lib/video/connection';
import { textToKeyEvents } from '../lib/video/keys';
import {
  encodeButton,
  encodeKey,
  encodeMove,
  encodeReleaseAll,
  encodeWheel,
  type ErrorMessage,
  type InputReply,
  type LeaseMessage,
  type ModeMessage,
  type Transport,
  type Welcome,
} from '../lib/video/wire';

export interface ViewerHooks {
  readonly state: string;
  readonly focused: boolean;
  readonly youControl: boolean;
  readonly displayed: 'video' | 'canvas' | null;
  transport: Transport;
  sandbox: string;
  welcome: Welcome | null;
  mode: ModeMessage | null;
  lease: LeaseMessage | null;
  steps: Step[];
  stills: Record<number, number>;
  framesDecoded: number;
  frameWidth: number;
  frameHeight: number;
  keyframesDecoded: number;
  lastFrame: ShownFrame | null;
  inputReplies: InputReply[];
  errors: ErrorMessage[];
  bytesReceived: number;
  messages: Record<string, number>;
  clientErrors: string[];
  probe(x: number, y: number, w?: number, h?: number): { r: number; g: number; b: number } | null;
  waitFor(pred: (v: ViewerHooks) => unknown, timeoutMs?: number): Promise<boolean>;
  sendMove(x: number, y: number): boolean;
  sendButton(button: number, down: boolean, x: number, y: number): boolean;
  sendClick(x: number, y: number, button?: number): boolean;
  sendWheel(dx: number, dy: number, x: number, y: number): boolean;
  sendKey(keysym: number, down: boolean): boolean;
  typeText(text: string): number;
  releaseAll(): boolean;
  sendRaw(bytes: Uint8Array | ArrayBuffer | number[]): boolean;
  sendText(text: string): boolean;
  takeover(): boolean;
  handback(note?: string | null): boolean;
  setFocus(focused: boolean): void;
  rtcStats(): Promise<RtcVideoStats | null>;
  dataChannelOpen(): boolean;
}

export interface HookElements {
  video: HTMLVideoElement;
  canvas: HTMLCanvasElement;
}

const keepLast = <T>(list: T[], item: T, max: number): void => {
  list.push(item);
  if (list.length > max) list.shift();
};

/** The counters a connection's tap fills in (before the connection exists). */
export class HookRecorder {
  welcome: Welcome | null = null;
  mode: ModeMessage | null = null;
  lease: LeaseMessage | null = null;
  steps: Step[] = [];
  stills: Record<number, number> = { 1: 0, 2: 0, 3: 0 };
  framesDecoded = 0;
  frameWidth = 0;
  frameHeight = 0;
  keyframesDecoded = 0;
  lastFrame: ShownFrame | null = null;
  inputReplies: InputReply[] = [];
  errors: ErrorMessage[] = [];
  bytesReceived = 0;
  messages: Record<string, number> = {};

  readonly tap: ViewerTap = {
    message: (m) => this.onMessage(m),
    frame: (f) => {
      this.framesDecoded++;
      this.frameWidth = f.width;
      this.frameHeight = f.height;
      if (f.key) this.keyframesDecoded++;
      this.lastFrame = f;
    },
    still: (s) => {
      this.stills[s.purpose] = (this.stills[s.purpose] ?? 0) + 1;
    },
    binaryBytes: (n) => {
      this.bytesReceived += n;
    },
  };

  private onMessage(m: ServerMessage): void {
    this.messages[m.type] = (this.messages[m.type] ?? 0) + 1;
    switch (m.type) {
      case 'welcome':
        this.welcome = m;
        break;
      case 'mode':
        this.mode = m;
        break;
      case 'lease':
        this.lease = m;
        break;
      case 'step': {
        const idx = this.steps.findIndex((x) => x.seq === m.step.seq);
        if (idx >= 0) this.steps[idx] = m.step;
        else keepLast(this.steps, m.step, 500);
        break;
      }
      case 'input':
        keepLast(this.inputReplies, m, 500);
        break;
      case 'error':
        keepLast(this.errors, m, 200);
        break;
      case 'answer':
        break;
    }
  }
}

const toBytes = (b: Uint8Array | ArrayBuffer | number[]): Uint8Array =>
  b instanceof Uint8Array ? b : b instanceof ArrayBuffer ? new Uint8Array(b) : Uint8Array.from(b);

/** Builds the hooks object over a connection and the elements it draws into. */
export function viewerHooks(
  rec: HookRecorder,
  conn: ViewerConnection,
  els: HookElements,
  meta: { sandbox: string; clientErrors: string[] },
): ViewerHooks {
  let probeCanvas: HTMLCanvasElement | null = null;
  let probeCtx: CanvasRenderingContext2D | null = null;
  const send = (bytes: Uint8Array): boolean => conn.sendInput(bytes);

  const probe = (x: number, y: number, w = 1, h = 1): { r: number; g: number; b: number } | null => {
    const d = conn.snapshot.displayed;
    if (!d) return null;
    let src: CanvasImageSource;
    if (d === 'video') {
      if (!(els.video.videoWidth > 0)) return null;
      src = els.video;
    } else src = els.canvas;
    const W = conn.screenW;
    const H = conn.screenH;
    if (!probeCanvas) {
      probeCanvas = document.createElement('canvas');
      probeCtx = probeCanvas.getContext('2d', { willReadFrequently: true });
    }
    if (!probeCtx) return null;
    if (probeCanvas.width !== W || probeCanvas.height !== H) {
      probeCanvas.width = W;
      probeCanvas.height = H;
    }
    probeCtx.drawImage(src, 0, 0, W, H);
    const x0 = Math.max(0, Math.min(W - 1, Math.floor(x)));
    const y0 = Math.max(0, Math.min(H - 1, Math.floor(y)));
    const w0 = Math.max(1, Math.min(W - x0, Math.floor(w) || 1));
    const h0 = Math.max(1, Math.min(H - y0, Math.floor(h) || 1));
    const px = probeCtx.getImageData(x0, y0, w0, h0).data;
    let r = 0;
    let g = 0;
    let b = 0;
    for (let i = 0; i + 2 < px.length; i += 4) {
      r += px[i] ?? 0;
      g += px[i + 1] ?? 0;
      b += px[i + 2] ?? 0;
    }
    const n = w0 * h0;
    return { r: Math.round(r / n), g: Math.round(g / n), b: Math.round(b / n) };
  };

  // Live fields read the connection's snapshot (Object.assign would copy a getter's value once).
  const snap = conn.snapshot;
  Object.defineProperties(rec, {
    state: { get: () => conn.snapshot.socket, enumerable: true },
    focused: { get: () => conn.snapshot.focused, enumerable: true },
    youControl: { get: () => conn.snapshot.youControl, enumerable: true },
    displayed: { get: () => conn.snapshot.displayed, enumerable: true },
  });
  const hooks = Object.assign(rec as HookRecorder & Pick<ViewerHooks, 'state' | 'focused' | 'youControl' | 'displayed'>, {
    transport: snap.transport,
    sandbox: meta.sandbox,
    clientErrors: meta.clientErrors,
    probe,
    waitFor: (pred: (v: ViewerHooks) => unknown, timeoutMs = 10000): Promise<boolean> =>
      new Promise<boolean>((resolve) => {
        const t0 = performance.now();
        const tick = (): void => {
          let ok = false;
          try {
            ok = Boolean(pred(hooks));
          } catch {
            ok = false;
          }
          if (ok) resolve(true);
          else if (performance.now() - t0 >= timeoutMs) resolve(false);
          else setTimeout(tick, 20);
        };
        tick();
      }),
    sendMove: (x: number, y: number) => send(encodeMove(x, y)),
    sendButton: (button: number, down: boolean, x: number, y: number) => send(encodeButton(button, down, x, y)),
    sendClick: (x: number, y: number, button = 0) =>
      send(encodeButton(button, true, x, y)) && send(encodeButton(button, false, x, y)),
    sendWheel: (dx: number, dy: number, x: number, y: number) => send(encodeWheel(dx, dy, x, y)),
    sendKey: (keysym: number, down: boolean) => send(encodeKey(keysym, down)),
    typeText: (text: string) => {
      let n = 0;
      for (const [ks, down] of textToKeyEvents(String(text))) if (send(encodeKey(ks, down))) n++;
      return n;
    },
    releaseAll: () => send(encodeReleaseAll()),
    sendRaw: (bytes: Uint8Array | ArrayBuffer | number[]) => send(toBytes(bytes)),
    sendText: (text: string) => conn.sendText(String(text)),
    takeover: () => conn.takeover(),
    handback: (note?: string | null) => conn.handback(note),
    setFocus: (focused: boolean) => conn.setFocus(Boolean(focused)),
    rtcStats: () => conn.rtcStats(),
    dataChannelOpen: () => conn.dataChannelOpen(),
  });
  return hooks;
}
