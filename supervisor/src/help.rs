//! An agent asking for a human (`request_human`): the call waits while operators see a card with
//! the reason and the screen; one takes control, does what the agent must not (a password, a
//! CAPTCHA), and hands back with a note; the call returns the note and a fresh screenshot. Nobody
//! answering before the deadline is a clear "no operator answered".
//!
//! The request, its answer, its timeout or its abandonment are on the ledger
//! ([`HumanRequestRecord`]); operators learn of it through [`Event::HumanRequested`] and
//! [`Event::HumanRequestEnded`], and a console joining late from the snapshot.

use std::time::Duration;

use airlock_domain::{
    HandbackSummary, HelpKind, Holder, DEFAULT_HELP_WAIT_MS, MAX_HELP_REASON, MAX_HELP_WAIT_MS,
};
use airlock_ledger::Draft;
use airlock_records::{HumanRequestRecord, Record};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use ts_rs::TS;

use crate::gateway::{actor, capture, AgentId, Frame, GatewayError};
use crate::{now_ms, Event, Supervisor};

/// A request for a human, as operators see it while it waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct HumanRequest {
    /// Its id (per supervisor).
    pub request: u64,
    /// The sandbox.
    pub sandbox: String,
    /// The agent asking.
    pub agent: String,
    /// What it needs, in its words.
    pub reason: String,
    /// The kind of help.
    pub kind: HelpKind,
    /// When it asked (Unix ms).
    pub asked_ms: u64,
    /// When it stops waiting (Unix ms).
    pub deadline_ms: u64,
    /// The PNG blob of the screen when it asked.
    pub frame: String,
}

/// How a request for a human ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum HumanRequestOutcome {
    /// An operator helped and handed back.
    Answered {
        /// Who.
        operator: String,
    },
    /// Nobody answered in time.
    TimedOut,
    /// The agent's call went away first.
    Abandoned,
}

/// What the agent gets back when a human helped.
#[derive(Debug)]
pub struct HumanAnswer {
    /// The request.
    pub request: u64,
    /// The lease epoch the agent acts under now.
    pub epoch: u64,
    /// What the operator did, with their note.
    pub summary: HandbackSummary,
    /// The screen now.
    pub frame: Frame,
}

/// Why a request for a human did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum HelpError {
    /// The request itself is not acceptable.
    #[error("request_human: {0}")]
    Invalid(String),
    /// Nobody answered.
    #[error(
        "no operator answered within {waited_s} s; carry on without a human if you safely can, or \
         stop and say what you needed"
    )]
    NoAnswer {
        /// How long the agent waited.
        waited_s: u64,
    },
    /// The gateway failed (no such sandbox, the screen, the ledger).
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// Removes a request that is no longer waiting from the pending list and tells the consoles;
/// when dropped before [`Pending::end`] (the agent's call went away), records the abandonment.
struct Pending {
    sup: Supervisor,
    request: HumanRequest,
    ended: bool,
    /// What the record says if the request ends without an answer or a timeout.
    abandoned_because: &'static str,
}

impl Pending {
    async fn end(
        mut self,
        outcome: HumanRequestOutcome,
        record: Option<HumanRequestRecord>,
        agent: &AgentId,
    ) {
        self.ended = true;
        self.sup.forget_human_request(&self.request, outcome);
        if let Some(record) = record {
            let draft = Record::HumanRequest(record).draft(
                now_ms(),
                Some(self.request.sandbox.clone()),
                actor(agent),
            );
            match draft {
                Ok(d) => {
                    if let Err(e) = self.sup.append(d).await {
                        tracing::error!(error = %crate::chain(&e), "the end of a human request could not be recorded");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %crate::chain(&e), "the end of a human request could not be encoded")
                }
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let sup = self.sup.clone();
        let request = self.request.clone();
        sup.forget_human_request(&request, HumanRequestOutcome::Abandoned);
        let record = Record::HumanRequest(HumanRequestRecord::Abandoned {
            request: request.request,
            reason: self.abandoned_because.into(),
        });
        let actor = airlock_ledger::Actor {
            agent: Some(request.agent.clone()),
            principal: None,
            operator: None,
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Ok(d) = record.draft(now_ms(), Some(request.sandbox.clone()), actor) {
                    if let Err(e) = sup.append(d).await {
                        tracing::error!(error = %crate::chain(&e), "an abandoned human request could not be recorded");
                    }
                }
            });
        }
    }
}

impl Supervisor {
    /// The agent `agent` asks a human for help in `sandbox` and waits up to `wait_ms` (default ten
    /// minutes, at most an hour) for an operator to take control and hand back.
    pub async fn request_human(
        &self,
        sandbox: Option<&str>,
        agent: &AgentId,
        reason: &str,
        kind: HelpKind,
        wait_ms: Option<u64>,
    ) -> Result<HumanAnswer, HelpError> {
        let span = tracing::info_span!("request_human", sandbox = ?sandbox, agent = %agent.agent, ?kind);
        tracing::Instrument::instrument(
            self.request_human_inner(sandbox, agent, reason, kind, wait_ms),
            span,
        )
        .await
    }

    async fn request_human_inner(
        &self,
        sandbox: Option<&str>,
        agent: &AgentId,
        reason: &str,
        kind: HelpKind,
        wait_ms: Option<u64>,
    ) -> Result<HumanAnswer, HelpError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(HelpError::Invalid(
                "say what you need a human for (reason is empty)".into(),
            ));
        }
        if reason.len() > MAX_HELP_REASON {
            return Err(HelpError::Invalid(format!(
                "the reason is {} bytes; at most {MAX_HELP_REASON}",
                reason.len()
            )));
        }
        let wait_ms = match wait_ms {
            None => DEFAULT_HELP_WAIT_MS,
            Some(w) if (1_000..=MAX_HELP_WAIT_MS).contains(&w) => w,
            Some(w) => {
                return Err(HelpError::Invalid(format!(
                    "wait {w} ms: from 1 s to {} min",
                    MAX_HELP_WAIT_MS / 60_000
                )))
            }
        };
        let session = self.session_for(sandbox).await?;
        // Subscribe before anything is visible, so no hand-back can slip between.
        let mut events = self.events().subscribe();
        let shown = capture(&session.guest).await.map_err(GatewayError::from)?;
        let hash = self.store_frame(&shown).await?;
        let asked_ms = now_ms();
        let request = HumanRequest {
            request: self.next_human_request(),
            sandbox: session.id.clone(),
            agent: agent.agent.clone(),
            reason: reason.to_string(),
            kind,
            asked_ms,
            deadline_ms: asked_ms.saturating_add(wait_ms),
            frame: hash.to_string(),
        };
        let record = Record::HumanRequest(HumanRequestRecord::Requested {
            request: request.request,
            reason: request.reason.clone(),
            kind,
            deadline_ms: request.deadline_ms,
            frame: request.frame.clone(),
        });
        let draft = record
            .draft(asked_ms, Some(session.id.clone()), actor(agent))
            .map_err(|e| GatewayError::Ledger(e.to_string()))?;
        self.append(Draft {
            frame_before: Some(hash),
            ..draft
        })
        .await?;
        let mut pending = Pending {
            sup: self.clone(),
            request: request.clone(),
            ended: false,
            abandoned_because: "the agent's call ended before an operator answered",
        };
        self.remember_human_request(request.clone());
        tracing::info!(request = request.request, "waiting for a human");

        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            // `Some(summary)` once control came back from a human (the summary from the event, when
            // it was seen: a concurrent agent call may take the session's copy first).
            let handed_back: Option<Option<HandbackSummary>> = tokio::select! {
                ev = events.recv() => match ev {
                    Ok(Event::LeaseChanged { sandbox, from: Holder::Human { .. }, to: Holder::Agent, handback, .. })
                        if sandbox == session.id => Some(handback),
                    Ok(Event::SandboxState { sandbox, state, .. })
                        if sandbox == session.id && state != crate::SandboxState::Running =>
                    {
                        pending.abandoned_because = "the sandbox stopped before an operator answered";
                        return Err(GatewayError::UnknownSandbox(sandbox).into());
                    }
                    Ok(_) => None,
                    // Missed events: look at the lease itself.
                    Err(RecvError::Lagged(_)) => matches!(session.view().await.map(|v| v.holder), Ok(Holder::Agent))
                        .then_some(None),
                    Err(RecvError::Closed) => {
                        pending.abandoned_because = "the supervisor stopped before an operator answered";
                        return Err(GatewayError::UnknownSandbox(session.id.clone()).into());
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    pending
                        .end(
                            HumanRequestOutcome::TimedOut,
                            Some(HumanRequestRecord::TimedOut { request: request.request }),
                            agent,
                        )
                        .await;
                    return Err(HelpError::NoAnswer { waited_s: wait_ms / 1000 });
                }
            };
            let Some(seen) = handed_back else {
                continue;
            };
            // The screen first: nothing below may lose the operator's answer once it is taken.
            pending.abandoned_because = "the screen could not be captured after the operator handed back";
            let frame = capture(&session.guest).await.map_err(GatewayError::from)?;
            let hash = self.store_frame(&frame).await?;
            // Control is the agent's again: take the hand-back summary (so the agent's next action
            // is not refused for it a second time); if a concurrent call took it first, the
            // event's copy answers.
            let admission = match session.admit(None).await.map_err(GatewayError::from)? {
                Ok(a) => a,
                Err(_) => continue, // taken again at once: keep waiting
            };
            let Some(summary) = admission.handback.or(seen) else {
                continue; // a lagged wake-up with no stint behind it
            };
            session
                .terminals
                .lock()
                .await
                .forget_all("an operator drove the sandbox while the agent waited for them");
            pending
                .end(
                    HumanRequestOutcome::Answered {
                        operator: summary.operator.clone(),
                    },
                    Some(HumanRequestRecord::Answered {
                        request: request.request,
                        operator: summary.operator.clone(),
                        note: summary.note.clone(),
                        frame: hash.to_string(),
                    }),
                    agent,
                )
                .await;
            return Ok(HumanAnswer {
                request: request.request,
                epoch: admission.epoch,
                summary,
                frame,
            });
        }
    }
}
