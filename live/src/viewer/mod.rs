//! The viewer socket (`GET /api/sandboxes/{id}/view`, WebSocket, operator token): one per
//! viewer, carrying the command view, stills, WebCodecs video and operator input, and the
//! signalling of a WebRTC peer for browsers that have one.
//!
//! One task owns a viewer and does its I/O: it parses what the client sends into typed messages,
//! hands them (and the events, feed units, WebRTC events and timer ticks) to the viewer's pure state
//! machine ([`Viewer`], in `core`), and carries out what that decides: messages to the client, which
//! shared encoder feed to read, input to forward to the guest (only while this viewer's operator
//! holds the control lease), lease commands and ledger records. Writes go through a bounded queue
//! drained by a writer task, so a client that stops reading loses video frames (and is eventually
//! closed), never stalls the stream or other viewers.

mod core;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_domain::{Forbidden, Permission, Principal};
use airlock_protocol::Input as GuestInput;
use airlock_records::AccessRecord;
use airlock_streaming::hub::{damage_bounds, EncodedUnit, FeedError, VideoFeed};
use airlock_streaming::rtc::{RtcConfig, RtcEvent, RtcPeer};
use airlock_streaming::still;
use airlock_streaming::wire::{self, ClientMessage, ServerMessage, StillFormat, StillHeader, StillPurpose};
use airlock_streaming::Rect;
use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc};

use self::core::{Admission, Config, Input, Output, Viewer};
use airlock_supervisor::{CommandError, Event, SandboxState, Session, Supervisor};

use crate::stream::SandboxStream;
use crate::LiveViews;

/// How long a client may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued for the writer before video is dropped.
const OUT_QUEUE: usize = 32;
/// A write that takes longer than this closes the socket: the client is not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 128 * 1024;
/// How often the state machine is ticked without an event.
const TICK: Duration = Duration::from_millis(250);
/// Stills-mode refresh interval.
const STILLS_EVERY: Duration = Duration::from_millis(500);
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

/// A batch of refinement patches: its number, and each patch's region and `Refine` still message.
type Patches = (u64, Vec<(Rect, Vec<u8>)>);

/// The I/O of one viewer; the decisions are its [`Viewer`]'s.
struct ViewerTask {
    sup: Supervisor,
    session: Session,
    stream: Arc<SandboxStream>,
    id: String,
    operator: String,
    /// Why this viewer's principal may not drive, if it may not.
    may_not_drive: Option<Forbidden>,
    config: ViewerConfig,
    out: Writer,
    core: Viewer,
    feed: Option<VideoFeed>,
    rtc: Option<RtcPeer>,
    inputs: mpsc::Sender<Vec<GuestInput>>,
    /// Refinement patches made off the task (one batch at a time is asked for).
    refined: (mpsc::Sender<Patches>, mpsc::Receiver<Patches>),
    t0: Instant,
}

/// Serves one viewer socket of `principal` on sandbox `id` until it closes. A principal whose role
/// may not drive sees everything and has takeover, hand-back and input refused (and recorded).
pub async fn serve(views: LiveViews, principal: Principal, id: String, socket: WebSocket) {
    let viewer = NEXT_VIEWER.fetch_add(1, Ordering::Relaxed);
    let operator = principal.name.clone();
    let span = tracing::info_span!("viewer", sandbox = %id, %operator, role = %principal.role, viewer);
    let _ = tracing::Instrument::instrument(run(views, principal, id, socket, viewer), span).await;
}

async fn run(
    views: LiveViews,
    principal: Principal,
    id: String,
    socket: WebSocket,
    viewer: u64,
) -> Result<(), CommandError> {
    let operator = principal.name.clone();
    let may_not_drive = principal.check(Permission::Drive, Some(&id), false).err();
    let sup = views.supervisor().clone();
    let config = views.config();
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
    let stream = match views.stream(&id).await {
        Ok(s) => s,
        Err(e) => {
            refuse(out, writer, "unknown_sandbox", e.to_string()).await;
            return Err(e);
        }
    };
    let view = session.view().await?;
    let (inputs, input_rx) = mpsc::channel(INPUT_QUEUE);
    tokio::spawn(input_worker(session.clone(), input_rx));
    let t0 = Instant::now();
    let core = Viewer::new(
        Config {
            viewer,
            sandbox: id.clone(),
            operator: operator.clone(),
            transport,
            codecs,
            focused,
            socket_video,
            unix_ms_at_zero: airlock_supervisor::now_ms(),
            may_not_drive: may_not_drive.as_ref().map(ToString::to_string),
        },
        &view.holder,
        0,
    );
    let mut task = ViewerTask {
        sup,
        session,
        stream,
        id,
        operator,
        may_not_drive,
        config,
        out,
        core,
        feed: None,
        rtc: None,
        inputs,
        refined: mpsc::channel(2),
        t0,
    };
    let result = task.main_loop(&mut incoming, view.holder, view.epoch).await;
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
async fn input_worker(session: Session, mut rx: mpsc::Receiver<Vec<GuestInput>>) {
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

/// Sleeps until `at`; forever when `None`.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
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
        holder: airlock_domain::Holder,
        epoch: u64,
    ) -> Result<(), CommandError> {
        let mut events = self.sup.events().subscribe();
        let mut steps = self.stream.subscribe_steps();
        let mut thumbs = self.stream.hub.thumbnails();
        let mut frames = self.stream.hub.ticks();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stills = tokio::time::interval(STILLS_EVERY);
        stills.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (width, height) = self.stream.hub.size();
        let start = Input::Start {
            holder,
            epoch,
            width,
            height,
            steps: self.stream.recent_steps(),
        };
        let mut go_on = self.handle(start).await;
        while go_on {
            let refine_at = self
                .core
                .refine_due_at()
                .map(|ms| tokio::time::Instant::from_std(self.t0 + Duration::from_millis(ms)));
            go_on = tokio::select! {
                r = frames.changed() => match r {
                    Err(_) => false,
                    Ok(()) => {
                        let frame = frames.borrow_and_update().frame;
                        self.handle(Input::ScreenChanged { frame }).await
                    }
                },
                _ = sleep_until_some(refine_at) => self.handle(Input::RefineDue).await,
                Some((batch, patches)) = self.refined.1.recv() => self.handle(Input::RefineMade { batch, patches }).await,
                msg = next_client(incoming) => match msg {
                    None => false,
                    Some(Ok(Incoming::Text(m))) => self.handle(Input::Client(m)).await,
                    Some(Ok(Incoming::Binary(b))) => self.on_input(&b).await,
                    Some(Err(e)) => self.handle(Input::Malformed(e)).await,
                },
                unit = recv_feed(&mut self.feed) => self.on_unit(unit).await,
                ev = recv_rtc(&mut self.rtc) => self.on_rtc(ev).await,
                ev = events.recv() => match ev {
                    Ok(ev) => self.on_event(ev).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.refresh_lease().await,
                    Err(broadcast::error::RecvError::Closed) => false,
                },
                step = steps.recv() => match step {
                    Ok(step) => self.handle(Input::Step(step)).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "the viewer missed steps");
                        true
                    }
                    Err(broadcast::error::RecvError::Closed) => false,
                },
                r = thumbs.changed() => match r {
                    Err(_) => false,
                    Ok(()) => {
                        let thumb = thumbs.borrow_and_update().clone();
                        match thumb {
                            Some(t) => self.handle(Input::Thumbnail(t)).await,
                            None => true,
                        }
                    }
                },
                _ = stills.tick() => {
                    let frame = self.stream.hub.frame();
                    self.handle(Input::StillsDue { frame }).await
                }
                _ = tick.tick() => {
                    let hub = &self.stream.hub;
                    let tick = Input::Tick {
                        change_rate: hub.change_rate(),
                        stream_stopped: hub.is_stopped(),
                    };
                    self.handle(tick).await
                }
            };
        }
        Ok(())
    }

    /// Hands `input` to the state machine and carries out its outputs in order; an output that asks
    /// a question is answered at once, and the outputs of the answer come before the rest. False
    /// when the viewer is to end.
    async fn handle(&mut self, input: Input) -> bool {
        let mut todo: VecDeque<Output> = self.core.handle(input, self.now()).into();
        let mut go_on = true;
        while let Some(output) = todo.pop_front() {
            let answer = match output {
                Output::End => {
                    go_on = false;
                    None
                }
                other => self.carry_out(other).await,
            };
            if let Some(answer) = answer {
                let more = self.core.handle(answer, self.now());
                for o in more.into_iter().rev() {
                    todo.push_front(o);
                }
            }
        }
        go_on
    }

    /// Does what one output says; returns the answer the state machine is waiting for, if any.
    async fn carry_out(&mut self, output: Output) -> Option<Input> {
        match output {
            Output::Send(msg) => {
                self.out.send(&msg).await;
                None
            }
            Output::SendText(text) => {
                self.out.send_raw(Out::Text(text)).await;
                None
            }
            Output::Offer(bytes) => {
                let _ = self.out.offer(bytes);
                None
            }
            Output::Close(reason) => {
                self.out.send_raw(Out::Close(reason)).await;
                None
            }
            Output::End => None,
            Output::Admit { input, press } => {
                let admitted = if press {
                    self.session.admit_human(&self.operator).await
                } else {
                    self.session.check_human(&self.operator).await
                };
                let answer = match admitted {
                    Ok(Ok(_epoch)) => Admission::Admitted,
                    Ok(Err(refusal)) => Admission::Refused(refusal.to_string()),
                    Err(gone) => Admission::SessionGone(gone.to_string()),
                };
                Some(Input::Admitted { input, answer })
            }
            Output::Guest { inputs, droppable } => {
                if droppable {
                    let _ = self.inputs.try_send(inputs);
                } else if self.inputs.send(inputs).await.is_err() {
                    tracing::warn!("the input worker stopped");
                }
                None
            }
            Output::Lease(cmd) => match self.sup.lease(&self.id, cmd).await {
                Ok(_) => None,
                Err(e) => Some(Input::LeaseRefused(e.to_string())),
            },
            Output::Record(input) => {
                let r = self
                    .sup
                    .record_human_input_summary(&self.id, &self.operator, input)
                    .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "cannot record the operator's input summary");
                }
                None
            }
            Output::RecordForbidden(request) => {
                if let Some(forbidden) = self.may_not_drive.clone() {
                    let record = AccessRecord::Refused {
                        request: format!("viewer {request}"),
                        forbidden,
                    };
                    if let Err(e) = self
                        .sup
                        .record_access(Some(&self.id), &self.operator, record)
                        .await
                    {
                        tracing::error!(error = %airlock_supervisor::chain(&e), "cannot record a refused request");
                    }
                }
                None
            }
            Output::Subscribe { codec, quality } => match self.stream.hub.subscribe(codec, quality) {
                Ok(f) => {
                    self.feed = Some(f);
                    Some(Input::Subscribed(Ok(())))
                }
                Err(e) => {
                    self.feed = None;
                    Some(Input::Subscribed(Err(airlock_supervisor::chain(&e))))
                }
            },
            Output::Unsubscribe => {
                self.feed = None;
                None
            }
            Output::RequestKeyframe => {
                if let Some(f) = &self.feed {
                    f.request_keyframe();
                }
                None
            }
            Output::AnswerOffer { sdp, codec } => {
                self.rtc = None;
                match RtcPeer::answer(&sdp, codec, self.config.rtc).await {
                    Ok((peer, answer)) => {
                        self.rtc = Some(peer);
                        Some(Input::RtcOpened { codec, sdp: answer })
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "WebRTC offer refused");
                        Some(Input::RtcRefused(e.to_string()))
                    }
                }
            }
            Output::RtcWrite(unit) => {
                let peer = self.rtc.as_mut()?;
                match peer.write(unit.data.clone(), unit.received_at).await {
                    Ok(()) => Some(Input::RtcWritten),
                    Err(e) => {
                        tracing::debug!(error = %e, "WebRTC write failed");
                        None
                    }
                }
            }
            Output::RenderStill { since } => self.render_still(since).await,
            Output::ShowThumbnail => {
                let thumb = self.stream.hub.thumbnails().borrow().clone();
                thumb.map(Input::Thumbnail)
            }
            Output::Snapshot { since, rested } => {
                let snap = self.stream.hub.refine_snapshot(since, rested);
                Some(Input::Snapshot {
                    frame: snap.frame,
                    changed: snap.changed,
                    recent: snap.recent,
                })
            }
            Output::ReportDamage { since } => {
                let (frame, damage) = self.stream.hub.damage_report(since);
                Some(Input::DamageSince { frame, damage })
            }
            Output::MakeRefine { batch, rects } => {
                self.make_refine(batch, rects);
                None
            }
            Output::QueueRefine { patches } => {
                let lost: Vec<Rect> = patches
                    .into_iter()
                    .filter_map(|(rect, msg)| (!self.out.offer(msg)).then_some(rect))
                    .collect();
                (!lost.is_empty()).then_some(Input::RefineLost { rects: lost })
            }
        }
    }

    /// Copies the current frame and encodes lossless patches of `rects` of it, both off the
    /// runtime; they come back through `refined` as [`Input::RefineMade`] while the viewer goes on.
    fn make_refine(&mut self, batch: u64, rects: Vec<Rect>) {
        let done = self.refined.0.clone();
        let hub = self.stream.hub.clone();
        let span = tracing::debug_span!("refine", batch, patches = rects.len());
        tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            let copy = hub.copy_frame();
            let mut patches = Vec::with_capacity(rects.len());
            for rect in rects {
                let made = still::region(
                    &copy.bgrx,
                    copy.width,
                    copy.height,
                    rect,
                    copy.width,
                    copy.height,
                    StillFormat::Webp,
                );
                match made {
                    Ok((image, shown)) => {
                        let header = StillHeader {
                            purpose: StillPurpose::Refine,
                            format: StillFormat::Webp,
                            step: 0,
                            frame: copy.frame,
                            rect: shown,
                            screen_w: copy.width,
                            screen_h: copy.height,
                        };
                        patches.push((rect, wire::encode_still(&header, &image)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %airlock_supervisor::chain(&e), "cannot make a refinement patch")
                    }
                }
            }
            // The viewer may have ended meanwhile: then nobody wants them.
            let _ = done.try_send((batch, patches));
        });
    }

    /// Operator input from the socket or the WebRTC data channel.
    async fn on_input(&mut self, bytes: &[u8]) -> bool {
        let (w, h) = self.stream.hub.size();
        let input = match wire::parse_input(bytes, w, h) {
            Ok(i) => Input::Operator(i),
            Err(e) => Input::Unreadable(e.to_string()),
        };
        self.handle(input).await
    }

    async fn on_unit(&mut self, unit: Result<Arc<EncodedUnit>, FeedError>) -> bool {
        let input = match unit {
            Ok(unit) => Input::Unit {
                unit,
                // Only this task queues messages, so the room seen now is there when it offers:
                // two places, one for the `damage` message that may go before the unit.
                room: self.out.tx.capacity() > 1,
            },
            Err(FeedError::Lagged(n)) => Input::FeedLagged(n),
            Err(FeedError::Closed) => {
                self.feed = None;
                Input::FeedClosed
            }
        };
        self.handle(input).await
    }

    async fn on_rtc(&mut self, ev: Option<RtcEvent>) -> bool {
        let input = match ev {
            None => {
                self.rtc = None;
                Input::RtcClosed
            }
            Some(RtcEvent::Closed(reason)) => {
                tracing::debug!(%reason, "WebRTC peer closed");
                self.rtc = None;
                Input::RtcClosed
            }
            Some(RtcEvent::Connected) => Input::RtcConnected,
            Some(RtcEvent::KeyframeRequest) => Input::RtcKeyframeRequest,
            Some(RtcEvent::ReceiverReport { loss, jitter: _ }) => Input::RtcLoss(loss),
            Some(RtcEvent::Remb(bps)) => {
                // Chromium's receive-side estimate stays near its start value on a stream that only
                // sends changes (it held a controlling viewer in stills on loopback), so it is only
                // recorded; loss and round-trip time drive adaptation on this path.
                tracing::trace!(bps, "REMB");
                return true;
            }
            Some(RtcEvent::InputOpen) => return true,
            Some(RtcEvent::Input(bytes)) => return self.on_input(&bytes).await,
            Some(RtcEvent::BadInput(reason)) => Input::Unreadable(reason),
        };
        self.handle(input).await
    }

    async fn on_event(&mut self, ev: Event) -> bool {
        match ev {
            Event::LeaseChanged {
                sandbox, to, epoch, ..
            } if sandbox == self.id => self.handle(Input::Lease { holder: to, epoch }).await,
            Event::SandboxState { sandbox, state, .. }
                if sandbox == self.id && state == SandboxState::Destroyed =>
            {
                self.handle(Input::Destroyed).await
            }
            _ => true,
        }
    }

    /// After missing events: the lease as it is now.
    async fn refresh_lease(&mut self) -> bool {
        match self.session.view().await {
            Ok(view) => {
                self.handle(Input::Lease {
                    holder: view.holder,
                    epoch: view.epoch,
                })
                .await
            }
            Err(_) => true,
        }
    }

    /// Renders a still of what changed since `since` and offers it; the answer names its frame.
    async fn render_still(&mut self, since: u64) -> Option<Input> {
        let hub = &self.stream.hub;
        let (w, h) = hub.size();
        let damage = hub.damage_since(since);
        let rect = damage_bounds(&damage, w, h)?;
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
                self.out.offer(msg).then_some(Input::StillSent { frame })
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot make a still");
                None
            }
        }
    }

    async fn finish(&mut self) {
        self.handle(Input::Closed).await;
        if let Some(peer) = self.rtc.take() {
            peer.close().await;
        }
    }
}
