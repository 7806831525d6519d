//! One task per sandbox owns its control lease, pending approvals and grants. Everyone else —
//! the gateway, the operator API — sends it typed requests and awaits the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use airlock_domain::{
    ActionKind, Approval, ApprovalError, ApprovalState, Grant, Grants, HandbackSummary, Holder, Lease,
    LeaseChange, LeaseCommand, LeaseError, Outcome, Refusal, Resolution, Screen,
};
use airlock_ledger::{Actor, Digest, Draft, Ledger};
use airlock_policy::Decision;
use airlock_records::{ApprovalRequested, ApprovalResolved, GrantIssued, LeaseChanged, Record};
use airlock_sandbox::GuestClient;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn, Instrument};

use crate::events::{Event, Events};
use crate::now_ms;

/// Who pauses a session when an approval expires.
pub const EXPIRY_PAUSER: &str = "approval-expiry";

/// What the lease said to an agent action.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The epoch the action runs under.
    pub epoch: u64,
    /// The summary of a human stint the agent has not seen yet: the action is not performed,
    /// the agent gets a fresh screenshot and this note instead.
    pub handback: Option<HandbackSummary>,
}

/// How an ask ended.
#[derive(Debug, Clone)]
pub enum AskEnd {
    /// An operator decided.
    Decided {
        /// The approval in its final state.
        approval: Approval,
        /// Run (the original or the edit) or refuse.
        outcome: Outcome,
    },
    /// Nobody decided in time: counts as deny, and the agent is paused.
    Expired {
        /// The approval.
        approval: Approval,
    },
    /// The session ended while waiting.
    Closed,
    /// The ask could not be recorded, so no operator was asked.
    Unrecorded(Unrecorded),
}

/// The session could not record a step on the ledger, so it did not take it: the ledger is the
/// record, and nothing it does not hold may happen.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit ledger could not record it, so it was not done")]
pub struct Unrecorded(#[source] pub Arc<dyn std::error::Error + Send + Sync>);

/// Why a lease command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum LeaseChangeError {
    /// The lease refused it.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// It could not be recorded.
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
}

/// A snapshot of a session for operator clients.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct SessionView {
    /// The sandbox.
    pub sandbox: String,
    /// Screen size.
    pub screen: Screen,
    /// Who holds control.
    pub holder: Holder,
    /// The lease epoch.
    pub epoch: u64,
    /// Pending approvals.
    pub pending: Vec<Approval>,
    /// Grants in force.
    pub grants: Vec<Grant>,
}

enum Msg {
    Admit {
        epoch: Option<u64>,
        reply: oneshot::Sender<Result<Admission, Refusal>>,
    },
    BeginExecute {
        epoch: u64,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    CheckGrant {
        kind: ActionKind,
        reply: oneshot::Sender<Option<Grant>>,
    },
    Ask {
        approval: Box<Approval>,
        reply: oneshot::Sender<AskEnd>,
    },
    Resolve {
        id: u64,
        operator: String,
        resolution: Resolution,
        reply: oneshot::Sender<Result<Approval, ResolveError>>,
    },
    Lease {
        cmd: LeaseCommand,
        reply: oneshot::Sender<Result<LeaseChange, LeaseChangeError>>,
    },
    HumanAdmit {
        operator: String,
        count: bool,
        reply: oneshot::Sender<Result<u64, LeaseError>>,
    },
    View {
        reply: oneshot::Sender<SessionView>,
    },
}

/// Why an operator's decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No pending approval has this id in this sandbox.
    #[error("no pending approval {0} in this sandbox")]
    Unknown(u64),
    /// It was decided (or expired) before this decision arrived.
    #[error("approval {id} is no longer pending: it {outcome}")]
    Decided {
        /// The approval.
        id: u64,
        /// What happened to it, as a phrase (`was denied by ada`, `expired`).
        outcome: String,
    },
    /// The approval refused the resolution.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// The decision could not be recorded, so it was not taken (the approval is still pending).
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
}

/// The session task has stopped.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the session of sandbox {0} has ended")]
pub struct SessionGone(pub String);

/// A handle to a session task.
#[derive(Debug, Clone)]
pub struct Session {
    /// The sandbox id.
    pub id: String,
    /// Its screen.
    pub screen: Screen,
    /// Its guest connection (requests are multiplexed; the session owns the state around them).
    pub guest: Arc<GuestClient>,
    /// The line the agent has typed into each terminal window. Held from judging a keystroke until
    /// it was sent, so keystrokes are judged in the order they reach the guest and two concurrent
    /// calls cannot split a command between them.
    pub terminals: Arc<tokio::sync::Mutex<airlock_shell::Terminals>>,
    tx: mpsc::Sender<Msg>,
}

impl Session {
    /// Starts the task for a sandbox.
    pub fn start(id: String, screen: Screen, guest: GuestClient, ledger: Ledger, events: Events) -> Session {
        let (tx, rx) = mpsc::channel(256);
        let owner = Owner {
            id: id.clone(),
            screen,
            lease: Lease::new(now_ms()),
            pending: HashMap::new(),
            decided: std::collections::VecDeque::new(),
            grants: Grants::default(),
            ledger,
            events,
        };
        let span = tracing::info_span!("session", sandbox = %id);
        tokio::spawn(owner.run(rx).instrument(span));
        Session {
            id,
            screen,
            guest: Arc::new(guest),
            terminals: Arc::new(tokio::sync::Mutex::new(airlock_shell::Terminals::default())),
            tx,
        }
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T, SessionGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| SessionGone(self.id.clone()))?;
        rx.await.map_err(|_| SessionGone(self.id.clone()))
    }

    /// Lease check for an agent action.
    pub async fn admit(&self, epoch: Option<u64>) -> Result<Result<Admission, Refusal>, SessionGone> {
        self.call(|reply| Msg::Admit { epoch, reply }).await
    }

    /// Re-checks, just before execution, that the lease is still at `epoch` with the agent.
    pub async fn begin_execute(&self, epoch: u64) -> Result<Result<(), Refusal>, SessionGone> {
        self.call(|reply| Msg::BeginExecute { epoch, reply }).await
    }

    /// A grant covering this kind of action now, if any.
    pub async fn grant_for(&self, kind: ActionKind) -> Result<Option<Grant>, SessionGone> {
        self.call(|reply| Msg::CheckGrant { kind, reply }).await
    }

    /// Registers an approval and waits until it is decided or expires.
    pub async fn ask(&self, approval: Approval) -> Result<AskEnd, SessionGone> {
        self.call(|reply| Msg::Ask {
            approval: Box::new(approval),
            reply,
        })
        .await
    }

    /// An operator decides a pending approval.
    pub async fn resolve(
        &self,
        id: u64,
        operator: &str,
        resolution: Resolution,
    ) -> Result<Result<Approval, ResolveError>, SessionGone> {
        let operator = operator.to_string();
        self.call(|reply| Msg::Resolve {
            id,
            operator,
            resolution,
            reply,
        })
        .await
    }

    /// Applies a lease command.
    pub async fn lease(
        &self,
        cmd: LeaseCommand,
    ) -> Result<Result<LeaseChange, LeaseChangeError>, SessionGone> {
        self.call(|reply| Msg::Lease { cmd, reply }).await
    }

    /// Admits an operator's input (they must hold control); returns the epoch.
    pub async fn admit_human(&self, operator: &str) -> Result<Result<u64, LeaseError>, SessionGone> {
        let operator = operator.to_string();
        self.call(|reply| Msg::HumanAdmit {
            operator,
            count: true,
            reply,
        })
        .await
    }

    /// Checks that an operator holds control, without counting an action (pointer motion, key
    /// and button releases); returns the epoch.
    pub async fn check_human(&self, operator: &str) -> Result<Result<u64, LeaseError>, SessionGone> {
        let operator = operator.to_string();
        self.call(|reply| Msg::HumanAdmit {
            operator,
            count: false,
            reply,
        })
        .await
    }

    /// The session's state.
    pub async fn view(&self) -> Result<SessionView, SessionGone> {
        self.call(|reply| Msg::View { reply }).await
    }
}

struct PendingAsk {
    approval: Approval,
    reply: oneshot::Sender<AskEnd>,
}

struct Owner {
    id: String,
    screen: Screen,
    lease: Lease,
    pending: HashMap<u64, PendingAsk>,
    /// The latest decided approvals (oldest first, at most [`DECIDED_KEPT`]), so a late decision is
    /// told what happened instead of "unknown".
    decided: std::collections::VecDeque<Approval>,
    grants: Grants,
    ledger: Ledger,
    events: Events,
}

/// How many decided approvals a session remembers for late decisions.
const DECIDED_KEPT: usize = 256;

/// What happened to a decided approval, as a phrase after "it".
fn outcome_phrase(state: &ApprovalState) -> String {
    match state {
        ApprovalState::Pending => "is still pending".to_string(),
        ApprovalState::Approved { by } => format!("was approved by {by}"),
        ApprovalState::Edited { by, .. } => format!("was edited and approved by {by}"),
        ApprovalState::Denied { by, .. } => format!("was denied by {by}"),
        ApprovalState::Expired => "expired (which counts as a denial)".to_string(),
    }
}

impl Owner {
    /// Publishes a decided approval and remembers it for late decisions.
    fn resolved(&mut self, approval: Approval) {
        if self.decided.len() == DECIDED_KEPT {
            self.decided.pop_front();
        }
        self.decided.push_back(approval.clone());
        self.events.publish(Event::ApprovalResolved { approval });
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        loop {
            let next_deadline = self.pending.values().map(|p| p.approval.deadline_ms).min();
            let sleep = async {
                match next_deadline {
                    Some(d) => tokio::time::sleep(Duration::from_millis(d.saturating_sub(now_ms()))).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg).await,
                    None => break,
                },
                () = sleep => self.expire(now_ms()).await,
            }
        }
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(AskEnd::Closed);
        }
        info!("session ended");
    }

    async fn handle(&mut self, msg: Msg) {
        let now = now_ms();
        match msg {
            Msg::Admit { epoch, reply } => {
                let r = self.lease.admit_agent(epoch).map(|()| Admission {
                    epoch: self.lease.epoch(),
                    handback: self.lease.take_handback(),
                });
                let _ = reply.send(r);
            }
            Msg::BeginExecute { epoch, reply } => {
                let r = self.lease.admit_agent(Some(epoch));
                let _ = reply.send(r);
            }
            Msg::CheckGrant { kind, reply } => {
                let _ = reply.send(self.grants.covering(&self.id, kind, now).cloned());
            }
            Msg::Ask { approval, reply } => {
                let approval = *approval;
                let record = Record::ApprovalRequested(ApprovalRequested {
                    approval: approval.id,
                    action: approval.action.clone(),
                    reasons: approval.reasons.clone(),
                    deadline_ms: approval.deadline_ms,
                    bound_to_frame: approval.frame.clone(),
                });
                if let Err(e) = self
                    .append(Actor::default(), approval.frame_png.parse().ok(), record)
                    .await
                {
                    let _ = reply.send(AskEnd::Unrecorded(e));
                    return;
                }
                self.events.publish(Event::ApprovalRequested {
                    approval: approval.clone(),
                });
                self.pending.insert(approval.id, PendingAsk { approval, reply });
            }
            Msg::Resolve {
                id,
                operator,
                resolution,
                reply,
            } => {
                let r = self.resolve(id, &operator, resolution, now).await;
                let _ = reply.send(r);
            }
            Msg::Lease { cmd, reply } => {
                let r = self.change_lease(&cmd, now).await;
                let _ = reply.send(r);
            }
            Msg::HumanAdmit {
                operator,
                count,
                reply,
            } => {
                let r = if count {
                    self.lease.admit_human(&operator)
                } else {
                    self.lease.check_human(&operator)
                }
                .map(|()| self.lease.epoch());
                let _ = reply.send(r);
            }
            Msg::View { reply } => {
                let mut pending: Vec<Approval> = self.pending.values().map(|p| p.approval.clone()).collect();
                pending.sort_by_key(|a| a.id);
                let _ = reply.send(SessionView {
                    sandbox: self.id.clone(),
                    screen: self.screen,
                    holder: self.lease.holder().clone(),
                    epoch: self.lease.epoch(),
                    pending,
                    grants: self.grants.active(now),
                });
            }
        }
    }

    async fn resolve(
        &mut self,
        id: u64,
        operator: &str,
        resolution: Resolution,
        now: u64,
    ) -> Result<Approval, ResolveError> {
        let grant_minutes = match &resolution {
            Resolution::Approve { grant_minutes } => *grant_minutes,
            Resolution::Edit { .. } | Resolution::Deny { .. } => None,
        };
        let Some(mut p) = self.pending.remove(&id) else {
            return Err(match self.decided.iter().rev().find(|a| a.id == id) {
                Some(a) => ResolveError::Decided {
                    id,
                    outcome: outcome_phrase(&a.state),
                },
                None => ResolveError::Unknown(id),
            });
        };
        let asked = p.approval.clone();
        let outcome = match p.approval.resolve(operator, resolution, now) {
            Ok(o) => o,
            Err(ApprovalError::Expired { id }) => {
                self.finish_expired(p, now).await;
                return Err(ApprovalError::Expired { id }.into());
            }
            Err(e) => {
                self.pending.insert(id, p);
                return Err(e.into());
            }
        };
        let approval = p.approval.clone();
        let record = Record::ApprovalResolved(ApprovalResolved {
            approval: id,
            state: approval.state.clone(),
            counts_as: None,
        });
        if let Err(e) = self
            .append(Actor::operator(operator), approval.frame_png.parse().ok(), record)
            .await
        {
            p.approval = asked;
            self.pending.insert(id, p);
            return Err(e.into());
        }
        if let Some(minutes) = grant_minutes {
            let grant = Grant::lasting(&self.id, approval.grant_kind(), operator, minutes, now);
            let record = Record::GrantIssued(GrantIssued {
                grant: grant.clone(),
                minutes,
                approval: id,
            });
            // The approval stands (it is recorded); an unrecorded grant is not issued.
            if self.append(Actor::operator(operator), None, record).await.is_ok() {
                self.grants.add(grant.clone());
                self.events.publish(Event::GrantIssued { grant });
            }
        }
        self.resolved(approval.clone());
        let _ = p.reply.send(AskEnd::Decided {
            approval: approval.clone(),
            outcome,
        });
        Ok(approval)
    }

    async fn expire(&mut self, now: u64) {
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.approval.deadline_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(mut p) = self.pending.remove(&id) {
                if p.approval.expire(now) {
                    self.finish_expired(p, now).await;
                } else {
                    self.pending.insert(id, p);
                }
            }
        }
    }

    /// An expired approval counts as deny and pauses the agent.
    async fn finish_expired(&mut self, p: PendingAsk, now: u64) {
        debug_assert_eq!(p.approval.state, ApprovalState::Expired);
        warn!(approval = p.approval.id, "approval expired: denied, agent paused");
        let record = Record::ApprovalResolved(ApprovalResolved {
            approval: p.approval.id,
            state: p.approval.state.clone(),
            counts_as: Some(Decision::Deny),
        });
        // An expiry counts as a denial whether or not it could be recorded (failing closed).
        let _ = self
            .append(Actor::default(), p.approval.frame_png.parse().ok(), record)
            .await;
        self.resolved(p.approval.clone());
        match self.lease.holder() {
            Holder::Agent => {
                let _ = self
                    .change_lease(
                        &LeaseCommand::Pause {
                            by: EXPIRY_PAUSER.into(),
                        },
                        now,
                    )
                    .await;
            }
            Holder::Human { .. } | Holder::Paused { .. } => {}
        }
        let _ = p.reply.send(AskEnd::Expired { approval: p.approval });
    }

    /// Applies a lease command once it is recorded; a pause stands even when it cannot be (an
    /// operator must always be able to stop the agent, and the gateway records nothing more until
    /// the ledger works again).
    async fn change_lease(&mut self, cmd: &LeaseCommand, now: u64) -> Result<LeaseChange, LeaseChangeError> {
        let before = self.lease.clone();
        let change = self.lease.apply(cmd, now)?;
        let operator = match cmd {
            LeaseCommand::Take { operator } | LeaseCommand::HandBack { operator, .. } => operator.clone(),
            LeaseCommand::Pause { by } | LeaseCommand::Resume { by } => by.clone(),
        };
        info!(from = %change.from, to = %change.to, epoch = change.epoch, "lease changed");
        let record = Record::LeaseChanged(LeaseChanged {
            command: cmd.clone(),
            from: change.from.clone(),
            to: change.to.clone(),
        });
        if let Err(e) = self.append(Actor::operator(operator), None, record).await {
            match cmd {
                LeaseCommand::Pause { .. } => {}
                LeaseCommand::Take { .. } | LeaseCommand::HandBack { .. } | LeaseCommand::Resume { .. } => {
                    self.lease = before;
                    return Err(e.into());
                }
            }
        }
        self.events.publish(Event::LeaseChanged {
            sandbox: self.id.clone(),
            from: change.from.clone(),
            to: change.to.clone(),
            epoch: change.epoch,
            at_ms: now,
            handback: match cmd {
                LeaseCommand::HandBack { .. } => self.lease.pending_handback().cloned(),
                LeaseCommand::Take { .. } | LeaseCommand::Pause { .. } | LeaseCommand::Resume { .. } => None,
            },
        });
        Ok(change)
    }

    /// Records `record` about this session, stamped now with the current lease epoch.
    async fn append(
        &self,
        actor: Actor,
        frame_before: Option<Digest>,
        record: Record,
    ) -> Result<(), Unrecorded> {
        let draft = record
            .draft(now_ms(), Some(self.id.clone()), actor)
            .map_err(|e| Unrecorded(Arc::new(e)))?;
        let draft = Draft {
            epoch: Some(self.lease.epoch()),
            frame_before,
            ..draft
        };
        self.ledger.append(draft).await.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "ledger append failed");
            Unrecorded(Arc::new(e))
        })
    }
}
