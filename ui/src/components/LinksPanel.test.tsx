// @vitest-environment happy-dom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ViewLink } from '../lib/api/types';
import type { Backend } from '../lib/backend';
import { BackendContext } from './context';
import { LinksPanel } from './LinksPanel';

const link = (id: string, sandbox = 'sb-1', extra: Partial<ViewLink> = {}): ViewLink => ({
  id,
  sandbox,
  created_by: 'ana',
  created_ms: Date.now(),
  expires_ms: Date.now() + 3_600_000,
  revoked_by: null,
  ...extra,
});

const settle = async (): Promise<void> => {
  await act(async () => {
    await new Promise((r) => setTimeout(r, 0));
  });
};

describe('LinksPanel', () => {
  let root: HTMLElement;
  beforeEach(() => {
    root = document.createElement('div');
    document.body.append(root);
  });
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const mount = async (b: Partial<Backend>): Promise<void> => {
    act(() => {
      render(
        <BackendContext.Provider value={{ kind: 'web', auth: null, ...b } as unknown as Backend}>
          <LinksPanel sandbox="sb-1" />
        </BackendContext.Provider>,
        root,
      );
    });
    await settle();
  };
  const button = (name: string): HTMLButtonElement => {
    const b = [...root.querySelectorAll('button')].find((x) => x.textContent?.trim() === name);
    if (!b) throw new Error(`no button ${name}`);
    return b;
  };

  it('lists the live links of this sandbox only, and revokes one', async () => {
    const revokeLink = vi.fn(async (id: string) => link(id, 'sb-1', { revoked_by: 'ana' }));
    const listLinks = vi.fn(async () => [link('l-1'), link('l-2', 'sb-2')]);
    await mount({ listLinks, revokeLink });
    expect(root.querySelector('[aria-label="View link l-1"]')).not.toBeNull();
    expect(root.querySelector('[aria-label="View link l-2"]')).toBeNull();
    listLinks.mockResolvedValueOnce([]);
    act(() => button('Revoke').click());
    await settle();
    expect(revokeLink).toHaveBeenCalledWith('l-1');
    expect(root.querySelector('[aria-label="View link l-1"]')).toBeNull();
    expect(root.textContent).toContain('No live links to this sandbox.');
  });

  it('makes a link for the lifetime chosen (an hour unless changed) and shows its URL to copy', async () => {
    const createLink = vi.fn(async () => ({ link: link('l-3'), token: 't', url: 'http://host/#/session/sb-1?token=t' }));
    await mount({ listLinks: vi.fn(async () => []), createLink });
    act(() => button('Share view-only link').click());
    const select = root.querySelector('select') as HTMLSelectElement;
    expect(select.value).toBe('3600');
    act(() => {
      select.value = String(15 * 60);
      select.dispatchEvent(new Event('change', { bubbles: true }));
    });
    act(() => button('Create link').click());
    await settle();
    expect(createLink).toHaveBeenCalledWith('sb-1', 900);
    expect((root.querySelector('.link-made input') as HTMLInputElement).value).toBe('http://host/#/session/sb-1?token=t');
    const writeText = vi.fn(async () => undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    act(() => button('Copy').click());
    await settle();
    expect(writeText).toHaveBeenCalledWith('http://host/#/session/sb-1?token=t');
    expect(button('Copied')).toBeDefined();
  });

  it('shows the server message when a link cannot be made', async () => {
    const createLink = vi.fn(async () => {
      throw new Error('ana is a watcher and may not create or revoke view links');
    });
    await mount({ listLinks: vi.fn(async () => []), createLink });
    act(() => button('Share view-only link').click());
    act(() => button('Create link').click());
    await settle();
    expect(root.querySelector('[role="alert"]')?.textContent).toBe('ana is a watcher and may not create or revoke view links');
  });
});
