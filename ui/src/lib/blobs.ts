// Stills by content hash, as object URLs. Blobs are content-addressed, so a URL is cached for the
// page's life (bounded: the least recently used ones are revoked).

import { useEffect, useState } from 'preact/hooks';
import { errorMessage, getBackend } from './backend';

const MAX = 300;
const cache = new Map<string, Promise<string>>();

function load(hash: string): Promise<string> {
  const hit = cache.get(hash);
  if (hit) {
    cache.delete(hash);
    cache.set(hash, hit); // most recently used last
    return hit;
  }
  const p = getBackend()
    .then((b) => b.blob(hash))
    .then((blob) => URL.createObjectURL(blob));
  p.catch(() => cache.delete(hash));
  cache.set(hash, p);
  while (cache.size > MAX) {
    const [k, old] = cache.entries().next().value as [string, Promise<string>];
    cache.delete(k);
    old.then((u) => URL.revokeObjectURL(u), () => undefined);
  }
  return p;
}

export interface BlobImage {
  url: string | null;
  error: string | null;
}

/** The object URL of a still, loading it on first use. */
export function useBlobUrl(hash: string | null | undefined): BlobImage {
  const [s, set] = useState<BlobImage>({ url: null, error: null });
  useEffect(() => {
    if (!hash) {
      set({ url: null, error: null });
      return;
    }
    let live = true;
    set({ url: null, error: null });
    load(hash).then(
      (url) => live && set({ url, error: null }),
      (e: unknown) => live && set({ url: null, error: errorMessage(e) }),
    );
    return () => {
      live = false;
    };
  }, [hash]);
  return s;
}
