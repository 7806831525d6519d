//! The server name a client asks for in the TLS ClientHello it sends first through a `CONNECT`
//! tunnel, read without I/O so the gateway can check it is the host the policy allowed before a
//! byte goes upstream.
//!
//! [`client_hello_sni`] takes the bytes received so far and answers [`Parse::NeedMore`] until the
//! whole ClientHello handshake message is in (it may span several handshake records), then the
//! server name, lower case and without a trailing dot, or `None` when there is no `server_name`
//! extension. It consumes nothing: the bytes are forwarded unchanged. It refuses, with a
//! [`TlsError`] saying what was wrong: a tunnel that does not start with a TLS handshake record
//! (plain HTTP, SSH, anything else), a first handshake message that is not a ClientHello, other
//! records interleaved before the ClientHello is complete, records over [`MAX_RECORD`] bytes or
//! empty, more than [`MAX_CLIENT_HELLO`] bytes of handshake, any length that runs past its
//! container, two server names, and a server name that is empty, over [`MAX_NAME`] bytes or not
//! ASCII letters, digits, hyphens and dots.
//!
//! With Encrypted Client Hello the name read here is the outer, public one; the policy's host will
//! then not match and the tunnel is refused, which is the safe side.

use crate::request::Parse;
use crate::{cut, MAX_NAME};

/// Most handshake bytes (the ClientHello with its 4-byte handshake header) read before refusing.
pub const MAX_CLIENT_HELLO: usize = 64 * 1024;
/// Longest record body: 2^14 bytes of plaintext plus the 256 TLS 1.2 allows for compression.
pub const MAX_RECORD: usize = (1 << 14) + 256;

/// Record content type of a handshake record.
const HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Extension type of `server_name` (RFC 6066).
const SERVER_NAME: u16 = 0;
/// Server name type of a DNS host name, the only one defined.
const HOST_NAME: u8 = 0;

/// Why the start of a tunnel was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The first bytes are not a TLS handshake record.
    #[error(
        "the tunnel did not start with a TLS ClientHello: it began \"{start}\" (only TLS, whose server name \
         the gateway can check, may pass through a CONNECT tunnel)"
    )]
    NotTls {
        /// The first bytes (at most 16), escaped.
        start: String,
    },
    /// A record other than handshake came before the ClientHello was complete.
    #[error("a TLS record of content type {content_type} came before the ClientHello was complete")]
    NotHandshakeRecord {
        /// Its content type (20 change_cipher_spec, 21 alert, 23 application_data, …).
        content_type: u8,
    },
    /// A record body over [`MAX_RECORD`] bytes.
    #[error("a TLS record of {len} bytes is over the {MAX_RECORD}-byte limit")]
    RecordTooLong {
        /// The length the record header gives.
        len: usize,
    },
    /// The first handshake message is not a ClientHello.
    #[error("the first TLS handshake message is of type {msg_type}, not a ClientHello (1)")]
    NotClientHello {
        /// Its handshake type.
        msg_type: u8,
    },
    /// The ClientHello is over [`MAX_CLIENT_HELLO`] bytes.
    #[error("the ClientHello is {len} bytes long, over the {MAX_CLIENT_HELLO}-byte limit")]
    TooLarge {
        /// Its length with the handshake header, as the header gives it.
        len: usize,
    },
    /// A length field runs past the end of what contains it.
    #[error("the ClientHello's {field} runs past the end of its container")]
    Truncated {
        /// The field whose length lies.
        field: &'static str,
    },
    /// Something else that is not a well-formed ClientHello.
    #[error("the ClientHello is malformed: {0}")]
    Malformed(&'static str),
    /// Two `host_name` entries, or two `server_name` extensions.
    #[error("the ClientHello names more than one server")]
    TwoServerNames,
    /// The server name is empty (or only a dot).
    #[error("the ClientHello's server name is empty")]
    EmptyServerName,
    /// The server name is over [`MAX_NAME`] bytes (without a trailing dot).
    #[error("the ClientHello's server name is {len} bytes long, over the {MAX_NAME}-byte limit")]
    ServerNameTooLong {
        /// Its length.
        len: usize,
    },
    /// The server name holds bytes other than ASCII letters, digits, hyphens and dots.
    #[error(
        "the ClientHello's server name \"{name}\" holds bytes other than ASCII letters, digits, hyphens and \
         dots"
    )]
    BadServerName {
        /// The name, escaped, cut to 100 characters.
        name: String,
    },
}

/// Reads the server name out of the TLS ClientHello at the start of `buf`, the bytes a client has
/// sent so far through a tunnel.
///
/// Answers [`Parse::NeedMore`] while the ClientHello is incomplete, and `Done` with `consumed: 0`
/// once it is all in (the bytes are still to be forwarded unchanged). The value is the `host_name`
/// lower-cased without a trailing dot, or `None` when the ClientHello has no `server_name`
/// extension. Bytes after the ClientHello are not looked at.
pub fn client_hello_sni(buf: &[u8]) -> Result<Parse<Option<String>>, TlsError> {
    // The handshake bytes reassembled from the records so far: at most MAX_CLIENT_HELLO plus one
    // record, since it stops as soon as the message is whole.
    let mut handshake = Vec::new();
    let mut at = 0;
    loop {
        let rest = buf.get(at..).unwrap_or_default();
        record_start(rest, at == 0)?;
        let Some(&[_, _, _, hi, lo]) = rest.first_chunk::<5>() else {
            return Ok(Parse::NeedMore);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len > MAX_RECORD {
            return Err(TlsError::RecordTooLong { len });
        }
        if len == 0 {
            // An empty record carries nothing; allowing them would let the buffer grow forever.
            return Err(TlsError::Malformed("an empty handshake record"));
        }
        let body = rest.get(5..).unwrap_or_default();
        let body = body.get(..len).unwrap_or(body);
        handshake.extend_from_slice(body);
        if let Some(total) = message_len(&handshake)? {
            if let Some(hello) = handshake.get(4..total) {
                return client_hello(hello).map(|value| Parse::Done { value, consumed: 0 });
            }
        }
        if body.len() < len {
            return Ok(Parse::NeedMore);
        }
        at += 5 + len;
    }
}

/// Checks as much of a record header as `rest` holds: a handshake record of TLS (version 3.x).
fn record_start(rest: &[u8], first: bool) -> Result<(), TlsError> {
    let not_tls = |buf: &[u8]| TlsError::NotTls {
        start: buf.get(..16).unwrap_or(buf).escape_ascii().to_string(),
    };
    if let Some(&content_type) = rest.first() {
        if content_type != HANDSHAKE {
            return Err(if first {
                not_tls(rest)
            } else {
                TlsError::NotHandshakeRecord { content_type }
            });
        }
    }
    if let Some(&major) = rest.get(1) {
        if major != 3 {
            return Err(if first {
                not_tls(rest)
            } else {
                TlsError::Malformed("a record's version is not TLS")
            });
        }
    }
    Ok(())
}

/// The length of the handshake message, header included, once its header is in; checks it is a
/// ClientHello as soon as the first byte is.
fn message_len(handshake: &[u8]) -> Result<Option<usize>, TlsError> {
    if let Some(&msg_type) = handshake.first() {
        if msg_type != CLIENT_HELLO {
            return Err(TlsError::NotClientHello { msg_type });
        }
    }
    let Some(&[_, a, b, c]) = handshake.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = 4 + ((usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c));
    if len > MAX_CLIENT_HELLO {
        return Err(TlsError::TooLarge { len });
    }
    Ok(Some(len))
}

/// The server name in a ClientHello body (after the handshake header).
fn client_hello(body: &[u8]) -> Result<Option<String>, TlsError> {
    let mut r = Reader(body);
    if r.take(2, "version")?.first() != Some(&3) {
        return Err(TlsError::Malformed("its version is not TLS"));
    }
    r.take(32, "random")?;
    if r.vec8("session id")?.len() > 32 {
        return Err(TlsError::Malformed("the session id is over 32 bytes"));
    }
    let suites = r.vec16("cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(TlsError::Malformed(
            "the cipher suite list is empty or of odd length",
        ));
    }
    if r.vec8("compression methods")?.is_empty() {
        return Err(TlsError::Malformed("the compression method list is empty"));
    }
    if r.is_empty() {
        // No extensions at all (allowed before TLS 1.3).
        return Ok(None);
    }
    let mut extensions = Reader(r.vec16("extensions")?);
    if !r.is_empty() {
        return Err(TlsError::Malformed("bytes follow the extensions"));
    }
    let mut name = None;
    while !extensions.is_empty() {
        let kind = extensions.u16("extension type")?;
        let data = extensions.vec16("extension")?;
        if kind == SERVER_NAME {
            if name.is_some() {
                return Err(TlsError::TwoServerNames);
            }
            name = Some(server_name(data)?);
        }
    }
    Ok(name)
}

/// The host name in the data of a `server_name` extension.
fn server_name(data: &[u8]) -> Result<String, TlsError> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec16("server name list")?);
    if !r.is_empty() {
        return Err(TlsError::Malformed("bytes follow the server name list"));
    }
    let mut host = None;
    while !list.is_empty() {
        let kind = list.u8("server name type")?;
        let name = list.vec16("server name")?;
        if kind != HOST_NAME {
            return Err(TlsError::Malformed("a server name is not of type host_name (0)"));
        }
        if host.is_some() {
            return Err(TlsError::TwoServerNames);
        }
        host = Some(name);
    }
    let Some(host) = host else {
        return Err(TlsError::Malformed("the server name list is empty"));
    };
    let name = host.strip_suffix(b".").unwrap_or(host);
    if name.is_empty() {
        return Err(TlsError::EmptyServerName);
    }
    if name.len() > MAX_NAME {
        return Err(TlsError::ServerNameTooLong { len: name.len() });
    }
    if !name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(TlsError::BadServerName {
            name: cut(&host.escape_ascii().to_string(), 100),
        });
    }
    Ok(name.iter().map(|&b| char::from(b.to_ascii_lowercase())).collect())
}

/// Reads length-prefixed fields front to back; every read is checked against what is left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], TlsError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(TlsError::Truncated { field })?;
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, TlsError> {
        let (&b, tail) = self.0.split_first().ok_or(TlsError::Truncated { field })?;
        self.0 = tail;
        Ok(b)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, TlsError> {
        let (&[hi, lo], tail) = self
            .0
            .split_first_chunk::<2>()
            .ok_or(TlsError::Truncated { field })?;
        self.0 = tail;
        Ok(u16::from_be_bytes([hi, lo]))
    }

    /// A field with a one-byte length in front.
    fn vec8(&mut self, field: &'static str) -> Result<&'a [u8], TlsError> {
        let len = self.u8(field)?;
        self.take(usize::from(len), field)
    }

    /// A field with a two-byte length in front.
    fn vec16(&mut self, field: &'static str) -> Result<&'a [u8], TlsError> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello from `openssl s_client -connect 127.0.0.1:54443 -servername Example.ORG`
    /// (OpenSSL 3.0.19), captured by a listener on 127.0.0.1: one record, TLS 1.3 key share.
    const OPENSSL_HELLO: &str = "\
        1603010138010001340303836b88be164cdca36b9ed84bb10aba6b5633840fb2a13fc4b10e931c05f37e9f206dd70c97\
        9d08a7daa53a819f070604b7160080b86c20403140a45640e172a242003e130213031301c02cc030009fcca9cca8ccaa\
        c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000ad\
        00000010000e00000b4578616d706c652e4f5247000b000403000102000a00160014001d0017001e0019001801000101\
        010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b0804080508060401\
        05010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d002010819d\
        6bdf744229063d919ca848c245408837e4cc44287aac26fc1690e5e305";

    fn unhex(s: &str) -> Vec<u8> {
        let digit = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not hex: {c}"),
        };
        s.as_bytes()
            .chunks(2)
            .map(|p| (digit(p[0]) << 4) | digit(p[1]))
            .collect()
    }

    fn be(n: usize, width: usize) -> Vec<u8> {
        n.to_be_bytes()[8 - width..].to_vec()
    }

    /// An extension: type, two-byte length, data.
    fn extension(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut e = kind.to_be_bytes().to_vec();
        e.extend(be(data.len(), 2));
        e.extend_from_slice(data);
        e
    }

    /// The data of a `server_name` extension listing these host names.
    fn server_names(names: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for n in names {
            list.push(HOST_NAME);
            list.extend(be(n.len(), 2));
            list.extend_from_slice(n);
        }
        let mut data = be(list.len(), 2);
        data.extend(list);
        data
    }

    /// A well-formed ClientHello handshake message (handshake header included) with these
    /// extensions after any `server_name`. Layout: header 0..4, version 4..6, random 6..38,
    /// session id length 38, suites length 71, compression length 77, extensions length 79,
    /// first extension 81.. (with a name: type 81, length 83, list length 85, name type 87,
    /// name length 88, name 90..).
    fn hello_with(sni: Option<&[u8]>, more: &[Vec<u8>]) -> Vec<u8> {
        let mut extensions = Vec::new();
        if let Some(name) = sni {
            extensions.extend(extension(SERVER_NAME, &server_names(&[name])));
        }
        extensions.extend(extension(43, &[2, 3, 4])); // supported_versions: TLS 1.3
        for e in more {
            extensions.extend_from_slice(e);
        }
        let mut body = vec![3, 3];
        body.extend([0x5a; 32]);
        body.push(32);
        body.extend([0xa5; 32]);
        body.extend([0, 4, 0x13, 0x01, 0x13, 0x02]);
        body.extend([1, 0]);
        body.extend(be(extensions.len(), 2));
        body.extend(extensions);
        let mut msg = vec![CLIENT_HELLO];
        msg.extend(be(body.len(), 3));
        msg.extend(body);
        msg
    }

    /// A ClientHello with an optional name and a padding extension of `padding` bytes (none if 0).
    fn hello(sni: Option<&[u8]>, padding: usize) -> Vec<u8> {
        let more = if padding > 0 {
            vec![extension(21, &vec![0; padding])]
        } else {
            vec![]
        };
        hello_with(sni, &more)
    }

    /// A handshake message cut into handshake records of at most `fragment` bytes.
    fn records(handshake: &[u8], fragment: usize) -> Vec<u8> {
        handshake
            .chunks(fragment)
            .flat_map(|c| {
                let mut r = vec![HANDSHAKE, 3, 1];
                r.extend(be(c.len(), 2));
                r.extend_from_slice(c);
                r
            })
            .collect()
    }

    fn sni(buf: &[u8]) -> Option<String> {
        match client_hello_sni(buf) {
            Ok(Parse::Done { value, consumed: 0 }) => value,
            other => panic!("not a whole ClientHello: {other:?}"),
        }
    }

    fn refusal(buf: &[u8]) -> TlsError {
        client_hello_sni(buf).expect_err("refused")
    }

    #[test]
    fn a_captured_openssl_client_hello_names_its_server() {
        assert_eq!(sni(&unhex(OPENSSL_HELLO)).as_deref(), Some("example.org"));
    }

    #[test]
    fn every_prefix_of_a_client_hello_needs_more() {
        for whole in [
            unhex(OPENSSL_HELLO),
            records(&hello(Some(b"example.org"), 300), 64),
        ] {
            for n in 0..whole.len() {
                assert_eq!(client_hello_sni(&whole[..n]), Ok(Parse::NeedMore), "{n}");
            }
            assert!(sni(&whole).is_some());
        }
    }

    #[test]
    fn the_server_name_is_lower_cased_and_loses_its_trailing_dot() {
        let buf = records(&hello(Some(b"Docs.Example.ORG."), 0), MAX_RECORD);
        assert_eq!(sni(&buf).as_deref(), Some("docs.example.org"));
    }

    #[test]
    fn a_client_hello_without_a_server_name_has_none() {
        assert_eq!(sni(&records(&hello(None, 100), MAX_RECORD)), None);
        // Before TLS 1.3 a ClientHello may end after its compression methods.
        let mut bare = hello(None, 0);
        bare.truncate(79);
        bare[1..4].copy_from_slice(&be(75, 3));
        assert_eq!(sni(&records(&bare, MAX_RECORD)), None);
    }

    #[test]
    fn a_client_hello_split_across_records_is_reassembled() {
        let msg = hello(Some(b"split.example"), 40_000);
        for fragment in [1, 2, 3, 7, 100, 16_384] {
            let buf = records(&msg, fragment);
            assert_eq!(sni(&buf).as_deref(), Some("split.example"), "{fragment}");
        }
        let bytewise = records(&hello(Some(b"split.example"), 0), 5);
        for n in 0..bytewise.len() {
            assert_eq!(client_hello_sni(&bytewise[..n]), Ok(Parse::NeedMore), "{n}");
        }
        assert_eq!(sni(&bytewise).as_deref(), Some("split.example"));
    }

    #[test]
    fn what_follows_the_client_hello_is_left_alone() {
        let mut buf = records(&hello(Some(b"example.org"), 0), MAX_RECORD);
        buf.extend_from_slice(&[20, 3, 3, 0, 1, 1, 23, 3, 3, 0xff, 0xff]);
        assert_eq!(
            client_hello_sni(&buf),
            Ok(Parse::Done {
                value: Some("example.org".into()),
                consumed: 0
            })
        );
    }

    #[test]
    fn a_tunnel_that_does_not_start_with_tls_is_refused() {
        let e = refusal(b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n");
        assert_eq!(
            e,
            TlsError::NotTls {
                start: "GET / HTTP/1.1\\r\\n".into()
            }
        );
        assert!(
            e.to_string().contains("did not start with a TLS ClientHello"),
            "{e}"
        );
        assert!(matches!(refusal(b"G"), TlsError::NotTls { .. }));
        assert!(matches!(
            refusal(b"SSH-2.0-OpenSSH_9.6\r\n"),
            TlsError::NotTls { .. }
        ));
        assert!(matches!(refusal(&[0x16, 0x47]), TlsError::NotTls { .. }));
        assert!(matches!(refusal(&[23, 3, 3, 0, 5]), TlsError::NotTls { .. }));
        // An SSLv2-style hello.
        assert!(matches!(refusal(&[0x80, 0x2e, 1, 3, 1]), TlsError::NotTls { .. }));
    }

    #[test]
    fn another_record_before_the_client_hello_is_complete_is_refused() {
        let msg = hello(Some(b"example.org"), 0);
        let mut buf = records(&msg[..50], 50);
        buf.extend_from_slice(&[21, 3, 3, 0, 2, 2, 40]);
        buf.extend(records(&msg[50..], 1000));
        assert_eq!(refusal(&buf), TlsError::NotHandshakeRecord { content_type: 21 });
    }

    #[test]
    fn a_handshake_message_other_than_client_hello_is_refused() {
        let mut msg = hello(Some(b"example.org"), 0);
        msg[0] = 2;
        let buf = records(&msg, MAX_RECORD);
        // Refused as soon as the type byte is in.
        assert_eq!(refusal(&buf[..6]), TlsError::NotClientHello { msg_type: 2 });
        assert_eq!(refusal(&buf), TlsError::NotClientHello { msg_type: 2 });
    }

    #[test]
    fn an_oversized_client_hello_is_refused() {
        let declared = [HANDSHAKE, 3, 1, 0, 4, CLIENT_HELLO, 0x01, 0x11, 0x70];
        assert_eq!(refusal(&declared), TlsError::TooLarge { len: 70_004 });
        let msg = hello(Some(b"example.org"), 65_490);
        assert!(msg.len() > MAX_CLIENT_HELLO);
        let buf = records(&msg, 16_384);
        assert_eq!(refusal(&buf[..10]), TlsError::TooLarge { len: msg.len() });
        assert!(refusal(&buf).to_string().contains("over the 65536-byte limit"));
    }

    #[test]
    fn an_oversized_or_empty_record_is_refused() {
        assert_eq!(
            refusal(&[HANDSHAKE, 3, 1, 0x41, 0x01]),
            TlsError::RecordTooLong { len: 0x4101 }
        );
        assert!(matches!(
            refusal(&[HANDSHAKE, 3, 1, 0, 0]),
            TlsError::Malformed(_)
        ));
        let mut buf = vec![HANDSHAKE, 3, 1, 0, 1, CLIENT_HELLO];
        buf.extend_from_slice(&[HANDSHAKE, 3, 1, 0, 0]);
        assert!(matches!(refusal(&buf), TlsError::Malformed(_)));
    }

    #[test]
    fn lengths_that_run_past_their_container_are_refused() {
        let msg = hello(Some(b"example.org"), 0);
        let at = |i: usize| usize::from(u16::from_be_bytes([msg[i], msg[i + 1]]));
        // (offset, width, end of the container)
        let fields = [
            (38, 1, msg.len()),
            (71, 2, msg.len()),
            (77, 1, msg.len()),
            (79, 2, msg.len()),
            (83, 2, msg.len()),
            (85, 2, 85 + at(83)),
            (88, 2, 87 + at(85)),
        ];
        for (offset, width, end) in fields {
            let mut lying = msg.clone();
            let len = end - (offset + width) + 1;
            lying[offset..offset + width].copy_from_slice(&be(len, width));
            let e = refusal(&records(&lying, MAX_RECORD));
            assert!(matches!(e, TlsError::Truncated { .. }), "{offset}: {e}");
        }
        // Lengths that stop short leave bytes that belong to nothing.
        for (offset, width) in [(79, 2), (85, 2)] {
            let mut short = msg.clone();
            let len = usize::from(u16::from_be_bytes([msg[offset], msg[offset + 1]])) - 1;
            short[offset..offset + width].copy_from_slice(&be(len, width));
            assert!(
                client_hello_sni(&records(&short, MAX_RECORD)).is_err(),
                "{offset}"
            );
        }
    }

    #[test]
    fn two_server_names_are_refused() {
        let two = extension(SERVER_NAME, &server_names(&[b"a.example", b"b.example"]));
        let mut msg = hello_with(None, &[two]);
        assert_eq!(refusal(&records(&msg, MAX_RECORD)), TlsError::TwoServerNames);
        let again = extension(SERVER_NAME, &server_names(&[b"b.example"]));
        msg = hello_with(Some(b"a.example"), &[again]);
        assert_eq!(refusal(&records(&msg, MAX_RECORD)), TlsError::TwoServerNames);
    }

    #[test]
    fn an_empty_server_name_is_refused() {
        for name in [&b""[..], b"."] {
            let buf = records(&hello(Some(name), 0), MAX_RECORD);
            assert_eq!(refusal(&buf), TlsError::EmptyServerName);
        }
    }

    #[test]
    fn a_server_name_over_253_bytes_is_refused() {
        let long = vec!["abcdefghi"; 26].join(".");
        let buf = records(&hello(Some(long.as_bytes()), 0), MAX_RECORD);
        assert_eq!(refusal(&buf), TlsError::ServerNameTooLong { len: 259 });
        let fits = format!("{}.", &long[..253]);
        assert!(sni(&records(&hello(Some(fits.as_bytes()), 0), MAX_RECORD)).is_some());
    }

    #[test]
    fn a_server_name_of_other_bytes_is_refused_and_quoted_escaped() {
        let buf = records(&hello(Some(b"evil.example\0\"x y"), 0), MAX_RECORD);
        let e = refusal(&buf);
        assert_eq!(
            e,
            TlsError::BadServerName {
                name: "evil.example\\x00\\\"x y".into()
            }
        );
        assert!(e.to_string().contains(r#""evil.example\x00\"x y""#), "{e}");
        for name in [&b"a_b.example"[..], b"a:443", "bücher.example".as_bytes()] {
            let buf = records(&hello(Some(name), 0), MAX_RECORD);
            assert!(matches!(refusal(&buf), TlsError::BadServerName { .. }));
        }
        let many = vec![b'\xff'; 200];
        match refusal(&records(&hello(Some(&many), 0), MAX_RECORD)) {
            TlsError::BadServerName { name } => assert_eq!(name.chars().count(), 100),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_server_name_of_another_type_is_refused() {
        let mut data = server_names(&[b"example.org"]);
        data[2] = 1;
        let msg = hello_with(None, &[extension(SERVER_NAME, &data)]);
        assert!(matches!(
            refusal(&records(&msg, MAX_RECORD)),
            TlsError::Malformed(_)
        ));
    }

    #[test]
    fn mutated_client_hellos_never_panic() {
        let bases = [
            unhex(OPENSSL_HELLO),
            records(&hello(Some(b"example.org"), 20), 37),
            records(&hello(None, 0), MAX_RECORD),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..30_000 {
            let mut buf = bases[i % bases.len()].clone();
            for _ in 0..=next() % 4 {
                let at = (next() % buf.len() as u64) as usize;
                buf[at] = match next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    2 => buf[at].wrapping_add(1),
                    _ => next() as u8,
                };
            }
            let end = if next() % 3 == 0 {
                (next() % buf.len() as u64) as usize
            } else {
                buf.len()
            };
            let _ = client_hello_sni(&buf[..end]);
            let noise: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
            let mut framed = vec![HANDSHAKE, 3, 1, 0, noise.len() as u8];
            framed.extend(noise);
            let _ = client_hello_sni(&framed);
        }
    }
}
