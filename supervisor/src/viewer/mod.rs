//! The viewer socket (`GET /api/sandboxes/{id}/view`, WebSocket, operator token): one per
//! viewer, carrying the command view, stills, WebCodecs video and operator input, and the
//! signalling of a WebRTC peer for browsers that have one.
//!
//! One task owns a viewer: it parses what the client sends into typed messages, asks the pure
//! adaptation controller what the viewer should get, applies the decision (which shared encoder
//! feed it reads, what mode it is told), and forwards operator input to the guest only while this
//! viewer's operator holds the control lease. Writes go through a bounded queue drained by a
//! writer task, so a client that stops reading loses video frames (and is eventually closed), never
//! stalls the stream or other viewers.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_domain::{Holder, LeaseCommand};
use airlock_ledger::Actor;
use airlock_protocol::Input;
use airlock_records::{HumanInput, InputSummary as RecordedSummary, Record};
use airlock_streaming::adapt::{AckEstimator, Controller, Decision, Mode, NetSample, Transport, Viewer};
use airlock_streaming::hub::{damage_bounds, EncodedUnit, FeedError, Quality, VideoFeed};
use airlock_streaming::rtc::{RtcConfig, RtcEvent, RtcPeer};
use airlock_streaming::wire::{
    self, ClientMessage, OperatorInput, ServerMessage, StillFormat, StillHeader, StillPurpose, TransportKind,
    VideoHeader, ViewMode,
};
use airlock_streaming::Codec;
use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use sha2::{Digest as _, Sha256};
use tokio::sync::{broadcast, mpsc};

use crate::stream::{SandboxStream, StepOut};
use crate::{CommandError, Event, Session, Supervisor};

/// How long a client may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued for the writer before video is dropped.
const OUT_QUEUE: usize = 32;
/// A write that takes longer than this closes the socket: the client is not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 128 * 1024;
/// WebCodecs frames in flight (sent, not acknowledged) before the viewer counts as lagging.
const MAX_INFLIGHT: usize = 4;
/// A WebCodecs frame unacknowledged this long counts as dropped by the client.
const INFLIGHT_EXPIRY: Duration = Duration::from_secs(1);
/// How often the controller is consulted without an event.
const TICK: Duration = Duration::from_millis(250);
/// Stills-mode refresh interval.
const STILLS_EVERY: Duration = Duration::from_millis(500);
/// Operator input summaries are written at least this often while input flows.
const SUMMARY_EVERY: Duration = Duration::from_secs(30);
/// At most one "input refused" notice per this interval.
const REFUSAL_NOTICE_EVERY: Duration = Duration::from_secs(2);
/// Guest inputs queued per viewer.
const INPUT_QUEUE: usize = 256;

static NEXT_VIEWER: AtomicU64 = AtomicU64::new(1);

/// Settings for viewer sockets.
#[derive(Debug, Clone, Copy)]
pub struct ViewerConfig {
    /// Where WebRTC peers bind.
    pub rtc: RtcConfig,
}

enum Out {
    Text(String),
    Binary(Vec<u8>),
    Close(String),
}

/// The client's side of the writer queue.
struct Writer {
    tx: mpsc::Sender<Out>,
}

impl Writer {
    /// Sends a control message, waiting for room (bounded by the writer's own timeout).
    async fn send(&self, msg: &ServerMessage) -> bool {
        self.tx.send(Out::Text(msg.to_json())).await.is_ok()
    }

    async fn send_raw(&self, out: Out) -> bool {
        self.tx.send(out).await.is_ok()
    }

    /// Offers a droppable message; false when the queue is full.
    fn offer(&self, bytes: Vec<u8>) -> bool {
        self.tx.try_send(Out::Binary(bytes)).is_ok()
    }

    async fn error(&self, code: &str, message: impl Into<String>) -> bool {
        self.send(&ServerMessage::Error {
            code: code.to_string(),
            message: message.into(),
        })
        .await
    }
}

async fn writer_task(mut sink: futures::stream::SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Out>) {
    while let Some(out) = rx.recv().await {
        let (msg, last) = match out {
            Out::Text(t) => (Message::Text(t.into()), false),
            Out::Binary(b) => (Message::Binary(b.into()), false),
            Out::Close(reason) => (
                Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1008,
                    reason: reason.chars().take(120).collect::<String>().into(),
                })),
                true,
            ),
        };
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "viewer socket write failed");
                break;
            }
            Err(_) => {
                tracing::info!("closing a viewer that has not read for {WRITE_TIMEOUT:?}");
                break;
            }
        }
        if last {
            break;
        }
    }
    let _ = sink.close().await;
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

    fn release(&mut self) -> Vec<Input> {
        let mut out: Vec<Input> = std::mem::take(&mut self.keys)
            .into_iter()
            .map(|k| Input::KeyState {
                combo: wire::keysym_name(k),
                down: false,
            })
            .collect();
        for b in std::mem::take(&mut self.buttons) {
            if let Some(button) = button_of(b) {
                out.push(Input::Button { button, down: false });
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

struct ViewerTask {
    sup: Supervisor,
    session: Session,
    stream: Arc<SandboxStream>,
    id: String,
    operator: String,
    viewer: u64,
    config: ViewerConfig,
    out: Writer,
    transport: TransportKind,
    codecs: Vec<Codec>,
    focused: bool,
    socket_video: bool,
    controlling: bool,
    human_holds: bool,
    controller: Controller,
    decision: Option<Decision>,
    feed: Option<VideoFeed>,
    rtc: Option<RtcPeer>,
    rtc_connected: bool,
    acks: AckEstimator,
    /// WebCodecs frames sent and not acknowledged, with when they were sent.
    inflight: VecDeque<(u64, Instant)>,
    last_key_request: Option<Instant>,
    need_key: bool,
    last_still_frame: u64,
    last_thumb_frame: u64,
    inputs: mpsc::Sender<Vec<Input>>,
    held: Held,
    summary: InputSummary,
    summary_at: Instant,
    last_refusal_notice: Option<Instant>,
    t0: Instant,
}

/// Serves one viewer socket until it closes.
pub async fn serve(sup: Supervisor, operator: String, id: String, socket: WebSocket, config: ViewerConfig) {
    let viewer = NEXT_VIEWER.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("viewer", sandbox = %id, %operator, viewer);
    let _ = tracing::Instrument::instrument(run(sup, operator, id, socket, config, viewer), span).await;
}

async fn run(
    sup: Supervisor,
    operator: String,
    id: String,
    socket: WebSocket,
    config: ViewerConfig,
    viewer: u64,
) -> Result<(), CommandError> {
    let (sink, mut incoming) = socket.split();
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(writer_task(sink, rx));
    let out = Writer { tx };
    let session = match sup.session(&id).await {
        Ok(s) => s,
        Err(e) => {
            refuse(out, writer, "unknown_sandbox", e.to_string()).await;
            return Err(e);
        }
    };
    let hello = tokio::time::timeout(HELLO_TIMEOUT, next_client(&mut incoming)).await;
    let (transport, codecs, focused, socket_video) = match hello {
        Ok(Some(Ok(Incoming::Text(ClientMessage::Hello {
            transport,
            codecs,
            focused,
            socket_video,
        })))) => (transport, codecs, focused, socket_video),
        Ok(Some(Ok(_))) => {
            refuse(
                out,
                writer,
                "bad_message",
                "the first message must be a hello".into(),
            )
            .await;
            return Ok(());
        }
        Ok(Some(Err(e))) => {
            refuse(out, writer, "bad_message", e).await;
            return Ok(());
        }
        Ok(None) => return Ok(()),
        Err(_) => {
            refuse(
                out,
                writer,
                "timeout",
                format!("no hello within {HELLO_TIMEOUT:?}"),
            )
            .await;
            return Ok(());
        }
    };
    let stream = match sup.stream(&id).await {
        Ok(s) => s,
        Err(e) => {
            refuse(out, writer, "unknown_sandbox", e.to_string()).await;
            return Err(e);
        }
    };
    let (w, h) = stream.hub.size();
    let view = session.view().await?;
    let (human_holds, controlling) = lease_state(&view.holder, &operator);
    let (inputs, input_rx) = mpsc::channel(INPUT_QUEUE);
    tokio::spawn(input_worker(session.clone(), input_rx));
    let t0 = Instant::now();
    let controller = Controller::new(
        Viewer {
            transport: transport_of(transport),
            codecs: codecs.clone(),
            focused,
            controlling,
            human_in_control: human_holds,
            socket_video,
        },
        0,
    );
    let mut task = ViewerTask {
        sup: sup.clone(),
        session,
        stream: stream.clone(),
        id: id.clone(),
        operator: operator.clone(),
        viewer,
        config,
        out,
        transport,
        codecs,
        focused,
        socket_video,
        controlling,
        human_holds,
        controller,
        decision: None,
        feed: None,
        rtc: None,
        rtc_connected: false,
        acks: AckEstimator::new(),
        inflight: VecDeque::new(),
        last_key_request: None,
        need_key: false,
        last_still_frame: 0,
        last_thumb_frame: 0,
        inputs,
        held: Held::default(),
        summary: InputSummary::default(),
        summary_at: Instant::now(),
        last_refusal_notice: None,
        t0,
    };
    task.out
        .send(&ServerMessage::Welcome {
            viewer,
            sandbox: id.clone(),
            operator: operator.clone(),
            width: w,
            height: h,
        })
        .await;
    task.send_lease(&view.holder, view.epoch).await;
    for step in stream.recent_steps() {
        task.send_step(&step).await;
    }
    let result = task.main_loop(&mut incoming).await;
    task.finish().await;
    drop(task);
    let _ = writer.await;
    result
}

/// Tells the client why, closes the socket and waits for the writer to finish.
async fn refuse(out: Writer, writer: tokio::task::JoinHandle<()>, code: &str, message: String) {
    out.error(code, message.clone()).await;
    out.send_raw(Out::Close(message)).await;
    drop(out);
    let _ = writer.await;
}

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

enum Incoming {
    Text(ClientMessage),
    Binary(Vec<u8>),
}

/// The next client message: `None` when the socket closed; `Err` names a malformed message.
async fn next_client(
    incoming: &mut futures::stream::SplitStream<WebSocket>,
) -> Option<Result<Incoming, String>> {
    loop {
        let msg = match incoming.next().await? {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "viewer socket read failed");
                return None;
            }
        };
        return Some(match msg {
            Message::Text(t) => {
                if t.len() > MAX_CLIENT_MESSAGE {
                    Err(format!(
                        "a message is {} bytes, over the {MAX_CLIENT_MESSAGE}-byte limit",
                        t.len()
                    ))
                } else {
                    wire::parse_client(&t)
                        .map(Incoming::Text)
                        .map_err(|e| e.to_string())
                }
            }
            Message::Binary(b) => {
                if b.len() > MAX_CLIENT_MESSAGE {
                    Err(format!(
                        "a message is {} bytes, over the {MAX_CLIENT_MESSAGE}-byte limit",
                        b.len()
                    ))
                } else {
                    Ok(Incoming::Binary(b.to_vec()))
                }
            }
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) => continue,
        });
    }
}

/// Applies operator input in order, off the async runtime.
async fn input_worker(session: Session, mut rx: mpsc::Receiver<Vec<Input>>) {
    while let Some(batch) = rx.recv().await {
        let guest = session.guest.clone();
        let r = tokio::task::spawn_blocking(move || {
            for input in batch {
                guest.input(input).map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "operator input failed in the guest"),
            Err(e) => tracing::warn!(error = %e, "the input task failed"),
        }
    }
}

async fn recv_feed(feed: &mut Option<VideoFeed>) -> Result<Arc<EncodedUnit>, FeedError> {
    match feed {
        Some(f) => f.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_rtc(rtc: &mut Option<RtcPeer>) -> Option<RtcEvent> {
    match rtc {
        Some(p) => p.next_event().await,
        None => std::future::pending().await,
    }
}

impl ViewerTask {
    fn now(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    async fn main_loop(
        &mut self,
        incoming: &mut futures::stream::SplitStream<WebSocket>,
    ) -> Result<(), CommandError> {
        let mut events = self.sup.events().subscribe();
        let mut steps = self.stream.subscribe_steps();
        let mut thumbs = self.stream.hub.thumbnails();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stills = tokio::time::interval(STILLS_EVERY);
        stills.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.decide().await;
        loop {
            tokio::select! {
                msg = next_client(incoming) => match msg {
                    None => break,
                    Some(Ok(Incoming::Text(m))) => {
                        if !self.on_message(m).await {
                            break;
                        }
                    }
                    Some(Ok(Incoming::Binary(b))) => self.on_input(&b).await,
                    Some(Err(e)) => {
                        self.out.error("bad_message", e).await;
                    }
                },
                unit = recv_feed(&mut self.feed) => self.on_unit(unit).await,
                ev = recv_rtc(&mut self.rtc) => self.on_rtc(ev).await,
                ev = events.recv() => match ev {
                    Ok(ev) => self.on_event(ev).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.refresh_lease().await,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                step = steps.recv() => match step {
                    Ok(step) => self.send_step(&step).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "the viewer missed steps");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                r = thumbs.changed() => {
                    if r.is_err() {
                        break;
                    }
                    let thumb = thumbs.borrow_and_update().clone();
                    if let Some(t) = thumb {
                        self.send_thumbnail(&t).await;
                    }
                }
                _ = stills.tick() => self.send_stills().await,
                _ = tick.tick() => {
                    if self.stream.hub.is_stopped() {
                        self.out.send_raw(Out::Close("the sandbox's stream stopped".into())).await;
                        break;
                    }
                    self.controller.on_content(self.stream.hub.change_rate(), self.now());
                    self.decide().await;
                    self.prune_inflight();
                    self.resync_if_room();
                    if self.summary_at.elapsed() >= SUMMARY_EVERY {
                        self.flush_summary().await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Handles a client text message; false to close.
    async fn on_message(&mut self, m: ClientMessage) -> bool {
        let now = self.now();
        match m {
            ClientMessage::Hello { .. } => {
                self.out.error("bad_message", "hello was already sent").await;
            }
            ClientMessage::Focus { focused } => {
                self.focused = focused;
                self.update_viewer();
                self.decide().await;
            }
            ClientMessage::Ack { frame } => {
                // Acknowledgements are cumulative: a frame the client dropped is never acked.
                while self.inflight.front().is_some_and(|(f, _)| *f <= frame) {
                    self.inflight.pop_front();
                }
                self.acks.on_ack(frame, now);
                let sample = self.acks.sample(now);
                self.controller.on_network(sample);
                self.resync_if_room();
            }
            ClientMessage::Keyframe => {
                // The client discarded what it had (decoder error or its own backlog).
                self.inflight.clear();
                self.need_key = true;
                self.controller.on_keyframe_request(now);
                self.decide().await;
                self.resync_if_room();
            }
            ClientMessage::Offer { sdp } => self.on_offer(&sdp).await,
            ClientMessage::Takeover => {
                let r = self
                    .sup
                    .lease(
                        &self.id,
                        LeaseCommand::Take {
                            operator: self.operator.clone(),
                        },
                    )
                    .await;
                if let Err(e) = r {
                    self.out.error("lease", e.to_string()).await;
                }
            }
            ClientMessage::Handback { note } => {
                // The input summary first, then the hand-back (whose ledger entry carries the note),
                // exactly as through `POST /api/sandboxes/ID/lease`: one path, one record of each.
                self.flush_summary().await;
                let r = self
                    .sup
                    .lease(
                        &self.id,
                        LeaseCommand::HandBack {
                            operator: self.operator.clone(),
                            note,
                        },
                    )
                    .await;
                if let Err(e) = r {
                    self.out.error("lease", e.to_string()).await;
                }
            }
            ClientMessage::Stats {
                rtt_ms,
                loss,
                bandwidth_kbps: _,
                frames_decoded: _,
            } => {
                self.controller.on_network(NetSample {
                    at_ms: now,
                    rtt_ms,
                    loss,
                    // The browser's receive-side figure is app-limited (see `Remb` above).
                    bandwidth_bps: None,
                    ..NetSample::default()
                });
            }
        }
        true
    }

    async fn on_offer(&mut self, sdp: &str) {
        if self.transport != TransportKind::WebRtc {
            self.out
                .error(
                    "bad_message",
                    "an offer needs a viewer that said hello with transport webrtc",
                )
                .await;
            return;
        }
        let Some(codec) = [Codec::H264, Codec::Vp8]
            .into_iter()
            .find(|c| self.codecs.contains(c))
        else {
            self.out
                .error("bad_message", "the hello named no codec this server sends")
                .await;
            return;
        };
        self.rtc = None;
        self.rtc_connected = false;
        match RtcPeer::answer(sdp, codec, self.config.rtc).await {
            Ok((peer, answer)) => {
                self.rtc = Some(peer);
                self.out.send(&ServerMessage::Answer { sdp: answer }).await;
            }
            Err(e) => {
                tracing::info!(error = %e, "WebRTC offer refused");
                self.out.error("webrtc", e.to_string()).await;
            }
        }
    }

    async fn on_rtc(&mut self, ev: Option<RtcEvent>) {
        let now = self.now();
        let Some(ev) = ev else {
            self.rtc = None;
            self.rtc_connected = false;
            self.decide().await;
            return;
        };
        match ev {
            RtcEvent::Connected => {
                self.rtc_connected = true;
                self.controller.on_keyframe_request(now);
                self.decide().await;
            }
            RtcEvent::Closed(reason) => {
                tracing::debug!(%reason, "WebRTC peer closed");
                self.rtc = None;
                self.rtc_connected = false;
                self.decide().await;
            }
            RtcEvent::KeyframeRequest => {
                self.controller.on_keyframe_request(now);
                self.decide().await;
            }
            RtcEvent::ReceiverReport { loss, jitter: _ } => self.controller.on_network(NetSample {
                at_ms: now,
                loss: Some(loss),
                ..NetSample::default()
            }),
            RtcEvent::Remb(bps) => {
                // Chromium's receive-side estimate stays near its start value on a stream that only
                // sends changes (it held a controlling viewer in stills on loopback), so it is only
                // recorded; loss and round-trip time drive adaptation on this path.
                tracing::trace!(bps, "REMB");
            }
            RtcEvent::InputOpen => {}
            RtcEvent::Input(bytes) => self.on_input(&bytes).await,
            RtcEvent::BadInput(reason) => {
                self.out.error("bad_input", reason).await;
            }
        }
    }

    async fn on_input(&mut self, bytes: &[u8]) {
        let (w, h) = self.stream.hub.size();
        let input = match wire::parse_input(bytes, w, h) {
            Ok(i) => i,
            Err(e) => {
                self.out.error("bad_input", e.to_string()).await;
                return;
            }
        };
        let now = crate::now_ms();
        if input == OperatorInput::ReleaseAll && !self.controlling {
            // Clients send it when they lose focus or control: nothing of theirs is held.
            return;
        }
        // Presses are actions (counted for the handback summary); motion and releases are not.
        let is_action = matches!(
            input,
            OperatorInput::Button { down: true, .. }
                | OperatorInput::Key { down: true, .. }
                | OperatorInput::Wheel { .. }
        );
        let admitted = if is_action {
            self.session.admit_human(&self.operator).await
        } else {
            self.session.check_human(&self.operator).await
        };
        match admitted {
            Ok(Ok(_epoch)) => {}
            Ok(Err(refusal)) => {
                self.summary.refused += 1;
                let notice_due = self
                    .last_refusal_notice
                    .is_none_or(|t| t.elapsed() >= REFUSAL_NOTICE_EVERY);
                if notice_due {
                    self.last_refusal_notice = Some(Instant::now());
                    tracing::info!(reason = %refusal, "watcher input ignored");
                    self.out
                        .send(&ServerMessage::Input {
                            accepted: false,
                            reason: format!("input ignored: {refusal}"),
                        })
                        .await;
                }
                return;
            }
            Err(gone) => {
                self.out.error("session_gone", gone.to_string()).await;
                return;
            }
        }
        self.summary.note(&input, now);
        let batch = match input {
            OperatorInput::ReleaseAll => self.held.release(),
            other => {
                self.held.track(&other);
                other.to_guest()
            }
        };
        if batch.is_empty() {
            return;
        }
        let is_motion = matches!(input, OperatorInput::Move { .. });
        if is_motion {
            // Pointer motion may be dropped when the guest is behind; presses never are.
            let _ = self.inputs.try_send(batch);
        } else if self.inputs.send(batch).await.is_err() {
            tracing::warn!("the input worker stopped");
        }
    }

    async fn on_unit(&mut self, unit: Result<Arc<EncodedUnit>, FeedError>) {
        let now = self.now();
        let unit = match unit {
            Ok(u) => u,
            Err(FeedError::Lagged(n)) => {
                tracing::debug!(
                    missed = n,
                    "the viewer's feed lagged; resynchronising on a keyframe"
                );
                self.need_key = true;
                // This task fell behind the encoder: the network says nothing about that, so only
                // the acknowledged socket path counts it as a lagging client.
                if self.transport == TransportKind::WebCodecs {
                    self.controller.on_backlog_drop(now);
                }
                if let Some(f) = &self.feed {
                    f.request_keyframe();
                }
                return;
            }
            Err(FeedError::Closed) => {
                self.feed = None;
                self.decision = None;
                self.decide().await;
                return;
            }
        };
        if self.need_key && !unit.keyframe {
            return;
        }
        match self.video_out() {
            VideoOut::None => {}
            VideoOut::Rtc => {
                let Some(peer) = self.rtc.as_mut() else { return };
                if let Err(e) = peer.write(unit.data.clone(), unit.received_at).await {
                    tracing::debug!(error = %e, "WebRTC write failed");
                    return;
                }
                self.need_key = false;
            }
            VideoOut::Socket => {
                self.prune_inflight();
                if self.inflight.len() >= MAX_INFLIGHT {
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
                let len = msg.len();
                if self.out.offer(msg) {
                    self.inflight.push_back((unit.frame, Instant::now()));
                    self.acks.on_send(unit.frame, len as u64, now);
                    self.need_key = false;
                } else {
                    self.need_key = true;
                    self.controller.on_backlog_drop(now);
                }
            }
        }
    }

    /// Forgets frames unacknowledged for [`INFLIGHT_EXPIRY`]: the client dropped them.
    fn prune_inflight(&mut self) {
        while self
            .inflight
            .front()
            .is_some_and(|(_, t)| t.elapsed() > INFLIGHT_EXPIRY)
        {
            self.inflight.pop_front();
        }
    }

    /// After frames were skipped, asks the feed for a keyframe once the client has room for it
    /// (at most every 250 ms).
    fn resync_if_room(&mut self) {
        if !self.need_key || self.inflight.len() >= MAX_INFLIGHT {
            return;
        }
        if self
            .last_key_request
            .is_some_and(|t| t.elapsed() < Duration::from_millis(250))
        {
            return;
        }
        if let Some(f) = &self.feed {
            f.request_keyframe();
            self.last_key_request = Some(Instant::now());
        }
    }

    fn video_out(&self) -> VideoOut {
        let via_socket = self.decision.as_ref().is_some_and(|d| d.via_socket);
        match (
            self.transport,
            via_socket,
            self.rtc.is_some() && self.rtc_connected,
        ) {
            (TransportKind::WebRtc, true, _) => VideoOut::Socket,
            (TransportKind::WebRtc, false, true) => VideoOut::Rtc,
            (TransportKind::WebRtc, false, false) => VideoOut::None,
            (TransportKind::WebCodecs, _, _) => VideoOut::Socket,
            (TransportKind::None, _, _) => VideoOut::None,
        }
    }

    async fn on_event(&mut self, ev: Event) {
        if let Event::LeaseChanged {
            sandbox, to, epoch, ..
        } = &ev
        {
            if sandbox == &self.id {
                let was = self.controlling;
                self.send_lease(to, *epoch).await;
                if was && !self.controlling {
                    // Control ended: release anything still held and write the summary.
                    let release = self.held.release();
                    if !release.is_empty() {
                        let _ = self.inputs.send(release).await;
                    }
                    self.flush_summary().await;
                }
                self.decide().await;
            }
        }
        if let Event::SandboxState { sandbox, state, .. } = &ev {
            if sandbox == &self.id && *state == crate::SandboxState::Destroyed {
                self.out
                    .send_raw(Out::Close("the sandbox was destroyed".into()))
                    .await;
            }
        }
    }

    async fn refresh_lease(&mut self) {
        if let Ok(view) = self.session.view().await {
            self.send_lease(&view.holder, view.epoch).await;
            self.decide().await;
        }
    }

    async fn send_lease(&mut self, holder: &Holder, epoch: u64) {
        let (human, me) = lease_state(holder, &self.operator);
        self.human_holds = human;
        self.controlling = me;
        self.update_viewer();
        let (name, operator) = match holder {
            Holder::Agent => ("agent", None),
            Holder::Human { operator } => ("human", Some(operator.clone())),
            Holder::Paused { .. } => ("paused", None),
        };
        self.out
            .send(&ServerMessage::Lease {
                holder: name.to_string(),
                operator,
                epoch,
                you_control: me,
            })
            .await;
    }

    fn update_viewer(&mut self) {
        let now = self.now();
        self.controller.set_viewer(
            Viewer {
                transport: transport_of(self.transport),
                codecs: self.codecs.clone(),
                focused: self.focused,
                controlling: self.controlling,
                human_in_control: self.human_holds,
                socket_video: self.socket_video,
            },
            now,
        );
    }

    /// Asks the controller and applies its decision.
    async fn decide(&mut self) {
        let now = self.now();
        let d = self.controller.decide(now);
        let changed = d.changed || self.decision.is_none();
        let video_ready = match self.transport {
            TransportKind::WebRtc => self.rtc.is_some(),
            TransportKind::WebCodecs => true,
            TransportKind::None => false,
        };
        match (d.mode, d.codec, d.tier) {
            (Mode::Video, Some(codec), Some(tier)) if video_ready => {
                let codec = match (&self.rtc, self.transport) {
                    (Some(peer), TransportKind::WebRtc) => peer.codec(),
                    _ => codec,
                };
                let quality = Quality {
                    fps: tier.fps(),
                    bitrate_bps: tier.bitrate_bps(),
                };
                let same = self
                    .feed
                    .as_ref()
                    .is_some_and(|f| f.codec() == codec && f.quality() == quality);
                if !same {
                    match self.stream.hub.subscribe(codec, quality) {
                        Ok(f) => {
                            self.feed = Some(f);
                            self.need_key = true;
                            self.inflight.clear();
                        }
                        Err(e) => {
                            self.out.error("video", e.to_string()).await;
                            self.feed = None;
                        }
                    }
                } else if d.keyframe {
                    if let Some(f) = &self.feed {
                        f.request_keyframe();
                    }
                }
            }
            _ => {
                self.feed = None;
            }
        }
        if changed {
            let entering_pictures =
                self.decision.as_ref().map(|p| p.mode) != Some(d.mode) && d.mode != Mode::Video;
            let mode = ServerMessage::Mode {
                mode: view_mode(d.mode),
                codec: if d.mode == Mode::Video {
                    self.feed.as_ref().map(|f| f.codec())
                } else {
                    None
                },
                fps: d.fps,
                bitrate_kbps: d.bitrate_bps / 1000,
                reason: d.reason.to_string(),
            };
            if self.decision.as_ref().map(|p| p.via_socket) != Some(d.via_socket) {
                // A new path starts from a keyframe (the decision asked the feed for one).
                self.need_key = true;
                self.inflight.clear();
                if let Some(f) = &self.feed {
                    f.request_keyframe();
                }
            }
            self.decision = Some(d);
            self.out.send(&mode).await;
            if entering_pictures {
                // Entering command view or stills: show the current picture at once.
                self.last_thumb_frame = 0;
                self.last_still_frame = 0;
                let thumb = self.stream.hub.thumbnails().borrow().clone();
                if let Some(t) = thumb {
                    self.send_thumbnail(&t).await;
                }
            }
        }
    }

    async fn send_step(&mut self, step: &StepOut) {
        if !self.out.send_raw(Out::Text(step.text.clone())).await {
            return;
        }
        if let Some(still) = &step.still {
            let _ = self.out.offer(still.clone());
        }
    }

    async fn send_thumbnail(&mut self, t: &airlock_streaming::hub::Thumbnail) {
        if t.frame == self.last_thumb_frame {
            return;
        }
        let mode = self.decision.as_ref().map(|d| d.mode);
        if mode == Some(Mode::Video) {
            return;
        }
        self.last_thumb_frame = t.frame;
        let msg = wire::encode_still(
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
        );
        let _ = self.out.offer(msg);
    }

    async fn send_stills(&mut self) {
        if self.decision.as_ref().map(|d| d.mode) != Some(Mode::Stills) {
            return;
        }
        let hub = &self.stream.hub;
        let (w, h) = hub.size();
        let frame = hub.frame();
        if frame == self.last_still_frame || frame == 0 {
            return;
        }
        let damage = hub.damage_since(self.last_still_frame);
        let Some(rect) = damage_bounds(&damage, w, h) else {
            return;
        };
        match hub.region_still(rect, (w, h), StillFormat::Webp).await {
            Ok((image, shown, frame)) => {
                let msg = wire::encode_still(
                    &StillHeader {
                        purpose: StillPurpose::StillsFrame,
                        format: StillFormat::Webp,
                        step: 0,
                        frame,
                        rect: shown,
                        screen_w: w,
                        screen_h: h,
                    },
                    &image,
                );
                if self.out.offer(msg) {
                    self.last_still_frame = frame;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot make a still"),
        }
    }

    async fn flush_summary(&mut self) {
        self.summary_at = Instant::now();
        if self.summary.is_empty() {
            return;
        }
        let summary = self.summary.take();
        let r = self
            .sup
            .record_human_input_summary(
                &self.id,
                &self.operator,
                HumanInput {
                    viewer: Some(self.viewer),
                    transport: Some(self.transport),
                    epoch: None,
                    action: None,
                    summary: Some(summary),
                    ok: true,
                    error: None,
                    handback_note: None,
                },
            )
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot record the operator's input summary");
        }
    }

    async fn finish(&mut self) {
        let release = self.held.release();
        if !release.is_empty() {
            let _ = self.inputs.send(release).await;
        }
        self.flush_summary().await;
        if let Some(peer) = self.rtc.take() {
            peer.close().await;
        }
    }
}

impl Supervisor {
    /// Records a summary of an operator's input stream (counts, durations; typed keys only as a
    /// hash and a count).
    pub async fn record_human_input_summary(
        &self,
        id: &str,
        operator: &str,
        input: HumanInput,
    ) -> Result<(), CommandError> {
        self.record(Some(id), Actor::operator(operator), Record::HumanInput(input))
            .await
    }
}

#[cfg(test)]
mod tests {
    use airlock_protocol::Button;

    use super::*;

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
                Input::KeyState {
                    combo: "0xffe1".into(),
                    down: false
                },
                Input::Button {
                    button: Button::Right,
                    down: false
                },
            ]
        );
        assert!(h.release().is_empty());
    }
}
