//! Per-sandbox streams: the guest's frame stream feeding a [`Hub`], and the command view (the
//! sandbox's steps as a log with pictures) built from the supervisor's events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_domain::ApprovalState;
use airlock_policy::Decision;
use airlock_protocol::Reply;
use airlock_sandbox::{GuestClient, ReplyStream};
use airlock_streaming::hub::{damage_bounds, FrameSource, Hub, HubConfig, SourceError};
use airlock_streaming::still::StillFormat;
use airlock_streaming::wire::{
    self, ServerMessage, Step, StepDecision, StepKind, StillHeader, StillPurpose, StillRegion,
};
use tokio::sync::broadcast;
use tracing::Instrument;

use airlock_supervisor::{By, Event, Supervisor};

/// The guest's damage stream is capped at the highest video tier's frame rate.
const GUEST_MAX_FPS: u16 = 30;
/// Steps kept for viewers that join late.
const RECENT_STEPS: usize = 50;
/// Largest step still.
const STEP_STILL_MAX: (u16, u16) = (480, 300);
/// Context kept around a small change in a step still.
const STEP_STILL_MARGIN: u16 = 24;

/// The guest's damage-region stream as a hub source.
pub struct GuestSource {
    guest: Arc<GuestClient>,
    stream: Option<ReplyStream>,
    max_fps: u16,
}

impl GuestSource {
    /// A source over a guest connection.
    pub fn new(guest: Arc<GuestClient>, max_fps: u16) -> GuestSource {
        GuestSource {
            guest,
            stream: None,
            max_fps,
        }
    }
}

/// Why the guest's frame stream failed.
#[derive(Debug, thiserror::Error)]
pub enum GuestStreamError {
    /// `next` before `start`.
    #[error("the frame stream is not started")]
    NotStarted,
    /// The guest answered with an error.
    #[error("the guest stopped the frame stream ({kind:?}): {message}")]
    Stopped {
        /// Its kind.
        kind: airlock_protocol::ErrorKind,
        /// Its words.
        message: String,
    },
    /// The guest ended it.
    #[error("the guest ended the frame stream")]
    Ended,
    /// The guest sent something other than a frame on it.
    #[error("the guest sent a reply other than a frame on the frame stream")]
    Unexpected,
    /// The guest channel failed.
    #[error("the guest channel failed")]
    Channel(#[from] airlock_sandbox::ChannelError),
}

impl FrameSource for GuestSource {
    fn start(&mut self) -> Result<(), SourceError> {
        // Dropping the old stream cancels it in the guest.
        self.stream = None;
        self.stream = Some(self.guest.frames(self.max_fps).map_err(GuestStreamError::from)?);
        Ok(())
    }

    fn next(&mut self, timeout: Duration) -> Result<Option<airlock_protocol::FrameUpdate>, SourceError> {
        let Some(stream) = self.stream.as_ref() else {
            return Err(GuestStreamError::NotStarted.into());
        };
        let err = match stream.next(timeout) {
            Ok(Some(Reply::Frame(u))) => return Ok(Some(u)),
            Ok(None) => return Ok(None),
            Ok(Some(Reply::Error { kind, message })) => GuestStreamError::Stopped { kind, message },
            Ok(Some(Reply::StreamEnded)) => GuestStreamError::Ended,
            Ok(Some(_)) => GuestStreamError::Unexpected,
            Err(e) => GuestStreamError::Channel(e),
        };
        Err(err.into())
    }
}

/// One command-view step as sent to viewers: the JSON message and, when there is one, its still.
#[derive(Debug)]
pub struct StepOut {
    /// Step number within this stream.
    pub seq: u64,
    /// The `step` text message.
    pub text: String,
    /// The binary still message.
    pub still: Option<Vec<u8>>,
}

/// A sandbox's stream: the hub and the command view.
pub struct SandboxStream {
    /// The hub (mirror, encoders, thumbnails).
    pub hub: Hub,
    steps: broadcast::Sender<Arc<StepOut>>,
    recent: Mutex<VecDeque<Arc<StepOut>>>,
}

impl SandboxStream {
    /// Starts streaming a sandbox.
    pub(crate) fn start(
        sup: &Supervisor,
        id: &str,
        guest: Arc<GuestClient>,
        screen: (u16, u16),
    ) -> Arc<SandboxStream> {
        let hub = Hub::start(
            screen.0,
            screen.1,
            Box::new(GuestSource::new(guest, GUEST_MAX_FPS)),
            HubConfig::default(),
            id,
        );
        let stream = Arc::new(SandboxStream {
            hub,
            steps: broadcast::channel(64).0,
            recent: Mutex::new(VecDeque::new()),
        });
        let span = tracing::info_span!("command_view", sandbox = id);
        tokio::spawn(command_view(sup.clone(), id.to_string(), Arc::downgrade(&stream)).instrument(span));
        stream
    }

    /// New steps from now on.
    pub fn subscribe_steps(&self) -> broadcast::Receiver<Arc<StepOut>> {
        self.steps.subscribe()
    }

    /// The most recent steps, oldest first.
    pub fn recent_steps(&self) -> Vec<Arc<StepOut>> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn push(&self, step: StepOut) {
        let step = Arc::new(step);
        if let Ok(mut r) = self.recent.lock() {
            if r.len() >= RECENT_STEPS {
                r.pop_front();
            }
            r.push_back(step.clone());
        }
        let _ = self.steps.send(step);
    }

    /// Stops the hub.
    pub fn stop(&self) {
        self.hub.stop();
    }
}

impl Drop for SandboxStream {
    fn drop(&mut self) {
        self.hub.stop();
    }
}

fn short(v: &serde_json::Value, max: usize) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() <= max {
        s
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

fn describe(action: &airlock_domain::Action) -> String {
    let v = serde_json::to_value(action).unwrap_or_default();
    let kind = action.kind().to_string();
    let args = match &v {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(k, _)| k.as_str() != "action" && k.as_str() != "kind")
            .map(|(k, v)| format!("{k}={}", short(v, 60)))
            .collect::<Vec<_>>()
            .join(" "),
        other => short(other, 80),
    };
    if args.is_empty() {
        kind
    } else {
        format!("{kind} {args}")
    }
}

/// Turns an event about this sandbox into a step (numbered later), and whether it wants a still.
fn step_of(ev: &Event, id: &str) -> Option<(Step, bool)> {
    let step = |at_ms: u64, kind: StepKind, title: String| Step {
        seq: 0,
        at_ms,
        kind,
        title,
        actor: None,
        decision: None,
        detail: None,
        still: None,
    };
    Some(match ev {
        Event::ActionDecided {
            sandbox,
            agent,
            action,
            decision,
            reason,
            shadow_denied,
            at_ms,
        } if sandbox == id => (
            Step {
                actor: Some(agent.clone()),
                decision: Some(if *shadow_denied {
                    StepDecision::ShadowDenied
                } else {
                    match decision {
                        Decision::Allow => StepDecision::Allow,
                        Decision::Ask => StepDecision::Ask,
                        Decision::Deny => StepDecision::Deny,
                    }
                }),
                detail: Some(reason.clone()),
                ..step(*at_ms, StepKind::Decision, describe(action))
            },
            false,
        ),
        Event::ActionExecuted {
            sandbox,
            by,
            action,
            ok,
            error,
            at_ms,
            ..
        } if sandbox == id => (
            Step {
                actor: Some(match by {
                    By::Agent => "agent".to_string(),
                    By::Operator(name) => format!("operator:{name}"),
                }),
                decision: Some(if *ok {
                    StepDecision::Done
                } else {
                    StepDecision::Failed
                }),
                detail: error.clone(),
                ..step(*at_ms, StepKind::Executed, describe(action))
            },
            !action.is_observation(),
        ),
        Event::ActionRefused {
            sandbox,
            agent,
            reason,
            at_ms,
        } if sandbox == id => (
            Step {
                actor: Some(agent.clone()),
                decision: Some(StepDecision::Refused),
                detail: Some(reason.clone()),
                ..step(*at_ms, StepKind::Refused, "action refused".to_string())
            },
            false,
        ),
        Event::ApprovalRequested { approval } if approval.sandbox == id => (
            Step {
                decision: Some(StepDecision::Ask),
                detail: Some(approval.reasons.join("; ")),
                ..step(
                    approval.requested_ms,
                    StepKind::Approval,
                    format!("waiting for an operator: {}", describe(&approval.action)),
                )
            },
            false,
        ),
        Event::ApprovalResolved { approval } if approval.sandbox == id => {
            let (by, detail, decision) = match &approval.state {
                ApprovalState::Pending => (None, None, StepDecision::Pending),
                ApprovalState::Expired => (None, None, StepDecision::Expired),
                ApprovalState::Approved { by } => (Some(by.clone()), None, StepDecision::Approved),
                ApprovalState::Edited { by, action } => (
                    Some(by.clone()),
                    Some(format!("ran instead: {}", describe(action))),
                    StepDecision::Edited,
                ),
                ApprovalState::Denied { by, reason } => {
                    (Some(by.clone()), reason.clone(), StepDecision::Denied)
                }
            };
            (
                Step {
                    actor: by,
                    decision: Some(decision),
                    detail,
                    ..step(
                        airlock_supervisor::now_ms(),
                        StepKind::ApprovalResolved,
                        format!("{}: {}", approval.state.name(), describe(&approval.action)),
                    )
                },
                false,
            )
        }
        Event::GrantIssued { grant } if grant.sandbox == id => (
            Step {
                actor: Some(grant.by.clone()),
                ..step(
                    airlock_supervisor::now_ms(),
                    StepKind::Grant,
                    format!("{} allowed until {}", grant.kind, grant.until_ms),
                )
            },
            false,
        ),
        Event::LeaseChanged {
            sandbox,
            from,
            to,
            epoch,
            at_ms,
            ..
        } if sandbox == id => (
            Step {
                detail: Some(format!("epoch {epoch}")),
                ..step(*at_ms, StepKind::Control, format!("control: {from} → {to}"))
            },
            false,
        ),
        Event::SandboxState {
            sandbox,
            state,
            detail,
            at_ms,
        } if sandbox == id => (
            Step {
                detail: detail.clone(),
                ..step(*at_ms, StepKind::Lifecycle, format!("sandbox {}", state.as_str()))
            },
            false,
        ),
        _ => return None,
    })
}

async fn command_view(sup: Supervisor, id: String, stream: std::sync::Weak<SandboxStream>) {
    let mut events = sup.events().subscribe();
    let mut seq = 0u64;
    let mut still_from = match stream.upgrade() {
        Some(s) => s.hub.frame(),
        None => return,
    };
    loop {
        let ev = match events.recv().await {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "the command view missed events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        let Some(stream) = stream.upgrade() else { break };
        if stream.hub.is_stopped() {
            break;
        }
        let Some((mut step, wants_still)) = step_of(&ev, &id) else {
            continue;
        };
        seq += 1;
        step.seq = seq;
        let mut still = None;
        if wants_still {
            let hub = &stream.hub;
            let (w, h) = hub.size();
            let damage = hub.damage_since(still_from);
            let frame_now = hub.frame();
            if let Some(bounds) = damage_bounds(&damage, w, h) {
                let rect = airlock_streaming::still::expand(bounds, STEP_STILL_MARGIN, w, h);
                match hub.region_still(rect, STEP_STILL_MAX, StillFormat::Webp).await {
                    Ok((image, shown, frame)) => {
                        step.still = Some(StillRegion {
                            x: shown.x,
                            y: shown.y,
                            w: shown.width,
                            h: shown.height,
                        });
                        still = Some(wire::encode_still(
                            &StillHeader {
                                purpose: StillPurpose::StepStill,
                                format: StillFormat::Webp,
                                step: seq,
                                frame,
                                rect: shown,
                                screen_w: w,
                                screen_h: h,
                            },
                            &image,
                        ));
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot make a step still"),
                }
            }
            still_from = frame_now;
        }
        let text = match serde_json::to_string(&ServerMessage::Step { step }) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a step");
                continue;
            }
        };
        stream.push(StepOut { seq, text, still });
    }
}
