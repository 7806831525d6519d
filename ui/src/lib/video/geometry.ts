// Screen geometry for the live view and the approval frame. Pure.

export interface RectLike {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface ScreenPoint {
  x: number;
  y: number;
  /** Whether the point was on the picture (not in the letterbox). */
  inside: boolean;
}

/**
 * Element client coordinates → screen pixels, for content drawn with object-fit: contain in `rect`
 * (letterboxing taken into account). `rect` is the element's box as getBoundingClientRect gives it,
 * so it holds at any scale and while a scrolled ancestor has moved part of the picture out of view.
 * Clamped to the screen; `inside` says whether it was on the picture.
 */
export function mapToScreen(
  clientX: number,
  clientY: number,
  rect: RectLike,
  screenW: number,
  screenH: number,
): ScreenPoint | null {
  const scale = Math.min(rect.width / screenW, rect.height / screenH);
  if (!(scale > 0) || !(screenW > 0) || !(screenH > 0)) return null;
  const ox = rect.left + (rect.width - screenW * scale) / 2;
  const oy = rect.top + (rect.height - screenH * scale) / 2;
  const fx = (clientX - ox) / scale;
  const fy = (clientY - oy) / scale;
  const inside = fx >= 0 && fy >= 0 && fx < screenW && fy < screenH;
  const x = Math.max(0, Math.min(screenW - 1, Math.floor(fx)));
  const y = Math.max(0, Math.min(screenH - 1, Math.floor(fy)));
  return { x, y, inside };
}

/** How the live picture is scaled: to fit its space, or one screen pixel per device pixel. */
export type Scaling = 'fit' | '1:1';

export interface PictureBox {
  /** CSS size of the picture. */
  width: number;
  height: number;
  /** Draw with nearest-neighbour sampling: each screen pixel is a whole number of device pixels. */
  pixelated: boolean;
}

/**
 * The CSS size of a `screenW`×`screenH` picture in a space of `spaceW`×`spaceH` CSS pixels, at
 * `dpr` device pixels per CSS pixel. `fit` scales the picture down into the space but never up
 * past one device pixel per screen pixel; `1:1` is one device pixel per screen pixel whatever the
 * space (the caller scrolls). Sizes are whole device pixels, so that a scale of 1 resamples
 * nothing. Null when the screen or, for `fit`, the space is empty.
 */
export function pictureBox(
  screenW: number,
  screenH: number,
  spaceW: number,
  spaceH: number,
  dpr: number,
  scaling: Scaling,
): PictureBox | null {
  if (!(screenW > 0) || !(screenH > 0)) return null;
  const d = dpr > 0 && Number.isFinite(dpr) ? dpr : 1;
  let devW = screenW;
  let devH = screenH;
  if (scaling === 'fit') {
    // the space in whole device pixels (with some slack: layout rounds CSS sizes to 1/64 px)
    const roomW = Math.floor(spaceW * d + 0.05);
    const roomH = Math.floor(spaceH * d + 0.05);
    if (!(roomW > 0) || !(roomH > 0)) return null;
    const scale = Math.min(1, roomW / screenW, roomH / screenH);
    devW = Math.max(1, Math.min(roomW, Math.round(screenW * scale)));
    devH = Math.max(1, Math.min(roomH, Math.round(screenH * scale)));
  }
  const k = devW / screenW;
  return { width: devW / d, height: devH / d, pixelated: Number.isInteger(k) && k >= 1 && devH === screenH * k };
}

/** Relative pointer motion (Pointer Lock) applied to a position, clamped to the screen. */
export function moveBy(
  at: { x: number; y: number },
  dx: number,
  dy: number,
  screenW: number,
  screenH: number,
): { x: number; y: number } {
  const x = Math.max(0, Math.min(screenW - 1, Math.round(at.x + (Number(dx) || 0))));
  const y = Math.max(0, Math.min(screenH - 1, Math.round(at.y + (Number(dy) || 0))));
  return { x, y };
}

/** Wheel accumulation: returns [clicks, remainder]; ~100 px per click. */
export function wheelClicks(acc: number, delta: number, pxPerClick = 100): [number, number] {
  let a = acc;
  if (a !== 0 && delta !== 0 && Math.sign(a) !== Math.sign(delta)) a = 0; // direction flip
  a += delta;
  const clicks = Math.trunc(a / pxPerClick);
  return [Math.max(-127, Math.min(127, clicks)), a - clicks * pxPerClick];
}
