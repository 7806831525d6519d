// The console shell: sign-in (browser), the event subscription feeding the store, the top bar and
// the hash-routed views.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { describeAction } from './lib/actions';
import { errorMessage, getBackend, type Backend } from './lib/backend';
import { routeHash, useRoute, type Route } from './lib/router';
import { destinationsText } from './lib/egress';
import { helpKindText } from './lib/human';
import { can, linkSandbox } from './lib/roles';
import { askCount, egressKey, humanKey, store, useAppState } from './lib/store';
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
  /** A view link that expired or was revoked: the server's message, and no sign-in form. */
  | { kind: 'ended'; message: string }
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
    return backend.auth.onUnauthorized((message, code) => {
      store.dispatch({ type: 'me', me: null });
      setPhase(code === 'link_ended' ? { kind: 'ended', message } : { kind: 'signin', message });
    });
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
  if (phase.kind === 'ended') {
    return (
      <main class="center-page">
        <section class="signin" aria-label="View link ended">
          <h1>Airlock</h1>
          <p class="card-error" role="alert">
            {phase.message}
          </p>
          <p class="muted">This view-only link no longer works. Ask the operator who shared it for a new one.</p>
          {backend.auth && (
            <button type="button" onClick={() => setPhase({ kind: 'signin', message: null })}>
              Sign in with an operator token
            </button>
          )}
        </section>
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
          store.dispatch({ type: 'me', me: null });
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
      store.dispatch({ type: 'me', me });
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

  const routeRef = useRef(route);
  routeRef.current = route;

  useEffect(() => {
    let stopped = false;
    let unsubscribe: (() => void) | null = null;
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
    // Events are followed once the server has said who this is: a view link may not read the
    // pending network asks (each refusal would go on the ledger), and is not told of them.
    const follow = (link: boolean): void => {
      if (stopped) return;
      unsubscribe = backend.subscribe(
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
          if (e.type === 'human_requested' && !link && can(store.get().principal, 'drive')) {
            // An agent is stuck until someone helps: news unless that sandbox is on screen already.
            const r = e.request;
            const here = routeRef.current.view === 'session' && routeRef.current.id === r.sandbox;
            if (!before.human.has(humanKey(r.sandbox, r.request)) && (background() || !here)) {
              void backend.notify(`${r.agent || 'An agent'} needs a human in ${r.sandbox}`, `${helpKindText(r.kind)}: ${r.reason}`);
            }
          }
        },
        (status) => store.dispatch({ type: 'status', status }),
        (snapshot) => {
          store.dispatch({ type: 'snapshot', snapshot });
          if (!link) readEgress();
        },
      );
    };
    backend.me().then(
      (me) => {
        if (stopped) return;
        store.dispatch({ type: 'me', me });
        follow(linkSandbox(me) !== null);
      },
      (e: unknown) => {
        if (stopped) return;
        setMeError(errorMessage(e));
        follow(false);
      },
    );
    return () => {
      stopped = true;
      unsubscribe?.();
    };
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
  const themeButton = (
    <button
      type="button"
      class="icon-button"
      aria-label="Toggle theme"
      title={theme === 'dark' ? 'Switch to the light theme' : 'Switch to the dark theme'}
      onClick={() => setTheme(toggleTheme())}
    >
      <span aria-hidden="true">{theme === 'dark' ? '☾' : '☀'}</span>
    </button>
  );
  const connection = (
    <span class={`conn conn-${app.status}`} role="status" aria-label="Connection">
      <span class="dot" aria-hidden="true" />
      {statusText}
    </span>
  );

  // A view link: that one session, watched, and nothing else.
  const link = linkSandbox(app.principal);
  if (link !== null) {
    return (
      <div class="shell link-shell">
        <header class="topbar">
          <span class="brand">Airlock</span>
          <span class="role-pill" title="A view-only link: you can watch this sandbox, not change anything">
            View only
          </span>
          <span class="mono small">{link}</span>
          <span class="spacer" />
          {connection}
          {themeButton}
        </header>
        {app.loaded && app.status !== 'open' && (
          <div class="banner" role="status">
            Reconnecting…
          </div>
        )}
        <main class="main">
          <Session key={link} id={link} />
        </main>
      </div>
    );
  }
  const watcher = app.principal !== null && !can(app.principal, 'decide');

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
        {watcher && (
          <span class="role-pill" title="Your role may watch, not decide, drive or change anything">
            View only
          </span>
        )}
        <span class="spacer" />
        {connection}
        <span class="who small" title={meError ?? (app.principal?.role ? `Role: ${app.principal.role}` : undefined)}>
          {app.me ? `Signed in as ${app.me}` : meError ? 'Signed in (name unavailable)' : ''}
        </span>
        {themeButton}
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
