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
//   probe(x, y, w, h)      → {r, g, b} average of that screen region as displayed (the picture
//                    with the refinement layer over it), or null
//   shownPixels(x, y, w, h) → RGBA bytes of that screen region as displayed, or null
//   refinedPatches   exact patches drawn on the refinement layer since it was last cleared
//   setReference(name, pngBase64) → Promise<boolean>: keeps a source picture (e.g. a guest screenshot)
//   fidelity(name, {area, skip, layer}) → {differing, pixels, psnrDb} of the shown picture against it
//                    (layer false: the video or canvas alone, without the refinement layer)
//   referenceArea(a, b) → bounding box where two references differ, or null
//   untilExact(name, timeoutMs, area) → Promise<{ms, afterLastFrameMs} | null>: when the shown picture
//                    first equals it (ms after the call, and after the last video frame shown before)
//   watchFidelity(name, durationMs, {area, skip}) → Promise<{frames, exactFrames, worstPsnrDb}> sampled
//                    every 100 ms
//   waitFor(fn, timeoutMs) → Promise<boolean> (polls every 20 ms; default 10 s)
//   sendMove, sendButton, sendClick, sendWheel, sendKey, typeText (→ key events sent), releaseAll,
//   sendRaw(bytes), sendText(string)  — sent whether or not this operator holds control
//   takeover(), handback(note), setFocus(bool), rtcStats(), dataChannelOpen()

import type { ServerMessage, Step } from '../lib/api/types';
import type { RtcVideoStats, ShownFrame, ViewerConnection, ViewerTap } from '../lib/video/connection';
import { compare, differingArea, type Area, type Fidelity } from '../lib/video/fidelity';
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
  shownPixels(x: number, y: number, w: number, h: number, layer?: boolean): Uint8ClampedArray | null;
  readonly refinedPatches: number;
  setReference(name: string, pngBase64: string): Promise<boolean>;
  fidelity(name: string, opts?: FidelityOptions): Fidelity | null;
  referenceArea(a: string, b: string): Area | null;
  untilExact(name: string, timeoutMs: number, area?: Area | null): Promise<{ ms: number; afterLastFrameMs: number | null } | null>;
  watchFidelity(
    name: string,
    durationMs: number,
    opts?: FidelityOptions,
  ): Promise<{ frames: number; exactFrames: number; worstPsnrDb: number | null }>;
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

/** What to compare: a screen area, an area inside it to skip, with or without the refinement layer. */
export interface FidelityOptions {
  area?: Area | null;
  skip?: Area | null;
  layer?: boolean;
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

  /** What the operator sees of a screen region, RGBA. */
  const shownPixels = (x: number, y: number, w: number, h: number, layer = true): Uint8ClampedArray | null => {
    const d = conn.snapshot.displayed;
    if (!d) return null;
    if (d === 'video' && !(els.video.videoWidth > 0)) return null;
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
    conn.drawShown(probeCtx, layer);
    const x0 = Math.max(0, Math.min(W - 1, Math.floor(x)));
    const y0 = Math.max(0, Math.min(H - 1, Math.floor(y)));
    const w0 = Math.max(1, Math.min(W - x0, Math.floor(w) || 1));
    const h0 = Math.max(1, Math.min(H - y0, Math.floor(h) || 1));
    return probeCtx.getImageData(x0, y0, w0, h0).data;
  };

  const probe = (x: number, y: number, w = 1, h = 1): { r: number; g: number; b: number } | null => {
    const px = shownPixels(x, y, w, h);
    if (!px) return null;
    let r = 0;
    let g = 0;
    let b = 0;
    for (let i = 0; i + 2 < px.length; i += 4) {
      r += px[i] ?? 0;
      g += px[i + 1] ?? 0;
      b += px[i + 2] ?? 0;
    }
    const n = Math.max(1, px.length / 4);
    return { r: Math.round(r / n), g: Math.round(g / n), b: Math.round(b / n) };
  };

  const references = new Map<string, { pixels: Uint8ClampedArray; width: number; height: number }>();
  const setReference = async (name: string, pngBase64: string): Promise<boolean> => {
    const bytes = Uint8Array.from(atob(pngBase64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    try {
      const c = document.createElement('canvas');
      c.width = bmp.width;
      c.height = bmp.height;
      const ctx = c.getContext('2d', { willReadFrequently: true });
      if (!ctx) return false;
      ctx.drawImage(bmp, 0, 0);
      references.set(name, { pixels: ctx.getImageData(0, 0, bmp.width, bmp.height).data, width: bmp.width, height: bmp.height });
      return true;
    } finally {
      bmp.close();
    }
  };
  const fidelity = (name: string, opts: FidelityOptions = {}): Fidelity | null => {
    const ref = references.get(name);
    if (!ref) return null;
    // Only the area asked for is read back (reading the whole screen takes a busy page tens of ms).
    const a = opts.area ?? { x: 0, y: 0, width: ref.width, height: ref.height };
    const shown = shownPixels(a.x, a.y, a.width, a.height, opts.layer ?? true);
    if (!shown) return null;
    const source = new Uint8ClampedArray(a.width * a.height * 4);
    for (let row = 0; row < a.height; row++) {
      const from = ((a.y + row) * ref.width + a.x) * 4;
      source.set(ref.pixels.subarray(from, from + a.width * 4), row * a.width * 4);
    }
    const skip = opts.skip ? { ...opts.skip, x: opts.skip.x - a.x, y: opts.skip.y - a.y } : null;
    const f = compare(shown, source, a.width, a.height, null, skip);
    return f.where ? { ...f, where: { ...f.where, x: f.where.x + a.x, y: f.where.y + a.y } } : f;
  };
  // The next animation frame, or 50 ms when the page gets none (hidden pages get no frames).
  const nextFrame = (): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, 50);
      requestAnimationFrame(() => {
        clearTimeout(t);
        resolve();
      });
    });
  const round = (ms: number): number => Math.round(ms * 10) / 10;
  const untilExact = async (
    name: string,
    timeoutMs: number,
    area?: Area | null,
  ): Promise<{ ms: number; afterLastFrameMs: number | null } | null> => {
    const t0 = performance.now();
    while (performance.now() - t0 < timeoutMs) {
      const f = fidelity(name, { area });
      const now = performance.now();
      if (f && f.differing === 0) {
        const last = rec.lastFrame ? performance.timeOrigin + now - rec.lastFrame.shownMs : null;
        return { ms: round(now - t0), afterLastFrameMs: last === null || last > now - t0 ? null : round(last) };
      }
      await nextFrame();
      if (!area) await sleep(20); // the whole screen: leave the page time for its own work
    }
    return null;
  };
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const watchFidelity = async (
    name: string,
    durationMs: number,
    opts: FidelityOptions = {},
  ): Promise<{ frames: number; exactFrames: number; worstPsnrDb: number | null }> => {
    const t0 = performance.now();
    let frames = 0;
    let exactFrames = 0;
    let worst: number | null = null;
    while (performance.now() - t0 < durationMs) {
      const f = fidelity(name, opts);
      if (f) {
        frames++;
        if (f.differing === 0) exactFrames++;
        else if (f.psnrDb !== null && (worst === null || f.psnrDb < worst)) worst = f.psnrDb;
      }
      // A sample every 100 ms: reading the whole screen back on every frame would slow the page
      // (and its acknowledgements) enough to change what it is sent.
      await sleep(100);
    }
    return { frames, exactFrames, worstPsnrDb: worst };
  };
  const referenceArea = (a: string, b: string): Area | null => {
    const ra = references.get(a);
    const rb = references.get(b);
    if (!ra || !rb || ra.width !== rb.width || ra.height !== rb.height) return null;
    return differingArea(ra.pixels, rb.pixels, ra.width, ra.height);
  };

  // Live fields read the connection's snapshot (Object.assign would copy a getter's value once).
  const snap = conn.snapshot;
  Object.defineProperties(rec, {
    state: { get: () => conn.snapshot.socket, enumerable: true },
    focused: { get: () => conn.snapshot.focused, enumerable: true },
    youControl: { get: () => conn.snapshot.youControl, enumerable: true },
    displayed: { get: () => conn.snapshot.displayed, enumerable: true },
    refinedPatches: { get: () => conn.refinedPatches, enumerable: true },
  });
  const hooks = Object.assign(rec as HookRecorder & Pick<ViewerHooks, 'state' | 'focused' | 'youControl' | 'displayed' | 'refinedPatches'>, {
    transport: snap.transport,
    sandbox: meta.sandbox,
    clientErrors: meta.clientErrors,
    probe,
    shownPixels,
    setReference,
    fidelity,
    referenceArea,
    untilExact,
    watchFidelity,
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
