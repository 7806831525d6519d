// Keyboard → X11 keysyms for operator input, and the take-control shortcut. Pure.

export const XK_SHIFT_L = 0xffe1;
export const XK_RETURN = 0xff0d;
const XK_TAB = 0xff09;
const XK_BACKSPACE = 0xff08;
const XK_ESCAPE = 0xff1b;

/** KeyboardEvent.code (physical key, US layout) → X11 keysym. */
export const KEYSYM_BY_CODE: Readonly<Record<string, number>> = (() => {
  const m: Record<string, number> = {
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
  for (let i = 0; i < 10; i++) {
    m['Digit' + i] = 0x30 + i;
    m['Numpad' + i] = 0xffb0 + i;
  }
  for (let i = 1; i <= 12; i++) m['F' + i] = 0xffbe + (i - 1);
  return Object.freeze(m);
})();

export function keysymForCode(code: string): number | null {
  return Object.prototype.hasOwnProperty.call(KEYSYM_BY_CODE, code) ? (KEYSYM_BY_CODE[code] ?? null) : null;
}

/** Keysym for a KeyboardEvent-like {code, key}: by physical key; unknown codes fall back to the character. */
export function keysymForEvent(e: { code: string; key: string }): number | null {
  const ks = keysymForCode(e.code);
  if (ks !== null) return ks;
  const k = e.key;
  if (typeof k === 'string' && k.length > 0 && [...k].length === 1) {
    const cp = k.codePointAt(0) ?? 0;
    if (cp >= 0x20 && cp <= 0xff && cp !== 0x7f) return cp;
    if (cp > 0xff) return 0x01000000 + cp;
  }
  return null;
}

// US layout: shifted character → the unshifted key's character.
const SHIFTED: Readonly<Record<string, string>> = {
  '~': '`', '!': '1', '@': '2', '#': '3', $: '4', '%': '5', '^': '6', '&': '7', '*': '8', '(': '9',
  ')': '0', _: '-', '+': '=', '{': '[', '}': ']', '|': '\\', ':': ';', '"': "'", '<': ',', '>': '.', '?': '/',
};

/** A key press or release: [keysym, down]. */
export type KeyEvent = [number, boolean];

/** Text → key presses on a US layout (Shift_L around shifted characters). */
export function textToKeyEvents(text: string): KeyEvent[] {
  const out: KeyEvent[] = [];
  const press = (ks: number, shift = false): void => {
    if (shift) out.push([XK_SHIFT_L, true]);
    out.push([ks, true], [ks, false]);
    if (shift) out.push([XK_SHIFT_L, false]);
  };
  const s = String(text);
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i) ?? 0;
    i += cp > 0xffff ? 2 : 1;
    const ch = String.fromCodePoint(cp);
    const shifted = SHIFTED[ch];
    if (ch === '\n') press(XK_RETURN);
    else if (ch === '\r') {
      if (s[i] !== '\n') press(XK_RETURN);
    } else if (ch === '\t') press(XK_TAB);
    else if (ch === '\b') press(XK_BACKSPACE);
    else if (ch === '\x1b') press(XK_ESCAPE);
    else if (ch >= 'A' && ch <= 'Z') press(cp + 0x20, true);
    else if (shifted !== undefined) press(shifted.charCodeAt(0), true);
    else if (cp >= 0x20 && cp <= 0x7e) press(cp);
    else if (cp >= 0xa0 && cp <= 0xff) press(cp);
    else if (cp > 0xff) press(0x01000000 + cp);
    // other control characters: ignored
  }
  return out;
}

/** Ctrl+Alt+Enter toggles take control / hand back; it is never forwarded to the sandbox. */
export function isTakeoverShortcut(e: {
  key: string;
  code: string;
  ctrlKey: boolean;
  altKey: boolean;
  metaKey: boolean;
  shiftKey: boolean;
}): boolean {
  return (
    e.ctrlKey && e.altKey && !e.metaKey && !e.shiftKey && (e.key === 'Enter' || e.code === 'Enter' || e.code === 'NumpadEnter')
  );
}

/** Whether an event target is a text field, where keys belong to the console, not the sandbox. */
export function isTextField(t: EventTarget | null): boolean {
  if (typeof HTMLElement === 'undefined' || !(t instanceof HTMLElement)) return false;
  if (t.isContentEditable || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT') return true;
  if (t.tagName !== 'INPUT') return false;
  const type = (t as HTMLInputElement).type;
  return !['button', 'checkbox', 'radio', 'submit', 'reset', 'range', 'color', 'file'].includes(type);
}
