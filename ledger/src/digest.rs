//! SHA-256 digests: entry hashes and blob content addresses.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Raw SHA-256 output. [`Digest`] wraps it with hex formatting and serde support.
pub type Hash = [u8; 32];

/// A SHA-256 digest: an entry hash, a chain link or a blob's content address.
///
/// Displays, parses and (de)serializes as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, ts_rs::TS)]
#[ts(type = "string")]
pub struct Digest(pub Hash);

/// Why a string or byte slice is not a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The input does not have the length of a SHA-256 digest.
    #[error("a digest is 32 bytes (64 hex characters), got {0}")]
    Length(usize),
    /// The input has a character that is not a hex digit.
    #[error("a digest is written in hex, and this has a non-hex character")]
    NotHex,
}

impl Digest {
    /// The all-zero digest: the `prev` of the first entry.
    pub const ZERO: Digest = Digest([0; 32]);

    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The SHA-256 of everything `r` yields.
    pub fn of_reader(mut r: impl std::io::Read) -> std::io::Result<Digest> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(Digest(hasher.finalize().into())),
                n => hasher.update(&buf[..n]),
            }
        }
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &Hash {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<Digest, DigestError> {
        if s.len() != 64 {
            return Err(DigestError::Length(s.len() / 2));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| DigestError::NotHex)?;
        Ok(Digest(out))
    }

    /// Takes a 32-byte slice (as stored in a database column).
    pub fn from_slice(bytes: &[u8]) -> Result<Digest, DigestError> {
        Hash::try_from(bytes)
            .map(Digest)
            .map_err(|_| DigestError::Length(bytes.len()))
    }
}

impl From<Hash> for Digest {
    fn from(hash: Hash) -> Digest {
        Digest(hash)
    }
}

impl From<Digest> for Hash {
    fn from(digest: Digest) -> Hash {
        digest.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Encoding 32 bytes into a 64-byte buffer cannot fail; fall back to the slow path anyway.
        match hex::encode_to_slice(self.0, &mut buf) {
            Ok(()) => f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?),
            Err(_) => f.write_str(&self.to_hex()),
        }
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::from_hex(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        struct HexVisitor;
        impl Visitor<'_> for HexVisitor {
            type Value = Digest;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SHA-256 digest as 64 hex characters")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Digest, E> {
                Digest::from_hex(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(HexVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_string(), d.to_hex());
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d));
        assert_eq!(Digest::from_hex(&d.to_hex().to_uppercase()), Ok(d));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(Digest::from_hex("abcd"), Err(DigestError::Length(2)));
        assert_eq!(Digest::from_hex(&"zz".repeat(32)), Err(DigestError::NotHex));
        assert_eq!(Digest::from_slice(&[1, 2, 3]), Err(DigestError::Length(3)));
        assert!(serde_json::from_str::<Digest>("\"00\"").is_err());
        assert!(serde_json::from_str::<Digest>("12").is_err());
        // Multi-byte characters must not panic on slicing.
        assert!(Digest::from_hex(&"é".repeat(32)).is_err());
    }
}
