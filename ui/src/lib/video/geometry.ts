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
 * (letterboxing taken into account). Clamped to the screen; `inside` says whether it was on the picture.
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
