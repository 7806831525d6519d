// The inbox's keyboard: key → command, and selection movement. Pure.

export type InboxCommand = 'next' | 'prev' | 'first' | 'last' | 'approve' | 'deny' | 'edit' | 'open' | 'help' | 'escape';

export interface KeyLike {
  key: string;
  ctrlKey?: boolean;
  altKey?: boolean;
  metaKey?: boolean;
  /** The key went to a text field (its keys belong to the field). */
  inTextField?: boolean;
}

/** The command for a key press in the inbox, or null when the key is not the inbox's. */
export function inboxCommand(e: KeyLike): InboxCommand | null {
  if (e.ctrlKey || e.altKey || e.metaKey) return null;
  if (e.inTextField) return e.key === 'Escape' ? 'escape' : null;
  switch (e.key) {
    case 'ArrowDown':
    case 'j':
      return 'next';
    case 'ArrowUp':
    case 'k':
      return 'prev';
    case 'Home':
      return 'first';
    case 'End':
      return 'last';
    case 'a':
      return 'approve';
    case 'd':
      return 'deny';
    case 'e':
      return 'edit';
    case 'Enter':
      return 'open';
    case '?':
      return 'help';
    case 'Escape':
      return 'escape';
    default:
      return null;
  }
}

/** The selected index after a movement command, clamped to the list (-1 for an empty list). */
export function moveSelection(index: number, count: number, cmd: InboxCommand): number {
  if (count <= 0) return -1;
  const i = Math.max(0, Math.min(count - 1, index));
  switch (cmd) {
    case 'next':
      return Math.min(count - 1, index < 0 ? 0 : i + 1);
    case 'prev':
      return Math.max(0, index < 0 ? 0 : i - 1);
    case 'first':
      return 0;
    case 'last':
      return count - 1;
    default:
      return i;
  }
}

/** Keeps the selection on the same approval when the list changes (else the same position). */
export function reselect(prevKeys: readonly string[], prevIndex: number, nextKeys: readonly string[]): number {
  if (nextKeys.length === 0) return -1;
  const key = prevKeys[prevIndex];
  if (key !== undefined) {
    const at = nextKeys.indexOf(key);
    if (at >= 0) return at;
  }
  return Math.max(0, Math.min(nextKeys.length - 1, prevIndex));
}

/** The shortcuts, for the help panel. */
export const INBOX_SHORTCUTS: readonly [string, string][] = [
  ['↑ / k', 'Previous approval or network ask'],
  ['↓ / j', 'Next approval or network ask'],
  ['a', 'Approve the selected approval (a network ask: allow once)'],
  ['d', 'Deny: type a reason, Enter confirms'],
  ['e', 'Edit the action, then "Approve edited"'],
  ['Enter', 'Open the sandbox'],
  ['?', 'Show or hide these shortcuts'],
  ['Esc', 'Leave a text field / close this help'],
];
