//! Who may do what: operators' roles, what each role allows, and view links (watchers limited to
//! one sandbox, with an expiry and revocation).
//!
//! The server checks every request against the caller's [`Principal`]; the console only hides
//! what a role cannot do. Pure: times are passed in.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An operator's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: the policy, operators, host folders shared into sandboxes, and all an operator
    /// may do.
    Admin,
    /// Decides approvals and network asks, drives, creates and destroys sandboxes (without host
    /// folders), moves files, hands out view links.
    #[default]
    Operator,
    /// Sees sandboxes, their live views, the command view and the ledger; changes nothing.
    Watcher,
}

impl Role {
    /// The lowercase name (`admin`, `operator`, `watcher`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Watcher => "watcher",
        }
    }

    /// Whether this role allows `permission`.
    pub const fn allows(self, permission: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::Operator => !matches!(
                permission,
                Permission::Policy | Permission::Operators | Permission::Share
            ),
            Role::Watcher => matches!(permission, Permission::See),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "watcher" => Ok(Role::Watcher),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

/// The text is not a role's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a role: say admin, operator or watcher")]
pub struct UnknownRole(pub String);

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Look: sandboxes, live views, the command view, the ledger.
    See,
    /// Approve, edit or deny an agent's action or a network destination.
    Decide,
    /// Take control, type and click, hand back.
    Drive,
    /// Create and destroy sandboxes.
    Manage,
    /// Move files into and out of a sandbox.
    Files,
    /// Create and revoke view links.
    Links,
    /// Share host folders into a sandbox (the host's files: admins only).
    Share,
    /// Change the policy or how it is enforced.
    Policy,
    /// Add operators and change their roles.
    Operators,
}

impl Permission {
    /// What the permission lets one do, as a verb phrase ("decide approvals").
    pub const fn describe(self) -> &'static str {
        match self {
            Permission::See => "see sandboxes",
            Permission::Decide => "decide approvals or network asks",
            Permission::Drive => "take control or send input",
            Permission::Manage => "create or destroy sandboxes",
            Permission::Files => "move files into or out of a sandbox",
            Permission::Links => "create or revoke view links",
            Permission::Share => "share host folders into a sandbox",
            Permission::Policy => "change the policy",
            Permission::Operators => "manage operators",
        }
    }
}

/// Which sandboxes a principal reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case", tag = "kind", content = "sandbox")]
pub enum Scope {
    /// Every sandbox (a named operator).
    All,
    /// One sandbox only (a view link).
    Sandbox(String),
}

/// Who is asking, with what role, over which sandboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name the ledger records (`alice`, or `link:ID` for a view link).
    pub name: String,
    /// Their role.
    pub role: Role,
    /// What they reach.
    pub scope: Scope,
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum Forbidden {
    /// The role does not allow it.
    #[error("{who} is {} {role} and may not {}", if matches!(.role, Role::Watcher) { "a" } else { "an" }, .permission.describe())]
    Role {
        /// Who asked.
        who: String,
        /// Their role.
        role: Role,
        /// What was needed.
        permission: Permission,
    },
    /// A view link reaches one sandbox only.
    #[error("{who} is a view link for sandbox {allowed} and cannot reach {}", .asked.as_deref().unwrap_or("anything beyond it"))]
    Scope {
        /// Who asked.
        who: String,
        /// The sandbox the link is for.
        allowed: String,
        /// The sandbox asked for, if the request named one.
        asked: Option<String>,
    },
}

impl Principal {
    /// A named operator reaching every sandbox.
    pub fn operator(name: impl Into<String>, role: Role) -> Principal {
        Principal {
            name: name.into(),
            role,
            scope: Scope::All,
        }
    }

    /// Whether this principal may use `permission` on `sandbox` (`None`: a request about no
    /// sandbox in particular, which a view link never may make unless `unscoped_ok`).
    pub fn check(
        &self,
        permission: Permission,
        sandbox: Option<&str>,
        unscoped_ok: bool,
    ) -> Result<(), Forbidden> {
        if !self.role.allows(permission) {
            return Err(Forbidden::Role {
                who: self.name.clone(),
                role: self.role,
                permission,
            });
        }
        match (&self.scope, sandbox) {
            (Scope::All, _) => Ok(()),
            (Scope::Sandbox(allowed), Some(asked)) if allowed == asked => Ok(()),
            (Scope::Sandbox(_), None) if unscoped_ok => Ok(()),
            (Scope::Sandbox(allowed), asked) => Err(Forbidden::Scope {
                who: self.name.clone(),
                allowed: allowed.clone(),
                asked: asked.map(str::to_string),
            }),
        }
    }

    /// Whether this principal sees events and state of `sandbox`.
    pub fn sees(&self, sandbox: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Sandbox(allowed) => allowed == sandbox,
        }
    }
}

/// Default view-link lifetime.
pub const LINK_DEFAULT_TTL_MS: u64 = 60 * 60 * 1000;
/// Longest view-link lifetime.
pub const LINK_MAX_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// Links kept at once (live, expired or revoked); the oldest ended ones go first.
pub const MAX_LINKS: usize = 1024;

/// A view link as listed (never with its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ViewLink {
    /// The link's id (what the ledger names it by; not the secret).
    pub id: String,
    /// The sandbox it shows.
    pub sandbox: String,
    /// Who created it.
    pub created_by: String,
    /// When (Unix ms).
    pub created_ms: u64,
    /// When it stops working (Unix ms).
    pub expires_ms: u64,
    /// Who revoked it, if anyone did.
    pub revoked_by: Option<String>,
}

/// Why a link token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    /// Its time is up.
    #[error("view link {id} expired")]
    Expired {
        /// The link.
        id: String,
        /// The sandbox it was for.
        sandbox: String,
    },
    /// An operator revoked it.
    #[error("view link {id} was revoked by {by}")]
    Revoked {
        /// The link.
        id: String,
        /// The sandbox it was for.
        sandbox: String,
        /// Who revoked it.
        by: String,
    },
}

/// Why a link could not be made or revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The lifetime asked for is zero or too long.
    #[error("a view link lasts from 1 second to {} hours, not {asked_ms} ms", LINK_MAX_TTL_MS / 3_600_000)]
    Lifetime {
        /// What was asked.
        asked_ms: u64,
    },
    /// There is no such link.
    #[error("there is no view link {0}")]
    Unknown(String),
    /// It already ended.
    #[error("view link {0} has already ended")]
    Ended(String),
    /// Too many links are live at once.
    #[error("{MAX_LINKS} view links are live already; revoke some first")]
    Full,
}

/// The view links of one server: looked up by the SHA-256 of their token (the token itself is
/// never kept), ended ones remembered so their use is refused with a reason.
#[derive(Debug, Default)]
pub struct Links {
    by_hash: HashMap<[u8; 32], ViewLink>,
}

impl Links {
    /// Adds a link for `sandbox` whose token hashes to `token_hash`.
    pub fn create(
        &mut self,
        id: String,
        token_hash: [u8; 32],
        sandbox: &str,
        by: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<ViewLink, LinkError> {
        if ttl_ms == 0 || ttl_ms > LINK_MAX_TTL_MS {
            return Err(LinkError::Lifetime { asked_ms: ttl_ms });
        }
        if self.by_hash.len() >= MAX_LINKS {
            // Forget the ended link that ended longest ago; refuse when all are live.
            let oldest = self
                .by_hash
                .iter()
                .filter(|(_, l)| !l.is_live(now_ms))
                .min_by_key(|(_, l)| l.expires_ms.min(now_ms))
                .map(|(h, _)| *h);
            match oldest {
                Some(h) => {
                    self.by_hash.remove(&h);
                }
                None => return Err(LinkError::Full),
            }
        }
        let link = ViewLink {
            id,
            sandbox: sandbox.to_string(),
            created_by: by.to_string(),
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(ttl_ms),
            revoked_by: None,
        };
        self.by_hash.insert(token_hash, link.clone());
        Ok(link)
    }

    /// The link a token's hash belongs to: `None` when it is no link's, an error when it was
    /// one's that ended.
    pub fn check(&self, token_hash: &[u8; 32], now_ms: u64) -> Option<Result<&ViewLink, LinkRefused>> {
        let link = self.by_hash.get(token_hash)?;
        Some(if let Some(by) = &link.revoked_by {
            Err(LinkRefused::Revoked {
                id: link.id.clone(),
                sandbox: link.sandbox.clone(),
                by: by.clone(),
            })
        } else if now_ms >= link.expires_ms {
            Err(LinkRefused::Expired {
                id: link.id.clone(),
                sandbox: link.sandbox.clone(),
            })
        } else {
            Ok(link)
        })
    }

    /// Revokes link `id`.
    pub fn revoke(&mut self, id: &str, by: &str, now_ms: u64) -> Result<ViewLink, LinkError> {
        let link = self
            .by_hash
            .values_mut()
            .find(|l| l.id == id)
            .ok_or_else(|| LinkError::Unknown(id.to_string()))?;
        if !link.is_live(now_ms) {
            return Err(LinkError::Ended(id.to_string()));
        }
        link.revoked_by = Some(by.to_string());
        Ok(link.clone())
    }

    /// The link `id`, live or not.
    pub fn get(&self, id: &str) -> Option<&ViewLink> {
        self.by_hash.values().find(|l| l.id == id)
    }

    /// Every link still working, oldest first.
    pub fn live(&self, now_ms: u64) -> Vec<ViewLink> {
        let mut links: Vec<ViewLink> = self
            .by_hash
            .values()
            .filter(|l| l.is_live(now_ms))
            .cloned()
            .collect();
        links.sort_by_key(|l| (l.created_ms, l.id.clone()));
        links
    }
}

impl ViewLink {
    /// Neither revoked nor expired at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.revoked_by.is_none() && now_ms < self.expires_ms
    }

    /// The principal acting with this link: a watcher of its sandbox only.
    pub fn principal(&self) -> Principal {
        Principal {
            name: format!("link:{}", self.id),
            role: Role::Watcher,
            scope: Scope::Sandbox(self.sandbox.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: [u8; 32] = [1; 32];
    const H2: [u8; 32] = [2; 32];

    #[test]
    fn a_watcher_may_see_and_nothing_else() {
        for p in [
            Permission::Decide,
            Permission::Drive,
            Permission::Manage,
            Permission::Files,
            Permission::Links,
            Permission::Share,
            Permission::Policy,
            Permission::Operators,
        ] {
            assert!(!Role::Watcher.allows(p), "{p:?}");
        }
        assert!(Role::Watcher.allows(Permission::See));
    }

    #[test]
    fn an_operator_may_not_change_the_policy_or_the_operators() {
        assert!(Role::Operator.allows(Permission::Decide));
        assert!(Role::Operator.allows(Permission::Files));
        assert!(!Role::Operator.allows(Permission::Policy));
        assert!(!Role::Operator.allows(Permission::Operators));
        assert!(
            !Role::Operator.allows(Permission::Share),
            "host folders are the host's: admins only"
        );
        assert!(Role::Admin.allows(Permission::Share));
        assert!(Role::Admin.allows(Permission::Operators));
    }

    #[test]
    fn a_refusal_names_who_their_role_and_what_they_tried() {
        let bob = Principal::operator("bob", Role::Watcher);
        let e = bob.check(Permission::Decide, Some("s1"), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bob is a watcher and may not decide approvals or network asks"
        );
    }

    #[test]
    fn a_link_reaches_its_own_sandbox_only() {
        let mut links = Links::default();
        let link = links
            .create("L1".into(), H1, "s1", "alice", LINK_DEFAULT_TTL_MS, 0)
            .unwrap();
        let p = link.principal();
        assert!(p.check(Permission::See, Some("s1"), false).is_ok());
        let e = p.check(Permission::See, Some("s2"), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "link:L1 is a view link for sandbox s1 and cannot reach s2"
        );
        assert!(p.check(Permission::See, None, false).is_err());
        assert!(p.check(Permission::See, None, true).is_ok());
        assert!(p.check(Permission::Drive, Some("s1"), false).is_err());
        assert!(p.sees("s1") && !p.sees("s2"));
    }

    #[test]
    fn a_link_works_until_it_expires() {
        let mut links = Links::default();
        links
            .create("L1".into(), H1, "s1", "alice", 1_000, 5_000)
            .unwrap();
        assert!(matches!(links.check(&H1, 5_999), Some(Ok(_))));
        assert!(matches!(
            links.check(&H1, 6_000),
            Some(Err(LinkRefused::Expired { .. }))
        ));
        assert!(links.check(&H2, 5_500).is_none());
        assert!(links.live(6_000).is_empty());
    }

    #[test]
    fn a_revoked_link_is_refused_with_who_revoked_it() {
        let mut links = Links::default();
        links.create("L1".into(), H1, "s1", "alice", 1_000, 0).unwrap();
        links.revoke("L1", "carol", 10).unwrap();
        let e = links.check(&H1, 20).unwrap().unwrap_err();
        assert_eq!(e.to_string(), "view link L1 was revoked by carol");
        assert_eq!(
            links.revoke("L1", "carol", 30),
            Err(LinkError::Ended("L1".into()))
        );
        assert_eq!(
            links.revoke("nope", "carol", 30),
            Err(LinkError::Unknown("nope".into()))
        );
    }

    #[test]
    fn a_link_lifetime_must_be_positive_and_bounded() {
        let mut links = Links::default();
        assert!(links.create("L".into(), H1, "s", "a", 0, 0).is_err());
        assert!(links
            .create("L".into(), H1, "s", "a", LINK_MAX_TTL_MS + 1, 0)
            .is_err());
    }

    #[test]
    fn ended_links_make_room_for_new_ones_but_live_ones_do_not() {
        let mut links = Links::default();
        for i in 0..MAX_LINKS {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&(i as u64).to_le_bytes());
            links.create(format!("L{i}"), h, "s", "a", 1_000, 0).unwrap();
        }
        assert_eq!(
            links.create("new".into(), [9; 32], "s", "a", 1_000, 10),
            Err(LinkError::Full)
        );
        // Once they expired, the oldest ended one is forgotten.
        assert!(links
            .create("new".into(), [9; 32], "s", "a", 1_000, 2_000)
            .is_ok());
        assert_eq!(links.by_hash.len(), MAX_LINKS);
    }

    #[test]
    fn roles_parse_from_their_names() {
        assert_eq!("watcher".parse::<Role>(), Ok(Role::Watcher));
        assert_eq!(
            "root".parse::<Role>().unwrap_err().to_string(),
            "\"root\" is not a role: say admin, operator or watcher"
        );
    }
}
