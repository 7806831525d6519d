import { describe, expect, it } from 'vitest';
import { socketUrl, viewerParams } from './params';

describe('viewer address', () => {
  it('reads sandbox, transport, focus and the token from the fragment', () => {
    expect(viewerParams('?sandbox=sb1&transport=webcodecs&focus=0', '#token=t%2Bk')).toEqual({
      sandbox: 'sb1', token: 't+k', transport: 'webcodecs', focused: false, socketVideo: true, scaling: 'fit', problems: [],
    });
  });

  it('defaults, takes the token from the query, and names what is wrong', () => {
    const p = viewerParams('?transport=carrier-pigeon&token=q&socketvideo=off', '');
    expect(p).toMatchObject({ sandbox: '', token: 'q', transport: undefined, focused: true, socketVideo: false });
    expect(p.problems).toHaveLength(2);
  });

  it('shows the screen 1:1 when the address says scale=1', () => {
    expect(viewerParams('?sandbox=sb1&scale=1', '')).toMatchObject({ scaling: '1:1', problems: [] });
  });

  it('fits the screen when the scale is unknown, and says so', () => {
    const p = viewerParams('?sandbox=sb1&scale=2', '');
    expect(p.scaling).toBe('fit');
    expect(p.problems).toEqual(['unknown scale "2" (scale=1 for 1:1)']);
  });

  it('opens the socket on the same origin', () => {
    expect(socketUrl({ protocol: 'https:', host: 'h:1' }, 'a b', 'x&y')).toBe('wss://h:1/api/sandboxes/a%20b/view?token=x%26y');
  });
});
