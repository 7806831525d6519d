// Hash routes: #/grid, #/session/ID, #/inbox, #/ledger, #/ledger/ID, #/policy. Pure parsing.

import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { view: 'grid' }
  | { view: 'session'; id: string }
  | { view: 'inbox' }
  | { view: 'ledger'; id: string | null }
  | { view: 'policy' };

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#\/?/, '').split('?')[0] ?? '';
  const parts = h.split('/').filter((p) => p !== '');
  const dec = (s: string | undefined): string | null => {
    if (!s) return null;
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  switch (parts[0]) {
    case 'session': {
      const id = dec(parts[1]);
      return id ? { view: 'session', id } : { view: 'grid' };
    }
    case 'inbox':
      return { view: 'inbox' };
    case 'ledger':
      return { view: 'ledger', id: dec(parts[1]) };
    case 'policy':
      return { view: 'policy' };
    default:
      return { view: 'grid' };
  }
}

export function routeHash(r: Route): string {
  switch (r.view) {
    case 'grid':
      return '#/grid';
    case 'session':
      return `#/session/${encodeURIComponent(r.id)}`;
    case 'inbox':
      return '#/inbox';
    case 'ledger':
      return r.id ? `#/ledger/${encodeURIComponent(r.id)}` : '#/ledger';
    case 'policy':
      return '#/policy';
  }
}

export function navigate(r: Route): void {
  const h = routeHash(r);
  if (location.hash !== h) location.hash = h;
}

export function useRoute(): Route {
  const [r, set] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = (): void => set(parseRoute(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return r;
}
