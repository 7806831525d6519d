//! The keeper: one small host process per sandbox that owns its VM process and its guest channel.
//!
//! The CLI starts it detached (`airlock __keeper DIR`); it launches the backend with the VM tied
//! to its own life (PR_SET_PDEATHSIG), says hello to the guest agent, then serves any number of
//! local clients on `DIR/keeper.sock`, multiplexing their requests onto the one guest channel. If
//! the CLI that created it goes away before the sandbox is ready, it tears everything down; if the
//! keeper is killed, the VM dies with it; if the VM exits, the keeper records why and exits.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_guest_image::Image;
use airlock_protocol::{
    encode_frame, ErrorKind, FrameDecoder, GuestMessage, HostMessage, Notice, Reply, Request, StreamMessage,
    MAX_STREAMS, PROTOCOL_VERSION,
};

use crate::backend::{backend_for, LaunchSpec};
use crate::client::reply_timeout;
use crate::mux::{is_stream_item, EgressSink, GuestInfo, GuestMux, TransferEvent};
use crate::state::{GuestSummary, SandboxState};
use crate::store::{read_record, write_record};
use crate::{ChannelError, KeeperError, LaunchError};

/// Runs the keeper for the sandbox in `dir` until its VM exits. Errors are recorded in the record.
pub fn run(dir: &Path, boot_timeout: Duration) -> Result<(), KeeperError> {
    let started = Instant::now();
    let record = |what| {
        move |source| KeeperError::Record {
            what,
            dir: dir.to_owned(),
            source,
        }
    };
    let state = |to| {
        move |source| KeeperError::State {
            dir: dir.to_owned(),
            to,
            source,
        }
    };
    let mut rec = read_record(dir).map_err(record("read"))?;
    let record_lock = Arc::new(Mutex::new(()));
    let ready = Arc::new(AtomicBool::new(false));
    rec.keeper_pid = Some(std::process::id());
    rec.state = rec
        .state
        .to(SandboxState::Booting)
        .map_err(state(SandboxState::Booting))?;
    write_record(dir, &rec).map_err(record("write"))?;

    // Watchdog: stdin is a pipe from the creating CLI. EOF before ready means it died or gave up.
    {
        let (dir, ready, lock) = (dir.to_path_buf(), ready.clone(), record_lock.clone());
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            // Decide under the record lock: the main thread publishes Running and sets `ready` while
            // holding it, and the creator may close the pipe the moment it sees Running.
            let _g = lock.lock();
            if !ready.load(Ordering::SeqCst) {
                // Nobody learned this sandbox's id: remove every trace of it, then go.
                tracing::warn!(dir = %dir.display(), "the creating command went away before the sandbox was ready");
                crate::procs::kill_all(&dir, Duration::from_secs(5));
                let _ = std::fs::remove_dir_all(&dir);
                std::process::exit(1);
            }
        });
    }

    let image = Image::open(&rec.image_dir).map_err(|source| KeeperError::Image {
        dir: rec.image_dir.clone(),
        source: Box::new(source),
    })?;
    let launch_error = |source| KeeperError::Launch {
        id: rec.id.clone(),
        source,
    };
    let spec = LaunchSpec {
        id: &rec.id,
        dir,
        image: &image,
        vcpus: rec.vcpus,
        memory_mib: rec.memory_mib,
    };
    let launched = backend_for(rec.backend, rec.accel).and_then(|b| b.launch(&spec));
    let mut launched = match launched {
        Ok(l) => l,
        Err(e) => {
            let _g = record_lock.lock();
            fail(dir, &e.to_string());
            return Err(launch_error(e));
        }
    };
    let vm_pid = launched.child.id();
    let console = launched.console.clone();
    let mux = GuestMux::start(launched.reader, launched.writer, rec.id.clone());
    {
        let _g = record_lock.lock();
        rec.vm_pid = Some(vm_pid);
        write_record(dir, &rec).map_err(record("write"))?;
    }

    // Boot: hello until the agent answers, the VM dies, or time runs out.
    let info = loop {
        match mux.hello("airlock-keeper", Duration::from_secs(2)) {
            Ok(info) => break info,
            Err(ChannelError::Timeout(_)) => {}
            Err(e) => {
                let _ = launched.child.kill();
                let _g = record_lock.lock();
                fail(dir, &format!("{e}; last console output:\n{}", tail(&console)));
                return Err(KeeperError::Hello {
                    id: rec.id.clone(),
                    source: e,
                });
            }
        }
        if let Ok(Some(status)) = launched.child.try_wait() {
            let e = LaunchError::Exited {
                status: status.to_string(),
                console: tail(&console),
            };
            let _g = record_lock.lock();
            fail(dir, &e.to_string());
            return Err(launch_error(e));
        }
        if started.elapsed() > boot_timeout {
            let _ = launched.child.kill();
            let e = LaunchError::Timeout {
                what: "guest agent",
                after: boot_timeout,
            };
            let _g = record_lock.lock();
            fail(dir, &format!("{e}; last console output:\n{}", tail(&console)));
            return Err(launch_error(e));
        }
    };

    let sock = dir.join("keeper.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|source| KeeperError::Listen {
        path: sock.clone(),
        source,
    })?;
    {
        let _g = record_lock.lock();
        rec.state = rec
            .state
            .to(SandboxState::Running)
            .map_err(state(SandboxState::Running))?;
        rec.boot_ms = Some(started.elapsed().as_millis() as u64);
        rec.guest = Some(GuestSummary {
            agent_version: info.agent_version.clone(),
            screen_w: info.screen_w,
            screen_h: info.screen_h,
        });
        write_record(dir, &rec).map_err(record("write"))?;
        ready.store(true, Ordering::SeqCst);
    }
    tracing::info!(id = %rec.id, boot_ms = rec.boot_ms, "sandbox running");

    serve_clients(listener, mux.clone(), info.clone());
    // A guest that breaks the channel is treated as compromised: record why and stop its VM.
    {
        let (mux, dir, lock) = (mux.clone(), dir.to_path_buf(), record_lock.clone());
        std::thread::spawn(move || loop {
            if let Some(reason) = mux.closed() {
                let _g = lock.lock();
                fail(&dir, &format!("the guest channel failed: {reason}"));
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe {
                    libc::kill(vm_pid as i32, libc::SIGKILL);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        });
    }

    let status = launched.child.wait().map_err(|source| KeeperError::Wait {
        id: rec.id.clone(),
        source,
    })?;
    let _g = record_lock.lock();
    let _ = std::fs::remove_file(&sock);
    if let Ok(mut r) = read_record(dir) {
        if !r.state.is_final() {
            if let Ok(s) = r.state.to(SandboxState::Exited) {
                r.state = s;
                r.reason = Some(format!(
                    "the VM process exited ({status}); last console output:\n{}",
                    tail(&console)
                ));
                let _ = write_record(dir, &r);
            }
        }
    }
    Ok(())
}

/// Serves the keeper's local clients on `listener`, on a thread of its own: each client speaks
/// the guest protocol and its requests, streams and file transfers are multiplexed onto `mux`
/// (the guest's egress streams go to the client that attached as the gateway). Public so tests
/// can put a keeper in front of any guest.
pub fn serve_clients(listener: UnixListener, mux: GuestMux, info: GuestInfo) {
    let relay = Arc::new(Relay {
        mux: mux.clone(),
        gateway: Mutex::new(None),
    });
    mux.set_egress_sink(Some(relay.clone()));
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().flatten().enumerate() {
            let (mux, info, relay) = (mux.clone(), info.clone(), relay.clone());
            std::thread::spawn(move || serve_client(conn, mux, info, &relay, n as u64));
        }
    });
}

/// Records a failure (if the record is not final already).
fn fail(dir: &Path, reason: &str) {
    tracing::error!(dir = %dir.display(), %reason, "sandbox failed");
    if let Ok(mut r) = read_record(dir) {
        if let Ok(s) = r.state.to(SandboxState::Failed) {
            r.state = s;
            r.reason = Some(reason.to_string());
            let _ = write_record(dir, &r);
        }
    }
}

/// The last lines of a console log.
pub fn tail(path: &PathBuf) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

type ClientWriter = Arc<Mutex<UnixStream>>;

/// Routes the guest's egress streams to the client that attached as the sandbox's gateway last.
struct Relay {
    mux: GuestMux,
    gateway: Mutex<Option<Gateway>>,
}

/// The attached gateway client and the streams open through it.
struct Gateway {
    client: u64,
    writer: ClientWriter,
    open: std::collections::HashSet<u32>,
}

impl Relay {
    fn attach(&self, client: u64, writer: ClientWriter) {
        let old = self.gateway.lock().ok().and_then(|mut g| {
            g.replace(Gateway {
                client,
                writer,
                open: Default::default(),
            })
        });
        if let Some(old) = old {
            self.close_guest_side(old.open, "another egress gateway took over this sandbox");
        }
    }

    /// The client went away: if it was the gateway, its streams end.
    fn detach(&self, client: u64) {
        let gone = self.gateway.lock().ok().and_then(|mut g| match g.as_ref() {
            Some(gw) if gw.client == client => g.take(),
            _ => None,
        });
        if let Some(gw) = gone {
            self.close_guest_side(gw.open, "the egress gateway went away");
        }
    }

    fn close_guest_side(&self, open: std::collections::HashSet<u32>, reason: &str) {
        for id in open {
            let close = StreamMessage::Close {
                reason: Some(reason.to_string()),
            };
            let _ = self.mux.send_stream_wait(id, close);
        }
    }

    /// Stream traffic from the gateway client to the guest.
    fn to_guest(&self, client: u64, id: u32, msg: StreamMessage) {
        let mine = match self.gateway.lock() {
            Ok(mut g) => match g.as_mut() {
                Some(gw) if gw.client == client => {
                    if matches!(msg, StreamMessage::Close { .. }) {
                        gw.open.remove(&id);
                    }
                    true
                }
                _ => false,
            },
            Err(_) => false,
        };
        if mine {
            let _ = self.mux.send_stream_wait(id, msg);
        }
    }

    fn forward(&self, id: u32, msg: GuestMessage) {
        let Ok(mut g) = self.gateway.lock() else { return };
        let Some(gw) = g.as_mut() else {
            if let GuestMessage::Stream(StreamMessage::Open { .. }) = msg {
                drop(g);
                let reason = "no egress gateway is attached to this sandbox".to_string();
                let _ = self
                    .mux
                    .send_stream(id, StreamMessage::Close { reason: Some(reason) });
            }
            return;
        };
        match &msg {
            // The gateway closes streams beyond its own limit; the relay only bounds its table.
            GuestMessage::Stream(StreamMessage::Open { .. }) if gw.open.len() < 4 * MAX_STREAMS => {
                gw.open.insert(id);
            }
            GuestMessage::Stream(StreamMessage::Close { .. }) => {
                gw.open.remove(&id);
            }
            _ => {}
        }
        let writer = gw.writer.clone();
        drop(g);
        let Ok(bytes) = encode_frame(id, &msg) else { return };
        let sent = writer
            .lock()
            .map(|mut s| s.write_all(&bytes).is_ok())
            .unwrap_or(false);
        if !sent {
            tracing::warn!("cannot write to the egress gateway client; detaching it");
            let client = self
                .gateway
                .lock()
                .ok()
                .and_then(|g| g.as_ref().map(|gw| gw.client));
            if let Some(c) = client {
                self.detach(c);
            }
        }
    }
}

impl EgressSink for Relay {
    fn stream(&self, id: u32, msg: StreamMessage) {
        self.forward(id, GuestMessage::Stream(msg));
    }

    fn notice(&self, notice: Notice) {
        self.forward(0, GuestMessage::Notice(notice));
    }

    fn closed(&self, reason: &str) {
        tracing::debug!(%reason, "the guest channel closed; the egress relay stops");
        if let Ok(mut g) = self.gateway.lock() {
            *g = None;
        }
    }
}

fn send(w: &ClientWriter, id: u32, reply: Reply) -> bool {
    let Ok(bytes) = encode_frame(id, &GuestMessage::Reply(reply)) else {
        return false;
    };
    match w.lock() {
        Ok(mut s) => s.write_all(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// Serves one local client: the same protocol as the guest speaks, requests forwarded through the mux.
fn serve_client(conn: UnixStream, mux: GuestMux, info: GuestInfo, relay: &Relay, client: u64) {
    let Ok(mut reader) = conn.try_clone() else { return };
    let writer: ClientWriter = Arc::new(Mutex::new(conn));
    let streams: Arc<Mutex<HashMap<u32, Arc<AtomicBool>>>> = Arc::default();
    // The client's file transfers in flight: its request id → the guest's.
    let transfers: Transfers = Arc::default();
    let mut dec = FrameDecoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut hello = false;
    let err = |kind, message: String| Reply::Error { kind, message };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        dec.extend(&buf[..n]);
        loop {
            let frame = match dec.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    send(&writer, 0, err(ErrorKind::InvalidRequest, e.to_string()));
                    return;
                }
            };
            let msg = match frame.decode::<HostMessage>() {
                Ok(m) => m,
                Err(e) => {
                    send(&writer, frame.id, err(ErrorKind::InvalidRequest, e.to_string()));
                    return;
                }
            };
            let id = frame.id;
            match msg {
                HostMessage::Stream(m) => relay.to_guest(client, id, m),
                HostMessage::Transfer(m) => {
                    let guest = transfers.lock().ok().and_then(|t| t.get(&id).copied());
                    if let Some(guest) = guest {
                        let _ = mux.send_transfer_wait(guest, m);
                    }
                }
                HostMessage::Request(Request::AttachEgress) if hello => {
                    relay.attach(client, writer.clone());
                    send(&writer, id, Reply::Done);
                }
                HostMessage::Cancel => {
                    if let Some(f) = streams.lock().ok().and_then(|m| m.get(&id).cloned()) {
                        f.store(true, Ordering::Relaxed);
                    }
                    if let Some(guest) = transfers.lock().ok().and_then(|mut t| t.remove(&id)) {
                        mux.cancel_transfer(guest);
                    }
                }
                HostMessage::Request(Request::Hello { protocol, .. }) => {
                    if protocol != PROTOCOL_VERSION {
                        let m = format!(
                            "the client speaks protocol {protocol}, the keeper speaks {PROTOCOL_VERSION}"
                        );
                        send(&writer, id, err(ErrorKind::InvalidRequest, m));
                        return;
                    }
                    hello = true;
                    send(
                        &writer,
                        id,
                        Reply::Hello {
                            protocol: PROTOCOL_VERSION,
                            agent_version: info.agent_version.clone(),
                            screen_w: info.screen_w,
                            screen_h: info.screen_h,
                        },
                    );
                }
                HostMessage::Request(_) if !hello => {
                    send(
                        &writer,
                        id,
                        err(ErrorKind::HelloRequired, "a request arrived before hello".into()),
                    );
                    return;
                }
                HostMessage::Request(req @ Request::StartFrames { .. }) => {
                    let cancel = Arc::new(AtomicBool::new(false));
                    if let Ok(mut m) = streams.lock() {
                        m.insert(id, cancel.clone());
                    }
                    let (mux, writer, streams) = (mux.clone(), writer.clone(), streams.clone());
                    std::thread::spawn(move || {
                        forward_stream(&mux, req, id, &writer, &cancel);
                        if let Ok(mut m) = streams.lock() {
                            m.remove(&id);
                        }
                    });
                }
                HostMessage::Request(req @ (Request::PutFile(_) | Request::GetPath { .. })) => {
                    start_transfer(&mux, req, id, &writer, &transfers);
                }
                HostMessage::Request(req) => {
                    let (mux, writer) = (mux.clone(), writer.clone());
                    std::thread::spawn(move || send(&writer, id, forward(&mux, req)));
                }
            }
        }
    }
    // The client is gone: stop its streams.
    relay.detach(client);
    let flags: Vec<Arc<AtomicBool>> = streams
        .lock()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    flags.iter().for_each(|f| f.store(true, Ordering::Relaxed));
    let open: Vec<u32> = transfers
        .lock()
        .map(|mut t| t.drain().map(|(_, g)| g).collect())
        .unwrap_or_default();
    open.into_iter().for_each(|g| mux.cancel_transfer(g));
}

type Transfers = Arc<Mutex<HashMap<u32, u32>>>;

/// Relays one file transfer between a client (its request id `id`) and the guest: the client's
/// traffic goes on under the guest's id, the guest's comes back under the client's. Credit passes
/// through untouched, so the two ends' flow control holds across the keeper, which buffers
/// nothing.
fn start_transfer(mux: &GuestMux, req: Request, id: u32, writer: &ClientWriter, transfers: &Transfers) {
    let (w, t) = (writer.clone(), transfers.clone());
    let sink = Arc::new(move |ev: TransferEvent| {
        let ended = match ev {
            TransferEvent::Reply(r) => {
                let ends = !is_stream_item(&r);
                send(&w, id, r);
                ends
            }
            TransferEvent::Message(m) => {
                if let Ok(bytes) = encode_frame(id, &GuestMessage::Transfer(m)) {
                    let _ = w.lock().map(|mut s| s.write_all(&bytes));
                }
                false
            }
            TransferEvent::Closed(reason) => {
                send(&w, id, unavailable(&ChannelError::Closed(reason)));
                true
            }
        };
        if ended {
            if let Ok(mut t) = t.lock() {
                t.remove(&id);
            }
        }
    });
    // Held while the transfer starts, so its end (on the reader thread) cannot come first.
    let Ok(mut table) = transfers.lock() else { return };
    if table.contains_key(&id) {
        // The one in flight keeps the id; this one is refused, not silently swapped in.
        drop(table);
        let m = format!("request {id} is a file transfer in flight already; a new one needs a new id");
        send(
            writer,
            id,
            Reply::Error {
                kind: ErrorKind::InvalidRequest,
                message: m,
            },
        );
        return;
    }
    match mux.open_transfer_wait(req, sink) {
        Ok(guest) => {
            table.insert(id, guest);
        }
        Err(e) => {
            drop(table);
            send(writer, id, unavailable(&e));
        }
    }
}

/// Forwards one request to the guest. If the guest agent restarted (its init starts a new one
/// when it exits), the new agent has not been greeted: greet it and try once more.
fn forward(mux: &GuestMux, req: Request) -> Reply {
    let t = reply_timeout(&req);
    match mux.call(req.clone(), t) {
        Ok(Reply::Error {
            kind: ErrorKind::HelloRequired,
            ..
        }) => {
            tracing::warn!("the guest agent restarted; greeting the new one");
            match mux.hello("airlock-keeper", Duration::from_secs(15)) {
                Ok(_) => mux.call(req, t).unwrap_or_else(|e| unavailable(&e)),
                Err(e) => unavailable(&e),
            }
        }
        Ok(reply) => reply,
        Err(e) => unavailable(&e),
    }
}

/// The reply a client gets when the guest channel cannot serve its request.
fn unavailable(e: &ChannelError) -> Reply {
    Reply::Error {
        kind: ErrorKind::Unavailable,
        message: e.to_string(),
    }
}

fn forward_stream(mux: &GuestMux, req: Request, id: u32, writer: &ClientWriter, cancel: &AtomicBool) {
    let stream = match mux.stream(req) {
        Ok(s) => s,
        Err(e) => {
            send(writer, id, unavailable(&e));
            return;
        }
    };
    while !cancel.load(Ordering::Relaxed) {
        match stream.next(Duration::from_millis(200)) {
            Ok(None) => {}
            Ok(Some(item @ Reply::Frame(_))) => {
                if !send(writer, id, item) {
                    return;
                }
            }
            Ok(Some(end)) => {
                send(writer, id, end);
                return;
            }
            Err(e) => {
                send(writer, id, unavailable(&e));
                return;
            }
        }
    }
    send(writer, id, Reply::StreamEnded);
}
