import { describe, expect, it } from 'vitest';
import { mapToScreen, moveBy, wheelClicks } from './geometry';
import { isTakeoverShortcut, keysymForCode, keysymForEvent, textToKeyEvents, XK_SHIFT_L } from './keys';
import { attachStill, decisionTone, MAX_STEPS, upsertStep, type TimelineStep } from './steps';
import {
  encodeButton,
  encodeKey,
  encodeMove,
  encodeReleaseAll,
  encodeWheel,
  handbackMessage,
  helloMessage,
  parseServerText,
  parseStep,
  parseStill,
  parseVideo,
  type Step,
} from './wire';

function videoBytes(): Uint8Array {
  const b = new Uint8Array(24 + 3);
  const dv = new DataView(b.buffer);
  b[0] = 1; // tag
  b[1] = 2; // vp8
  b[2] = 1; // keyframe
  dv.setUint16(4, 1280, true);
  dv.setUint16(6, 800, true);
  dv.setBigUint64(8, 42n, true);
  dv.setBigUint64(16, 1_700_000_000_000_000n, true);
  b.set([7, 8, 9], 24);
  return b;
}

function stillBytes(purpose: number, seq: number): Uint8Array {
  const b = new Uint8Array(32 + 2);
  const dv = new DataView(b.buffer);
  b[0] = 2;
  b[1] = purpose;
  b[2] = 1; // webp
  dv.setBigUint64(4, BigInt(seq), true);
  dv.setBigUint64(12, 9n, true);
  dv.setUint16(20, 10, true);
  dv.setUint16(22, 20, true);
  dv.setUint16(24, 300, true);
  dv.setUint16(26, 200, true);
  dv.setUint16(28, 1280, true);
  dv.setUint16(30, 800, true);
  b.set([0xaa, 0xbb], 32);
  return b;
}

describe('binary messages', () => {
  it('parses a video access unit', () => {
    const v = parseVideo(videoBytes());
    expect(v).toMatchObject({ codec: 'vp8', key: true, width: 1280, height: 800, frame: 42, capturedUs: 1_700_000_000_000_000 });
    expect([...(v?.payload ?? [])]).toEqual([7, 8, 9]);
    // from an ArrayBuffer, and from a view into a larger buffer
    expect(parseVideo(videoBytes().buffer as ArrayBuffer)?.frame).toBe(42);
    const big = new Uint8Array(100);
    big.set(videoBytes(), 10);
    expect(parseVideo(big.subarray(10, 10 + 27))?.width).toBe(1280);
  });

  it('refuses short or mistagged messages', () => {
    expect(parseVideo(new Uint8Array(23))).toBeNull();
    expect(parseVideo(stillBytes(1, 0))).toBeNull();
    expect(parseStill(videoBytes())).toBeNull();
    expect(parseStill(new Uint8Array(31).fill(2))).toBeNull();
    const unknownCodec = videoBytes();
    unknownCodec[1] = 9;
    expect(parseVideo(unknownCodec)?.codec).toBeNull();
  });

  it('parses a still', () => {
    const s = parseStill(stillBytes(2, 17));
    expect(s).toMatchObject({ purpose: 2, mime: 'image/webp', seq: 17, frame: 9, x: 10, y: 20, w: 300, h: 200, screenW: 1280, screenH: 800 });
    expect([...(s?.image ?? [])]).toEqual([0xaa, 0xbb]);
  });

  it('encodes input exactly as wire.rs reads it', () => {
    expect([...encodeMove(10, 20)]).toEqual([0x10, 10, 0, 20, 0]);
    expect([...encodeButton(2, true, 0x1234, 5)]).toEqual([0x11, 2, 1, 0x34, 0x12, 5, 0]);
    expect([...encodeWheel(-2, 5, 3, 4)]).toEqual([0x12, 0xfe, 5, 3, 0, 4, 0]);
    expect([...encodeWheel(-1000, 1000, 0, 0)].slice(1, 3)).toEqual([0x80, 0x7f]);
    expect([...encodeKey(0xff0d, false)]).toEqual([0x13, 0, 0x0d, 0xff, 0, 0]);
    expect([...encodeKey(0x1000020ac, true)].length).toBe(6);
    expect([...encodeReleaseAll()]).toEqual([0x14]);
    // garbage numbers never throw
    expect([...encodeMove(Number.NaN, -1)]).toEqual([0x10, 0, 0, 0xff, 0xff]);
  });
});

describe('text messages', () => {
  it('parses the server messages it knows and checks them', () => {
    expect(parseServerText('{"type":"welcome","viewer":3,"sandbox":"sb","operator":"ana","width":1280,"height":800}')).toEqual({
      type: 'welcome', viewer: 3, sandbox: 'sb', operator: 'ana', width: 1280, height: 800,
    });
    expect(parseServerText('{"type":"welcome","width":0,"height":800}')).toBeNull();
    expect(parseServerText('{"type":"mode","mode":"video","codec":"h264","fps":30,"bitrate_kbps":2500,"reason":"focus"}')).toMatchObject({ mode: 'video', codec: 'h264' });
    expect(parseServerText('{"type":"mode","mode":"hologram"}')).toBeNull();
    expect(parseServerText('{"type":"lease","holder":"human","operator":null,"epoch":4,"you_control":true}')).toEqual({
      type: 'lease', holder: 'human', operator: null, epoch: 4, you_control: true,
    });
    expect(parseServerText('{"type":"input","accepted":false,"reason":"the agent holds the lease"}')).toEqual({
      type: 'input', accepted: false, reason: 'the agent holds the lease',
    });
    expect(parseServerText('{"type":"error","code":"bad_input","message":"no"}')).toMatchObject({ code: 'bad_input' });
    for (const bad of ['', 'not json', '[]', 'null', '{"type":5}', '{"type":"reboot"}', '{"type":"answer"}']) {
      expect(parseServerText(bad)).toBeNull();
    }
  });

  it('reads steps tolerantly', () => {
    const m = parseServerText(
      '{"type":"step","step":{"seq":3,"at_ms":5,"kind":"decision","title":"click x=1","actor":"claude","decision":"ask","detail":null,"still":{"x":1,"y":2,"w":3,"h":4}}}',
    );
    expect(m).toMatchObject({ type: 'step', step: { seq: 3, kind: 'decision', decision: 'ask', detail: null, still: { w: 3 } } });
    // a step without a number or of an unknown kind is refused; odd fields are dropped
    expect(parseServerText('{"type":"step","step":5}')).toBeNull();
    expect(parseStep({ kind: 'decision' })).toBeNull();
    expect(parseStep({ seq: 1, kind: 'reboot' })).toBeNull();
    expect(parseStep({ seq: 7, kind: 'control', decision: 'maybe', detail: { a: 1 } })).toMatchObject({
      seq: 7, decision: null, detail: '{"a":1}', actor: null,
    });
    expect(parseStep('x')).toBeNull();
  });

  it('builds hello and handback messages the server accepts', () => {
    expect(helloMessage('webcodecs', ['h264', 'vp8'], true, false)).toEqual({
      type: 'hello', transport: 'webcodecs', codecs: ['h264', 'vp8'], focused: true, socket_video: false,
    });
    // a video transport without a codec falls back to stills
    expect(helloMessage('webrtc', [], false, true)).toEqual({ type: 'hello', transport: 'none', codecs: [], focused: false, socket_video: false });
    expect(helloMessage('none', ['vp8'], false, false)).toMatchObject({ codecs: [] });
    expect(handbackMessage('  ')).toEqual({ type: 'handback', note: null });
    expect(handbackMessage(' fixed it ')).toEqual({ type: 'handback', note: 'fixed it' });
    const long = handbackMessage('é'.repeat(1500));
    expect(long.type === 'handback' && [...(long.note ?? '')].length).toBe(1000);
  });
});

describe('keys', () => {
  it('maps physical keys and characters to keysyms', () => {
    expect(keysymForCode('KeyA')).toBe(0x61);
    expect(keysymForCode('Enter')).toBe(0xff0d);
    expect(keysymForCode('F12')).toBe(0xffc9);
    expect(keysymForCode('toString')).toBeNull();
    expect(keysymForEvent({ code: 'Unidentified', key: 'é' })).toBe(0xe9);
    expect(keysymForEvent({ code: '', key: '€' })).toBe(0x010020ac);
    expect(keysymForEvent({ code: '', key: 'Dead' })).toBeNull();
  });

  it('turns text into US-layout key presses', () => {
    expect(textToKeyEvents('aB')).toEqual([
      [0x61, true], [0x61, false],
      [XK_SHIFT_L, true], [0x62, true], [0x62, false], [XK_SHIFT_L, false],
    ]);
    expect(textToKeyEvents('!')).toEqual([[XK_SHIFT_L, true], [0x31, true], [0x31, false], [XK_SHIFT_L, false]]);
    expect(textToKeyEvents('\r\n').length).toBe(2); // one Return
    expect(textToKeyEvents('\x01')).toEqual([]);
    expect(textToKeyEvents('😀')[0]).toEqual([0x0101f600, true]);
  });

  it('recognises the take-control shortcut only as Ctrl+Alt+Enter', () => {
    const k = { key: 'Enter', code: 'Enter', ctrlKey: true, altKey: true, metaKey: false, shiftKey: false };
    expect(isTakeoverShortcut(k)).toBe(true);
    expect(isTakeoverShortcut({ ...k, altKey: false })).toBe(false);
    expect(isTakeoverShortcut({ ...k, shiftKey: true })).toBe(false);
    expect(isTakeoverShortcut({ ...k, key: 'a', code: 'KeyA' })).toBe(false);
  });
});

describe('geometry', () => {
  it('maps client points through letterboxing', () => {
    const rect = { left: 0, top: 0, width: 1000, height: 1000 };
    // 1280x800 in 1000x1000: scale 0.78125, 187.5 px bars top and bottom
    expect(mapToScreen(500, 500, rect, 1280, 800)).toEqual({ x: 640, y: 400, inside: true });
    expect(mapToScreen(500, 10, rect, 1280, 800)).toEqual({ x: 640, y: 0, inside: false });
    expect(mapToScreen(0, 0, { left: 0, top: 0, width: 0, height: 0 }, 1280, 800)).toBeNull();
  });

  it('moves relatively within the screen', () => {
    expect(moveBy({ x: 10, y: 10 }, -50, 5, 100, 100)).toEqual({ x: 0, y: 15 });
    expect(moveBy({ x: 90, y: 90 }, 50, 50, 100, 100)).toEqual({ x: 99, y: 99 });
  });

  it('accumulates wheel deltas into clicks', () => {
    expect(wheelClicks(0, 50)).toEqual([0, 50]);
    expect(wheelClicks(50, 60)).toEqual([1, 10]);
    expect(wheelClicks(50, -120)).toEqual([-1, -20]); // direction flip drops the remainder
    expect(wheelClicks(0, 1e9)[0]).toBe(127);
  });
});

describe('timeline steps', () => {
  const step = (seq: number, title = `s${seq}`): Step => ({
    seq, at_ms: 1, kind: 'decision', title, actor: null, decision: null, detail: null,
  });

  it('keeps steps newest first and replaces re-sent ones in place', () => {
    let list: TimelineStep[] = [];
    for (const s of [1, 3, 2]) list = upsertStep(list, step(s), `a${s}`, null).list;
    expect(list.map((s) => s.seq)).toEqual([3, 2, 1]);
    list = upsertStep(list, step(2, 'again'), 'x', null).list;
    expect(list.map((s) => s.title)).toEqual(['s3', 'again', 's1']);
  });

  it('attaches stills and reports URLs to revoke', () => {
    let list = upsertStep([], step(1), 'k', null).list;
    const r = attachStill(list, 1, 'blob:1');
    expect(r?.list[0]?.stillUrl).toBe('blob:1');
    list = r?.list ?? [];
    expect(attachStill(list, 1, 'blob:2')?.dropped).toEqual(['blob:1']);
    expect(attachStill(list, 5, 'blob:5')).toBeNull();
  });

  it('caps the list and hands back the dropped stills', () => {
    let list: TimelineStep[] = [];
    for (let i = 1; i <= MAX_STEPS; i++) list = upsertStep(list, step(i), `k${i}`, `blob:${i}`).list;
    const r = upsertStep(list, step(MAX_STEPS + 1), 'k', null);
    expect(r.list).toHaveLength(MAX_STEPS);
    expect(r.dropped).toEqual(['blob:1']);
  });

  it('colours decisions', () => {
    expect(decisionTone('approved')).toBe('allow');
    expect(decisionTone('ask')).toBe('ask');
    expect(decisionTone('expired')).toBe('deny');
    expect(decisionTone(null)).toBe('other');
  });
});

describe('damage messages', () => {
  it('parses the regions to clear from the refinement layer', () => {
    expect(parseServerText('{"type":"damage","rects":[{"x":1,"y":2,"width":30,"height":40}]}')).toEqual({
      type: 'damage',
      rects: [{ x: 1, y: 2, width: 30, height: 40 }],
    });
  });

  it('refuses a damage message with a malformed region', () => {
    expect(parseServerText('{"type":"damage","rects":[{"x":-1,"y":2,"width":30,"height":40}]}')).toBeNull();
    expect(parseServerText('{"type":"damage","rects":[{"x":1,"y":2,"width":30}]}')).toBeNull();
    expect(parseServerText('{"type":"damage","rects":{}}')).toBeNull();
  });
});
