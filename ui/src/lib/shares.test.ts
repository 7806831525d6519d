import { describe, expect, it } from 'vitest';
import { emptyShareRow, sharesFrom } from './shares';

describe('shared folders from the new-sandbox form', () => {
  it('turns filled rows into shares, read-only unless ticked, and leaves blank rows out', () => {
    expect(
      sharesFrom([
        { host: ' /home/ana/data ', guest: '/mnt/data', writable: false },
        emptyShareRow(),
        { host: '/srv/out', guest: '/root/out', writable: true },
      ]),
    ).toEqual([
      { host: '/home/ana/data', guest: '/mnt/data', writable: false },
      { host: '/srv/out', guest: '/root/out', writable: true },
    ]);
  });

  it('says which row is wrong and why', () => {
    expect(sharesFrom([{ host: 'data', guest: '/mnt/data', writable: false }])).toEqual({
      error: 'Shared folder 1: the host folder must be an absolute path.',
    });
    expect(sharesFrom([emptyShareRow(), { host: '/a', guest: 'mnt', writable: false }])).toEqual({
      error: 'Shared folder 2: the path in the sandbox must be absolute (like /mnt/data).',
    });
    expect(
      sharesFrom([
        { host: '/a', guest: '/mnt/x', writable: false },
        { host: '/b', guest: '/mnt/x', writable: false },
      ]),
    ).toEqual({ error: 'Shared folder 2: /mnt/x is shared twice.' });
  });
});
