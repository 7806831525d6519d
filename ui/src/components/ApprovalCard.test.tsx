// @vitest-environment happy-dom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Backend } from '../lib/backend';
import { ApiError } from '../lib/backend/errors';
import { store } from '../lib/store';
import { approval, sandbox, snapshot, operator } from '../test/fixtures';
import { ApprovalCard, hasInvisible } from './ApprovalCard';
import { BackendContext } from './context';

vi.mock('../lib/blobs', () => ({ useBlobUrl: () => ({ url: null, error: null }) }));

function fakeBackend(resolve: Backend['resolve']): Backend {
  return { kind: 'web', auth: null, resolve } as unknown as Backend;
}

const flush = async (): Promise<void> => {
  await act(async () => {
    await new Promise((r) => setTimeout(r, 0));
  });
};

describe('ApprovalCard', () => {
  let root: HTMLElement;
  beforeEach(() => {
    root = document.createElement('div');
    document.body.append(root);
    store.dispatch({ type: 'snapshot', snapshot: snapshot([sandbox('sb-1')], []) });
    store.dispatch({ type: 'me', me: operator('ana') });
  });
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const mount = (b: Backend, a = approval(3, 'sb-1', { deadline_ms: Date.now() + 42_000 })): void => {
    act(() => {
      render(
        <BackendContext.Provider value={b}>
          <ApprovalCard approval={a} />
        </BackendContext.Provider>,
        root,
      );
    });
  };
  const button = (name: string): HTMLButtonElement => {
    const b = [...root.querySelectorAll('button')].find((x) => x.textContent?.trim() === name);
    if (!b) throw new Error(`no button ${name}`);
    return b;
  };

  it('shows the command line a typed line submits to a terminal, and what a paste inserts', () => {
    mount(
      fakeBackend(vi.fn()),
      approval(4, 'sb-1', {
        deadline_ms: Date.now() + 42_000,
        action: { kind: 'type', text: 'rm -fR ~/scratch\n' },
        terminal: {
          window: 'terminal',
          lines: [
            { text: 'rm -fR ~/scratch', unknown: null, unparsed: null },
            { text: 'echo hi', unknown: 'after Up (history recall)', unparsed: null },
          ],
          paste: { source: 'primary selection', text: 'touch /tmp/x', truncated: false, error: null },
        },
      }),
    );
    const lines = [...root.querySelectorAll('[aria-label="Command line"]')].map((e) => e.textContent);
    expect(lines).toEqual(['rm -fR ~/scratch', 'echo hi']);
    expect(root.textContent).toContain('cannot know the whole line: after Up (history recall)');
    expect(root.querySelector('[aria-label="Pasted text"]')?.textContent).toBe('touch /tmp/x');
    expect(button('Allow similar').title).toContain('terminal command actions');
  });

  it('warns when a command line holds invisible or direction-changing characters', () => {
    expect(hasInvisible('rm -rf ~/x\u202e')).toBe(true);
    expect(hasInvisible('ls\u200b -la')).toBe(true);
    expect(hasInvisible('ls -la ~')).toBe(false);
  });

  it('offers no grant for an ask the policy never grants ahead', () => {
    mount(fakeBackend(vi.fn()), approval(5, 'sb-1', { deadline_ms: Date.now() + 42_000, grantable: false }));
    expect(button('Allow similar').disabled).toBe(true);
    expect(button('Approve').disabled).toBe(false);
  });

  it('shows the contract names and the countdown', () => {
    mount(fakeBackend(vi.fn()));
    expect(root.querySelector('section[aria-label="Approval 3"]')).not.toBeNull();
    expect(root.textContent).toMatch(/Denies in 4[12] s/);
    for (const name of ['Approve', 'Edit', 'Deny', 'Allow similar']) expect(button(name)).toBeTruthy();
    const minutes = [...root.querySelectorAll('label')].find((l) => l.textContent?.includes('Minutes'))?.querySelector('input');
    expect(minutes?.value).toBe('10');
    expect(root.textContent).toContain('exec-other');
  });

  it('shows the server message when a decision is refused', async () => {
    const resolve = vi.fn().mockRejectedValue(new ApiError(409, 'approval', 'approval 3 is no longer pending (expired)'));
    mount(fakeBackend(resolve));
    act(() => button('Approve').click());
    await flush();
    expect(resolve).toHaveBeenCalledWith('sb-1', 3, { decision: 'approve', grant_minutes: null });
    expect(root.querySelector('[role="alert"]')?.textContent).toBe('approval 3 is no longer pending (expired)');
  });

  it('denies with a reason, and edits a click point', async () => {
    const resolve = vi.fn().mockResolvedValue(approval(3, 'sb-1', { state: { state: 'denied', by: 'ana', reason: 'no' } }));
    mount(fakeBackend(resolve));
    act(() => button('Deny').click());
    const reason = [...root.querySelectorAll('label')].find((l) => l.textContent?.startsWith('Reason'))?.querySelector('input');
    expect(reason).toBeTruthy();
    act(() => {
      if (reason) {
        reason.value = 'not now';
        reason.dispatchEvent(new Event('input', { bubbles: true }));
      }
    });
    act(() => button('Confirm deny').click());
    await flush();
    expect(resolve).toHaveBeenLastCalledWith('sb-1', 3, expect.objectContaining({ decision: 'deny', reason: 'not now' }));

    render(null, root);
    mount(fakeBackend(resolve));
    act(() => button('Edit').click());
    const x = [...root.querySelectorAll('label')].find((l) => l.querySelector('span')?.textContent === 'X')?.querySelector('input');
    act(() => {
      if (x) {
        x.value = '640';
        x.dispatchEvent(new Event('input', { bubbles: true }));
      }
    });
    act(() => button('Approve edited').click());
    await flush();
    expect(resolve).toHaveBeenLastCalledWith('sb-1', 3, expect.objectContaining({ decision: 'edit', computer: { action: 'left_click', coordinate: [640, 20] } }));
  });
});
