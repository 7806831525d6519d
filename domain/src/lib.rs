//! Pure supervision core: the action model, the control lease, approvals and grants.
//!
//! Nothing here does I/O or reads a clock: every function that depends on time takes `now_ms`
//! (milliseconds since the Unix epoch), so tests run faster than real time and never flake.
//!
//! ```
//! use airlock_domain::{Action, Lease, LeaseCommand, Screen};
//! let screen = Screen { width: 1280, height: 800 };
//! let click = Action::from_anthropic(&serde_json::json!({"action": "left_click", "coordinate": [10, 20]}), screen)?;
//! let mut lease = Lease::new(0);
//! lease.apply(&LeaseCommand::Take { operator: "alice".into() }, 1_000)?;
//! assert!(lease.admit_agent(None).is_err(), "a human holds control: {click:?} is refused");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod access;
pub mod action;
pub mod approval;
pub mod egress;
pub mod help;
pub mod lease;
pub mod viewing;

pub use access::{
    Forbidden, LinkError, LinkRefused, Links, Permission, Principal, Role, Scope, UnknownRole, ViewLink,
    LINK_DEFAULT_TTL_MS, LINK_MAX_TTL_MS,
};
pub use action::{Action, ActionError, ActionKind, GuestExecError, MouseButton, Point, Region, Screen};
pub use approval::{
    grant_kind, Approval, ApprovalError, ApprovalState, FrameChanged, Grant, Grants, Outcome, Paste,
    Resolution, Shown, TerminalInput, TerminalLine,
};
pub use egress::{
    Destination, DestinationView, DnsGroup, EgressAsk, EgressAskError, EgressAskState, EgressGrant,
    EgressGrants, EgressOutcome, EgressProtocol, EgressRecord, EgressResolution, EgressScope, NetworkView,
    OverBudget,
};
pub use help::{HelpKind, DEFAULT_HELP_WAIT_MS, MAX_HELP_REASON, MAX_HELP_WAIT_MS};
pub use lease::{HandbackSummary, Holder, Lease, LeaseChange, LeaseCommand, LeaseError, Refusal};
pub use viewing::TransportKind;
