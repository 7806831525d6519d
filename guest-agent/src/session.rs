//! One host session: hello first, then concurrent requests, each answered under its own id.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use airlock_protocol::{
    encode_frame, validate_exec, validate_input, validate_window_at, ErrorKind, FrameDecoder, FrameError,
    GuestMessage, HostMessage, Pixels, Reply, Request, PROTOCOL_VERSION,
};

use crate::channel::{Reader, Writer};
use crate::display::{ConnectError, Display, InputOutcome};
use crate::egress::Egress;
use crate::fb::Framebuffer;
use crate::files::Inbox;
use crate::{exec, files, frames, Config};
use airlock_protocol::error_chain as chain;

type Transfers = Arc<Mutex<HashMap<u32, Arc<Inbox>>>>;

#[derive(Clone)]
struct Shared {
    out: Arc<Mutex<Writer>>,
    display: Arc<Mutex<Option<Arc<Display>>>>,
    inflight: Arc<Mutex<HashMap<u32, Arc<AtomicBool>>>>,
    /// The file transfers in flight, by request id.
    transfers: Transfers,
    fbdir: std::path::PathBuf,
    exec_dirs: Arc<Vec<std::path::PathBuf>>,
}

/// Why a message could not be sent to the host.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message does not fit a frame.
    #[error("cannot encode a message for the host")]
    Encode(#[source] FrameError),
    /// A thread panicked while it was writing to the host.
    #[error("the channel to the host is unusable: a thread panicked while writing to it")]
    Poisoned,
    /// The channel did not take the bytes.
    #[error("cannot write to the host")]
    Write(#[source] std::io::Error),
}

/// Why the display is not available to a request.
#[derive(Debug, thiserror::Error)]
enum DisplayError {
    /// A thread panicked while it held the display slot.
    #[error("the display is unusable: a thread panicked while connecting to it")]
    Poisoned,
    /// The X server could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// Why a session ended other than by the host closing the channel cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The channel could not be read.
    #[error("cannot read from the host")]
    Read(#[source] std::io::Error),
    /// The host's bytes are not frames, or a frame was cut short.
    #[error("the host broke the framing")]
    Framing(#[source] FrameError),
    /// A frame's body is not a host message.
    #[error("cannot decode the host's message {id}")]
    Decode {
        /// The frame's request id.
        id: u32,
        /// The decoder's error.
        #[source]
        source: FrameError,
    },
    /// The host greeted with another protocol version.
    #[error("the host speaks protocol {host}, this agent speaks {agent}")]
    Version {
        /// The host's version.
        host: u8,
        /// This agent's version.
        agent: u8,
    },
    /// A request came before the hello.
    #[error("a request arrived before hello")]
    BeforeHello,
    /// The host reused the id of a request still running.
    #[error("request id {0} is already in flight")]
    InFlight(u32),
    /// A thread panicked while it held the table of requests in flight.
    #[error("the table of requests in flight is unusable: a thread panicked while holding it")]
    Poisoned,
    /// A reply could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Writes one message as a frame; frames from concurrent senders never interleave.
fn write_message(out: &Mutex<Writer>, id: u32, msg: &GuestMessage) -> Result<(), SendError> {
    let bytes = encode_frame(id, msg).map_err(SendError::Encode)?;
    let mut out = out.lock().map_err(|_| SendError::Poisoned)?;
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(SendError::Write)
}

impl Shared {
    fn send(&self, id: u32, reply: Reply) -> Result<(), SendError> {
        write_message(&self.out, id, &GuestMessage::Reply(reply))
    }

    fn error(&self, id: u32, kind: ErrorKind, message: String) {
        let _ = self.send(id, Reply::Error { kind, message });
    }

    /// Sends `e` to the host as the error reply to `id`, and hands it back to end the session.
    fn fail(&self, id: u32, kind: ErrorKind, e: SessionError) -> SessionError {
        self.error(id, kind, chain(&e));
        e
    }

    /// The inbox of transfer `id`, if it is in flight.
    fn inbox(&self, id: u32) -> Result<Option<Arc<Inbox>>, SessionError> {
        Ok(self
            .transfers
            .lock()
            .map_err(|_| SessionError::Poisoned)?
            .get(&id)
            .cloned())
    }

    fn display(&self) -> Result<Arc<Display>, DisplayError> {
        let mut slot = self.display.lock().map_err(|_| DisplayError::Poisoned)?;
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let d = Arc::new(Display::connect()?);
        *slot = Some(d.clone());
        Ok(d)
    }
}

/// Serves requests until the host closes the channel or breaks the protocol.
pub fn serve(config: &Config, reader: Reader, writer: Writer) -> Result<(), SessionError> {
    let out = Arc::new(Mutex::new(writer));
    let egress = {
        let out = out.clone();
        Egress::start(Arc::new(move |id, msg| write_message(&out, id, &msg)))
    };
    let transfers = Transfers::default();
    let r = serve_requests(config, reader, out, &egress, &transfers);
    egress.close_all();
    // Every transfer stops: a write in progress removes its temporary file.
    if let Ok(t) = transfers.lock() {
        t.values().for_each(|i| i.stop("the host went away"));
    }
    r
}

fn serve_requests(
    config: &Config,
    mut reader: Reader,
    out: Arc<Mutex<Writer>>,
    egress: &Egress,
    transfers: &Transfers,
) -> Result<(), SessionError> {
    let shared = Shared {
        out,
        display: Arc::new(Mutex::new(None)),
        inflight: Arc::new(Mutex::new(HashMap::new())),
        transfers: transfers.clone(),
        fbdir: config.fbdir.clone(),
        exec_dirs: Arc::new(config.exec_dirs.clone()),
    };
    let mut decoder = FrameDecoder::default();
    let mut hello = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(SessionError::Read)?;
        if n == 0 {
            return decoder.finish().map_err(SessionError::Framing);
        }
        decoder.extend(&buf[..n]);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    shared.error(0, ErrorKind::InvalidRequest, e.to_string());
                    return Err(SessionError::Framing(e));
                }
            };
            let msg: HostMessage = match frame.decode() {
                Ok(m) => m,
                Err(e) => {
                    shared.error(frame.id, ErrorKind::InvalidRequest, e.to_string());
                    return Err(SessionError::Decode {
                        id: frame.id,
                        source: e,
                    });
                }
            };
            match msg {
                HostMessage::Stream(m) => egress.on_host(frame.id, m),
                // Traffic for a transfer that already ended is late, not wrong.
                HostMessage::Transfer(m) => {
                    if let Some(inbox) = shared.inbox(frame.id)? {
                        inbox.on_host(m);
                    }
                }
                HostMessage::Cancel => {
                    if let Some(flag) = shared
                        .inflight
                        .lock()
                        .map_err(|_| SessionError::Poisoned)?
                        .get(&frame.id)
                    {
                        flag.store(true, Ordering::Relaxed);
                    }
                    if let Some(inbox) = shared.inbox(frame.id)? {
                        inbox.stop("the host cancelled it");
                    }
                }
                HostMessage::Request(Request::Hello { protocol, client }) => {
                    if protocol != PROTOCOL_VERSION {
                        let e = SessionError::Version {
                            host: protocol,
                            agent: PROTOCOL_VERSION,
                        };
                        return Err(shared.fail(frame.id, ErrorKind::InvalidRequest, e));
                    }
                    eprintln!("airlock-guest-agent: hello from {client}");
                    let (w, h) = match shared.display() {
                        Ok(d) => (d.width, d.height),
                        Err(e) => {
                            shared.error(frame.id, ErrorKind::Unavailable, chain(&e));
                            continue;
                        }
                    };
                    hello = true;
                    shared.send(
                        frame.id,
                        Reply::Hello {
                            protocol: PROTOCOL_VERSION,
                            agent_version: env!("CARGO_PKG_VERSION").to_string(),
                            screen_w: w,
                            screen_h: h,
                        },
                    )?;
                }
                HostMessage::Request(req) => {
                    if !hello {
                        let e = SessionError::BeforeHello;
                        return Err(shared.fail(frame.id, ErrorKind::HelloRequired, e));
                    }
                    let flag = Arc::new(AtomicBool::new(false));
                    {
                        let mut inflight = shared.inflight.lock().map_err(|_| SessionError::Poisoned)?;
                        if inflight.contains_key(&frame.id) {
                            let e = SessionError::InFlight(frame.id);
                            return Err(shared.fail(frame.id, ErrorKind::OutOfOrder, e));
                        }
                        inflight.insert(frame.id, flag.clone());
                    }
                    // A transfer's inbox exists before its first data can arrive.
                    let inbox = match req {
                        Request::PutFile(_) | Request::GetPath { .. } => {
                            let inbox = Arc::new(Inbox::default());
                            shared
                                .transfers
                                .lock()
                                .map_err(|_| SessionError::Poisoned)?
                                .insert(frame.id, inbox.clone());
                            Some(inbox)
                        }
                        _ => None,
                    };
                    let s = shared.clone();
                    let id = frame.id;
                    std::thread::spawn(move || {
                        let reply = handle(&s, id, req, &flag, inbox.as_deref());
                        if let Ok(mut m) = s.inflight.lock() {
                            m.remove(&id);
                        }
                        if let Ok(mut m) = s.transfers.lock() {
                            m.remove(&id);
                        }
                        let _ = s.send(id, reply);
                    });
                }
            }
        }
    }
}

fn handle(s: &Shared, id: u32, req: Request, cancel: &Arc<AtomicBool>, inbox: Option<&Inbox>) -> Reply {
    let err = |kind, message: String| Reply::Error { kind, message };
    let to_host = |m: GuestMessage| write_message(&s.out, id, &m);
    let no_inbox = || err(ErrorKind::Unavailable, "the transfer has no inbox".into());
    match req {
        Request::PutFile(p) => {
            let Some(inbox) = inbox else { return no_inbox() };
            let r = files::put(&p, inbox, &to_host);
            log_transfer("put", &p.path, &r);
            r.map_or_else(Reply::FileError, Reply::Written)
        }
        Request::GetPath { path } => {
            let Some(inbox) = inbox else { return no_inbox() };
            let r = files::get(&path, inbox, &to_host);
            log_transfer("get", &path, &r);
            r.map_or_else(Reply::FileError, Reply::Sent)
        }
        Request::ListDir { path, limit } => {
            files::list(&path, limit).map_or_else(Reply::FileError, Reply::Listing)
        }
        Request::Hello { .. } => err(ErrorKind::OutOfOrder, "hello was already done".into()),
        Request::Ping => Reply::Pong,
        // This agent's streams go to whoever holds the channel: nothing to switch.
        Request::AttachEgress => Reply::Done,
        Request::Screenshot => match Framebuffer::open(&s.fbdir).and_then(|fb| {
            fb.read(0, 0, fb.width, fb.height)
                .map(|px| Pixels::compress(0, 0, fb.width, fb.height, &px))
        }) {
            Ok(p) => Reply::Screenshot(p),
            Err(e) => err(
                ErrorKind::Unavailable,
                format!("cannot read the framebuffer: {e}"),
            ),
        },
        Request::Input(input) => {
            let d = match s.display() {
                Ok(d) => d,
                Err(e) => return err(ErrorKind::Unavailable, chain(&e)),
            };
            if let Err(e) = validate_input(&input, d.width, d.height) {
                return err(ErrorKind::InvalidRequest, chain(&e));
            }
            match d.input(&input) {
                Ok(InputOutcome::Done) => Reply::Done,
                Ok(InputOutcome::Pointer(x, y)) => Reply::Pointer { x, y },
                Err(e) => err(ErrorKind::Unavailable, chain(&e)),
            }
        }
        Request::Exec(r) => {
            if let Err(e) = validate_exec(&r) {
                return err(ErrorKind::InvalidRequest, chain(&e));
            }
            match exec::run(&r, &s.exec_dirs) {
                Ok(res) => Reply::Exec(res),
                Err((kind, message)) => err(kind, message),
            }
        }
        Request::Window { at } => {
            let d = match s.display() {
                Ok(d) => d,
                Err(e) => return err(ErrorKind::Unavailable, chain(&e)),
            };
            if let Err(e) = validate_window_at(at, d.width, d.height) {
                return err(ErrorKind::InvalidRequest, chain(&e));
            }
            match d.window(at) {
                Ok(w) => Reply::Window(w),
                Err(e) => err(ErrorKind::Unavailable, chain(&e)),
            }
        }
        Request::Selection { which } => match crate::window::selection(which) {
            Ok((text, truncated)) => Reply::Selection { text, truncated },
            Err(e) => err(ErrorKind::Unavailable, chain(&e)),
        },
        Request::StartFrames { max_fps } => {
            match frames::stream(&s.fbdir, max_fps, cancel, |u| s.send(id, Reply::Frame(u))) {
                Ok(()) => Reply::StreamEnded,
                Err(e) => err(ErrorKind::Unavailable, chain(&e)),
            }
        }
    }
}

fn log_transfer(what: &str, path: &str, r: &Result<airlock_protocol::Digest, airlock_protocol::FileError>) {
    match r {
        Ok(d) => eprintln!(
            "airlock-guest-agent: {what} {path}: {} bytes, sha256 {}",
            d.size,
            d.sha256_hex()
        ),
        Err(e) => eprintln!(
            "airlock-guest-agent: {what} {path} failed ({:?}): {}",
            e.kind, e.message
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    /// A channel whose host has gone away.
    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "the port is closed"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_keeps_its_cause() {
        let out: Mutex<Writer> = Mutex::new(Box::new(Gone));
        let e = write_message(&out, 1, &GuestMessage::Reply(Reply::Pong)).expect_err("the write fails");
        let SendError::Write(io) = &e else {
            panic!("expected a write error, got {e:?}");
        };
        assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(chain(&e), "cannot write to the host: the port is closed");
    }

    #[test]
    fn session_errors_read_as_before() {
        let e = SessionError::Version { host: 9, agent: 1 };
        assert_eq!(chain(&e), "the host speaks protocol 9, this agent speaks 1");
        assert_eq!(
            chain(&SessionError::InFlight(7)),
            "request id 7 is already in flight"
        );
        // A send failure inside the session reads as the send failure itself.
        let e = SessionError::from(SendError::Write(io::Error::other("gone")));
        assert_eq!(chain(&e), "cannot write to the host: gone");
    }
}
