//! Upstream servers for network tests, all on 127.0.0.1: a plain HTTP server, an HTTPS server
//! with a certificate from a throwaway test CA, and a DNS server that counts every query it gets.
//! Tests reach them under names they map explicitly (`airlock serve --egress-map`); nothing here
//! ever sends a packet to another address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// What an upstream saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Request lines, in order.
    pub requests: Mutex<Vec<String>>,
    /// Bytes received, all connections.
    pub bytes_in: AtomicU64,
}

impl Seen {
    /// The request lines so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The colour of the page `GET /green` serves.
pub const GREEN: [u8; 3] = [0, 192, 0];

/// Serves HTTP/1.1 on one connection: `GET /bytes/N` answers N bytes, anything else
/// `hello from HOST` (the Host header), `GET /green` an HTML page of one colour ([`GREEN`]); a request body (Content-Length) is read and counted.
fn serve_http(mut s: impl Read + Write, seen: &Seen) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut s);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let request = line.trim_end().to_string();
    let (mut host, mut length) = (String::new(), 0usize);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("host:") {
            host = v.trim().to_string();
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    seen.bytes_in
        .fetch_add((line.len() + length) as u64, Ordering::Relaxed);
    if let Ok(mut r) = seen.requests.lock() {
        r.push(request.clone());
    }
    drop(reader);
    let path = request.split(' ').nth(1).unwrap_or("/");
    let (payload, kind) = match path.strip_prefix("/bytes/").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => (vec![b'x'; n], "text/plain"),
        // A page a screenshot recognises: the whole viewport one colour (GREEN).
        None if path == "/green" => (
            format!(
                "<!doctype html><html><body style=\"margin:0;background:rgb({},{},{});height:100vh\">\
                 <h1>hello from {host}</h1></body></html>",
                GREEN[0], GREEN[1], GREEN[2]
            )
            .into_bytes(),
            "text/html",
        ),
        None => (format!("hello from {host}\n").into_bytes(), "text/plain"),
    };
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: {kind}\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    s.write_all(&payload)?;
    s.flush()
}

/// A plain HTTP server on 127.0.0.1.
pub struct HttpUpstream {
    /// Its port.
    pub port: u16,
    /// What it saw.
    pub seen: Arc<Seen>,
}

impl HttpUpstream {
    /// Starts it.
    pub fn start() -> Result<HttpUpstream> {
        let l = TcpListener::bind("127.0.0.1:0").context("bind the HTTP upstream")?;
        let port = l.local_addr()?.port();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve_http(c, &s));
            }
        });
        Ok(HttpUpstream { port, seen })
    }
}

/// A throwaway certificate authority and a server certificate it issued.
pub struct TestCa {
    /// The CA certificate, PEM (what a client trusts).
    pub ca_pem: String,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl TestCa {
    /// A CA and a certificate for `names`.
    pub fn new(names: &[&str]) -> Result<TestCa> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Airlock test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let cert = params.signed_by(&key, &ca)?;
        Ok(TestCa {
            ca_pem: ca.pem(),
            cert: cert.der().clone(),
            key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        })
    }
}

/// An HTTPS server on 127.0.0.1 with a certificate from a [`TestCa`].
pub struct TlsUpstream {
    /// Its port.
    pub port: u16,
    /// What it saw (after TLS).
    pub seen: Arc<Seen>,
    /// The server names clients asked for (SNI), in order.
    pub server_names: Arc<Mutex<Vec<Option<String>>>>,
}

impl TlsUpstream {
    /// Starts it.
    pub fn start(ca: &TestCa) -> Result<TlsUpstream> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![ca.cert.clone()], ca.key.clone_key())?;
        let config = Arc::new(config);
        let l = TcpListener::bind("127.0.0.1:0").context("bind the HTTPS upstream")?;
        let port = l.local_addr()?.port();
        let seen = Arc::new(Seen::default());
        let names: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let (s, n) = (seen.clone(), names.clone());
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let (s, n, config) = (s.clone(), n.clone(), config.clone());
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(conn, c);
                    while tls.conn.is_handshaking() {
                        if tls.conn.complete_io(&mut tls.sock).is_err() {
                            return;
                        }
                    }
                    if let Ok(mut v) = n.lock() {
                        v.push(tls.conn.server_name().map(str::to_string));
                    }
                    let _ = serve_http(&mut tls, &s);
                    tls.conn.send_close_notify();
                    let _ = tls.conn.complete_io(&mut tls.sock);
                });
            }
        });
        Ok(TlsUpstream {
            port,
            seen,
            server_names: names,
        })
    }
}

/// The first flight of a TLS client asking for `server_name`: a real ClientHello, to send by hand.
pub fn client_hello(server_name: &str) -> Result<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string())?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

/// A DNS server on 127.0.0.1 that counts every query and answers `A` for the names it maps
/// (NXDOMAIN otherwise).
pub struct DnsServer {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    /// Queries received.
    pub queries: Arc<AtomicU64>,
}

impl DnsServer {
    /// Starts it, answering `names` with their addresses.
    pub fn start(names: &[(&str, [u8; 4])]) -> Result<DnsServer> {
        let socket = UdpSocket::bind("127.0.0.1:0").context("bind the DNS server")?;
        let addr = socket.local_addr()?;
        let queries = Arc::new(AtomicU64::new(0));
        let q = queries.clone();
        let names: Vec<(Vec<u8>, [u8; 4])> = names.iter().map(|(n, a)| (wire_name(n), *a)).collect();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                q.fetch_add(1, Ordering::Relaxed);
                if n < 12 {
                    continue;
                }
                let question = &buf[12..n];
                let Some(end) = question.iter().position(|b| *b == 0) else {
                    continue;
                };
                let qname = &question[..=end];
                let Some(qfull) = question.get(..end + 5) else {
                    continue;
                };
                let mut reply = buf[..12].to_vec();
                reply[2] = 0x81;
                reply[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
                reply.extend_from_slice(qfull);
                match names.iter().find(|(w, _)| w.eq_ignore_ascii_case(qname)) {
                    Some((_, ip)) => {
                        reply[3] = 0x80;
                        reply[7] = 1;
                        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
                        reply.extend_from_slice(ip);
                    }
                    None => reply[3] = 0x83,
                }
                let _ = socket.send_to(&reply, from);
            }
        });
        Ok(DnsServer { addr, queries })
    }

    /// Queries received so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}
