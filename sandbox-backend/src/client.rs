//! [`GuestClient`]: typed calls to a guest agent over any byte stream (a keeper socket in
//! production, a fake guest in tests).
//!
//! Most calls block their thread. File transfers ([`GuestClient::put_file`],
//! [`GuestClient::get_path`], [`GuestClient::list_dir`]) are futures that never block a runtime
//! thread: the channel's reader thread hands their events over through channels and a
//! [`Notify`]. Their futures and the [`Download`] they return own what they need (`'static`),
//! and dropping one cancels the transfer in the guest, which then leaves nothing behind.

use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use airlock_protocol::{
    validate_guest_path, validate_list_limit, Content, Digest, ExecRequest, ExecResult, Flow, Input, Listing,
    PutFile, Reply, Request, SelectionKind, StreamMessage, TransferMessage, WindowInfo, MAX_SELECTION_TEXT,
    MAX_STREAM_CHUNK,
};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

use crate::mux::{unexpected, EgressSink, GuestInfo, GuestMux, ReplyStream, TransferEvent};
use crate::{ChannelError, TransferError};

/// How long to wait for the reply to `req`: emulated guests are slow, typing takes time per key,
/// and an exec may run up to its own timeout.
pub fn reply_timeout(req: &Request) -> Duration {
    let base = Duration::from_secs(30);
    match req {
        Request::Exec(e) => base + Duration::from_millis(u64::from(e.timeout_ms)),
        Request::Input(Input::Type { text }) => {
            base + Duration::from_millis(20 * text.chars().count() as u64)
        }
        Request::Input(Input::Drag { path, .. }) => base + Duration::from_millis(20 * path.len() as u64),
        Request::Hello { .. }
        | Request::Ping
        | Request::Screenshot
        | Request::Input(_)
        | Request::StartFrames { .. }
        | Request::Window { .. }
        | Request::Selection { .. }
        | Request::AttachEgress
        | Request::ListDir { .. } => base,
        // A transfer has no deadline of its own: its caller drops it to give up.
        Request::PutFile(_) | Request::GetPath { .. } => base,
    }
}

/// A decoded screenshot.
#[derive(Debug, Clone)]
pub struct Screenshot {
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// RGBA pixels, row-major.
    pub rgba: Vec<u8>,
}

impl Screenshot {
    /// Encodes as PNG.
    pub fn png(&self) -> Result<Vec<u8>, image::ImageError> {
        use image::ImageEncoder;
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(
            &self.rgba,
            u32::from(self.width),
            u32::from(self.height),
            image::ExtendedColorType::Rgba8,
        )?;
        Ok(out)
    }

    /// Number of distinct colours (capped at `cap`): a blank screen has one.
    pub fn distinct_colors(&self, cap: usize) -> usize {
        let mut seen = std::collections::HashSet::new();
        for px in self.rgba.chunks_exact(4) {
            seen.insert([px[0], px[1], px[2]]);
            if seen.len() >= cap {
                break;
            }
        }
        seen.len()
    }
}

/// Converts BGRX rows to RGBA.
pub fn bgrx_to_rgba(bgrx: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bgrx.len());
    for px in bgrx.chunks_exact(4) {
        out.extend_from_slice(&[px[2], px[1], px[0], 255]);
    }
    out
}

/// A connected guest.
pub struct GuestClient {
    mux: GuestMux,
    /// What the guest said at hello.
    pub info: GuestInfo,
    /// Shut down on drop, so the reader thread and the peer see the end of the stream.
    socket: Option<UnixStream>,
}

impl Drop for GuestClient {
    fn drop(&mut self) {
        if let Some(s) = &self.socket {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl std::fmt::Debug for GuestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestClient")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl GuestClient {
    /// Connects to a keeper's unix socket and says hello.
    pub fn connect(socket: &Path, id: &str) -> Result<GuestClient, ChannelError> {
        let s = UnixStream::connect(socket).map_err(|e| ChannelError::Connect {
            id: id.to_string(),
            reason: format!("{}: {e}", socket.display()),
        })?;
        GuestClient::over_unix(s, id)
    }

    /// Says hello over a unix stream, which is shut down when the client is dropped.
    pub fn over_unix(s: UnixStream, name: &str) -> Result<GuestClient, ChannelError> {
        let clone = |s: &UnixStream| {
            s.try_clone().map_err(|e| ChannelError::Connect {
                id: name.to_string(),
                reason: e.to_string(),
            })
        };
        let (reader, closer) = (clone(&s)?, clone(&s)?);
        match GuestClient::over(Box::new(reader), Box::new(s), name) {
            Ok(mut c) => {
                c.socket = Some(closer);
                Ok(c)
            }
            Err(e) => {
                let _ = closer.shutdown(std::net::Shutdown::Both);
                Err(e)
            }
        }
    }

    /// Says hello over an arbitrary stream; the caller closes the stream when done.
    pub fn over(
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        name: &str,
    ) -> Result<GuestClient, ChannelError> {
        let mux = GuestMux::start(reader, writer, name.to_string());
        let info = mux.hello("airlock", Duration::from_secs(15))?;
        Ok(GuestClient {
            mux,
            info,
            socket: None,
        })
    }

    fn call(&self, req: Request) -> Result<Reply, ChannelError> {
        // The keeper applies the same timeout towards the guest; allow it to answer first.
        let t = reply_timeout(&req) + Duration::from_secs(5);
        self.mux.call(req, t)
    }

    /// Liveness check.
    pub fn ping(&self) -> Result<(), ChannelError> {
        match self.call(Request::Ping)? {
            Reply::Pong => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The whole screen.
    pub fn screenshot(&self) -> Result<Screenshot, ChannelError> {
        match self.call(Request::Screenshot)? {
            Reply::Screenshot(p) => {
                let (w, h) = (self.info.screen_w, self.info.screen_h);
                if (p.x, p.y, p.width, p.height) != (0, 0, w, h) {
                    return Err(ChannelError::Protocol(format!(
                        "the guest sent a {}x{} screenshot at {},{} for a {w}x{h} screen",
                        p.width, p.height, p.x, p.y
                    )));
                }
                let bgrx = p
                    .decompress()
                    .map_err(|e| ChannelError::Protocol(e.to_string()))?;
                Ok(Screenshot {
                    width: w,
                    height: h,
                    rgba: bgrx_to_rgba(&bgrx),
                })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Synthetic input.
    pub fn input(&self, input: Input) -> Result<(), ChannelError> {
        match self.call(Request::Input(input))? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Where the pointer is.
    pub fn pointer(&self) -> Result<(u16, u16), ChannelError> {
        match self.call(Request::Input(Input::QueryPointer))? {
            Reply::Pointer { x, y } => Ok((x, y)),
            other => Err(unexpected(other)),
        }
    }

    /// Runs a program.
    pub fn exec(&self, req: ExecRequest) -> Result<ExecResult, ChannelError> {
        match self.call(Request::Exec(req))? {
            Reply::Exec(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// The focused top-level window (`at: None`) or the one under a point.
    pub fn window(&self, at: Option<(u16, u16)>) -> Result<WindowInfo, ChannelError> {
        match self.call(Request::Window { at })? {
            Reply::Window(w) => {
                w.validate().map_err(|e| ChannelError::Protocol(e.to_string()))?;
                Ok(w)
            }
            other => Err(unexpected(other)),
        }
    }

    /// What a paste from `which` would insert, and whether it was cut to the protocol's limit.
    pub fn selection(&self, which: SelectionKind) -> Result<(String, bool), ChannelError> {
        match self.call(Request::Selection { which })? {
            Reply::Selection { text, truncated } => {
                if text.len() > MAX_SELECTION_TEXT {
                    return Err(ChannelError::Protocol(format!(
                        "the guest sent {} bytes of selection text, over the {MAX_SELECTION_TEXT}-byte limit",
                        text.len()
                    )));
                }
                Ok((text, truncated))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Waits until the desktop's terminal has the focus and a shell (see
    /// [`airlock_protocol::TERMINAL_READY_FILE`]), so typed input is not lost.
    pub fn wait_terminal_ready(&self, timeout: Duration) -> Result<(), ChannelError> {
        let start = std::time::Instant::now();
        loop {
            let r = self.exec(ExecRequest {
                argv: vec![
                    "test".into(),
                    "-e".into(),
                    airlock_protocol::TERMINAL_READY_FILE.into(),
                ],
                stdin: vec![],
                timeout_ms: 10_000,
                output_cap: 0,
            })?;
            if r.exit_code == Some(0) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(ChannelError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Makes this client the sandbox's egress gateway: the guest's streams and notices go to
    /// `sink` (through the keeper, which routes them to the client that attached last).
    pub fn attach_egress(&self, sink: Arc<dyn EgressSink>) -> Result<(), ChannelError> {
        self.mux.set_egress_sink(Some(sink));
        match self.call(Request::AttachEgress) {
            Ok(Reply::Done) => Ok(()),
            Ok(other) => {
                self.mux.set_egress_sink(None);
                Err(unexpected(other))
            }
            Err(e) => {
                self.mux.set_egress_sink(None);
                Err(e)
            }
        }
    }

    /// Queues traffic of egress stream `id` for the guest; never blocks (an error when the queue
    /// is full: the guest is not reading).
    pub fn send_stream(&self, id: u32, msg: StreamMessage) -> Result<(), ChannelError> {
        self.mux.send_stream(id, msg)
    }

    /// Queues traffic of egress stream `id`, waiting while the queue is full (see
    /// [`GuestMux::send_stream_wait`]: not from async tasks).
    pub fn send_stream_wait(&self, id: u32, msg: StreamMessage) -> Result<(), ChannelError> {
        self.mux.send_stream_wait(id, msg)
    }

    /// Starts the damage-region frame stream.
    pub fn frames(&self, max_fps: u16) -> Result<ReplyStream, ChannelError> {
        self.mux.stream(Request::StartFrames { max_fps })
    }

    /// The underlying channel.
    pub fn mux(&self) -> &GuestMux {
        &self.mux
    }

    /// Writes `src` into the guest at `req.path`, atomically: exactly `req.size` bytes are read
    /// from `src` and streamed within the guest's credit (never more than a window in flight);
    /// the guest answers with the size and SHA-256 it computed, checked against the host's own.
    /// Dropping the future cancels the transfer: the guest removes its temporary file and nothing
    /// appears at the target. A `src` shorter or longer than `req.size` fails the same way.
    pub fn put_file<R>(
        &self,
        req: PutFile,
        src: R,
    ) -> impl Future<Output = Result<Digest, TransferError>> + Send + 'static
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let span = tracing::info_span!("put_file", path = %req.path, size = req.size, mode = req.mode);
        put_file(self.mux.clone(), req, src).instrument(span)
    }

    /// Reads a file, or a directory as a tar archive, out of the guest. Resolves once the guest
    /// said what comes ([`Download::content`]); the bytes then stream within the host's credit as
    /// the [`Download`] is read. Dropping the download cancels the transfer in the guest.
    pub fn get_path(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Download, TransferError>> + Send + 'static {
        let span = tracing::info_span!("get_path", path = %path);
        get_path(self.mux.clone(), path.to_string()).instrument(span)
    }

    /// Lists a guest directory: at most `limit` entries (1 to
    /// [`airlock_protocol::MAX_LIST_ENTRIES`]), flagged when there were more.
    pub fn list_dir(
        &self,
        path: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Listing, TransferError>> + Send + 'static {
        let span = tracing::info_span!("list_dir", path = %path, limit);
        list_dir(self.mux.clone(), path.to_string(), limit).instrument(span)
    }
}

/// What the channel's reader hands a transfer.
enum Inbound {
    Reply(Reply),
    Data(Vec<u8>),
    Broken(String),
}

/// One transfer as the host sees it; cancels the guest side when dropped before its end.
struct Link {
    mux: GuestMux,
    id: u32,
    flow: Arc<Mutex<Flow>>,
    credit: Arc<Notify>,
    finished: bool,
}

impl Link {
    fn open(mux: &GuestMux, req: Request) -> Result<(Link, mpsc::UnboundedReceiver<Inbound>), TransferError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let flow = Arc::new(Mutex::new(Flow::default()));
        let credit = Arc::new(Notify::new());
        let (f, c) = (flow.clone(), credit.clone());
        // On the reader thread: bounded by the credit this side grants, so the queue is too.
        let sink = Arc::new(move |ev: TransferEvent| {
            let inbound = match ev {
                TransferEvent::Reply(r) => Inbound::Reply(r),
                TransferEvent::Message(TransferMessage::Data(d)) => {
                    match f
                        .lock()
                        .map_err(|_| "the transfer's flow state is poisoned".to_string())
                        .and_then(|mut fl| fl.received(d.len()).map_err(|e| e.to_string()))
                    {
                        Ok(()) => Inbound::Data(d),
                        Err(e) => Inbound::Broken(e),
                    }
                }
                TransferEvent::Message(TransferMessage::Credit(n)) => {
                    match f
                        .lock()
                        .map_err(|_| "the transfer's flow state is poisoned".to_string())
                        .and_then(|mut fl| fl.credited(n).map_err(|e| e.to_string()))
                    {
                        Ok(()) => {
                            c.notify_one();
                            return;
                        }
                        Err(e) => Inbound::Broken(e),
                    }
                }
                TransferEvent::Message(TransferMessage::Eof) => Inbound::Broken(
                    "the guest sent an end of data; a guest ends a transfer with its reply".into(),
                ),
                TransferEvent::Closed(reason) => {
                    Inbound::Broken(format!("the guest channel closed: {reason}"))
                }
            };
            let _ = tx.send(inbound);
        });
        let id = mux.open_transfer(req, sink).map_err(TransferError::Channel)?;
        Ok((
            Link {
                mux: mux.clone(),
                id,
                flow,
                credit,
                finished: false,
            },
            rx,
        ))
    }

    fn send(&self, msg: TransferMessage) -> Result<(), TransferError> {
        self.mux
            .send_transfer(self.id, msg)
            .map_err(TransferError::Channel)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if !self.finished {
            tracing::debug!(
                id = self.id,
                "file transfer dropped before its end; cancelling it in the guest"
            );
            self.mux.cancel_transfer(self.id);
        }
    }
}

/// The error a reply that should not come now (or an inbound failure) stands for.
fn refusal(ev: Option<Inbound>, expected: &str) -> TransferError {
    match ev {
        None => TransferError::Protocol("the transfer ended without a reply".into()),
        Some(Inbound::Broken(reason)) => TransferError::Protocol(reason),
        Some(Inbound::Data(_)) => {
            TransferError::Protocol(format!("the guest sent data where {expected} was due"))
        }
        Some(Inbound::Reply(Reply::FileError(e))) => match e.validate() {
            Ok(()) => TransferError::Refused(e),
            Err(v) => TransferError::Protocol(v.to_string()),
        },
        Some(Inbound::Reply(Reply::Error { kind, message })) => TransferError::Guest { kind, message },
        Some(Inbound::Reply(other)) => match unexpected(other) {
            ChannelError::Protocol(m) => TransferError::Protocol(format!("{m} where {expected} was due")),
            e => TransferError::Channel(e),
        },
    }
}

fn digest_mismatch(guest: &Digest, host: &Digest) -> Option<TransferError> {
    (guest != host).then(|| {
        TransferError::Protocol(format!(
            "the guest reports {} bytes with SHA-256 {}, the host counted {} bytes with SHA-256 {}",
            guest.size,
            guest.sha256_hex(),
            host.size,
            host.sha256_hex()
        ))
    })
}

async fn put_file<R>(mux: GuestMux, req: PutFile, mut src: R) -> Result<Digest, TransferError>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    req.validate().map_err(TransferError::Invalid)?;
    let size = req.size;
    let (mut link, mut rx) = Link::open(&mux, Request::PutFile(req))?;
    let mut hasher = Sha256::new();
    let mut sent: u64 = 0;
    let mut buf = vec![0u8; MAX_STREAM_CHUNK];
    while sent < size {
        // Any reply before the end is the guest giving up (or breaking the protocol).
        let credit = loop {
            match rx.try_recv() {
                Ok(ev) => return Err(refusal(Some(ev), "credit")),
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(refusal(None, "credit")),
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let n = link.flow.lock().map(|f| f.sendable()).unwrap_or(0);
            if n > 0 {
                break n;
            }
            tokio::select! {
                () = link.credit.notified() => {}
                ev = rx.recv() => return Err(refusal(ev, "credit")),
            }
        };
        let want = usize::try_from(size - sent).map_or(credit, |left| left.min(credit));
        let got = src.read(&mut buf[..want]).await.map_err(TransferError::Source)?;
        if got == 0 {
            return Err(TransferError::SourceSize {
                declared: size,
                got: sent,
                longer: false,
            });
        }
        hasher.update(&buf[..got]);
        if let Ok(mut f) = link.flow.lock() {
            f.sent(got);
        }
        link.send(TransferMessage::Data(buf[..got].to_vec()))?;
        sent += got as u64;
    }
    if src.read(&mut buf[..1]).await.map_err(TransferError::Source)? > 0 {
        return Err(TransferError::SourceSize {
            declared: size,
            got: sent,
            longer: true,
        });
    }
    link.send(TransferMessage::Eof)?;
    let ours = Digest {
        size: sent,
        sha256: hasher.finalize().into(),
    };
    let ev = rx.recv().await;
    link.finished = matches!(ev, Some(Inbound::Reply(_)));
    match ev {
        Some(Inbound::Reply(Reply::Written(theirs))) => {
            if let Some(e) = digest_mismatch(&theirs, &ours) {
                return Err(e);
            }
            tracing::info!(sha256 = %ours.sha256_hex(), "file written in the guest");
            Ok(ours)
        }
        other => Err(refusal(other, "the written reply")),
    }
}

async fn get_path(mux: GuestMux, path: String) -> Result<Download, TransferError> {
    validate_guest_path(&path).map_err(TransferError::Invalid)?;
    let (mut link, mut rx) = Link::open(&mux, Request::GetPath { path })?;
    match rx.recv().await {
        Some(Inbound::Reply(Reply::Opened(content))) => Ok(Download {
            content,
            link,
            rx,
            chunk: Vec::new(),
            pos: 0,
            hasher: Sha256::new(),
            received: 0,
            done: None,
            failed: false,
        }),
        other => {
            link.finished = !matches!(other, Some(Inbound::Broken(_)) | Some(Inbound::Data(_)));
            Err(refusal(other, "what the path holds"))
        }
    }
}

async fn list_dir(mux: GuestMux, path: String, limit: u32) -> Result<Listing, TransferError> {
    validate_guest_path(&path).map_err(TransferError::Invalid)?;
    validate_list_limit(limit).map_err(TransferError::Invalid)?;
    let (mut link, mut rx) = Link::open(&mux, Request::ListDir { path, limit })?;
    let ev = rx.recv().await;
    link.finished = true;
    match ev {
        Some(Inbound::Reply(Reply::Listing(l))) => {
            l.validate(limit)
                .map_err(|e| TransferError::Protocol(e.to_string()))?;
            Ok(l)
        }
        other => Err(refusal(other, "a listing")),
    }
}

/// A file or directory archive coming out of the guest: read it as an [`AsyncRead`]. It ends
/// (reads 0 bytes) only once the guest's final size and SHA-256 matched what arrived
/// ([`Download::digest`]); any failure is an [`std::io::Error`] wrapping a [`TransferError`].
/// Dropping it before the end cancels the transfer in the guest.
pub struct Download {
    content: Content,
    link: Link,
    rx: mpsc::UnboundedReceiver<Inbound>,
    chunk: Vec<u8>,
    pos: usize,
    hasher: Sha256,
    received: u64,
    done: Option<Digest>,
    failed: bool,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("content", &self.content)
            .field("received", &self.received)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Download {
    /// What comes: a file and its size, or a directory's tar archive.
    pub fn content(&self) -> Content {
        self.content
    }

    /// Size and SHA-256 of everything read, once the download reached its end.
    pub fn digest(&self) -> Option<Digest> {
        self.done
    }

    fn fail(&mut self, e: TransferError) -> Poll<std::io::Result<()>> {
        self.failed = true;
        tracing::warn!(error = %airlock_protocol::error_chain(&e), "file read failed");
        Poll::Ready(Err(std::io::Error::other(e)))
    }

    /// Takes one event from the guest; `Ok(true)` when there is data to hand out.
    fn take(&mut self, ev: Option<Inbound>) -> Result<bool, TransferError> {
        match ev {
            Some(Inbound::Data(d)) => {
                self.received += d.len() as u64;
                if let Content::File { size, .. } = self.content {
                    if self.received > size {
                        return Err(TransferError::Protocol(format!(
                            "the guest sent more than the {size} bytes it announced"
                        )));
                    }
                }
                self.hasher.update(&d);
                self.chunk = d;
                self.pos = 0;
                Ok(true)
            }
            Some(Inbound::Reply(Reply::Sent(theirs))) => {
                self.link.finished = true;
                let ours = Digest {
                    size: self.received,
                    sha256: std::mem::take(&mut self.hasher).finalize().into(),
                };
                if let Content::File { size, .. } = self.content {
                    if size != ours.size {
                        return Err(TransferError::Protocol(format!(
                            "the guest announced {size} bytes and sent {}",
                            ours.size
                        )));
                    }
                }
                if let Some(e) = digest_mismatch(&theirs, &ours) {
                    return Err(e);
                }
                tracing::info!(size = ours.size, sha256 = %ours.sha256_hex(), "file read from the guest");
                self.done = Some(ours);
                Ok(false)
            }
            other => {
                self.link.finished = matches!(other, Some(Inbound::Reply(_)));
                Err(refusal(other, "data"))
            }
        }
    }
}

impl AsyncRead for Download {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(Err(std::io::Error::other("the file read already failed")));
            }
            if this.pos < this.chunk.len() {
                let n = buf.remaining().min(this.chunk.len() - this.pos);
                buf.put_slice(&this.chunk[this.pos..this.pos + n]);
                this.pos += n;
                let grant = this.link.flow.lock().ok().and_then(|mut f| f.consumed(n));
                if let Some(g) = grant {
                    if let Err(e) = this.link.send(TransferMessage::Credit(g)) {
                        return this.fail(e);
                    }
                }
                return Poll::Ready(Ok(()));
            }
            if this.done.is_some() || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let ev = ready!(this.rx.poll_recv(cx));
            match this.take(ev) {
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }
}
