//! Network egress as a granted capability: asks for new destinations, the scopes an operator
//! grants them in, and what the ledger records about every connection.
//!
//! An ask holds one or more connections to one destination (concurrent attempts merge into one
//! ask) — or, when an agent asks ahead with `request_network`, names several destinations before
//! any connection exists. `pending → allowed | denied | expired`; expiry counts as deny.

use serde::{Deserialize, Serialize};

use crate::approval::MAX_GRANT_MINUTES;

/// How a program in the sandbox reached the egress gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum EgressProtocol {
    /// A plain-HTTP request with an absolute URI, forwarded.
    Http,
    /// An HTTP `CONNECT` tunnel (HTTPS, usually).
    Connect,
    /// A SOCKS5 `CONNECT` with a remote name.
    Socks5,
}

impl EgressProtocol {
    /// The name policies see in `context.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressProtocol::Http => "http",
            EgressProtocol::Connect => "connect",
            EgressProtocol::Socks5 => "socks5",
        }
    }
}

/// A host and port, the host normalised (lower case, no trailing dot; an address literal as text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// How far an operator's "allow" reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EgressScope {
    /// Only the connections held by this ask.
    Once,
    /// This destination, in this sandbox, for a while.
    Minutes {
        /// 1 to [`MAX_GRANT_MINUTES`].
        minutes: u32,
    },
    /// This destination, in this sandbox, for as long as the sandbox lives.
    Sandbox,
    /// Add a rule allowing this destination to the policy in force (every sandbox, from now on).
    Policy,
}

/// An operator's answer to an egress ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "decision", rename_all = "snake_case", deny_unknown_fields)]
pub enum EgressResolution {
    /// Let it through, this far.
    Allow {
        /// How far.
        scope: EgressScope,
        /// Bytes each connection may send upstream before it is paused and asked about again
        /// (`None`: no budget).
        #[serde(default)]
        upload_budget: Option<u64>,
    },
    /// Refuse it.
    Deny {
        /// Why (shown to the program in the refusal).
        #[serde(default)]
        reason: Option<String>,
    },
}

/// Where an egress ask stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EgressAskState {
    /// Waiting for an operator.
    Pending,
    /// Allowed.
    Allowed {
        /// The operator.
        by: String,
        /// How far.
        scope: EgressScope,
        /// Bytes each connection may send before it is asked about again.
        upload_budget: Option<u64>,
    },
    /// Refused by an operator.
    Denied {
        /// The operator.
        by: String,
        /// Their reason.
        reason: Option<String>,
    },
    /// Nobody decided in time: counts as deny.
    Expired,
}

/// Why an egress resolution was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressAskError {
    /// It was already decided.
    #[error("network ask {id} is already decided")]
    Decided {
        /// The ask.
        id: u64,
    },
    /// Its deadline passed.
    #[error("network ask {id} expired before the decision arrived")]
    Expired {
        /// The ask.
        id: u64,
    },
    /// A grant's length is out of range.
    #[error("a network grant lasts 1 to {MAX_GRANT_MINUTES} minutes, not {0}")]
    GrantLength(u32),
    /// "Once" on an ask that holds no connection (an agent asking ahead).
    #[error("network ask {id} holds no connection to let through once; allow it for a time, for the sandbox's life, or in the policy")]
    NothingToAllowOnce {
        /// The ask.
        id: u64,
    },
    /// The policy marks it never grantable ahead.
    #[error("network ask {id} can only be allowed once: the policy asks about each connection on its own")]
    NotGrantable {
        /// The ask.
        id: u64,
    },
}

/// An operator is asked whether a sandbox may reach destinations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct EgressAsk {
    /// Unique within the supervisor (shared with action approvals' ids).
    pub id: u64,
    /// The sandbox.
    pub sandbox: String,
    /// The agent working in the sandbox (the last one that acted), or `""` when none has.
    pub agent: String,
    /// Where to. One for a held connection; several when an agent asks ahead.
    pub destinations: Vec<Destination>,
    /// How the held connections reached the gateway (`None` when asked ahead).
    pub protocol: Option<EgressProtocol>,
    /// Connections held until the decision (attempts to the same destination merge here).
    pub waiting: u32,
    /// The agent's reason, when it asked ahead.
    pub agent_reason: Option<String>,
    /// The ledger blob of the screen when it was asked (what the agent was doing), if taken.
    pub frame_png: Option<String>,
    /// The policy's rules that asked.
    pub rules: Vec<String>,
    /// The policy's sentence.
    pub reason: String,
    /// The Cedar rule "add to policy" would add.
    pub policy_rule: String,
    /// Whether it may be allowed beyond once.
    pub grantable: bool,
    /// When it was asked.
    pub requested_ms: u64,
    /// When it expires.
    pub deadline_ms: u64,
    /// Set when a connection went over its upload budget and is paused: what it sent and its
    /// budget (an "allow" lets it go on; the new budget, if any, counts from here).
    pub over_budget: Option<OverBudget>,
    /// Where it stands.
    pub state: EgressAskState,
}

/// A paused connection's upload so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct OverBudget {
    /// Bytes sent upstream so far.
    pub sent: u64,
    /// The budget it was allowed.
    pub budget: u64,
}

impl EgressAsk {
    /// Applies an operator's decision.
    pub fn resolve(
        &mut self,
        by: &str,
        resolution: EgressResolution,
        now_ms: u64,
    ) -> Result<(), EgressAskError> {
        match self.state {
            EgressAskState::Pending => {}
            EgressAskState::Allowed { .. } | EgressAskState::Denied { .. } | EgressAskState::Expired => {
                return Err(EgressAskError::Decided { id: self.id })
            }
        }
        if now_ms >= self.deadline_ms {
            self.state = EgressAskState::Expired;
            return Err(EgressAskError::Expired { id: self.id });
        }
        let by = by.to_string();
        self.state = match resolution {
            EgressResolution::Allow { scope, upload_budget } => {
                match scope {
                    EgressScope::Once if self.protocol.is_none() => {
                        return Err(EgressAskError::NothingToAllowOnce { id: self.id })
                    }
                    EgressScope::Once => {}
                    EgressScope::Minutes { minutes } if minutes == 0 || minutes > MAX_GRANT_MINUTES => {
                        return Err(EgressAskError::GrantLength(minutes))
                    }
                    EgressScope::Minutes { .. } | EgressScope::Sandbox | EgressScope::Policy
                        if !self.grantable =>
                    {
                        return Err(EgressAskError::NotGrantable { id: self.id })
                    }
                    EgressScope::Minutes { .. } | EgressScope::Sandbox | EgressScope::Policy => {}
                }
                EgressAskState::Allowed {
                    by,
                    scope,
                    upload_budget,
                }
            }
            EgressResolution::Deny { reason } => EgressAskState::Denied { by, reason },
        };
        Ok(())
    }

    /// Expires a pending ask whose deadline has passed; returns whether it just expired.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        match self.state {
            EgressAskState::Pending if now_ms >= self.deadline_ms => {
                self.state = EgressAskState::Expired;
                true
            }
            EgressAskState::Pending
            | EgressAskState::Allowed { .. }
            | EgressAskState::Denied { .. }
            | EgressAskState::Expired => false,
        }
    }

    /// Whether the held connections may go.
    pub fn allowed(&self) -> bool {
        matches!(self.state, EgressAskState::Allowed { .. })
    }
}

/// A standing permission to reach one destination from one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct EgressGrant {
    /// The destination.
    pub destination: Destination,
    /// Who granted it.
    pub by: String,
    /// When.
    pub from_ms: u64,
    /// When it lapses; `None` for the sandbox's life.
    pub until_ms: Option<u64>,
    /// Bytes each connection it lets through may send before it is paused and asked about.
    pub upload_budget: Option<u64>,
}

/// The egress grants of one sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressGrants {
    grants: Vec<EgressGrant>,
}

impl EgressGrants {
    /// Records the grant an allowed ask's scope makes for `destination` (none for once or policy).
    pub fn issue(
        &mut self,
        destination: &Destination,
        by: &str,
        scope: EgressScope,
        upload_budget: Option<u64>,
        now_ms: u64,
    ) -> Option<EgressGrant> {
        let until_ms = match scope {
            EgressScope::Once | EgressScope::Policy => return None,
            EgressScope::Minutes { minutes } => Some(now_ms.saturating_add(u64::from(minutes) * 60_000)),
            EgressScope::Sandbox => None,
        };
        let g = EgressGrant {
            destination: destination.clone(),
            by: by.to_string(),
            from_ms: now_ms,
            until_ms,
            upload_budget,
        };
        self.grants.retain(|old| old.destination != *destination);
        self.grants.push(g.clone());
        Some(g)
    }

    /// The grant covering `destination` at `now`, if any (lapsed grants are dropped).
    pub fn covering(&mut self, destination: &Destination, now_ms: u64) -> Option<&EgressGrant> {
        self.grants.retain(|g| g.until_ms.is_none_or(|u| now_ms < u));
        self.grants.iter().find(|g| g.destination == *destination)
    }

    /// Grants in force.
    pub fn active(&self, now_ms: u64) -> Vec<EgressGrant> {
        self.grants
            .iter()
            .filter(|g| g.until_ms.is_none_or(|u| now_ms < u))
            .cloned()
            .collect()
    }
}

/// How a connection attempt was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum EgressOutcome {
    /// The policy allowed it.
    Allowed,
    /// A standing grant allowed it.
    Granted,
    /// An operator allowed it after an ask.
    Approved,
    /// The policy denied it.
    Denied,
    /// An operator denied the ask, or nobody answered in time.
    Refused,
    /// It was allowed but could not be carried out (no such name, an address the policy refuses,
    /// the upstream refused). The Network view shows it; the ledger's `decided` record keeps what
    /// was decided and its `closed` record the error.
    Failed,
}

/// What the ledger records about egress: typed, one record per event, no bodies, no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum EgressRecord {
    /// A connection attempt was decided.
    Decided {
        /// The gateway's number for the connection (unique per sandbox session).
        connection: u64,
        /// Where to.
        destination: Destination,
        /// How.
        protocol: EgressProtocol,
        /// The agent working in the sandbox, or `""`.
        agent: String,
        /// What was decided.
        outcome: EgressOutcome,
        /// The policy rules that decided (or the grant's destination rule).
        rules: Vec<String>,
        /// The operator who decided an ask, or granted ahead.
        approver: Option<String>,
        /// Why, in a sentence.
        reason: String,
        /// Shadow mode let through what the policy denies (the outcome is what happened).
        #[serde(default)]
        shadow_denied: bool,
    },
    /// A connection ended.
    Closed {
        /// The gateway's number for the connection.
        connection: u64,
        /// Where to.
        destination: Destination,
        /// The address dialled, when one was.
        address: Option<String>,
        /// Bytes from the sandbox to the upstream.
        bytes_up: u64,
        /// Bytes from the upstream to the sandbox.
        bytes_down: u64,
        /// From the proxy request to the close, milliseconds.
        duration_ms: u64,
        /// What went wrong, if it ended badly.
        error: Option<String>,
    },
    /// DNS lookups the guest's resolver refused, aggregated by the name's last two labels.
    DnsRefused {
        /// Groups, most asked first.
        groups: Vec<DnsGroup>,
        /// Lookups not listed (too many distinct names).
        unlisted: u64,
    },
    /// An agent asked ahead for destinations.
    Requested {
        /// The ask's id.
        ask: u64,
        /// The agent.
        agent: String,
        /// Where to.
        destinations: Vec<Destination>,
        /// The agent's reason.
        reason: String,
    },
    /// An ask was decided or expired.
    AskResolved {
        /// The ask in its final state.
        ask: EgressAsk,
    },
}

/// Refused DNS lookups of names under one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct DnsGroup {
    /// The last two labels of the names (`exfil.test`).
    pub group: String,
    /// Lookups.
    pub count: u64,
    /// Up to three names asked.
    pub examples: Vec<String>,
}

/// One destination as the console's Network panel shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct DestinationView {
    /// Where to.
    pub destination: Destination,
    /// The last attempt's outcome.
    pub outcome: EgressOutcome,
    /// The rules that decided it.
    pub rules: Vec<String>,
    /// Connections made or attempted.
    pub connections: u64,
    /// Connections open now.
    pub open: u32,
    /// Bytes up, all connections.
    pub bytes_up: u64,
    /// Bytes down, all connections.
    pub bytes_down: u64,
    /// Last attempt (Unix ms).
    pub last_seen_ms: u64,
}

/// A sandbox's network, for the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct NetworkView {
    /// The sandbox.
    pub sandbox: String,
    /// Destinations attempted, most recent first.
    pub destinations: Vec<DestinationView>,
    /// Asks waiting for an operator.
    pub asks: Vec<EgressAsk>,
    /// Grants in force.
    pub grants: Vec<EgressGrant>,
    /// DNS lookups refused since the sandbox started, aggregated.
    pub dns_refused: Vec<DnsGroup>,
    /// Refused lookups not listed.
    pub dns_unlisted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(protocol: Option<EgressProtocol>) -> EgressAsk {
        EgressAsk {
            id: 7,
            sandbox: "s".into(),
            agent: "a".into(),
            destinations: vec![Destination {
                host: "docs.example.org".into(),
                port: 443,
            }],
            protocol,
            waiting: 1,
            agent_reason: None,
            frame_png: None,
            rules: vec!["new-destination".into()],
            reason: "r".into(),
            policy_rule: String::new(),
            grantable: true,
            requested_ms: 1_000,
            deadline_ms: 2_000,
            over_budget: None,
            state: EgressAskState::Pending,
        }
    }

    fn allow(scope: EgressScope) -> EgressResolution {
        EgressResolution::Allow {
            scope,
            upload_budget: None,
        }
    }

    #[test]
    fn an_allowed_ask_lets_its_connections_go() {
        let mut a = ask(Some(EgressProtocol::Connect));
        a.resolve("op", allow(EgressScope::Once), 1_500).expect("pending");
        assert!(a.allowed());
        assert_eq!(
            a.resolve("op", EgressResolution::Deny { reason: None }, 1_600),
            Err(EgressAskError::Decided { id: 7 })
        );
    }

    #[test]
    fn a_decision_after_the_deadline_is_an_expiry() {
        let mut a = ask(Some(EgressProtocol::Http));
        assert_eq!(
            a.resolve("op", allow(EgressScope::Sandbox), 2_000),
            Err(EgressAskError::Expired { id: 7 })
        );
        assert_eq!(a.state, EgressAskState::Expired);
    }

    #[test]
    fn an_ask_ahead_cannot_be_allowed_once() {
        let mut a = ask(None);
        assert_eq!(
            a.resolve("op", allow(EgressScope::Once), 1_500),
            Err(EgressAskError::NothingToAllowOnce { id: 7 })
        );
    }

    #[test]
    fn an_ungrantable_ask_is_allowed_only_once() {
        let mut a = ask(Some(EgressProtocol::Connect));
        a.grantable = false;
        assert_eq!(
            a.resolve("op", allow(EgressScope::Sandbox), 1_500),
            Err(EgressAskError::NotGrantable { id: 7 })
        );
    }

    #[test]
    fn a_timed_grant_covers_its_destination_until_it_lapses() {
        let mut g = EgressGrants::default();
        let d = Destination {
            host: "docs.example.org".into(),
            port: 443,
        };
        g.issue(&d, "op", EgressScope::Minutes { minutes: 1 }, None, 0);
        assert!(g.covering(&d, 59_999).is_some());
        let other_port = Destination {
            port: 80,
            ..d.clone()
        };
        assert!(g.covering(&other_port, 1).is_none());
        assert!(g.covering(&d, 60_000).is_none());
    }

    #[test]
    fn a_sandbox_grant_never_lapses_and_once_grants_nothing() {
        let mut g = EgressGrants::default();
        let d = Destination {
            host: "a.test".into(),
            port: 80,
        };
        assert!(g.issue(&d, "op", EgressScope::Once, None, 0).is_none());
        g.issue(&d, "op", EgressScope::Sandbox, None, 0);
        assert!(g.covering(&d, u64::MAX - 1).is_some());
    }

    #[test]
    fn the_scope_reads_as_the_console_sends_it() {
        let r: EgressResolution =
            serde_json::from_str(r#"{"decision":"allow","scope":{"kind":"minutes","minutes":15}}"#)
                .expect("parses");
        assert_eq!(
            r,
            EgressResolution::Allow {
                scope: EgressScope::Minutes { minutes: 15 },
                upload_budget: None,
            }
        );
    }
}
