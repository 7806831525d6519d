// How closely a shown picture matches the source screen: pure pixel arithmetic on RGBA rows, for
// the stand-alone viewer's measurement hooks (the streaming tests and `airlock bench stream`).

export interface Area {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Fidelity {
  /** Pixels whose RGB differs at all. */
  differing: number;
  /** Pixels compared. */
  pixels: number;
  /** Peak signal-to-noise ratio over RGB in dB; null when the pictures are identical. */
  psnrDb: number | null;
  /** The bounding box of the differing pixels; null when none differ. */
  where: Area | null;
}

/**
 * Compares two `width`-wide RGBA pictures over `area` (the whole picture when omitted), skipping the
 * pixels inside `skip`. Alpha is ignored.
 */
export function compare(
  shown: ArrayLike<number>,
  source: ArrayLike<number>,
  width: number,
  height: number,
  area?: Area | null,
  skip?: Area | null,
): Fidelity {
  const a = area ?? { x: 0, y: 0, width, height };
  const x0 = Math.max(0, a.x);
  const y0 = Math.max(0, a.y);
  const x1 = Math.min(width, a.x + a.width);
  const y1 = Math.min(height, a.y + a.height);
  const inSkip = (x: number, y: number): boolean =>
    !!skip && x >= skip.x && x < skip.x + skip.width && y >= skip.y && y < skip.y + skip.height;
  let squared = 0;
  let differing = 0;
  let pixels = 0;
  let [bx0, by0, bx1, by1] = [width, height, -1, -1];
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      if (inSkip(x, y)) continue;
      const i = (y * width + x) * 4;
      const dr = (shown[i] ?? 0) - (source[i] ?? 0);
      const dg = (shown[i + 1] ?? 0) - (source[i + 1] ?? 0);
      const db = (shown[i + 2] ?? 0) - (source[i + 2] ?? 0);
      if (dr !== 0 || dg !== 0 || db !== 0) {
        differing++;
        bx0 = Math.min(bx0, x);
        by0 = Math.min(by0, y);
        bx1 = Math.max(bx1, x);
        by1 = Math.max(by1, y);
      }
      squared += dr * dr + dg * dg + db * db;
      pixels++;
    }
  }
  const mse = pixels > 0 ? squared / (pixels * 3) : 0;
  return {
    differing,
    pixels,
    psnrDb: mse === 0 ? null : Math.round(10 * Math.log10((255 * 255) / mse) * 100) / 100,
    where: bx1 < 0 ? null : { x: bx0, y: by0, width: bx1 - bx0 + 1, height: by1 - by0 + 1 },
  };
}

/** The bounding box of the pixels where two `width`-wide RGBA pictures differ; null if none do. */
export function differingArea(a: ArrayLike<number>, b: ArrayLike<number>, width: number, height: number): Area | null {
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  return x1 < 0 ? null : { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
}
