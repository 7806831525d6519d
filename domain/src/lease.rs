//! The control lease: who drives a sandbox — the agent, a human operator, or nobody (paused).
//!
//! Every change bumps the epoch. Agent actions are admitted only while the agent holds the lease
//! and, when they carry an epoch, only if it is the current one; otherwise they are refused with
//! the reason, never queued.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who holds control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "holder", rename_all = "snake_case")]
pub enum Holder {
    /// The agent drives.
    Agent,
    /// A human operator drives; agent actions are refused.
    Human {
        /// The operator.
        operator: String,
    },
    /// Nobody drives; agent actions are refused until resumed.
    Paused {
        /// Who or what paused it (an operator id, or `approval-expiry`).
        by: String,
    },
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Agent => f.write_str("the agent"),
            Holder::Human { operator } => write!(f, "operator {operator}"),
            Holder::Paused { by } => write!(f, "nobody (paused by {by})"),
        }
    }
}

/// A request to change the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum LeaseCommand {
    /// An operator takes control.
    Take {
        /// The operator.
        operator: String,
    },
    /// The operator holding control gives it back to the agent.
    HandBack {
        /// The operator.
        operator: String,
        /// A note for the agent, shown with its next observation.
        note: Option<String>,
    },
    /// Stop everyone (an operator, or the gateway after an approval expired).
    Pause {
        /// Who pauses.
        by: String,
    },
    /// Give control back to the agent after a pause.
    Resume {
        /// Who resumes.
        by: String,
    },
}

/// What a human did while holding control, told to the agent at its next observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct HandbackSummary {
    /// The operator.
    pub operator: String,
    /// Actions they performed.
    pub actions: u32,
    /// How long they held control.
    pub duration_ms: u64,
    /// The operator's note to the agent, if they left one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Longest handback note kept (characters).
pub const MAX_HANDBACK_NOTE: usize = 1000;

impl fmt::Display for HandbackSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operator {} held control for {:.1} s and performed {} action{}",
            self.operator,
            self.duration_ms as f64 / 1000.0,
            self.actions,
            if self.actions == 1 { "" } else { "s" }
        )?;
        match &self.note {
            Some(note) => write!(f, "; their note: {note}"),
            None => Ok(()),
        }
    }
}

/// A change that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct LeaseChange {
    /// Holder before.
    pub from: Holder,
    /// Holder after.
    pub to: Holder,
    /// The new epoch.
    pub epoch: u64,
    /// When.
    pub at_ms: u64,
}

/// Why a lease command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The command does not apply to the current holder.
    #[error("cannot {command} while {holder} holds control")]
    InvalidTransition {
        /// What was asked.
        command: &'static str,
        /// Who holds control now.
        holder: Holder,
    },
    /// Another operator holds control.
    #[error("operator {holder} holds control, not {requester}")]
    NotHolder {
        /// Who holds it.
        holder: String,
        /// Who asked.
        requester: String,
    },
}

/// Why an agent action was refused by the lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize, ts_rs::TS)]
pub enum Refusal {
    /// A human holds control.
    #[error("operator {operator} has taken control of this sandbox; agent actions are refused until they hand it back (epoch {epoch})")]
    HumanInControl {
        /// The operator.
        operator: String,
        /// Current epoch.
        epoch: u64,
    },
    /// The sandbox is paused.
    #[error("the sandbox is paused by {by}; agent actions are refused until an operator resumes it (epoch {epoch})")]
    Paused {
        /// Who paused it.
        by: String,
        /// Current epoch.
        epoch: u64,
    },
    /// The action was planned under an older lease.
    #[error("the action carries epoch {stamped} but control has changed since; the current epoch is {current}: observe the screen again")]
    StaleEpoch {
        /// The epoch the agent sent.
        stamped: u64,
        /// The current one.
        current: u64,
    },
}

/// The human stint in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stint {
    operator: String,
    since_ms: u64,
    actions: u32,
}

/// The control lease of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    holder: Holder,
    epoch: u64,
    since_ms: u64,
    stint: Option<Stint>,
    handback: Option<HandbackSummary>,
}

impl Lease {
    /// A new lease: the agent holds control at epoch 1.
    pub fn new(now_ms: u64) -> Lease {
        Lease {
            holder: Holder::Agent,
            epoch: 1,
            since_ms: now_ms,
            stint: None,
            handback: None,
        }
    }

    /// Who holds control.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Since when the holder holds it.
    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// Applies a command, or says why it does not apply.
    pub fn apply(&mut self, cmd: &LeaseCommand, now_ms: u64) -> Result<LeaseChange, LeaseError> {
        let invalid = |command: &'static str, holder: &Holder| {
            Err(LeaseError::InvalidTransition {
                command,
                holder: holder.clone(),
            })
        };
        let next = match (&self.holder, cmd) {
            (Holder::Agent | Holder::Paused { .. }, LeaseCommand::Take { operator }) => Holder::Human {
                operator: operator.clone(),
            },
            (Holder::Human { operator: holder }, LeaseCommand::Take { operator }) => {
                return Err(LeaseError::NotHolder {
                    holder: holder.clone(),
                    requester: operator.clone(),
                })
            }
            (Holder::Human { operator: holder }, LeaseCommand::HandBack { operator, .. }) => {
                if holder != operator {
                    return Err(LeaseError::NotHolder {
                        holder: holder.clone(),
                        requester: operator.clone(),
                    });
                }
                Holder::Agent
            }
            (Holder::Agent | Holder::Paused { .. }, LeaseCommand::HandBack { .. }) => {
                return invalid("hand back", &self.holder)
            }
            (Holder::Agent | Holder::Human { .. }, LeaseCommand::Pause { by }) => {
                Holder::Paused { by: by.clone() }
            }
            (Holder::Paused { .. }, LeaseCommand::Pause { .. }) => return invalid("pause", &self.holder),
            (Holder::Paused { .. }, LeaseCommand::Resume { .. }) => Holder::Agent,
            (Holder::Agent | Holder::Human { .. }, LeaseCommand::Resume { .. }) => {
                return invalid("resume", &self.holder)
            }
        };
        // A human stint ends whenever the holder stops being that human; its summary waits for
        // the agent's next observation (a later stint's summary replaces an unread one).
        if let Some(stint) = self.stint.take() {
            let note = match cmd {
                LeaseCommand::HandBack { note, .. } => note
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| n.chars().take(MAX_HANDBACK_NOTE).collect()),
                LeaseCommand::Take { .. } | LeaseCommand::Pause { .. } | LeaseCommand::Resume { .. } => None,
            };
            self.handback = Some(HandbackSummary {
                operator: stint.operator,
                actions: stint.actions,
                duration_ms: now_ms.saturating_sub(stint.since_ms),
                note,
            });
        }
        if let Holder::Human { operator } = &next {
            self.stint = Some(Stint {
                operator: operator.clone(),
                since_ms: now_ms,
                actions: 0,
            });
        }
        let from = std::mem::replace(&mut self.holder, next);
        self.epoch += 1;
        self.since_ms = now_ms;
        Ok(LeaseChange {
            from,
            to: self.holder.clone(),
            epoch: self.epoch,
            at_ms: now_ms,
        })
    }

    /// Admits an agent action stamped with `epoch` (if the agent sent one), or says why not.
    pub fn admit_agent(&self, epoch: Option<u64>) -> Result<(), Refusal> {
        match &self.holder {
            Holder::Human { operator } => Err(Refusal::HumanInControl {
                operator: operator.clone(),
                epoch: self.epoch,
            }),
            Holder::Paused { by } => Err(Refusal::Paused {
                by: by.clone(),
                epoch: self.epoch,
            }),
            Holder::Agent => match epoch {
                Some(stamped) if stamped != self.epoch => Err(Refusal::StaleEpoch {
                    stamped,
                    current: self.epoch,
                }),
                Some(_) | None => Ok(()),
            },
        }
    }

    /// Admits an operator's input: only the operator holding control may drive.
    /// Checks that `operator` holds control without counting an action (pointer motion, key
    /// releases: the parts of an input stream that are not actions of their own).
    pub fn check_human(&self, operator: &str) -> Result<(), LeaseError> {
        match &self.holder {
            Holder::Human { operator: holder } if holder == operator && self.stint.is_some() => Ok(()),
            Holder::Human { operator: holder } => Err(LeaseError::NotHolder {
                holder: holder.clone(),
                requester: operator.to_string(),
            }),
            Holder::Agent | Holder::Paused { .. } => Err(LeaseError::InvalidTransition {
                command: "send operator input",
                holder: self.holder.clone(),
            }),
        }
    }

    /// Admits one operator action (they must hold control) and counts it for the handback summary.
    pub fn admit_human(&mut self, operator: &str) -> Result<(), LeaseError> {
        match (&self.holder, self.stint.as_mut()) {
            (Holder::Human { operator: holder }, Some(stint)) if holder == operator => {
                stint.actions = stint.actions.saturating_add(1);
                Ok(())
            }
            (Holder::Human { operator: holder }, _) => Err(LeaseError::NotHolder {
                holder: holder.clone(),
                requester: operator.to_string(),
            }),
            (Holder::Agent | Holder::Paused { .. }, _) => Err(LeaseError::InvalidTransition {
                command: "send operator input",
                holder: self.holder.clone(),
            }),
        }
    }

    /// Whether a handback summary waits for the agent.
    pub fn has_handback(&self) -> bool {
        self.handback.is_some()
    }

    /// The summary of the last human stint waiting for the agent, left in place.
    pub fn pending_handback(&self) -> Option<&HandbackSummary> {
        self.handback.as_ref()
    }

    /// Takes the summary of the last human stint, once.
    pub fn take_handback(&mut self) -> Option<HandbackSummary> {
        self.handback.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(op: &str) -> LeaseCommand {
        LeaseCommand::Take { operator: op.into() }
    }

    fn back(op: &str) -> LeaseCommand {
        LeaseCommand::HandBack {
            operator: op.into(),
            note: None,
        }
    }

    #[test]
    fn takeover_refuses_agent_and_handback_summarises() {
        let mut l = Lease::new(0);
        assert_eq!(l.admit_agent(Some(1)), Ok(()));
        let c = l.apply(&take("alice"), 1_000).unwrap();
        assert_eq!(
            (c.epoch, c.to.clone()),
            (
                2,
                Holder::Human {
                    operator: "alice".into()
                }
            )
        );
        let r = l.admit_agent(None).unwrap_err();
        assert!(r.to_string().contains("operator alice has taken control"), "{r}");
        l.admit_human("alice").unwrap();
        l.admit_human("alice").unwrap();
        assert!(l.admit_human("bob").is_err());
        assert!(matches!(
            l.apply(&back("bob"), 2_000),
            Err(LeaseError::NotHolder { .. })
        ));
        l.apply(&back("alice"), 13_500).unwrap();
        assert_eq!(l.epoch(), 3);
        // An action planned before the takeover is stale.
        assert_eq!(
            l.admit_agent(Some(1)),
            Err(Refusal::StaleEpoch {
                stamped: 1,
                current: 3
            })
        );
        assert_eq!(l.admit_agent(Some(3)), Ok(()));
        let s = l.take_handback().unwrap();
        assert_eq!(
            s,
            HandbackSummary {
                operator: "alice".into(),
                actions: 2,
                duration_ms: 12_500,
                note: None,
            }
        );
        assert_eq!(
            s.to_string(),
            "operator alice held control for 12.5 s and performed 2 actions"
        );
        assert_eq!(l.take_handback(), None);
    }

    #[test]
    fn every_transition_is_decided() {
        let holders = [
            Holder::Agent,
            Holder::Human {
                operator: "alice".into(),
            },
            Holder::Paused { by: "alice".into() },
        ];
        let cmds = [
            take("bob"),
            back("alice"),
            LeaseCommand::Pause { by: "x".into() },
            LeaseCommand::Resume { by: "x".into() },
        ];
        let mut ok = 0;
        for h in &holders {
            for c in &cmds {
                let mut l = Lease::new(0);
                match h {
                    Holder::Agent => {}
                    Holder::Human { operator } => {
                        l.apply(&take(operator), 0).unwrap();
                    }
                    Holder::Paused { by } => {
                        l.apply(&LeaseCommand::Pause { by: by.clone() }, 0).unwrap();
                    }
                }
                let before = l.epoch();
                match l.apply(c, 5) {
                    Ok(change) => {
                        ok += 1;
                        assert_eq!(change.epoch, before + 1);
                    }
                    Err(e) => {
                        assert_eq!(l.epoch(), before, "{e}");
                        assert!(!e.to_string().is_empty());
                    }
                }
            }
        }
        // take from agent/paused, handback by holder, pause from agent/human, resume from paused.
        assert_eq!(ok, 6);
    }

    #[test]
    fn pause_refuses_agent_and_resume_admits() {
        let mut l = Lease::new(0);
        l.apply(
            &LeaseCommand::Pause {
                by: "approval-expiry".into(),
            },
            10,
        )
        .unwrap();
        let r = l.admit_agent(None).unwrap_err();
        assert!(r.to_string().contains("paused by approval-expiry"), "{r}");
        l.apply(&LeaseCommand::Resume { by: "alice".into() }, 20).unwrap();
        assert_eq!(l.admit_agent(Some(3)), Ok(()));
        assert!(!l.has_handback());
    }

    #[test]
    fn a_handback_note_reaches_the_summary_trimmed_and_bounded() {
        let mut lease = Lease::new(0);
        lease.apply(&take("alice"), 1_000).unwrap();
        let back = |note: &str| LeaseCommand::HandBack {
            operator: "alice".into(),
            note: Some(note.into()),
        };
        lease.apply(&back("  the form is half filled  "), 2_000).unwrap();
        let s = lease.take_handback().expect("summary");
        assert_eq!(s.note.as_deref(), Some("the form is half filled"));
        assert!(
            s.to_string().ends_with("; their note: the form is half filled"),
            "{s}"
        );
        lease.apply(&take("alice"), 3_000).unwrap();
        lease.apply(&back("   "), 4_000).unwrap();
        assert_eq!(lease.take_handback().expect("summary").note, None);
        lease.apply(&take("alice"), 5_000).unwrap();
        lease.apply(&back(&"x".repeat(5000)), 6_000).unwrap();
        assert_eq!(
            lease
                .take_handback()
                .expect("summary")
                .note
                .map(|n| n.chars().count()),
            Some(MAX_HANDBACK_NOTE)
        );
    }
}
