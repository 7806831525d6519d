//! The operator API's typed requests and answers, shared by the HTTP routes (`airlock-server`)
//! and the desktop app's commands, so both are a few lines over [`Supervisor`].
//!
//! Their TypeScript twins are generated into `ui/src/lib/api/types.ts` by
//! `supervisor/tests/api_types.rs` (with ts-rs), so the console is checked against these shapes.

use airlock_domain::{Approval, LeaseChange, LeaseCommand, Resolution};
use airlock_guest_image::Profile;
use airlock_ledger::{Digest, Entry, EntryKind, Query, VerifyReport};
use airlock_policy::{Decision, Mode};
use airlock_sandbox::BackendChoice;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use ts_rs::TS;

use crate::gateway::{parse, ActionRequest};
use crate::{CommandError, Event, ResolveError, SandboxInfo, Supervisor};

/// Who the caller is.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Me {
    /// The operator's name, as the ledger records it (`link:ID` for a view link).
    pub operator: String,
    /// What they may do.
    pub role: airlock_domain::Role,
    /// Which sandboxes they reach (a view link: one).
    pub scope: airlock_domain::Scope,
}

/// Everything a console needs to draw itself: sent first on every (re)connection, so a client
/// replaces its state instead of merging into it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Snapshot {
    /// The sandboxes under supervision.
    pub sandboxes: Vec<SandboxInfo>,
    /// Every pending approval, oldest first.
    pub pending: Vec<Approval>,
    /// Agents waiting for a human, oldest first.
    pub human_requests: Vec<crate::help::HumanRequest>,
    /// Enforce or shadow.
    pub mode: Mode,
}

/// One event as the console receives it: on the events socket, or on a desktop-app channel.
#[derive(Debug, Clone, Serialize, TS)]
pub struct EventMessage {
    /// The namespaced topic (`sandbox://{id}/approval`, `policy://mode`, …).
    pub topic: String,
    /// The event.
    pub event: Event,
}

impl From<Event> for EventMessage {
    fn from(event: Event) -> EventMessage {
        EventMessage {
            topic: event.topic(),
            event,
        }
    }
}

/// A link as made: the token is shown once, here, and never again.
#[derive(Debug, Clone, Serialize, TS)]
pub struct CreatedLink {
    /// The link.
    pub link: airlock_domain::ViewLink,
    /// Its bearer token.
    pub token: String,
    /// Where it opens: the console on that sandbox alone (a path on the server that answered;
    /// the desktop app gives the whole URL of its server).
    pub path: String,
}

/// Make a view link.
#[derive(Debug, Clone, Default, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// How long it works, in seconds (default one hour, at most a week).
    #[serde(default)]
    #[ts(optional)]
    pub ttl_s: Option<u64>,
}

/// Most vCPUs an operator may give one sandbox.
pub const MAX_VCPUS: u8 = 8;
/// Memory bounds for one sandbox, MiB.
pub const MEMORY_MIB: std::ops::RangeInclusive<u32> = 256..=16384;

/// Make a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// `auto` (default), `microvm` or `gvisor`.
    #[serde(default)]
    pub backend: Option<BackendChoice>,
    /// `desktop` (default) or `minimal`.
    #[serde(default)]
    pub profile: Option<Profile>,
    /// vCPUs (1–8; default: the supervisor's setting).
    #[serde(default)]
    pub vcpus: Option<u8>,
    /// Memory, MiB (256–16384; default: the supervisor's setting).
    #[serde(default)]
    pub memory_mib: Option<u32>,
    /// A name the caller picks to follow progress (`create_progress` events carry it).
    #[serde(default)]
    pub job: Option<String>,
    /// Host folders shared in, read-only unless `writable` (checked against the host's rules when
    /// the sandbox is made: never `/`, a home itself, `~/.ssh` or Airlock's state).
    #[serde(default)]
    #[ts(as = "Option<Vec<airlock_sandbox::Share>>", optional)]
    pub shares: Vec<airlock_sandbox::Share>,
}

/// A checked [`CreateRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Where it runs.
    pub backend: BackendChoice,
    /// Image profile.
    pub profile: Profile,
    /// vCPUs, or the default.
    pub vcpus: Option<u8>,
    /// Memory, or the default.
    pub memory_mib: Option<u32>,
    /// Progress name.
    pub job: Option<String>,
    /// Host folders to share (validated against the store's rules when it is made).
    pub shares: Vec<airlock_sandbox::Share>,
}

impl CreateRequest {
    /// Checks names and sizes.
    pub fn spec(&self) -> Result<SandboxSpec, CommandError> {
        if let Some(v) = self.vcpus {
            if v == 0 || v > MAX_VCPUS {
                return Err(CommandError::Invalid(format!(
                    "vcpus must be between 1 and {MAX_VCPUS}, not {v}"
                )));
            }
        }
        if let Some(m) = self.memory_mib {
            if !MEMORY_MIB.contains(&m) {
                return Err(CommandError::Invalid(format!(
                    "memory_mib must be between {} and {}, not {m}",
                    MEMORY_MIB.start(),
                    MEMORY_MIB.end()
                )));
            }
        }
        if let Some(j) = &self.job {
            if j.is_empty() || j.len() > 64 {
                return Err(CommandError::Invalid(
                    "job must be 1 to 64 characters long".to_string(),
                ));
            }
        }
        Ok(SandboxSpec {
            backend: self.backend.unwrap_or_default(),
            profile: self.profile.unwrap_or_default(),
            vcpus: self.vcpus,
            memory_mib: self.memory_mib,
            job: self.job.clone(),
            shares: self.shares.clone(),
        })
    }
}

/// What an operator does with control of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LeaseVerb {
    /// Take the mouse and keyboard.
    Take,
    /// Give them back to the agent.
    HandBack,
    /// Stop the agent (its actions are refused).
    Pause,
    /// Let it go on.
    Resume,
}

/// A control change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// What to do.
    pub command: LeaseVerb,
    /// With `hand_back`: a note the agent reads with its next screenshot.
    #[serde(default)]
    pub note: Option<String>,
}

impl LeaseRequest {
    /// The lease command, on behalf of `operator`.
    pub fn command(self, operator: &str) -> Result<LeaseCommand, CommandError> {
        let operator = operator.to_string();
        match (self.command, self.note) {
            (LeaseVerb::HandBack, note) => Ok(LeaseCommand::HandBack { operator, note }),
            (verb, Some(_)) => Err(CommandError::Invalid(format!(
                "only hand_back takes a note, not {}",
                serde_json::to_value(verb).map_or_else(|_| "?".into(), |v| v.to_string())
            ))),
            (LeaseVerb::Take, None) => Ok(LeaseCommand::Take { operator }),
            (LeaseVerb::Pause, None) => Ok(LeaseCommand::Pause { by: operator }),
            (LeaseVerb::Resume, None) => Ok(LeaseCommand::Resume { by: operator }),
        }
    }
}

/// A decision on a pending approval, tagged by `decision`; a field that does not go with the
/// decision is refused (an `argv` on an approve would otherwise be ignored, and the original
/// action run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "decision", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResolveRequest {
    /// Run it as asked.
    Approve {
        /// Also allow actions of this kind for this many minutes.
        #[serde(default)]
        grant_minutes: Option<u32>,
    },
    /// Run a changed action instead: exactly one of `computer` or `argv`.
    Edit {
        /// The replacement in Anthropic's computer-use form…
        #[serde(default)]
        computer: Option<serde_json::Value>,
        /// …or, for an exec, the replacement argv.
        #[serde(default)]
        argv: Option<Vec<String>>,
    },
    /// Refuse it.
    Deny {
        /// Why (the agent reads it).
        #[serde(default)]
        reason: Option<String>,
    },
}

/// Which ledger entries to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    /// Only this sandbox's.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// Only entries after this seq.
    #[serde(default)]
    pub after: Option<u64>,
    /// At most this many (default and maximum 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only these kinds (all when empty).
    #[serde(default)]
    pub kind: Vec<EntryKind>,
}

/// The most entries one ledger page holds.
pub const LEDGER_PAGE_MAX: u32 = 1000;

/// Largest blob [`Supervisor::blob`] reads whole (frames are far smaller; kept uploads may not be).
pub const MAX_BLOB_IN_MEMORY: u64 = 64 << 20;

impl LedgerQuery {
    fn query(&self) -> Query {
        Query {
            sandbox: self.sandbox.clone(),
            after_seq: self.after,
            kinds: self.kind.clone(),
            limit: self.limit.unwrap_or(LEDGER_PAGE_MAX).min(LEDGER_PAGE_MAX),
        }
    }
}

/// The active policy, for reading.
#[derive(Debug, Clone, Serialize, TS)]
pub struct PolicyView {
    /// Hash of the policy text.
    pub version: String,
    /// The decision when no rule matches.
    pub default: Decision,
    /// Enforce or shadow.
    pub mode: Mode,
    /// The Cedar text.
    pub text: String,
}

/// Switch shadow mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// The new mode.
    pub mode: Mode,
}

/// A refused request: a stable code and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ErrorBody {
    /// Machine-readable: `unknown_sandbox`, `invalid_request`, `lease`, `unknown_approval`,
    /// `approval`, `sandbox`, `guest`, `ledger`, `session_gone`, `unknown_blob`, `forbidden_origin`
    /// (MCP, a foreign web origin).
    pub code: String,
    /// What went wrong, in a sentence.
    pub message: String,
}

impl CommandError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::UnknownSandbox(_) => "unknown_sandbox",
            CommandError::Invalid(_) => "invalid_request",
            CommandError::Lease(_) => "lease",
            CommandError::Resolve(ResolveError::Unknown(_)) => "unknown_approval",
            CommandError::Resolve(ResolveError::Unrecorded(_)) => "ledger",
            CommandError::Resolve(_) => "approval",
            CommandError::Store(_)
            | CommandError::Image(_)
            | CommandError::NoScreen(_)
            | CommandError::Task(_)
            | CommandError::Poisoned(_) => "sandbox",
            CommandError::Guest(_) => "guest",
            CommandError::Ledger(_) | CommandError::Record(_) | CommandError::Unrecorded(_) => "ledger",
            CommandError::UnknownBlob(_) => "unknown_blob",
            CommandError::Gone(_) => "session_gone",
            CommandError::Link(_) => "invalid_link",
            CommandError::Random(_) => "internal",
        }
    }
}

impl From<&CommandError> for ErrorBody {
    fn from(e: &CommandError) -> ErrorBody {
        ErrorBody {
            code: e.code().to_string(),
            message: crate::chain(e),
        }
    }
}

impl From<CommandError> for ErrorBody {
    fn from(e: CommandError) -> ErrorBody {
        ErrorBody::from(&e)
    }
}

impl Supervisor {
    /// The console's starting state.
    pub async fn snapshot(&self) -> Snapshot {
        // The pending approvals come from the same session views as the list, so the two agree
        // and each session task is asked once.
        let sandboxes = self.list().await;
        let mut pending: Vec<Approval> = sandboxes.iter().flat_map(|s| s.session.pending.clone()).collect();
        pending.sort_by_key(|a| a.id);
        Snapshot {
            sandboxes,
            pending,
            human_requests: self.human_requests(),
            mode: self.mode(),
        }
    }

    /// The active policy.
    pub fn policy_view(&self) -> PolicyView {
        let p = self.policy();
        PolicyView {
            version: p.version().to_string(),
            default: p.default_decision(),
            mode: self.mode(),
            text: p.text().to_string(),
        }
    }

    /// Creates a sandbox as an operator asked.
    pub async fn create_requested(
        &self,
        req: &CreateRequest,
        operator: &str,
    ) -> Result<SandboxInfo, CommandError> {
        let spec = req.spec()?;
        self.create_sandbox(spec, &airlock_ledger::Actor::operator(operator))
            .await
    }

    /// A control change asked by `operator`.
    pub async fn lease_requested(
        &self,
        id: &str,
        operator: &str,
        req: LeaseRequest,
    ) -> Result<LeaseChange, CommandError> {
        let cmd = req.command(operator)?;
        self.lease(id, cmd).await
    }

    /// `operator`'s decision on approval `approval` of sandbox `id`.
    pub async fn resolve_requested(
        &self,
        id: &str,
        approval: u64,
        operator: &str,
        req: ResolveRequest,
    ) -> Result<Approval, CommandError> {
        let resolution = match req {
            ResolveRequest::Approve { grant_minutes } => Resolution::Approve { grant_minutes },
            ResolveRequest::Deny { reason } => Resolution::Deny { reason },
            ResolveRequest::Edit { computer, argv } => {
                let session = self.session(id).await?;
                let request = match (computer, argv) {
                    (Some(c), None) => ActionRequest::Anthropic(c),
                    (None, Some(argv)) => ActionRequest::Exec {
                        argv,
                        stdin: String::new(),
                        timeout_ms: None,
                    },
                    _ => {
                        return Err(CommandError::Invalid(
                            "an edit needs exactly one of `computer` or `argv`".to_string(),
                        ))
                    }
                };
                let action =
                    parse(&request, session.screen).map_err(|e| CommandError::Invalid(e.to_string()))?;
                Resolution::Edit { action }
            }
        };
        self.resolve(id, approval, operator, resolution).await
    }

    /// One page of ledger entries.
    pub async fn ledger_page(&self, q: &LedgerQuery) -> Result<Vec<Entry>, CommandError> {
        let span = tracing::info_span!("ledger_page", sandbox = ?q.sandbox, after = ?q.after);
        async move {
            self.ledger()
                .query(&q.query())
                .await
                .map_err(CommandError::Ledger)
        }
        .instrument(span)
        .await
    }

    /// Walks the whole chain and the blobs.
    pub async fn verify_ledger(&self) -> Result<VerifyReport, CommandError> {
        let span = tracing::info_span!("verify_ledger");
        async move { self.ledger().verify().await.map_err(CommandError::Ledger) }
            .instrument(span)
            .await
    }

    /// Every entry as JSON Lines (verifiable offline with `airlock ledger verify --jsonl`).
    pub async fn export_ledger(&self) -> Result<Vec<u8>, CommandError> {
        let span = tracing::info_span!("export_ledger");
        async move {
            let mut out = Vec::new();
            self.ledger()
                .export(&mut out)
                .await
                .map_err(CommandError::Ledger)?;
            Ok(out)
        }
        .instrument(span)
        .await
    }

    /// A stored blob (a frame), by its hex SHA-256, whole; at most [`MAX_BLOB_IN_MEMORY`] bytes
    /// (a kept upload may be larger: [`Supervisor::open_blob`] reads in pieces).
    pub async fn blob(&self, hash: &str) -> Result<Vec<u8>, CommandError> {
        use tokio::io::AsyncReadExt;
        let (file, len) = self.open_blob(hash).await?;
        if len > MAX_BLOB_IN_MEMORY {
            return Err(CommandError::Invalid(format!(
                "blob {hash} is {len} bytes, more than the {MAX_BLOB_IN_MEMORY} read whole; \
                 download it from the operator API's /api/blobs/{hash}"
            )));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(MAX_BLOB_IN_MEMORY)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| CommandError::UnknownBlob(format!("blob {hash} could not be read: {e}")))?;
        Ok(bytes)
    }

    /// A stored blob (a frame, a kept upload), by its hex SHA-256, checked and opened to be read
    /// in pieces; with its length.
    pub async fn open_blob(&self, hash: &str) -> Result<(tokio::fs::File, u64), CommandError> {
        let digest: Digest = hash
            .parse()
            .map_err(|_| CommandError::Invalid(format!("{hash:?} is not a SHA-256 hex digest")))?;
        let file = self
            .ledger()
            .open_blob(&digest)
            .await
            .map_err(|e| CommandError::UnknownBlob(e.to_string()))?;
        let len = file
            .metadata()
            .map_err(|e| CommandError::UnknownBlob(format!("blob {hash} could not be read: {e}")))?
            .len();
        Ok((tokio::fs::File::from_std(file), len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_backend_or_profile_is_refused_by_name() {
        let e = serde_json::from_str::<CreateRequest>(r#"{"profile":"gnome"}"#).expect_err("unknown profile");
        assert!(e.to_string().contains("gnome"), "{e}");
        let e =
            serde_json::from_str::<CreateRequest>(r#"{"backend":"docker"}"#).expect_err("unknown backend");
        assert!(e.to_string().contains("docker"), "{e}");
        let ok: CreateRequest =
            serde_json::from_str(r#"{"backend":"gvisor","profile":"minimal"}"#).expect("parses");
        assert_eq!(
            (ok.backend, ok.profile),
            (Some(BackendChoice::Gvisor), Some(Profile::Minimal))
        );
    }

    #[test]
    fn create_requests_are_checked() {
        let ok = CreateRequest {
            profile: Some(Profile::Minimal),
            vcpus: Some(2),
            memory_mib: Some(2048),
            ..CreateRequest::default()
        };
        let spec = ok.spec().expect("valid");
        assert_eq!(spec.profile, Profile::Minimal);
        assert_eq!(spec.backend, BackendChoice::Auto);
        assert_eq!(spec.vcpus, Some(2));
        for (bad, needle) in [
            (
                CreateRequest {
                    vcpus: Some(0),
                    ..CreateRequest::default()
                },
                "vcpus",
            ),
            (
                CreateRequest {
                    vcpus: Some(9),
                    ..CreateRequest::default()
                },
                "vcpus",
            ),
            (
                CreateRequest {
                    memory_mib: Some(128),
                    ..CreateRequest::default()
                },
                "memory_mib",
            ),
            (
                CreateRequest {
                    job: Some(String::new()),
                    ..CreateRequest::default()
                },
                "job",
            ),
        ] {
            let e = bad.spec().expect_err("refused");
            assert!(e.to_string().contains(needle), "{e}");
            assert_eq!(e.code(), "invalid_request");
        }
    }

    #[test]
    fn lease_requests_map_to_commands() {
        let take: LeaseRequest = serde_json::from_str(r#"{"command":"take"}"#).expect("parses");
        assert_eq!(
            take.command("ada").expect("ok"),
            LeaseCommand::Take {
                operator: "ada".into()
            }
        );
        let back: LeaseRequest =
            serde_json::from_str(r#"{"command":"hand_back","note":"done"}"#).expect("parses");
        assert_eq!(
            back.command("ada").expect("ok"),
            LeaseCommand::HandBack {
                operator: "ada".into(),
                note: Some("done".into())
            }
        );
        let noted: LeaseRequest = serde_json::from_str(r#"{"command":"pause","note":"x"}"#).expect("parses");
        assert!(noted.command("ada").is_err());
        assert!(serde_json::from_str::<LeaseRequest>(r#"{"command":"steal"}"#).is_err());
        assert!(serde_json::from_str::<LeaseRequest>(r#"{"command":"take","extra":1}"#).is_err());
    }

    #[test]
    fn resolve_fields_must_fit_the_decision() {
        for ok in [
            r#"{"decision":"approve"}"#,
            r#"{"decision":"approve","grant_minutes":10}"#,
            r#"{"decision":"approve","grant_minutes":null}"#,
            r#"{"decision":"deny","reason":"no"}"#,
            r#"{"decision":"edit","argv":["ls"]}"#,
        ] {
            assert!(serde_json::from_str::<ResolveRequest>(ok).is_ok(), "{ok}");
        }
        for (bad, field) in [
            (r#"{"decision":"approve","argv":["rm"]}"#, "argv"),
            (r#"{"decision":"approve","reason":"x"}"#, "reason"),
            (r#"{"decision":"deny","grant_minutes":5}"#, "grant_minutes"),
            (
                r#"{"decision":"deny","computer":{"action":"screenshot"}}"#,
                "computer",
            ),
            (
                r#"{"decision":"edit","grant_minutes":5,"argv":["ls"]}"#,
                "grant_minutes",
            ),
        ] {
            let e = serde_json::from_str::<ResolveRequest>(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("unknown field `{field}`")), "{e}");
        }
    }

    #[test]
    fn ledger_pages_are_capped() {
        let q = LedgerQuery {
            limit: Some(50_000),
            ..LedgerQuery::default()
        };
        assert_eq!(q.query().limit, LEDGER_PAGE_MAX);
        assert_eq!(LedgerQuery::default().query().limit, LEDGER_PAGE_MAX);
    }
}
