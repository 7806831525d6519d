// One viewer socket (`/api/sandboxes/{id}/view`): hello, welcome/mode/lease/step messages,
// WebCodecs video drawn to a canvas, WebRTC video in a <video> where RTCPeerConnection exists,
// stills (thumbnails, step stills, stills-mode regions), operator input, take over / hand back,
// focus changes and reconnects. Framework-free: a component gives it elements and listens.

import { backoffDelay } from '../backoff';
import { attachStill, upsertStep, type TimelineStep } from './steps';
import {
  H264_CODEC,
  STILL_FRAME,
  STILL_REFINE,
  STILL_STEP,
  STILL_THUMBNAIL,
  TAG_STILL,
  TAG_VIDEO,
  emptyStats,
  encodeReleaseAll,
  handbackMessage,
  helloMessage,
  parseServerText,
  parseStill,
  parseVideo,
  type ClientMessage,
  type DamageMessage,
  type LeaseMessage,
  type ModeMessage,
  type ServerMessage,
  type Step,
  type Still,
  type Transport,
  type VideoCodec,
  type VideoUnit,
  type Welcome,
} from './wire';

export type SocketState = 'connecting' | 'open' | 'closed';
export type Displayed = 'video' | 'canvas' | null;

export interface ViewerSnapshot {
  socket: SocketState;
  transport: Transport;
  focused: boolean;
  welcome: Welcome | null;
  mode: ModeMessage | null;
  lease: LeaseMessage | null;
  youControl: boolean;
  /** Which element shows the screen now. */
  displayed: Displayed;
  /** Frames shown so far (video frames, stills-mode regions and thumbnails drawn), over reconnects. */
  framesShown: number;
  /** Object URL of the latest thumbnail (kept until the next one). */
  thumbnailUrl: string | null;
  /** Command-view steps, newest first. */
  steps: TimelineStep[];
  /** The latest notice for the operator (server error, refused input, local decoder problem). */
  notice: { text: string; at: number } | null;
  /** When the next reconnect attempt happens (performance.now() ms), while closed. */
  reconnectAt: number | null;
}

export interface ViewerOptions {
  sandbox: string;
  /** Resolves the WebSocket URL (token included); called before each connect. */
  url: () => Promise<string>;
  /** Whether this viewer has the operator's attention (video) or not (command view). */
  focused: boolean;
  /** Forces a transport; default: WebRTC if RTCPeerConnection exists, else WebCodecs, else none. */
  transport?: Transport;
  /** Skip WebCodecs/WebRTC entirely (grid thumbnails). */
  noVideo?: boolean;
  /** A WebRTC viewer offers to take its video on the socket while in control (default true). */
  socketVideo?: boolean;
  /** Observes what the viewer receives and shows (test and measurement hooks). */
  tap?: ViewerTap;
}

/** A video frame put on screen. */
export interface ShownFrame {
  /** `webrtc`: a frame of the <video> (requestVideoFrameCallback); `webcodecs`: a decoder output drawn to the canvas. */
  source: 'webrtc' | 'webcodecs';
  width: number;
  height: number;
  /** A WebCodecs key frame. */
  key: boolean;
  /** Mirror frame number (WebCodecs), null when unknown. */
  frame: number | null;
  /** Capture time, Unix µs (WebCodecs), null when unknown. */
  capturedUs: number | null;
  /** When it was shown: performance.timeOrigin + performance.now(), ms. */
  shownMs: number;
}

/** Receiver statistics of the WebRTC video, as the browser reports them. */
export interface RtcVideoStats {
  framesDecoded: number;
  frameWidth: number;
  frameHeight: number;
  keyFramesDecoded: number;
  packetsLost: number;
  pliCount: number;
  codec: string | null;
  bytesReceived: number;
  jitterBufferDelayMs: number | null;
}

/** What a viewer receives and shows, for pages that expose test and measurement hooks. Called
 *  synchronously; a still is reported once it has been drawn or attached. */
export interface ViewerTap {
  message?(m: ServerMessage): void;
  frame?(f: ShownFrame): void;
  still?(s: Still): void;
  binaryBytes?(n: number): void;
}

export interface MediaElements {
  canvas: HTMLCanvasElement | null;
  video: HTMLVideoElement | null;
  /** The refinement layer: a transparent canvas stacked exactly over the picture, where exact
   *  (lossless) patches of regions that stopped changing are drawn over the lossy video. */
  refine?: HTMLCanvasElement | null;
}

type Listener = (s: ViewerSnapshot) => void;

const hasRTC = (): boolean => typeof RTCPeerConnection === 'function';
const hasWC = (): boolean => typeof VideoDecoder === 'function' && typeof EncodedVideoChunk === 'function';
const nowMs = (): number => performance.now();
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The transport a client with these capabilities uses. */
export function chooseTransport(rtc: boolean, webcodecs: boolean, forced?: Transport): Transport {
  if (forced === 'webrtc' && rtc) return 'webrtc';
  if (forced === 'webcodecs' && webcodecs) return 'webcodecs';
  if (forced === 'none') return 'none';
  return rtc ? 'webrtc' : webcodecs ? 'webcodecs' : 'none';
}

export class ViewerConnection {
  private readonly opts: ViewerOptions;
  private readonly transport: Transport;
  private state: ViewerSnapshot;
  private readonly listeners = new Set<Listener>();
  private els: MediaElements = { canvas: null, video: null, refine: null };
  /** Refinement patches drawn since the layer was last cleared (tests and measurements). */
  private refinePatches = 0;
  /** Bumped whenever the layer is cleared at once: a patch still decoding from before is dropped. */
  private refineGen = 0;
  private ws: WebSocket | null = null;
  private gen = 0;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private codecs: VideoCodec[] = [];
  private codecsReady: Promise<void> | null = null;
  private emitQueued = false;
  private anonSteps = 0;
  private readonly pendingStepStills = new Map<number, string>();
  private stillChain: Promise<void> = Promise.resolve();
  private canvasStamp = 0;
  private rtcStamp = 0;
  private lastVideoSource: 'webrtc' | 'webcodecs' | null = null;
  private hasTrack = false;
  // WebCodecs
  private dec: VideoDecoder | null = null;
  private decCodec: VideoCodec | null = null;
  private decW = 0;
  private decH = 0;
  private waitingKey = true;
  private lastKeyReq = -1e9;
  private queueHighSince = 0;
  private readonly inflight: { ts: number; frame: number; key: boolean }[] = [];
  // WebRTC
  private pc: RTCPeerConnection | null = null;
  private dc: RTCDataChannel | null = null;
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private reofferTimer: ReturnType<typeof setTimeout> | undefined;
  private prevStats: { lost: number | null; recv: number | null } | null = null;
  private rvfcVideo: HTMLVideoElement | null = null;

  constructor(opts: ViewerOptions) {
    this.opts = opts;
    this.transport = opts.noVideo ? 'none' : chooseTransport(hasRTC(), hasWC(), opts.transport);
    this.state = {
      socket: 'connecting',
      transport: this.transport,
      focused: opts.focused,
      welcome: null,
      mode: null,
      lease: null,
      youControl: false,
      displayed: null,
      framesShown: 0,
      thumbnailUrl: null,
      steps: [],
      notice: null,
      reconnectAt: null,
    };
  }

  get snapshot(): ViewerSnapshot {
    return this.state;
  }

  get screenW(): number {
    return this.state.welcome?.width ?? 1280;
  }

  get screenH(): number {
    return this.state.welcome?.height ?? 800;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    fn(this.state);
    return () => this.listeners.delete(fn);
  }

  /** Gives the connection the elements to draw into (null to detach). */
  attach(els: MediaElements): void {
    this.els = els;
    const { video } = els;
    this.ensureCanvasSize(this.screenW, this.screenH);
    // A layer attached now holds nothing the server knows of: it starts again from the next refine.
    this.clearRefine(true);
    if (video && this.pc && this.hasTrack) {
      const recv = this.pc.getReceivers().find((r) => r.track.kind === 'video');
      if (recv) video.srcObject = new MediaStream([recv.track]);
      this.startFrameCallbacks(video);
    }
    this.markFrames();
    this.refreshDisplay();
  }

  start(): void {
    if (this.closed) return;
    this.codecsReady ??= this.detectCodecs().then(
      (c) => {
        this.codecs = c;
      },
      (e: unknown) => this.notice(`codec detection failed: ${errText(e)}`),
    );
    void this.codecsReady.then(() => this.connect());
  }

  /** Closes for good: no reconnect, media torn down, object URLs revoked. */
  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.teardownMedia();
    const ws = this.ws;
    this.ws = null;
    this.gen++;
    if (ws) {
      try {
        ws.close(1000, 'viewer closed');
      } catch {
        /* already closed */
      }
    }
    if (this.state.thumbnailUrl) URL.revokeObjectURL(this.state.thumbnailUrl);
    for (const s of this.state.steps) if (s.stillUrl) URL.revokeObjectURL(s.stillUrl);
    for (const u of this.pendingStepStills.values()) URL.revokeObjectURL(u);
    this.pendingStepStills.clear();
    this.listeners.clear();
  }

  // ---------------------------------------------------------------- control and input

  takeover(): boolean {
    return this.sendJSON({ type: 'takeover' });
  }

  handback(note?: string | null): boolean {
    if (this.state.youControl) this.sendInput(encodeReleaseAll());
    return this.sendJSON(handbackMessage(note));
  }

  setFocus(focused: boolean): void {
    if (this.state.focused === focused) return;
    this.update({ focused });
    this.sendJSON({ type: 'focus', focused });
  }

  /** Sends one operator input message (data channel when open, else the socket). */
  sendInput(bytes: Uint8Array): boolean {
    const payload = bytes.slice();
    if (this.dc && this.dc.readyState === 'open') {
      this.dc.send(payload);
      return true;
    }
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(payload);
      return true;
    }
    return false;
  }

  /** Sends one text message as it is, on the socket (tests send malformed ones). */
  sendText(text: string): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(text);
    return true;
  }

  /** Whether the WebRTC input data channel is open. */
  dataChannelOpen(): boolean {
    return this.dc !== null && this.dc.readyState === 'open';
  }

  /** The WebRTC video receiver's statistics, null without a peer connection or video. */
  async rtcStats(): Promise<RtcVideoStats | null> {
    const p = this.pc;
    if (!p) return null;
    const st = await p.getStats();
    let inb: Record<string, unknown> | null = null;
    st.forEach((s: Record<string, unknown>) => {
      if (s.type === 'inbound-rtp' && (s.kind === 'video' || s.mediaType === 'video')) inb = s;
    });
    const ib = inb as Record<string, unknown> | null;
    if (!ib) return null;
    const n = (v: unknown): number => (typeof v === 'number' ? v : 0);
    const codec =
      typeof ib.codecId === 'string' ? (st.get(ib.codecId) as { mimeType?: unknown } | undefined) : undefined;
    const emitted = n(ib.jitterBufferEmittedCount);
    return {
      framesDecoded: n(ib.framesDecoded),
      frameWidth: n(ib.frameWidth),
      frameHeight: n(ib.frameHeight),
      keyFramesDecoded: n(ib.keyFramesDecoded),
      packetsLost: n(ib.packetsLost),
      pliCount: n(ib.pliCount),
      codec: typeof codec?.mimeType === 'string' ? codec.mimeType : null,
      bytesReceived: n(ib.bytesReceived),
      jitterBufferDelayMs: emitted > 0 ? (1000 * n(ib.jitterBufferDelay)) / emitted : null,
    };
  }

  /** Whether input would be accepted: the socket is open and this operator holds control. */
  canControl(): boolean {
    return this.state.youControl && this.state.socket === 'open';
  }

  // ---------------------------------------------------------------- state

  private update(patch: Partial<ViewerSnapshot>): void {
    this.state = { ...this.state, ...patch };
    if (this.emitQueued) return;
    this.emitQueued = true;
    queueMicrotask(() => {
      this.emitQueued = false;
      for (const fn of this.listeners) {
        try {
          fn(this.state);
        } catch (e) {
          console.error('[airlock viewer] listener failed', e);
        }
      }
    });
  }

  private notice(text: string): void {
    console.warn('[airlock viewer]', text);
    this.update({ notice: { text, at: Date.now() } });
  }

  private markFrames(): void {
    const n = String(this.state.framesShown);
    if (this.els.canvas) this.els.canvas.dataset.frames = n;
    if (this.els.video) this.els.video.dataset.frames = n;
  }

  /** Counts a frame drawn. Not broadcast to listeners (30 times a second): the count goes to the
   *  elements' `data-frames` and into the next snapshot. */
  private frameShown(): void {
    this.state = { ...this.state, framesShown: this.state.framesShown + 1 };
    this.markFrames();
    this.refreshDisplay();
  }

  private chooseDisplay(): Displayed {
    const videoOk = this.hasTrack && (this.els.video?.videoWidth ?? 0) > 0;
    if (this.state.mode?.mode === 'video' && this.transport === 'webrtc' && videoOk && this.lastVideoSource !== 'webcodecs')
      return 'video';
    if (this.canvasStamp > 0) return 'canvas';
    return videoOk ? 'video' : null;
  }

  private refreshDisplay(): void {
    const d = this.chooseDisplay();
    if (d !== this.state.displayed) this.update({ displayed: d });
  }

  // ---------------------------------------------------------------- socket

  private async connect(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.reconnectTimer);
    const g = ++this.gen;
    this.update({ socket: 'connecting', reconnectAt: null });
    let url: string;
    try {
      url = await this.opts.url();
    } catch (e) {
      if (g !== this.gen) return;
      this.notice(`cannot open the viewer: ${errText(e)}`);
      this.onDrop(g);
      return;
    }
    if (g !== this.gen || this.closed) return;
    let sock: WebSocket;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      this.notice(`websocket: ${errText(e)}`);
      this.onDrop(g);
      return;
    }
    this.ws = sock;
    sock.binaryType = 'arraybuffer';
    sock.onopen = () => {
      if (g !== this.gen) return;
      this.update({ socket: 'open' });
      // A WebRTC viewer that also has WebCodecs may get its video on this socket while in control.
      this.sendJSON(
        helloMessage(
          this.transport,
          this.codecs,
          this.state.focused,
          this.transport === 'webrtc' && hasWC() && this.opts.socketVideo !== false,
        ),
      );
    };
    sock.onmessage = (ev: MessageEvent) => {
      if (g !== this.gen) return;
      try {
        if (typeof ev.data === 'string') this.onText(ev.data);
        else if (ev.data instanceof ArrayBuffer) this.onBinary(ev.data);
      } catch (e) {
        this.notice(`message handling failed: ${errText(e)}`);
      }
    };
    sock.onerror = () => {
      /* a close event follows */
    };
    sock.onclose = (ev: CloseEvent) => {
      if (g !== this.gen) return;
      this.ws = null;
      if (ev.reason) this.notice(`viewer closed: ${ev.reason}`);
      this.onDrop(g);
    };
  }

  private onDrop(g: number): void {
    if (g !== this.gen) return;
    this.teardownMedia();
    this.update({ socket: 'closed', youControl: false });
    if (this.closed) return;
    const delay = backoffDelay(this.attempt++);
    this.update({ reconnectAt: nowMs() + delay });
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  private sendJSON(msg: ClientMessage): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  private onText(text: string): void {
    const m = parseServerText(text);
    if (!m) return;
    this.opts.tap?.message?.(m);
    switch (m.type) {
      case 'welcome':
        this.attempt = 0;
        this.update({ welcome: m });
        if (this.els.canvas) this.ensureCanvasSize(m.width, m.height);
        this.clearRefine(true);
        if (this.transport === 'webrtc') void this.startRTC(this.gen);
        break;
      case 'mode': {
        const prev = this.state.mode?.mode;
        this.update({ mode: m });
        if (prev === 'video' && m.mode !== 'video') this.keepVideoAsCanvasBase();
        // The server refines only in video mode, and starts from an empty layer when it enters it.
        if (m.mode !== 'video' || prev !== 'video') this.clearRefine(true);
        this.refreshDisplay();
        break;
      }
      case 'answer':
        this.onAnswer(m.sdp);
        break;
      case 'lease': {
        const was = this.state.youControl;
        this.update({ lease: m, youControl: m.you_control });
        if (was && !m.you_control) this.sendInput(encodeReleaseAll());
        break;
      }
      case 'step':
        this.addStep(m.step);
        break;
      case 'input':
        if (!m.accepted) this.notice(`Input refused${m.reason ? `: ${m.reason}` : ''}`);
        break;
      case 'damage':
        this.onDamage(m);
        break;
      case 'error':
        this.notice(`${m.code}: ${m.message}`);
        break;
    }
  }

  // ---------------------------------------------------------------- refinement layer

  /** Regions changed: the lossy video shows them until they rest. In order with refine stills. */
  private onDamage(m: DamageMessage): void {
    this.stillChain = this.stillChain.then(() => {
      const layer = this.els.refine;
      const ctx = layer?.getContext('2d');
      if (!layer || !ctx) return;
      for (const r of m.rects) ctx.clearRect(r.x, r.y, r.width, r.height);
    });
  }

  /** Clears the refinement layer (and sizes it to the screen); `now` skips the queue of stills
   *  (used when everything before no longer applies: a new connection or a new mode). */
  private clearRefine(now: boolean): void {
    const clear = (): void => {
      const layer = this.els.refine;
      if (!layer) return;
      // Shown only in video mode (the server refines only then): never over stills or thumbnails.
      layer.style.visibility = this.state.mode?.mode === 'video' ? '' : 'hidden';
      // Resizing clears a canvas; otherwise clear it.
      if (!resize(layer, this.screenW, this.screenH)) layer.getContext('2d')?.clearRect(0, 0, layer.width, layer.height);
      this.refinePatches = 0;
    };
    if (now) {
      this.refineGen++;
      clear();
    } else this.stillChain = this.stillChain.then(clear);
  }

  /** Refinement patches drawn on the layer since it was last cleared. */
  get refinedPatches(): number {
    return this.refinePatches;
  }

  /** Draws what the operator sees — the picture, then (unless `layer` is false) the refinement
   *  layer over it — scaled to `ctx`'s canvas (measurement and tests read pixels back from it). */
  drawShown(ctx: CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D, layer = true): void {
    const { width, height } = ctx.canvas;
    const source = this.state.displayed === 'video' ? this.els.video : this.state.displayed === 'canvas' ? this.els.canvas : null;
    ctx.clearRect(0, 0, width, height);
    if (source) ctx.drawImage(source, 0, 0, width, height);
    if (layer && this.els.refine && this.state.mode?.mode === 'video') ctx.drawImage(this.els.refine, 0, 0, width, height);
  }

  private onBinary(buf: ArrayBuffer): void {
    const b = new Uint8Array(buf);
    this.opts.tap?.binaryBytes?.(b.length);
    if (b.length === 0) return;
    if (b[0] === TAG_VIDEO) {
      const au = parseVideo(b);
      if (au) this.onVideoUnit(au);
    } else if (b[0] === TAG_STILL) {
      const s = parseStill(b);
      if (s) this.onStill(s);
    }
  }

  // ---------------------------------------------------------------- steps

  private addStep(step: Step): void {
    let pending: string | null = null;
    if (step.seq !== null && this.pendingStepStills.has(step.seq)) {
      pending = this.pendingStepStills.get(step.seq) ?? null;
      this.pendingStepStills.delete(step.seq);
    }
    const { list, dropped } = upsertStep(this.state.steps, step, `a${++this.anonSteps}`, pending);
    for (const u of dropped) URL.revokeObjectURL(u);
    this.update({ steps: list });
  }

  // ---------------------------------------------------------------- stills

  private onStill(s: Still): void {
    this.stillChain = this.stillChain
      .then(() => this.handleStill(s))
      .catch((e: unknown) => this.notice(`still: ${errText(e)}`));
  }

  private async handleStill(s: Still): Promise<void> {
    if (this.closed) return;
    try {
      await this.showStill(s);
    } finally {
      this.opts.tap?.still?.(s);
    }
  }

  private async showStill(s: Still): Promise<void> {
    const blob = new Blob([s.image.slice()], { type: s.mime });
    if (s.purpose === STILL_THUMBNAIL) {
      const url = URL.createObjectURL(blob);
      const old = this.state.thumbnailUrl;
      this.update({ thumbnailUrl: url });
      if (old) URL.revokeObjectURL(old);
      // In command view the live area shows the thumbnail, drawn to the canvas.
      const canvas = this.els.canvas;
      if (canvas && this.state.mode?.mode !== 'video' && typeof createImageBitmap === 'function') {
        const bmp = await createImageBitmap(blob);
        try {
          this.ensureCanvasSize(s.screenW || this.screenW, s.screenH || this.screenH);
          canvas.getContext('2d')?.drawImage(bmp, 0, 0, canvas.width, canvas.height);
        } finally {
          bmp.close();
        }
        this.canvasStamp = nowMs();
        this.frameShown();
      }
    } else if (s.purpose === STILL_FRAME) {
      const canvas = this.els.canvas;
      if (!canvas || typeof createImageBitmap !== 'function') return;
      const bmp = await createImageBitmap(blob);
      try {
        this.ensureCanvasSize(s.screenW || this.screenW, s.screenH || this.screenH);
        this.keepVideoAsCanvasBase();
        canvas.getContext('2d')?.drawImage(bmp, s.x, s.y, s.w || bmp.width, s.h || bmp.height);
      } finally {
        bmp.close();
      }
      this.canvasStamp = nowMs();
      this.frameShown();
    } else if (s.purpose === STILL_REFINE) {
      const layer = this.els.refine;
      if (!layer || this.state.mode?.mode !== 'video' || typeof createImageBitmap !== 'function') return;
      const gen = this.refineGen;
      const bmp = await createImageBitmap(blob);
      try {
        // The layer was cleared while the patch decoded (new mode or connection): it is stale.
        if (gen !== this.refineGen || this.state.mode?.mode !== 'video') return;
        resize(layer, this.screenW, this.screenH);
        const ctx = layer.getContext('2d');
        if (!ctx) return;
        // Exact pixels: replace what is there (no blending with an older patch).
        ctx.clearRect(s.x, s.y, s.w || bmp.width, s.h || bmp.height);
        ctx.drawImage(bmp, s.x, s.y);
        this.refinePatches++;
      } finally {
        bmp.close();
      }
    } else if (s.purpose === STILL_STEP && s.seq > 0) {
      const url = URL.createObjectURL(blob);
      const r = attachStill(this.state.steps, s.seq, url);
      if (r) {
        for (const u of r.dropped) URL.revokeObjectURL(u);
        this.update({ steps: r.list });
      } else {
        const old = this.pendingStepStills.get(s.seq);
        if (old) URL.revokeObjectURL(old);
        this.pendingStepStills.set(s.seq, url);
        if (this.pendingStepStills.size > 100) {
          const first = this.pendingStepStills.entries().next().value;
          if (first) {
            URL.revokeObjectURL(first[1]);
            this.pendingStepStills.delete(first[0]);
          }
        }
      }
    }
  }

  private ensureCanvasSize(w: number, h: number): void {
    const c = this.els.canvas;
    if (c && resize(c, w, h)) this.canvasStamp = 0;
  }

  /** When the WebRTC video was the freshest picture, copy it so stills compose over it. */
  private keepVideoAsCanvasBase(): void {
    const { canvas, video } = this.els;
    if (canvas && video && this.rtcStamp > this.canvasStamp && video.videoWidth > 0) {
      try {
        canvas.getContext('2d')?.drawImage(video, 0, 0, canvas.width, canvas.height);
        this.canvasStamp = nowMs();
      } catch {
        /* the video is not drawable yet */
      }
    }
  }

  // ---------------------------------------------------------------- WebCodecs

  private async detectCodecs(): Promise<VideoCodec[]> {
    const out: VideoCodec[] = [];
    if (this.transport === 'webrtc') {
      const caps = RTCRtpReceiver.getCapabilities?.('video')?.codecs ?? [];
      const mimes = new Set(caps.map((c) => String(c.mimeType).toLowerCase()));
      if (mimes.has('video/h264')) out.push('h264');
      if (mimes.has('video/vp8')) out.push('vp8');
      if (out.length === 0) out.push('vp8');
    } else if (this.transport === 'webcodecs') {
      const check = async (codec: string): Promise<boolean> => {
        try {
          const r = await Promise.race([
            VideoDecoder.isConfigSupported({ codec }),
            new Promise<{ supported: boolean }>((resolve) => setTimeout(() => resolve({ supported: false }), 3000)),
          ]);
          return r.supported === true;
        } catch {
          return false;
        }
      };
      const [h264, vp8] = await Promise.all([check(H264_CODEC), check('vp8')]);
      if (h264) out.push('h264');
      if (vp8) out.push('vp8');
    }
    return out;
  }

  private requestKeyframe(minGapMs: number): void {
    const t = nowMs();
    if (t - this.lastKeyReq < minGapMs) return;
    this.lastKeyReq = t;
    this.sendJSON({ type: 'keyframe' });
  }

  private closeDecoder(): void {
    if (this.dec && this.dec.state !== 'closed') {
      try {
        this.dec.close();
      } catch {
        /* closed already */
      }
    }
    this.dec = null;
    this.inflight.length = 0;
  }

  private makeDecoder(codec: VideoCodec, w: number, h: number): void {
    this.closeDecoder();
    const d: VideoDecoder = new VideoDecoder({
      output: (f) => this.onDecoded(d, f),
      error: (e) => this.onDecodeError(d, e),
    });
    const cfg: VideoDecoderConfig = { codec: codec === 'h264' ? H264_CODEC : 'vp8', optimizeForLatency: true };
    if (w > 0 && h > 0) {
      cfg.codedWidth = w;
      cfg.codedHeight = h;
    }
    this.dec = d;
    this.decCodec = codec;
    this.decW = w;
    this.decH = h;
    d.configure(cfg);
  }

  /** Behind when decodeQueueSize stayed above 3 for 150 ms, or is above 12 at all. */
  private decoderBacklogged(): boolean {
    const q = this.dec && this.dec.state === 'configured' ? this.dec.decodeQueueSize : 0;
    if (q <= 3) {
      this.queueHighSince = 0;
      return false;
    }
    const t = nowMs();
    if (!this.queueHighSince) this.queueHighSince = t;
    if (q > 12 || t - this.queueHighSince >= 150) {
      this.queueHighSince = 0;
      return true;
    }
    return false;
  }

  private onVideoUnit(au: VideoUnit): void {
    if (!hasWC() || this.opts.noVideo) return;
    if (!au.codec) return;
    if (!au.key && (this.waitingKey || !this.dec || this.dec.state !== 'configured')) {
      this.waitingKey = true;
      this.requestKeyframe(1000);
      return;
    }
    try {
      const backlog = this.decoderBacklogged();
      if (au.key) {
        if (
          !this.dec ||
          this.dec.state !== 'configured' ||
          au.codec !== this.decCodec ||
          au.width !== this.decW ||
          au.height !== this.decH ||
          backlog
        ) {
          this.makeDecoder(au.codec, au.width, au.height);
        }
        this.waitingKey = false;
      } else if (backlog) {
        this.waitingKey = true;
        this.requestKeyframe(1000);
        return;
      }
      const dec = this.dec;
      if (!dec) return;
      this.inflight.push({ ts: au.capturedUs, frame: au.frame, key: au.key });
      if (this.inflight.length > 64) this.inflight.shift();
      dec.decode(
        new EncodedVideoChunk({ type: au.key ? 'key' : 'delta', timestamp: au.capturedUs, data: au.payload }),
      );
    } catch (e) {
      this.onDecodeError(this.dec, e);
    }
  }

  private onDecoded(d: VideoDecoder, f: VideoFrame): void {
    if (d !== this.dec) {
      f.close();
      return;
    }
    const idx = this.inflight.findIndex((p) => p.ts === f.timestamp);
    let entry: { ts: number; frame: number; key: boolean } | undefined;
    if (idx >= 0) {
      entry = this.inflight[idx];
      this.inflight.splice(0, idx + 1);
    } else entry = this.inflight.shift(); // decoders here output in decode order
    const width = f.displayWidth;
    const height = f.displayHeight;
    const ts = f.timestamp;
    try {
      const canvas = this.els.canvas;
      if (canvas) {
        this.ensureCanvasSize(this.screenW, this.screenH);
        canvas.getContext('2d')?.drawImage(f, 0, 0, canvas.width, canvas.height);
      }
    } catch (e) {
      this.notice(`draw: ${errText(e)}`);
    } finally {
      f.close();
    }
    this.canvasStamp = nowMs();
    this.lastVideoSource = 'webcodecs';
    this.frameShown();
    this.opts.tap?.frame?.({
      source: 'webcodecs',
      width,
      height,
      key: entry?.key ?? false,
      frame: entry?.frame ?? null,
      capturedUs: entry?.ts ?? ts,
      shownMs: performance.timeOrigin + nowMs(),
    });
    if (entry) this.sendJSON({ type: 'ack', frame: entry.frame });
  }

  private onDecodeError(d: VideoDecoder | null, e: unknown): void {
    if (d !== this.dec) return;
    console.warn('[airlock viewer] decoder:', errText(e));
    this.closeDecoder();
    this.waitingKey = true;
    this.requestKeyframe(250);
  }

  // ---------------------------------------------------------------- WebRTC

  private closeRTC(): void {
    clearInterval(this.statsTimer);
    clearTimeout(this.reofferTimer);
    this.prevStats = null;
    try {
      this.dc?.close();
    } catch {
      /* closed */
    }
    try {
      this.pc?.close();
    } catch {
      /* closed */
    }
    this.dc = null;
    this.pc = null;
    this.hasTrack = false;
    if (this.els.video?.srcObject) this.els.video.srcObject = null;
  }

  private async startRTC(g: number): Promise<void> {
    this.closeRTC();
    let p: RTCPeerConnection;
    try {
      p = new RTCPeerConnection({ iceServers: [] });
    } catch (e) {
      this.notice(`WebRTC is unavailable: ${errText(e)}`);
      return;
    }
    this.pc = p;
    try {
      const tr = p.addTransceiver('video', { direction: 'recvonly' });
      setLowLatency(tr.receiver);
      const channel = p.createDataChannel('input', { ordered: true });
      channel.binaryType = 'arraybuffer';
      this.dc = channel;
      channel.onmessage = (e: MessageEvent) => {
        if (typeof e.data === 'string') this.onText(e.data);
      };
      p.ontrack = (e: RTCTrackEvent) => {
        if (this.pc !== p) return;
        setLowLatency(e.receiver);
        this.hasTrack = true;
        const video = this.els.video;
        if (video) {
          video.srcObject = e.streams[0] ?? new MediaStream([e.track]);
          video.play().catch((err: unknown) => console.warn('[airlock viewer] video.play:', errText(err)));
          this.startFrameCallbacks(video);
        }
        this.refreshDisplay();
      };
      p.onconnectionstatechange = () => {
        if (this.pc !== p) return;
        if (p.connectionState === 'failed' && g === this.gen && this.state.socket === 'open') {
          this.notice('The WebRTC connection failed; retrying in 2 s');
          clearTimeout(this.reofferTimer);
          this.reofferTimer = setTimeout(() => {
            if (g === this.gen && this.state.socket === 'open') void this.startRTC(g);
          }, 2000);
        }
      };
      await p.setLocalDescription(await p.createOffer());
      await waitIceGathering(p, 3000);
      if (this.pc !== p || g !== this.gen) return;
      const sdp = p.localDescription?.sdp;
      if (sdp) this.sendJSON({ type: 'offer', sdp });
      this.statsTimer = setInterval(() => void this.pollStats(p), 1000);
    } catch (e) {
      this.notice(`WebRTC setup failed: ${errText(e)}`);
    }
  }

  private onAnswer(sdp: string): void {
    const p = this.pc;
    if (!p || p.signalingState !== 'have-local-offer') return;
    p.setRemoteDescription({ type: 'answer', sdp }).catch((e: unknown) =>
      this.notice(`WebRTC answer refused: ${errText(e)}`),
    );
  }

  private startFrameCallbacks(video: HTMLVideoElement): void {
    if (this.rvfcVideo === video || typeof video.requestVideoFrameCallback !== 'function') return;
    this.rvfcVideo = video;
    const cb = (now: number, md: VideoFrameCallbackMetadata): void => {
      if (this.closed || this.rvfcVideo !== video) return;
      this.rtcStamp = nowMs();
      this.lastVideoSource = 'webrtc';
      this.frameShown();
      this.opts.tap?.frame?.({
        source: 'webrtc',
        width: md.width,
        height: md.height,
        key: false,
        frame: null,
        capturedUs: null,
        shownMs: performance.timeOrigin + now,
      });
      video.requestVideoFrameCallback(cb);
    };
    video.requestVideoFrameCallback(cb);
  }

  private async pollStats(p: RTCPeerConnection): Promise<void> {
    if (this.pc !== p) return;
    let st: RTCStatsReport;
    try {
      st = await p.getStats();
    } catch {
      return;
    }
    if (this.pc !== p) return;
    let inb: Record<string, unknown> | null = null;
    let pair: Record<string, unknown> | null = null;
    let selId: string | null = null;
    st.forEach((s: Record<string, unknown>) => {
      if (s.type === 'inbound-rtp' && (s.kind === 'video' || s.mediaType === 'video')) inb = s;
      if (s.type === 'transport' && typeof s.selectedCandidatePairId === 'string') selId = s.selectedCandidatePairId;
    });
    if (selId) pair = (st.get(selId) as Record<string, unknown> | undefined) ?? null;
    if (!pair)
      st.forEach((s: Record<string, unknown>) => {
        if (s.type === 'candidate-pair' && s.nominated === true && s.state === 'succeeded') pair = s;
      });
    const msg = emptyStats();
    const pr = pair as Record<string, unknown> | null;
    if (pr && typeof pr.currentRoundTripTime === 'number') msg.rtt_ms = Math.round(pr.currentRoundTripTime * 10000) / 10;
    if (pr && typeof pr.availableIncomingBitrate === 'number')
      msg.bandwidth_kbps = Math.round(pr.availableIncomingBitrate / 1000);
    const ib = inb as Record<string, unknown> | null;
    if (ib) {
      const cur = {
        lost: typeof ib.packetsLost === 'number' ? ib.packetsLost : null,
        recv: typeof ib.packetsReceived === 'number' ? ib.packetsReceived : null,
      };
      const prev = this.prevStats;
      if (prev && cur.lost !== null && cur.recv !== null && prev.lost !== null && prev.recv !== null) {
        const dl = Math.max(0, cur.lost - prev.lost);
        const dr = Math.max(0, cur.recv - prev.recv);
        if (dl + dr > 0) msg.loss = Math.round((dl / (dl + dr)) * 10000) / 10000;
      }
      this.prevStats = cur;
      if (typeof ib.framesDecoded === 'number') msg.frames_decoded = ib.framesDecoded;
    }
    if (msg.rtt_ms !== null || msg.loss !== null || msg.bandwidth_kbps !== null || msg.frames_decoded !== null)
      this.sendJSON(msg);
  }

  private teardownMedia(): void {
    this.closeRTC();
    this.closeDecoder();
    this.waitingKey = true;
    this.refreshDisplay();
  }
}

/** Gives a canvas this size (which clears it); false when it had it already. */
function resize(c: HTMLCanvasElement, w: number, h: number): boolean {
  if (c.width === w && c.height === h) return false;
  c.width = w;
  c.height = h;
  return true;
}

function setLowLatency(r: RTCRtpReceiver): void {
  const rr = r as RTCRtpReceiver & { jitterBufferTarget?: number | null; playoutDelayHint?: number };
  try {
    rr.jitterBufferTarget = 0;
  } catch {
    /* not supported */
  }
  try {
    rr.playoutDelayHint = 0;
  } catch {
    /* not supported */
  }
}

function waitIceGathering(p: RTCPeerConnection, maxMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (p.iceGatheringState === 'complete') {
      resolve();
      return;
    }
    const t = setTimeout(resolve, maxMs);
    p.addEventListener('icegatheringstatechange', () => {
      if (p.iceGatheringState === 'complete') {
        clearTimeout(t);
        resolve();
      }
    });
  });
}
