//! The entry model: what a caller appends ([`Draft`]) and what the ledger hands back ([`Entry`]).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::canonical::{canonical_json, CanonicalError};
use crate::digest::Digest;

/// What an entry records. Serialized (and displayed) as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Policy (or a human) decided on a proposed action.
    ActionDecided,
    /// An action was carried out in the sandbox.
    ActionExecuted,
    /// An action was refused.
    ActionRefused,
    /// A human was asked to approve something.
    ApprovalRequested,
    /// An approval request was answered or expired.
    ApprovalResolved,
    /// A grant (standing permission) was issued.
    GrantIssued,
    /// The control lease moved between agent and human.
    LeaseChanged,
    /// A human typed or clicked in the sandbox.
    HumanInput,
    /// A sandbox or supervisor lifecycle event.
    Lifecycle,
    /// Network egress from a sandbox.
    Egress,
    /// The policy in force changed.
    PolicyChanged,
    /// Who may do what: view links made, used and revoked; requests refused for a role.
    Access,
    /// An agent asked for a human, and how that ended.
    HumanRequest,
    /// A file or folder moved into or out of a sandbox.
    FileTransfer,
}

impl EntryKind {
    /// Every kind, in declaration order.
    pub const ALL: [EntryKind; 14] = [
        EntryKind::ActionDecided,
        EntryKind::ActionExecuted,
        EntryKind::ActionRefused,
        EntryKind::ApprovalRequested,
        EntryKind::ApprovalResolved,
        EntryKind::GrantIssued,
        EntryKind::LeaseChanged,
        EntryKind::HumanInput,
        EntryKind::Lifecycle,
        EntryKind::Egress,
        EntryKind::PolicyChanged,
        EntryKind::Access,
        EntryKind::HumanRequest,
        EntryKind::FileTransfer,
    ];

    /// The snake_case name, as serialized and as stored in the `kind` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::ActionDecided => "action_decided",
            EntryKind::ActionExecuted => "action_executed",
            EntryKind::ActionRefused => "action_refused",
            EntryKind::ApprovalRequested => "approval_requested",
            EntryKind::ApprovalResolved => "approval_resolved",
            EntryKind::GrantIssued => "grant_issued",
            EntryKind::LeaseChanged => "lease_changed",
            EntryKind::HumanInput => "human_input",
            EntryKind::Lifecycle => "lifecycle",
            EntryKind::Egress => "egress",
            EntryKind::PolicyChanged => "policy_changed",
            EntryKind::Access => "access",
            EntryKind::HumanRequest => "human_request",
            EntryKind::FileTransfer => "file_transfer",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not the snake_case name of an [`EntryKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an entry kind")]
pub struct UnknownKind(pub String);

impl FromStr for EntryKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<EntryKind, UnknownKind> {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// Who caused an entry: the agent, the principal it acts for, the human operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The agent (model or harness) name.
    pub agent: Option<String>,
    /// The user or service the agent acts for.
    pub principal: Option<String>,
    /// The human operator at the console.
    pub operator: Option<String>,
}

impl Actor {
    /// A human operator.
    pub fn operator(name: impl Into<String>) -> Actor {
        Actor {
            operator: Some(name.into()),
            ..Actor::default()
        }
    }
}

/// What a caller appends. The ledger adds `seq`, `prev` and `hash`.
///
/// Every field is part of the hashed body; `None` is encoded as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// When it happened, unix milliseconds, supplied by the caller (the ledger never reads the clock
    /// for entry content). At most `i64::MAX`.
    pub ts_ms: u64,
    /// The sandbox it happened in, if any.
    pub sandbox: Option<String>,
    /// What kind of event this is.
    pub kind: EntryKind,
    /// Who caused it.
    pub actor: Actor,
    /// The control-lease epoch in force.
    pub epoch: Option<u64>,
    /// Hex hash of the policy version in force.
    pub policy_hash: Option<String>,
    /// Screenshot before the action: a blob that must already be in the blob store.
    pub frame_before: Option<Digest>,
    /// Screenshot after the action: a blob that must already be in the blob store.
    pub frame_after: Option<Digest>,
    /// The action, decision, result…: free-form JSON. Numbers are kept as serde_json prints them.
    pub what: serde_json::Value,
}

/// The hashed body of an [`Entry`]: the fields of the [`Draft`] it was appended from.
pub type Body = Draft;

impl Draft {
    /// The canonical bytes of this body (see [`crate::canonical`]), which the entry hash covers.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        let value = serde_json::to_value(self).map_err(|e| CanonicalError::NotJson(e.to_string()))?;
        canonical_json(&value)
    }
}

/// One committed entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// The hash of entry `seq - 1` ([`Digest::ZERO`] for the first entry).
    pub prev: Digest,
    /// `SHA-256("airlock-ledger/v1\n" || seq (u64 big-endian) || prev || canonical body)`.
    pub hash: Digest,
    /// The appended fields.
    pub body: Body,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's hash (the new head of the chain).
    pub hash: Digest,
}

/// The most entries one [`Query`] returns.
pub const MAX_QUERY_LIMIT: u32 = 10_000;

/// A filter over entries, answered in ascending `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// Only this sandbox's entries (`None`: every entry, with or without a sandbox).
    pub sandbox: Option<String>,
    /// Only entries with `seq` greater than this (for paging: pass the last seq seen).
    pub after_seq: Option<u64>,
    /// Only these kinds (empty: every kind).
    pub kinds: Vec<EntryKind>,
    /// At most this many entries; capped at [`MAX_QUERY_LIMIT`]. Zero returns nothing.
    pub limit: u32,
}

impl Default for Query {
    /// Every entry from the start, [`MAX_QUERY_LIMIT`] at a time.
    fn default() -> Query {
        Query {
            sandbox: None,
            after_seq: None,
            kinds: Vec::new(),
            limit: MAX_QUERY_LIMIT,
        }
    }
}

/// A borrowed view of a stored body: what verification needs, parsed without copying `what`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BodyView<'a> {
    pub ts_ms: u64,
    #[serde(borrow)]
    pub sandbox: Option<Cow<'a, str>>,
    pub kind: EntryKind,
    #[allow(dead_code)]
    #[serde(borrow)]
    pub actor: ActorView<'a>,
    #[allow(dead_code)]
    pub epoch: Option<u64>,
    #[allow(dead_code)]
    #[serde(borrow)]
    pub policy_hash: Option<Cow<'a, str>>,
    pub frame_before: Option<Digest>,
    pub frame_after: Option<Digest>,
    #[allow(dead_code)]
    #[serde(borrow)]
    pub what: &'a RawValue,
}

/// A borrowed [`Actor`], for schema checks during verification.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct ActorView<'a> {
    #[serde(borrow)]
    pub agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub principal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub operator: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn draft() -> Draft {
        Draft {
            ts_ms: 1_700_000_000_123,
            sandbox: Some("sbx-1".into()),
            kind: EntryKind::ActionExecuted,
            actor: Actor {
                agent: Some("claude".into()),
                principal: None,
                operator: Some("op".into()),
            },
            epoch: Some(7),
            policy_hash: Some("ab".repeat(32)),
            frame_before: None,
            frame_after: Some(Digest::of(b"png")),
            what: json!({"action": {"type": "left_click", "x": 1, "y": 2}, "ok": true}),
        }
    }

    #[test]
    fn kind_names_are_snake_case_everywhere() {
        for kind in EntryKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(kind.as_str().parse::<EntryKind>(), Ok(kind));
        }
        assert_eq!(EntryKind::HumanInput.to_string(), "human_input");
        assert!("HumanInput".parse::<EntryKind>().is_err());
    }

    #[test]
    fn canonical_body_round_trips() {
        let d = draft();
        let bytes = d.canonical_bytes().unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.starts_with(r#"{"actor":{"agent":"claude","operator":"op","principal":null},"epoch":7,"#)
        );
        let back: Draft = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.canonical_bytes().unwrap(), bytes);
        let view: BodyView<'_> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(view.sandbox.as_deref(), Some("sbx-1"));
        assert_eq!(view.frame_after, d.frame_after);
        assert_eq!(view.kind, EntryKind::ActionExecuted);
    }

    /// A test vector: the exact canonical bytes and the hash of this body as entry 1.
    #[test]
    fn known_answer() {
        let d = draft();
        let expected = format!(
            concat!(
                r#"{{"actor":{{"agent":"claude","operator":"op","principal":null}},"epoch":7,"#,
                r#""frame_after":"{}","frame_before":null,"kind":"action_executed","policy_hash":"{}","#,
                r#""sandbox":"sbx-1","ts_ms":1700000000123,"#,
                r#""what":{{"action":{{"type":"left_click","x":1,"y":2}},"ok":true}}}}"#
            ),
            Digest::of(b"png"),
            "ab".repeat(32)
        );
        let bytes = d.canonical_bytes().unwrap();
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected);
        let hash = crate::chain::entry_hash(1, &Digest::ZERO, &bytes);
        // Computed independently (Python hashlib) from the documented construction.
        assert_eq!(
            hash.to_string(),
            "b4733cb13b10b3430291476d71631dd21d64a3cf1956e960c19a4835f46211a1"
        );
    }

    #[test]
    fn unknown_body_fields_are_rejected() {
        let mut v = serde_json::to_value(draft()).unwrap();
        v["extra"] = json!(1);
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(serde_json::from_slice::<Draft>(&bytes).is_err());
        assert!(serde_json::from_slice::<BodyView<'_>>(&bytes).is_err());
    }
}
