//! Events published for operator clients (the console, the web UI, tests).
//!
//! Each event has a namespaced topic (`sandbox://{id}/action`, `sandbox://{id}/approval`, …) and a
//! typed payload. Events are small: frames are referenced by hash, never embedded.

use airlock_domain::{Action, Approval, EgressAsk, EgressRecord, Grant, Holder};
use airlock_policy::{Decision, Mode};
use serde::{Serialize, Serializer};
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it misses some.
pub const EVENT_BACKLOG: usize = 1024;

/// Something that happened.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An agent proposed an action and the policy decided.
    ActionDecided {
        /// The sandbox.
        sandbox: String,
        /// The agent.
        agent: String,
        /// What it asked.
        action: Action,
        /// allow / ask / deny (after shadow mode).
        decision: Decision,
        /// Why.
        reason: String,
        /// Whether shadow mode let a denial through.
        shadow_denied: bool,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// An action was carried out (or failed in the guest).
    ActionExecuted {
        /// The sandbox.
        sandbox: String,
        /// `agent` or `operator:<id>`.
        by: By,
        /// What ran.
        action: Action,
        /// Whether it succeeded.
        ok: bool,
        /// Error message when it failed.
        error: Option<String>,
        /// The screen afterwards (blob hash).
        frame_after: Option<String>,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// An agent action was refused (lease, policy, approval).
    ActionRefused {
        /// The sandbox.
        sandbox: String,
        /// The agent.
        agent: String,
        /// Why.
        reason: String,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// An approval waits for an operator.
    ApprovalRequested {
        /// The approval (includes the frame hash shown).
        approval: Approval,
    },
    /// An approval was decided or expired.
    ApprovalResolved {
        /// The approval in its final state.
        approval: Approval,
    },
    /// A connection waits for an operator to allow its destination (or an agent asked ahead); sent
    /// again when another attempt joins the same ask.
    EgressAsked {
        /// The ask.
        ask: EgressAsk,
    },
    /// A network ask was decided or expired.
    EgressResolved {
        /// The ask in its final state.
        ask: EgressAsk,
    },
    /// Something the egress gateway recorded (a decision, a close, refused DNS lookups).
    Egress {
        /// The sandbox.
        sandbox: String,
        /// The ledger record.
        record: EgressRecord,
    },
    /// A time-boxed grant was issued.
    GrantIssued {
        /// The grant.
        grant: Grant,
    },
    /// Control changed hands.
    LeaseChanged {
        /// The sandbox.
        sandbox: String,
        /// Previous holder.
        from: Holder,
        /// New holder.
        to: Holder,
        /// New epoch.
        epoch: u64,
        /// When (Unix ms).
        at_ms: u64,
        /// A hand-back's summary (with the operator's note), as the agent will be given it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        handback: Option<airlock_domain::HandbackSummary>,
    },
    /// An agent asked for a human and waits.
    HumanRequested {
        /// The request.
        request: crate::help::HumanRequest,
    },
    /// A request for a human ended (answered, timed out, abandoned).
    HumanRequestEnded {
        /// The sandbox.
        sandbox: String,
        /// The request.
        request: u64,
        /// How.
        outcome: crate::help::HumanRequestOutcome,
    },
    /// A sandbox appeared, went away or changed state.
    SandboxState {
        /// The sandbox.
        sandbox: String,
        /// Where it stands now.
        state: SandboxState,
        /// Details.
        detail: Option<String>,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// A step of making a sandbox an operator asked for (with a `job` name).
    CreateProgress {
        /// The caller's name for the creation.
        job: String,
        /// What is happening, in a phrase (for `failed`: why).
        step: String,
        /// Still working, failed, or done.
        outcome: CreateOutcome,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// Shadow mode was switched.
    PolicyMode {
        /// The new mode.
        mode: Mode,
        /// By whom.
        by: String,
        /// When (Unix ms).
        at_ms: u64,
    },
}

/// Who carried out an action: on the wire `agent` or `operator:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, ts_rs::TS)]
#[ts(type = "\"agent\" | `operator:${string}`")]
pub enum By {
    /// The agent working in the sandbox.
    Agent,
    /// An operator, by name.
    Operator(String),
}

impl Serialize for By {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            By::Agent => s.serialize_str("agent"),
            By::Operator(name) => s.collect_str(&format_args!("operator:{name}")),
        }
    }
}

/// Where a sandbox stands, as events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    /// It runs under supervision.
    Running,
    /// It was destroyed.
    Destroyed,
    /// Its keeper died; it cannot be driven.
    Lost,
}

impl SandboxState {
    /// The state's name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Running => "running",
            SandboxState::Destroyed => "destroyed",
            SandboxState::Lost => "lost",
        }
    }
}

/// Where the making of a sandbox stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CreateOutcome {
    /// Still under way.
    Working,
    /// It failed (the step says why).
    Failed,
    /// The sandbox runs.
    Running {
        /// Its id.
        sandbox: String,
    },
}

impl Event {
    /// What the event is about: `action`, `approval`, `egress`, `network`, `grant`, `lease`,
    /// `state`, `create` or `policy` (the desktop app forwards each on the channel `airlock://{kind}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ActionDecided { .. } | Event::ActionExecuted { .. } | Event::ActionRefused { .. } => {
                "action"
            }
            Event::ApprovalRequested { .. } | Event::ApprovalResolved { .. } => "approval",
            Event::GrantIssued { .. } => "grant",
            Event::EgressAsked { .. } | Event::EgressResolved { .. } => "egress",
            Event::Egress { .. } => "network",
            Event::LeaseChanged { .. } => "lease",
            Event::HumanRequested { .. } | Event::HumanRequestEnded { .. } => "human",
            Event::SandboxState { .. } => "state",
            Event::CreateProgress { .. } => "create",
            Event::PolicyMode { .. } => "policy",
        }
    }

    /// The sandbox this event is about; `None` for the policy mode and sandbox creation jobs.
    pub fn sandbox(&self) -> Option<&str> {
        match self {
            Event::ActionDecided { sandbox, .. }
            | Event::ActionExecuted { sandbox, .. }
            | Event::ActionRefused { sandbox, .. }
            | Event::Egress { sandbox, .. }
            | Event::LeaseChanged { sandbox, .. }
            | Event::SandboxState { sandbox, .. }
            | Event::HumanRequestEnded { sandbox, .. } => Some(sandbox),
            Event::HumanRequested { request } => Some(&request.sandbox),
            Event::ApprovalRequested { approval } | Event::ApprovalResolved { approval } => {
                Some(&approval.sandbox)
            }
            Event::EgressAsked { ask } | Event::EgressResolved { ask } => Some(&ask.sandbox),
            Event::GrantIssued { grant } => Some(&grant.sandbox),
            Event::PolicyMode { .. } | Event::CreateProgress { .. } => None,
        }
    }
    /// The namespaced topic.
    pub fn topic(&self) -> String {
        match self {
            Event::ActionDecided { sandbox, .. }
            | Event::ActionExecuted { sandbox, .. }
            | Event::ActionRefused { sandbox, .. } => format!("sandbox://{sandbox}/action"),
            Event::ApprovalRequested { approval } | Event::ApprovalResolved { approval } => {
                format!("sandbox://{}/approval", approval.sandbox)
            }
            Event::EgressAsked { ask } | Event::EgressResolved { ask } => {
                format!("sandbox://{}/egress", ask.sandbox)
            }
            Event::Egress { sandbox, .. } => format!("sandbox://{sandbox}/network"),
            Event::GrantIssued { grant } => format!("sandbox://{}/grant", grant.sandbox),
            Event::LeaseChanged { sandbox, .. } => format!("sandbox://{sandbox}/lease"),
            Event::HumanRequested { request } => format!("sandbox://{}/human", request.sandbox),
            Event::HumanRequestEnded { sandbox, .. } => format!("sandbox://{sandbox}/human"),
            Event::SandboxState { sandbox, .. } => format!("sandbox://{sandbox}/state"),
            Event::PolicyMode { .. } => "policy://mode".to_string(),
            Event::CreateProgress { job, .. } => format!("create://{job}"),
        }
    }
}

/// The fan-out of events to subscribers.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            tx: broadcast::channel(EVENT_BACKLOG).0,
        }
    }
}

impl Events {
    /// Publishes; nobody listening is fine.
    pub fn publish(&self, event: Event) {
        tracing::debug!(topic = %event.topic(), "event");
        let _ = self.tx.send(event);
    }

    /// A new subscription (sees events from now on).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
