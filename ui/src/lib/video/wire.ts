// The viewer socket's messages (streaming/src/wire.rs), as pure functions: bytes in, typed values out.
//
// Binary, little-endian: server → client video access units (tag 1, 24-byte header) and stills
// (tag 2, 32-byte header); client → server operator input, one event per message (0x10–0x14).
// Text: JSON objects with a `type` field, typed by `ClientMessage` / `ServerMessage` (generated
// from wire.rs into ../api/types.ts). Everything the server sends is checked before use.

import type {
  ClientMessage,
  Codec,
  Rect,
  ServerMessage,
  Step,
  StepDecision,
  StepKind,
  TransportKind,
  ViewMode,
} from '../api/types';

export const TAG_VIDEO = 1;
export const TAG_STILL = 2;
export const VIDEO_HEADER_LEN = 24;
export const STILL_HEADER_LEN = 32;
export const H264_CODEC = 'avc1.42e01f';

export const IN_MOVE = 0x10;
export const IN_BUTTON = 0x11;
export const IN_WHEEL = 0x12;
export const IN_KEY = 0x13;
export const IN_RELEASE_ALL = 0x14;

/** Largest keysym the server accepts (X11 keysyms are 29-bit). */
export const MAX_KEYSYM = 0x1fffffff;
/** Longest handback note, in characters. */
export const MAX_NOTE_CHARS = 1000;

export type { ClientMessage, ServerMessage, Step };
export type VideoCodec = Codec;
export type Transport = TransportKind;
export type ViewModeName = ViewMode;
export type Welcome = Extract<ServerMessage, { type: 'welcome' }>;
export type ModeMessage = Extract<ServerMessage, { type: 'mode' }>;
export type LeaseMessage = Extract<ServerMessage, { type: 'lease' }>;
export type InputReply = Extract<ServerMessage, { type: 'input' }>;
export type ErrorMessage = Extract<ServerMessage, { type: 'error' }>;
export type DamageMessage = Extract<ServerMessage, { type: 'damage' }>;
export type StatsMessage = Extract<ClientMessage, { type: 'stats' }>;

export const CODEC_BY_ID: Readonly<Record<number, VideoCodec>> = { 1: 'h264', 2: 'vp8' };

/** Why a still was sent. */
export const STILL_THUMBNAIL = 1;
export const STILL_STEP = 2;
export const STILL_FRAME = 3;
/** Exact pixels of a region that rested, for the refinement layer over the video. */
export const STILL_REFINE = 4;

export interface VideoUnit {
  codecId: number;
  codec: VideoCodec | null;
  key: boolean;
  width: number;
  height: number;
  frame: number;
  capturedUs: number;
  payload: Uint8Array;
}

export interface Still {
  purpose: number;
  format: number;
  mime: string;
  /** The agent step it belongs to, 0 for none. */
  seq: number;
  frame: number;
  x: number;
  y: number;
  w: number;
  h: number;
  screenW: number;
  screenH: number;
  image: Uint8Array;
}

type Bytes = Uint8Array | ArrayBuffer;

const u8of = (buf: Bytes): Uint8Array => (buf instanceof Uint8Array ? buf : new Uint8Array(buf));
const dvOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Tag 1: a video access unit. Null if too short or not tag 1. */
export function parseVideo(buf: Bytes): VideoUnit | null {
  const b = u8of(buf);
  if (b.length < VIDEO_HEADER_LEN || b[0] !== TAG_VIDEO) return null;
  const dv = dvOf(b);
  const codecId = dv.getUint8(1);
  return {
    codecId,
    codec: CODEC_BY_ID[codecId] ?? null,
    key: (dv.getUint8(2) & 1) === 1,
    width: dv.getUint16(4, true),
    height: dv.getUint16(6, true),
    frame: Number(dv.getBigUint64(8, true)),
    capturedUs: Number(dv.getBigUint64(16, true)),
    payload: b.subarray(VIDEO_HEADER_LEN),
  };
}

/** Tag 2: a still image. Null if too short or not tag 2. */
export function parseStill(buf: Bytes): Still | null {
  const b = u8of(buf);
  if (b.length < STILL_HEADER_LEN || b[0] !== TAG_STILL) return null;
  const dv = dvOf(b);
  const format = dv.getUint8(2);
  return {
    purpose: dv.getUint8(1),
    format,
    mime: format === 1 ? 'image/webp' : format === 2 ? 'image/png' : 'application/octet-stream',
    seq: Number(dv.getBigUint64(4, true)),
    frame: Number(dv.getBigUint64(12, true)),
    x: dv.getUint16(20, true),
    y: dv.getUint16(22, true),
    w: dv.getUint16(24, true),
    h: dv.getUint16(26, true),
    screenW: dv.getUint16(28, true),
    screenH: dv.getUint16(30, true),
    image: b.subarray(STILL_HEADER_LEN),
  };
}

const u16 = (v: number): number => Math.round(Number(v) || 0) & 0xffff;
const i8 = (v: number): number => Math.max(-128, Math.min(127, Math.round(Number(v) || 0)));

/** DOM `MouseEvent.button` numbering: 0 left, 1 middle, 2 right, 3 back, 4 forward. */
export type ButtonNumber = 0 | 1 | 2 | 3 | 4;

export function encodeMove(x: number, y: number): Uint8Array {
  const b = new Uint8Array(5);
  const dv = dvOf(b);
  b[0] = IN_MOVE;
  dv.setUint16(1, u16(x), true);
  dv.setUint16(3, u16(y), true);
  return b;
}

export function encodeButton(button: number, down: boolean, x: number, y: number): Uint8Array {
  const b = new Uint8Array(7);
  const dv = dvOf(b);
  b[0] = IN_BUTTON;
  b[1] = Number(button) & 0xff;
  b[2] = down ? 1 : 0;
  dv.setUint16(3, u16(x), true);
  dv.setUint16(5, u16(y), true);
  return b;
}

export function encodeWheel(dx: number, dy: number, x: number, y: number): Uint8Array {
  const b = new Uint8Array(7);
  const dv = dvOf(b);
  b[0] = IN_WHEEL;
  dv.setInt8(1, i8(dx));
  dv.setInt8(2, i8(dy));
  dv.setUint16(3, u16(x), true);
  dv.setUint16(5, u16(y), true);
  return b;
}

export function encodeKey(keysym: number, down: boolean): Uint8Array {
  const b = new Uint8Array(6);
  const dv = dvOf(b);
  b[0] = IN_KEY;
  b[1] = down ? 1 : 0;
  dv.setUint32(2, Number(keysym) >>> 0, true);
  return b;
}

export function encodeReleaseAll(): Uint8Array {
  return Uint8Array.of(IN_RELEASE_ALL);
}

// ------------------------------------------------------------------------------------------
// Text messages
// ------------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const brief = (v: unknown): string | null => {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
};
const isCodec = (v: unknown): v is Codec => v === 'h264' || v === 'vp8';
const isViewMode = (v: unknown): v is ViewMode => v === 'command' || v === 'stills' || v === 'video';

const STEP_KINDS: readonly StepKind[] = [
  'decision', 'executed', 'refused', 'approval', 'approval_resolved', 'grant', 'control', 'lifecycle',
];
const STEP_DECISIONS: readonly StepDecision[] = [
  'allow', 'ask', 'deny', 'shadow_denied', 'done', 'failed', 'refused', 'approved', 'edited', 'denied', 'expired', 'pending',
];

/** Checks a command-view step (the `step` of a `step` message); null when malformed. */
export function parseStep(v: unknown): Step | null {
  if (!isObj(v)) return null;
  const seq = num(v.seq);
  const kind = STEP_KINDS.find((k) => k === v.kind);
  if (seq === null || kind === undefined) return null;
  const s = v.still;
  const still =
    isObj(s) && num(s.x) !== null && num(s.y) !== null && num(s.w) !== null && num(s.h) !== null
      ? { x: s.x as number, y: s.y as number, w: s.w as number, h: s.h as number }
      : undefined;
  const step: Step = {
    seq,
    at_ms: num(v.at_ms) ?? 0,
    kind,
    title: str(v.title) ?? kind,
    actor: str(v.actor),
    decision: STEP_DECISIONS.find((d) => d === v.decision) ?? null,
    detail: brief(v.detail),
  };
  if (still) step.still = still;
  return step;
}

/** A screen rectangle: four whole numbers, none negative. */
function parseRect(v: unknown): Rect | null {
  if (!isObj(v)) return null;
  const [x, y, width, height] = [num(v.x), num(v.y), num(v.width), num(v.height)];
  if (x === null || y === null || width === null || height === null) return null;
  if (![x, y, width, height].every((n) => Number.isInteger(n) && n >= 0)) return null;
  return { x, y, width, height };
}

/**
 * Parses and checks one text message from the server; null for anything unknown or malformed.
 * Fields the generated type requires are checked.
 */
export function parseServerText(text: string): ServerMessage | null {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObj(m) || typeof m.type !== 'string') return null;
  switch (m.type) {
    case 'welcome': {
      const width = num(m.width);
      const height = num(m.height);
      if (width === null || height === null || width <= 0 || height <= 0) return null;
      return {
        type: 'welcome',
        viewer: num(m.viewer) ?? 0,
        sandbox: str(m.sandbox) ?? '',
        operator: str(m.operator) ?? '',
        width,
        height,
      };
    }
    case 'mode': {
      if (!isViewMode(m.mode)) return null;
      return {
        type: 'mode',
        mode: m.mode,
        codec: isCodec(m.codec) ? m.codec : null,
        fps: num(m.fps) ?? 0,
        bitrate_kbps: num(m.bitrate_kbps) ?? 0,
        reason: str(m.reason) ?? '',
      };
    }
    case 'answer': {
      const sdp = str(m.sdp);
      return sdp === null ? null : { type: 'answer', sdp };
    }
    case 'lease': {
      const holder = str(m.holder);
      if (holder === null) return null;
      return {
        type: 'lease',
        holder,
        operator: str(m.operator),
        epoch: num(m.epoch) ?? 0,
        you_control: m.you_control === true,
      };
    }
    case 'step': {
      const step = parseStep(m.step);
      return step ? { type: 'step', step } : null;
    }
    case 'input':
      return { type: 'input', accepted: m.accepted === true, reason: str(m.reason) ?? '' };
    case 'damage': {
      if (!Array.isArray(m.rects)) return null;
      const rects: Rect[] = [];
      for (const r of m.rects as unknown[]) {
        const rect = parseRect(r);
        if (!rect) return null;
        rects.push(rect);
      }
      return { type: 'damage', rects };
    }
    case 'error':
      return { type: 'error', code: str(m.code) ?? 'error', message: str(m.message) ?? 'error' };
    default:
      return null;
  }
}

/** The hello a viewer sends first. */
export function helloMessage(
  transport: Transport,
  codecs: VideoCodec[],
  focused: boolean,
  socketVideo: boolean,
): ClientMessage {
  // The server wants 1 to 4 codecs for a video transport: without any, ask for stills only.
  const list = transport === 'none' ? [] : codecs.slice(0, 4);
  const t: Transport = list.length === 0 ? 'none' : transport;
  return { type: 'hello', transport: t, codecs: list, focused, socket_video: t === 'webrtc' && socketVideo };
}

/** A handback with the note trimmed and cut to the server's limit; no note when empty. */
export function handbackMessage(note: string | null | undefined): ClientMessage {
  const t = (note ?? '').trim();
  if (t === '') return { type: 'handback', note: null };
  const chars = [...t];
  return { type: 'handback', note: chars.length > MAX_NOTE_CHARS ? chars.slice(0, MAX_NOTE_CHARS).join('') : t };
}

/** A receiver-statistics message with nothing measured yet. */
export function emptyStats(): StatsMessage {
  return { type: 'stats', rtt_ms: null, loss: null, bandwidth_kbps: null, frames_decoded: null };
}
