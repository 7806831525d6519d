// The live picture's size in the space a view gives it: the space is measured with a
// ResizeObserver, and the device pixel ratio followed as the window moves between displays or
// the page is zoomed.

import type { RefObject } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { pictureBox, type PictureBox, type Scaling } from './geometry';

const currentDpr = (): number => (typeof devicePixelRatio === 'number' && devicePixelRatio > 0 ? devicePixelRatio : 1);

/**
 * The box of a `screenW`×`screenH` picture shown in `space`, an element whose size does not depend
 * on the picture. Null while a `fit` space is not measured yet (or cannot be): the caller then
 * lets CSS fill the space.
 */
export function usePictureBox(
  space: RefObject<HTMLElement>,
  screenW: number,
  screenH: number,
  scaling: Scaling,
): PictureBox | null {
  const [size, setSize] = useState<{ w: number; h: number } | null>(null);
  const [dpr, setDpr] = useState(currentDpr);
  useEffect(() => {
    const el = space.current;
    if (!el || typeof ResizeObserver !== 'function') return undefined;
    const ro = new ResizeObserver((entries) => {
      const e = entries[entries.length - 1];
      if (!e) return;
      const d = currentDpr();
      // whole device pixels where the browser tells them (not WebKit)
      const dev = e.devicePixelContentBoxSize?.[0];
      setDpr(d);
      setSize(dev ? { w: dev.inlineSize / d, h: dev.blockSize / d } : { w: e.contentRect.width, h: e.contentRect.height });
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, [space]);
  useEffect(() => {
    if (typeof matchMedia !== 'function') return undefined;
    // matches until the ratio changes; the effect then watches the new one
    const mq = matchMedia(`(resolution: ${dpr}dppx)`);
    const on = (): void => setDpr(currentDpr());
    mq.addEventListener('change', on);
    return () => mq.removeEventListener('change', on);
  }, [dpr]);
  if (scaling === 'fit' && !size) return null;
  return pictureBox(screenW, screenH, size?.w ?? 0, size?.h ?? 0, dpr, scaling);
}
