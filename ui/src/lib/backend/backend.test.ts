import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../backoff';
import { ApiError, errorFromResponse, errorMessage, toApiError } from './errors';
import { sniffImageType, toBytes } from './tauri';
import { ledgerSearch, parseEventsMessage, takeTokenFromHash } from './web';
import { sharedLink } from './index';
import type { CreatedLink } from '../api/types';

describe('errors', () => {
  it('keeps the server message and code', () => {
    const e = errorFromResponse(409, 'Conflict', '{"code":"approval","message":"approval 3 is no longer pending (expired)"}');
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 409, code: 'approval', message: 'approval 3 is no longer pending (expired)' });
    expect(e.unauthorized).toBe(false);
  });

  it('copes with bodies that are not the JSON error', () => {
    expect(errorFromResponse(502, 'Bad Gateway', '<html>oops</html>').message).toBe('Bad Gateway: <html>oops</html>');
    expect(errorFromResponse(500, '', '').message).toBe('The server answered 500');
    const u = errorFromResponse(401, 'Unauthorized', '');
    expect(u.unauthorized).toBe(true);
  });

  it('turns anything into an ApiError', () => {
    expect(toApiError({ code: 'lease', message: 'cannot take while ana holds control' })).toMatchObject({ code: 'lease', status: 0 });
    expect(toApiError(new Error('boom')).message).toBe('boom');
    expect(toApiError('plain').message).toBe('plain');
    expect(toApiError(undefined).message).toMatch(/no details/);
    expect(errorMessage(new ApiError(404, 'unknown_sandbox', 'no sandbox x'))).toBe('no sandbox x');
  });
});

describe('web backend helpers', () => {
  it('takes the token from the address', () => {
    expect(takeTokenFromHash('#token=abc')).toEqual({ token: 'abc', rest: '' });
    expect(takeTokenFromHash('#/inbox?token=abc&x=1')).toEqual({ token: 'abc', rest: '#/inbox?x=1' });
    expect(takeTokenFromHash('#/grid')).toEqual({ token: null, rest: '#/grid' });
    expect(takeTokenFromHash('')).toEqual({ token: null, rest: '' });
  });

  it('builds ledger queries', () => {
    expect(ledgerSearch({ sandbox: null, after: null, limit: null, kind: [] })).toBe('');
    expect(ledgerSearch({ sandbox: 'sb 1', after: 10, limit: 200, kind: ['lifecycle', 'egress'] })).toBe(
      '?sandbox=sb+1&after=10&limit=200&kind=lifecycle%2Cegress',
    );
  });

  it('classifies event socket messages', () => {
    expect(parseEventsMessage('{"type":"snapshot","sandboxes":[],"pending":[],"mode":"shadow"}')).toEqual({
      kind: 'snapshot', snapshot: { sandboxes: [], pending: [], human_requests: [], mode: 'shadow' },
    });
    expect(parseEventsMessage('{"type":"snapshot","sandboxes":[]}')).toMatchObject({ snapshot: { pending: [], mode: 'enforce' } });
    expect(parseEventsMessage('{"type":"lagged","missed":12}')).toEqual({ kind: 'lagged', missed: 12 });
    expect(parseEventsMessage('{"topic":"policy://mode","event":{"type":"policy_mode","mode":"shadow","by":"a","at_ms":1}}')).toMatchObject({ kind: 'event' });
    for (const bad of ['x', '[]', '{"topic":"t"}', '{"type":"snapshot"}', '{"topic":"t","event":{}}']) expect(parseEventsMessage(bad)).toBeNull();
  });

  it('backs off 1, 2, 4, 8, 10 s', () => {
    expect([0, 1, 2, 3, 4, 5, 50, -1].map(backoffDelay)).toEqual([1000, 2000, 4000, 8000, 10000, 10000, 10000, 1000]);
  });
});

describe('tauri backend helpers', () => {
  it('reads bytes in every form Tauri returns them', () => {
    expect([...toBytes([1, 2])]).toEqual([1, 2]);
    expect([...toBytes(new Uint8Array([3]).buffer)]).toEqual([3]);
    expect([...toBytes(new Uint8Array([0, 4, 5]).subarray(1))]).toEqual([4, 5]);
    expect(() => toBytes('nope')).toThrow(ApiError);
  });

  it('sniffs image types', () => {
    expect(sniffImageType(Uint8Array.of(0x89, 0x50, 0x4e, 0x47))).toBe('image/png');
    expect(sniffImageType(new TextEncoder().encode('RIFF\0\0\0\0WEBPVP8L'))).toBe('image/webp');
    expect(sniffImageType(Uint8Array.of(1))).toBe('application/octet-stream');
  });
});

describe('view link addresses', () => {
  const made = (path: string): CreatedLink =>
    ({ link: { id: 'l-1', sandbox: 'sb-1', created_by: 'ana', created_ms: 1, expires_ms: 2, revoked_by: null }, token: 'T', path }) as CreatedLink;

  it('makes the server path a whole URL on this origin', () => {
    expect(sharedLink(made('/#/session/sb-1?token=T'), 'https://airlock.example:8443').url).toBe('https://airlock.example:8443/#/session/sb-1?token=T');
  });

  it('keeps the whole URL the desktop app gives', () => {
    expect(sharedLink(made('http://10.0.0.2:7777/#/session/sb-1?token=T'), null).url).toBe('http://10.0.0.2:7777/#/session/sb-1?token=T');
  });
});
