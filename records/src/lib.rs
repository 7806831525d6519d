//! What the ledger says: one typed record per entry kind.
//!
//! The ledger (`airlock-ledger`) stores an entry's `kind` and its `what` body as canonical JSON and
//! hashes them; it does not know what the body means. This crate is the one place that does: a
//! [`Record`] is the kind and the body together, written by the supervisor and read back by the
//! console (TypeScript generated from these types), the tests and exports. Encoding a record gives
//! the same JSON the supervisor wrote before these types existed, so entries written then still
//! read back, and verification never depends on these types (it hashes the stored bytes).
//!
//! ```
//! use airlock_ledger::{Actor, EntryKind};
//! use airlock_records::{Lifecycle, Record};
//! let record = Record::Lifecycle(Lifecycle::SandboxAdopted);
//! let draft = record.draft(1_700_000_000_000, Some("sb1".into()), Actor::default())?;
//! assert_eq!(draft.kind, EntryKind::Lifecycle);
//! assert_eq!(draft.what, serde_json::json!({"event": "sandbox_adopted"}));
//! assert_eq!(Record::from_parts(draft.kind, &draft.what)?, record);
//! # Ok::<(), airlock_records::RecordError>(())
//! ```

use airlock_domain::{
    Action, ApprovalState, EgressRecord, Forbidden, Grant, HandbackSummary, HelpKind, Holder, LeaseCommand,
    TerminalInput, TransportKind, ViewLink,
};
use airlock_ledger::{Actor, Draft, Entry, EntryKind};
use airlock_policy::{Decision, Evaluation, Mode};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// One ledger entry's kind and body, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", content = "what", rename_all = "snake_case")]
#[ts(rename = "LedgerRecord")]
pub enum Record {
    /// Policy (or shadow mode) decided on an agent's action.
    ActionDecided(ActionDecided),
    /// An agent's action was carried out (or failed) in the sandbox.
    ActionExecuted(ActionExecuted),
    /// An agent's action was refused.
    ActionRefused(ActionRefused),
    /// An operator was asked to approve an action.
    ApprovalRequested(ApprovalRequested),
    /// An approval was answered or expired.
    ApprovalResolved(ApprovalResolved),
    /// An operator granted a kind of action ahead for a while.
    GrantIssued(GrantIssued),
    /// The control lease moved.
    LeaseChanged(LeaseChanged),
    /// An operator drove the sandbox.
    HumanInput(HumanInput),
    /// The supervisor or a sandbox started, stopped, appeared or went away.
    Lifecycle(Lifecycle),
    /// The egress gateway decided, closed or refused something.
    Egress(EgressRecord),
    /// The policy in force, or how it is enforced, changed.
    PolicyChanged(PolicyChanged),
    /// A view link was made, used, refused or revoked, or a request was refused for a role.
    Access(AccessRecord),
    /// An agent asked for a human, or that request ended.
    HumanRequest(HumanRequestRecord),
    /// A file or folder moved into or out of a sandbox (or failed to).
    FileTransfer(FileTransfer),
}

/// A record could not be encoded, or an entry's body is not the record its kind names.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Serializing a record failed (a map with non-string keys; not expected for these types).
    #[error("cannot encode a {kind} record")]
    Encode {
        /// The record's kind.
        kind: EntryKind,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A stored body does not have the shape of its kind's record.
    #[error("the body of a {kind} entry is not a {kind} record")]
    Decode {
        /// The entry's kind.
        kind: EntryKind,
        /// What did not fit.
        #[source]
        source: serde_json::Error,
    },
}

impl Record {
    /// The entry kind this record is stored as.
    pub fn kind(&self) -> EntryKind {
        match self {
            Record::ActionDecided(_) => EntryKind::ActionDecided,
            Record::ActionExecuted(_) => EntryKind::ActionExecuted,
            Record::ActionRefused(_) => EntryKind::ActionRefused,
            Record::ApprovalRequested(_) => EntryKind::ApprovalRequested,
            Record::ApprovalResolved(_) => EntryKind::ApprovalResolved,
            Record::GrantIssued(_) => EntryKind::GrantIssued,
            Record::LeaseChanged(_) => EntryKind::LeaseChanged,
            Record::HumanInput(_) => EntryKind::HumanInput,
            Record::Lifecycle(_) => EntryKind::Lifecycle,
            Record::Egress(_) => EntryKind::Egress,
            Record::PolicyChanged(_) => EntryKind::PolicyChanged,
            Record::Access(_) => EntryKind::Access,
            Record::HumanRequest(_) => EntryKind::HumanRequest,
            Record::FileTransfer(_) => EntryKind::FileTransfer,
        }
    }

    /// The entry's `what` body.
    pub fn what(&self) -> Result<serde_json::Value, RecordError> {
        let encoded = match self {
            Record::ActionDecided(r) => serde_json::to_value(r),
            Record::ActionExecuted(r) => serde_json::to_value(r),
            Record::ActionRefused(r) => serde_json::to_value(r),
            Record::ApprovalRequested(r) => serde_json::to_value(r),
            Record::ApprovalResolved(r) => serde_json::to_value(r),
            Record::GrantIssued(r) => serde_json::to_value(r),
            Record::LeaseChanged(r) => serde_json::to_value(r),
            Record::HumanInput(r) => serde_json::to_value(r),
            Record::Lifecycle(r) => serde_json::to_value(r),
            Record::Egress(r) => serde_json::to_value(r),
            Record::PolicyChanged(r) => serde_json::to_value(r),
            Record::Access(r) => serde_json::to_value(r),
            Record::HumanRequest(r) => serde_json::to_value(r),
            Record::FileTransfer(r) => serde_json::to_value(r),
        };
        encoded.map_err(|source| RecordError::Encode {
            kind: self.kind(),
            source,
        })
    }

    /// A draft of this record, stamped `ts_ms`, in `sandbox`, by `actor`; callers add the epoch,
    /// policy version and frames where they have them.
    pub fn draft(&self, ts_ms: u64, sandbox: Option<String>, actor: Actor) -> Result<Draft, RecordError> {
        Ok(Draft {
            ts_ms,
            sandbox,
            kind: self.kind(),
            actor,
            epoch: None,
            policy_hash: None,
            frame_before: None,
            frame_after: None,
            what: self.what()?,
        })
    }

    /// Reads a stored body as the record of its kind.
    pub fn from_parts(kind: EntryKind, what: &serde_json::Value) -> Result<Record, RecordError> {
        fn read<T: serde::de::DeserializeOwned>(
            kind: EntryKind,
            what: &serde_json::Value,
        ) -> Result<T, RecordError> {
            T::deserialize(what).map_err(|source| RecordError::Decode { kind, source })
        }
        Ok(match kind {
            EntryKind::ActionDecided => Record::ActionDecided(read(kind, what)?),
            EntryKind::ActionExecuted => Record::ActionExecuted(read(kind, what)?),
            EntryKind::ActionRefused => Record::ActionRefused(read(kind, what)?),
            EntryKind::ApprovalRequested => Record::ApprovalRequested(read(kind, what)?),
            EntryKind::ApprovalResolved => Record::ApprovalResolved(read(kind, what)?),
            EntryKind::GrantIssued => Record::GrantIssued(read(kind, what)?),
            EntryKind::LeaseChanged => Record::LeaseChanged(read(kind, what)?),
            EntryKind::HumanInput => Record::HumanInput(read(kind, what)?),
            EntryKind::Lifecycle => Record::Lifecycle(read(kind, what)?),
            EntryKind::Egress => Record::Egress(read(kind, what)?),
            EntryKind::Access => Record::Access(read(kind, what)?),
            EntryKind::HumanRequest => Record::HumanRequest(read(kind, what)?),
            EntryKind::FileTransfer => Record::FileTransfer(read(kind, what)?),
            EntryKind::PolicyChanged => Record::PolicyChanged(match read(kind, what) {
                Ok(changed) => changed,
                // Written before mode switches carried an `event`.
                Err(e) => match read::<UntaggedModeSet>(kind, what) {
                    Ok(UntaggedModeSet { mode, policy_version }) => {
                        PolicyChanged::ModeSet { mode, policy_version }
                    }
                    Err(_) => return Err(e),
                },
            }),
        })
    }

    /// Reads a committed entry's body.
    pub fn of(entry: &Entry) -> Result<Record, RecordError> {
        Record::from_parts(entry.body.kind, &entry.body.what)
    }
}

/// Policy decided on an agent's action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ActionDecided {
    /// The action as judged (after an operator's edit, the edited one).
    pub action: Action,
    /// The policy's evaluation.
    pub evaluation: Evaluation,
    /// What the gate decided (in shadow mode a denial lets the action through: see `shadow_denied`).
    pub decision: Decision,
    /// Shadow mode let through what the policy denies.
    #[serde(default)]
    pub shadow_denied: bool,
    /// What the keystrokes submit or paste in a terminal, when they land in one.
    #[serde(default)]
    pub terminal: Option<TerminalInput>,
}

/// An agent's action was carried out, or failed in the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ActionExecuted {
    /// The action.
    pub action: Action,
    /// What it returned.
    pub result: ActionOutcome,
}

/// What an executed action returned, as recorded: images by hash only, command output as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum ActionOutcome {
    /// It failed in the sandbox.
    Failed(Failed),
    /// It was done; nothing to return.
    Done(Done),
    /// A screenshot.
    Image(ImageResult),
    /// The pointer position.
    Cursor(CursorResult),
    /// A command's result.
    Exec(ExecRecord),
    /// Control came back to the agent instead.
    Handback(HandbackResult),
    /// A file was read or written.
    FileMoved(FileMoved),
    /// A directory was listed.
    Listed(Listed),
}

/// A file an agent read or wrote: the bytes are not recorded, their size and hash are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct FileMoved {
    /// The sandbox path.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A directory an agent listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct Listed {
    /// The sandbox path.
    pub path: String,
    /// Entries returned.
    pub entries: u32,
    /// There were more.
    pub truncated: bool,
}

/// The sandbox could not carry out an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct Failed {
    /// Why, in a sentence.
    pub error: String,
}

/// An action that returns nothing was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct Done {
    /// Always `true`.
    pub done: bool,
}

/// A screenshot, by the hash of its PNG blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ImageResult {
    /// The PNG blob's hash.
    pub frame: String,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

/// The pointer position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct CursorResult {
    /// Column.
    pub x: u16,
    /// Row.
    pub y: u16,
}

/// A command's result (output as text, invalid UTF-8 replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ExecRecord {
    /// Exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Whether it was killed at its deadline.
    pub timed_out: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Whether standard output was cut.
    pub stdout_truncated: bool,
    /// Whether standard error was cut.
    pub stderr_truncated: bool,
    /// How long it ran.
    pub duration_ms: u32,
}

/// Control came back to the agent: the summary and the fresh screenshot it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct HandbackResult {
    /// What the operator did while they held control.
    pub handback: HandbackSummary,
    /// The PNG blob's hash.
    pub frame: String,
}

/// An agent's action was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ActionRefused {
    /// The action.
    pub action: Action,
    /// Why, in a sentence (what the agent was told).
    pub reason: String,
    /// An operator's approval became void because the screen changed before it ran.
    #[serde(default, skip_serializing_if = "is_false")]
    #[ts(as = "Option<bool>", optional)]
    pub void: bool,
    /// Control had just come back to the agent: it gets a fresh screenshot instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub handback: Option<HandbackSummary>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An operator was asked to approve an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequested {
    /// The approval's id.
    pub approval: u64,
    /// What the agent asked to do.
    pub action: Action,
    /// The `@id`s of the rules that asked.
    pub reasons: Vec<String>,
    /// When it expires (Unix ms).
    pub deadline_ms: u64,
    /// The content hash of the frame the approval is bound to.
    pub bound_to_frame: String,
}

/// An approval was answered or expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ApprovalResolved {
    /// The approval's id.
    pub approval: u64,
    /// How it ended.
    pub state: ApprovalState,
    /// What an expired approval counts as (a denial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub counts_as: Option<Decision>,
}

/// An operator granted a kind of action ahead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct GrantIssued {
    /// The grant.
    pub grant: Grant,
    /// For how long.
    pub minutes: u32,
    /// The approval it was given with.
    pub approval: u64,
}

/// The control lease moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct LeaseChanged {
    /// What was asked.
    pub command: LeaseCommand,
    /// Who held control.
    pub from: Holder,
    /// Who holds it now.
    pub to: Holder,
}

/// An operator drove the sandbox: one action through the API, or what they did through the live
/// view (a summary, recorded when they hand back, leave, or every few seconds). Typed text is kept
/// only as a hash and a length or count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct HumanInput {
    /// The live-view connection the input came through (`None`: the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub viewer: Option<u64>,
    /// How that viewer received video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub transport: Option<TransportKind>,
    /// The control epoch the input was admitted under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub epoch: Option<u64>,
    /// The action, through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub action: Option<HumanAction>,
    /// What the live view's input did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub summary: Option<InputSummary>,
    /// Whether it was carried out.
    #[serde(default = "yes")]
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
    /// The note the operator left for the agent when handing control back (written by versions
    /// that recorded it here; the hand-back's `lease_changed` entry carries it now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub handback_note: Option<String>,
}

fn yes() -> bool {
    true
}

/// An operator's action as recorded: typing becomes a hash and a length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum HumanAction {
    /// Typed text.
    Typed(TypedText),
    /// Any other action, as it was.
    Action(Action),
}

impl HumanAction {
    /// The recorded form of `action`.
    pub fn of(action: &Action) -> HumanAction {
        match action {
            Action::Type { text } => HumanAction::Typed(TypedText {
                kind: TypedKind::Type,
                text_sha256: airlock_ledger::Digest::of(text.as_bytes()).to_string(),
                text_len: text.len(),
            }),
            other => HumanAction::Action(other.clone()),
        }
    }
}

/// Typed text, as a hash and a length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct TypedText {
    /// Always `type`.
    pub kind: TypedKind,
    /// SHA-256 of the text (UTF-8), hex.
    pub text_sha256: String,
    /// Its length in bytes.
    pub text_len: usize,
}

/// The kind of a [`TypedText`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TypedKind {
    /// Typing.
    Type,
}

/// What an operator's input through the live view did: counts and times; keys only as a hash of
/// the pressed keysyms and their count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct InputSummary {
    /// Pointer moves.
    pub pointer_moves: u64,
    /// Buttons pressed.
    pub button_presses: u64,
    /// Wheel steps.
    pub wheel_events: u64,
    /// Keys pressed.
    pub key_presses: u64,
    /// SHA-256 over the pressed keysyms (4 bytes little-endian each), hex.
    pub keys_sha256: String,
    /// Inputs refused (control not held).
    pub refused: u64,
    /// First input (Unix ms).
    pub first_ms: Option<u64>,
    /// Last input (Unix ms).
    pub last_ms: u64,
    /// From first to last.
    pub duration_ms: Option<u64>,
}

/// The supervisor or a sandbox started, stopped, appeared or went away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum Lifecycle {
    /// The supervisor started.
    SupervisorStarted {
        /// The policy in force.
        policy_version: String,
        /// How it is enforced.
        mode: Mode,
    },
    /// The supervisor stopped (sandboxes keep running under their keepers).
    SupervisorStopped,
    /// A sandbox was created.
    SandboxCreated {
        /// `gvisor` or `microvm`.
        backend: String,
        /// The guest profile.
        profile: String,
        /// Where it runs, in words.
        placement: String,
        /// How long it took to boot.
        boot_ms: Option<u64>,
        /// Host folders shared into it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[ts(as = "Option<Vec<SharedFolder>>", optional)]
        shares: Vec<SharedFolder>,
    },
    /// A sandbox was destroyed.
    SandboxDestroyed {
        /// By the CLI (or another process), not through this supervisor.
        #[serde(default, skip_serializing_if = "is_false")]
        #[ts(as = "Option<bool>", optional)]
        outside: bool,
    },
    /// A sandbox started outside this supervisor came under its supervision.
    SandboxAdopted,
    /// A sandbox's keeper died.
    SandboxLost {
        /// Why, as far as is known.
        reason: String,
    },
}

/// Which way a file moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Into the sandbox.
    In,
    /// Out of the sandbox (egress of data).
    Out,
}

/// What moved: one file, or a folder as a tar archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TransferContent {
    /// A regular file.
    File,
    /// A folder, as a tar archive.
    FolderArchive,
}

/// A file or folder moved into or out of a sandbox, or a transfer that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct FileTransfer {
    /// In or out.
    pub direction: Direction,
    /// The path in the sandbox.
    pub path: String,
    /// A file or a folder archive.
    pub content: TransferContent,
    /// Bytes moved (what was moved so far, when it failed).
    pub size: u64,
    /// SHA-256 of those bytes, hex (`None` when it failed before the end).
    pub sha256: Option<String>,
    /// Uploads: the file as kept among the ledger's blobs (by its hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub blob: Option<String>,
    /// How it was asked for: `api`, `cli`, `console`, `agent`.
    pub via: String,
    /// Why it failed, if it did (nothing is left half-written in the sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
}

/// A host folder shared into a sandbox, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct SharedFolder {
    /// The host folder (canonical).
    pub host: String,
    /// Where the sandbox sees it.
    pub guest: String,
    /// Whether the sandbox may write to it.
    pub writable: bool,
}

/// The policy in force, or how it is enforced, changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyChanged {
    /// An operator added a rule.
    RuleAdded {
        /// The rule's Cedar text.
        rule: String,
        /// The policy version it made.
        policy_version: String,
    },
    /// An operator switched between enforcing and shadow mode.
    ModeSet {
        /// The new mode.
        mode: Mode,
        /// The policy in force.
        policy_version: String,
    },
}

/// Who may do what: view links and refusals for a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccessRecord {
    /// An operator made a view link (its token is not recorded).
    LinkCreated {
        /// The link.
        link: ViewLink,
    },
    /// A view link opened the live view of its sandbox.
    LinkUsed {
        /// The link's id.
        link: String,
    },
    /// An operator revoked a view link.
    LinkRevoked {
        /// The link as it was then.
        link: ViewLink,
    },
    /// An expired or revoked link was presented (recorded once per link).
    LinkRefused {
        /// The link's id.
        link: String,
        /// Why it was refused.
        reason: String,
    },
    /// A request was refused because the caller's role or link does not allow it; nothing ran.
    Refused {
        /// What was asked (`POST /api/sandboxes/ID/lease`, `viewer takeover`).
        request: String,
        /// Why it was refused.
        forbidden: Forbidden,
    },
}

/// An agent asked for a human, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum HumanRequestRecord {
    /// The agent asked; its call waits.
    Requested {
        /// The request's id (per supervisor).
        request: u64,
        /// What the agent says it needs.
        reason: String,
        /// The kind of help.
        kind: HelpKind,
        /// When the agent stops waiting (Unix ms).
        deadline_ms: u64,
        /// The PNG blob of the screen when it asked.
        frame: String,
    },
    /// An operator took control and handed back: the agent gets the note and a fresh screenshot.
    Answered {
        /// The request.
        request: u64,
        /// Who helped.
        operator: String,
        /// What they said on hand-back.
        note: Option<String>,
        /// The PNG blob of the screen the agent was given.
        frame: String,
    },
    /// Nobody took it up before the deadline.
    TimedOut {
        /// The request.
        request: u64,
    },
    /// The agent's call went away (it disconnected, or the sandbox was destroyed) first.
    Abandoned {
        /// The request.
        request: u64,
        /// What happened.
        reason: String,
    },
}

/// A mode switch as recorded before the record had an `event` tag.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UntaggedModeSet {
    mode: Mode,
    policy_version: String,
}

#[cfg(test)]
mod tests {
    use airlock_domain::Point;
    use serde_json::json;

    use super::*;

    fn round_trip(record: &Record) {
        let what = record.what().expect("encode");
        assert_eq!(&Record::from_parts(record.kind(), &what).expect("decode"), record);
    }

    #[test]
    fn every_kind_a_writer_uses_reads_back_as_itself() {
        round_trip(&Record::Lifecycle(Lifecycle::SandboxDestroyed { outside: true }));
        round_trip(&Record::Lifecycle(Lifecycle::SupervisorStarted {
            policy_version: "abc".into(),
            mode: Mode::Shadow,
        }));
        round_trip(&Record::PolicyChanged(PolicyChanged::ModeSet {
            mode: Mode::Enforce,
            policy_version: "abc".into(),
        }));
        round_trip(&Record::ActionExecuted(ActionExecuted {
            action: Action::Screenshot,
            result: ActionOutcome::Image(ImageResult {
                frame: "00".repeat(32),
                width: 1280,
                height: 800,
            }),
        }));
        round_trip(&Record::ActionExecuted(ActionExecuted {
            action: Action::CursorPosition,
            result: ActionOutcome::Cursor(CursorResult { x: 3, y: 4 }),
        }));
        round_trip(&Record::ActionExecuted(ActionExecuted {
            action: Action::Screenshot,
            result: ActionOutcome::Done(Done { done: true }),
        }));
        round_trip(&Record::HumanInput(HumanInput {
            viewer: Some(2),
            transport: Some(TransportKind::WebCodecs),
            epoch: Some(7),
            action: None,
            summary: Some(InputSummary {
                key_presses: 3,
                ..InputSummary::default()
            }),
            ok: true,
            error: None,
            handback_note: Some("done".into()),
        }));
    }

    #[test]
    fn bodies_written_before_the_types_existed_read_back() {
        let old = [
            (
                EntryKind::HumanInput,
                json!({"action": {"kind": "type", "text_sha256": "ab", "text_len": 3},
                "epoch": 4, "ok": true, "error": null}),
            ),
            (
                EntryKind::HumanInput,
                json!({"viewer": 1, "transport": "webrtc", "summary": {
                "pointer_moves": 1, "button_presses": 0, "wheel_events": 0, "key_presses": 2,
                "keys_sha256": "cd", "refused": 0, "first_ms": 5, "last_ms": 9, "duration_ms": 4},
                "handback_note": null}),
            ),
            (
                EntryKind::PolicyChanged,
                json!({"mode": "shadow", "policy_version": "v"}),
            ),
            (
                EntryKind::Lifecycle,
                json!({"event": "sandbox_created", "backend": "gvisor",
                "profile": "desktop", "placement": "gVisor (ptrace)", "boot_ms": 512}),
            ),
            (
                EntryKind::ApprovalResolved,
                json!({"approval": 3, "state": {"state": "expired"},
                "counts_as": "deny"}),
            ),
            (
                EntryKind::ActionExecuted,
                json!({"action": {"kind": "mouse_move", "to": {"x": 1, "y": 2}},
                "result": {"error": "the guest is gone"}}),
            ),
        ];
        for (kind, what) in old {
            if let Err(e) = Record::from_parts(kind, &what) {
                panic!("{kind} {what}: {e}: {:?}", std::error::Error::source(&e));
            }
        }
    }

    #[test]
    fn a_body_that_does_not_fit_its_kind_names_the_kind() {
        let e = Record::from_parts(EntryKind::LeaseChanged, &json!({"event": "sandbox_adopted"}))
            .expect_err("a lifecycle body is not a lease change");
        assert_eq!(
            e.to_string(),
            "the body of a lease_changed entry is not a lease_changed record"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn operator_typing_is_recorded_as_a_hash_and_a_length() {
        let recorded = HumanAction::of(&Action::Type {
            text: "secret".into(),
        });
        let json = serde_json::to_string(&recorded).expect("encode");
        assert!(!json.contains("secret"), "{json}");
        assert!(json.contains("\"text_len\":6"), "{json}");
        let click = HumanAction::of(&Action::MouseMove {
            to: Point { x: 1, y: 2 },
        });
        assert!(matches!(click, HumanAction::Action(_)));
    }
}
