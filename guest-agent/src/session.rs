//! One host session: hello first, then concurrent requests, each answered under its own id.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use airlock_protocol::{
    encode_frame, validate_exec, validate_input, validate_window_at, ErrorKind, FrameDecoder, GuestMessage,
    HostMessage, Pixels, Reply, Request, PROTOCOL_VERSION,
};

use crate::channel::{Reader, Writer};
use crate::display::{Display, InputOutcome};
use crate::egress::Egress;
use crate::fb::Framebuffer;
use crate::{exec, frames, Config};

#[derive(Clone)]
struct Shared {
    out: Arc<Mutex<Writer>>,
    display: Arc<Mutex<Option<Arc<Display>>>>,
    inflight: Arc<Mutex<HashMap<u32, Arc<AtomicBool>>>>,
    fbdir: std::path::PathBuf,
    exec_dirs: Arc<Vec<std::path::PathBuf>>,
}

/// Writes one message as a frame; frames from concurrent senders never interleave.
fn write_message(out: &Mutex<Writer>, id: u32, msg: &GuestMessage) -> Result<(), String> {
    let bytes = encode_frame(id, msg).map_err(|e| e.to_string())?;
    let mut out = out.lock().map_err(|_| "writer lock poisoned")?;
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to the host: {e}"))
}

impl Shared {
    fn send(&self, id: u32, reply: Reply) -> Result<(), String> {
        write_message(&self.out, id, &GuestMessage::Reply(reply))
    }

    fn error(&self, id: u32, kind: ErrorKind, message: String) {
        let _ = self.send(id, Reply::Error { kind, message });
    }

    fn display(&self) -> Result<Arc<Display>, String> {
        let mut slot = self.display.lock().map_err(|_| "display lock poisoned")?;
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let d = Arc::new(Display::connect()?);
        *slot = Some(d.clone());
        Ok(d)
    }
}

/// Serves requests until the host closes the channel or breaks the protocol.
pub fn serve(config: &Config, reader: Reader, writer: Writer) -> Result<(), String> {
    let out = Arc::new(Mutex::new(writer));
    let egress = {
        let out = out.clone();
        Egress::start(Arc::new(move |id, msg| write_message(&out, id, &msg)))
    };
    let r = serve_requests(config, reader, out, &egress);
    egress.close_all();
    r
}

fn serve_requests(
    config: &Config,
    mut reader: Reader,
    out: Arc<Mutex<Writer>>,
    egress: &Egress,
) -> Result<(), String> {
    let shared = Shared {
        out,
        display: Arc::new(Mutex::new(None)),
        inflight: Arc::new(Mutex::new(HashMap::new())),
        fbdir: config.fbdir.clone(),
        exec_dirs: Arc::new(config.exec_dirs.clone()),
    };
    let mut decoder = FrameDecoder::default();
    let mut hello = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| format!("cannot read from the host: {e}"))?;
        if n == 0 {
            return decoder.finish().map_err(|e| e.to_string());
        }
        decoder.extend(&buf[..n]);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    shared.error(0, ErrorKind::InvalidRequest, e.to_string());
                    return Err(e.to_string());
                }
            };
            let msg: HostMessage = match frame.decode() {
                Ok(m) => m,
                Err(e) => {
                    shared.error(frame.id, ErrorKind::InvalidRequest, e.to_string());
                    return Err(e.to_string());
                }
            };
            match msg {
                HostMessage::Stream(m) => egress.on_host(frame.id, m),
                HostMessage::Cancel => {
                    if let Some(flag) = shared
                        .inflight
                        .lock()
                        .map_err(|_| "lock poisoned")?
                        .get(&frame.id)
                    {
                        flag.store(true, Ordering::Relaxed);
                    }
                }
                HostMessage::Request(Request::Hello { protocol, client }) => {
                    if protocol != PROTOCOL_VERSION {
                        let m = format!(
                            "the host speaks protocol {protocol}, this agent speaks {PROTOCOL_VERSION}"
                        );
                        shared.error(frame.id, ErrorKind::InvalidRequest, m.clone());
                        return Err(m);
                    }
                    eprintln!("airlock-guest-agent: hello from {client}");
                    let (w, h) = match shared.display() {
                        Ok(d) => (d.width, d.height),
                        Err(e) => {
                            shared.error(frame.id, ErrorKind::Unavailable, e);
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
                        let m = "a request arrived before hello".to_string();
                        shared.error(frame.id, ErrorKind::HelloRequired, m.clone());
                        return Err(m);
                    }
                    let flag = Arc::new(AtomicBool::new(false));
                    {
                        let mut inflight = shared.inflight.lock().map_err(|_| "lock poisoned")?;
                        if inflight.contains_key(&frame.id) {
                            let m = format!("request id {} is already in flight", frame.id);
                            shared.error(frame.id, ErrorKind::OutOfOrder, m.clone());
                            return Err(m);
                        }
                        inflight.insert(frame.id, flag.clone());
                    }
                    let s = shared.clone();
                    let id = frame.id;
                    std::thread::spawn(move || {
                        let reply = handle(&s, id, req, &flag);
                        if let Ok(mut m) = s.inflight.lock() {
                            m.remove(&id);
                        }
                        let _ = s.send(id, reply);
                    });
                }
            }
        }
    }
}

fn handle(s: &Shared, id: u32, req: Request, cancel: &Arc<AtomicBool>) -> Reply {
    let err = |kind, message: String| Reply::Error { kind, message };
    match req {
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
                Err(e) => return err(ErrorKind::Unavailable, e),
            };
            if let Err(e) = validate_input(&input, d.width, d.height) {
                return err(ErrorKind::InvalidRequest, e);
            }
            match d.input(&input) {
                Ok(InputOutcome::Done) => Reply::Done,
                Ok(InputOutcome::Pointer(x, y)) => Reply::Pointer { x, y },
                Err(e) => err(ErrorKind::Unavailable, e),
            }
        }
        Request::Exec(r) => {
            if let Err(e) = validate_exec(&r) {
                return err(ErrorKind::InvalidRequest, e);
            }
            match exec::run(&r, &s.exec_dirs) {
                Ok(res) => Reply::Exec(res),
                Err((kind, message)) => err(kind, message),
            }
        }
        Request::Window { at } => {
            let d = match s.display() {
                Ok(d) => d,
                Err(e) => return err(ErrorKind::Unavailable, e),
            };
            if let Err(e) = validate_window_at(at, d.width, d.height) {
                return err(ErrorKind::InvalidRequest, e);
            }
            match d.window(at) {
                Ok(w) => Reply::Window(w),
                Err(e) => err(ErrorKind::Unavailable, e),
            }
        }
        Request::Selection { which } => match crate::window::selection(which) {
            Ok((text, truncated)) => Reply::Selection { text, truncated },
            Err(e) => err(ErrorKind::Unavailable, e),
        },
        Request::StartFrames { max_fps } => {
            match frames::stream(&s.fbdir, max_fps, cancel, |u| s.send(id, Reply::Frame(u))) {
                Ok(()) => Reply::StreamEnded,
                Err(e) => err(ErrorKind::Unavailable, e),
            }
        }
    }
}
