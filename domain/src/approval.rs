//! Approvals: an "ask" decision waits for an operator, bound to the frame they were shown.
//!
//! `pending → approved | edited | denied | expired`; expiry counts as deny. Time-boxed grants
//! ("allow this kind for this session for N minutes") let later asks of the same kind through.

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionKind};

/// Longest a grant may last.
pub const MAX_GRANT_MINUTES: u32 = 24 * 60;

/// Where an approval stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for an operator.
    Pending,
    /// Approved as asked.
    Approved {
        /// The operator.
        by: String,
    },
    /// Approved with changed coordinates or text.
    Edited {
        /// The operator.
        by: String,
        /// What will run instead.
        action: Action,
    },
    /// Refused by an operator.
    Denied {
        /// The operator.
        by: String,
        /// Their reason, if they gave one.
        reason: Option<String>,
    },
    /// Nobody decided in time: counts as deny.
    Expired,
}

impl ApprovalState {
    /// The state's name.
    pub fn name(&self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved { .. } => "approved",
            ApprovalState::Edited { .. } => "edited",
            ApprovalState::Denied { .. } => "denied",
            ApprovalState::Expired => "expired",
        }
    }
}

/// An operator's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "decision", rename_all = "snake_case", deny_unknown_fields)]
pub enum Resolution {
    /// Run it as asked.
    Approve {
        /// Also allow this kind of action in this sandbox for this many minutes.
        #[serde(default)]
        grant_minutes: Option<u32>,
    },
    /// Run this instead (same kind, changed coordinates or text).
    Edit {
        /// The replacement.
        action: Action,
    },
    /// Refuse it.
    Deny {
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
}

/// Why a resolution was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// It was already decided.
    #[error("approval {id} is already {state}")]
    AlreadyResolved {
        /// The approval.
        id: u64,
        /// Its state.
        state: &'static str,
    },
    /// Its deadline passed.
    #[error("approval {id} expired before the decision arrived")]
    Expired {
        /// The approval.
        id: u64,
    },
    /// The edit changed the kind of action.
    #[error("an edit must keep the action's kind: {asked} cannot become {edited}")]
    EditChangesKind {
        /// Kind asked.
        asked: ActionKind,
        /// Kind of the edit.
        edited: ActionKind,
    },
    /// A grant's length is out of range.
    #[error("a grant lasts 1 to {MAX_GRANT_MINUTES} minutes, not {0}")]
    GrantLength(u32),
    /// The policy says this ask is never granted ahead.
    #[error("approval {id} cannot be granted ahead (\"allow similar\"): the policy asks about each one on its own; approve it without a grant")]
    NotGrantable {
        /// The approval.
        id: u64,
    },
}

/// Why an approved action may not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the screen changed after the operator approved (approved frame {approved}, current frame {current}); the approval is void and the action must be asked again")]
pub struct FrameChanged {
    /// Hash of the frame the operator saw.
    pub approved: String,
    /// Hash of the frame now.
    pub current: String,
}

/// The frame an operator is shown with an ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Content hash of its pixels (what the approval is bound to).
    pub frame: String,
    /// The ledger blob holding it as PNG.
    pub png: String,
}

/// One ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Approval {
    /// Unique within the supervisor.
    pub id: u64,
    /// The sandbox.
    pub sandbox: String,
    /// What the agent asked to do.
    pub action: Action,
    /// Content hash of the frame shown to the operator — the hash the approval is bound to (SHA-256
    /// over the RGBA pixels, the same hash the streaming mirror gives its frames).
    pub frame: String,
    /// The ledger blob holding that frame as PNG (what an operator's console displays).
    pub frame_png: String,
    /// The policy's reasons for asking (the `@id`s of the rules that asked).
    pub reasons: Vec<String>,
    /// The policy's sentence for why it asks, for the operator (empty when not given).
    #[serde(default)]
    pub reason: String,
    /// What the keystrokes do in a terminal, when they submit command lines or paste there: the
    /// command lines are what the policy judged and what the operator decides on.
    #[serde(default)]
    pub terminal: Option<TerminalInput>,
    /// Whether "allow similar" may grant this kind ahead (not for asks the policy marks
    /// `@grant("never")`: unparsed lines, pastes, recursive deletes, another user...).
    #[serde(default = "yes")]
    pub grantable: bool,
    /// When it was asked.
    pub requested_ms: u64,
    /// When it expires.
    pub deadline_ms: u64,
    /// Where it stands.
    pub state: ApprovalState,
}

/// The kind a grant covers for an action of `kind`: terminal commands when its keystrokes submit
/// or paste into a terminal (a grant never widens to all typing), else its own kind.
pub fn grant_kind(kind: ActionKind, into_terminal: bool) -> ActionKind {
    match into_terminal {
        true => ActionKind::TerminalCommand,
        false => kind,
    }
}

fn yes() -> bool {
    true
}

/// Keystrokes into a terminal, as the gateway understood them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct TerminalInput {
    /// The terminal window's title.
    pub window: String,
    /// The lines the keystrokes submit, in order.
    pub lines: Vec<TerminalLine>,
    /// What a paste would insert, when the keystrokes paste.
    pub paste: Option<Paste>,
}

/// One submitted line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct TerminalLine {
    /// The command line the shell will run (as far as the gateway knows it).
    pub text: String,
    /// Why the gateway cannot know the whole line (history recall, completion, a paste, an
    /// operator's typing), or `None` when it is known exactly.
    pub unknown: Option<String>,
    /// Why it cannot be parsed as a command (unbalanced quotes, a here-document), if so.
    pub unparsed: Option<String>,
}

/// A paste into a terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Paste {
    /// Where it comes from: `primary` (the selection) or `clipboard`.
    pub source: String,
    /// What the guest's selection or clipboard holds.
    pub text: String,
    /// Whether the text was cut to the read limit.
    pub truncated: bool,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
}

/// What a resolution leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Run this action (the original or the edit).
    Run(Action),
    /// Do not run it.
    Refuse,
}

impl Approval {
    /// A new pending approval.
    pub fn new(
        id: u64,
        sandbox: String,
        action: Action,
        shown: Shown,
        reasons: Vec<String>,
        now_ms: u64,
        timeout_ms: u64,
    ) -> Approval {
        Approval {
            id,
            sandbox,
            action,
            frame: shown.frame,
            frame_png: shown.png,
            reasons,
            reason: String::new(),
            terminal: None,
            grantable: true,
            requested_ms: now_ms,
            deadline_ms: now_ms.saturating_add(timeout_ms),
            state: ApprovalState::Pending,
        }
    }

    /// The kind a grant from this approval covers: terminal commands when the keystrokes submitted
    /// or pasted into a terminal (a grant never widens to all typing), else the action's kind.
    pub fn grant_kind(&self) -> ActionKind {
        grant_kind(self.action.kind(), self.terminal.is_some())
    }

    /// Applies an operator's decision.
    pub fn resolve(
        &mut self,
        operator: &str,
        resolution: Resolution,
        now_ms: u64,
    ) -> Result<Outcome, ApprovalError> {
        match self.state {
            ApprovalState::Pending => {}
            ApprovalState::Approved { .. }
            | ApprovalState::Edited { .. }
            | ApprovalState::Denied { .. }
            | ApprovalState::Expired => {
                return Err(ApprovalError::AlreadyResolved {
                    id: self.id,
                    state: self.state.name(),
                })
            }
        }
        if now_ms >= self.deadline_ms {
            self.state = ApprovalState::Expired;
            return Err(ApprovalError::Expired { id: self.id });
        }
        let by = operator.to_string();
        let (state, outcome) = match resolution {
            Resolution::Approve { grant_minutes } => {
                if let Some(m) = grant_minutes {
                    if !self.grantable {
                        return Err(ApprovalError::NotGrantable { id: self.id });
                    }
                    if m == 0 || m > MAX_GRANT_MINUTES {
                        return Err(ApprovalError::GrantLength(m));
                    }
                }
                (ApprovalState::Approved { by }, Outcome::Run(self.action.clone()))
            }
            Resolution::Edit { action } => {
                if !self.action.same_kind(&action) {
                    return Err(ApprovalError::EditChangesKind {
                        asked: self.action.kind(),
                        edited: action.kind(),
                    });
                }
                (
                    ApprovalState::Edited {
                        by,
                        action: action.clone(),
                    },
                    Outcome::Run(action),
                )
            }
            Resolution::Deny { reason } => (ApprovalState::Denied { by, reason }, Outcome::Refuse),
        };
        self.state = state;
        Ok(outcome)
    }

    /// Expires a pending approval whose deadline has passed; returns whether it just expired.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        match self.state {
            ApprovalState::Pending if now_ms >= self.deadline_ms => {
                self.state = ApprovalState::Expired;
                true
            }
            ApprovalState::Pending
            | ApprovalState::Approved { .. }
            | ApprovalState::Edited { .. }
            | ApprovalState::Denied { .. }
            | ApprovalState::Expired => false,
        }
    }

    /// Checks, just before running, that the screen is still the one the operator approved.
    pub fn check_frame(&self, current: &str) -> Result<(), FrameChanged> {
        if self.frame == current {
            Ok(())
        } else {
            Err(FrameChanged {
                approved: self.frame.clone(),
                current: current.to_string(),
            })
        }
    }
}

/// A time-boxed permission for one kind of action in one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Grant {
    /// The sandbox.
    pub sandbox: String,
    /// The kind it covers.
    pub kind: ActionKind,
    /// Who granted it.
    pub by: String,
    /// When it was granted.
    pub from_ms: u64,
    /// When it lapses.
    pub until_ms: u64,
}

impl Grant {
    /// A grant by `by` of `kind` in `sandbox` for `minutes` from `now_ms` (not yet in force: see
    /// [`Grants::add`]).
    pub fn lasting(sandbox: &str, kind: ActionKind, by: &str, minutes: u32, now_ms: u64) -> Grant {
        Grant {
            sandbox: sandbox.to_string(),
            kind,
            by: by.to_string(),
            from_ms: now_ms,
            until_ms: now_ms.saturating_add(u64::from(minutes) * 60_000),
        }
    }
}

/// The grants of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    grants: Vec<Grant>,
}

impl Grants {
    /// Records a grant of `minutes`.
    pub fn issue(&mut self, sandbox: &str, kind: ActionKind, by: &str, minutes: u32, now_ms: u64) -> Grant {
        let g = Grant::lasting(sandbox, kind, by, minutes, now_ms);
        self.add(g.clone());
        g
    }

    /// Adds a grant made with [`Grant::lasting`].
    pub fn add(&mut self, grant: Grant) {
        self.grants.push(grant);
    }

    /// The grant covering `kind` in `sandbox` at `now`, if any (lapsed grants are dropped).
    pub fn covering(&mut self, sandbox: &str, kind: ActionKind, now_ms: u64) -> Option<&Grant> {
        self.grants.retain(|g| now_ms < g.until_ms);
        self.grants
            .iter()
            .find(|g| g.sandbox == sandbox && g.kind == kind)
    }

    /// The grants still in force.
    pub fn active(&self, now_ms: u64) -> Vec<Grant> {
        self.grants
            .iter()
            .filter(|g| now_ms < g.until_ms)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{MouseButton, Point};

    fn click(x: u16) -> Action {
        Action::Click {
            at: Some(Point { x, y: 10 }),
            button: MouseButton::Left,
            count: 1,
            hold: None,
        }
    }

    fn pending(now: u64) -> Approval {
        Approval::new(
            7,
            "sb".into(),
            click(5),
            Shown {
                frame: "f1".into(),
                png: "png1".into(),
            },
            vec!["rule".into()],
            now,
            30_000,
        )
    }

    #[test]
    fn approve_edit_deny() {
        let mut a = pending(0);
        assert_eq!(
            a.resolve("alice", Resolution::Approve { grant_minutes: None }, 1),
            Ok(Outcome::Run(click(5)))
        );
        assert_eq!(a.state, ApprovalState::Approved { by: "alice".into() });
        let e = a
            .resolve("bob", Resolution::Deny { reason: None }, 2)
            .unwrap_err();
        assert_eq!(e.to_string(), "approval 7 is already approved");

        let mut a = pending(0);
        assert_eq!(
            a.resolve("alice", Resolution::Edit { action: click(9) }, 1),
            Ok(Outcome::Run(click(9)))
        );
        let mut a = pending(0);
        let e = a
            .resolve(
                "alice",
                Resolution::Edit {
                    action: Action::Screenshot,
                },
                1,
            )
            .unwrap_err();
        assert!(matches!(e, ApprovalError::EditChangesKind { .. }));
        assert_eq!(a.state, ApprovalState::Pending);
        assert_eq!(
            a.resolve(
                "alice",
                Resolution::Deny {
                    reason: Some("no".into())
                },
                1
            ),
            Ok(Outcome::Refuse)
        );
        let mut a = pending(0);
        assert!(matches!(
            a.resolve(
                "alice",
                Resolution::Approve {
                    grant_minutes: Some(0)
                },
                1
            ),
            Err(ApprovalError::GrantLength(0))
        ));
    }

    #[test]
    fn an_ask_the_policy_never_grants_refuses_a_grant_but_can_be_approved() {
        let mut a = pending(0);
        a.grantable = false;
        let e = a
            .resolve(
                "alice",
                Resolution::Approve {
                    grant_minutes: Some(5),
                },
                1,
            )
            .unwrap_err();
        assert_eq!(e, ApprovalError::NotGrantable { id: 7 });
        assert_eq!(a.state, ApprovalState::Pending);
        assert_eq!(
            a.resolve("alice", Resolution::Approve { grant_minutes: None }, 1),
            Ok(Outcome::Run(click(5)))
        );
    }

    #[test]
    fn keystrokes_into_a_terminal_grant_terminal_commands_not_typing() {
        let mut a = pending(0);
        assert_eq!(a.grant_kind(), ActionKind::Click);
        a.terminal = Some(TerminalInput {
            window: "terminal".into(),
            lines: Vec::new(),
            paste: None,
        });
        assert_eq!(a.grant_kind(), ActionKind::TerminalCommand);
    }

    #[test]
    fn expiry_counts_as_deny() {
        let mut a = pending(1_000);
        assert!(!a.expire(30_999));
        assert!(a.expire(31_000));
        assert!(!a.expire(31_001), "expires once");
        assert_eq!(a.state, ApprovalState::Expired);
        let mut a = pending(1_000);
        let e = a
            .resolve("alice", Resolution::Approve { grant_minutes: None }, 31_000)
            .unwrap_err();
        assert_eq!(e, ApprovalError::Expired { id: 7 });
        assert_eq!(a.state, ApprovalState::Expired);
    }

    #[test]
    fn approval_is_void_when_the_screen_changed() {
        let a = pending(0);
        assert!(a.check_frame("f1").is_ok());
        let e = a.check_frame("f2").unwrap_err();
        assert!(e.to_string().contains("void"), "{e}");
    }

    #[test]
    fn grants_are_time_boxed_and_scoped() {
        let mut g = Grants::default();
        g.issue("sb", ActionKind::Exec, "alice", 5, 1_000);
        assert!(g.covering("sb", ActionKind::Exec, 1_000).is_some());
        assert!(g.covering("sb", ActionKind::Exec, 300_999).is_some());
        assert!(g.covering("other", ActionKind::Exec, 2_000).is_none());
        assert!(g.covering("sb", ActionKind::Type, 2_000).is_none());
        assert!(
            g.covering("sb", ActionKind::Exec, 301_000).is_none(),
            "lapsed after 5 minutes"
        );
        assert!(g.active(301_000).is_empty());
    }
}
