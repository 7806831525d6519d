import { describe, expect, it } from 'vitest';
import { mapToScreen, pictureBox } from './geometry';

describe('picture box', () => {
  it('scales the screen down to fit a smaller space, keeping its shape', () => {
    expect(pictureBox(1280, 800, 640, 600, 1, 'fit')).toEqual({ width: 640, height: 400, pixelated: false });
  });

  it('never scales past one device pixel per screen pixel when the space is larger', () => {
    expect(pictureBox(1280, 800, 2000, 1500, 1, 'fit')).toEqual({ width: 1280, height: 800, pixelated: true });
    expect(pictureBox(1280, 800, 2000, 1500, 2, 'fit')).toEqual({ width: 640, height: 400, pixelated: true });
  });

  it('sizes a fitted picture in whole device pixels', () => {
    expect(pictureBox(1280, 800, 1001.5, 700, 1, 'fit')).toEqual({ width: 1001, height: 626, pixelated: false });
  });

  it('fits 1:1 into a space of just the screen size that layout rounded to 1/64 CSS pixel', () => {
    // 1280 device pixels at ratio 1.5 are 853.33 CSS pixels, which layout holds as 853.328125
    expect(pictureBox(1280, 800, 853.328125, 533.328125, 1.5, 'fit')).toEqual({ width: 1280 / 1.5, height: 800 / 1.5, pixelated: true });
  });

  it('draws smooth when a screen pixel is not a whole number of device pixels', () => {
    expect(pictureBox(1280, 800, 1279, 800, 1, 'fit')?.pixelated).toBe(false);
  });

  it('shows one device pixel per screen pixel in 1:1 whatever the space', () => {
    expect(pictureBox(1280, 800, 300, 200, 1, '1:1')).toEqual({ width: 1280, height: 800, pixelated: true });
    expect(pictureBox(1280, 800, 0, 0, 2, '1:1')).toEqual({ width: 640, height: 400, pixelated: true });
    expect(pictureBox(1280, 800, 5000, 5000, 1.25, '1:1')).toEqual({ width: 1024, height: 640, pixelated: true });
  });

  it('has no box for an empty screen, or for an empty space when fitting', () => {
    expect(pictureBox(0, 800, 100, 100, 1, 'fit')).toBeNull();
    expect(pictureBox(1280, 800, 0, 100, 1, 'fit')).toBeNull();
  });
});

describe('pointer mapping', () => {
  it('maps a point in 1:1 on a 2x display to the screen pixel under it', () => {
    // a 1280×800 screen at 1:1 on a devicePixelRatio 2 display is 640×400 CSS pixels
    const rect = { left: 100, top: 50, width: 640, height: 400 };
    expect(mapToScreen(100 + 10.5, 50 + 20.25, rect, 1280, 800)).toEqual({ x: 21, y: 40, inside: true });
  });

  it('maps a point on a picture scrolled partly out of view', () => {
    // 1:1 at ratio 1 in an 800×500 area scrolled by (300, 200): the picture starts above and left of the area
    const rect = { left: 20 - 300, top: 60 - 200, width: 1280, height: 800 };
    expect(mapToScreen(20, 60, rect, 1280, 800)).toEqual({ x: 300, y: 200, inside: true });
    expect(mapToScreen(20 + 799, 60 + 499, rect, 1280, 800)).toEqual({ x: 1099, y: 699, inside: true });
  });

  it('maps the far corner of a fitted picture to the last screen pixel', () => {
    const rect = { left: 0, top: 0, width: 640, height: 400 };
    expect(mapToScreen(639.9, 399.9, rect, 1280, 800)).toEqual({ x: 1279, y: 799, inside: true });
  });

  it('leaves out the sliver of letterbox a whole-pixel box leaves round the picture', () => {
    // contain scales by 1001/1280, so the picture is 625.6 pixels high in a 626-pixel box
    const rect = { left: 0, top: 0, width: 1001, height: 626 };
    const scale = Math.min(1001 / 1280, 626 / 800);
    const top = (626 - 800 * scale) / 2;
    expect(mapToScreen(0, top - 0.01, rect, 1280, 800)?.inside).toBe(false);
    expect(mapToScreen(0, top + 0.01, rect, 1280, 800)).toEqual({ x: 0, y: 0, inside: true });
  });
});
