//! Bearer tokens for the agent API and the operator API, generated on first run and kept in the
//! state directory (mode 0600).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use airlock_domain::Role;
use serde::{Deserialize, Serialize};

/// The tokens file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// Agents present this to the MCP server.
    pub agent_token: String,
    /// The principal agents with this token act for.
    pub principal: String,
    /// Operators present this to the operator API.
    pub operator_token: String,
    /// The operator this token identifies: the admin who set Airlock up.
    pub operator: String,
    /// Further operators, each with a name of their own (`airlock operator add NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<OperatorToken>,
    /// The file these were read from (operators added later are picked up from it).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// A named operator's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorToken {
    /// The operator's name, recorded in the ledger for their decisions and takeovers.
    pub name: String,
    /// Their bearer token.
    pub token: String,
    /// What they may do (operators added before roles existed are operators).
    #[serde(default)]
    pub role: Role,
}

/// Why the tokens could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// File I/O failed.
    #[error("cannot {action} the token file {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("the token file {path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// 32 random bytes as hex, from the kernel's generator.
pub fn random_token() -> Result<String, std::io::Error> {
    airlock_supervisor::access::random_hex(32)
}

/// Compares in time independent of where the strings differ.
pub fn token_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Loads `path`, or creates it with fresh tokens; returns whether it was created.
    pub fn load_or_create(path: &Path, operator: &str) -> Result<(Tokens, bool), TokenError> {
        let io = |action, source| TokenError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        match fs::read(path) {
            Ok(bytes) => {
                let t: Tokens = serde_json::from_slice(&bytes).map_err(|e| TokenError::Invalid {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                if t.agent_token.len() < 32 || t.operator_token.len() < 32 {
                    return Err(TokenError::Invalid {
                        path: path.to_path_buf(),
                        reason: "tokens must be at least 32 characters".into(),
                    });
                }
                let mode = fs::metadata(path)
                    .map_err(|e| io("inspect", e))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                        .map_err(|e| io("restrict", e))?;
                }
                Ok((
                    Tokens {
                        source: Some(path.to_path_buf()),
                        ..t
                    },
                    false,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
                }
                let t = Tokens {
                    agent_token: random_token().map_err(|e| io("generate", e))?,
                    principal: "local".into(),
                    operator_token: random_token().map_err(|e| io("generate", e))?,
                    operator: operator.to_string(),
                    operators: Vec::new(),
                    source: Some(path.to_path_buf()),
                };
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| io("create", e))?;
                f.write_all(&serde_json::to_vec_pretty(&t).unwrap_or_default())
                    .map_err(|e| io("write", e))?;
                f.sync_all().map_err(|e| io("sync", e))?;
                Ok((t, true))
            }
            Err(e) => Err(io("read", e)),
        }
    }
}

impl Tokens {
    /// The operator a bearer token belongs to and their role, compared in constant time per
    /// token. The first operator (the one who set Airlock up) is an admin.
    pub fn operator_for(&self, token: &str) -> Option<(&str, Role)> {
        let mut found = None;
        if token_eq(token, &self.operator_token) {
            found = Some((self.operator.as_str(), Role::Admin));
        }
        for o in &self.operators {
            if token_eq(token, &o.token) && found.is_none() {
                found = Some((o.name.as_str(), o.role));
            }
        }
        found
    }

    /// Adds an operator with `role` (or gives an existing one a new token and that role) in the
    /// token file; returns the token. Names are 1 to 64 letters, digits, `-`, `_` or `.`. The
    /// first operator stays an admin.
    pub fn add_operator(path: &Path, name: &str, role: Role) -> Result<String, TokenError> {
        let invalid = |reason: String| TokenError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(format!(
                "an operator name is 1 to 64 letters, digits, '-', '_' or '.', not {name:?}"
            )));
        }
        let io = |action, source| TokenError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        let (mut t, _) = Tokens::load_or_create(path, name)?;
        let token = random_token().map_err(|e| io("generate", e))?;
        if t.operator == name {
            if role != Role::Admin {
                return Err(invalid(format!(
                    "{name} set Airlock up and stays an admin; add another operator instead"
                )));
            }
            t.operator_token = token.clone();
        } else if let Some(o) = t.operators.iter_mut().find(|o| o.name == name) {
            o.token = token.clone();
            o.role = role;
        } else {
            t.operators.push(OperatorToken {
                name: name.to_string(),
                token: token.clone(),
                role,
            });
        }
        let tmp = path.with_extension("json.tmp");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("create", e))?;
        f.write_all(&serde_json::to_vec_pretty(&t).unwrap_or_default())
            .map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("sync", e))?;
        fs::rename(&tmp, path).map_err(|e| io("replace", e))?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/tokens.json");
        let (a, created) = Tokens::load_or_create(&p, "alice").unwrap();
        assert!(created);
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let (b, created) = Tokens::load_or_create(&p, "bob").unwrap();
        assert!(!created);
        assert_eq!(a, b);
        assert_ne!(a.agent_token, a.operator_token);
        assert!(token_eq(&a.agent_token, &b.agent_token));
        assert!(!token_eq(&a.agent_token, &a.operator_token));
        fs::write(&p, "{\"agent_token\": 1}").unwrap();
        let e = Tokens::load_or_create(&p, "x").unwrap_err();
        assert!(e.to_string().contains("not valid"), "{e}");
    }

    #[test]
    fn added_operators_carry_their_role_and_the_first_is_an_admin() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.json");
        let (t, _) = Tokens::load_or_create(&p, "alice").unwrap();
        let bob = Tokens::add_operator(&p, "bob", Role::Watcher).unwrap();
        let (t2, _) = Tokens::load_or_create(&p, "alice").unwrap();
        assert_eq!(t2.operator_for(&t.operator_token), Some(("alice", Role::Admin)));
        assert_eq!(t2.operator_for(&bob), Some(("bob", Role::Watcher)));
        let bob2 = Tokens::add_operator(&p, "bob", Role::Operator).unwrap();
        let (t3, _) = Tokens::load_or_create(&p, "alice").unwrap();
        assert_eq!(t3.operator_for(&bob2), Some(("bob", Role::Operator)));
        assert_eq!(t3.operator_for(&bob), None, "the old token no longer works");
        let e = Tokens::add_operator(&p, "alice", Role::Watcher).unwrap_err();
        assert!(e.to_string().contains("stays an admin"), "{e}");
    }

    #[test]
    fn operators_added_before_roles_existed_are_operators() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.json");
        let old = format!(
            r#"{{"agent_token":"{a}","principal":"local","operator_token":"{a}x","operator":"alice",
               "operators":[{{"name":"bob","token":"{b}"}}]}}"#,
            a = "a".repeat(40),
            b = "b".repeat(40)
        );
        fs::write(&p, old).unwrap();
        let (t, _) = Tokens::load_or_create(&p, "alice").unwrap();
        assert_eq!(t.operator_for(&"b".repeat(40)), Some(("bob", Role::Operator)));
    }
}
