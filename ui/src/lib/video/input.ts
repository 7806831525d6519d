// Operator input on the live view → viewer socket input messages, while this operator holds
// control. Pointer Lock where the platform grants it (relative motion, the stage shows a local
// cursor), absolute coordinates otherwise. Ctrl+Alt+Enter is never forwarded.

import { mapToScreen, moveBy, wheelClicks } from './geometry';
import { isTakeoverShortcut, isTextField, keysymForEvent } from './keys';
import { encodeButton, encodeKey, encodeMove, encodeReleaseAll, encodeWheel } from './wire';

export interface InputSink {
  canControl(): boolean;
  sendInput(bytes: Uint8Array): boolean;
  readonly screenW: number;
  readonly screenH: number;
}

export interface InputCaptureOptions {
  /** Called with the pointer's screen position (for the local cursor), or null when unknown. */
  onPointer?: (p: { x: number; y: number } | null) => void;
  /** Called when Pointer Lock is engaged or released. */
  onLockChange?: (locked: boolean) => void;
  /** Use Pointer Lock when the operator presses on the stage (default true). */
  pointerLock?: boolean;
}

export class InputCapture {
  private readonly stage: HTMLElement;
  private readonly sink: InputSink;
  private readonly opts: InputCaptureOptions;
  private pos: { x: number; y: number } | null = null;
  private pendingMove: { x: number; y: number } | null = null;
  private moveRaf = 0;
  private wheelAcc: [number, number] = [0, 0];
  private readonly keysDown = new Set<number>();
  private readonly cleanups: (() => void)[] = [];

  constructor(stage: HTMLElement, sink: InputSink, opts: InputCaptureOptions = {}) {
    this.stage = stage;
    this.sink = sink;
    this.opts = opts;
    const on = <K extends keyof HTMLElementEventMap>(
      el: HTMLElement,
      type: K,
      fn: (e: HTMLElementEventMap[K]) => void,
      o?: AddEventListenerOptions,
    ): void => {
      el.addEventListener(type, fn, o);
      this.cleanups.push(() => el.removeEventListener(type, fn, o));
    };
    const onDoc = <K extends keyof DocumentEventMap>(
      type: K,
      fn: (e: DocumentEventMap[K]) => void,
      o?: AddEventListenerOptions,
    ): void => {
      document.addEventListener(type, fn, o);
      this.cleanups.push(() => document.removeEventListener(type, fn, o));
    };
    on(stage, 'pointermove', (e) => this.onPointerMove(e));
    on(stage, 'pointerdown', (e) => this.onPointerDown(e));
    on(stage, 'pointerup', (e) => this.onPointerUp(e));
    on(stage, 'pointercancel', () => this.releaseAll());
    on(stage, 'wheel', (e) => this.onWheel(e), { passive: false });
    on(stage, 'contextmenu', (e) => {
      if (this.sink.canControl()) e.preventDefault();
    });
    on(stage, 'dragstart', (e) => e.preventDefault());
    onDoc('keydown', (e) => this.onKey(e, true), { capture: true });
    onDoc('keyup', (e) => this.onKey(e, false), { capture: true });
    onDoc('pointerlockchange', () => this.opts.onLockChange?.(this.locked()));
    onDoc('visibilitychange', () => {
      if (document.hidden) this.releaseAll();
    });
    const onBlur = (): void => this.releaseAll();
    window.addEventListener('blur', onBlur);
    this.cleanups.push(() => window.removeEventListener('blur', onBlur));
  }

  dispose(): void {
    this.releaseAll();
    this.unlock();
    if (this.moveRaf) cancelAnimationFrame(this.moveRaf);
    for (const c of this.cleanups.splice(0)) c();
  }

  /** Releases every held key and button in the sandbox (sent only while in control). */
  releaseAll(): void {
    this.pendingMove = null;
    this.wheelAcc = [0, 0];
    if (this.keysDown.size > 0 || this.sink.canControl()) {
      this.keysDown.clear();
      if (this.sink.canControl()) this.sink.sendInput(encodeReleaseAll());
    }
  }

  /** Leaves Pointer Lock if this stage holds it. */
  unlock(): void {
    if (typeof document !== 'undefined' && document.pointerLockElement === this.stage) {
      try {
        document.exitPointerLock();
      } catch {
        /* not locked */
      }
    }
  }

  private locked(): boolean {
    return document.pointerLockElement === this.stage;
  }

  private toScreen(e: MouseEvent): { x: number; y: number } | null {
    if (this.locked()) {
      const base = this.pos ?? { x: Math.floor(this.sink.screenW / 2), y: Math.floor(this.sink.screenH / 2) };
      return moveBy(base, e.movementX, e.movementY, this.sink.screenW, this.sink.screenH);
    }
    const p = mapToScreen(e.clientX, e.clientY, this.stage.getBoundingClientRect(), this.sink.screenW, this.sink.screenH);
    return p ? { x: p.x, y: p.y } : null;
  }

  private setPos(p: { x: number; y: number }): void {
    this.pos = p;
    this.opts.onPointer?.(p);
  }

  private flushMove = (): void => {
    this.moveRaf = 0;
    const p = this.pendingMove;
    this.pendingMove = null;
    if (p && this.sink.canControl()) this.sink.sendInput(encodeMove(p.x, p.y));
  };

  private flushPending(): void {
    if (this.moveRaf) {
      cancelAnimationFrame(this.moveRaf);
      this.moveRaf = 0;
    }
    if (this.pendingMove) this.flushMove();
  }

  private onPointerMove(e: PointerEvent): void {
    if (!this.sink.canControl()) return;
    const p = this.toScreen(e);
    if (!p) return;
    this.setPos(p);
    if (e.button >= 0 && e.button <= 2 && e.pointerType === 'mouse') {
      // a chorded button change (a second button pressed or released while another is down)
      const bit = [1, 4, 2][e.button] ?? 0;
      this.flushPending();
      this.sink.sendInput(encodeButton(e.button, (e.buttons & bit) !== 0, p.x, p.y));
      return;
    }
    this.pendingMove = p;
    if (!this.moveRaf) this.moveRaf = requestAnimationFrame(this.flushMove);
  }

  private onPointerDown(e: PointerEvent): void {
    if (!this.sink.canControl()) return;
    e.preventDefault();
    this.stage.focus({ preventScroll: true });
    const wantLock = this.opts.pointerLock !== false && e.pointerType === 'mouse';
    if (wantLock && !this.locked() && typeof this.stage.requestPointerLock === 'function') {
      // Engage the lock at the point pressed: relative motion continues from there.
      const p = this.toScreen(e);
      if (p) this.setPos(p);
      try {
        const r = this.stage.requestPointerLock() as unknown;
        if (r instanceof Promise) r.catch(() => this.opts.onLockChange?.(false));
      } catch {
        /* not granted: absolute coordinates */
      }
    } else {
      try {
        this.stage.setPointerCapture(e.pointerId);
      } catch {
        /* not capturable */
      }
    }
    if (e.button < 0 || e.button > 4) return;
    const p = this.toScreen(e);
    if (!p) return;
    this.setPos(p);
    this.flushPending();
    this.sink.sendInput(encodeButton(e.button, true, p.x, p.y));
  }

  private onPointerUp(e: PointerEvent): void {
    if (!this.sink.canControl()) return;
    e.preventDefault();
    if (e.button < 0 || e.button > 4) return;
    const p = this.pos && this.locked() ? this.pos : this.toScreen(e);
    if (!p) return;
    this.flushPending();
    this.sink.sendInput(encodeButton(e.button, false, p.x, p.y));
  }

  private onWheel(e: WheelEvent): void {
    if (!this.sink.canControl()) return;
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 100 / 3 : e.deltaMode === 2 ? 800 : 1;
    const [cx, rx] = wheelClicks(this.wheelAcc[0], e.deltaX * unit);
    const [cy, ry] = wheelClicks(this.wheelAcc[1], e.deltaY * unit);
    this.wheelAcc = [rx, ry];
    if (cx === 0 && cy === 0) return;
    const p = this.locked() ? this.pos : this.toScreen(e);
    if (!p) return;
    this.flushPending();
    this.sink.sendInput(encodeWheel(cx, cy, p.x, p.y));
  }

  private onKey(e: KeyboardEvent, down: boolean): void {
    if (!this.sink.canControl() || e.isComposing) return;
    const mine = document.activeElement === this.stage || this.locked();
    if (!mine || isTextField(e.target)) return;
    if (down && isTakeoverShortcut(e)) return; // the session view handles it
    const ks = keysymForEvent(e);
    if (ks === null) return;
    if (!down && !this.keysDown.has(ks)) {
      // a release of a key pressed before we had control (or the shortcut's Enter): not ours
      e.preventDefault();
      return;
    }
    e.preventDefault();
    e.stopPropagation();
    if (down) this.keysDown.add(ks);
    else this.keysDown.delete(ks);
    this.sink.sendInput(encodeKey(ks, down));
  }
}
