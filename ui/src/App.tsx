// The console shell: sign-in (browser), the event subscription feeding the store, the top bar and
// the hash-routed views.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { describeAction } from './lib/actions';
import { errorMessage, getBackend, type Backend } from './lib/backend';
import { routeHash, useRoute, type Route } from './lib/router';
import { destinationsText } from './lib/egress';
import { askCount, egressKey, store, useAppState } from './lib/store';
import { applyTheme, currentTheme, toggleTheme } from './lib/theme';
import { Alert } from './components/common';
import { BackendContext } from './components/context';
import { Grid } from './views/Grid';
import { Inbox } from './views/Inbox';
import { Ledger } from './views/Ledger';
import { Policy } from './views/Policy';
import { Session } from './views/Session';

type Phase =
  | { kind: 'starting' }
  | { kind: 'failed'; message: string }
  | { kind: 'signin'; message: string | null }
  | { kind: 'ready' };

export function App() {
  const [backend, setBackend] = useState<Backend | null>(null);
  const [phase, setPhase] = useState<Phase>({ kind: 'starting' });

  useEffect(() => {
    applyTheme(currentTheme());
    getBackend().then(
      (b) => {
        setBackend(b);
        if (b.auth && !b.auth.hasToken()) setPhase({ kind: 'signin', message: null });
        else setPhase({ kind: 'ready' });
      },
      (e: unknown) => setPhase({ kind: 'failed', message: errorMessage(e) }),
    );
  }, []);

  useEffect(() => {
    if (!backend?.auth) return;
    return backend.auth.onUnauthorized((message) => setPhase({ kind: 'signin', message }));
  }, [backend]);

  if (phase.kind === 'starting' || !backend) {
    return phase.kind === 'failed' ? (
      <main class="center-page">
        <p class="card-error" role="alert">
          The console could not start: {phase.message}
        </p>
      </main>
    ) : (
      <main class="center-page">
        <p class="muted">Starting…</p>
      </main>
    );
  }
  if (phase.kind === 'signin') {
    return <SignIn backend={backend} message={phase.message} onDone={() => setPhase({ kind: 'ready' })} />;
  }
  if (phase.kind === 'failed') {
    return (
      <main class="center-page">
        <p class="card-error" role="alert">
          {phase.message}
        </p>
      </main>
    );
  }
  return (
    <BackendContext.Provider value={backend}>
      <Console
        backend={backend}
        onSignOut={() => {
          backend.auth?.signOut();
          store.dispatch({ type: 'me', operator: null });
          setPhase({ kind: 'signin', message: null });
        }}
      />
    </BackendContext.Provider>
  );
}

function SignIn({ backend, message, onDone }: { backend: Backend; message: string | null; onDone: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(message);
  const [busy, setBusy] = useState(false);
  const submit = async (): Promise<void> => {
    if (!backend.auth) return;
    setBusy(true);
    setError(null);
    try {
      const me = await backend.auth.signIn(token);
      store.dispatch({ type: 'me', operator: me.operator });
      onDone();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="center-page">
      <form
        class="signin"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <h1>Airlock</h1>
        <p class="muted">Sign in with the operator token that `airlock serve` printed (or that your admin gave you).</p>
        <label class="field">
          <span>Operator token</span>
          <input
            type="password"
            autocomplete="current-password"
            value={token}
            autoFocus
            onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <Alert message={error} />
        <button type="submit" class="primary" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function Console({ backend, onSignOut }: { backend: Backend; onSignOut: () => void }) {
  const app = useAppState();
  const route = useRoute();
  const [theme, setTheme] = useState(currentTheme());
  const [meError, setMeError] = useState<string | null>(null);
  const refreshing = useRef(false);
  const egressRead = useRef(0);

  useEffect(() => {
    backend.me().then(
      (m) => store.dispatch({ type: 'me', operator: m.operator }),
      (e: unknown) => setMeError(errorMessage(e)),
    );
    const refreshList = (): void => {
      if (refreshing.current) return;
      refreshing.current = true;
      backend
        .listSandboxes()
        .then(
          (list) => store.dispatch({ type: 'sandboxes', list }),
          (e: unknown) => console.warn('[airlock] sandbox list failed:', errorMessage(e)),
        )
        .finally(() => {
          refreshing.current = false;
        });
    };
    // The snapshot does not carry network asks: read them after each one (only the latest
    // read counts; asks that events bring meanwhile are kept by the store).
    const readEgress = (): void => {
      const mine = ++egressRead.current;
      store.dispatch({ type: 'egress_fetch' });
      backend.pendingEgress().then(
        (asks) => {
          if (mine === egressRead.current) store.dispatch({ type: 'egress_pending', asks });
        },
        (e: unknown) => {
          console.warn('[airlock] pending network asks could not be read:', errorMessage(e));
          if (mine === egressRead.current) store.dispatch({ type: 'egress_pending', asks: null });
        },
      );
    };
    const background = (): boolean => document.hidden || !document.hasFocus();
    return backend.subscribe(
      (m) => {
        const before = store.get();
        store.dispatch({ type: 'event', message: m });
        const e = m.event;
        if (e.type === 'sandbox_state' && e.state !== 'destroyed' && !before.sandboxes.has(e.sandbox)) refreshList();
        if (e.type === 'approval_requested' && background()) {
          void backend.notify(
            `Approval needed in ${e.approval.sandbox}`,
            `${describeAction(e.approval.action)}${e.approval.reasons.length ? ` — ${e.approval.reasons.join(', ')}` : ''}`,
          );
        }
        if (e.type === 'egress_asked' && background()) {
          // Only a new ask is news (a re-send means another connection joined one already shown).
          const k = egressKey(e.ask.sandbox, e.ask.id);
          if (!before.egress.has(k) && store.get().egress.has(k)) {
            void backend.notify(`Network ask in ${e.ask.sandbox}`, `${destinationsText(e.ask.destinations)} — ${e.ask.reason}`);
          }
        }
      },
      (status) => store.dispatch({ type: 'status', status }),
      (snapshot) => {
        store.dispatch({ type: 'snapshot', snapshot });
        readEgress();
      },
    );
  }, [backend]);

  const pending = askCount(app);
  useEffect(() => {
    document.title = pending > 0 ? `(${pending}) Airlock` : 'Airlock';
  }, [pending]);

  const navLink = (view: Route['view'], label: string, r: Route, extra?: ComponentChildren) => (
    <a href={routeHash(r)} class={`nav-link ${route.view === view ? 'active' : ''}`} aria-current={route.view === view ? 'page' : undefined}>
      {label}
      {extra}
    </a>
  );

  const statusText = app.status === 'open' ? 'Live' : app.status === 'connecting' ? 'Connecting' : 'Offline';

  return (
    <div class="shell">
      <header class="topbar">
        <span class="brand">Airlock</span>
        <nav class="nav" aria-label="Main">
          {navLink('grid', 'Grid', { view: 'grid' })}
          {navLink(
            'inbox',
            'Inbox',
            { view: 'inbox' },
            <span class={`nav-badge ${pending > 0 ? 'has' : ''}`}>
              <span class="sr-only">(</span>
              {pending}
              <span class="sr-only"> pending)</span>
            </span>,
          )}
          {navLink('ledger', 'Ledger', { view: 'ledger', id: null })}
          {navLink('policy', 'Policy', { view: 'policy' })}
        </nav>
        {app.mode === 'shadow' && (
          <a class="shadow-pill" href="#/policy" title="Denials are logged, not enforced">
            Shadow mode
          </a>
        )}
        <span class="spacer" />
        <span class={`conn conn-${app.status}`} role="status" aria-label="Connection">
          <span class="dot" aria-hidden="true" />
          {statusText}
        </span>
        <span class="who small" title={meError ?? undefined}>
          {app.me ? `Signed in as ${app.me}` : meError ? 'Signed in (name unavailable)' : ''}
        </span>
        <button
          type="button"
          class="icon-button"
          aria-label="Toggle theme"
          title={theme === 'dark' ? 'Switch to the light theme' : 'Switch to the dark theme'}
          onClick={() => setTheme(toggleTheme())}
        >
          <span aria-hidden="true">{theme === 'dark' ? '☾' : '☀'}</span>
        </button>
        {backend.auth && (
          <button type="button" class="subtle" onClick={onSignOut}>
            Sign out
          </button>
        )}
      </header>
      {app.loaded && app.status !== 'open' && (
        <div class="banner" role="status">
          Reconnecting…
        </div>
      )}
      <main class="main">
        {route.view === 'grid' && <Grid />}
        {route.view === 'session' && <Session key={route.id} id={route.id} />}
        {route.view === 'inbox' && <Inbox />}
        {route.view === 'ledger' && <Ledger id={route.id} />}
        {route.view === 'policy' && <Policy />}
      </main>
    </div>
  );
}
