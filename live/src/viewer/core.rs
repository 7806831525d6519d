//! The viewer's state machine: what one viewer is sent, and what its operator's input does.
//!
//! Pure logic in the style of str0m: no I/O, no clock, no tokio. The task in [`super`] owns the
//! socket, the WebRTC peer, the encoder feed and the supervisor; it turns everything that happens
//! into an [`Input`], calls [`Viewer::handle`] with the time (`now_ms`, milliseconds on a monotonic
//! clock of its choosing), and carries out the [`Output`]s in order.
//!
//! Some outputs are requests that the task answers at once, before carrying out the outputs that
//! follow them, by handing the answer back to [`Viewer::handle`] (whose outputs then come first):
//!
//! | output | answer |
//! |---|---|
//! | [`Output::Admit`] | [`Input::Admitted`] |
//! | [`Output::Subscribe`] | [`Input::Subscribed`] |
//! | [`Output::ShowThumbnail`] | [`Input::Thumbnail`] with the current thumbnail, if any |
//! | [`Output::AnswerOffer`] | [`Input::RtcOpened`] or [`Input::RtcRefused`] |
//! | [`Output::RtcWrite`] | [`Input::RtcWritten`] when the write succeeded |
//! | [`Output::RenderStill`] | [`Input::StillSent`] when the still was queued |
//! | [`Output::Lease`] | [`Input::LeaseRefused`] when the supervisor refused it |
//! | [`Output::Snapshot`] | [`Input::Snapshot`] |
//! | [`Output::ReportDamage`] | [`Input::DamageSince`] |
//! | [`Output::QueueRefine`] | [`Input::RefineLost`] for the patches that could not be queued |
//!
//! In video mode the core also keeps the client's *refinement layer* exact ([`airlock_streaming::refine`]):
//! before a video unit it reports what changed since the layer was last told (a `damage` message,
//! so the client clears those regions), and when [`Viewer::refine_due_at`] comes (the task then
//! hands in [`Input::RefineDue`]) it has lossless patches made of the tiles that have rested
//! ([`Output::MakeRefine`], encoded off the task; they come back as [`Input::RefineMade`]). A patch
//! whose region changed while it was being made is dropped and its tiles wait for the next rest.
//!
//! What the core decides: the messages and their order (welcome, lease, mode, errors, refusal
//! notices), which encoder feed the viewer reads (through [`Controller`]), when to ask for a
//! keyframe, which frames go on the socket and which are dropped for a lagging client, which
//! operator input is admitted and forwarded to the guest, which keys and buttons are held (and
//! released when control ends), and when the operator's input summary is written to the ledger.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use airlock_domain::{Holder, LeaseCommand};
use airlock_protocol::Input as GuestInput;
use airlock_records::{HumanInput, InputSummary as RecordedSummary};
use airlock_streaming::adapt::{self, AckEstimator, Controller, Decision, Mode, NetSample, Transport};
use airlock_streaming::hub::{EncodedUnit, Quality, Thumbnail};
use airlock_streaming::mirror::Damage;
use airlock_streaming::refine::{ChangeLog, Tiles, REST_MS};
use airlock_streaming::wire::{
    self, ClientMessage, OperatorInput, ServerMessage, StillHeader, StillPurpose, TransportKind, VideoHeader,
    ViewMode,
};
use airlock_streaming::{Codec, Rect};
use sha2::{Digest as _, Sha256};

use crate::stream::StepOut;

/// WebCodecs frames in flight (sent, not acknowledged) before the viewer counts as lagging.
pub const MAX_INFLIGHT: usize = 4;
/// A WebCodecs frame unacknowledged this long (ms) counts as dropped by the client.
pub const INFLIGHT_EXPIRY_MS: u64 = 1_000;
/// Minimum time (ms) between two keyframe requests made to resynchronise a client.
pub const RESYNC_EVERY_MS: u64 = 250;
/// Operator input summaries are written at least this often (ms) while input flows.
pub const SUMMARY_EVERY_MS: u64 = 30_000;
/// At most one "input refused" notice per this interval (ms).
pub const REFUSAL_NOTICE_EVERY_MS: u64 = 2_000;

/// Who a viewer is and what its client said in its hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The viewer's number (unique in this process).
    pub viewer: u64,
    /// The sandbox it views.
    pub sandbox: String,
    /// Its operator.
    pub operator: String,
    /// How its client takes video.
    pub transport: TransportKind,
    /// Codecs its client decodes, in its order of preference.
    pub codecs: Vec<Codec>,
    /// Its operator has this sandbox's session view open.
    pub focused: bool,
    /// A WebRTC client that can also decode video sent on its socket.
    pub socket_video: bool,
    /// Wall-clock time (ms since the Unix epoch) when `now_ms` was 0: ledger summaries carry
    /// wall-clock times.
    pub unix_ms_at_zero: u64,
    /// Why its operator may not drive (a watcher, a view link), or `None` when they may: then
    /// takeover, hand-back and input are refused here and never reach the session.
    pub may_not_drive: Option<String>,
}

/// How the session answered an admission request ([`Output::Admit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The operator holds control: the input goes to the guest.
    Admitted,
    /// The lease refused it (the reason, for the operator).
    Refused(String),
    /// The sandbox's session is gone.
    SessionGone(String),
}

/// Everything that happens to a viewer.
#[derive(Debug)]
pub enum Input {
    /// The viewer starts: the lease as it is, the screen size and the steps to replay.
    Start {
        /// Who holds control.
        holder: Holder,
        /// The lease epoch.
        epoch: u64,
        /// Screen width.
        width: u16,
        /// Screen height.
        height: u16,
        /// The recent steps of the command view.
        steps: Vec<Arc<StepOut>>,
    },
    /// A text message from the client, parsed.
    Client(ClientMessage),
    /// A client message that is malformed or too large.
    Malformed(String),
    /// Operator input from the socket or the WebRTC data channel, parsed.
    Operator(OperatorInput),
    /// Operator input that did not parse.
    Unreadable(String),
    /// The answer to [`Output::Admit`].
    Admitted {
        /// The input that was asked about.
        input: OperatorInput,
        /// The session's answer.
        answer: Admission,
    },
    /// The lease as it is now (it changed, or the viewer may have missed a change).
    Lease {
        /// Who holds control.
        holder: Holder,
        /// The lease epoch.
        epoch: u64,
    },
    /// The supervisor refused an [`Output::Lease`] command.
    LeaseRefused(String),
    /// The sandbox was destroyed.
    Destroyed,
    /// A step of the agent, for the command view.
    Step(Arc<StepOut>),
    /// A new thumbnail (or the current one, answering [`Output::ShowThumbnail`]).
    Thumbnail(Arc<Thumbnail>),
    /// The answer to [`Output::Subscribe`]: `Err` says why the feed could not be opened.
    Subscribed(Result<(), String>),
    /// An encoded unit from the feed. `room` says whether the socket's queue can take a message.
    Unit {
        /// The unit.
        unit: Arc<EncodedUnit>,
        /// The writer queue has room for one more message.
        room: bool,
    },
    /// The feed dropped units this viewer did not read in time.
    FeedLagged(u64),
    /// The feed ended.
    FeedClosed,
    /// The WebRTC peer answering [`Output::AnswerOffer`] is up.
    RtcOpened {
        /// The codec it sends.
        codec: Codec,
        /// The SDP answer.
        sdp: String,
    },
    /// The WebRTC offer was refused.
    RtcRefused(String),
    /// The WebRTC peer connected.
    RtcConnected,
    /// The WebRTC peer closed (the task dropped it).
    RtcClosed,
    /// The WebRTC client asked for a keyframe.
    RtcKeyframeRequest,
    /// A WebRTC receiver report: fraction of packets lost.
    RtcLoss(f64),
    /// The unit of [`Output::RtcWrite`] was written.
    RtcWritten,
    /// Periodic tick: the screen's change rate, and whether the sandbox's stream stopped.
    Tick {
        /// Screen changes per second.
        change_rate: f64,
        /// The stream stopped.
        stream_stopped: bool,
    },
    /// Time for a still (stills mode): the hub's current frame.
    StillsDue {
        /// The hub's current frame number.
        frame: u64,
    },
    /// The still of [`Output::RenderStill`] was queued; it shows `frame`.
    StillSent {
        /// The frame it shows.
        frame: u64,
    },
    /// The mirror has a new frame.
    ScreenChanged {
        /// Its number.
        frame: u64,
    },
    /// [`Viewer::refine_due_at`] has come.
    RefineDue,
    /// The answer to [`Output::Snapshot`].
    Snapshot {
        /// The current frame.
        frame: u64,
        /// What changed since the frame asked about (`since`).
        changed: Damage,
        /// What changed since the frame current [`REST_MS`] ago (`rested`).
        recent: Damage,
    },
    /// The answer to [`Output::ReportDamage`].
    DamageSince {
        /// The current frame.
        frame: u64,
        /// What changed since the frame asked about.
        damage: Damage,
    },
    /// The patches [`Output::MakeRefine`] asked for (those that could be made), in its order.
    RefineMade {
        /// The batch they answer.
        batch: u64,
        /// Each patch's region and its `Refine` still message.
        patches: Vec<(Rect, Vec<u8>)>,
    },
    /// Patches of [`Output::QueueRefine`] could not be queued.
    RefineLost {
        /// Their regions.
        rects: Vec<Rect>,
    },
    /// The client went away: last words.
    Closed,
}

/// What the task is to do, in order.
#[derive(Debug)]
pub enum Output {
    /// Send a control message (waiting for room in the queue).
    Send(ServerMessage),
    /// Send a text message already encoded (waiting for room in the queue).
    SendText(String),
    /// Offer a binary message; dropped when the queue is full.
    Offer(Vec<u8>),
    /// Send a close frame with this reason.
    Close(String),
    /// Stop serving the viewer.
    End,
    /// Ask the session whether the operator may send this input; `press` counts it as an action.
    Admit {
        /// The input.
        input: OperatorInput,
        /// A press (button, key, wheel): counted for the hand-back summary.
        press: bool,
    },
    /// Forward input to the guest, in order. `droppable` input may be dropped when the guest is
    /// behind.
    Guest {
        /// The guest inputs.
        inputs: Vec<GuestInput>,
        /// Pointer motion: may be dropped.
        droppable: bool,
    },
    /// Issue a lease command for this viewer's operator.
    Lease(LeaseCommand),
    /// Record the operator's input summary in the ledger.
    Record(HumanInput),
    /// Record that the operator tried `request` (`takeover`, `input`, …) and may not (once per
    /// request per viewer).
    RecordForbidden(&'static str),
    /// Read the shared encoder feed for `(codec, quality)` instead of the current one.
    Subscribe {
        /// Codec.
        codec: Codec,
        /// Quality.
        quality: Quality,
    },
    /// Stop reading the encoder feed.
    Unsubscribe,
    /// Ask the feed for a keyframe.
    RequestKeyframe,
    /// Drop any WebRTC peer and answer this offer with a new one sending `codec`.
    AnswerOffer {
        /// The SDP offer.
        sdp: String,
        /// The codec to send.
        codec: Codec,
    },
    /// Write this unit to the WebRTC peer.
    RtcWrite(Arc<EncodedUnit>),
    /// Render a still of what changed since `since` (0: everything) and offer it.
    RenderStill {
        /// The last frame shown.
        since: u64,
    },
    /// Hand back the current thumbnail as [`Input::Thumbnail`].
    ShowThumbnail,
    /// Hand back the current frame number and its damage as [`Input::Snapshot`].
    Snapshot {
        /// Damage since this frame (`None`: everything).
        since: Option<u64>,
        /// And since this one (`None`: everything).
        rested: Option<u64>,
    },
    /// Hand back the current frame number and the damage since `since` as [`Input::DamageSince`].
    ReportDamage {
        /// The frame the refinement layer was last told about.
        since: u64,
    },
    /// Copy the current frame and encode these regions of it losslessly as `Refine` stills, off
    /// the task, and hand them back as [`Input::RefineMade`] (regions that could not be encoded are
    /// left out).
    MakeRefine {
        /// The batch, handed back with the patches.
        batch: u64,
        /// The regions.
        rects: Vec<Rect>,
    },
    /// Offer these patch messages; answer [`Input::RefineLost`] with the regions not queued.
    QueueRefine {
        /// Each patch's region and message.
        patches: Vec<(Rect, Vec<u8>)>,
    },
}

/// What an operator's input stream did, for the ledger.
#[derive(Debug, Default)]
struct InputSummary {
    moves: u64,
    buttons: u64,
    wheel: u64,
    keys: u64,
    keys_hash: Sha256,
    first_ms: Option<u64>,
    last_ms: u64,
    refused: u64,
}

impl InputSummary {
    fn is_empty(&self) -> bool {
        self.moves + self.buttons + self.wheel + self.keys + self.refused == 0
    }

    fn note(&mut self, input: &OperatorInput, now: u64) {
        self.first_ms.get_or_insert(now);
        self.last_ms = now;
        match input {
            OperatorInput::Move { .. } => self.moves += 1,
            OperatorInput::Button { down, .. } => self.buttons += u64::from(*down),
            OperatorInput::Wheel { .. } => self.wheel += 1,
            OperatorInput::Key { down, keysym } => {
                if *down {
                    self.keys += 1;
                    self.keys_hash.update(keysym.to_le_bytes());
                }
            }
            OperatorInput::ReleaseAll => {}
        }
    }

    fn take(&mut self) -> RecordedSummary {
        let s = std::mem::take(self);
        RecordedSummary {
            pointer_moves: s.moves,
            button_presses: s.buttons,
            wheel_events: s.wheel,
            key_presses: s.keys,
            // Typed keys only as a hash of the pressed keysyms and their count.
            keys_sha256: hex::encode(s.keys_hash.finalize()),
            refused: s.refused,
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            duration_ms: s.first_ms.map(|f| s.last_ms.saturating_sub(f)),
        }
    }
}

/// Keys and buttons held down by this viewer, released when control ends.
#[derive(Debug, Default)]
struct Held {
    keys: BTreeSet<u32>,
    buttons: BTreeSet<u8>,
}

impl Held {
    fn track(&mut self, input: &OperatorInput) {
        match input {
            OperatorInput::Key { down: true, keysym } => {
                self.keys.insert(*keysym);
            }
            OperatorInput::Key { down: false, keysym } => {
                self.keys.remove(keysym);
            }
            OperatorInput::Button { button, down, .. } => {
                let b = *button as u8;
                if *down {
                    self.buttons.insert(b);
                } else {
                    self.buttons.remove(&b);
                }
            }
            OperatorInput::Move { .. } | OperatorInput::Wheel { .. } | OperatorInput::ReleaseAll => {}
        }
    }

    fn release(&mut self) -> Vec<GuestInput> {
        let mut out: Vec<GuestInput> = std::mem::take(&mut self.keys)
            .into_iter()
            .map(|k| GuestInput::KeyState {
                combo: wire::keysym_name(k),
                down: false,
            })
            .collect();
        for b in std::mem::take(&mut self.buttons) {
            if let Some(button) = button_of(b) {
                out.push(GuestInput::Button { button, down: false });
            }
        }
        out
    }
}

fn button_of(b: u8) -> Option<airlock_protocol::Button> {
    use airlock_protocol::Button;
    [
        Button::Left,
        Button::Middle,
        Button::Right,
        Button::Back,
        Button::Forward,
    ]
    .into_iter()
    .find(|x| *x as u8 == b)
}

/// Where a viewer's video goes.
enum VideoOut {
    /// Nothing (command view / stills).
    None,
    /// Binary messages on the socket, acknowledged by the client.
    Socket,
    /// The WebRTC peer.
    Rtc,
}

/// The WebRTC peer, as far as decisions go.
#[derive(Debug, Clone, Copy)]
struct Rtc {
    codec: Codec,
    connected: bool,
}

/// The encoder feed a viewer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Feed {
    codec: Codec,
    quality: Quality,
}

/// One viewer's state.
pub struct Viewer {
    config: Config,
    /// Requests refused for the operator's role, told and recorded once each.
    forbidden_told: Vec<&'static str>,
    /// Some operator holds the lease.
    human_holds: bool,
    /// This viewer's operator holds the lease.
    controlling: bool,
    controller: Controller,
    /// The decision last applied.
    decision: Option<Decision>,
    /// A decision waiting for [`Input::Subscribed`], with the feed asked for.
    pending: Option<(Decision, Feed)>,
    feed: Option<Feed>,
    rtc: Option<Rtc>,
    acks: AckEstimator,
    /// WebCodecs frames sent and not acknowledged, with when they were sent.
    inflight: VecDeque<(u64, u64)>,
    last_key_request: Option<u64>,
    need_key: bool,
    last_still_frame: u64,
    last_thumb_frame: u64,
    held: Held,
    summary: InputSummary,
    summary_at: u64,
    last_refusal_notice: Option<u64>,
    refine: Option<Refinement>,
    /// Bytes of refinement patches queued since the last video frame on the socket, and when the
    /// last were: they delay that frame's acknowledgement, so the throughput estimate counts them
    /// with it (if it follows soon).
    patch_bytes: (u64, u64),
}

/// The client's refinement layer, as far as the core knows.
#[derive(Debug)]
struct Refinement {
    width: u16,
    height: u16,
    /// Every change up to this frame has been reported to the client; `None`: its layer is empty.
    reported: Option<u64>,
    /// Tiles whose exact pixels the layer lacks.
    unrefined: Tiles,
    changes: ChangeLog,
    /// The newest frame seen.
    latest: u64,
    /// When a snapshot was last asked for.
    last_attempt: Option<u64>,
    /// Patches being made: their batch, when it was asked for, their regions, and what changed
    /// since their frame (reported to the client, so drawing a patch over it would show a stale
    /// picture).
    making: Option<Making>,
    /// Batches asked for so far (the next batch's number).
    batches: u64,
    /// Since when some of the screen has lacked exact pixels (while nothing does: `None`).
    pending_since: Option<u64>,
    /// The mode the client was last told: its layer is cleared when that leaves or enters video.
    shown_mode: Option<Mode>,
}

/// A batch of patches being made off the task.
#[derive(Debug)]
struct Making {
    batch: u64,
    asked_at: u64,
    rects: Vec<Rect>,
    changed: Vec<Rect>,
}

/// Least time (ms) between two refinement attempts: while something keeps changing, the tiles
/// around it are checked this often.
const REFINE_RETRY_MS: u64 = 50;
/// A batch not back after this long (ms) is given up: its tiles are asked for again.
const REFINE_GIVE_UP_MS: u64 = 3_000;
/// Patch bytes count towards the next video frame's delivery only if it follows within this (ms).
const PATCH_BYTES_FRESH_MS: u64 = 500;

impl Refinement {
    fn new(width: u16, height: u16) -> Refinement {
        Refinement {
            width,
            height,
            reported: None,
            unrefined: Tiles::all(width, height),
            changes: ChangeLog::default(),
            latest: 0,
            last_attempt: None,
            making: None,
            batches: 0,
            pending_since: None,
            shown_mode: None,
        }
    }

    /// The client's layer was cleared (a new mode): everything needs refining.
    fn reset(&mut self, now: u64) {
        self.reported = None;
        self.unrefined.mark_all();
        self.last_attempt = None;
        // A batch still being made answers nothing now: its number no longer matches.
        self.making = None;
        self.pending_since = Some(now);
    }

    fn screen(&self) -> Rect {
        Rect::screen(self.width, self.height)
    }

    /// The rectangles of some damage (the screen for `Full`).
    fn rects(&self, damage: &Damage) -> Vec<Rect> {
        match damage {
            Damage::None => Vec::new(),
            Damage::Full => vec![self.screen()],
            Damage::Rects(rects) => rects.clone(),
        }
    }

    fn tiles(&self, damage: &Damage) -> Tiles {
        let mut tiles = Tiles::new(self.width, self.height);
        for r in self.rects(damage) {
            tiles.mark(r);
        }
        tiles
    }

    /// Marks what changed; says what the client must clear (nothing while its layer is empty).
    fn changed(&mut self, frame: u64, damage: &Damage) -> Option<ServerMessage> {
        let rects = self.rects(damage);
        for r in &rects {
            self.unrefined.mark(*r);
        }
        if let Some(m) = &mut self.making {
            m.changed.extend(rects.iter().copied());
        }
        let clear = self.reported.is_some() && !rects.is_empty();
        self.reported = Some(frame);
        clear.then_some(ServerMessage::Damage { rects })
    }
}

impl Viewer {
    /// A viewer that has said hello; `holder` is who holds control now.
    pub fn new(config: Config, holder: &Holder, now_ms: u64) -> Viewer {
        let (human_holds, controlling) = lease_state(holder, &config.operator);
        let controller = Controller::new(
            adapt::Viewer {
                transport: transport_of(config.transport),
                codecs: config.codecs.clone(),
                focused: config.focused,
                controlling,
                human_in_control: human_holds,
                socket_video: config.socket_video,
            },
            now_ms,
        );
        Viewer {
            config,
            forbidden_told: Vec::new(),
            human_holds,
            controlling,
            controller,
            decision: None,
            pending: None,
            feed: None,
            rtc: None,
            acks: AckEstimator::new(),
            inflight: VecDeque::new(),
            last_key_request: None,
            need_key: false,
            last_still_frame: 0,
            last_thumb_frame: 0,
            held: Held::default(),
            summary: InputSummary::default(),
            summary_at: now_ms,
            last_refusal_notice: None,
            refine: None,
            patch_bytes: (0, 0),
        }
    }

    /// When [`Input::RefineDue`] is to be handed in (ms on the `now_ms` clock): in video mode, once
    /// what lacks exact pixels has waited [`REST_MS`] (then every [`REFINE_RETRY_MS`] while some of
    /// it keeps changing: only tiles that rested are sent), or when a batch being made is overdue.
    /// `None`: not needed.
    pub fn refine_due_at(&self) -> Option<u64> {
        let r = self.refine.as_ref()?;
        if self.decision.as_ref().map(|d| d.mode) != Some(Mode::Video) {
            return None;
        }
        if let Some(m) = &r.making {
            return Some(m.asked_at + REFINE_GIVE_UP_MS);
        }
        let behind = r.reported.is_none_or(|f| r.latest > f) || !r.unrefined.is_empty();
        if !behind {
            return None;
        }
        let waited = r.pending_since.map_or(0, |t| t + REST_MS);
        let retry = r.last_attempt.map_or(0, |t| t + REFINE_RETRY_MS);
        Some(waited.max(retry))
    }

    /// Handles one input at `now_ms` and says what to do, in order.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        let now = now_ms;
        match input {
            Input::Start {
                holder,
                epoch,
                width,
                height,
                steps,
            } => {
                out.push(Output::Send(ServerMessage::Welcome {
                    viewer: self.config.viewer,
                    sandbox: self.config.sandbox.clone(),
                    operator: self.config.operator.clone(),
                    width,
                    height,
                }));
                self.refine = Some(Refinement::new(width, height));
                self.set_lease(&holder, epoch, now, &mut out);
                for step in steps {
                    step_out(&step, &mut out);
                }
                self.decide(now, &mut out);
            }
            Input::Client(m) => self.on_client(m, now, &mut out),
            Input::Malformed(e) => out.push(error("bad_message", e)),
            Input::Unreadable(e) => out.push(error("bad_input", e)),
            Input::Operator(input) => self.on_operator(input, &mut out),
            Input::Admitted { input, answer } => self.on_admitted(input, answer, now, &mut out),
            Input::Lease { holder, epoch } => {
                self.set_lease(&holder, epoch, now, &mut out);
                self.decide(now, &mut out);
            }
            Input::LeaseRefused(e) => out.push(error("lease", e)),
            Input::Destroyed => out.push(Output::Close("the sandbox was destroyed".into())),
            Input::Step(step) => step_out(&step, &mut out),
            Input::Thumbnail(t) => self.on_thumbnail(&t, &mut out),
            Input::Subscribed(result) => self.on_subscribed(result, now, &mut out),
            Input::Unit { unit, room } => self.on_unit(unit, room, now, &mut out),
            Input::FeedLagged(missed) => {
                tracing::debug!(missed, "the viewer's feed lagged; resynchronising on a keyframe");
                self.need_key = true;
                // This viewer fell behind the encoder: the network says nothing about that, so only
                // the acknowledged socket path counts it as a lagging client.
                if self.config.transport == TransportKind::WebCodecs {
                    self.controller.on_backlog_drop(now);
                }
                if self.feed.is_some() {
                    out.push(Output::RequestKeyframe);
                }
            }
            Input::FeedClosed => {
                self.feed = None;
                self.decision = None;
                self.decide(now, &mut out);
            }
            Input::RtcOpened { codec, sdp } => {
                self.rtc = Some(Rtc {
                    codec,
                    connected: false,
                });
                out.push(Output::Send(ServerMessage::Answer { sdp }));
            }
            Input::RtcRefused(e) => out.push(error("webrtc", e)),
            Input::RtcConnected => {
                if let Some(rtc) = &mut self.rtc {
                    rtc.connected = true;
                }
                self.controller.on_keyframe_request(now);
                self.decide(now, &mut out);
            }
            Input::RtcClosed => {
                self.rtc = None;
                self.decide(now, &mut out);
            }
            Input::RtcKeyframeRequest => {
                self.controller.on_keyframe_request(now);
                self.decide(now, &mut out);
            }
            Input::RtcLoss(loss) => self.controller.on_network(NetSample {
                at_ms: now,
                loss: Some(loss),
                ..NetSample::default()
            }),
            Input::RtcWritten => self.need_key = false,
            Input::Tick {
                change_rate,
                stream_stopped,
            } => {
                if stream_stopped {
                    out.push(Output::Close("the sandbox's stream stopped".into()));
                    out.push(Output::End);
                    return out;
                }
                self.controller.on_content(change_rate, now);
                self.decide(now, &mut out);
                self.prune_inflight(now);
                self.resync_if_room(now, &mut out);
                if now.saturating_sub(self.summary_at) >= SUMMARY_EVERY_MS {
                    self.flush_summary(now, &mut out);
                }
            }
            Input::StillsDue { frame } => {
                let stills = self.decision.as_ref().map(|d| d.mode) == Some(Mode::Stills);
                if stills && frame != self.last_still_frame && frame != 0 {
                    out.push(Output::RenderStill {
                        since: self.last_still_frame,
                    });
                }
            }
            Input::StillSent { frame } => self.last_still_frame = frame,
            Input::ScreenChanged { frame } => {
                if let Some(r) = &mut self.refine {
                    r.changes.changed(frame, now);
                    r.latest = r.latest.max(frame);
                    r.pending_since.get_or_insert(now);
                }
            }
            Input::RefineDue => self.on_refine_due(now, &mut out),
            Input::Snapshot {
                frame,
                changed,
                recent,
            } => self.on_snapshot(frame, &changed, &recent, now, &mut out),
            Input::DamageSince { frame, damage } => {
                if let Some(r) = &mut self.refine {
                    r.latest = r.latest.max(frame);
                    if let Some(clear) = r.changed(frame, &damage) {
                        out.push(Output::Send(clear));
                    }
                }
            }
            Input::RefineMade { batch, patches } => self.on_refine_made(batch, patches, now, &mut out),
            Input::RefineLost { rects } => {
                if let Some(r) = &mut self.refine {
                    r.pending_since.get_or_insert(now);
                    for rect in rects {
                        r.unrefined.mark(rect);
                    }
                }
            }
            Input::Closed => self.end_control(now, &mut out),
        }
        out
    }

    fn on_client(&mut self, m: ClientMessage, now: u64, out: &mut Vec<Output>) {
        match m {
            ClientMessage::Hello { .. } => out.push(error("bad_message", "hello was already sent")),
            ClientMessage::Focus { focused } => {
                self.config.focused = focused;
                self.update_viewer(now);
                self.decide(now, out);
            }
            ClientMessage::Ack { frame } => {
                // Acknowledgements are cumulative: a frame the client dropped is never acked.
                while self.inflight.front().is_some_and(|(f, _)| *f <= frame) {
                    self.inflight.pop_front();
                }
                self.acks.on_ack(frame, now);
                let sample = self.acks.sample(now);
                self.controller.on_network(sample);
                self.resync_if_room(now, out);
            }
            ClientMessage::Keyframe => {
                // The client discarded what it had (decoder error or its own backlog).
                self.inflight.clear();
                self.need_key = true;
                self.controller.on_keyframe_request(now);
                self.decide(now, out);
                self.resync_if_room(now, out);
            }
            ClientMessage::Offer { sdp } => self.on_offer(sdp, out),
            ClientMessage::Takeover | ClientMessage::Handback { .. }
                if self.config.may_not_drive.is_some() =>
            {
                self.forbid(
                    if matches!(m, ClientMessage::Takeover) {
                        "takeover"
                    } else {
                        "handback"
                    },
                    out,
                );
            }
            ClientMessage::Takeover => out.push(Output::Lease(LeaseCommand::Take {
                operator: self.config.operator.clone(),
            })),
            ClientMessage::Handback { note } => {
                // The input summary first, then the hand-back (whose ledger entry carries the note),
                // exactly as through `POST /api/sandboxes/ID/lease`: one path, one record of each.
                self.flush_summary(now, out);
                out.push(Output::Lease(LeaseCommand::HandBack {
                    operator: self.config.operator.clone(),
                    note,
                }));
            }
            ClientMessage::Stats {
                rtt_ms,
                loss,
                bandwidth_kbps: _,
                frames_decoded: _,
            } => self.controller.on_network(NetSample {
                at_ms: now,
                rtt_ms,
                loss,
                // The browser's receive-side figure is app-limited (as REMB is on the WebRTC path).
                bandwidth_bps: None,
                ..NetSample::default()
            }),
        }
    }

    fn on_offer(&mut self, sdp: String, out: &mut Vec<Output>) {
        if self.config.transport != TransportKind::WebRtc {
            out.push(error(
                "bad_message",
                "an offer needs a viewer that said hello with transport webrtc",
            ));
            return;
        }
        let Some(codec) = [Codec::H264, Codec::Vp8]
            .into_iter()
            .find(|c| self.config.codecs.contains(c))
        else {
            out.push(error("bad_message", "the hello named no codec this server sends"));
            return;
        };
        self.rtc = None;
        out.push(Output::AnswerOffer { sdp, codec });
    }

    /// Operator input: dropped, or sent to the session for admission.
    /// Tells the client (and has the task record) once per request that its operator may not.
    fn forbid(&mut self, request: &'static str, out: &mut Vec<Output>) {
        if self.forbidden_told.contains(&request) {
            return;
        }
        self.forbidden_told.push(request);
        let why = self.config.may_not_drive.clone().unwrap_or_default();
        out.push(error("forbidden", format!("{request} refused: {why}")));
        out.push(Output::RecordForbidden(request));
    }

    fn on_operator(&mut self, input: OperatorInput, out: &mut Vec<Output>) {
        if self.config.may_not_drive.is_some() {
            if input != OperatorInput::ReleaseAll {
                self.forbid("input", out);
            }
            return;
        }
        if input == OperatorInput::ReleaseAll && !self.controlling {
            // Clients send it when they lose focus or control: nothing of theirs is held.
            return;
        }
        // Presses are actions (counted for the handback summary); motion and releases are not.
        let press = matches!(
            input,
            OperatorInput::Button { down: true, .. }
                | OperatorInput::Key { down: true, .. }
                | OperatorInput::Wheel { .. }
        );
        out.push(Output::Admit { input, press });
    }

    fn on_admitted(&mut self, input: OperatorInput, answer: Admission, now: u64, out: &mut Vec<Output>) {
        match answer {
            Admission::Admitted => {}
            Admission::Refused(reason) => {
                self.summary.refused += 1;
                let notice_due = self
                    .last_refusal_notice
                    .is_none_or(|t| now.saturating_sub(t) >= REFUSAL_NOTICE_EVERY_MS);
                if notice_due {
                    self.last_refusal_notice = Some(now);
                    tracing::info!(%reason, "watcher input ignored");
                    out.push(Output::Send(ServerMessage::Input {
                        accepted: false,
                        reason: format!("input ignored: {reason}"),
                    }));
                }
                return;
            }
            Admission::SessionGone(e) => {
                out.push(error("session_gone", e));
                return;
            }
        }
        self.summary.note(&input, self.config.unix_ms_at_zero + now);
        let inputs = match input {
            OperatorInput::ReleaseAll => self.held.release(),
            other => {
                self.held.track(&other);
                other.to_guest()
            }
        };
        if inputs.is_empty() {
            return;
        }
        out.push(Output::Guest {
            inputs,
            // Pointer motion may be dropped when the guest is behind; presses never are.
            droppable: matches!(input, OperatorInput::Move { .. }),
        });
    }

    /// Takes in who holds the lease and tells the client; when this viewer's control ends, releases
    /// what it holds and writes its summary.
    fn set_lease(&mut self, holder: &Holder, epoch: u64, now: u64, out: &mut Vec<Output>) {
        let was = self.controlling;
        let (human, me) = lease_state(holder, &self.config.operator);
        self.human_holds = human;
        self.controlling = me;
        self.update_viewer(now);
        let (name, operator) = match holder {
            Holder::Agent => ("agent", None),
            Holder::Human { operator } => ("human", Some(operator.clone())),
            Holder::Paused { .. } => ("paused", None),
        };
        out.push(Output::Send(ServerMessage::Lease {
            holder: name.to_string(),
            operator,
            epoch,
            you_control: me,
        }));
        if was && !me {
            self.end_control(now, out);
        }
    }

    /// Releases anything still held and writes the summary.
    fn end_control(&mut self, now: u64, out: &mut Vec<Output>) {
        let inputs = self.held.release();
        if !inputs.is_empty() {
            out.push(Output::Guest {
                inputs,
                droppable: false,
            });
        }
        self.flush_summary(now, out);
    }

    fn flush_summary(&mut self, now: u64, out: &mut Vec<Output>) {
        self.summary_at = now;
        if self.summary.is_empty() {
            return;
        }
        out.push(Output::Record(HumanInput {
            viewer: Some(self.config.viewer),
            transport: Some(self.config.transport),
            epoch: None,
            action: None,
            summary: Some(self.summary.take()),
            ok: true,
            error: None,
            handback_note: None,
        }));
    }

    fn update_viewer(&mut self, now: u64) {
        self.controller.set_viewer(
            adapt::Viewer {
                transport: transport_of(self.config.transport),
                codecs: self.config.codecs.clone(),
                focused: self.config.focused,
                controlling: self.controlling,
                human_in_control: self.human_holds,
                socket_video: self.config.socket_video,
            },
            now,
        );
    }

    /// Asks the controller and applies its decision (after the feed it needs is open).
    fn decide(&mut self, now: u64, out: &mut Vec<Output>) {
        let d = self.controller.decide(now);
        let video_ready = match self.config.transport {
            TransportKind::WebRtc => self.rtc.is_some(),
            TransportKind::WebCodecs => true,
            TransportKind::None => false,
        };
        match (d.mode, d.codec, d.tier) {
            (Mode::Video, Some(codec), Some(tier)) if video_ready => {
                let codec = match (self.rtc, self.config.transport) {
                    (Some(rtc), TransportKind::WebRtc) => rtc.codec,
                    _ => codec,
                };
                let wanted = Feed {
                    codec,
                    quality: Quality {
                        fps: tier.fps(),
                        bitrate_bps: tier.bitrate_bps(),
                    },
                };
                if self.feed != Some(wanted) {
                    // The rest of the decision waits for the answer.
                    self.feed = None;
                    self.pending = Some((d, wanted));
                    out.push(Output::Subscribe {
                        codec: wanted.codec,
                        quality: wanted.quality,
                    });
                    return;
                }
                if d.keyframe {
                    out.push(Output::RequestKeyframe);
                }
            }
            _ => {
                if self.feed.take().is_some() {
                    out.push(Output::Unsubscribe);
                }
            }
        }
        self.apply(d, now, out);
    }

    fn on_subscribed(&mut self, result: Result<(), String>, now: u64, out: &mut Vec<Output>) {
        let Some((d, feed)) = self.pending.take() else {
            return;
        };
        match result {
            Ok(()) => {
                self.feed = Some(feed);
                self.need_key = true;
                self.inflight.clear();
            }
            Err(e) => {
                out.push(error("video", e));
                self.feed = None;
            }
        }
        self.apply(d, now, out);
    }

    /// Tells the client about a changed decision.
    fn apply(&mut self, d: Decision, now: u64, out: &mut Vec<Output>) {
        let changed = d.changed || self.decision.is_none();
        if !changed {
            return;
        }
        let mode_changed = self.decision.as_ref().map(|p| p.mode) != Some(d.mode);
        let entering_pictures = mode_changed && d.mode != Mode::Video;
        if let Some(r) = &mut self.refine {
            // The client clears its layer when the mode it is told leaves or enters video (not on
            // a new decision in the same mode, e.g. after the feed closed and reopened).
            let was_video = r.shown_mode == Some(Mode::Video);
            if was_video != (d.mode == Mode::Video) || r.shown_mode.is_none() {
                r.reset(now);
                self.patch_bytes = (0, 0);
            }
            r.shown_mode = Some(d.mode);
        }
        let mode = ServerMessage::Mode {
            mode: view_mode(d.mode),
            codec: match d.mode {
                Mode::Video => self.feed.map(|f| f.codec),
                Mode::Command | Mode::Stills => None,
            },
            fps: d.fps,
            bitrate_kbps: d.bitrate_bps / 1000,
            reason: d.reason.to_string(),
        };
        if self.decision.as_ref().map(|p| p.via_socket) != Some(d.via_socket) {
            // A new path starts from a keyframe.
            self.need_key = true;
            self.inflight.clear();
            if self.feed.is_some() {
                out.push(Output::RequestKeyframe);
            }
        }
        self.decision = Some(d);
        out.push(Output::Send(mode));
        if entering_pictures {
            // Entering command view or stills: show the current picture at once.
            self.last_thumb_frame = 0;
            self.last_still_frame = 0;
            out.push(Output::ShowThumbnail);
        }
    }

    fn on_thumbnail(&mut self, t: &Thumbnail, out: &mut Vec<Output>) {
        if t.frame == self.last_thumb_frame {
            return;
        }
        if self.decision.as_ref().map(|d| d.mode) == Some(Mode::Video) {
            return;
        }
        self.last_thumb_frame = t.frame;
        out.push(Output::Offer(wire::encode_still(
            &StillHeader {
                purpose: StillPurpose::Thumbnail,
                format: t.format,
                step: 0,
                frame: t.frame,
                rect: airlock_streaming::Rect::screen(t.screen_w, t.screen_h),
                screen_w: t.screen_w,
                screen_h: t.screen_h,
            },
            &t.image,
        )));
    }

    fn on_unit(&mut self, unit: Arc<EncodedUnit>, room: bool, now: u64, out: &mut Vec<Output>) {
        if self.need_key && !unit.keyframe {
            return;
        }
        let report = self.refine.as_ref().and_then(|r| {
            let since = r.reported?;
            (r.latest.max(unit.frame) > since).then_some(Output::ReportDamage { since })
        });
        match self.video_out() {
            VideoOut::None => {}
            VideoOut::Rtc => {
                out.extend(report);
                out.push(Output::RtcWrite(unit));
            }
            VideoOut::Socket => {
                self.prune_inflight(now);
                if self.inflight.len() >= MAX_INFLIGHT || !room {
                    // The client lags: drop to the newest frame (which needs a keyframe).
                    self.need_key = true;
                    self.controller.on_backlog_drop(now);
                    return;
                }
                let msg = wire::encode_video(
                    &VideoHeader {
                        codec: unit.codec,
                        keyframe: unit.keyframe,
                        width: unit.width,
                        height: unit.height,
                        frame: unit.frame,
                        captured_us: unit.received_unix_us,
                    },
                    &unit.data,
                );
                self.inflight.push_back((unit.frame, now));
                let (patches, at) = std::mem::take(&mut self.patch_bytes);
                let patches = if now.saturating_sub(at) <= PATCH_BYTES_FRESH_MS {
                    patches
                } else {
                    0
                };
                self.acks.on_send(unit.frame, msg.len() as u64 + patches, now);
                self.need_key = false;
                out.extend(report);
                out.push(Output::Offer(msg));
            }
        }
    }

    fn on_refine_due(&mut self, now: u64, out: &mut Vec<Output>) {
        if self.refine_due_at().is_none_or(|due| due > now) {
            return;
        }
        let Some(r) = &mut self.refine else { return };
        if let Some(m) = r.making.take() {
            // Overdue (the encode failed or its answer was lost): ask for its tiles again.
            tracing::warn!(
                batch = m.batch,
                "refinement patches did not come back; asking again"
            );
            for rect in m.rects {
                r.unrefined.mark(rect);
            }
        }
        r.last_attempt = Some(now);
        out.push(Output::Snapshot {
            since: r.reported,
            rested: r.changes.rested_frame(now),
        });
    }

    /// Clears what changed from the client's layer and sends the tiles that have rested.
    ///
    /// The pixels are copied when the patches are made, a moment later: a region that changed in
    /// between is newer than `frame` there, which is still exact, and that change is reported after
    /// this snapshot like any other (dropping the patch while it is made, clearing it once sent).
    fn on_snapshot(
        &mut self,
        frame: u64,
        changed: &Damage,
        recent: &Damage,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let Some(r) = &mut self.refine else { return };
        if self.decision.as_ref().map(|d| d.mode) != Some(Mode::Video) {
            return;
        }
        r.latest = r.latest.max(frame);
        if let Some(clear) = r.changed(frame, changed) {
            out.push(Output::Send(clear));
        }
        let busy = r.tiles(recent);
        let rects = r.unrefined.take_settled(&busy);
        if !rects.is_empty() {
            r.batches += 1;
            r.making = Some(Making {
                batch: r.batches,
                asked_at: now,
                rects: rects.clone(),
                changed: Vec::new(),
            });
            out.push(Output::MakeRefine {
                batch: r.batches,
                rects,
            });
        } else if r.unrefined.is_empty() && r.reported.is_some_and(|f| f >= r.latest) {
            r.pending_since = None;
        }
    }

    /// Queues the patches that are still exact; the others' tiles wait for the next rest.
    fn on_refine_made(&mut self, batch: u64, patches: Vec<(Rect, Vec<u8>)>, now: u64, out: &mut Vec<Output>) {
        let socket_video = matches!(self.video_out(), VideoOut::Socket);
        let Some(r) = &mut self.refine else { return };
        if r.making.as_ref().is_none_or(|m| m.batch != batch) {
            // Asked for before the layer was cleared, or given up: nothing of it applies now.
            return;
        }
        let Some(Making {
            rects: asked,
            changed,
            ..
        }) = r.making.take()
        else {
            return;
        };
        let made: Vec<Rect> = patches.iter().map(|(rect, _)| *rect).collect();
        for rect in asked.iter().filter(|a| !made.contains(a)) {
            r.unrefined.mark(*rect); // not encoded: try again later
        }
        let (fresh, stale): (Vec<_>, Vec<_>) = patches
            .into_iter()
            .partition(|(rect, _)| !changed.iter().any(|c| rect.intersects(*c)));
        for (rect, _) in stale {
            r.unrefined.mark(rect);
        }
        if r.unrefined.is_empty() && r.reported.is_some_and(|f| f >= r.latest) {
            r.pending_since = None;
        }
        if !fresh.is_empty() {
            if socket_video {
                self.patch_bytes.0 += fresh.iter().map(|(_, m)| m.len() as u64).sum::<u64>();
                self.patch_bytes.1 = now;
            }
            out.push(Output::QueueRefine { patches: fresh });
        }
    }

    /// Forgets frames unacknowledged for [`INFLIGHT_EXPIRY_MS`]: the client dropped them.
    fn prune_inflight(&mut self, now: u64) {
        while self
            .inflight
            .front()
            .is_some_and(|(_, t)| now.saturating_sub(*t) > INFLIGHT_EXPIRY_MS)
        {
            self.inflight.pop_front();
        }
    }

    /// After frames were skipped, asks the feed for a keyframe once the client has room for it (at
    /// most every [`RESYNC_EVERY_MS`]).
    fn resync_if_room(&mut self, now: u64, out: &mut Vec<Output>) {
        if !self.need_key || self.inflight.len() >= MAX_INFLIGHT {
            return;
        }
        if self
            .last_key_request
            .is_some_and(|t| now.saturating_sub(t) < RESYNC_EVERY_MS)
        {
            return;
        }
        if self.feed.is_some() {
            out.push(Output::RequestKeyframe);
            self.last_key_request = Some(now);
        }
    }

    fn video_out(&self) -> VideoOut {
        let via_socket = self.decision.as_ref().is_some_and(|d| d.via_socket);
        let rtc_connected = self.rtc.is_some_and(|r| r.connected);
        match (self.config.transport, via_socket, rtc_connected) {
            (TransportKind::WebRtc, true, _) => VideoOut::Socket,
            (TransportKind::WebRtc, false, true) => VideoOut::Rtc,
            (TransportKind::WebRtc, false, false) => VideoOut::None,
            (TransportKind::WebCodecs, _, _) => VideoOut::Socket,
            (TransportKind::None, _, _) => VideoOut::None,
        }
    }
}

fn step_out(step: &StepOut, out: &mut Vec<Output>) {
    out.push(Output::SendText(step.text.clone()));
    if let Some(still) = &step.still {
        out.push(Output::Offer(still.clone()));
    }
}

fn error(code: &str, message: impl Into<String>) -> Output {
    Output::Send(ServerMessage::Error {
        code: code.to_string(),
        message: message.into(),
    })
}

/// (some operator holds the lease, `operator` holds it).
fn lease_state(holder: &Holder, operator: &str) -> (bool, bool) {
    match holder {
        Holder::Human { operator: op } => (true, op == operator),
        Holder::Agent | Holder::Paused { .. } => (false, false),
    }
}

fn transport_of(t: TransportKind) -> Transport {
    match t {
        TransportKind::WebRtc => Transport::WebRtc,
        TransportKind::WebCodecs => Transport::WebCodecs,
        TransportKind::None => Transport::CommandOnly,
    }
}

fn view_mode(m: Mode) -> ViewMode {
    match m {
        Mode::Command => ViewMode::Command,
        Mode::Stills => ViewMode::Stills,
        Mode::Video => ViewMode::Video,
    }
}

#[cfg(test)]
mod tests {
    use airlock_protocol::Button;

    use super::*;

    const ME: &str = "alice";

    fn config(transport: TransportKind) -> Config {
        Config {
            viewer: 7,
            sandbox: "sb".into(),
            operator: ME.into(),
            transport,
            codecs: vec![Codec::H264],
            focused: true,
            socket_video: false,
            unix_ms_at_zero: 1_000_000,
            may_not_drive: None,
        }
    }

    fn human(operator: &str) -> Holder {
        Holder::Human {
            operator: operator.into(),
        }
    }

    /// A started viewer, its feed (if it wants one) open, and the outputs of starting it.
    fn started(transport: TransportKind, holder: Holder) -> (Viewer, Vec<Output>) {
        let mut v = Viewer::new(config(transport), &holder, 0);
        let mut out = v.handle(
            Input::Start {
                holder,
                epoch: 1,
                width: 800,
                height: 600,
                steps: vec![],
            },
            0,
        );
        if out.iter().any(|o| matches!(o, Output::Subscribe { .. })) {
            out.extend(v.handle(Input::Subscribed(Ok(())), 0));
        }
        (v, out)
    }

    /// A controlling viewer that has pressed `keysym` (admitted at `now`).
    fn pressing(keysym: u32, now: u64) -> Viewer {
        let (mut v, _) = started(TransportKind::WebCodecs, human(ME));
        let key = OperatorInput::Key { down: true, keysym };
        v.handle(Input::Operator(key), now);
        v.handle(admitted(key), now);
        v
    }

    fn admitted(input: OperatorInput) -> Input {
        Input::Admitted {
            input,
            answer: Admission::Admitted,
        }
    }

    fn refused(input: OperatorInput) -> Input {
        Input::Admitted {
            input,
            answer: Admission::Refused("operator bob holds control, not alice".into()),
        }
    }

    /// A short name per output, to compare sequences.
    fn names(out: &[Output]) -> Vec<String> {
        out.iter()
            .map(|o| match o {
                Output::Send(ServerMessage::Error { code, .. }) => format!("error:{code}"),
                Output::Send(ServerMessage::Mode { mode, .. }) => format!("mode:{mode:?}").to_lowercase(),
                Output::Send(m) => {
                    let json: serde_json::Value = serde_json::from_str(&m.to_json()).expect("json");
                    format!("send:{}", json["type"].as_str().unwrap_or("?"))
                }
                Output::SendText(_) => "text".into(),
                Output::Offer(_) => "offer".into(),
                Output::Close(_) => "close".into(),
                Output::End => "end".into(),
                Output::Admit { .. } => "admit".into(),
                Output::Guest { .. } => "guest".into(),
                Output::Lease(LeaseCommand::HandBack { .. }) => "lease:hand_back".into(),
                Output::Lease(_) => "lease".into(),
                Output::Record(_) => "record".into(),
                Output::RecordForbidden(r) => format!("forbidden:{r}"),
                Output::Subscribe { .. } => "subscribe".into(),
                Output::Unsubscribe => "unsubscribe".into(),
                Output::RequestKeyframe => "keyframe".into(),
                Output::AnswerOffer { .. } => "answer_offer".into(),
                Output::RtcWrite(_) => "rtc_write".into(),
                Output::RenderStill { .. } => "render_still".into(),
                Output::ShowThumbnail => "show_thumbnail".into(),
                Output::Snapshot { .. } => "snapshot".into(),
                Output::ReportDamage { .. } => "report_damage".into(),
                Output::MakeRefine { .. } => "make_refine".into(),
                Output::QueueRefine { .. } => "queue_refine".into(),
            })
            .collect()
    }

    /// The answer to an `Output::Snapshot`: at `frame`, what changed since the frame asked about,
    /// and what changed in the last [`REST_MS`].
    fn snapshot(frame: u64, changed: Damage, recent: Damage) -> Input {
        Input::Snapshot {
            frame,
            changed,
            recent,
        }
    }

    fn rect(x: u16, y: u16, width: u16, height: u16) -> Rect {
        Rect { x, y, width, height }
    }

    /// The regions of the `MakeRefine` in `out`, if any.
    fn refined(out: &[Output]) -> Option<Vec<Rect>> {
        out.iter().find_map(|o| match o {
            Output::MakeRefine { rects, .. } => Some(rects.clone()),
            _ => None,
        })
    }

    /// The patches the `MakeRefine` in `out` asked for, as the task hands them back.
    fn made(out: &[Output]) -> Input {
        let (batch, rects) = out
            .iter()
            .find_map(|o| match o {
                Output::MakeRefine { batch, rects, .. } => Some((*batch, rects.clone())),
                _ => None,
            })
            .expect("a MakeRefine");
        Input::RefineMade {
            batch,
            patches: rects.iter().map(|r| (*r, vec![4u8])).collect(),
        }
    }

    /// The regions of the `damage` message in `out`, if any.
    fn cleared(out: &[Output]) -> Option<Vec<Rect>> {
        out.iter().find_map(|o| match o {
            Output::Send(ServerMessage::Damage { rects }) => Some(rects.clone()),
            _ => None,
        })
    }

    /// A video viewer whose screen rested at frame 5 (t = 1000) and was sent exact at t = 1100.
    fn refined_viewer() -> Viewer {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        v.handle(Input::ScreenChanged { frame: 5 }, 1_000);
        // The layer has lacked everything since the viewer started (t = 0).
        assert_eq!(v.refine_due_at(), Some(REST_MS));
        let out = v.handle(Input::RefineDue, 1_100);
        assert!(matches!(
            out.as_slice(),
            [Output::Snapshot {
                since: None,
                rested: Some(5)
            }]
        ));
        let out = v.handle(snapshot(5, Damage::Full, Damage::None), 1_100);
        assert_eq!(cleared(&out), None, "the client's layer starts empty");
        assert_eq!(refined(&out), Some(vec![rect(0, 0, 800, 600)]));
        assert_eq!(
            v.refine_due_at(),
            Some(1_100 + REFINE_GIVE_UP_MS),
            "one batch at a time, given up if it does not come back"
        );
        let out = v.handle(made(&out), 1_150);
        assert_eq!(names(&out), ["queue_refine"]);
        v
    }

    #[test]
    fn a_resting_screen_is_sent_exact_once_after_the_rest_time() {
        let mut v = refined_viewer();
        assert_eq!(v.refine_due_at(), None, "nothing left to refine");
        assert!(v.handle(Input::RefineDue, 5_000).is_empty());
    }

    #[test]
    fn a_change_is_cleared_from_the_layer_before_the_video_that_shows_it() {
        let mut v = refined_viewer();
        v.handle(Input::ScreenChanged { frame: 6 }, 2_000);
        let out = v.handle(
            Input::Unit {
                unit: unit(6, true),
                room: true,
            },
            2_000,
        );
        assert_eq!(names(&out), ["report_damage", "offer"]);
        assert!(matches!(out[0], Output::ReportDamage { since: 5 }));
        let out = v.handle(
            Input::DamageSince {
                frame: 6,
                damage: Damage::Rects(vec![rect(10, 10, 8, 14)]),
            },
            2_000,
        );
        assert_eq!(cleared(&out), Some(vec![rect(10, 10, 8, 14)]));
        // Rested again: only the tile that changed is sent, and the next unit of an unchanged screen
        // reports nothing.
        assert_eq!(v.refine_due_at(), Some(2_000 + REST_MS));
        v.handle(Input::RefineDue, 2_100);
        let out = v.handle(snapshot(6, Damage::None, Damage::None), 2_100);
        assert_eq!(refined(&out), Some(vec![rect(0, 0, 64, 64)]));
        v.handle(made(&out), 2_150);
        let out = v.handle(
            Input::Unit {
                unit: unit(6, false),
                room: true,
            },
            2_200,
        );
        assert_eq!(names(&out), ["offer"]);
    }

    #[test]
    fn a_patch_whose_region_changed_while_it_was_made_is_dropped_and_made_again() {
        let mut v = refined_viewer();
        v.handle(Input::ScreenChanged { frame: 6 }, 2_000);
        v.handle(Input::RefineDue, 2_100);
        let asked = v.handle(
            snapshot(
                6,
                Damage::Rects(vec![rect(10, 10, 8, 14), rect(300, 300, 8, 14)]),
                Damage::None,
            ),
            2_100,
        );
        // While the two patches are made, the first region changes again (a unit reports it).
        v.handle(Input::ScreenChanged { frame: 7 }, 2_120);
        v.handle(
            Input::DamageSince {
                frame: 7,
                damage: Damage::Rects(vec![rect(12, 12, 8, 14)]),
            },
            2_120,
        );
        let out = v.handle(made(&asked), 2_150);
        let queued: Vec<Rect> = out
            .iter()
            .flat_map(|o| match o {
                Output::QueueRefine { patches } => patches.iter().map(|(r, _)| *r).collect(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(queued, vec![rect(256, 256, 64, 64)], "only the patch still exact");
        assert_eq!(
            v.refine_due_at(),
            Some(2_100 + REFINE_RETRY_MS),
            "the changed tile is due again"
        );
    }

    #[test]
    fn a_region_that_keeps_changing_holds_back_only_its_own_tiles() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        v.handle(Input::ScreenChanged { frame: 5 }, 1_000);
        v.handle(Input::ScreenChanged { frame: 9 }, 1_090);
        v.handle(Input::RefineDue, 1_190);
        let out = v.handle(
            // A spinner in one tile, top right, changed in the last 100 ms.
            snapshot(10, Damage::Full, Damage::Rects(vec![rect(710, 10, 16, 16)])),
            1_190,
        );
        let rects = refined(&out).expect("the rest of the screen is sent");
        assert!(!rects
            .iter()
            .any(|r| r.x <= 710 && r.x + r.width > 710 && r.y < 64));
        assert_eq!(rects.iter().map(|r| r.area()).sum::<u64>(), 800 * 600 - 64 * 64);
        v.handle(made(&out), 1_200);
        assert!(v.refine_due_at().is_some(), "the spinner's tile is still due");
    }

    #[test]
    fn a_region_changing_every_frame_does_not_put_off_the_rest_of_the_screen() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        // A spinner changes every 30 ms from t = 1000 on: the screen never rests as a whole.
        for (i, t) in (1_000..1_400).step_by(30).enumerate() {
            v.handle(Input::ScreenChanged { frame: 5 + i as u64 }, t);
        }
        assert!(
            v.refine_due_at().is_some_and(|t| t <= 1_000 + REST_MS),
            "due once what lacks exact pixels has waited, whatever else changes"
        );
        let out = v.handle(Input::RefineDue, 1_390);
        // The frame current 100 ms ago: what changed since is busy, the rest is sent.
        assert!(matches!(
            out.as_slice(),
            [Output::Snapshot { rested: Some(_), .. }]
        ));
    }

    #[test]
    fn patches_asked_for_before_the_layer_was_cleared_are_ignored() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        v.handle(Input::ScreenChanged { frame: 5 }, 1_000);
        v.handle(Input::RefineDue, 1_100);
        let old = v.handle(snapshot(5, Damage::Full, Damage::None), 1_100);
        // Command view and back: the client's layer is cleared, a new batch is asked for.
        v.handle(Input::Client(ClientMessage::Focus { focused: false }), 1_110);
        v.handle(Input::Client(ClientMessage::Focus { focused: true }), 1_120);
        v.handle(Input::Subscribed(Ok(())), 1_120);
        v.handle(Input::RefineDue, 1_220);
        let new = v.handle(snapshot(6, Damage::Full, Damage::None), 1_220);
        assert!(
            v.handle(made(&old), 1_230).is_empty(),
            "the old batch answers nothing"
        );
        assert_eq!(names(&v.handle(made(&new), 1_240)), ["queue_refine"]);
    }

    #[test]
    fn a_batch_that_never_comes_back_is_asked_for_again() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        v.handle(Input::ScreenChanged { frame: 5 }, 1_000);
        v.handle(Input::RefineDue, 1_100);
        v.handle(snapshot(5, Damage::Full, Damage::None), 1_100);
        let out = v.handle(Input::RefineDue, 1_100 + REFINE_GIVE_UP_MS);
        assert!(matches!(out.as_slice(), [Output::Snapshot { .. }]));
        let out = v.handle(snapshot(5, Damage::None, Damage::None), 1_100 + REFINE_GIVE_UP_MS);
        assert_eq!(refined(&out), Some(vec![rect(0, 0, 800, 600)]));
    }

    #[test]
    fn patches_that_could_not_be_queued_are_sent_again() {
        let mut v = refined_viewer();
        v.handle(
            Input::RefineLost {
                rects: vec![rect(100, 100, 64, 64)],
            },
            1_100,
        );
        assert_eq!(v.refine_due_at(), Some(1_100 + REST_MS));
    }

    #[test]
    fn the_command_view_refines_nothing_and_video_starts_again_from_an_empty_layer() {
        let mut v = refined_viewer();
        v.handle(Input::Client(ClientMessage::Focus { focused: false }), 3_000);
        assert_eq!(v.refine_due_at(), None);
        v.handle(Input::Client(ClientMessage::Focus { focused: true }), 4_000);
        v.handle(Input::Subscribed(Ok(())), 4_000);
        assert_eq!(v.refine_due_at(), Some(4_000 + REST_MS));
        let out = v.handle(Input::RefineDue, 4_000 + REST_MS);
        assert!(matches!(out.as_slice(), [Output::Snapshot { since: None, .. }]));
    }

    fn unit(frame: u64, keyframe: bool) -> Arc<EncodedUnit> {
        Arc::new(EncodedUnit {
            codec: Codec::H264,
            keyframe,
            width: 800,
            height: 600,
            frame,
            received_at: std::time::Instant::now(),
            received_unix_us: 0,
            encode_us: 0,
            data: vec![0u8; 100].into(),
        })
    }

    #[test]
    fn a_viewer_is_welcomed_told_the_lease_and_replayed_the_steps_before_its_mode() {
        let mut v = Viewer::new(config(TransportKind::None), &Holder::Agent, 0);
        let step = Arc::new(StepOut {
            seq: 1,
            text: "{}".into(),
            still: Some(vec![1]),
        });
        let out = v.handle(
            Input::Start {
                holder: Holder::Agent,
                epoch: 3,
                width: 800,
                height: 600,
                steps: vec![step],
            },
            0,
        );
        assert_eq!(
            names(&out),
            [
                "send:welcome",
                "send:lease",
                "text",
                "offer",
                "mode:stills",
                "show_thumbnail"
            ]
        );
    }

    #[test]
    fn a_watchers_input_is_refused_with_a_reason_and_nothing_is_forwarded() {
        let (mut v, _) = started(TransportKind::WebCodecs, human("bob"));
        let key = OperatorInput::Key {
            down: true,
            keysym: 0x61,
        };
        let asked = v.handle(Input::Operator(key), 10);
        assert!(matches!(asked[..], [Output::Admit { press: true, .. }]));
        let out = v.handle(refused(key), 10);
        match &out[..] {
            [Output::Send(ServerMessage::Input { accepted, reason })] => {
                assert!(!accepted);
                assert_eq!(reason, "input ignored: operator bob holds control, not alice");
            }
            other => panic!("expected one refusal notice, got {other:?}"),
        }
    }

    #[test]
    fn a_viewer_whose_role_may_not_drive_is_refused_takeover_and_input_once_each_and_nothing_reaches_the_session(
    ) {
        let mut cfg = config(TransportKind::WebCodecs);
        cfg.may_not_drive = Some("alice is a watcher and may not take control or send input".into());
        let mut v = Viewer::new(cfg, &Holder::Agent, 0);
        let out = v.handle(Input::Client(ClientMessage::Takeover), 0);
        match &out[..] {
            [Output::Send(ServerMessage::Error { code, message }), Output::RecordForbidden("takeover")] => {
                assert_eq!(code, "forbidden");
                assert_eq!(
                    message,
                    "takeover refused: alice is a watcher and may not take control or send input"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(
            v.handle(Input::Client(ClientMessage::Takeover), 1).is_empty(),
            "told once"
        );
        let key = OperatorInput::Key {
            down: true,
            keysym: 0x61,
        };
        assert!(matches!(
            v.handle(Input::Operator(key), 2)[..],
            [Output::Send(_), Output::RecordForbidden("input")]
        ));
        assert!(v.handle(Input::Operator(key), 3).is_empty());
        let hb = v.handle(Input::Client(ClientMessage::Handback { note: None }), 4);
        assert!(!hb
            .iter()
            .any(|o| matches!(o, Output::Lease(_) | Output::Admit { .. })));
    }

    #[test]
    fn refusal_notices_are_sent_at_most_every_two_seconds() {
        let (mut v, _) = started(TransportKind::WebCodecs, human("bob"));
        let m = OperatorInput::Move { x: 1, y: 1 };
        assert_eq!(names(&v.handle(refused(m), 0)), ["send:input"]);
        assert!(v.handle(refused(m), 1_999).is_empty());
        assert_eq!(names(&v.handle(refused(m), 2_000)), ["send:input"]);
    }

    #[test]
    fn a_release_all_from_a_viewer_without_control_is_dropped_without_asking() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        assert!(v.handle(Input::Operator(OperatorInput::ReleaseAll), 0).is_empty());
    }

    #[test]
    fn motion_is_asked_about_without_counting_as_an_action() {
        let (mut v, _) = started(TransportKind::WebCodecs, human(ME));
        let out = v.handle(Input::Operator(OperatorInput::Move { x: 3, y: 4 }), 0);
        assert!(matches!(out[..], [Output::Admit { press: false, .. }]));
    }

    #[test]
    fn admitted_motion_is_forwarded_as_droppable_and_presses_are_not() {
        let (mut v, _) = started(TransportKind::WebCodecs, human(ME));
        let out = v.handle(admitted(OperatorInput::Move { x: 3, y: 4 }), 0);
        assert!(matches!(out[..], [Output::Guest { droppable: true, .. }]));
        let press = OperatorInput::Button {
            button: Button::Left,
            down: true,
            x: 3,
            y: 4,
        };
        let out = v.handle(admitted(press), 0);
        assert!(matches!(out[..], [Output::Guest { droppable: false, .. }]));
    }

    #[test]
    fn losing_control_releases_held_keys_once() {
        let mut v = pressing(0xffe1, 0);
        let out = v.handle(
            Input::Lease {
                holder: Holder::Agent,
                epoch: 2,
            },
            100,
        );
        let released: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Guest { inputs, droppable } => Some((inputs.clone(), *droppable)),
                _ => None,
            })
            .collect();
        assert_eq!(
            released,
            [(
                vec![GuestInput::KeyState {
                    combo: "0xffe1".into(),
                    down: false
                }],
                false
            )]
        );
        let again = v.handle(
            Input::Lease {
                holder: Holder::Agent,
                epoch: 3,
            },
            200,
        );
        assert!(!again.iter().any(|o| matches!(o, Output::Guest { .. })));
    }

    #[test]
    fn losing_control_writes_the_summary_after_the_lease_message() {
        let mut v = pressing(0x61, 0);
        let out = v.handle(
            Input::Lease {
                holder: human("bob"),
                epoch: 2,
            },
            100,
        );
        assert_eq!(names(&out)[..3], ["send:lease", "guest", "record"]);
    }

    #[test]
    fn the_summary_is_flushed_before_a_hand_back() {
        let mut v = pressing(0x61, 0);
        let out = v.handle(
            Input::Client(ClientMessage::Handback {
                note: Some("done".into()),
            }),
            50,
        );
        assert_eq!(names(&out), ["record", "lease:hand_back"]);
        match &out[0] {
            Output::Record(h) => {
                let s = h.summary.as_ref().expect("a summary");
                assert_eq!(s.key_presses, 1);
                assert_eq!(s.first_ms, Some(1_000_000), "wall-clock time");
            }
            other => panic!("expected a record, got {other:?}"),
        }
    }

    #[test]
    fn a_hand_back_with_no_input_records_no_summary() {
        let (mut v, _) = started(TransportKind::WebCodecs, human(ME));
        let out = v.handle(Input::Client(ClientMessage::Handback { note: None }), 50);
        assert_eq!(names(&out), ["lease:hand_back"]);
    }

    #[test]
    fn the_summary_is_written_every_thirty_seconds_while_input_flows() {
        let mut v = pressing(0x61, 0);
        let tick = |now| {
            (
                Input::Tick {
                    change_rate: 0.0,
                    stream_stopped: false,
                },
                now,
            )
        };
        let (i, now) = tick(SUMMARY_EVERY_MS - 1);
        assert!(!names(&v.handle(i, now)).contains(&"record".to_string()));
        let (i, now) = tick(SUMMARY_EVERY_MS);
        assert!(names(&v.handle(i, now)).contains(&"record".to_string()));
    }

    #[test]
    fn a_refused_lease_command_is_reported_to_the_client() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        let out = v.handle(Input::Client(ClientMessage::Takeover), 0);
        assert!(matches!(&out[..], [Output::Lease(LeaseCommand::Take { operator })] if operator == ME));
        let out = v.handle(Input::LeaseRefused("nope".into()), 0);
        assert_eq!(names(&out), ["error:lease"]);
    }

    #[test]
    fn a_focused_webcodecs_viewer_gets_video_once_its_feed_is_open() {
        let (_, out) = started(TransportKind::WebCodecs, Holder::Agent);
        assert_eq!(
            names(&out),
            [
                "send:welcome",
                "send:lease",
                "subscribe",
                "keyframe",
                "mode:video"
            ]
        );
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Subscribe {
                codec: Codec::H264,
                quality: Quality { fps: 15, .. }
            }
        )));
    }

    #[test]
    fn a_feed_that_cannot_open_is_reported_before_the_mode() {
        let mut v = Viewer::new(config(TransportKind::WebCodecs), &Holder::Agent, 0);
        v.handle(
            Input::Start {
                holder: Holder::Agent,
                epoch: 1,
                width: 800,
                height: 600,
                steps: vec![],
            },
            0,
        );
        let out = v.handle(Input::Subscribed(Err("no encoder".into())), 0);
        assert_eq!(names(&out), ["error:video", "mode:video"]);
        assert!(matches!(
            &out[1],
            Output::Send(ServerMessage::Mode { codec: None, .. })
        ));
    }

    #[test]
    fn an_unfocused_viewer_is_moved_to_the_command_view() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        let out = v.handle(Input::Client(ClientMessage::Focus { focused: false }), 100);
        assert_eq!(names(&out), ["unsubscribe", "mode:command", "show_thumbnail"]);
    }

    #[test]
    fn a_thumbnail_is_not_sent_twice_nor_during_video() {
        let (mut v, _) = started(TransportKind::None, Holder::Agent);
        let thumb = Arc::new(Thumbnail {
            frame: 5,
            image: vec![1, 2],
            format: airlock_streaming::wire::StillFormat::Webp,
            screen_w: 800,
            screen_h: 600,
        });
        assert_eq!(names(&v.handle(Input::Thumbnail(thumb.clone()), 0)), ["offer"]);
        assert!(v.handle(Input::Thumbnail(thumb.clone()), 0).is_empty());
        let (mut video, _) = started(TransportKind::WebCodecs, Holder::Agent);
        assert!(video.handle(Input::Thumbnail(thumb), 0).is_empty());
    }

    #[test]
    fn a_malformed_client_message_yields_an_error_and_the_stream_goes_on() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        let out = v.handle(Input::Malformed("expected value at line 1".into()), 10);
        assert_eq!(names(&out), ["error:bad_message"]);
        let out = v.handle(
            Input::Unit {
                unit: unit(1, true),
                room: true,
            },
            20,
        );
        assert_eq!(names(&out), ["offer"]);
    }

    #[test]
    fn a_second_hello_is_an_error() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        let out = v.handle(
            Input::Client(ClientMessage::Hello {
                transport: TransportKind::WebCodecs,
                codecs: vec![],
                focused: true,
                socket_video: false,
            }),
            0,
        );
        assert_eq!(names(&out), ["error:bad_message"]);
    }

    #[test]
    fn an_offer_needs_a_webrtc_viewer() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        let out = v.handle(Input::Client(ClientMessage::Offer { sdp: "v=0".into() }), 0);
        assert_eq!(names(&out), ["error:bad_message"]);
        let (mut rtc, _) = started(TransportKind::WebRtc, Holder::Agent);
        let out = rtc.handle(Input::Client(ClientMessage::Offer { sdp: "v=0".into() }), 0);
        assert!(matches!(
            &out[..],
            [Output::AnswerOffer {
                codec: Codec::H264,
                ..
            }]
        ));
        let out = rtc.handle(
            Input::RtcOpened {
                codec: Codec::H264,
                sdp: "answer".into(),
            },
            0,
        );
        assert_eq!(names(&out), ["send:answer"]);
    }

    #[test]
    fn socket_video_waits_for_a_keyframe_after_joining() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        assert!(v
            .handle(
                Input::Unit {
                    unit: unit(1, false),
                    room: true
                },
                0
            )
            .is_empty());
        assert_eq!(
            names(&v.handle(
                Input::Unit {
                    unit: unit(2, true),
                    room: true
                },
                0
            )),
            ["offer"]
        );
        assert_eq!(
            names(&v.handle(
                Input::Unit {
                    unit: unit(3, false),
                    room: true
                },
                0
            )),
            ["offer"]
        );
    }

    #[test]
    fn a_client_with_too_many_frames_in_flight_skips_to_the_next_keyframe() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        for f in 1..=MAX_INFLIGHT as u64 {
            let out = v.handle(
                Input::Unit {
                    unit: unit(f, f == 1),
                    room: true,
                },
                0,
            );
            assert_eq!(names(&out), ["offer"]);
        }
        let next = MAX_INFLIGHT as u64 + 1;
        assert!(v
            .handle(
                Input::Unit {
                    unit: unit(next, false),
                    room: true
                },
                0
            )
            .is_empty());
        // Acknowledged: room again, and a keyframe is asked for before video resumes.
        let out = v.handle(Input::Client(ClientMessage::Ack { frame: next - 1 }), 10);
        assert_eq!(names(&out), ["keyframe"]);
        assert!(v
            .handle(
                Input::Unit {
                    unit: unit(next + 1, false),
                    room: true
                },
                20
            )
            .is_empty());
        assert_eq!(
            names(&v.handle(
                Input::Unit {
                    unit: unit(next + 2, true),
                    room: true
                },
                30
            )),
            ["offer"]
        );
    }

    #[test]
    fn a_frame_is_dropped_when_the_socket_queue_is_full() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        assert!(v
            .handle(
                Input::Unit {
                    unit: unit(1, true),
                    room: false
                },
                0
            )
            .is_empty());
        assert!(v
            .handle(
                Input::Unit {
                    unit: unit(2, false),
                    room: true
                },
                0
            )
            .is_empty());
    }

    #[test]
    fn a_stopped_stream_closes_the_socket_and_ends_the_viewer() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        let out = v.handle(
            Input::Tick {
                change_rate: 0.0,
                stream_stopped: true,
            },
            250,
        );
        assert_eq!(names(&out), ["close", "end"]);
    }

    #[test]
    fn a_destroyed_sandbox_closes_the_socket() {
        let (mut v, _) = started(TransportKind::WebCodecs, Holder::Agent);
        assert_eq!(names(&v.handle(Input::Destroyed, 0)), ["close"]);
    }

    #[test]
    fn stills_are_rendered_only_in_stills_mode_and_for_new_frames() {
        let (mut v, _) = started(TransportKind::None, Holder::Agent);
        assert!(v.handle(Input::StillsDue { frame: 0 }, 0).is_empty());
        let out = v.handle(Input::StillsDue { frame: 4 }, 0);
        assert!(matches!(out[..], [Output::RenderStill { since: 0 }]));
        v.handle(Input::StillSent { frame: 4 }, 0);
        assert!(v.handle(Input::StillsDue { frame: 4 }, 500).is_empty());
        let (mut video, _) = started(TransportKind::WebCodecs, Holder::Agent);
        assert!(video.handle(Input::StillsDue { frame: 4 }, 0).is_empty());
    }

    #[test]
    fn closing_releases_what_is_held_and_writes_the_summary() {
        let mut v = pressing(0x61, 0);
        assert_eq!(names(&v.handle(Input::Closed, 10)), ["guest", "record"]);
    }

    #[test]
    fn the_summary_counts_and_hashes_but_never_holds_keys() {
        let mut s = InputSummary::default();
        assert!(s.is_empty());
        for (i, input) in [
            OperatorInput::Move { x: 1, y: 2 },
            OperatorInput::Button {
                button: Button::Left,
                down: true,
                x: 1,
                y: 2,
            },
            OperatorInput::Button {
                button: Button::Left,
                down: false,
                x: 1,
                y: 2,
            },
            OperatorInput::Key {
                down: true,
                keysym: 0x70,
            },
            OperatorInput::Key {
                down: false,
                keysym: 0x70,
            },
            OperatorInput::Wheel {
                dx: 0,
                dy: 1,
                x: 1,
                y: 2,
            },
        ]
        .iter()
        .enumerate()
        {
            s.note(input, 1000 + i as u64 * 10);
        }
        let v = s.take();
        assert_eq!(v.pointer_moves, 1);
        assert_eq!(v.button_presses, 1);
        assert_eq!(v.key_presses, 1);
        assert_eq!(v.wheel_events, 1);
        assert_eq!(v.duration_ms, Some(50));
        assert_eq!(v.keys_sha256.len(), 64);
        let json = serde_json::to_string(&v).expect("encode");
        assert!(!json.contains("112"), "no keysym in clear: {json}");
        assert!(s.is_empty(), "take resets");
    }

    #[test]
    fn held_keys_and_buttons_are_released_once() {
        let mut h = Held::default();
        h.track(&OperatorInput::Key {
            down: true,
            keysym: 0xffe1,
        });
        h.track(&OperatorInput::Key {
            down: true,
            keysym: 0x61,
        });
        h.track(&OperatorInput::Key {
            down: false,
            keysym: 0x61,
        });
        h.track(&OperatorInput::Button {
            button: Button::Right,
            down: true,
            x: 0,
            y: 0,
        });
        let released = h.release();
        assert_eq!(
            released,
            vec![
                GuestInput::KeyState {
                    combo: "0xffe1".into(),
                    down: false
                },
                GuestInput::Button {
                    button: Button::Right,
                    down: false
                },
            ]
        );
        assert!(h.release().is_empty());
    }
}
