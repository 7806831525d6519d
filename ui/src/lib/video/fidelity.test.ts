import { describe, expect, it } from 'vitest';
import { compare, differingArea } from './fidelity';

/** A `w`x`h` RGBA picture of one grey level. */
const flat = (w: number, h: number, level: number): Uint8ClampedArray => {
  const p = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < p.length; i += 4) p.set([level, level, level, 255], i);
  return p;
};

describe('fidelity', () => {
  it('calls identical pictures exact, with no PSNR', () => {
    expect(compare(flat(4, 3, 9), flat(4, 3, 9), 4, 3)).toEqual({ differing: 0, pixels: 12, psnrDb: null, where: null });
  });

  it('computes the PSNR over RGB and ignores alpha', () => {
    const shown = flat(2, 2, 100);
    const source = flat(2, 2, 110);
    source[3] = 0;
    const f = compare(shown, source, 2, 2);
    expect(f.differing).toBe(4);
    expect(f.where).toEqual({ x: 0, y: 0, width: 2, height: 2 });
    // MSE 100 → 10·log10(65025 / 100) = 28.13 dB.
    expect(f.psnrDb).toBeCloseTo(28.13, 2);
  });

  it('compares only the area asked for and skips the area to skip', () => {
    const shown = flat(4, 4, 0);
    const source = flat(4, 4, 0);
    source.set([255, 255, 255], (1 * 4 + 1) * 4); // pixel (1, 1) differs
    expect(compare(shown, source, 4, 4, { x: 2, y: 0, width: 2, height: 4 }).differing).toBe(0);
    expect(compare(shown, source, 4, 4, null, { x: 1, y: 1, width: 1, height: 1 })).toEqual({
      differing: 0,
      pixels: 15,
      psnrDb: null,
      where: null,
    });
  });

  it('finds the bounding box of what differs', () => {
    const a = flat(8, 8, 0);
    const b = flat(8, 8, 0);
    b.set([1, 0, 0], (2 * 8 + 3) * 4);
    b.set([0, 0, 1], (5 * 8 + 6) * 4);
    expect(differingArea(a, b, 8, 8)).toEqual({ x: 3, y: 2, width: 4, height: 4 });
    expect(differingArea(a, a, 8, 8)).toBeNull();
  });
});
