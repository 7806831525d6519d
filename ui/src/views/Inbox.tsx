// Everything waiting for an operator across sandboxes — action approvals, network asks and agents
// asking for a human — oldest first, driven from the keyboard (on a network ask, approve allows it
// once; a request for a human is answered by taking control).

import { useEffect, useRef, useState } from 'preact/hooks';
import { describeAction } from '../lib/actions';
import type { Approval, EgressAsk, HumanRequest } from '../lib/api/types';
import { countdown } from '../lib/countdown';
import { destinationsText } from '../lib/egress';
import { helpKindText, humanWait } from '../lib/human';
import { INBOX_SHORTCUTS, inboxCommand, moveSelection, reselect } from '../lib/inboxKeys';
import { num } from '../lib/num';
import { navigate } from '../lib/router';
import { approvalKey, egressKey, egressList, humanKey, humanList, pendingList, useAppState, type AppState } from '../lib/store';
import { isTextField } from '../lib/video/keys';
import { ApprovalCard, type CardCommand } from '../components/ApprovalCard';
import { EgressCard } from '../components/EgressCard';
import { HumanRequestCard } from '../components/HumanRequestCard';
import { StillImage, useNow } from '../components/common';

/** One thing waiting: an action approval or a network ask. */
type Item =
  | { kind: 'approval'; key: string; sandbox: string; approval: Approval }
  | { kind: 'egress'; key: string; sandbox: string; ask: EgressAsk }
  | { kind: 'human'; key: string; sandbox: string; request: HumanRequest };

/** Approvals and network asks, oldest first. */
function inboxItems(app: AppState): Item[] {
  const items: { item: Item; at: number; id: number }[] = [
    ...pendingList(app).map((a) => ({
      item: { kind: 'approval' as const, key: `approval:${approvalKey(a.sandbox, a.id)}`, sandbox: a.sandbox, approval: a },
      at: num(a.requested_ms),
      id: num(a.id),
    })),
    ...egressList(app).map((a) => ({
      item: { kind: 'egress' as const, key: `egress:${egressKey(a.sandbox, a.id)}`, sandbox: a.sandbox, ask: a },
      at: num(a.requested_ms),
      id: num(a.id),
    })),
    ...humanList(app).map((r) => ({
      item: { kind: 'human' as const, key: `human:${humanKey(r.sandbox, r.request)}`, sandbox: r.sandbox, request: r },
      at: num(r.asked_ms),
      id: num(r.request),
    })),
  ];
  items.sort((a, b) => a.at - b.at || a.id - b.id);
  return items.map((x) => x.item);
}

export function Inbox() {
  const app = useAppState();
  const now = useNow(1000);
  const list = inboxItems(app);
  const keys = list.map((a) => a.key);
  const [index, setIndex] = useState(list.length > 0 ? 0 : -1);
  const prevKeys = useRef<string[]>(keys);
  const [help, setHelp] = useState(false);
  // A keyboard command for the card of one approval (never applied to another one).
  const [command, setCommand] = useState<(CardCommand & { key: string }) | null>(null);
  const listRef = useRef<HTMLUListElement>(null);
  const seq = useRef(0);

  // Keep the selection on the same approval as the list changes.
  const joined = keys.join('\n');
  useEffect(() => {
    setIndex((i) => reselect(prevKeys.current, i, keys));
    prevKeys.current = keys;
  }, [joined]);

  const selected: Item | undefined = index >= 0 ? list[index] : undefined;
  const selectedKey = selected ? selected.key : null;

  // Moving the selection drops a command not yet carried out (and the key check above keeps it
  // from ever reaching another card in between).
  useEffect(() => setCommand(null), [selectedKey]);

  const approvals = list.filter((i) => i.kind === 'approval').length;
  const asks = list.filter((i) => i.kind === 'egress').length;
  const humans = list.filter((i) => i.kind === 'human').length;
  const stateRef = useRef({ list, index, selected, selectedKey });
  stateRef.current = { list, index, selected, selectedKey };

  useEffect(() => {
    const on = (e: KeyboardEvent): void => {
      if (document.querySelector('dialog[open]')) return;
      const cmd = inboxCommand({
        key: e.key,
        ctrlKey: e.ctrlKey,
        altKey: e.altKey,
        metaKey: e.metaKey,
        inTextField: isTextField(e.target),
      });
      if (!cmd) return;
      const { list: l, index: i, selected: sel, selectedKey: selKey } = stateRef.current;
      // Enter on a button or link activates it, not the inbox.
      if (cmd === 'open' && e.target instanceof HTMLElement && e.target.closest('button, a, summary')) return;
      switch (cmd) {
        case 'next':
        case 'prev':
        case 'first':
        case 'last':
          e.preventDefault();
          setIndex(moveSelection(i, l.length, cmd));
          break;
        case 'approve':
        case 'deny':
        case 'edit':
          if (!sel || !selKey) return;
          e.preventDefault();
          setCommand({ kind: cmd, n: ++seq.current, key: selKey });
          break;
        case 'open':
          if (!sel) return;
          e.preventDefault();
          navigate({ view: 'session', id: sel.sandbox });
          break;
        case 'help':
          e.preventDefault();
          setHelp((h) => !h);
          break;
        case 'escape':
          if (help) setHelp(false);
          else if (e.target instanceof HTMLElement && isTextField(e.target)) {
            e.target.blur();
            listRef.current?.focus();
          }
          break;
      }
    };
    document.addEventListener('keydown', on);
    return () => document.removeEventListener('keydown', on);
  }, [help]);

  // Keep the selected item in view.
  useEffect(() => {
    const el = listRef.current?.querySelector<HTMLElement>('[aria-selected="true"]');
    el?.scrollIntoView?.({ block: 'nearest' });
  }, [index]);

  return (
    <div class="view inbox-view">
      <div class="view-head">
        <h1>Inbox</h1>
        <span class="muted count">
          {approvals === 1 ? '1 approval waiting' : `${approvals} approvals waiting`}
          {asks > 0 && (asks === 1 ? ', 1 network ask' : `, ${asks} network asks`)}
          {humans > 0 && (humans === 1 ? ', 1 agent asks for a human' : `, ${humans} agents ask for a human`)}
        </span>
        <span class="spacer" />
        <button type="button" aria-expanded={help} onClick={() => setHelp((h) => !h)}>
          Keyboard shortcuts
        </button>
      </div>
      {help && (
        <section class="shortcuts" aria-label="Keyboard shortcuts">
          <dl>
            {INBOX_SHORTCUTS.map(([k, what]) => (
              <div key={k}>
                <dt>
                  <kbd>{k}</kbd>
                </dt>
                <dd>{what}</dd>
              </div>
            ))}
          </dl>
        </section>
      )}
      {list.length === 0 ? (
        <p class="empty">Nothing waits for you. New asks appear here (and as a desktop notification when the console is in the background).</p>
      ) : (
        <div class="inbox-layout">
          <ul class="inbox-list" aria-label="Pending approvals" ref={listRef} tabIndex={-1}>
            {list.map((item, i) => {
              const sel = i === index;
              if (item.kind === 'human') {
                const r = item.request;
                const id = num(r.request);
                const w = humanWait(num(r.asked_ms), num(r.deadline_ms), now);
                return (
                  <li
                    key={item.key}
                    aria-label={`Human request ${id} in ${r.sandbox}`}
                    aria-selected={sel}
                    aria-current={sel ? 'true' : undefined}
                    class={`inbox-item human-item ${sel ? 'selected' : ''}`}
                    onClick={() => setIndex(i)}
                  >
                    <StillImage hash={r.frame} alt={`Screen when the agent asked (request ${id})`} class="inbox-thumb" />
                    <span class="inbox-text">
                      <span class="inbox-line">
                        <span class="mono small">{r.sandbox}</span>
                        <span class={`countdown small ${w.warn ? 'warn' : ''}`}>{w.left}</span>
                      </span>
                      <span class="inbox-summary" title={r.reason}>
                        <span class="inbox-tag">{helpKindText(r.kind)}</span> {r.reason}
                      </span>
                      <span class="muted small">
                        {r.agent ? `agent ${r.agent}` : 'the agent'} · {w.waited}
                      </span>
                    </span>
                  </li>
                );
              }
              if (item.kind === 'egress') {
                const a = item.ask;
                const id = num(a.id);
                const cd = countdown(num(a.deadline_ms), now);
                return (
                  <li
                    key={item.key}
                    aria-label={`Network request ${id} in ${a.sandbox}`}
                    aria-selected={sel}
                    aria-current={sel ? 'true' : undefined}
                    class={`inbox-item egress-item ${sel ? 'selected' : ''}`}
                    onClick={() => setIndex(i)}
                  >
                    <StillImage hash={a.frame_png} alt={`Screen for network request ${id}`} class="inbox-thumb" />
                    <span class="inbox-text">
                      <span class="inbox-line">
                        <span class="mono small">{a.sandbox}</span>
                        <span class={`countdown small ${cd.warn ? 'warn' : ''}`}>{cd.text}</span>
                      </span>
                      <span class="inbox-summary" title={destinationsText(a.destinations)}>
                        <span class="inbox-tag">network</span> {destinationsText(a.destinations)}
                      </span>
                      <span class="muted small">
                        {a.protocol === null ? 'asked ahead' : num(a.waiting) === 1 ? '1 connection waits' : `${num(a.waiting)} connections wait`}
                        {' · '}
                        {a.reason || a.rules.join(', ') || 'policy default'}
                      </span>
                    </span>
                  </li>
                );
              }
              const a = item.approval;
              const id = num(a.id);
              const cd = countdown(num(a.deadline_ms), now);
              return (
                <li
                  key={item.key}
                  aria-label={`Approval ${id} in ${a.sandbox}`}
                  aria-selected={sel}
                  aria-current={sel ? 'true' : undefined}
                  class={`inbox-item ${sel ? 'selected' : ''}`}
                  onClick={() => setIndex(i)}
                >
                  <StillImage hash={a.frame_png} alt={`Frame for approval ${id}`} class="inbox-thumb" />
                  <span class="inbox-text">
                    <span class="inbox-line">
                      <span class="mono small">{a.sandbox}</span>
                      <span class={`countdown small ${cd.warn ? 'warn' : ''}`}>{cd.text}</span>
                    </span>
                    <span class="inbox-summary" title={describeAction(a.action, 400)}>
                      {describeAction(a.action)}
                    </span>
                    <span class="muted small">{a.reason || a.reasons.join(', ') || 'policy default'}</span>
                  </span>
                </li>
              );
            })}
          </ul>
          <div class="inbox-detail">
            {selected && (
              <>
                {selected.kind === 'approval' ? (
                  <ApprovalCard key={selectedKey} approval={selected.approval} command={command && command.key === selectedKey ? command : null} />
                ) : selected.kind === 'human' ? (
                  <HumanRequestCard key={selectedKey} request={selected.request} />
                ) : (
                  <EgressCard key={selectedKey} ask={selected.ask} command={command && command.key === selectedKey ? command : null} />
                )}
                <div class="button-row">
                  <button type="button" onClick={() => navigate({ view: 'session', id: selected.sandbox })}>
                    Open {selected.sandbox}
                  </button>
                </div>
              </>
            )}
          </div>
        </div>
      )}
      <p class="hint small">Keys: ↑/↓ or j/k select · a approve (a network ask: allow once) · d deny · e edit · Enter open · ? shortcuts</p>
    </div>
  );
}
