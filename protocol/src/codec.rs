//! Framing: a fixed header and a bounded payload.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::PROTOCOL_VERSION;

/// The two bytes every frame starts with.
pub const MAGIC: [u8; 2] = *b"AL";
/// Header length in bytes: magic (2), version (1), flags (1), id (4, LE), payload length (4, LE).
pub const HEADER_LEN: usize = 12;
/// The largest payload either side accepts: 16 MiB (a raw 1280x800 frame is 4 MB).
pub const MAX_PAYLOAD: u32 = 16 * 1024 * 1024;

/// Why a byte stream could not be turned into frames. Any of these closes the channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The stream does not start a frame where one must start.
    #[error("the peer sent bytes that are not an Airlock frame (expected magic \"AL\", got {0:02x?})")]
    BadMagic([u8; 2]),
    /// The peer speaks another protocol version.
    #[error("the peer speaks protocol version {got}, this side speaks version {expected}")]
    Version {
        /// Version in the frame.
        got: u8,
        /// Version this side speaks.
        expected: u8,
    },
    /// Reserved flag bits were set.
    #[error("the peer set unknown frame flags {0:#04x}")]
    Flags(u8),
    /// The length prefix is over the limit.
    #[error("the peer announced a {len}-byte message, over the {max}-byte limit")]
    TooLarge {
        /// Announced length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The stream ended in the middle of a frame.
    #[error("the channel closed in the middle of a frame ({have} of {need} bytes received)")]
    Truncated {
        /// Bytes of the frame received.
        have: usize,
        /// Bytes the frame needs.
        need: usize,
    },
    /// The body did not decode as the expected message type.
    #[error("the peer sent a malformed message: {0}")]
    Malformed(String),
    /// The message could not be encoded (too large, usually).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// One frame: the request id it belongs to and its undecoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Request id chosen by the host; replies and stream items carry the id of their request.
    pub id: u32,
    /// Postcard-encoded message body.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Decodes the body as `T`, refusing trailing bytes.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, FrameError> {
        let (value, rest) =
            postcard::take_from_bytes(&self.payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(FrameError::Malformed(format!(
                "{} trailing bytes after the message",
                rest.len()
            )));
        }
        Ok(value)
    }
}

/// Encodes `msg` as one frame with request id `id`.
pub fn encode_frame<T: Serialize>(id: u32, msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    let mut out =
        postcard::to_extend(msg, std::mem::take(&mut out)).map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = out.len() - HEADER_LEN;
    let len32 = u32::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_PAYLOAD)
        .ok_or(FrameError::TooLarge {
            len: u32::try_from(len).unwrap_or(u32::MAX),
            max: MAX_PAYLOAD,
        })?;
    out[0..2].copy_from_slice(&MAGIC);
    out[2] = PROTOCOL_VERSION;
    out[3] = 0;
    out[4..8].copy_from_slice(&id.to_le_bytes());
    out[8..12].copy_from_slice(&len32.to_le_bytes());
    Ok(out)
}

/// Incremental frame decoder. Feed it bytes with [`extend`](Self::extend), take frames with
/// [`next_frame`](Self::next_frame). After an error the decoder stays failed: the channel must close.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next whole frame, `Ok(None)` if more bytes are needed, or the error that ends the
    /// channel. The header is validated as soon as it is complete, before the payload arrives.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.parse() {
            Ok(f) => Ok(f),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                Err(e)
            }
        }
    }

    /// Called at end of stream: an error if a frame was cut short.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let need = if self.buf.len() >= HEADER_LEN {
            HEADER_LEN + payload_len(&self.buf) as usize
        } else {
            HEADER_LEN
        };
        Err(FrameError::Truncated {
            have: self.buf.len(),
            need,
        })
    }

    fn parse(&mut self) -> Result<Option<Frame>, FrameError> {
        // Check the magic as soon as two bytes are in, so garbage fails fast.
        if self.buf.len() >= 2 && self.buf[0..2] != MAGIC {
            return Err(FrameError::BadMagic([self.buf[0], self.buf[1]]));
        }
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let version = self.buf[2];
        if version != PROTOCOL_VERSION {
            return Err(FrameError::Version {
                got: version,
                expected: PROTOCOL_VERSION,
            });
        }
        if self.buf[3] != 0 {
            return Err(FrameError::Flags(self.buf[3]));
        }
        let len = payload_len(&self.buf);
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge {
                len,
                max: MAX_PAYLOAD,
            });
        }
        let total = HEADER_LEN + len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let id = u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
        let payload = self.buf[HEADER_LEN..total].to_vec();
        self.buf.drain(..total);
        Ok(Some(Frame { id, payload }))
    }
}

fn payload_len(buf: &[u8]) -> u32 {
    u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GuestMessage, HostMessage, Reply, Request};

    fn roundtrip(msg: &HostMessage) -> HostMessage {
        let bytes = encode_frame(42, msg).expect("encode");
        let mut d = FrameDecoder::default();
        d.extend(&bytes);
        let f = d.next_frame().expect("frame").expect("whole frame");
        assert_eq!(f.id, 42);
        f.decode().expect("decode")
    }

    #[test]
    fn roundtrips_requests() {
        for m in [
            HostMessage::Request(Request::Ping),
            HostMessage::Request(Request::Hello {
                protocol: 1,
                client: "test".into(),
            }),
            HostMessage::Cancel,
        ] {
            assert_eq!(roundtrip(&m), m);
        }
    }

    #[test]
    fn byte_at_a_time_yields_the_same_frames() {
        let mut all = encode_frame(1, &HostMessage::Request(Request::Ping)).expect("encode");
        all.extend(encode_frame(2, &GuestMessage::Reply(Reply::Pong)).expect("encode"));
        let mut d = FrameDecoder::default();
        let mut ids = vec![];
        for b in all {
            d.extend(&[b]);
            while let Some(f) = d.next_frame().expect("no error") {
                ids.push(f.id);
            }
        }
        assert_eq!(ids, vec![1, 2]);
        d.finish().expect("nothing left over");
    }

    #[test]
    fn garbage_fails_on_the_magic() {
        let mut d = FrameDecoder::default();
        d.extend(b"GET / HTTP/1.1\r\n");
        assert_eq!(d.next_frame(), Err(FrameError::BadMagic(*b"GE")));
        // The decoder stays failed.
        d.extend(&encode_frame(1, &HostMessage::Cancel).expect("encode"));
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn a_4_gib_length_is_refused_from_the_header_alone() {
        let mut h = vec![b'A', b'L', PROTOCOL_VERSION, 0, 1, 0, 0, 0];
        h.extend(u32::MAX.to_le_bytes());
        let mut d = FrameDecoder::default();
        d.extend(&h);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                len: u32::MAX,
                max: MAX_PAYLOAD
            })
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn wrong_version_and_flags_are_refused() {
        let mut f = encode_frame(1, &HostMessage::Cancel).expect("encode");
        f[2] = 9;
        let mut d = FrameDecoder::default();
        d.extend(&f);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::Version {
                got: 9,
                expected: PROTOCOL_VERSION
            })
        );
        let mut f = encode_frame(1, &HostMessage::Cancel).expect("encode");
        f[3] = 0x80;
        let mut d = FrameDecoder::default();
        d.extend(&f);
        assert_eq!(d.next_frame(), Err(FrameError::Flags(0x80)));
    }

    #[test]
    fn truncation_is_reported_at_end_of_stream() {
        let f = encode_frame(
            1,
            &HostMessage::Request(Request::Hello {
                protocol: 1,
                client: "x".into(),
            }),
        )
        .expect("encode");
        let mut d = FrameDecoder::default();
        d.extend(&f[..f.len() - 1]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(
            d.finish(),
            Err(FrameError::Truncated {
                have: f.len() - 1,
                need: f.len()
            })
        );
    }

    #[test]
    fn malformed_bodies_and_trailing_bytes_are_errors() {
        let bad = Frame {
            id: 1,
            payload: vec![250, 250, 250],
        };
        assert!(matches!(
            bad.decode::<HostMessage>(),
            Err(FrameError::Malformed(_))
        ));
        let mut ok = postcard::to_allocvec(&HostMessage::Cancel).expect("encode");
        ok.push(0);
        let trailing = Frame { id: 1, payload: ok };
        assert!(matches!(
            trailing.decode::<HostMessage>(),
            Err(FrameError::Malformed(_))
        ));
    }
}
