//! View links: watchers of one sandbox, with an expiry and revocation, handed out by operators and
//! checked on every request made with their token. Which routes a role may call is the server's
//! table; what a link is, who made, used and revoked it, and the refusals, are here, on the ledger.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use airlock_domain::{Forbidden, LinkRefused, Links, Principal, ViewLink};
use airlock_records::AccessRecord;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::api::CreatedLink;
use crate::{now_ms, CommandError, Supervisor};

/// Distinct (who, request) refusals recorded; beyond it refusals are only logged.
pub const MAX_REFUSALS_KEPT: usize = 10_000;

/// View links and who asked what: one per supervisor ([`Supervisor::access`]).
#[derive(Clone)]
pub struct Access {
    sup: std::sync::Weak<crate::Inner>,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    links: Links,
    /// Ends the sockets opened with a link when it is revoked.
    closers: HashMap<String, CancellationToken>,
    /// Links whose refusal is on the ledger already (recorded once each).
    refusal_recorded: HashSet<String>,
    /// Links whose first use is on the ledger already.
    use_recorded: HashSet<String>,
    /// (who, request) refusals on the ledger already: a repeated refusal is logged, not
    /// recorded again, so a link holder looping a refused request cannot grow the ledger.
    refused_recorded: HashSet<(String, String)>,
}

/// `bytes` random bytes from the kernel's generator, as hex (tokens and link ids).
pub fn random_hex(bytes: usize) -> Result<String, std::io::Error> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(hex::encode(buf))
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What a token presented as a link's turned out to be.
pub enum LinkLookup {
    /// A live link: act as its watcher; the token ends when the link does.
    Live(Principal, CancellationToken),
    /// A link that ended.
    Refused(LinkRefused),
    /// No link's.
    Unknown,
}

impl Access {
    /// No links yet.
    pub(crate) fn new(sup: std::sync::Weak<crate::Inner>) -> Access {
        Access {
            sup,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    fn sup(&self) -> Result<Supervisor, CommandError> {
        self.sup
            .upgrade()
            .map(|inner| Supervisor { inner })
            .ok_or(CommandError::Poisoned("supervisor (it stopped)"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks a bearer token up among the links; an ended link's refusal goes on the ledger once.
    pub async fn lookup(&self, token: &str) -> LinkLookup {
        let now = now_ms();
        let (found, record) = {
            let mut inner = self.lock();
            match inner.links.check(&hash(token), now) {
                None => return LinkLookup::Unknown,
                Some(Ok(link)) => {
                    let principal = link.principal();
                    let id = link.id.clone();
                    let closer = inner.closers.entry(id).or_default().clone();
                    (LinkLookup::Live(principal, closer), None)
                }
                Some(Err(refused)) => {
                    let (id, sandbox) = match &refused {
                        LinkRefused::Expired { id, sandbox } | LinkRefused::Revoked { id, sandbox, .. } => {
                            (id.clone(), sandbox.clone())
                        }
                    };
                    let first = inner.refusal_recorded.insert(id.clone());
                    let record = first.then(|| {
                        (
                            sandbox,
                            id.clone(),
                            AccessRecord::LinkRefused {
                                link: id,
                                reason: refused.to_string(),
                            },
                        )
                    });
                    (LinkLookup::Refused(refused), record)
                }
            }
        };
        if let Some((sandbox, id, record)) = record {
            let sandbox: String = sandbox;
            self.record(Some(sandbox.as_str()), &format!("link:{id}"), record)
                .await;
        }
        found
    }

    /// Notes that a link opened its sandbox's live view (on the ledger the first time).
    pub async fn used(&self, principal: &Principal) {
        let Some(id) = principal.name.strip_prefix("link:") else {
            return;
        };
        let first = self.lock().use_recorded.insert(id.to_string());
        if first {
            let sandbox = match &principal.scope {
                airlock_domain::Scope::Sandbox(s) => Some(s.clone()),
                airlock_domain::Scope::All => None,
            };
            self.record(
                sandbox.as_deref(),
                &principal.name,
                AccessRecord::LinkUsed { link: id.to_string() },
            )
            .await;
        }
    }

    async fn record(&self, sandbox: Option<&str>, who: &str, record: AccessRecord) {
        let written = match self.sup() {
            Ok(sup) => sup.record_access(sandbox, who, record).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!(error = %crate::chain(&e), "an access record could not be written");
        }
    }

    /// Makes a link to `sandbox` for `by`, on the ledger before its token is handed out.
    pub async fn create(
        &self,
        sandbox: &str,
        by: &str,
        ttl_s: Option<u64>,
    ) -> Result<CreatedLink, CommandError> {
        let sup = self.sup()?;
        sup.session(sandbox).await?;
        let ttl_ms = ttl_s
            .map(|s| s.saturating_mul(1000))
            .unwrap_or(airlock_domain::LINK_DEFAULT_TTL_MS);
        let token = random_hex(32).map_err(CommandError::Random)?;
        let id = random_hex(6).map_err(CommandError::Random)?;
        let link = self
            .lock()
            .links
            .create(id, hash(&token), sandbox, by, ttl_ms, now_ms())?;
        if let Err(e) = sup
            .record_access(
                Some(sandbox),
                by,
                AccessRecord::LinkCreated { link: link.clone() },
            )
            .await
        {
            // Not on the record: it must not work.
            let _ = self.lock().links.revoke(&link.id, by, now_ms());
            return Err(e);
        }
        let path = format!("/#/session/{sandbox}?token={token}");
        Ok(CreatedLink { link, token, path })
    }

    /// Revokes link `id`; its open sockets close.
    pub async fn revoke(&self, id: &str, by: &str) -> Result<ViewLink, CommandError> {
        let (link, closer) = {
            let mut inner = self.lock();
            let link = inner.links.revoke(id, by, now_ms())?;
            (link, inner.closers.remove(id))
        };
        if let Some(closer) = closer {
            closer.cancel();
        }
        self.record(
            Some(&link.sandbox),
            by,
            AccessRecord::LinkRevoked { link: link.clone() },
        )
        .await;
        Ok(link)
    }

    /// The links that still work.
    pub fn live(&self) -> Vec<ViewLink> {
        self.lock().links.live(now_ms())
    }

    /// When a live link's sockets must close (its expiry), for a principal acting as one.
    pub fn expiry_of(&self, principal: &Principal) -> Option<u64> {
        let id = principal.name.strip_prefix("link:")?;
        self.lock().links.get(id).map(|l| l.expires_ms)
    }

    /// Records that `who` was refused `request` (nothing of it ran): the first time for each
    /// (who, request), at most [`MAX_REFUSALS_KEPT`] pairs; repeats are only logged.
    pub async fn record_refusal(
        &self,
        request: String,
        sandbox: Option<&str>,
        forbidden: Forbidden,
        who: &str,
    ) {
        tracing::warn!(%request, reason = %forbidden, "request refused for its caller's role");
        let first = {
            let mut inner = self.lock();
            inner.refused_recorded.len() < MAX_REFUSALS_KEPT
                && inner.refused_recorded.insert((who.to_string(), request.clone()))
        };
        if first {
            self.record(sandbox, who, AccessRecord::Refused { request, forbidden })
                .await;
        }
    }
}
