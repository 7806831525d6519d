// Airlock operator viewer: one sandbox's screen, its command-view timeline, take over / hand back.
// Plain ES2022 module, no build step, no dependencies. Works in Chromium (WebRTC or WebCodecs) and
// in WebKitGTK (no RTCPeerConnection there: WebCodecs VideoDecoder over the WebSocket).
//
// URL: /viewer?sandbox=<id>&transport=webrtc|webcodecs|none&focus=1|0#token=<operator token>
//      (`token` is also accepted in the query). Default transport: webrtc if RTCPeerConnection
//      exists, else webcodecs if VideoDecoder exists, else none. Default focus: 1.
// WebSocket: /api/sandboxes/<id>/view?token=<token> (same origin), reconnects after 1, 2, 4, 8, 10, 10 … s.
//
// Test hooks — window.airlockViewer (stable; state fields are updated in place on this object):
//   state            'connecting' | 'open' | 'closed'   (WebSocket state; 'closed' while waiting to reconnect)
//   welcome          last `welcome` message (null before)
//   mode             last `mode` message (null before)
//   lease            last `lease` message (null before)
//   steps            step objects received (oldest first; a step re-sent with the same seq replaces the old
//                    one in place; the latest 500 are kept, the timeline shows 200)
//   stills           {1:n, 2:n, 3:n} stills handled by purpose (counted once the image has been decoded
//                    and drawn, so a probe() right after the count moves sees it)
//   framesDecoded    video frames shown (requestVideoFrameCallback count for WebRTC, VideoDecoder outputs
//                    for WebCodecs; cumulative over reconnects)
//   frameWidth, frameHeight   size of the last video frame shown
//   keyframesDecoded WebCodecs key frames output + WebRTC keyFramesDecoded (from getStats, once a second)
//   lastFrame        WebCodecs: {frame, captured_us, shown_ms}; WebRTC: the rVFC metadata + shown_ms
//                    (shown_ms = performance.timeOrigin + performance.now() when shown)
//   inputReplies     `input` messages from the server (latest 500)
//   errors           `error` messages from the server (objects as received, latest 200)
//   bytesReceived    binary bytes received on the WebSocket
//   messages         count of received JSON messages by type (WebSocket and data channel)
//   extras: transport, sandbox, focused, youControl, displayed ('video'|'canvas'|'thumbnail'|null),
//           codecs (sent in hello), sent (count of sent JSON messages by type, plus `binary` for input
//           events), clientErrors (strings: local decoder/socket/parse problems), connects (WebSocket
//           opens), rtcState (RTCPeerConnection.connectionState), decodeErrors, droppedFrames
//   methods:
//   probe(x, y, w, h)      → {r, g, b} average of that screen region of what is displayed, or null
//   waitFor(fn, timeoutMs) → Promise<boolean> (polls fn every 20 ms; default timeout 10 s)
//   sendMove(x, y), sendButton(button, down, x, y), sendClick(x, y[, button]), sendWheel(dx, dy, x, y),
//   sendKey(keysym, down), typeText(str) (→ number of key events), releaseAll(),
//   sendRaw(bytes) (Uint8Array | ArrayBuffer | number[]; same path as input), sendText(string)
//                          — input goes over the "input" data channel when open, else the WebSocket;
//                            all return true if sent; they send whether or not we hold control
//   takeover(), handback(note), setFocus(bool)
//   rtcStats()             → Promise<{framesDecoded, frameWidth, frameHeight, keyFramesDecoded, packetsLost,
//                            pliCount, codec, bytesReceived, jitterBufferDelayMs} | null>
//   dataChannelOpen()      → boolean
//
// Pure helpers are exported (parseVideo, parseStill, encode*, keysymForCode, keysymForEvent,
// textToKeyEvents, mapToScreen, wheelClicks) so they can be tested outside a browser.

export const TAG_VIDEO = 1;
export const TAG_STILL = 2;
export const CODEC_BY_ID = { 1: 'h264', 2: 'vp8' };
export const H264_CODEC = 'avc1.42e01f';
export const IN_MOVE = 0x10, IN_BUTTON = 0x11, IN_WHEEL = 0x12, IN_KEY = 0x13, IN_RELEASE_ALL = 0x14;
export const XK_SHIFT_L = 0xffe1, XK_RETURN = 0xff0d;

const u8of = (buf) => (buf instanceof Uint8Array ? buf : new Uint8Array(buf));
const dvOf = (b) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Tag 1: video access unit. Returns null if too short or not tag 1. */
export function parseVideo(buf) {
  const b = u8of(buf);
  if (b.length < 24 || b[0] !== TAG_VIDEO) return null;
  const dv = dvOf(b);
  return {
    codecId: b[1],
    codec: CODEC_BY_ID[b[1]] ?? null,
    key: (b[2] & 1) === 1,
    width: dv.getUint16(4, true),
    height: dv.getUint16(6, true),
    frame: Number(dv.getBigUint64(8, true)),
    captured_us: Number(dv.getBigUint64(16, true)),
    payload: b.subarray(24),
  };
}

/** Tag 2: still image. Returns null if too short or not tag 2. */
export function parseStill(buf) {
  const b = u8of(buf);
  if (b.length < 32 || b[0] !== TAG_STILL) return null;
  const dv = dvOf(b);
  return {
    purpose: b[1],
    format: b[2],
    mime: b[2] === 1 ? 'image/webp' : b[2] === 2 ? 'image/png' : 'application/octet-stream',
    seq: Number(dv.getBigUint64(4, true)),
    frame: Number(dv.getBigUint64(12, true)),
    x: dv.getUint16(20, true),
    y: dv.getUint16(22, true),
    w: dv.getUint16(24, true),
    h: dv.getUint16(26, true),
    screenW: dv.getUint16(28, true),
    screenH: dv.getUint16(30, true),
    image: b.subarray(32),
  };
}

const u16 = (v) => Math.round(Number(v) || 0) & 0xffff;
const i8 = (v) => Math.max(-128, Math.min(127, Math.round(Number(v) || 0)));

export function encodeMove(x, y) {
  const b = new Uint8Array(5), dv = dvOf(b);
  b[0] = IN_MOVE; dv.setUint16(1, u16(x), true); dv.setUint16(3, u16(y), true);
  return b;
}
export function encodeButton(button, down, x, y) {
  const b = new Uint8Array(7), dv = dvOf(b);
  b[0] = IN_BUTTON; b[1] = Number(button) & 0xff; b[2] = down ? 1 : 0;
  dv.setUint16(3, u16(x), true); dv.setUint16(5, u16(y), true);
  return b;
}
export function encodeWheel(dx, dy, x, y) {
  const b = new Uint8Array(7), dv = dvOf(b);
  b[0] = IN_WHEEL; dv.setInt8(1, i8(dx)); dv.setInt8(2, i8(dy));
  dv.setUint16(3, u16(x), true); dv.setUint16(5, u16(y), true);
  return b;
}
export function encodeKey(keysym, down) {
  const b = new Uint8Array(6), dv = dvOf(b);
  b[0] = IN_KEY; b[1] = down ? 1 : 0; dv.setUint32(2, Number(keysym) >>> 0, true);
  return b;
}
export function encodeReleaseAll() {
  return Uint8Array.of(IN_RELEASE_ALL);
}

/** KeyboardEvent.code (physical key, US layout) → X11 keysym. */
export const KEYSYM_BY_CODE = (() => {
  const m = {
    Space: 0x20, Minus: 0x2d, Equal: 0x3d, BracketLeft: 0x5b, BracketRight: 0x5d, Backslash: 0x5c,
    Semicolon: 0x3b, Quote: 0x27, Backquote: 0x60, Comma: 0x2c, Period: 0x2e, Slash: 0x2f,
    IntlBackslash: 0x3c,
    Enter: 0xff0d, Backspace: 0xff08, Tab: 0xff09, Escape: 0xff1b, Delete: 0xffff, Insert: 0xff63,
    Home: 0xff50, End: 0xff57, PageUp: 0xff55, PageDown: 0xff56,
    ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
    ShiftLeft: 0xffe1, ShiftRight: 0xffe2, ControlLeft: 0xffe3, ControlRight: 0xffe4,
    AltLeft: 0xffe9, AltRight: 0xffea, MetaLeft: 0xffeb, MetaRight: 0xffec, CapsLock: 0xffe5,
    ContextMenu: 0xff67, PrintScreen: 0xff61, ScrollLock: 0xff14, Pause: 0xff13, NumLock: 0xff7f,
    NumpadEnter: 0xff8d, NumpadAdd: 0xffab, NumpadSubtract: 0xffad, NumpadMultiply: 0xffaa,
    NumpadDivide: 0xffaf, NumpadDecimal: 0xffae,
  };
  for (let i = 0; i < 26; i++) m['Key' + String.fromCharCode(65 + i)] = 0x61 + i;
  for (let i = 0; i < 10; i++) { m['Digit' + i] = 0x30 + i; m['Numpad' + i] = 0xffb0 + i; }
  for (let i = 1; i <= 12; i++) m['F' + i] = 0xffbe + (i - 1);
  return Object.freeze(m);
})();

export function keysymForCode(code) {
  return Object.prototype.hasOwnProperty.call(KEYSYM_BY_CODE, code) ? KEYSYM_BY_CODE[code] : null;
}

/** Keysym for a KeyboardEvent-like {code, key}: by physical key; unknown codes fall back to the character. */
export function keysymForEvent(e) {
  const ks = keysymForCode(e.code);
  if (ks !== null) return ks;
  const k = e.key;
  if (typeof k === 'string' && k.length > 0 && [...k].length === 1) {
    const cp = k.codePointAt(0);
    if (cp >= 0x20 && cp <= 0xff && cp !== 0x7f) return cp;
    if (cp > 0xff) return 0x01000000 + cp;
  }
  return null;
}

// US layout: shifted character → the unshifted key's keysym.
const SHIFTED = {
  '~': '`', '!': '1', '@': '2', '#': '3', '$': '4', '%': '5', '^': '6', '&': '7', '*': '8', '(': '9',
  ')': '0', '_': '-', '+': '=', '{': '[', '}': ']', '|': '\\', ':': ';', '"': "'", '<': ',', '>': '.', '?': '/',
};

/** Text → [[keysym, down], …] as physical key presses on a US layout (Shift_L around shifted chars). */
export function textToKeyEvents(text) {
  const out = [];
  const press = (ks, shift = false) => {
    if (shift) out.push([XK_SHIFT_L, 1]);
    out.push([ks, 1], [ks, 0]);
    if (shift) out.push([XK_SHIFT_L, 0]);
  };
  const s = String(text);
  for (let i = 0; i < s.length;) {
    const cp = s.codePointAt(i);
    i += cp > 0xffff ? 2 : 1;
    const ch = String.fromCodePoint(cp);
    if (ch === '\n') press(XK_RETURN);
    else if (ch === '\r') { if (s[i] !== '\n') press(XK_RETURN); }
    else if (ch === '\t') press(0xff09);
    else if (ch === '\b') press(0xff08);
    else if (ch === '\x1b') press(0xff1b);
    else if (ch >= 'A' && ch <= 'Z') press(cp + 0x20, true);
    else if (SHIFTED[ch]) press(SHIFTED[ch].charCodeAt(0), true);
    else if (cp >= 0x20 && cp <= 0x7e) press(cp);
    else if (cp >= 0xa0 && cp <= 0xff) press(cp);
    else if (cp > 0xff) press(0x01000000 + cp);
    // other control characters: ignored
  }
  return out;
}

/**
 * Element client coordinates → screen pixels, for content drawn with object-fit: contain in `rect`
 * (letterboxing taken into account). Clamped to the screen; `inside` says whether it was on the picture.
 */
export function mapToScreen(clientX, clientY, rect, screenW, screenH) {
  const scale = Math.min(rect.width / screenW, rect.height / screenH);
  if (!(scale > 0) || !(screenW > 0) || !(screenH > 0)) return null;
  const ox = rect.left + (rect.width - screenW * scale) / 2;
  const oy = rect.top + (rect.height - screenH * scale) / 2;
  const fx = (clientX - ox) / scale, fy = (clientY - oy) / scale;
  const inside = fx >= 0 && fy >= 0 && fx < screenW && fy < screenH;
  const x = Math.max(0, Math.min(screenW - 1, Math.floor(fx)));
  const y = Math.max(0, Math.min(screenH - 1, Math.floor(fy)));
  return { x, y, inside };
}

/** Wheel accumulation: returns [clicks, remainder]; ~100 px per click. */
export function wheelClicks(acc, delta, pxPerClick = 100) {
  if (acc !== 0 && Math.sign(acc) !== Math.sign(delta) && delta !== 0) acc = 0; // direction flip
  acc += delta;
  const clicks = Math.trunc(acc / pxPerClick);
  return [Math.max(-127, Math.min(127, clicks)), acc - clicks * pxPerClick];
}

// ---------------------------------------------------------------------------------------------
// Browser part
// ---------------------------------------------------------------------------------------------

function main() {
  const $ = (id) => document.getElementById(id);
  const el = {
    sandbox: $('sandbox'), conn: $('conn'), connText: $('conn-text'), mode: $('mode'), lease: $('lease'),
    take: $('btn-take'), note: $('note'), hand: $('btn-hand'), focus: $('btn-focus'), stage: $('stage'),
    video: $('video'), canvas: $('canvas'), thumb: $('thumb'), overlay: $('overlay'), notice: $('notice'),
    steps: $('steps'), stepCount: $('step-count'),
  };
  const ctx = el.canvas.getContext('2d');
  const thumbCtx = el.thumb.getContext('2d');
  const nowMs = () => performance.now();
  const wallMs = () => performance.timeOrigin + performance.now();

  const query = new URLSearchParams(location.search);
  const frag = new URLSearchParams(location.hash.replace(/^#/, ''));
  const sandbox = query.get('sandbox') || '';
  const token = frag.get('token') || query.get('token') || '';
  const hasRTC = typeof RTCPeerConnection === 'function';
  const hasWC = typeof VideoDecoder === 'function' && typeof EncodedVideoChunk === 'function';
  const defaultTransport = hasRTC ? 'webrtc' : hasWC ? 'webcodecs' : 'none';
  let transport = query.get('transport') || defaultTransport;
  const clientErrors = [];
  const clientError = (msg) => {
    clientErrors.push(String(msg));
    if (clientErrors.length > 200) clientErrors.shift();
    console.warn('[airlock viewer]', msg);
  };
  if (!['webrtc', 'webcodecs', 'none'].includes(transport)) {
    clientError(`unknown transport "${transport}", using ${defaultTransport}`);
    transport = defaultTransport;
  }
  if (transport === 'webrtc' && !hasRTC) {
    clientError('RTCPeerConnection is not available');
    transport = hasWC ? 'webcodecs' : 'none';
  }
  if (transport === 'webcodecs' && !hasWC) {
    clientError('VideoDecoder is not available');
    transport = 'none';
  }
  const fp = query.get('focus');
  let focused = fp === null ? true : !['0', 'false', 'no', 'off'].includes(fp.toLowerCase());

  // ------------------------------------------------------------------ state exposed for tests
  const V = {
    state: 'connecting', welcome: null, mode: null, lease: null, steps: [], stills: { 1: 0, 2: 0, 3: 0 },
    framesDecoded: 0, frameWidth: 0, frameHeight: 0, keyframesDecoded: 0, lastFrame: null,
    inputReplies: [], errors: [], bytesReceived: 0, messages: {},
    transport, sandbox, focused, youControl: false, displayed: null, codecs: [], sent: {},
    clientErrors, connects: 0, rtcState: null, decodeErrors: 0, droppedFrames: 0,
  };
  window.airlockViewer = V;

  const screenW = () => V.welcome?.width || 1280;
  const screenH = () => V.welcome?.height || 800;

  // ------------------------------------------------------------------ connection
  let ws = null;
  let gen = 0; // connection generation: async work from an older connection is ignored
  let backoff = 1000;
  let reconnectAt = 0;
  let reconnectTimer = 0;
  let countdownTimer = 0;

  function setState(s) {
    V.state = s;
    el.conn.dataset.state = s;
    renderConn();
    renderControls();
    refreshDisplay();
  }

  function renderConn() {
    let t;
    if (!sandbox) t = 'no sandbox';
    else if (V.state === 'connecting') t = 'connecting…';
    else if (V.state === 'open') t = V.welcome ? `connected · viewer ${V.welcome.viewer ?? '?'}` : 'connected';
    else if (reconnectAt) t = `disconnected · retry in ${Math.max(0, Math.ceil((reconnectAt - nowMs()) / 1000))} s`;
    else t = 'disconnected';
    el.connText.textContent = t;
    el.conn.title = `${t} (transport ${transport})`;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    reconnectAt = 0;
    const g = ++gen;
    setState('connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/api/sandboxes/${encodeURIComponent(sandbox)}/view?token=${encodeURIComponent(token)}`;
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      clientError(`websocket: ${e?.message ?? e}`);
      setState('closed');
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.binaryType = 'arraybuffer';
    sock.onopen = () => {
      if (g !== gen) return;
      V.connects++;
      setState('open');
      // A WebRTC viewer that also has WebCodecs may get its video on this socket while in control.
      sendJSON({ type: 'hello', transport, codecs: V.codecs, focused, socket_video: transport === 'webrtc' && hasWC && query.get('socketvideo') !== '0' });
    };
    sock.onmessage = (ev) => {
      if (g !== gen) return;
      if (typeof ev.data === 'string') onText(ev.data);
      else onBinary(ev.data);
    };
    sock.onerror = () => {}; // a close event follows
    sock.onclose = (ev) => {
      if (g !== gen) return;
      ws = null;
      V.closeCode = ev.code;
      V.closeReason = ev.reason;
      teardownMedia();
      setControl(false, false);
      setState('closed');
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (leaving) return;
    const delay = backoff;
    backoff = Math.min(backoff * 2, 10000);
    reconnectAt = nowMs() + delay;
    reconnectTimer = setTimeout(connect, delay);
    countdownTimer = setInterval(renderConn, 500);
    renderConn();
  }

  let leaving = false;
  addEventListener('pagehide', () => {
    leaving = true;
    clearTimeout(reconnectTimer);
    try { ws?.close(1000, 'page closed'); } catch { /* ignore */ }
  });

  function sendJSON(obj) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    V.sent[obj.type] = (V.sent[obj.type] || 0) + 1;
    return true;
  }

  function sendInput(bytes) {
    if (dc && dc.readyState === 'open') dc.send(bytes);
    else if (ws && ws.readyState === WebSocket.OPEN) ws.send(bytes);
    else return false;
    V.sent.binary = (V.sent.binary || 0) + 1;
    return true;
  }

  // ------------------------------------------------------------------ incoming
  function onText(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      clientError(`unparsable text message: ${String(text).slice(0, 80)}`);
      return;
    }
    if (!m || typeof m !== 'object' || typeof m.type !== 'string') return;
    V.messages[m.type] = (V.messages[m.type] || 0) + 1;
    switch (m.type) {
      case 'welcome': onWelcome(m); break;
      case 'mode': onMode(m); break;
      case 'answer': onAnswer(m); break;
      case 'lease': onLease(m); break;
      case 'step': addStep(m.step); break;
      case 'input':
        V.inputReplies.push(m);
        if (V.inputReplies.length > 500) V.inputReplies.shift();
        if (m.accepted === false) notice(`Input refused${m.reason ? `: ${m.reason}` : ''}`);
        break;
      case 'error':
        V.errors.push(m);
        if (V.errors.length > 200) V.errors.shift();
        notice(`${m.code ? `${m.code}: ` : ''}${m.message ?? 'error'}`);
        break;
      default: break;
    }
  }

  function onBinary(buf) {
    V.bytesReceived += buf.byteLength;
    const b = new Uint8Array(buf);
    if (b.length === 0) return;
    if (b[0] === TAG_VIDEO) {
      const au = parseVideo(b);
      if (au) onVideoAU(au);
      else clientError('short video message');
    } else if (b[0] === TAG_STILL) {
      const s = parseStill(b);
      if (s) onStill(s);
      else clientError('short still message');
    }
  }

  function onWelcome(m) {
    V.welcome = m;
    backoff = 1000;
    el.sandbox.textContent = m.sandbox || sandbox;
    if (el.canvas.width !== screenW() || el.canvas.height !== screenH()) {
      el.canvas.width = screenW();
      el.canvas.height = screenH();
      canvasStamp = 0;
    }
    renderConn();
    if (transport === 'webrtc') startRTC(gen);
  }

  function onMode(m) {
    const prev = V.mode?.mode;
    V.mode = m;
    const parts = [m.mode ?? '?'];
    if (m.codec) parts.push(m.codec);
    if (m.fps) parts.push(`${m.fps} fps`);
    if (m.bitrate_kbps) parts.push(`${m.bitrate_kbps} kbps`);
    el.mode.textContent = parts.join(' · ');
    el.mode.title = m.reason ? `${parts.join(' · ')} — ${m.reason}` : parts.join(' · ');
    if (prev === 'video' && m.mode !== 'video') keepVideoAsCanvasBase();
    refreshDisplay();
  }

  // ------------------------------------------------------------------ lease / control
  let youControl = false;
  let releasedAt = -1e9;

  function onLease(m) {
    V.lease = m;
    setControl(!!m.you_control, true);
    renderLease();
  }

  function setControl(on, notify) {
    const was = youControl;
    youControl = on;
    V.youControl = on;
    el.stage.dataset.control = String(on);
    if (was && !on) {
      if (notify && nowMs() - releasedAt > 1000) releaseAllInput();
      moveRaf && cancelAnimationFrame(moveRaf);
      moveRaf = 0;
      pendingMove = null;
      wheelAcc = [0, 0];
    }
    renderControls();
  }

  function renderLease() {
    const l = V.lease;
    let text = '—', holder = 'none';
    if (l) {
      if (l.you_control) { text = 'You are in control'; holder = 'you'; }
      else if (l.holder === 'human') { text = `${l.operator || 'An operator'} is in control`; holder = 'human'; }
      else if (l.holder === 'agent') { text = 'Agent is driving'; holder = 'agent'; }
      else if (l.holder === 'paused') { text = 'Paused'; holder = 'paused'; }
      else { text = String(l.holder ?? '—'); }
    }
    el.lease.textContent = text;
    el.lease.dataset.holder = holder;
    el.lease.title = l ? `${text}${l.epoch !== undefined ? ` (epoch ${l.epoch})` : ''}` : 'No lease information yet';
  }

  function renderControls() {
    const open = V.state === 'open';
    el.take.disabled = !open || youControl;
    el.hand.disabled = !open || !youControl;
    el.focus.setAttribute('aria-pressed', String(focused));
    el.focus.title = focused ? 'Focused: live video requested (click to unfocus)' : 'Not focused: command view (click to focus)';
  }

  const canControl = () => youControl && V.state === 'open';

  function takeover() {
    return sendJSON({ type: 'takeover' });
  }

  function handback(note) {
    if (youControl) { releaseAllInput(); releasedAt = nowMs(); }
    const msg = { type: 'handback' };
    if (typeof note === 'string' && note.trim() !== '') msg.note = note.trim();
    return sendJSON(msg);
  }

  function setFocus(on) {
    focused = !!on;
    V.focused = focused;
    renderControls();
    return sendJSON({ type: 'focus', focused });
  }

  el.take.addEventListener('click', () => takeover());
  el.hand.addEventListener('click', () => {
    handback(el.note.value);
    el.note.value = '';
  });
  el.note.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && youControl) { e.preventDefault(); el.hand.click(); }
  });
  el.focus.addEventListener('click', () => setFocus(!focused));

  // ------------------------------------------------------------------ notices
  let noticeTimer = 0;
  function notice(text) {
    el.notice.textContent = text;
    el.notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { el.notice.hidden = true; }, 5000);
  }

  // ------------------------------------------------------------------ display selection
  let canvasStamp = 0; // performance.now() of the last draw on the main canvas (0 = nothing there)
  let thumbStamp = 0;
  let rtcVideoStamp = 0; // last rVFC
  let lastVideoSource = null; // 'webrtc' | 'webcodecs'
  let hasTrack = false;

  function chooseDisplay() {
    const m = V.mode?.mode;
    const canvasOk = canvasStamp > 0;
    const thumbOk = thumbStamp > 0;
    const videoOk = hasTrack && el.video.videoWidth > 0;
    if (m === 'video') {
      if (transport === 'webrtc' && hasTrack && lastVideoSource !== 'webcodecs') return 'video';
      if (canvasOk) return 'canvas';
      if (videoOk) return 'video';
      if (thumbOk) return 'thumbnail';
      return null;
    }
    if (m === 'stills') {
      if (canvasOk && canvasStamp >= thumbStamp) return 'canvas';
      if (thumbOk) return 'thumbnail';
      if (canvasOk) return 'canvas';
      return videoOk ? 'video' : null;
    }
    // command view (or no mode yet): the latest thumbnail
    if (thumbOk) return 'thumbnail';
    if (canvasOk) return 'canvas';
    return videoOk ? 'video' : null;
  }

  function refreshDisplay() {
    const d = chooseDisplay();
    if (d !== V.displayed) {
      V.displayed = d;
      el.video.classList.toggle('shown', d === 'video');
      el.canvas.classList.toggle('shown', d === 'canvas');
      el.thumb.classList.toggle('shown', d === 'thumbnail');
    }
    let text = '';
    if (!sandbox) text = 'No sandbox given (add ?sandbox=ID to the address)';
    else if (V.state === 'connecting' && !d) text = 'Connecting…';
    else if (V.state === 'closed') text = 'Disconnected — reconnecting';
    else if (!d) text = V.mode?.mode === 'video' ? 'Waiting for video…' : 'Waiting for the screen…';
    if (el.overlay.textContent !== text) el.overlay.textContent = text;
    el.overlay.hidden = text === '';
    el.overlay.classList.toggle('over-content', !!d);
  }

  // ------------------------------------------------------------------ WebCodecs
  let dec = null, decCodec = null, decW = 0, decH = 0;
  let waitingKey = true;
  let lastKeyReq = -1e9;
  let wcKeyframes = 0;
  const pending = []; // {ts, frame, key} in decode order

  function requestKeyframe(minGapMs) {
    const t = nowMs();
    if (t - lastKeyReq < minGapMs) return;
    lastKeyReq = t;
    sendJSON({ type: 'keyframe' });
  }

  function closeDecoder() {
    if (dec && dec.state !== 'closed') {
      try { dec.close(); } catch { /* ignore */ }
    }
    dec = null;
    pending.length = 0;
  }

  function makeDecoder(codec, w, h) {
    closeDecoder();
    const d = new VideoDecoder({ output: (f) => onDecoded(d, f), error: (e) => onDecodeError(d, e) });
    const cfg = { codec: codec === 'h264' ? H264_CODEC : 'vp8', optimizeForLatency: true };
    if (w > 0 && h > 0) { cfg.codedWidth = w; cfg.codedHeight = h; }
    dec = d; decCodec = codec; decW = w; decH = h;
    d.configure(cfg);
  }

  // The decoder is behind when decodeQueueSize has stayed above 3 for 150 ms (a burst of frames that
  // arrive together is not a backlog), or is above 12 at all.
  let queueHighSince = 0;
  function decoderBacklogged() {
    const q = dec && dec.state === 'configured' ? dec.decodeQueueSize : 0;
    if (q <= 3) { queueHighSince = 0; return false; }
    const t = nowMs();
    if (!queueHighSince) queueHighSince = t;
    if (q > 12 || t - queueHighSince >= 150) { queueHighSince = 0; return true; }
    return false;
  }

  function onVideoAU(au) {
    if (!hasWC) return;
    if (!au.codec) { clientError(`unknown codec id ${au.codecId}`); return; }
    if (!au.key && (waitingKey || !dec || dec.state !== 'configured')) {
      V.droppedFrames++;
      waitingKey = true;
      requestKeyframe(1000);
      return;
    }
    try {
      const backlog = decoderBacklogged();
      if (au.key) {
        if (!dec || dec.state !== 'configured' || au.codec !== decCodec || au.width !== decW || au.height !== decH || backlog) {
          makeDecoder(au.codec, au.width, au.height);
        }
        waitingKey = false;
      } else if (backlog) {
        V.droppedFrames++;
        waitingKey = true;
        requestKeyframe(1000);
        return;
      }
      pending.push({ ts: au.captured_us, frame: au.frame, key: au.key });
      if (pending.length > 64) pending.shift();
      dec.decode(new EncodedVideoChunk({ type: au.key ? 'key' : 'delta', timestamp: au.captured_us, data: au.payload }));
    } catch (e) {
      onDecodeError(dec, e);
    }
  }

  function onDecoded(d, f) {
    if (d !== dec) { f.close(); return; }
    let entry;
    const idx = pending.findIndex((p) => p.ts === f.timestamp);
    if (idx >= 0) { entry = pending[idx]; pending.splice(0, idx + 1); }
    else entry = pending.shift(); // decoders here output in decode order
    try {
      ensureCanvasSize(screenW(), screenH());
      ctx.drawImage(f, 0, 0, el.canvas.width, el.canvas.height);
      V.frameWidth = f.displayWidth;
      V.frameHeight = f.displayHeight;
    } catch (e) {
      clientError(`draw: ${e?.message ?? e}`);
    } finally {
      f.close();
    }
    V.framesDecoded++;
    if (entry?.key) { wcKeyframes++; updateKeyframes(); }
    V.lastFrame = { frame: entry ? entry.frame : null, captured_us: entry ? entry.ts : f.timestamp, shown_ms: wallMs() };
    canvasStamp = nowMs();
    lastVideoSource = 'webcodecs';
    refreshDisplay();
    if (entry) sendJSON({ type: 'ack', frame: entry.frame });
  }

  function onDecodeError(d, e) {
    if (d !== dec) return;
    V.decodeErrors++;
    clientError(`decoder: ${e?.message ?? e}`);
    closeDecoder();
    waitingKey = true;
    requestKeyframe(250);
  }

  // ------------------------------------------------------------------ stills
  let stillChain = Promise.resolve();
  const pendingStepStills = new Map(); // seq → object URL (still arrived before its step)

  function onStill(s) {
    stillChain = stillChain
      .then(() => handleStill(s))
      .catch((e) => clientError(`still: ${e?.message ?? e}`));
  }

  async function handleStill(s) {
    try {
      const blob = new Blob([s.image], { type: s.mime });
      if (s.purpose === 1) {
        const bmp = await createImageBitmap(blob);
        if (el.thumb.width !== bmp.width || el.thumb.height !== bmp.height) {
          el.thumb.width = bmp.width;
          el.thumb.height = bmp.height;
        }
        thumbCtx.drawImage(bmp, 0, 0);
        bmp.close?.();
        thumbStamp = nowMs();
        V.lastThumbnail = { frame: s.frame, x: s.x, y: s.y, w: s.w, h: s.h, width: el.thumb.width, height: el.thumb.height };
      } else if (s.purpose === 3) {
        const bmp = await createImageBitmap(blob);
        ensureCanvasSize(s.screenW || screenW(), s.screenH || screenH());
        keepVideoAsCanvasBase();
        if (canvasStamp === 0 && thumbStamp > 0) ctx.drawImage(el.thumb, 0, 0, el.canvas.width, el.canvas.height);
        ctx.drawImage(bmp, s.x, s.y, s.w || bmp.width, s.h || bmp.height);
        bmp.close?.();
        canvasStamp = nowMs();
        V.lastStill = { frame: s.frame, x: s.x, y: s.y, w: s.w, h: s.h };
      } else if (s.purpose === 2 && s.seq > 0) {
        const url = URL.createObjectURL(blob);
        const row = stepRows.get(s.seq);
        if (row) setStepStill(row, url);
        else {
          const old = pendingStepStills.get(s.seq);
          if (old) URL.revokeObjectURL(old);
          pendingStepStills.set(s.seq, url);
          if (pendingStepStills.size > 100) {
            const [k, u] = pendingStepStills.entries().next().value;
            URL.revokeObjectURL(u);
            pendingStepStills.delete(k);
          }
        }
      }
    } finally {
      V.stills[s.purpose] = (V.stills[s.purpose] || 0) + 1;
      refreshDisplay();
    }
  }

  function ensureCanvasSize(w, h) {
    if (el.canvas.width !== w || el.canvas.height !== h) {
      el.canvas.width = w;
      el.canvas.height = h;
      canvasStamp = 0;
    }
  }

  // When the WebRTC video was the freshest picture, copy it to the canvas so that stills-mode
  // regions are composed over what the operator last saw.
  function keepVideoAsCanvasBase() {
    if (rtcVideoStamp > canvasStamp && el.video.videoWidth > 0) {
      try {
        ctx.drawImage(el.video, 0, 0, el.canvas.width, el.canvas.height);
        canvasStamp = nowMs();
      } catch { /* ignore */ }
    }
  }

  // ------------------------------------------------------------------ timeline
  const MAX_ROWS = 200;
  const stepRows = new Map(); // key → {li, url}
  let anonSteps = 0;

  function addStep(step) {
    if (!step || typeof step !== 'object') return;
    const seqNum = typeof step.seq === 'number' ? step.seq : Number(step.seq);
    const hasSeq = Number.isFinite(seqNum);
    const key = hasSeq ? seqNum : `anon-${++anonSteps}`;
    const idx = hasSeq ? V.steps.findIndex((s) => Number(s.seq) === seqNum) : -1;
    if (idx >= 0) V.steps[idx] = step;
    else {
      V.steps.push(step);
      if (V.steps.length > 500) V.steps.shift();
    }
    let row = stepRows.get(key);
    if (!row) {
      const li = document.createElement('li');
      li.className = 'step';
      if (hasSeq) li.dataset.seq = String(seqNum);
      // newest (highest seq) at the top
      let before = el.steps.firstElementChild;
      if (hasSeq) {
        while (before && before.dataset.seq !== undefined && Number(before.dataset.seq) > seqNum) before = before.nextElementSibling;
      }
      el.steps.insertBefore(li, before);
      row = { li, url: null, key };
      stepRows.set(key, row);
      while (el.steps.children.length > MAX_ROWS) {
        const last = el.steps.lastElementChild;
        for (const [rk, r] of stepRows) {
          if (r.li === last) { if (r.url) URL.revokeObjectURL(r.url); stepRows.delete(rk); break; }
        }
        last.remove();
      }
    }
    renderStep(row, step);
    if (hasSeq && pendingStepStills.has(seqNum)) {
      setStepStill(row, pendingStepStills.get(seqNum));
      pendingStepStills.delete(seqNum);
    }
    el.stepCount.textContent = String(V.steps.length);
  }

  const KNOWN = new Set(['seq', 'at_ms', 'kind', 'title', 'actor', 'decision', 'detail']);

  function fmtTime(at) {
    const n = Number(at);
    if (!Number.isFinite(n)) return '';
    if (n > 1e11) { // Unix epoch ms
      const d = new Date(n);
      const p = (v, w = 2) => String(v).padStart(w, '0');
      return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    }
    const s = n / 1000; // relative ms
    return `+${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, '0')}`;
  }

  function decisionClass(d) {
    const v = String(d).toLowerCase();
    if (['allow', 'allowed', 'approve', 'approved', 'ok'].includes(v)) return 'allow';
    if (['ask', 'pending', 'waiting'].includes(v)) return 'ask';
    if (['deny', 'denied', 'reject', 'rejected', 'timeout', 'timed_out', 'blocked', 'error'].includes(v)) return 'deny';
    return 'other';
  }

  const brief = (v) => {
    if (v === null || v === undefined) return '';
    if (typeof v === 'string') return v;
    try { return JSON.stringify(v); } catch { return String(v); }
  };

  function span(cls, text) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  function renderStep(row, step) {
    const li = row.li;
    const keepImg = li.querySelector('.step-still');
    li.replaceChildren();
    const img = keepImg || document.createElement('img');
    if (!keepImg) {
      img.className = 'step-still';
      img.alt = '';
      img.decoding = 'async';
    }
    const body = document.createElement('div');
    body.className = 'step-body';
    const head = document.createElement('div');
    head.className = 'step-head';
    head.append(span('step-time', fmtTime(step.at_ms)));
    if (step.kind !== undefined) head.append(span('step-kind', String(step.kind)));
    if (step.decision !== undefined && step.decision !== null) {
      const b = span(`badge d-${decisionClass(step.decision)}`, String(step.decision));
      b.setAttribute('aria-label', `decision ${step.decision}`);
      head.append(b);
    }
    const title = document.createElement('div');
    title.className = 'step-title';
    title.textContent = step.title !== undefined ? String(step.title) : String(step.kind ?? 'step');
    title.title = title.textContent;
    const meta = document.createElement('div');
    meta.className = 'step-meta';
    const metaParts = [];
    if (step.seq !== undefined) metaParts.push(`#${step.seq}`);
    if (step.actor !== undefined && step.actor !== null) metaParts.push(brief(step.actor));
    for (const [k, v] of Object.entries(step)) {
      if (!KNOWN.has(k) && v !== null && v !== undefined && v !== '') metaParts.push(`${k}=${brief(v)}`);
    }
    meta.textContent = metaParts.join(' · ');
    meta.title = meta.textContent;
    body.append(head, title, meta);
    if (step.detail !== undefined && step.detail !== null && step.detail !== '') {
      const det = document.createElement('div');
      det.className = 'step-detail';
      const full = brief(step.detail);
      det.textContent = full.length > 300 ? `${full.slice(0, 300)}…` : full;
      det.title = full.slice(0, 4000);
      body.append(det);
    }
    img.alt = step.seq !== undefined ? `Step ${step.seq} screenshot` : 'Step screenshot';
    li.dataset.decision = step.decision !== undefined && step.decision !== null ? decisionClass(step.decision) : '';
    li.setAttribute('aria-label', `${step.kind ?? 'step'}: ${title.textContent}${step.decision ? ` (${step.decision})` : ''}`);
    li.append(img, body);
  }

  function setStepStill(row, url) {
    if (row.url) URL.revokeObjectURL(row.url);
    row.url = url;
    const img = row.li.querySelector('.step-still');
    if (img) { img.src = url; img.classList.add('loaded'); }
  }

  // ------------------------------------------------------------------ WebRTC
  let pc = null, dc = null;
  let statsTimer = 0;
  let prevStats = null;
  let rtcKeyBase = 0, rtcKeyNow = 0;
  let reofferTimer = 0;

  function updateKeyframes() {
    V.keyframesDecoded = wcKeyframes + rtcKeyBase + rtcKeyNow;
  }

  function closeRTC() {
    clearInterval(statsTimer);
    clearTimeout(reofferTimer);
    statsTimer = 0;
    prevStats = null;
    rtcKeyBase += rtcKeyNow;
    rtcKeyNow = 0;
    updateKeyframes();
    if (dc) { try { dc.close(); } catch { /* ignore */ } }
    if (pc) { try { pc.close(); } catch { /* ignore */ } }
    dc = null;
    pc = null;
    hasTrack = false;
    if (el.video.srcObject) el.video.srcObject = null;
    V.rtcState = null;
  }

  function waitIceGathering(p, maxMs) {
    return new Promise((resolve) => {
      if (p.iceGatheringState === 'complete') { resolve(); return; }
      const t = setTimeout(resolve, maxMs);
      p.addEventListener('icegatheringstatechange', () => {
        if (p.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
      });
    });
  }

  async function startRTC(g) {
    closeRTC();
    let p;
    try {
      p = new RTCPeerConnection({ iceServers: [] });
    } catch (e) {
      clientError(`RTCPeerConnection: ${e?.message ?? e}`);
      return;
    }
    pc = p;
    try {
      const tr = p.addTransceiver('video', { direction: 'recvonly' });
      try { tr.receiver.jitterBufferTarget = 0; } catch { /* not supported */ }
      const channel = p.createDataChannel('input', { ordered: true });
      channel.binaryType = 'arraybuffer';
      dc = channel;
      channel.onopen = () => renderConn();
      channel.onmessage = (e) => { if (typeof e.data === 'string') onText(e.data); };
      p.ontrack = (e) => {
        if (pc !== p) return;
        try { e.receiver.jitterBufferTarget = 0; } catch { /* not supported */ }
        try { e.receiver.playoutDelayHint = 0; } catch { /* not supported */ }
        el.video.srcObject = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
        hasTrack = true;
        el.video.play().catch((err) => clientError(`video.play: ${err?.message ?? err}`));
        startFrameCallbacks();
        refreshDisplay();
      };
      p.onconnectionstatechange = () => {
        if (pc !== p) return;
        V.rtcState = p.connectionState;
        renderConn();
        if (p.connectionState === 'failed' && g === gen && V.state === 'open') {
          clientError('WebRTC connection failed; sending a new offer in 2 s');
          clearTimeout(reofferTimer);
          reofferTimer = setTimeout(() => { if (g === gen && V.state === 'open') startRTC(g); }, 2000);
        }
      };
      await p.setLocalDescription(await p.createOffer());
      await waitIceGathering(p, 3000);
      if (pc !== p || g !== gen) return;
      sendJSON({ type: 'offer', sdp: p.localDescription.sdp });
      statsTimer = setInterval(() => pollStats(p), 1000);
    } catch (e) {
      clientError(`WebRTC setup: ${e?.message ?? e}`);
    }
  }

  function onAnswer(m) {
    const p = pc;
    if (!p || typeof m.sdp !== 'string') return;
    if (p.signalingState !== 'have-local-offer') { clientError(`answer in signaling state ${p.signalingState}`); return; }
    p.setRemoteDescription({ type: 'answer', sdp: m.sdp }).catch((e) => clientError(`setRemoteDescription: ${e?.message ?? e}`));
  }

  let rvfcStarted = false;
  function startFrameCallbacks() {
    if (rvfcStarted || typeof el.video.requestVideoFrameCallback !== 'function') return;
    rvfcStarted = true;
    const cb = (now, md) => {
      V.framesDecoded++;
      V.frameWidth = md.width;
      V.frameHeight = md.height;
      V.lastFrame = { ...md, shown_ms: performance.timeOrigin + now };
      rtcVideoStamp = nowMs();
      lastVideoSource = 'webrtc';
      refreshDisplay();
      el.video.requestVideoFrameCallback(cb);
    };
    el.video.requestVideoFrameCallback(cb);
  }

  function findInbound(st) {
    let inb = null, pair = null, selId = null;
    st.forEach((s) => {
      if (s.type === 'inbound-rtp' && (s.kind === 'video' || s.mediaType === 'video')) inb = s;
      if (s.type === 'transport' && s.selectedCandidatePairId) selId = s.selectedCandidatePairId;
    });
    if (selId) pair = st.get(selId) || null;
    if (!pair) st.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    return { inb, pair };
  }

  async function pollStats(p) {
    if (pc !== p) return;
    let st;
    try { st = await p.getStats(); } catch { return; }
    if (pc !== p) return;
    const { inb, pair } = findInbound(st);
    const msg = { type: 'stats' };
    if (pair && typeof pair.currentRoundTripTime === 'number') msg.rtt_ms = Math.round(pair.currentRoundTripTime * 10000) / 10;
    // Only a real estimate: the received byte rate of a stream that sends only changes says
    // nothing about the link.
    if (pair && typeof pair.availableIncomingBitrate === 'number') msg.bandwidth_kbps = Math.round(pair.availableIncomingBitrate / 1000);
    if (inb) {
      const cur = { t: inb.timestamp, lost: inb.packetsLost ?? null, recv: inb.packetsReceived ?? null, bytes: inb.bytesReceived ?? null };
      if (prevStats) {
        if (cur.lost !== null && cur.recv !== null && prevStats.lost !== null && prevStats.recv !== null) {
          const dl = Math.max(0, cur.lost - prevStats.lost), dr = Math.max(0, cur.recv - prevStats.recv);
          if (dl + dr > 0) msg.loss = Math.round((dl / (dl + dr)) * 10000) / 10000;
        }
      }
      prevStats = cur;
      if (typeof inb.framesDecoded === 'number') msg.frames_decoded = inb.framesDecoded;
      if (typeof inb.keyFramesDecoded === 'number') { rtcKeyNow = inb.keyFramesDecoded; updateKeyframes(); }
    }
    if (Object.keys(msg).length > 1) sendJSON(msg);
  }

  async function rtcStats() {
    const p = pc;
    if (!p) return null;
    const st = await p.getStats();
    const { inb } = findInbound(st);
    if (!inb) return null;
    const codec = inb.codecId ? st.get(inb.codecId) : null;
    return {
      framesDecoded: inb.framesDecoded ?? 0,
      frameWidth: inb.frameWidth ?? 0,
      frameHeight: inb.frameHeight ?? 0,
      keyFramesDecoded: inb.keyFramesDecoded ?? 0,
      packetsLost: inb.packetsLost ?? 0,
      pliCount: inb.pliCount ?? 0,
      codec: codec?.mimeType ?? null,
      bytesReceived: inb.bytesReceived ?? 0,
      jitterBufferDelayMs: inb.jitterBufferEmittedCount ? (1000 * inb.jitterBufferDelay) / inb.jitterBufferEmittedCount : null,
    };
  }

  function teardownMedia() {
    closeRTC();
    closeDecoder();
    waitingKey = true;
    refreshDisplay();
  }

  // ------------------------------------------------------------------ operator input (UI)
  let pendingMove = null;
  let moveRaf = 0;
  let wheelAcc = [0, 0];

  function toScreen(e) {
    return mapToScreen(e.clientX, e.clientY, el.stage.getBoundingClientRect(), screenW(), screenH());
  }

  function flushMove() {
    moveRaf = 0;
    const p = pendingMove;
    pendingMove = null;
    if (p && canControl()) sendInput(encodeMove(p.x, p.y));
  }

  function releaseAllInput() {
    pendingMove = null;
    return sendInput(encodeReleaseAll());
  }

  el.stage.addEventListener('pointermove', (e) => {
    if (!canControl()) return;
    const p = toScreen(e);
    if (!p) return;
    if (e.button >= 0 && e.button <= 2 && e.pointerType === 'mouse') {
      // chorded button change (a second button pressed/released while another is down)
      const bit = [1, 4, 2][e.button];
      flushPending();
      sendInput(encodeButton(e.button, (e.buttons & bit) !== 0, p.x, p.y));
      return;
    }
    pendingMove = p;
    if (!moveRaf) moveRaf = requestAnimationFrame(flushMove);
  });

  function flushPending() {
    if (moveRaf) { cancelAnimationFrame(moveRaf); moveRaf = 0; }
    if (pendingMove) flushMove();
  }

  el.stage.addEventListener('pointerdown', (e) => {
    if (!canControl()) return;
    e.preventDefault();
    if (document.activeElement && document.activeElement !== el.stage) document.activeElement.blur?.();
    el.stage.focus({ preventScroll: true });
    try { el.stage.setPointerCapture(e.pointerId); } catch { /* ignore */ }
    if (e.button < 0 || e.button > 2) return;
    const p = toScreen(e);
    if (!p) return;
    flushPending();
    sendInput(encodeButton(e.button, true, p.x, p.y));
  });

  el.stage.addEventListener('pointerup', (e) => {
    if (!canControl()) return;
    e.preventDefault();
    if (e.button < 0 || e.button > 2) return;
    const p = toScreen(e);
    if (!p) return;
    flushPending();
    sendInput(encodeButton(e.button, false, p.x, p.y));
  });

  el.stage.addEventListener('pointercancel', () => { if (canControl()) releaseAllInput(); });

  el.stage.addEventListener('wheel', (e) => {
    if (!canControl()) return;
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 100 / 3 : e.deltaMode === 2 ? 800 : 1;
    const [cx, rx] = wheelClicks(wheelAcc[0], e.deltaX * unit);
    const [cy, ry] = wheelClicks(wheelAcc[1], e.deltaY * unit);
    wheelAcc = [rx, ry];
    if (cx === 0 && cy === 0) return;
    const p = toScreen(e);
    if (!p) return;
    flushPending();
    sendInput(encodeWheel(cx, cy, p.x, p.y));
  }, { passive: false });

  el.stage.addEventListener('contextmenu', (e) => e.preventDefault());
  el.stage.addEventListener('dragstart', (e) => e.preventDefault());

  const isTextField = (t) => t instanceof HTMLElement &&
    (t.isContentEditable || t.tagName === 'TEXTAREA' || (t.tagName === 'INPUT' && !['button', 'checkbox', 'radio', 'submit'].includes(t.type)));

  function onKey(e, down) {
    if (!canControl() || isTextField(e.target) || e.isComposing) return;
    const ks = keysymForEvent(e);
    if (ks === null) return;
    e.preventDefault();
    e.stopPropagation();
    sendInput(encodeKey(ks, down));
  }
  document.addEventListener('keydown', (e) => onKey(e, true), true);
  document.addEventListener('keyup', (e) => onKey(e, false), true);

  addEventListener('blur', () => { if (canControl()) releaseAllInput(); });
  document.addEventListener('visibilitychange', () => { if (document.hidden && canControl()) releaseAllInput(); });

  // ------------------------------------------------------------------ probe / hooks
  let probeCanvas = null, probeCtx = null;

  function probe(x, y, w = 1, h = 1) {
    const d = V.displayed;
    if (!d) return null;
    let src;
    if (d === 'video') { if (!(el.video.videoWidth > 0)) return null; src = el.video; }
    else if (d === 'canvas') src = el.canvas;
    else src = el.thumb;
    const W = screenW(), H = screenH();
    if (!probeCanvas) {
      probeCanvas = document.createElement('canvas');
      probeCtx = probeCanvas.getContext('2d', { willReadFrequently: true });
    }
    if (probeCanvas.width !== W || probeCanvas.height !== H) { probeCanvas.width = W; probeCanvas.height = H; }
    probeCtx.drawImage(src, 0, 0, W, H);
    const x0 = Math.max(0, Math.min(W - 1, Math.floor(x)));
    const y0 = Math.max(0, Math.min(H - 1, Math.floor(y)));
    const w0 = Math.max(1, Math.min(W - x0, Math.floor(w) || 1));
    const h0 = Math.max(1, Math.min(H - y0, Math.floor(h) || 1));
    const px = probeCtx.getImageData(x0, y0, w0, h0).data;
    let r = 0, g = 0, b = 0;
    const n = w0 * h0;
    for (let i = 0; i < px.length; i += 4) { r += px[i]; g += px[i + 1]; b += px[i + 2]; }
    return { r: Math.round(r / n), g: Math.round(g / n), b: Math.round(b / n) };
  }

  function waitFor(pred, timeoutMs = 10000) {
    return new Promise((resolve) => {
      const t0 = nowMs();
      const tick = () => {
        let ok = false;
        try { ok = !!pred(V); } catch { ok = false; }
        if (ok) resolve(true);
        else if (nowMs() - t0 >= timeoutMs) resolve(false);
        else setTimeout(tick, 20);
      };
      tick();
    });
  }

  const toBytes = (b) => (b instanceof Uint8Array ? b : b instanceof ArrayBuffer ? new Uint8Array(b) : Uint8Array.from(b));

  Object.assign(V, {
    probe,
    waitFor,
    sendMove: (x, y) => sendInput(encodeMove(x, y)),
    sendButton: (button, down, x, y) => sendInput(encodeButton(button, down, x, y)),
    sendClick: (x, y, button = 0) => sendInput(encodeButton(button, true, x, y)) && sendInput(encodeButton(button, false, x, y)),
    sendWheel: (dx, dy, x, y) => sendInput(encodeWheel(dx, dy, x, y)),
    sendKey: (keysym, down) => sendInput(encodeKey(keysym, down)),
    typeText: (str) => {
      let n = 0;
      for (const [ks, down] of textToKeyEvents(str)) if (sendInput(encodeKey(ks, down))) n++;
      return n;
    },
    releaseAll: () => releaseAllInput(),
    sendRaw: (bytes) => sendInput(toBytes(bytes)),
    sendText: (str) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(String(str));
      return true;
    },
    takeover,
    handback,
    setFocus,
    rtcStats,
    dataChannelOpen: () => !!dc && dc.readyState === 'open',
  });

  // ------------------------------------------------------------------ start
  async function detectCodecs() {
    const out = [];
    if (transport === 'webrtc') {
      const caps = RTCRtpReceiver.getCapabilities?.('video')?.codecs ?? [];
      const mimes = new Set(caps.map((c) => String(c.mimeType).toLowerCase()));
      if (mimes.has('video/h264')) out.push('h264');
      if (mimes.has('video/vp8')) out.push('vp8');
    } else if (transport === 'webcodecs') {
      const check = async (codec) => {
        try {
          const r = await Promise.race([
            VideoDecoder.isConfigSupported({ codec }),
            new Promise((resolve) => setTimeout(() => resolve({ supported: false, timeout: true }), 3000)),
          ]);
          return !!r?.supported;
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

  el.sandbox.textContent = sandbox || '—';
  el.sandbox.title = sandbox ? `Sandbox ${sandbox}` : 'No sandbox';
  document.title = sandbox ? `Airlock · ${sandbox}` : 'Airlock viewer';
  el.stage.dataset.transport = transport;
  renderLease();
  renderControls();
  refreshDisplay();

  (async () => {
    try {
      V.codecs = await detectCodecs();
    } catch (e) {
      clientError(`codec detection: ${e?.message ?? e}`);
    }
    if (!sandbox) {
      clientError('no sandbox in the URL');
      setState('closed');
      return;
    }
    connect();
  })();
}

if (typeof window !== 'undefined' && typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main, { once: true });
  else main();
}
