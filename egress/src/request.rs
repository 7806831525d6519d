//! What a program in the sandbox asks its proxy endpoint for, parsed without I/O: an HTTP
//! `CONNECT host:port`, an HTTP request with an absolute `http://` URI, or a SOCKS5 `CONNECT` with
//! remote name resolution (`socks5h`). Parsers take the bytes received so far and answer
//! [`Parse::NeedMore`] or the request with how many bytes it took; anything malformed is a
//! [`RequestError`] naming what was wrong, and no parser buffers more than its limit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{cut, parse_host, Host, HostError};

/// Largest HTTP request head (request line and headers) a proxy request may have.
pub const MAX_HTTP_HEAD: usize = 16 * 1024;

/// A parse that may need more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// The bytes so far are a valid beginning: read more.
    NeedMore,
    /// A whole message.
    Done {
        /// What it says.
        value: T,
        /// How many bytes it took (what follows belongs to the connection).
        consumed: usize,
    },
}

/// What the proxy endpoint was asked to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyRequest {
    /// A tunnel (`CONNECT`, or SOCKS5): bytes flow both ways unread.
    Connect {
        /// The host.
        host: Host,
        /// The port.
        port: u16,
    },
    /// A plain-HTTP request with an absolute URI, to forward.
    Forward {
        /// The method (`GET`, `POST`, …).
        method: String,
        /// The host.
        host: Host,
        /// The port (80 unless the URI names one).
        port: u16,
        /// Path and query (`/` when the URI has none).
        path: String,
    },
}

/// Why a proxy request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The HTTP head went past [`MAX_HTTP_HEAD`] without ending.
    #[error("the proxy request's head is over the {MAX_HTTP_HEAD}-byte limit")]
    HeadTooLarge,
    /// The request line is not `METHOD TARGET HTTP/1.x`.
    #[error("the proxy request line {line:?} is not `METHOD TARGET HTTP/1.x`")]
    BadRequestLine {
        /// The line (cut to 100 characters).
        line: String,
    },
    /// A target that is not for a proxy (a path without a host).
    #[error("{target:?} is not a proxy request: use CONNECT host:port or an absolute http:// URI")]
    NotAProxyTarget {
        /// The target (cut).
        target: String,
    },
    /// `https://` without a tunnel.
    #[error("an https:// URI needs a CONNECT tunnel; the proxy does not speak TLS for the client")]
    HttpsWithoutConnect,
    /// Credentials in the authority.
    #[error("the destination {authority:?} carries user information (`user@`), which the proxy refuses")]
    UserInfo {
        /// The authority (cut).
        authority: String,
    },
    /// A port that is missing (CONNECT) or not a number from 1 to 65535.
    #[error("the destination {authority:?} has no valid port (1 to 65535)")]
    BadPort {
        /// The authority (cut).
        authority: String,
    },
    /// The host part is refused.
    #[error("the destination host is refused: {0}")]
    Host(#[from] HostError),
    /// Not SOCKS version 5.
    #[error("the client speaks SOCKS version {0}, the proxy only SOCKS5")]
    SocksVersion(u8),
    /// The client offers no method the proxy accepts.
    #[error("the SOCKS5 client offers no \"no authentication\" method")]
    SocksNoMethod,
    /// A SOCKS5 command other than CONNECT.
    #[error("SOCKS5 command {0} is not supported; only CONNECT (1) is")]
    SocksCommand(u8),
    /// A reserved byte that is not zero, or an unknown address type.
    #[error("the SOCKS5 request is malformed: {0}")]
    SocksMalformed(&'static str),
}

/// Parses an HTTP proxy request head.
pub fn parse_http(buf: &[u8]) -> Result<Parse<ProxyRequest>, RequestError> {
    let window = &buf[..buf.len().min(MAX_HTTP_HEAD)];
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= MAX_HTTP_HEAD {
            Err(RequestError::HeadTooLarge)
        } else {
            Ok(Parse::NeedMore)
        };
    };
    let consumed = end + 4;
    let head = String::from_utf8_lossy(&buf[..end]);
    let line = head.split("\r\n").next().unwrap_or_default();
    let bad_line = || RequestError::BadRequestLine { line: cut(line, 100) };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_line());
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || !version.starts_with("HTTP/1.")
    {
        return Err(bad_line());
    }
    if method == "CONNECT" {
        let (host, port) = authority(target, None)?;
        return Ok(Parse::Done {
            value: ProxyRequest::Connect { host, port },
            consumed,
        });
    }
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(RequestError::HttpsWithoutConnect);
    }
    if !lower.starts_with("http://") {
        return Err(RequestError::NotAProxyTarget {
            target: cut(target, 100),
        });
    }
    let rest = &target["http://".len()..];
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, path) = rest.split_at(split);
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.split('#').next().unwrap_or("/").to_string(),
        p => format!("/{}", p.split('#').next().unwrap_or_default()),
    };
    let (host, port) = authority(auth, Some(80))?;
    Ok(Parse::Done {
        value: ProxyRequest::Forward {
            method: method.to_string(),
            host,
            port,
            path,
        },
        consumed,
    })
}

/// `host:port` (`[v6]:port`); `default` applies when there is no port.
fn authority(auth: &str, default: Option<u16>) -> Result<(Host, u16), RequestError> {
    if auth.contains('@') {
        return Err(RequestError::UserInfo {
            authority: cut(auth, 100),
        });
    }
    let bad_port = || RequestError::BadPort {
        authority: cut(auth, 100),
    };
    let (host, port) = if let Some(close) = auth.strip_prefix('[').and_then(|r| r.find(']')) {
        let host = &auth[..close + 2];
        (host, auth[close + 2..].strip_prefix(':'))
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        }
    };
    let port = match (port, default) {
        (Some(p), _) => Some(p)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(bad_port)?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad_port()),
    };
    Ok((parse_host(host)?, port))
}

/// Parses a SOCKS5 greeting (`VER NMETHODS METHODS…`); it must offer "no authentication".
pub fn parse_socks5_greeting(buf: &[u8]) -> Result<Parse<()>, RequestError> {
    let Some(&ver) = buf.first() else {
        return Ok(Parse::NeedMore);
    };
    if ver != 5 {
        return Err(RequestError::SocksVersion(ver));
    }
    let Some(&n) = buf.get(1) else {
        return Ok(Parse::NeedMore);
    };
    let consumed = 2 + usize::from(n);
    let Some(methods) = buf.get(2..consumed) else {
        return Ok(Parse::NeedMore);
    };
    if !methods.contains(&0) {
        return Err(RequestError::SocksNoMethod);
    }
    Ok(Parse::Done { value: (), consumed })
}

/// The server's answer to a greeting: "no authentication".
pub const SOCKS5_METHOD_REPLY: [u8; 2] = [5, 0];

/// Parses a SOCKS5 request (`VER CMD RSV ATYP ADDR PORT`); only CONNECT. A domain name is kept as
/// a name (resolved on the host, after policy), never resolved here.
pub fn parse_socks5_request(buf: &[u8]) -> Result<Parse<ProxyRequest>, RequestError> {
    let Some(head) = buf.get(..4) else {
        if let Some(&ver) = buf.first() {
            if ver != 5 {
                return Err(RequestError::SocksVersion(ver));
            }
        }
        return Ok(Parse::NeedMore);
    };
    let [ver, cmd, rsv, atyp] = [head[0], head[1], head[2], head[3]];
    if ver != 5 {
        return Err(RequestError::SocksVersion(ver));
    }
    if cmd != 1 {
        return Err(RequestError::SocksCommand(cmd));
    }
    if rsv != 0 {
        return Err(RequestError::SocksMalformed("the reserved byte is not zero"));
    }
    let (host, at) = match atyp {
        1 => {
            let Some(a) = buf.get(4..8) else {
                return Ok(Parse::NeedMore);
            };
            (Host::Ip(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))), 8)
        }
        4 => {
            let Some(a) = buf.get(4..20) else {
                return Ok(Parse::NeedMore);
            };
            let mut octets = [0u8; 16];
            octets.copy_from_slice(a);
            (Host::Ip(IpAddr::V6(Ipv6Addr::from(octets))), 20)
        }
        3 => {
            let Some(&len) = buf.get(4) else {
                return Ok(Parse::NeedMore);
            };
            if len == 0 {
                return Err(RequestError::SocksMalformed("the domain name is empty"));
            }
            let end = 5 + usize::from(len);
            let Some(name) = buf.get(5..end) else {
                return Ok(Parse::NeedMore);
            };
            let name = std::str::from_utf8(name).map_err(|_| HostError::NotAscii {
                name: cut(&String::from_utf8_lossy(name), 64),
            })?;
            // A name that spells an address literal is still a name here: the policy decides on
            // what was asked, and an IP rule must allow an address.
            let host = match name.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => parse_host(name)?,
            };
            (host, end)
        }
        _ => return Err(RequestError::SocksMalformed("unknown address type")),
    };
    let Some(p) = buf.get(at..at + 2) else {
        return Ok(Parse::NeedMore);
    };
    let port = u16::from_be_bytes([p[0], p[1]]);
    if port == 0 {
        return Err(RequestError::SocksMalformed("port 0"));
    }
    Ok(Parse::Done {
        value: ProxyRequest::Connect { host, port },
        consumed: at + 2,
    })
}

/// SOCKS5 reply codes the gateway sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socks5Reply {
    /// The tunnel is open.
    Succeeded = 0,
    /// The request could not be served (it was malformed).
    GeneralFailure = 1,
    /// Refused by policy (or an operator).
    NotAllowed = 2,
    /// The host could not be reached.
    HostUnreachable = 4,
    /// The upstream refused the connection.
    ConnectionRefused = 5,
    /// Not a CONNECT.
    CommandNotSupported = 7,
    /// Unknown address type.
    AddressTypeNotSupported = 8,
}

/// The reply to a SOCKS5 request (bound address `0.0.0.0:0`: the guest never learns the host's).
pub fn socks5_reply(code: Socks5Reply) -> [u8; 10] {
    [5, code as u8, 0, 1, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done<T>(p: Result<Parse<T>, RequestError>) -> (T, usize) {
        match p {
            Ok(Parse::Done { value, consumed }) => (value, consumed),
            Ok(Parse::NeedMore) => panic!("needs more"),
            Err(e) => panic!("refused: {e}"),
        }
    }

    fn name(s: &str) -> Host {
        Host::Name(s.into())
    }

    #[test]
    fn an_http_connect_names_its_host_and_port() {
        let req = b"CONNECT Docs.Example.org:443 HTTP/1.1\r\nHost: docs.example.org:443\r\n\r\nTLS...";
        let (r, consumed) = done(parse_http(req));
        assert_eq!(
            r,
            ProxyRequest::Connect {
                host: name("docs.example.org"),
                port: 443
            }
        );
        assert_eq!(&req[consumed..], b"TLS...");
        let (r, _) = done(parse_http(b"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n"));
        assert_eq!(
            r,
            ProxyRequest::Connect {
                host: Host::Ip("2001:db8::1".parse().unwrap()),
                port: 8443
            }
        );
    }

    #[test]
    fn an_absolute_uri_is_forwarded_with_its_path() {
        let (r, _) = done(parse_http(
            b"GET http://example.org/a?b=1 HTTP/1.1\r\nHost: example.org\r\n\r\n",
        ));
        assert_eq!(
            r,
            ProxyRequest::Forward {
                method: "GET".into(),
                host: name("example.org"),
                port: 80,
                path: "/a?b=1".into()
            }
        );
        let (r, _) = done(parse_http(b"POST http://example.org:8080 HTTP/1.0\r\n\r\n"));
        assert!(matches!(r, ProxyRequest::Forward { port: 8080, ref path, .. } if path == "/"));
    }

    #[test]
    fn a_partial_head_needs_more_and_an_endless_one_is_refused() {
        let full = b"CONNECT example.org:443 HTTP/1.1\r\nHost: x\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(parse_http(&full[..n]), Ok(Parse::NeedMore), "{n}");
        }
        let endless = vec![b'a'; MAX_HTTP_HEAD + 10];
        assert_eq!(parse_http(&endless), Err(RequestError::HeadTooLarge));
    }

    #[test]
    fn malformed_http_requests_are_refused_with_what_was_wrong() {
        let e = |b: &[u8]| parse_http(b).expect_err("refused");
        assert!(matches!(
            e(b"CONNECT example.org HTTP/1.1\r\n\r\n"),
            RequestError::BadPort { .. }
        ));
        assert!(matches!(
            e(b"CONNECT example.org:0 HTTP/1.1\r\n\r\n"),
            RequestError::BadPort { .. }
        ));
        assert!(matches!(
            e(b"CONNECT example.org:99999 HTTP/1.1\r\n\r\n"),
            RequestError::BadPort { .. }
        ));
        assert!(matches!(
            e(b"CONNECT example.org:+443 HTTP/1.1\r\n\r\n"),
            RequestError::BadPort { .. }
        ));
        assert!(matches!(
            e(b"CONNECT u:p@example.org:443 HTTP/1.1\r\n\r\n"),
            RequestError::UserInfo { .. }
        ));
        assert!(matches!(
            e(b"GET /index.html HTTP/1.1\r\n\r\n"),
            RequestError::NotAProxyTarget { .. }
        ));
        assert_eq!(
            e(b"GET https://example.org/ HTTP/1.1\r\n\r\n"),
            RequestError::HttpsWithoutConnect
        );
        assert!(matches!(
            e(b"GET http://ex ample/ HTTP/1.1\r\n\r\n"),
            RequestError::BadRequestLine { .. }
        ));
        assert!(matches!(
            e(b"get http://example.org/ HTTP/1.1\r\n\r\n"),
            RequestError::BadRequestLine { .. }
        ));
        assert!(matches!(
            e(b"CONNECT 127.1:80 HTTP/1.1\r\n\r\n"),
            RequestError::Host(HostError::NumericName { .. })
        ));
        assert!(matches!(
            e(b"CONNECT a_b.example:80 HTTP/1.1\r\n\r\n"),
            RequestError::Host(_)
        ));
    }

    #[test]
    fn a_socks5_connect_keeps_the_name_for_the_host_to_resolve() {
        let (_, n) = done(parse_socks5_greeting(&[5, 2, 2, 0]));
        assert_eq!(n, 4);
        let mut req = vec![5, 1, 0, 3, 11];
        req.extend_from_slice(b"Example.ORG");
        req.extend_from_slice(&443u16.to_be_bytes());
        req.extend_from_slice(b"data");
        let (r, consumed) = done(parse_socks5_request(&req));
        assert_eq!(
            r,
            ProxyRequest::Connect {
                host: name("example.org"),
                port: 443
            }
        );
        assert_eq!(&req[consumed..], b"data");
        for n in 0..consumed {
            assert_eq!(parse_socks5_request(&req[..n]), Ok(Parse::NeedMore), "{n}");
        }
        let (r, _) = done(parse_socks5_request(&[5, 1, 0, 1, 203, 0, 113, 7, 0, 80]));
        assert_eq!(
            r,
            ProxyRequest::Connect {
                host: Host::Ip("203.0.113.7".parse().unwrap()),
                port: 80
            }
        );
        assert_eq!(socks5_reply(Socks5Reply::NotAllowed)[1], 2);
    }

    #[test]
    fn malformed_socks5_is_refused_with_what_was_wrong() {
        assert_eq!(
            parse_socks5_greeting(&[4, 1, 0]),
            Err(RequestError::SocksVersion(4))
        );
        assert_eq!(
            parse_socks5_greeting(&[5, 1, 2]),
            Err(RequestError::SocksNoMethod)
        );
        assert_eq!(parse_socks5_greeting(&[5, 3, 0]), Ok(Parse::NeedMore));
        assert_eq!(
            parse_socks5_request(&[5, 2, 0, 1]),
            Err(RequestError::SocksCommand(2))
        );
        assert!(matches!(
            parse_socks5_request(&[5, 1, 1, 1]),
            Err(RequestError::SocksMalformed(_))
        ));
        assert!(matches!(
            parse_socks5_request(&[5, 1, 0, 9]),
            Err(RequestError::SocksMalformed(_))
        ));
        assert!(matches!(
            parse_socks5_request(&[5, 1, 0, 3, 0]),
            Err(RequestError::SocksMalformed(_))
        ));
        assert!(matches!(
            parse_socks5_request(&[5, 1, 0, 1, 1, 2, 3, 4, 0, 0]),
            Err(RequestError::SocksMalformed("port 0"))
        ));
        let mut bad = vec![5, 1, 0, 3, 3, 0xff, 0xfe, 0xfd, 0, 80];
        assert!(matches!(
            parse_socks5_request(&bad),
            Err(RequestError::Host(HostError::NotAscii { .. }))
        ));
        bad[5] = b'-';
        assert!(parse_socks5_request(&bad).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x.rotate_left(i as u32) & 0xff) as u8).collect();
            let _ = parse_http(&bytes);
            let _ = parse_socks5_greeting(&bytes);
            let _ = parse_socks5_request(&bytes);
            let mut socks = vec![5, 1, 0, (x % 5) as u8];
            socks.extend_from_slice(&bytes);
            let _ = parse_socks5_request(&socks);
        }
    }
}
