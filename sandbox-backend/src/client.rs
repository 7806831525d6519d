//! [`GuestClient`]: typed calls to a guest agent over any byte stream (a keeper socket in
//! production, a fake guest in tests).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use airlock_protocol::{
    ExecRequest, ExecResult, Input, Reply, Request, SelectionKind, StreamMessage, WindowInfo,
    MAX_SELECTION_TEXT,
};

use crate::mux::{unexpected, EgressSink, GuestInfo, GuestMux, ReplyStream};
use crate::ChannelError;

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
}
