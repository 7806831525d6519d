// @vitest-environment happy-dom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Backend } from '../lib/backend';
import { ApiError } from '../lib/backend/errors';
import { store } from '../lib/store';
import { humanRequest, operator, sandbox, snapshot } from '../test/fixtures';
import { BackendContext } from './context';
import { HumanRequestCard } from './HumanRequestCard';

vi.mock('../lib/blobs', () => ({ useBlobUrl: (h: string | null) => ({ url: h ? `blob:${h.slice(0, 4)}` : null, error: null }) }));

const settle = async (): Promise<void> => {
  await act(async () => {
    await Promise.resolve();
  });
};

describe('HumanRequestCard', () => {
  let root: HTMLElement;
  beforeEach(() => {
    root = document.createElement('div');
    document.body.append(root);
    location.hash = '#/inbox';
    store.dispatch({ type: 'snapshot', snapshot: snapshot([sandbox('sb-1')], []) });
    store.dispatch({ type: 'me', me: operator('ana') });
  });
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const mount = (b: Partial<Backend>, r = humanRequest(7)): void => {
    act(() => {
      render(
        <BackendContext.Provider value={{ kind: 'web', auth: null, ...b } as unknown as Backend}>
          <HumanRequestCard request={r} />
        </BackendContext.Provider>,
        root,
      );
    });
  };
  const button = (name: string): HTMLButtonElement | undefined =>
    [...root.querySelectorAll('button')].find((x) => x.textContent?.trim() === name);

  it('shows the agent, the kind of help, its reason, how long it waited and the screen when it asked', () => {
    mount({});
    const card = root.querySelector('[aria-label="Human request 7 in sb-1"]');
    expect(card).not.toBeNull();
    expect(card?.textContent).toContain('Log in');
    expect(card?.textContent).toContain('agent claude');
    expect(card?.textContent).toMatch(/waiting 1 min 0[45] s/);
    expect(card?.textContent).toMatch(/Gives up in [45] min/);
    expect(root.querySelector('[aria-label="What the agent needs"]')?.textContent).toBe('The site wants a login I do not have');
    expect(root.querySelector('img')?.getAttribute('src')).toBe('blob:cccc');
  });

  it('takes control of the sandbox and opens its session when Take control is pressed', async () => {
    const lease = vi.fn(async () => ({}) as never);
    mount({ lease });
    act(() => button('Take control')?.click());
    await settle();
    expect(lease).toHaveBeenCalledWith('sb-1', { command: 'take', note: null });
    expect(location.hash).toBe('#/session/sb-1');
  });

  it('shows the server message when control cannot be taken, and stays', async () => {
    const lease = vi.fn(async () => {
      throw new ApiError(409, 'lease', 'bo holds control of sb-1');
    });
    mount({ lease });
    act(() => button('Take control')?.click());
    await settle();
    expect(root.querySelector('[role="alert"]')?.textContent).toBe('bo holds control of sb-1');
    expect(location.hash).toBe('#/inbox');
  });

  it('offers a watcher no Take control, and says the card is view only', () => {
    store.dispatch({ type: 'me', me: operator('wes', 'watcher') });
    mount({});
    expect(button('Take control')).toBeUndefined();
    expect(root.textContent).toContain('view only');
  });
});
