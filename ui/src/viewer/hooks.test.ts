import { describe, expect, it } from 'vitest';
import { HookRecorder } from './hooks';

describe('viewer test hooks', () => {
  it('keeps the last welcome, mode and lease, steps by seq, replies and errors', () => {
    const r = new HookRecorder();
    const msg = r.tap.message;
    msg?.({ type: 'mode', mode: 'command', codec: null, fps: 0, bitrate_kbps: 0, reason: 'unfocused' });
    msg?.({ type: 'lease', holder: 'agent', operator: null, epoch: 1, you_control: false });
    const step = { seq: 1, at_ms: 5, title: 'type', actor: 'agent', decision: null, detail: null } as const;
    msg?.({ type: 'step', step: { ...step, kind: 'decision' } });
    msg?.({ type: 'step', step: { ...step, kind: 'executed' } });
    msg?.({ type: 'input', accepted: false, reason: 'the agent holds control' });
    msg?.({ type: 'error', code: 'bad_input', message: 'unknown input tag 0x99' });
    expect(r.mode?.mode).toBe('command');
    expect(r.lease?.holder).toBe('agent');
    expect(r.steps).toEqual([{ ...step, kind: 'executed' }]);
    expect(r.inputReplies.some((x) => !x.accepted)).toBe(true);
    expect(JSON.stringify(r.errors)).toContain('0x99');
    expect(r.messages).toEqual({ mode: 1, lease: 1, step: 2, input: 1, error: 1 });
  });

  it('counts frames shown from both transports and stills by purpose', () => {
    const r = new HookRecorder();
    const f = { width: 1280, height: 800, frame: null, capturedUs: null, shownMs: 1 };
    r.tap.frame?.({ ...f, source: 'webrtc', key: false });
    r.tap.frame?.({ ...f, source: 'webcodecs', key: true, frame: 7 });
    expect([r.framesDecoded, r.frameWidth, r.frameHeight, r.keyframesDecoded]).toEqual([2, 1280, 800, 1]);
    expect(r.lastFrame?.frame).toBe(7);
    r.tap.still?.({ purpose: 2 } as Parameters<NonNullable<typeof r.tap.still>>[0]);
    expect(r.stills).toEqual({ 1: 0, 2: 1, 3: 0 });
  });
});
