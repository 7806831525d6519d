// Small shared pieces: a modal dialog, the 1-second clock, the viewer hook, still images, the
// deny step of an ask.

import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import type { Backend } from '../lib/backend';
import { useBlobUrl } from '../lib/blobs';
import { ViewerConnection, type ViewerOptions, type ViewerSnapshot } from '../lib/video/connection';

/** Date.now(), refreshed every `everyMs`. */
export function useNow(everyMs = 1000): number {
  const [now, set] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => set(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

interface ModalProps {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  /** Extra class for the dialog box. */
  class?: string;
}

/** A modal dialog (native <dialog>: focus is kept inside, Escape closes). */
export function Modal({ title, onClose, children, class: cls }: ModalProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const closeRef = useRef(onClose);
  closeRef.current = onClose;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    try {
      if (typeof d.showModal === 'function' && !d.open) d.showModal();
      else d.setAttribute('open', '');
    } catch {
      d.setAttribute('open', '');
    }
    const onCancel = (e: Event): void => {
      e.preventDefault();
      closeRef.current();
    };
    d.addEventListener('cancel', onCancel);
    return () => {
      d.removeEventListener('cancel', onCancel);
      try {
        if (d.open) d.close();
      } catch {
        /* gone */
      }
    };
  }, []);
  return (
    <dialog ref={ref} class={`modal ${cls ?? ''}`} aria-labelledby={titleId}>
      <h2 id={titleId} class="modal-title">
        {title}
      </h2>
      {children}
    </dialog>
  );
}

/** A viewer socket for a sandbox while the component is mounted. */
export function useViewer(
  sandbox: string,
  backend: Backend | null,
  opts: Omit<ViewerOptions, 'sandbox' | 'url'>,
): { conn: ViewerConnection | null; snap: ViewerSnapshot | null } {
  const [conn, setConn] = useState<ViewerConnection | null>(null);
  const [snap, setSnap] = useState<ViewerSnapshot | null>(null);
  const { focused, noVideo, transport } = opts;
  useEffect(() => {
    if (!backend) return;
    const url = (): Promise<string> => backend.viewUrl(sandbox);
    const c = new ViewerConnection({ sandbox, url, focused, noVideo, transport });
    setConn(c);
    const un = c.subscribe(setSnap);
    c.start();
    return () => {
      un();
      c.close();
      setConn(null);
      setSnap(null);
    };
    // focus changes go through setFocus, not a new connection
  }, [sandbox, backend, noVideo, transport]);
  useEffect(() => {
    conn?.setFocus(focused);
  }, [conn, focused]);
  return { conn, snap };
}

/** A still from the ledger blob store, in a fixed aspect box. */
export function StillImage({
  hash,
  alt,
  class: cls,
  onClick,
}: {
  hash: string | null | undefined;
  alt: string;
  class?: string;
  onClick?: () => void;
}) {
  const { url, error } = useBlobUrl(hash);
  const body = url ? (
    <img src={url} alt={alt} decoding="async" />
  ) : (
    <span class="still-placeholder" title={error ?? undefined}>
      {error ? 'Image unavailable' : hash ? 'Loading…' : 'No image'}
    </span>
  );
  return onClick ? (
    <button type="button" class={`still ${cls ?? ''}`} onClick={onClick} aria-label={`Enlarge ${alt}`}>
      {body}
    </button>
  ) : (
    <span class={`still ${cls ?? ''}`}>{body}</span>
  );
}

/** A labelled whole-number input (the value stays text while it is typed; callers parse it). */
export function NumberField({
  label,
  class: cls,
  min,
  max,
  step = 1,
  value,
  onInput,
}: {
  label: string;
  class: string;
  min: number;
  max: number;
  step?: number;
  value: string;
  onInput: (value: string) => void;
}) {
  return (
    <label class={cls}>
      <span>{label}</span>
      <input
        type="number"
        min={min}
        max={max}
        step={step}
        value={value}
        onInput={(e) => onInput((e.currentTarget as HTMLInputElement).value)}
      />
    </label>
  );
}

/** A refusal or failure the operator must read (announced to screen readers); nothing without one. */
export function Alert({ message }: { message: string | null }) {
  return message ? (
    <p class="card-error" role="alert">
      {message}
    </p>
  ) : null;
}

/** The deny step of an ask: an optional reason (focused; Escape cancels), Confirm deny, Cancel. */
export function DenyForm({
  reason,
  onReason,
  placeholder,
  busy,
  onConfirm,
  onCancel,
}: {
  reason: string;
  onReason: (reason: string) => void;
  placeholder: string;
  busy: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <form
      class="deny-panel"
      onSubmit={(e) => {
        e.preventDefault();
        onConfirm();
      }}
    >
      <label class="field">
        <span>Reason</span>
        <input
          ref={ref}
          type="text"
          value={reason}
          placeholder={placeholder}
          onInput={(e) => onReason((e.currentTarget as HTMLInputElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Escape') {
              e.preventDefault();
              onCancel();
            }
          }}
        />
      </label>
      <div class="button-row">
        <button type="submit" class="danger" disabled={busy}>
          Confirm deny
        </button>
        <button type="button" disabled={busy} onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
