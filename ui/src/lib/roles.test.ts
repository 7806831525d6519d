import { describe, expect, it } from 'vitest';
import type { Me, Permission } from './api/types';
import { allows, can, linkSandbox } from './roles';

const ALL: Permission[] = ['see', 'decide', 'drive', 'manage', 'files', 'links', 'share', 'policy', 'operators'];
const me = (role: Me['role'], scope: Me['scope'] = { kind: 'all' }): Me => ({ operator: 'ana', role, scope });

describe('roles', () => {
  it('lets an admin do everything', () => {
    expect(ALL.filter((p) => allows('admin', p))).toEqual(ALL);
  });

  it('lets an operator do everything but share host folders, change the policy or the operators', () => {
    expect(ALL.filter((p) => !allows('operator', p))).toEqual(['share', 'policy', 'operators']);
  });

  it('lets a watcher only see', () => {
    expect(ALL.filter((p) => allows('watcher', p))).toEqual(['see']);
  });

  it('allows nothing before the server has said who is signed in', () => {
    expect(ALL.some((p) => can(null, p))).toBe(false);
  });

  it('treats a server that sends no role as one where every operator may do everything', () => {
    expect(can({ operator: 'ana' } as Me, 'policy')).toBe(true);
  });

  it('knows the one sandbox a view link shows', () => {
    expect(linkSandbox(me('watcher', { kind: 'sandbox', sandbox: 'sb-1' }))).toBe('sb-1');
    expect(linkSandbox(me('operator'))).toBeNull();
    expect(linkSandbox(null)).toBeNull();
  });
});
