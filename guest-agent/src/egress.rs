//! The guest side of egress: proxy endpoints on 127.0.0.1 that carry each connection to the host
//! as one stream, and a DNS stub that resolves nothing.
//!
//! This side is convenience, not enforcement: it does not read what a program asks its proxy for.
//! Every byte goes to the host's egress gateway, which parses the proxy request, asks the policy,
//! resolves and dials. There is no network device in a sandbox, so a program that ignores the
//! proxy has nowhere to send a packet.
//!
//! Each connection has two threads: one reads from the program within the host's credit and sends
//! data, one writes what the host sent and grants credit back once written. The session's reader
//! only queues, so a slow program never stalls the channel. The DNS stub answers every query
//! REFUSED and reports the names asked (aggregated, twice a second at most) as a notice.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use airlock_protocol::{
    Flow, GuestMessage, Notice, ProxyKind, StreamMessage, MAX_CLOSE_REASON, MAX_NOTICE_NAME,
    MAX_NOTICE_NAMES, MAX_STREAMS,
};

use crate::session::SendError;
use airlock_protocol::error_chain as chain;

/// Sends one message to the host under a frame id.
pub type Send = Arc<dyn Fn(u32, GuestMessage) -> Result<(), SendError> + std::marker::Send + Sync>;

/// Why a program's connection to a proxy endpoint could not become a stream.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A thread panicked while it held the connection table.
    #[error("the egress connection table is unusable: a thread panicked while holding it")]
    Poisoned,
    /// Every stream id the protocol allows is taken.
    #[error("{max} connections are open already")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The connection could not be duplicated for its writer.
    #[error("cannot duplicate the program's connection")]
    Clone(#[source] std::io::Error),
    /// The host was not told of the stream.
    #[error("cannot open the stream to the host")]
    Send(#[source] SendError),
}

/// Distinct names the DNS stub remembers between notices; lookups of further names are counted.
const MAX_DNS_NAMES: usize = 4096;

/// The proxy settings every program gets: HTTP(S) through the HTTP endpoint, anything else through
/// SOCKS5 with remote names; loopback direct.
pub fn proxy_env() -> Vec<(String, String)> {
    let http = format!("http://127.0.0.1:{}", ProxyKind::Http.port());
    let socks = format!("socks5h://127.0.0.1:{}", ProxyKind::Socks5.port());
    let no = "localhost,127.0.0.1,::1".to_string();
    let mut env = Vec::new();
    for (k, v) in [
        ("http_proxy", &http),
        ("https_proxy", &http),
        ("all_proxy", &socks),
        ("no_proxy", &no),
    ] {
        env.push((k.to_string(), v.clone()));
        env.push((k.to_ascii_uppercase(), v.clone()));
    }
    env
}

/// The egress streams of this agent.
pub struct Egress {
    send: Send,
    conns: Mutex<HashMap<u32, Arc<Conn>>>,
    next_id: AtomicU32,
}

struct Conn {
    tcp: TcpStream,
    state: Mutex<ConnState>,
    wake: Condvar,
}

#[derive(Default)]
struct ConnState {
    flow: Flow,
    /// Data from the host not yet written to the program.
    outbound: VecDeque<Vec<u8>>,
    /// The host will send no more data.
    host_eof: bool,
    /// The host ended the stream: what it sent is written, then the connection closes.
    host_closed: bool,
    /// The writer has written everything and shut the write half.
    writer_done: bool,
    closed: bool,
}

impl Egress {
    /// Starts the proxy endpoints and the DNS stub; a port that cannot be bound is reported and
    /// skipped (the sandbox then simply has no such endpoint).
    pub fn start(send: Send) -> Arc<Egress> {
        let egress = Arc::new(Egress {
            send,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
        });
        for kind in [ProxyKind::Http, ProxyKind::Socks5] {
            match TcpListener::bind(("127.0.0.1", kind.port())) {
                Ok(l) => {
                    let e = egress.clone();
                    std::thread::spawn(move || e.accept_loop(&l, kind));
                }
                Err(err) => eprintln!(
                    "airlock-guest-agent: cannot listen on 127.0.0.1:{} for the {kind:?} proxy: {err}",
                    kind.port()
                ),
            }
        }
        match UdpSocket::bind("127.0.0.1:53") {
            Ok(s) => {
                let e = egress.clone();
                std::thread::spawn(move || e.dns_stub(&s));
            }
            Err(err) => eprintln!("airlock-guest-agent: cannot listen on 127.0.0.1:53 for DNS: {err}"),
        }
        egress
    }

    fn accept_loop(self: &Arc<Self>, listener: &TcpListener, kind: ProxyKind) {
        for conn in listener.incoming() {
            let tcp = match conn {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("airlock-guest-agent: proxy accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if let Err(e) = self.open(tcp, kind) {
                eprintln!("airlock-guest-agent: proxy connection refused: {}", chain(&e));
            }
        }
    }

    fn open(self: &Arc<Self>, tcp: TcpStream, kind: ProxyKind) -> Result<(), OpenError> {
        let _ = tcp.set_nodelay(true);
        let (id, conn) = {
            let mut conns = self.conns.lock().map_err(|_| OpenError::Poisoned)?;
            if conns.len() >= MAX_STREAMS {
                let _ = tcp.shutdown(Shutdown::Both);
                return Err(OpenError::TooMany { max: MAX_STREAMS });
            }
            let id = loop {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                if id != 0 && !conns.contains_key(&id) {
                    break id;
                }
            };
            let conn = Arc::new(Conn {
                tcp: tcp.try_clone().map_err(OpenError::Clone)?,
                state: Mutex::new(ConnState::default()),
                wake: Condvar::new(),
            });
            conns.insert(id, conn.clone());
            (id, conn)
        };
        if let Err(e) = (self.send)(id, GuestMessage::Stream(StreamMessage::Open { kind })) {
            self.end(id, None);
            return Err(OpenError::Send(e));
        }
        let (e, c) = (self.clone(), conn.clone());
        std::thread::spawn(move || e.pump_to_host(id, &c, tcp));
        let e = self.clone();
        std::thread::spawn(move || e.pump_to_program(id, &conn));
        Ok(())
    }

    /// Program → host, within the host's credit.
    fn pump_to_host(&self, id: u32, conn: &Conn, mut tcp: TcpStream) {
        let mut buf = vec![0u8; airlock_protocol::MAX_STREAM_CHUNK];
        loop {
            let n = {
                let Ok(mut st) = conn.state.lock() else { return };
                while !st.closed && st.flow.sendable() == 0 {
                    st = match conn.wake.wait(st) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
                if st.closed {
                    return;
                }
                st.flow.sendable()
            };
            match tcp.read(&mut buf[..n]) {
                Ok(0) => {
                    let _ = (self.send)(id, GuestMessage::Stream(StreamMessage::Eof));
                    return;
                }
                Ok(got) => {
                    if let Ok(mut st) = conn.state.lock() {
                        st.flow.sent(got);
                    }
                    let data = StreamMessage::Data(buf[..got].to_vec());
                    if (self.send)(id, GuestMessage::Stream(data)).is_err() {
                        self.end(id, None);
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.end(id, Some(format!("the program's connection failed: {e}")));
                    return;
                }
            }
        }
    }

    /// Host → program; credit goes back once the bytes are written.
    fn pump_to_program(&self, id: u32, conn: &Conn) {
        let mut tcp = match conn.tcp.try_clone() {
            Ok(t) => t,
            Err(e) => {
                self.end(id, Some(format!("cannot write to the program: {e}")));
                return;
            }
        };
        loop {
            let chunk = {
                let Ok(mut st) = conn.state.lock() else { return };
                loop {
                    if st.closed {
                        return;
                    }
                    if let Some(c) = st.outbound.pop_front() {
                        break c;
                    }
                    if st.host_closed {
                        drop(st);
                        self.forget(id, conn);
                        return;
                    }
                    if st.host_eof {
                        st.writer_done = true;
                        let _ = tcp.shutdown(Shutdown::Write);
                        return;
                    }
                    st = match conn.wake.wait(st) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
            };
            if let Err(e) = tcp.write_all(&chunk) {
                self.end(id, Some(format!("the program closed its connection: {e}")));
                return;
            }
            let credit = conn
                .state
                .lock()
                .ok()
                .and_then(|mut st| st.flow.consumed(chunk.len()));
            if let Some(n) = credit {
                let _ = (self.send)(id, GuestMessage::Stream(StreamMessage::Credit(n)));
            }
        }
    }

    /// Handles stream traffic from the host. Never blocks on a program.
    pub fn on_host(&self, id: u32, msg: StreamMessage) {
        let conn = match self.conns.lock() {
            Ok(c) => c.get(&id).cloned(),
            Err(_) => return,
        };
        // Traffic for a stream that already ended is late, not wrong.
        let Some(conn) = conn else { return };
        if let Err(e) = msg.validate() {
            self.end(id, Some(chain(&e)));
            return;
        }
        let broken = {
            let Ok(mut st) = conn.state.lock() else { return };
            let r = match msg {
                StreamMessage::Data(d) => st.flow.received(d.len()).map(|()| st.outbound.push_back(d)),
                StreamMessage::Credit(n) => st.flow.credited(n),
                StreamMessage::Eof => {
                    st.host_eof = true;
                    Ok(())
                }
                StreamMessage::Close { .. } => {
                    // Write what the host sent before it closed (a refusal page, the end of a
                    // response), then close: the writer does it once the queue is empty.
                    st.host_closed = true;
                    st.host_eof = true;
                    let written = st.writer_done;
                    drop(st);
                    if written {
                        self.forget(id, &conn);
                    } else if let Ok(mut c) = self.conns.lock() {
                        c.remove(&id);
                    }
                    conn.wake.notify_all();
                    return;
                }
                StreamMessage::Open { .. } => {
                    drop(st);
                    self.end(
                        id,
                        Some("the host sent an open for a stream the guest opened".into()),
                    );
                    return;
                }
            };
            conn.wake.notify_all();
            r.err()
        };
        if let Some(e) = broken {
            self.end(id, Some(e.to_string()));
        }
    }

    /// Ends a stream from this side: tells the host why, closes the program's connection.
    fn end(&self, id: u32, reason: Option<String>) {
        let conn = self.conns.lock().ok().and_then(|c| c.get(&id).cloned());
        if let Some(conn) = conn {
            self.forget(id, &conn);
            let reason = reason.map(|r| cut(r, MAX_CLOSE_REASON));
            let _ = (self.send)(id, GuestMessage::Stream(StreamMessage::Close { reason }));
        }
    }

    fn forget(&self, id: u32, conn: &Conn) {
        if let Ok(mut c) = self.conns.lock() {
            c.remove(&id);
        }
        if let Ok(mut st) = conn.state.lock() {
            st.closed = true;
            st.outbound.clear();
        }
        conn.wake.notify_all();
        let _ = conn.tcp.shutdown(Shutdown::Both);
    }

    /// The host went away: every connection ends.
    pub fn close_all(&self) {
        let all: Vec<(u32, Arc<Conn>)> = self
            .conns
            .lock()
            .map(|c| c.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default();
        for (id, conn) in all {
            self.forget(id, &conn);
        }
    }

    /// Answers every DNS query REFUSED; reports the names asked.
    fn dns_stub(self: &Arc<Self>, socket: &UdpSocket) {
        let asked: Arc<Mutex<(HashMap<String, u32>, u32)>> = Arc::default();
        {
            let (e, asked) = (self.clone(), asked.clone());
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500));
                let drained = match asked.lock() {
                    Ok(mut a) if !a.0.is_empty() || a.1 > 0 => std::mem::take(&mut *a),
                    _ => continue,
                };
                e.report_dns(drained);
            });
        }
        let mut buf = [0u8; 4096];
        loop {
            let (n, from) = match socket.recv_from(&mut buf) {
                Ok(r) => r,
                Err(_) => continue,
            };
            let packet = &buf[..n];
            let Ok(q) = airlock_egress::dns::parse_query(packet) else {
                continue;
            };
            if let Some(answer) = airlock_egress::dns::refused(packet) {
                let _ = socket.send_to(&answer, from);
            }
            if let Ok(mut a) = asked.lock() {
                let name = cut(q.name, MAX_NOTICE_NAME);
                let full = a.0.len() >= MAX_DNS_NAMES && !a.0.contains_key(&name);
                if full {
                    a.1 = a.1.saturating_add(1);
                } else {
                    let c = a.0.entry(name).or_default();
                    *c = c.saturating_add(1);
                }
            }
        }
    }

    fn report_dns(&self, (names, unlisted): (HashMap<String, u32>, u32)) {
        let mut names: Vec<(String, u32)> = names.into_iter().collect();
        names.sort();
        let mut chunks = names.chunks(MAX_NOTICE_NAMES).peekable();
        if chunks.peek().is_none() {
            let notice = Notice::DnsRefused {
                names: vec![],
                unlisted,
            };
            let _ = (self.send)(0, GuestMessage::Notice(notice));
        }
        let mut unlisted = Some(unlisted);
        for chunk in chunks {
            let notice = Notice::DnsRefused {
                names: chunk.to_vec(),
                unlisted: unlisted.take().unwrap_or(0),
            };
            let _ = (self.send)(0, GuestMessage::Notice(notice));
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
