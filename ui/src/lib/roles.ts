// What the signed-in principal may do, for hiding what it cannot (the server checks every request;
// this only keeps buttons that would be refused off the screen). Mirrors Rust `Role::allows`
// (domain/src/access.rs). Pure.

import type { Me, Permission, Role } from './api/types';

/** Whether a role allows a permission: admin everything; operator all but the policy, operators and host folders; watcher only seeing. */
export function allows(role: Role, permission: Permission): boolean {
  switch (role) {
    case 'admin':
      return true;
    case 'operator':
      return permission !== 'policy' && permission !== 'operators' && permission !== 'share';
    case 'watcher':
      return permission === 'see';
  }
}

/**
 * Whether the principal may use a permission. Nobody known yet: nothing. A server older than
 * roles sends no role, and let every operator do everything: admin.
 */
export function can(me: Me | null, permission: Permission): boolean {
  if (!me) return false;
  return allows(me.role ?? 'admin', permission);
}

/** The sandbox a view link shows, or null for a principal reaching every sandbox. */
export function linkSandbox(me: Me | null): string | null {
  return me?.scope?.kind === 'sandbox' ? me.scope.sandbox : null;
}
