//! The gateway: every agent action passes through [`Supervisor::act`], one function to read top
//! to bottom — trace → parse → lease check → policy → (ask → wait) → ledger append → execute on
//! the guest → ledger append of the result with the after-frame hash → reply.

use std::sync::Arc;
use std::time::Duration;

use airlock_domain::{
    Action, ActionError, Approval, HandbackSummary, Outcome, Paste, Point, Refusal, Screen,
};
use airlock_ledger::{Actor, Digest, Draft};
use airlock_policy::{enforce, Decision, Subject};
use airlock_protocol::{ExecResult, Input, SelectionKind, WindowInfo};
use airlock_records::{
    ActionDecided, ActionExecuted, ActionOutcome, ActionRefused, CursorResult, Done, ExecRecord, Failed,
    FileMoved, HandbackResult, ImageResult, Listed, Record,
};
use airlock_sandbox::GuestClient;
use airlock_shell::Terminals;
use serde::Serialize;
use tracing::{info, Instrument};

use crate::events::Event;
use crate::session::{AskEnd, Session, SessionGone};
use crate::terminal::{is_terminal, judge, paste_source, reach, Judged, Reach, Target};
use crate::{now_ms, Supervisor};

/// How many times an approved action is asked again because the screen changed meanwhile.
pub const MAX_REASKS: u32 = 3;

/// Who is acting.
#[derive(Debug, Clone, Serialize)]
pub struct AgentId {
    /// The agent's identity (MCP client name, plan name, adapter).
    pub agent: String,
    /// The principal it acts for (from its token).
    pub principal: String,
}

/// An action as an agent sent it, not yet parsed.
#[derive(Debug, Clone)]
pub enum ActionRequest {
    /// Anthropic's `computer` tool input.
    Anthropic(serde_json::Value),
    /// An OpenAI computer-use `action` object.
    OpenAi(serde_json::Value),
    /// Run a program.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
        /// Stdin text.
        stdin: String,
        /// Timeout.
        timeout_ms: Option<u32>,
    },
    /// Read a file out of the sandbox (its size is looked up before the policy judges it).
    ReadFile {
        /// Absolute path.
        path: String,
    },
    /// Write a file into the sandbox.
    WriteFile {
        /// Absolute path.
        path: String,
        /// The bytes.
        content: Vec<u8>,
    },
    /// List a sandbox directory.
    ListFiles {
        /// Absolute path.
        path: String,
    },
}

/// One agent call.
#[derive(Debug, Clone)]
pub struct AgentCall {
    /// The sandbox; `None` means "the only one".
    pub sandbox: Option<String>,
    /// Who.
    pub agent: AgentId,
    /// The lease epoch the agent planned under, if it says.
    pub epoch: Option<u64>,
    /// What.
    pub request: ActionRequest,
}

/// A screenshot as returned to agents and operators.
#[derive(Debug, Clone)]
pub struct Frame {
    /// PNG bytes.
    pub png: Vec<u8>,
    /// Hash of the PNG (the ledger blob).
    pub hash: Digest,
    /// Content hash of the pixels (hex SHA-256 over RGBA; the streaming mirror's frame hash):
    /// what approvals are bound to.
    pub pixels: String,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
}

/// What an action produced.
#[derive(Debug, Clone)]
pub enum ActionResult {
    /// An input action was carried out.
    Done,
    /// The screen (screenshot, wait) or part of it (zoom).
    Image(Frame),
    /// Where the pointer is.
    Cursor(Point),
    /// A program ran.
    Exec(ExecResult),
    /// A file was read, written or listed.
    File(FileResult),
    /// Control came back from a human: the action was **not** performed; here is the screen now.
    Handback {
        /// What the human did.
        summary: HandbackSummary,
        /// The screen now.
        frame: Frame,
    },
}

/// What a file action gave.
#[derive(Debug, Clone)]
pub enum FileResult {
    /// A file's bytes, with the guest's digest (checked against the bytes).
    Read {
        /// The path.
        path: String,
        /// The bytes.
        bytes: Vec<u8>,
        /// SHA-256, hex.
        sha256: String,
    },
    /// A file written.
    Written {
        /// The path.
        path: String,
        /// Bytes.
        size: u64,
        /// SHA-256, hex (the guest's, equal to the host's).
        sha256: String,
    },
    /// A directory's entries.
    Listed(crate::files::FileListing),
}

/// Entries an agent's listing returns at most.
const AGENT_LIST_LIMIT: u32 = 2_000;

/// The answer to an agent.
#[derive(Debug, Clone)]
pub struct ActionReply {
    /// The sandbox.
    pub sandbox: String,
    /// The lease epoch to stamp the next action with.
    pub epoch: u64,
    /// What ran (the operator may have edited it).
    pub action: Action,
    /// The enforced decision and its reason.
    pub decision: Decision,
    /// Why.
    pub reason: String,
    /// The result.
    pub result: ActionResult,
}

/// Why an agent action did not run.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request names no sandbox and there is not exactly one.
    #[error("{0}")]
    WhichSandbox(String),
    /// No such sandbox.
    #[error("no sandbox {0} is supervised here")]
    UnknownSandbox(String),
    /// The action does not parse.
    #[error("{0}")]
    Invalid(#[from] ActionError),
    /// The lease refused it.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The policy denied it.
    #[error("denied by policy: {reason}")]
    Denied {
        /// Why.
        reason: String,
    },
    /// An operator denied it.
    #[error("denied by operator {by}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    OperatorDenied {
        /// Who.
        by: String,
        /// Why.
        reason: Option<String>,
    },
    /// Nobody decided in time.
    #[error("denied: the approval expired after {timeout_s} s without an operator's decision; the agent is paused until an operator resumes it")]
    Expired {
        /// The timeout.
        timeout_s: u64,
    },
    /// The screen kept changing between approval and execution.
    #[error("refused: the screen changed after each of {0} approvals, so none could be used")]
    ScreenKeptChanging(u32),
    /// The guest failed.
    #[error("the sandbox failed to carry out the action")]
    Guest(#[from] GuestError),
    /// The ledger could not record the step; nothing was executed.
    #[error("the audit ledger could not record the action, so it was not executed: {0}")]
    Ledger(String),
    /// The sandbox's session ended.
    #[error(transparent)]
    Gone(#[from] SessionGone),
    /// A network request failed.
    #[error(transparent)]
    Egress(#[from] crate::egress::EgressError),
}

/// Where an action stands in the ledger: its sandbox, agent, lease epoch and policy version.
struct Step<'a> {
    session: &'a Session,
    agent: &'a AgentId,
    epoch: u64,
    policy_version: &'a str,
}

/// Who an ask is about, and where the action lands.
#[derive(Clone, Copy)]
struct Asked<'a> {
    session: &'a Session,
    agent: &'a AgentId,
    subject: &'a Subject<'a>,
    target: &'a Target,
}

impl Supervisor {
    /// Carries out one agent action, or says why not.
    pub async fn act(&self, call: AgentCall) -> Result<ActionReply, GatewayError> {
        let span = tracing::info_span!("act", sandbox = ?call.sandbox, agent = %call.agent.agent, epoch = ?call.epoch);
        async move {
            // Parse.
            let session = self.session_for(call.sandbox.as_deref()).await?;
            if let Some(hub) = self.egress_hub(&session.id) {
                hub.note_agent(&call.agent.agent);
            }
            let action = match parse(&call.request, session.screen)? {
                // A read is judged by how much leaves the sandbox: look its size up first.
                Action::ReadFile { path, .. } => {
                    let size = probe_size(&session.guest, &path).await;
                    Action::ReadFile { path, size }
                }
                a => a,
            };
            let kind = action.kind();
            tracing::debug!(%kind, "parsed");

            // Lease check: refused, never queued.
            let admission = match session.admit(call.epoch).await? {
                Ok(a) => a,
                Err(refusal) => {
                    self.refused(&session, &call.agent, &action, &refusal.to_string(), None)
                        .await?;
                    return Err(refusal.into());
                }
            };
            if let Some(summary) = admission.handback {
                // A human typed who knows what into the terminals: their lines are unknown until
                // the agent clears them (ctrl+c) or submits them (which asks).
                session
                    .terminals
                    .lock()
                    .await
                    .forget_all("an operator drove the sandbox since the agent last typed");
                return self
                    .handback_observation(&session, &call.agent, action, admission.epoch, summary)
                    .await;
            }

            // Where the keys land (a terminal's line is a command), then policy. Every input
            // action holds the terminals' lines until it was sent, so keystrokes are judged in the
            // order they reach the guest and no concurrent click moves the focus between judging
            // and typing.
            let mut terminals = match action.is_observation() {
                true => None,
                false => Some(session.terminals.clone().lock_owned().await),
            };
            let target = match &terminals {
                Some(t) => read_target(&session.guest, &action, t).await,
                None => Target::default(),
            };
            let policy = self.policy();
            let subject = Subject {
                agent: &call.agent.agent,
                principal: &call.agent.principal,
                sandbox: &session.id,
            };
            let judged = judge(&policy, &subject, &action, &target);
            let verdict = enforce(&judged.evaluation, self.mode());
            let step = Step {
                session: &session,
                agent: &call.agent,
                epoch: admission.epoch,
                policy_version: policy.version(),
            };
            self.decided(&step, &action, &judged, &verdict).await?;

            // Ask → wait.
            let evaluation = judged.evaluation.clone();
            let grant = match (verdict.decision, judged.evaluation.grantable) {
                (Decision::Ask, true) => {
                    let kind = airlock_domain::grant_kind(kind, judged.terminal.is_some());
                    session.grant_for(kind).await?
                }
                (Decision::Ask | Decision::Allow | Decision::Deny, _) => None,
            };
            let (action, approved_frame, judged) = match verdict.decision {
                Decision::Deny => {
                    self.refused(
                        &session,
                        &call.agent,
                        &action,
                        &evaluation.reason,
                        Some(admission.epoch),
                    )
                    .await?;
                    return Err(GatewayError::Denied {
                        reason: evaluation.reason,
                    });
                }
                Decision::Allow => (action, None, judged),
                Decision::Ask => match grant {
                    Some(grant) => {
                        info!(until_ms = grant.until_ms, by = %grant.by, "covered by a grant");
                        (action, None, judged)
                    }
                    None => {
                        let asked = Asked {
                            session: &session,
                            agent: &call.agent,
                            subject: &subject,
                            target: &target,
                        };
                        let (a, frame, judged) = self.ask_operator(&asked, action, judged).await?;
                        (a, Some(frame), judged)
                    }
                },
            };

            // Execute under the same epoch, on the screen the operator approved.
            if let Err(refusal) = session.begin_execute(admission.epoch).await? {
                self.refused(
                    &session,
                    &call.agent,
                    &action,
                    &refusal.to_string(),
                    Some(admission.epoch),
                )
                .await?;
                return Err(refusal.into());
            }
            if let Some(frame) = approved_frame {
                tracing::debug!(%frame, "approved on this frame");
            }
            let outcome = execute(&session, &action, self.settle()).await;
            if let (Some(t), Some(next)) = (terminals.as_mut(), judged.next) {
                keep_line(&session.guest, &action, &target, &outcome, next, t).await;
            }
            drop(terminals);
            let frame_after = match (&outcome, action.is_observation()) {
                (Ok(ActionResult::Image(f)), _) => Some(self.store_frame(f).await?),
                (_, false) => match capture(&session.guest).await {
                    Ok(f) => Some(self.store_frame(&f).await?),
                    Err(e) => {
                        tracing::warn!(error = %e, "no after-frame");
                        None
                    }
                },
                (_, true) => None,
            };

            // Record the result, then reply.
            self.executed(&step, &action, &outcome, frame_after).await?;
            let result = outcome?;
            Ok(ActionReply {
                sandbox: session.id.clone(),
                epoch: admission.epoch,
                action,
                decision: verdict.decision,
                reason: evaluation.reason,
                result,
            })
        }
        .instrument(span)
        .await
    }

    /// Asks an operator, re-asking when the screen changed after the approval, or when an edit
    /// needs an approval for a reason the operator was not asked about.
    async fn ask_operator(
        &self,
        asked: &Asked<'_>,
        action: Action,
        judged: Judged,
    ) -> Result<(Action, Digest, Judged), GatewayError> {
        let Asked {
            session,
            agent,
            subject,
            target,
        } = *asked;
        let mut to_ask = action;
        let mut judged = judged;
        // Rules an operator has approved an action against, in this ask.
        let mut approved_rules: Vec<String> = Vec::new();
        for _ in 0..MAX_REASKS {
            let shown = capture(&session.guest).await?;
            let shown_hash = self.store_frame(&shown).await?;
            let mut approval = Approval::new(
                self.next_approval_id(),
                session.id.clone(),
                to_ask.clone(),
                airlock_domain::Shown {
                    frame: shown.pixels.clone(),
                    png: shown_hash.to_string(),
                },
                judged.evaluation.rules.clone(),
                now_ms(),
                self.approval_timeout().as_millis() as u64,
            );
            approval.reason = judged.evaluation.reason.clone();
            approval.terminal = judged.terminal.clone();
            approval.grantable = judged.evaluation.grantable;
            let run = match session.ask(approval).await? {
                AskEnd::Decided {
                    outcome: Outcome::Run(a),
                    ..
                } => a,
                AskEnd::Decided {
                    outcome: Outcome::Refuse,
                    approval,
                } => {
                    let (by, reason) = match approval.state {
                        airlock_domain::ApprovalState::Denied { by, reason } => (by, reason),
                        other => (
                            String::from("?"),
                            Some(format!("approval ended {}", other.name())),
                        ),
                    };
                    let err = GatewayError::OperatorDenied { by, reason };
                    self.refused(session, agent, &to_ask, &err.to_string(), None)
                        .await?;
                    return Err(err);
                }
                AskEnd::Expired { .. } => {
                    let err = GatewayError::Expired {
                        timeout_s: self.approval_timeout().as_secs(),
                    };
                    self.refused(session, agent, &to_ask, &err.to_string(), None)
                        .await?;
                    return Err(err);
                }
                AskEnd::Closed => return Err(SessionGone(session.id.clone()).into()),
                AskEnd::Unrecorded(e) => return Err(GatewayError::Ledger(crate::chain(&e))),
            };
            approved_rules.extend(judged.evaluation.rules.iter().cloned());
            // An edit goes back through the policy, judged where it lands (the same window and
            // terminal line as the original): a denial still wins, and an ask for a reason the
            // operator was not shown is asked again.
            if run != to_ask {
                let edited = judge(&self.policy(), subject, &run, target);
                match enforce(&edited.evaluation, self.mode()).decision {
                    Decision::Deny => {
                        let reason = edited.evaluation.reason;
                        self.refused(session, agent, &run, &reason, None).await?;
                        return Err(GatewayError::Denied { reason });
                    }
                    Decision::Ask
                        if edited
                            .evaluation
                            .rules
                            .iter()
                            .any(|r| !approved_rules.contains(r)) =>
                    {
                        info!(rules = ?edited.evaluation.rules, "the edit needs an approval of its own");
                        to_ask = run;
                        judged = edited;
                        continue;
                    }
                    Decision::Ask | Decision::Allow => judged = edited,
                }
            }
            let now = capture(&session.guest).await?;
            let now_hash = self.store_frame(&now).await?;
            // A file action does not depend on what the screen shows.
            if now.pixels == shown.pixels || run.file_path().is_some() {
                return Ok((run, shown_hash, judged));
            }
            let void = format!(
                "approval void: the screen changed after the operator approved (shown {shown_hash}, now {now_hash}); asking again"
            );
            info!("{void}");
            self.append(Draft {
                frame_before: Some(shown_hash),
                frame_after: Some(now_hash),
                ..draft(
                    session,
                    agent,
                    Record::ActionRefused(ActionRefused {
                        action: run.clone(),
                        reason: void,
                        void: true,
                        handback: None,
                    }),
                )?
            })
            .await?;
            to_ask = run;
        }
        Err(GatewayError::ScreenKeptChanging(MAX_REASKS))
    }

    async fn handback_observation(
        &self,
        session: &Session,
        agent: &AgentId,
        action: Action,
        epoch: u64,
        summary: HandbackSummary,
    ) -> Result<ActionReply, GatewayError> {
        let frame = capture(&session.guest).await?;
        let hash = self.store_frame(&frame).await?;
        let reason = format!(
            "control came back to the agent: {summary}. {} Here is the screen now (epoch {epoch}).",
            if action == Action::Screenshot {
                ""
            } else {
                "Your action was not performed because the screen may have changed."
            }
        );
        let record = Record::ActionRefused(ActionRefused {
            action: action.clone(),
            reason: reason.clone(),
            void: false,
            handback: Some(summary.clone()),
        });
        self.append(Draft {
            epoch: Some(epoch),
            frame_after: Some(hash),
            ..draft(session, agent, record)?
        })
        .await?;
        Ok(ActionReply {
            sandbox: session.id.clone(),
            epoch,
            action,
            decision: Decision::Allow,
            reason,
            result: ActionResult::Handback { summary, frame },
        })
    }

    async fn decided(
        &self,
        step: &Step<'_>,
        action: &Action,
        judged: &Judged,
        verdict: &airlock_policy::Verdict,
    ) -> Result<(), GatewayError> {
        let evaluation = &judged.evaluation;
        let Step {
            session,
            agent,
            epoch,
            policy_version,
        } = *step;
        let record = Record::ActionDecided(ActionDecided {
            action: action.clone(),
            evaluation: evaluation.clone(),
            decision: verdict.decision,
            shadow_denied: verdict.shadow_denied,
            terminal: judged.terminal.clone(),
        });
        self.append(Draft {
            epoch: Some(epoch),
            policy_hash: Some(policy_version.to_string()),
            ..draft(session, agent, record)?
        })
        .await?;
        self.events().publish(Event::ActionDecided {
            sandbox: session.id.clone(),
            agent: agent.agent.clone(),
            action: action.clone(),
            decision: verdict.decision,
            reason: evaluation.reason.clone(),
            shadow_denied: verdict.shadow_denied,
            at_ms: now_ms(),
        });
        Ok(())
    }

    async fn refused(
        &self,
        session: &Session,
        agent: &AgentId,
        action: &Action,
        reason: &str,
        epoch: Option<u64>,
    ) -> Result<(), GatewayError> {
        info!(reason, "refused");
        self.append(Draft {
            epoch,
            ..draft(
                session,
                agent,
                Record::ActionRefused(ActionRefused {
                    action: action.clone(),
                    reason: reason.to_string(),
                    void: false,
                    handback: None,
                }),
            )?
        })
        .await?;
        self.events().publish(Event::ActionRefused {
            sandbox: session.id.clone(),
            agent: agent.agent.clone(),
            reason: reason.to_string(),
            at_ms: now_ms(),
        });
        Ok(())
    }

    async fn executed(
        &self,
        step: &Step<'_>,
        action: &Action,
        outcome: &Result<ActionResult, GuestError>,
        frame_after: Option<Digest>,
    ) -> Result<(), GatewayError> {
        let Step {
            session,
            agent,
            epoch,
            policy_version,
        } = *step;
        let result = match outcome {
            Ok(r) => recorded_result(r),
            Err(e) => ActionOutcome::Failed(Failed {
                error: crate::chain(e),
            }),
        };
        self.append(Draft {
            epoch: Some(epoch),
            policy_hash: Some(policy_version.to_string()),
            frame_after,
            ..draft(
                session,
                agent,
                Record::ActionExecuted(ActionExecuted {
                    action: action.clone(),
                    result,
                }),
            )?
        })
        .await?;
        self.events().publish(Event::ActionExecuted {
            sandbox: session.id.clone(),
            by: crate::By::Agent,
            action: action.clone(),
            ok: outcome.is_ok(),
            error: outcome.as_ref().err().map(|e| crate::chain(e)),
            frame_after: frame_after.map(|d| d.to_string()),
            at_ms: now_ms(),
        });
        Ok(())
    }

    /// Appends to the ledger; a failure stops the action before (or reports it after) execution.
    pub(crate) async fn append(&self, draft: Draft) -> Result<(), GatewayError> {
        self.ledger()
            .append(draft)
            .await
            .map(|_| ())
            .map_err(|e| GatewayError::Ledger(e.to_string()))
    }

    /// Stores a frame as a content-addressed blob.
    pub(crate) async fn store_frame(&self, frame: &Frame) -> Result<Digest, GatewayError> {
        self.ledger()
            .put_blob(&frame.png)
            .await
            .map_err(|e| GatewayError::Ledger(e.to_string()))
    }
}

pub(crate) fn actor(agent: &AgentId) -> Actor {
    Actor {
        agent: Some(agent.agent.clone()),
        principal: Some(agent.principal.clone()),
        operator: None,
    }
}

/// A ledger entry about `agent`'s action in `session`, stamped now; callers add epoch, policy and
/// frames where they have them.
fn draft(session: &Session, agent: &AgentId, record: Record) -> Result<Draft, GatewayError> {
    record
        .draft(now_ms(), Some(session.id.clone()), actor(agent))
        .map_err(|e| GatewayError::Ledger(e.to_string()))
}

/// Parses a request against the screen.
pub fn parse(request: &ActionRequest, screen: Screen) -> Result<Action, ActionError> {
    match request {
        ActionRequest::Anthropic(v) => Action::from_anthropic(v, screen),
        ActionRequest::OpenAi(v) => Action::from_openai(v, screen),
        ActionRequest::Exec {
            argv,
            stdin,
            timeout_ms,
        } => Action::exec(argv.clone(), stdin.clone(), *timeout_ms),
        ActionRequest::ReadFile { path } => Action::read_file(path, 0),
        ActionRequest::WriteFile { path, content } => Action::write_file(path, content.clone()),
        ActionRequest::ListFiles { path } => Action::list_files(path),
    }
}

/// The result as recorded in the ledger (images by hash only; exec output as text).
pub fn recorded_result(r: &ActionResult) -> ActionOutcome {
    match r {
        ActionResult::Done => ActionOutcome::Done(Done { done: true }),
        ActionResult::Image(f) => ActionOutcome::Image(ImageResult {
            frame: f.hash.to_string(),
            width: f.width,
            height: f.height,
        }),
        ActionResult::Cursor(p) => ActionOutcome::Cursor(CursorResult { x: p.x, y: p.y }),
        ActionResult::Exec(e) => ActionOutcome::Exec(ExecRecord {
            exit_code: e.exit_code,
            signal: e.signal,
            timed_out: e.timed_out,
            stdout: String::from_utf8_lossy(&e.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&e.stderr).into_owned(),
            stdout_truncated: e.stdout_truncated,
            stderr_truncated: e.stderr_truncated,
            duration_ms: e.duration_ms,
        }),
        ActionResult::File(FileResult::Read { path, bytes, sha256 }) => ActionOutcome::FileMoved(FileMoved {
            path: path.clone(),
            size: bytes.len() as u64,
            sha256: sha256.clone(),
        }),
        ActionResult::File(FileResult::Written { path, size, sha256 }) => {
            ActionOutcome::FileMoved(FileMoved {
                path: path.clone(),
                size: *size,
                sha256: sha256.clone(),
            })
        }
        ActionResult::File(FileResult::Listed(l)) => ActionOutcome::Listed(Listed {
            path: l.path.clone(),
            entries: l.entries.len() as u32,
            truncated: l.truncated,
        }),
        ActionResult::Handback { summary, frame } => ActionOutcome::Handback(HandbackResult {
            handback: summary.clone(),
            frame: frame.hash.to_string(),
        }),
    }
}

/// Why the sandbox could not carry out an action or show its screen.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The guest channel failed, or the guest refused the request (its words are the cause).
    #[error("the guest did not carry out the request")]
    Channel(#[from] airlock_sandbox::ChannelError),
    /// The blocking task that called the guest panicked or was cancelled.
    #[error("the guest call panicked or was cancelled")]
    Task(#[from] tokio::task::JoinError),
    /// A screenshot or zoomed region could not be encoded as PNG.
    #[error("cannot encode the {0} as PNG")]
    Png(&'static str, #[source] image::ImageError),
    /// The guest's screenshot does not have the size it says.
    #[error("the screenshot the guest returned has the wrong size")]
    WrongSize,
    /// A zoom region outside the screenshot the guest returned.
    #[error(
        "the zoom region starts at ({x}, {y}), outside the {width}x{height} screenshot the guest returned"
    )]
    ZoomOutside {
        /// Left edge asked for.
        x: u32,
        /// Top edge asked for.
        y: u32,
        /// The screenshot's width.
        width: u32,
        /// The screenshot's height.
        height: u32,
    },
    /// The command cannot be put into a guest request.
    #[error("the command cannot be sent to the guest")]
    Exec(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A file transfer failed (nothing was left half-written).
    #[error("the file transfer failed")]
    File(#[source] airlock_sandbox::TransferError),
    /// A file read is bigger than an agent may take in one call.
    #[error(
        "{path} holds more than {max} bytes: more than an agent reads at once, or than when the policy judged the read; ask an operator to download it"
    )]
    FileTooLarge {
        /// The path.
        path: String,
        /// The limit.
        max: u64,
    },
    /// A path names a folder where a file was expected.
    #[error("{path} is a folder: list it with list_files")]
    Folder {
        /// The path.
        path: String,
    },
    /// What the guest wrote does not hash to what was sent.
    #[error("the sandbox wrote {path} with another SHA-256 than the bytes sent")]
    FileDigest {
        /// The path.
        path: String,
    },
}

async fn blocking<T: Send + 'static>(
    guest: &Arc<GuestClient>,
    f: impl FnOnce(&GuestClient) -> Result<T, GuestError> + Send + 'static,
) -> Result<T, GuestError> {
    let guest = guest.clone();
    tokio::task::spawn_blocking(move || f(&guest)).await?
}

/// Takes a screenshot and encodes it.
pub async fn capture(guest: &Arc<GuestClient>) -> Result<Frame, GuestError> {
    blocking(guest, |g| {
        let shot = g.screenshot()?;
        let png = shot.png().map_err(|e| GuestError::Png("screenshot", e))?;
        let hash = Digest::of(&png);
        let pixels = hex::encode(airlock_streaming::mirror::frame_hash_rgba(
            shot.width,
            shot.height,
            &shot.rgba,
        ));
        Ok(Frame {
            png,
            hash,
            pixels,
            width: shot.width,
            height: shot.height,
        })
    })
    .await
}

/// Where `action`'s keys land, read from the guest: the window (focused, or under the point of a
/// paste), the terminal's line when it is a terminal, and what a paste would insert. A guest that
/// cannot say which window it is gets an unknown line, so a line submitted there asks.
async fn read_target(guest: &Arc<GuestClient>, action: &Action, terminals: &Terminals) -> Target {
    let at = match reach(action) {
        Reach::Nowhere => return Target::default(),
        Reach::Focused => None,
        Reach::At(Some(p)) => Some((p.x, p.y)),
        Reach::At(None) => match blocking(guest, |g| g.pointer().map_err(GuestError::from)).await {
            Ok(p) => Some(p),
            Err(e) => return unknown_window(&crate::chain(&e)),
        },
    };
    let window = match blocking(guest, move |g| g.window(at).map_err(GuestError::from)).await {
        Ok(w) => w,
        Err(e) => return unknown_window(&crate::chain(&e)),
    };
    if !is_terminal(&window.class) {
        return Target {
            window,
            line: None,
            paste: None,
        };
    }
    let paste = match paste_source(action) {
        None => None,
        Some(which) => {
            let source = match which {
                SelectionKind::Primary => "primary selection",
                SelectionKind::Clipboard => "clipboard",
            };
            Some(
                match blocking(guest, move |g| g.selection(which).map_err(GuestError::from)).await {
                    Ok((text, truncated)) => Paste {
                        source: source.into(),
                        text,
                        truncated,
                        error: None,
                    },
                    Err(e) => Paste {
                        source: source.into(),
                        text: String::new(),
                        truncated: false,
                        error: Some(crate::chain(&e)),
                    },
                },
            )
        }
    };
    Target {
        line: Some(terminals.line(window.id)),
        window,
        paste,
    }
}

/// Keeps a terminal's line once the keys were sent — unless they failed partway, went to a window
/// the guest could not name, or the keyboard focus moved meanwhile (a window that closed while
/// text was typed): then no line is known any more.
async fn keep_line(
    guest: &Arc<GuestClient>,
    action: &Action,
    target: &Target,
    outcome: &Result<ActionResult, GuestError>,
    next: airlock_shell::Line,
    terminals: &mut Terminals,
) {
    if outcome.is_err() {
        terminals.forget_all("keystrokes failed partway");
        return;
    }
    if target.window.id == 0 {
        terminals.forget_all("keys went to a window the guest could not name");
        return;
    }
    if reach(action) == Reach::Focused {
        match blocking(guest, |g| g.window(None).map_err(GuestError::from)).await {
            Ok(w) if w.id == target.window.id => {}
            Ok(_) | Err(_) => {
                terminals.forget_all("the keyboard focus moved while keys were sent");
                return;
            }
        }
    }
    terminals.store(target.window.id, next);
}

fn unknown_window(error: &str) -> Target {
    tracing::warn!(error, "cannot tell which window the keys go to");
    Target {
        window: WindowInfo::default(),
        line: Some(airlock_shell::Line::unknown(format!(
            "the guest did not say which window the keys go to: {error}"
        ))),
        paste: None,
    }
}

/// Carries out an action on the guest.
pub async fn execute(
    session: &Session,
    action: &Action,
    settle: Duration,
) -> Result<ActionResult, GuestError> {
    let guest = &session.guest;
    match action {
        Action::Screenshot => capture(guest).await.map(ActionResult::Image),
        Action::Wait { duration_ms } => {
            tokio::time::sleep(Duration::from_millis(u64::from(*duration_ms))).await;
            capture(guest).await.map(ActionResult::Image)
        }
        Action::Zoom { region } => {
            let region = *region;
            blocking(guest, move |g| {
                let shot = g.screenshot()?;
                let (x0, y0) = (u32::from(region.from.x), u32::from(region.from.y));
                let (w, h) = (u32::from(region.to.x) - x0 + 1, u32::from(region.to.y) - y0 + 1);
                let img =
                    image::RgbaImage::from_raw(u32::from(shot.width), u32::from(shot.height), shot.rgba)
                        .ok_or(GuestError::WrongSize)?;
                if x0 >= img.width() || y0 >= img.height() {
                    return Err(GuestError::ZoomOutside {
                        x: x0,
                        y: y0,
                        width: img.width(),
                        height: img.height(),
                    });
                }
                let crop = image::imageops::crop_imm(
                    &img,
                    x0,
                    y0,
                    w.min(img.width() - x0),
                    h.min(img.height() - y0),
                )
                .to_image();
                let mut png = Vec::new();
                crop.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                    .map_err(|e| GuestError::Png("zoomed region", e))?;
                Ok(ActionResult::Image(Frame {
                    hash: Digest::of(&png),
                    pixels: hex::encode(airlock_streaming::mirror::frame_hash_rgba(
                        crop.width() as u16,
                        crop.height() as u16,
                        crop.as_raw(),
                    )),
                    png,
                    width: crop.width() as u16,
                    height: crop.height() as u16,
                }))
            })
            .await
        }
        Action::CursorPosition => {
            blocking(guest, |g| {
                let (x, y) = g.pointer()?;
                Ok(ActionResult::Cursor(Point { x, y }))
            })
            .await
        }
        Action::ReadFile { path, size } => read_file(guest, path, *size).await,
        Action::WriteFile {
            path,
            content,
            sha256,
            ..
        } => {
            let request = airlock_protocol::PutFile {
                path: path.clone(),
                mode: 0o644,
                size: content.len() as u64,
                create_parents: true,
            };
            let d = guest
                .put_file(request, std::io::Cursor::new(content.clone()))
                .await
                .map_err(GuestError::File)?;
            if d.sha256_hex() != *sha256 {
                return Err(GuestError::FileDigest { path: path.clone() });
            }
            Ok(ActionResult::File(FileResult::Written {
                path: path.clone(),
                size: d.size,
                sha256: d.sha256_hex(),
            }))
        }
        Action::ListFiles { path } => {
            let l = guest
                .list_dir(path, AGENT_LIST_LIMIT)
                .await
                .map_err(GuestError::File)?;
            Ok(ActionResult::File(FileResult::Listed(crate::files::listing_of(
                path, l,
            ))))
        }
        Action::Exec { .. } => {
            let req = action.guest_exec().map_err(|e| GuestError::Exec(e.into()))?;
            blocking(guest, move |g| {
                g.exec(req).map(ActionResult::Exec).map_err(GuestError::from)
            })
            .await
        }
        Action::HoldKey { combo, duration_ms } => {
            let down = Input::KeyState {
                combo: combo.clone(),
                down: true,
            };
            blocking(guest, move |g| g.input(down).map_err(GuestError::from)).await?;
            tokio::time::sleep(Duration::from_millis(u64::from(*duration_ms))).await;
            let up = Input::KeyState {
                combo: combo.clone(),
                down: false,
            };
            blocking(guest, move |g| g.input(up).map_err(GuestError::from)).await?;
            Ok(ActionResult::Done)
        }
        Action::Key { .. }
        | Action::Type { .. }
        | Action::MouseMove { .. }
        | Action::Click { .. }
        | Action::MouseDown { .. }
        | Action::MouseUp { .. }
        | Action::Drag { .. }
        | Action::Scroll { .. } => {
            let action = action.clone();
            blocking(guest, move |g| {
                let pointer = if action.needs_pointer() {
                    let (x, y) = g.pointer()?;
                    Some(Point { x, y })
                } else {
                    None
                };
                for input in action.guest_inputs(pointer) {
                    g.input(input)?;
                }
                Ok(())
            })
            .await?;
            if !settle.is_zero() {
                tokio::time::sleep(settle).await;
            }
            Ok(ActionResult::Done)
        }
    }
}

/// Reads one file for an agent: at most [`airlock_domain::action::MAX_AGENT_FILE`] bytes, and no
/// more than the size the policy judged (a file that grew since is refused, not read).
async fn read_file(guest: &Arc<GuestClient>, path: &str, judged: u64) -> Result<ActionResult, GuestError> {
    use tokio::io::AsyncReadExt as _;
    let max = airlock_domain::action::MAX_AGENT_FILE.min(judged);
    let download = guest.get_path(path).await.map_err(GuestError::File)?;
    match download.content() {
        airlock_protocol::Content::DirectoryTar { .. } => {
            return Err(GuestError::Folder {
                path: path.to_string(),
            })
        }
        airlock_protocol::Content::File { size, .. } if size > max => {
            return Err(GuestError::FileTooLarge {
                path: path.to_string(),
                max,
            })
        }
        airlock_protocol::Content::File { .. } => {}
    }
    let mut bytes = Vec::new();
    let mut limited = download.take(max + 1);
    limited
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| GuestError::File(airlock_sandbox::TransferError::Protocol(e.to_string())))?;
    if bytes.len() as u64 > max {
        return Err(GuestError::FileTooLarge {
            path: path.to_string(),
            max,
        });
    }
    let digest = limited.into_inner().digest();
    let sha256 = match digest {
        Some(d) => d.sha256_hex(),
        None => {
            return Err(GuestError::File(airlock_sandbox::TransferError::Protocol(
                "the read ended without the guest's digest".into(),
            )))
        }
    };
    Ok(ActionResult::File(FileResult::Read {
        path: path.to_string(),
        bytes,
        sha256,
    }))
}

/// The size of the regular file at `path`, from a listing of its folder. The policy judges reads
/// by it; when it cannot be told (not there, not a file, the folder cannot be listed or lists too
/// many entries) it is `u64::MAX`, so a rule about large reads asks rather than allows.
pub(crate) async fn probe_size(guest: &Arc<GuestClient>, path: &str) -> u64 {
    let Some((dir, name)) = path.rsplit_once('/') else {
        return u64::MAX;
    };
    let dir = if dir.is_empty() { "/" } else { dir };
    match guest.list_dir(dir, airlock_protocol::MAX_LIST_ENTRIES).await {
        Ok(l) => l
            .entries
            .iter()
            .find(|e| e.name == name && e.raw_name.is_none() && e.kind == airlock_protocol::EntryKind::File)
            .map_or(u64::MAX, |e| e.size),
        Err(_) => u64::MAX,
    }
}
