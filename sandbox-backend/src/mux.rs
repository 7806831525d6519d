//! [`GuestMux`]: the one owner of a guest channel. Callers send typed requests; a reader thread
//! routes each reply to its caller by request id. The guest is hostile: a frame that is malformed,
//! oversized, or answers a request nobody made closes the channel with the reason, and every
//! waiting caller gets that reason as an error. Stream items go through a small bounded queue that
//! drops its oldest item when full: a slow consumer skips to the newest items and memory stays
//! bounded, and the reader never waits for a consumer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use airlock_protocol::{
    encode_frame, FrameDecoder, GuestMessage, HostMessage, Notice, Reply, Request, StreamMessage,
    TransferMessage, PROTOCOL_VERSION,
};

use crate::ChannelError;

/// Stream items buffered per stream before newer ones are dropped.
const STREAM_QUEUE: usize = 4;
/// Egress stream messages queued for the guest before senders are refused: a guest that stops
/// reading its channel fills this queue, never a caller's thread.
const EGRESS_OUT_QUEUE: usize = 4096;

/// What the guest said in its hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestInfo {
    /// Agent version.
    pub agent_version: String,
    /// Screen width.
    pub screen_w: u16,
    /// Screen height.
    pub screen_h: u16,
}

enum Route {
    Call(SyncSender<Reply>),
    Stream(Arc<StreamQueue>),
    Transfer(TransferSink),
}

/// What happens on a file transfer (or any request routed like one), as the channel's reader
/// sees it.
#[derive(Debug)]
pub enum TransferEvent {
    /// A reply under the request's id: [`Reply::Opened`] goes on, any other ends the request.
    Reply(Reply),
    /// Transfer traffic from the guest, validated against the protocol's size limits (not
    /// against credit: that is the receiver's flow state).
    Message(TransferMessage),
    /// The channel closed: the request is over.
    Closed(String),
}

/// Takes a transfer's events on the channel's reader thread: it must never block for long
/// (queue, or write to a local socket as the keeper does).
pub type TransferSink = Arc<dyn Fn(TransferEvent) + Send + Sync>;

/// A bounded queue of stream items; the oldest item goes when a new one does not fit.
struct StreamQueue {
    state: Mutex<(VecDeque<Reply>, bool)>,
    ready: Condvar,
}

impl StreamQueue {
    /// Queues an item; returns whether an older item was dropped to make room.
    fn push(&self, r: Reply) -> bool {
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        let dropped = st.0.len() >= STREAM_QUEUE && st.0.pop_front().is_some();
        st.0.push_back(r);
        self.ready.notify_one();
        dropped
    }

    fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.1 = true;
        }
        self.ready.notify_all();
    }
}

#[derive(Default)]
struct Routes {
    live: HashMap<u32, Route>,
    /// Ids whose caller gave up: a late reply to one of these is dropped, not a violation.
    abandoned: HashSet<u32>,
    closed: Option<String>,
}

/// Why a reply from the guest cannot be routed: the guest broke the protocol (or the channel is
/// unusable), so the channel is closed.
#[derive(Debug, thiserror::Error)]
enum RouteError {
    /// The route table's lock was poisoned by a panic.
    #[error("the reply route table is poisoned")]
    Poisoned,
    /// A stream item for a request that is a plain call.
    #[error("the guest sent a stream item for request {id}, which is not a stream")]
    NotAStream {
        /// The request id.
        id: u32,
    },
    /// Transfer traffic for a request that is not a transfer.
    #[error("the guest sent transfer traffic for request {id}, which is not a file transfer")]
    NotATransfer {
        /// The request id.
        id: u32,
    },
    /// A reply a file transfer never gets (a screen frame, a pong): a guest flooding a transfer's
    /// unbounded queue past its credit.
    #[error("the guest sent a {kind} reply for request {id}, a file transfer")]
    NotATransferReply {
        /// The request id.
        id: u32,
        /// What it sent.
        kind: &'static str,
    },
    /// Transfer traffic over the protocol's limits.
    #[error("the guest sent invalid transfer traffic for request {id}")]
    InvalidTransfer {
        /// The request id.
        id: u32,
        /// Why.
        #[source]
        source: airlock_protocol::InvalidMessage,
    },
    /// The agent reported a channel-level error (under id 0) before closing.
    #[error("the guest agent closed the channel: {message}")]
    AgentClosed {
        /// The agent's explanation.
        message: String,
    },
    /// A reply for a request that was never made.
    #[error("the guest sent a reply for request {id}, which was never made (out of order)")]
    NotMade {
        /// The request id.
        id: u32,
    },
}

/// Takes what the guest sends without being asked: egress stream traffic and notices. Called on
/// the channel's reader thread, so it must never block (queue, or drop with a reason).
pub trait EgressSink: Send + Sync {
    /// Traffic of stream `id` (the guest chose the id when it opened the stream).
    fn stream(&self, id: u32, msg: StreamMessage);
    /// A notice.
    fn notice(&self, notice: Notice);
    /// The channel closed: every stream is over.
    fn closed(&self, reason: &str);
}

struct Inner {
    writer: Mutex<Box<dyn Write + Send>>,
    sink: Mutex<Option<Arc<dyn EgressSink>>>,
    /// Stream and transfer messages (and transfer requests and cancels, so they keep their order
    /// with the traffic) on their way to the guest, written by their own thread.
    egress_out: SyncSender<(u32, HostMessage)>,
    routes: Mutex<Routes>,
    next_id: AtomicU32,
    dropped: AtomicU64,
}

/// A multiplexed guest channel. Cheap to clone.
#[derive(Clone)]
pub struct GuestMux {
    inner: Arc<Inner>,
}

/// A live stream of replies (frame updates). Dropping it cancels the stream in the guest.
pub struct ReplyStream {
    mux: GuestMux,
    id: u32,
    queue: Arc<StreamQueue>,
}

impl GuestMux {
    /// Takes over a guest byte stream; spawns the reader thread and the egress writer thread.
    pub fn start(mut reader: Box<dyn Read + Send>, writer: Box<dyn Write + Send>, name: String) -> GuestMux {
        let (egress_out, egress_rx) = mpsc::sync_channel::<(u32, HostMessage)>(EGRESS_OUT_QUEUE);
        let inner = Arc::new(Inner {
            writer: Mutex::new(writer),
            routes: Mutex::new(Routes::default()),
            sink: Mutex::new(None),
            egress_out,
            next_id: AtomicU32::new(1),
            dropped: AtomicU64::new(0),
        });
        let mux = GuestMux { inner };
        let m = mux.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("guest-reader-{name}"))
            .spawn(move || {
                let (reason, violation) = m.read_loop(&mut *reader);
                if violation {
                    tracing::warn!(guest = %name, %reason, "guest channel closed");
                } else {
                    tracing::debug!(guest = %name, %reason, "guest channel closed");
                }
                m.close(reason);
            });
        if let Err(e) = spawned {
            mux.close(format!("cannot start the reader thread: {e}"));
        }
        // The writer thread holds only a weak handle: it ends when the mux is gone.
        let weak = Arc::downgrade(&mux.inner);
        let spawned = std::thread::Builder::new()
            .name("guest-egress-writer".into())
            .spawn(move || {
                while let Ok((id, msg)) = egress_rx.recv() {
                    let Some(inner) = weak.upgrade() else { return };
                    let m = GuestMux { inner };
                    if m.write(id, &msg).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            mux.close(format!("cannot start the egress writer thread: {e}"));
        }
        mux
    }

    /// Reads until the channel ends; returns why, and whether the guest broke the protocol.
    fn read_loop(&self, reader: &mut dyn Read) -> (String, bool) {
        let mut dec = FrameDecoder::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => {
                    return match dec.finish() {
                        Ok(()) => ("the guest closed the channel".into(), false),
                        Err(e) => (e.to_string(), true),
                    }
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return (format!("cannot read from the guest: {e}"), false),
            };
            dec.extend(&buf[..n]);
            loop {
                let frame = match dec.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return (e.to_string(), true),
                };
                let reply = match frame.decode::<GuestMessage>() {
                    Ok(GuestMessage::Reply(r)) => r,
                    Ok(GuestMessage::Stream(m)) => {
                        self.to_sink(frame.id, m);
                        continue;
                    }
                    Ok(GuestMessage::Transfer(m)) => {
                        if let Err(e) = self.route_transfer(frame.id, m) {
                            return (airlock_protocol::error_chain(&e), true);
                        }
                        continue;
                    }
                    Ok(GuestMessage::Notice(n)) => {
                        if let Some(sink) = self.sink() {
                            sink.notice(n);
                        }
                        continue;
                    }
                    Err(e) => return (e.to_string(), true),
                };
                if let Err(e) = self.route(frame.id, reply) {
                    return (airlock_protocol::error_chain(&e), true);
                }
            }
        }
    }

    fn sink(&self) -> Option<Arc<dyn EgressSink>> {
        self.inner.sink.lock().ok().and_then(|s| s.clone())
    }

    /// Hands stream traffic to the egress sink; without one, a stream the guest opens is closed
    /// at once and anything else is dropped (it belongs to a stream already refused).
    fn to_sink(&self, id: u32, msg: StreamMessage) {
        match (self.sink(), msg) {
            (Some(sink), msg) => sink.stream(id, msg),
            (None, StreamMessage::Open { .. }) => {
                let reason = "no egress gateway is attached to this sandbox".to_string();
                let _ = self.send_stream_wait(id, StreamMessage::Close { reason: Some(reason) });
            }
            (None, _) => {}
        }
    }

    /// Routes the guest's streams and notices to `sink` from now on (`None`: refuse them).
    pub fn set_egress_sink(&self, sink: Option<Arc<dyn EgressSink>>) {
        if let Ok(mut s) = self.inner.sink.lock() {
            *s = sink;
        }
    }

    /// Queues traffic of stream `id` for the guest, waiting while the queue is full: for threads
    /// that may wait for the guest (the channel's own reader, which then stops reading a guest that
    /// does not read either; a keeper's client thread), never for async tasks.
    pub fn send_stream_wait(&self, id: u32, msg: StreamMessage) -> Result<(), ChannelError> {
        self.queue_wait(id, HostMessage::Stream(msg))
    }

    fn queue_wait(&self, id: u32, msg: HostMessage) -> Result<(), ChannelError> {
        if let Some(reason) = self.closed() {
            return Err(ChannelError::Closed(reason));
        }
        self.inner
            .egress_out
            .send((id, msg))
            .map_err(|_| ChannelError::Closed("the egress writer stopped".into()))
    }

    /// Queues traffic of stream `id` for the guest; never blocks. An error when the channel is
    /// closed or the guest has stopped reading and the queue is full (the caller ends the stream).
    pub fn send_stream(&self, id: u32, msg: StreamMessage) -> Result<(), ChannelError> {
        self.queue(id, HostMessage::Stream(msg))
    }

    fn queue(&self, id: u32, msg: HostMessage) -> Result<(), ChannelError> {
        if let Some(reason) = self.closed() {
            return Err(ChannelError::Closed(reason));
        }
        self.inner.egress_out.try_send((id, msg)).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => ChannelError::Closed(format!(
                "the guest is not reading its channel: {EGRESS_OUT_QUEUE} stream messages wait to be sent"
            )),
            mpsc::TrySendError::Disconnected(_) => ChannelError::Closed("the egress writer stopped".into()),
        })
    }

    /// Starts a request routed like a file transfer: its replies and transfer traffic go to
    /// `sink` on the reader thread. The request is queued behind earlier stream and transfer
    /// traffic (never blocking; an error when the queue is full). Returns the request's id, under
    /// which [`send_transfer`](Self::send_transfer) sends the host's traffic.
    pub fn open_transfer(&self, req: Request, sink: TransferSink) -> Result<u32, ChannelError> {
        let id = self.register(Route::Transfer(sink))?;
        if let Err(e) = self.queue(id, HostMessage::Request(req)) {
            self.abandon(id);
            return Err(e);
        }
        Ok(id)
    }

    /// [`open_transfer`](Self::open_transfer), waiting while the queue is full (for threads, never
    /// async tasks).
    pub fn open_transfer_wait(&self, req: Request, sink: TransferSink) -> Result<u32, ChannelError> {
        let id = self.register(Route::Transfer(sink))?;
        if let Err(e) = self.queue_wait(id, HostMessage::Request(req)) {
            self.abandon(id);
            return Err(e);
        }
        Ok(id)
    }

    /// Queues the host's traffic of transfer `id`; never blocks.
    pub fn send_transfer(&self, id: u32, msg: TransferMessage) -> Result<(), ChannelError> {
        self.queue(id, HostMessage::Transfer(msg))
    }

    /// Queues the host's traffic of transfer `id`, waiting while the queue is full (threads only).
    pub fn send_transfer_wait(&self, id: u32, msg: TransferMessage) -> Result<(), ChannelError> {
        self.queue_wait(id, HostMessage::Transfer(msg))
    }

    /// Gives up transfer `id`: its sink hears nothing more, and the guest is told to stop (a write
    /// in progress leaves nothing behind). Never blocks.
    pub fn cancel_transfer(&self, id: u32) {
        self.abandon(id);
        let _ = self.queue(id, HostMessage::Cancel);
    }

    fn route_transfer(&self, id: u32, msg: TransferMessage) -> Result<(), RouteError> {
        msg.validate()
            .map_err(|source| RouteError::InvalidTransfer { id, source })?;
        let routes = self.inner.routes.lock().map_err(|_| RouteError::Poisoned)?;
        match routes.live.get(&id) {
            Some(Route::Transfer(sink)) => {
                let sink = sink.clone();
                drop(routes);
                sink(TransferEvent::Message(msg));
                Ok(())
            }
            Some(Route::Call(_) | Route::Stream(_)) => Err(RouteError::NotATransfer { id }),
            None if routes.abandoned.contains(&id) => Ok(()),
            None => Err(RouteError::NotMade { id }),
        }
    }

    fn route(&self, id: u32, reply: Reply) -> Result<(), RouteError> {
        let mut routes = self.inner.routes.lock().map_err(|_| RouteError::Poisoned)?;
        let ends = !is_stream_item(&reply);
        if let Some(Route::Transfer(sink)) = routes.live.get(&id) {
            // Only a transfer's own replies: anything else could be sent without end, past the
            // transfer's credit, into its queue.
            match &reply {
                Reply::Opened(_)
                | Reply::Written(_)
                | Reply::Sent(_)
                | Reply::Listing(_)
                | Reply::FileError(_)
                | Reply::Error { .. } => {}
                other => {
                    return Err(RouteError::NotATransferReply {
                        id,
                        kind: reply_name(other),
                    })
                }
            }
            let sink = sink.clone();
            if ends {
                routes.live.remove(&id);
            }
            drop(routes);
            sink(TransferEvent::Reply(reply));
            return Ok(());
        }
        match routes.live.get(&id) {
            Some(Route::Stream(q)) => {
                let q = q.clone();
                if ends {
                    routes.live.remove(&id);
                }
                if q.push(reply) {
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                }
                if ends {
                    q.close();
                }
                Ok(())
            }
            Some(Route::Transfer(_)) => Ok(()), // taken above
            Some(Route::Call(_)) if !ends => Err(RouteError::NotAStream { id }),
            Some(Route::Call(tx)) => {
                let _ = tx.try_send(reply); // capacity 1, one reply per call
                routes.live.remove(&id);
                Ok(())
            }
            None if routes.abandoned.contains(&id) => {
                if ends {
                    routes.abandoned.remove(&id);
                }
                Ok(())
            }
            None => match reply {
                // The agent reports a channel-level error under id 0 before it closes.
                Reply::Error { message, .. } if id == 0 => Err(RouteError::AgentClosed { message }),
                _ => Err(RouteError::NotMade { id }),
            },
        }
    }

    fn close(&self, reason: String) {
        if let Some(sink) = self.inner.sink.lock().ok().and_then(|mut s| s.take()) {
            sink.closed(&reason);
        }
        if let Ok(mut r) = self.inner.routes.lock() {
            if r.closed.is_none() {
                r.closed = Some(reason);
            }
            let mut sinks = Vec::new();
            for (_, route) in r.live.drain() {
                match route {
                    Route::Stream(q) => q.close(),
                    Route::Transfer(sink) => sinks.push(sink),
                    Route::Call(_) => {} // dropping the call senders wakes every waiting caller
                }
            }
            let reason = r.closed.clone().unwrap_or_default();
            drop(r);
            for sink in sinks {
                sink(TransferEvent::Closed(reason.clone()));
            }
        }
    }

    /// The reason the channel closed, if it has.
    pub fn closed(&self) -> Option<String> {
        self.inner.routes.lock().ok().and_then(|r| r.closed.clone())
    }

    /// Stream items dropped because a consumer lagged.
    pub fn dropped_items(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn register(&self, route: Route) -> Result<u32, ChannelError> {
        let mut routes = self
            .inner
            .routes
            .lock()
            .map_err(|_| ChannelError::Closed("route table poisoned".into()))?;
        if let Some(reason) = &routes.closed {
            return Err(ChannelError::Closed(reason.clone()));
        }
        let id = loop {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 && !routes.live.contains_key(&id) && !routes.abandoned.contains(&id) {
                break id;
            }
        };
        routes.live.insert(id, route);
        Ok(id)
    }

    fn abandon(&self, id: u32) {
        if let Ok(mut r) = self.inner.routes.lock() {
            if r.live.remove(&id).is_some() {
                r.abandoned.insert(id);
            }
        }
    }

    fn write(&self, id: u32, msg: &HostMessage) -> Result<(), ChannelError> {
        let bytes = encode_frame(id, msg).map_err(|e| ChannelError::Protocol(e.to_string()))?;
        let mut w = self
            .inner
            .writer
            .lock()
            .map_err(|_| ChannelError::Closed("writer poisoned".into()))?;
        w.write_all(&bytes).and_then(|()| w.flush()).map_err(|e| {
            let reason = format!("cannot write to the guest: {e}");
            drop(w);
            self.close(reason.clone());
            ChannelError::Closed(reason)
        })
    }

    /// Sends a request and waits up to `timeout` for its reply.
    pub fn call(&self, req: Request, timeout: Duration) -> Result<Reply, ChannelError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let id = self.register(Route::Call(tx))?;
        if let Err(e) = self.write(id, &HostMessage::Request(req)) {
            self.abandon(id);
            return Err(e);
        }
        match rx.recv_timeout(timeout) {
            Ok(reply) => Ok(reply),
            Err(RecvTimeoutError::Timeout) => {
                self.abandon(id);
                Err(ChannelError::Timeout(timeout))
            }
            Err(RecvTimeoutError::Disconnected) => Err(ChannelError::Closed(
                self.closed().unwrap_or_else(|| "the channel closed".into()),
            )),
        }
    }

    /// Says hello and returns what the guest reported.
    pub fn hello(&self, client: &str, timeout: Duration) -> Result<GuestInfo, ChannelError> {
        match self.call(
            Request::Hello {
                protocol: PROTOCOL_VERSION,
                client: client.into(),
            },
            timeout,
        )? {
            Reply::Hello {
                protocol,
                agent_version,
                screen_w,
                screen_h,
            } if protocol == PROTOCOL_VERSION => Ok(GuestInfo {
                agent_version,
                screen_w,
                screen_h,
            }),
            Reply::Hello { protocol, .. } => Err(ChannelError::Protocol(format!(
                "the guest agent speaks protocol {protocol}, the host speaks {PROTOCOL_VERSION}"
            ))),
            other => Err(unexpected(other)),
        }
    }

    /// Starts a streaming request.
    pub fn stream(&self, req: Request) -> Result<ReplyStream, ChannelError> {
        let queue = Arc::new(StreamQueue {
            state: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
        });
        let id = self.register(Route::Stream(queue.clone()))?;
        if let Err(e) = self.write(id, &HostMessage::Request(req)) {
            self.abandon(id);
            return Err(e);
        }
        Ok(ReplyStream {
            mux: self.clone(),
            id,
            queue,
        })
    }
}

impl ReplyStream {
    /// The next item, `Ok(None)` on timeout. After the stream's end item, an error.
    pub fn next(&self, timeout: Duration) -> Result<Option<Reply>, ChannelError> {
        let deadline = Instant::now() + timeout;
        let poisoned = || ChannelError::Closed("the stream's queue is poisoned".into());
        let mut st = self.queue.state.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(r) = st.0.pop_front() {
                return Ok(Some(r));
            }
            if st.1 {
                // Release the queue before taking the route table: `route` locks them the other way.
                drop(st);
                return Err(ChannelError::Closed(
                    self.mux.closed().unwrap_or_else(|| "the stream ended".into()),
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            st = self.queue.ready.wait_timeout(st, left).map_err(|_| poisoned())?.0;
        }
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        self.mux.abandon(self.id);
        let _ = self.mux.write(self.id, &HostMessage::Cancel);
    }
}

/// Whether a reply goes on (a frame of a stream, the head of a read) rather than ending its
/// request.
pub(crate) fn is_stream_item(r: &Reply) -> bool {
    matches!(r, Reply::Frame(_) | Reply::Opened(_))
}

/// The error for a reply of the wrong kind.
pub(crate) fn unexpected(r: Reply) -> ChannelError {
    match r {
        Reply::Error { kind, message } => ChannelError::Guest { kind, message },
        other => ChannelError::Protocol(format!("unexpected reply {}", reply_name(&other))),
    }
}

fn reply_name(r: &Reply) -> &'static str {
    match r {
        Reply::Hello { .. } => "hello",
        Reply::Pong => "pong",
        Reply::Done => "done",
        Reply::Screenshot(_) => "screenshot",
        Reply::Pointer { .. } => "pointer",
        Reply::Exec(_) => "exec",
        Reply::Frame(_) => "frame",
        Reply::StreamEnded => "stream-ended",
        Reply::Window(_) => "window",
        Reply::Selection { .. } => "selection",
        Reply::Error { .. } => "error",
        Reply::Written(_) => "written",
        Reply::Opened(_) => "opened",
        Reply::Sent(_) => "sent",
        Reply::Listing(_) => "listing",
        Reply::FileError(_) => "file-error",
    }
}
