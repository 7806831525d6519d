//! File transfer between host and guest: writing a file into the guest, reading a file or a
//! directory out of it, and listing a directory.
//!
//! A transfer is **request-scoped**: the host sends [`Request::PutFile`](crate::Request::PutFile)
//! or [`Request::GetPath`](crate::Request::GetPath) under a request id it chose, and every byte of
//! the transfer then travels as a [`TransferMessage`] under that same id —
//! [`HostMessage::Transfer`](crate::HostMessage::Transfer) towards the guest,
//! [`GuestMessage::Transfer`](crate::GuestMessage::Transfer) towards the host — with the credit
//! windows of [`Flow`](crate::Flow) ([`STREAM_WINDOW`](crate::STREAM_WINDOW), chunks of at most
//! [`MAX_STREAM_CHUNK`](crate::MAX_STREAM_CHUNK)). The guest ends every transfer with one final
//! reply; the host ends it early with [`HostMessage::Cancel`](crate::HostMessage::Cancel).
//!
//! Writing (`PutFile`): the host sends data within its credit, then [`TransferMessage::Eof`]; the
//! guest grants credit as it writes and answers [`Reply::Written`](crate::Reply::Written) with the
//! size and SHA-256 it computed, once the file is in place (atomically), or
//! [`Reply::FileError`](crate::Reply::FileError) at any time.
//!
//! Reading (`GetPath`): the guest first answers [`Reply::Opened`](crate::Reply::Opened) (a file
//! and its size, or a directory coming as a tar archive), then sends data within the host's
//! credit, then [`Reply::Sent`](crate::Reply::Sent) with the size and SHA-256 of what it sent.
//!
//! Paths are UTF-8 strings, absolute and normalised ([`validate_guest_path`]): the path a policy
//! judged is the path the guest opens, and the guest refuses a symlink in any of its components.

use serde::{Deserialize, Serialize};

use crate::MAX_STREAM_CHUNK;

/// Longest guest path, in bytes (Linux's `PATH_MAX`).
pub const MAX_GUEST_PATH: usize = 4096;
/// Largest file the guest accepts to write, whatever the host's own limit (8 GiB).
pub const MAX_PUT_SIZE: u64 = 8 << 30;
/// Most entries one listing carries; a request may ask for fewer.
pub const MAX_LIST_ENTRIES: u32 = 10_000;
/// Longest entry name in a listing, in bytes (a 255-byte name of invalid UTF-8 reads as 765
/// bytes of replacement characters).
pub const MAX_ENTRY_NAME: usize = 1024;
/// Longest raw (non-UTF-8) entry name, in bytes (Linux's `NAME_MAX`).
pub const MAX_RAW_NAME: usize = 255;
/// Longest message of a [`FileError`], in bytes.
pub const MAX_FILE_ERROR: usize = 4096;
/// Trees of the guest no transfer touches: kernel interfaces and devices, not files.
pub const SYSTEM_ROOTS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Write a file into the guest. Its data follows as [`TransferMessage`]s under the request's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutFile {
    /// Where the file goes: absolute, normalised (see [`validate_guest_path`]).
    pub path: String,
    /// Permission bits the file gets (at most `0o7777`).
    pub mode: u32,
    /// How many bytes follow; the guest refuses more, and fewer, and anything over
    /// [`MAX_PUT_SIZE`].
    pub size: u64,
    /// Create missing parent directories (mode 0755, owned like their own parent).
    pub create_parents: bool,
}

impl PutFile {
    /// Checks the path, the mode and the declared size.
    pub fn validate(&self) -> Result<(), InvalidFileRequest> {
        validate_guest_path(&self.path)?;
        if self.path == "/" {
            return Err(InvalidFileRequest::NoFileName);
        }
        if self.mode > 0o7777 {
            return Err(InvalidFileRequest::Mode { mode: self.mode });
        }
        if self.size > MAX_PUT_SIZE {
            return Err(InvalidFileRequest::TooLarge { size: self.size });
        }
        Ok(())
    }
}

/// One transfer's traffic, under the id of the request that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferMessage {
    /// Bytes of the file or archive, at most [`MAX_STREAM_CHUNK`], never more than the credit left.
    Data(Vec<u8>),
    /// The sender consumed this many bytes: the peer may send that many more.
    Credit(u32),
    /// Host → guest on a write: every byte was sent. (A read ends with its final reply instead.)
    Eof,
}

impl TransferMessage {
    /// Checks the sizes a hostile peer could inflate, and traffic that moves nothing.
    pub fn validate(&self) -> Result<(), crate::InvalidMessage> {
        match self {
            TransferMessage::Data(d) if d.len() > MAX_STREAM_CHUNK => {
                Err(crate::InvalidMessage::StreamChunk { len: d.len() })
            }
            TransferMessage::Data(d) if d.is_empty() => Err(crate::InvalidMessage::EmptyStreamData),
            TransferMessage::Credit(0) => Err(crate::InvalidMessage::ZeroCredit),
            TransferMessage::Data(_) | TransferMessage::Credit(_) | TransferMessage::Eof => Ok(()),
        }
    }
}

/// What a read sends, said before its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// A regular file: exactly `size` bytes follow.
    File {
        /// Its size in bytes.
        size: u64,
        /// Its permission bits.
        mode: u32,
        /// Its modification time, seconds since the epoch.
        mtime: i64,
    },
    /// A directory: a tar archive of it follows (symlinks inside are stored as symlinks, never
    /// followed; its size is known only at the end).
    DirectoryTar {
        /// The directory's permission bits.
        mode: u32,
        /// Its modification time, seconds since the epoch.
        mtime: i64,
    },
}

/// Size and SHA-256 of the bytes a transfer carried, as one side computed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Bytes.
    pub size: u64,
    /// SHA-256 of those bytes.
    pub sha256: [u8; 32],
}

impl Digest {
    /// The SHA-256 in lower-case hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a directory entry is (never followed: a symlink is a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, fifo or socket.
    Other,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The name. Exact when `raw_name` is `None`; otherwise the name is not UTF-8 and this is its
    /// display form, each invalid byte shown as U+FFFD.
    pub name: String,
    /// The exact bytes of a name that is not UTF-8 (`None` for every UTF-8 name).
    pub raw_name: Option<Vec<u8>>,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes (`lstat`'s: a symlink's is the length of its target).
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// A directory's entries, sorted by name bytes (without `.` and `..`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// At most the limit asked for.
    pub entries: Vec<DirEntry>,
    /// The directory holds more entries than were listed.
    pub truncated: bool,
}

impl Listing {
    /// Checks the sizes a hostile guest could inflate, against the limit the host asked for.
    pub fn validate(&self, limit: u32) -> Result<(), crate::InvalidMessage> {
        let max = limit.min(MAX_LIST_ENTRIES) as usize;
        if self.entries.len() > max {
            return Err(crate::InvalidMessage::ListingEntries {
                count: self.entries.len(),
                max,
            });
        }
        for e in &self.entries {
            let raw = e.raw_name.as_ref().map_or(0, Vec::len);
            if e.name.len() > MAX_ENTRY_NAME || raw > MAX_RAW_NAME {
                return Err(crate::InvalidMessage::EntryName {
                    len: e.name.len().max(raw),
                });
            }
        }
        Ok(())
    }
}

/// Why the guest refused or failed a file request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileErrorKind {
    /// The path or the request breaks the protocol's rules (see [`InvalidFileRequest`]).
    InvalidPath,
    /// The path lies under `/proc`, `/sys` or `/dev`, or on such a filesystem.
    SystemPath,
    /// The path, or one of its parents, does not exist.
    NotFound,
    /// A component of the path is a symlink (never followed).
    Symlink,
    /// A parent of the path is not a directory.
    NotADirectory,
    /// A write's target is a directory, or a listing's is not one.
    WrongKind,
    /// A device, fifo or socket.
    SpecialFile,
    /// More bytes than declared arrived, or the declared size is over [`MAX_PUT_SIZE`].
    TooLarge,
    /// Fewer bytes than declared arrived, or the file changed while it was read.
    SizeMismatch,
    /// The guest's permissions refused it.
    PermissionDenied,
    /// The guest's disk is full.
    NoSpace,
    /// The host cancelled the transfer or broke its flow control; nothing was written.
    Cancelled,
    /// Any other I/O failure.
    Io,
}

/// The guest's refusal or failure of a file request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct FileError {
    /// Category.
    pub kind: FileErrorKind,
    /// Sentence-style explanation naming the path, at most [`MAX_FILE_ERROR`] bytes.
    pub message: String,
}

impl FileError {
    /// Checks the size a hostile guest could inflate.
    pub fn validate(&self) -> Result<(), crate::InvalidMessage> {
        if self.message.len() > MAX_FILE_ERROR {
            Err(crate::InvalidMessage::FileErrorMessage {
                len: self.message.len(),
            })
        } else {
            Ok(())
        }
    }
}

/// Why a file request breaks the protocol's rules; both ends check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFileRequest {
    /// The path does not start with `/`.
    #[error("the guest path {path:?} is not absolute")]
    NotAbsolute {
        /// The path (cut to 200 bytes).
        path: String,
    },
    /// The path is too long.
    #[error("the guest path is {len} bytes long, over the {MAX_GUEST_PATH}-byte limit")]
    PathLength {
        /// Its length in bytes.
        len: usize,
    },
    /// The path holds a NUL byte.
    #[error("the guest path {path:?} holds a NUL byte")]
    Nul {
        /// The path (cut to 200 bytes).
        path: String,
    },
    /// The path has a `..` component.
    #[error("the guest path {path:?} has a '..' component")]
    DotDot {
        /// The path (cut to 200 bytes).
        path: String,
    },
    /// The path has an empty or `.` component, or a trailing `/`.
    #[error("the guest path {path:?} is not normalised (an empty or '.' component, or a trailing '/')")]
    NotNormalised {
        /// The path (cut to 200 bytes).
        path: String,
    },
    /// The path lies under `/proc`, `/sys` or `/dev`.
    #[error(
        "the guest path {path:?} lies under {root}, which holds kernel interfaces and devices, not files"
    )]
    SystemPath {
        /// The path (cut to 200 bytes).
        path: String,
        /// `/proc`, `/sys` or `/dev`.
        root: &'static str,
    },
    /// A write to `/`.
    #[error("a file cannot be written to '/'")]
    NoFileName,
    /// Mode bits beyond `0o7777`.
    #[error("the mode {mode:#o} has bits beyond 0o7777")]
    Mode {
        /// The mode asked for.
        mode: u32,
    },
    /// A declared size over [`MAX_PUT_SIZE`].
    #[error("a file of {size} bytes is over the guest's limit of {MAX_PUT_SIZE} bytes")]
    TooLarge {
        /// The declared size.
        size: u64,
    },
    /// A listing limit of 0 or over [`MAX_LIST_ENTRIES`].
    #[error("a listing limit must be 1 to {MAX_LIST_ENTRIES}, not {limit}")]
    ListLimit {
        /// The limit asked for.
        limit: u32,
    },
}

impl InvalidFileRequest {
    /// The guest's error kind for it.
    pub fn kind(&self) -> FileErrorKind {
        match self {
            InvalidFileRequest::SystemPath { .. } => FileErrorKind::SystemPath,
            InvalidFileRequest::TooLarge { .. } => FileErrorKind::TooLarge,
            InvalidFileRequest::NotAbsolute { .. }
            | InvalidFileRequest::PathLength { .. }
            | InvalidFileRequest::Nul { .. }
            | InvalidFileRequest::DotDot { .. }
            | InvalidFileRequest::NotNormalised { .. }
            | InvalidFileRequest::NoFileName
            | InvalidFileRequest::Mode { .. }
            | InvalidFileRequest::ListLimit { .. } => FileErrorKind::InvalidPath,
        }
    }
}

fn shown(path: &str) -> String {
    let mut end = path.len().min(200);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_string()
}

/// Checks a guest path: absolute, at most [`MAX_GUEST_PATH`] bytes, no NUL, no `..`, `.` or
/// empty component, no trailing `/` (except `/` itself), and not under [`SYSTEM_ROOTS`].
/// Non-normalised paths are refused rather than normalised, so the path judged is the path used.
pub fn validate_guest_path(path: &str) -> Result<(), InvalidFileRequest> {
    if path.len() > MAX_GUEST_PATH {
        return Err(InvalidFileRequest::PathLength { len: path.len() });
    }
    if path.contains('\0') {
        return Err(InvalidFileRequest::Nul { path: shown(path) });
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(InvalidFileRequest::NotAbsolute { path: shown(path) });
    };
    if rest.is_empty() {
        return Ok(());
    }
    for c in rest.split('/') {
        match c {
            ".." => return Err(InvalidFileRequest::DotDot { path: shown(path) }),
            "" | "." => return Err(InvalidFileRequest::NotNormalised { path: shown(path) }),
            _ => {}
        }
    }
    for root in SYSTEM_ROOTS {
        if path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/')) {
            return Err(InvalidFileRequest::SystemPath {
                path: shown(path),
                root,
            });
        }
    }
    Ok(())
}

/// Checks a listing limit.
pub fn validate_list_limit(limit: u32) -> Result<(), InvalidFileRequest> {
    if limit == 0 || limit > MAX_LIST_ENTRIES {
        Err(InvalidFileRequest::ListLimit { limit })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_frame, FrameDecoder, GuestMessage, HostMessage, Reply, Request};

    fn roundtrip_host(msg: HostMessage) {
        let bytes = encode_frame(9, &msg).expect("encodes");
        let mut dec = FrameDecoder::default();
        dec.extend(&bytes);
        let frame = dec.next_frame().expect("a frame").expect("whole");
        assert_eq!(frame.id, 9);
        assert_eq!(frame.decode::<HostMessage>().expect("decodes"), msg);
    }

    fn roundtrip_guest(msg: GuestMessage) {
        let bytes = encode_frame(9, &msg).expect("encodes");
        let mut dec = FrameDecoder::default();
        dec.extend(&bytes);
        let frame = dec.next_frame().expect("a frame").expect("whole");
        assert_eq!(frame.decode::<GuestMessage>().expect("decodes"), msg);
    }

    #[test]
    fn file_requests_and_transfer_traffic_survive_the_wire() {
        roundtrip_host(HostMessage::Request(Request::PutFile(PutFile {
            path: "/root/a.txt".into(),
            mode: 0o644,
            size: 3,
            create_parents: true,
        })));
        roundtrip_host(HostMessage::Request(Request::GetPath { path: "/root".into() }));
        roundtrip_host(HostMessage::Request(Request::ListDir {
            path: "/".into(),
            limit: 10,
        }));
        roundtrip_host(HostMessage::Transfer(TransferMessage::Data(vec![1, 2, 3])));
        roundtrip_host(HostMessage::Transfer(TransferMessage::Credit(5)));
        roundtrip_host(HostMessage::Transfer(TransferMessage::Eof));
        roundtrip_guest(GuestMessage::Transfer(TransferMessage::Data(vec![4])));
        roundtrip_guest(GuestMessage::Reply(Reply::Opened(Content::File {
            size: 1,
            mode: 0o600,
            mtime: -1,
        })));
        roundtrip_guest(GuestMessage::Reply(Reply::Sent(Digest {
            size: 1,
            sha256: [7; 32],
        })));
        roundtrip_guest(GuestMessage::Reply(Reply::Written(Digest {
            size: 1,
            sha256: [8; 32],
        })));
        roundtrip_guest(GuestMessage::Reply(Reply::Listing(Listing {
            entries: vec![DirEntry {
                name: "caf\u{fffd}".into(),
                raw_name: Some(b"caf\xe9".to_vec()),
                kind: EntryKind::File,
                size: 4,
                mode: 0o644,
                mtime: 1_700_000_000,
            }],
            truncated: true,
        })));
        roundtrip_guest(GuestMessage::Reply(Reply::FileError(FileError {
            kind: FileErrorKind::Symlink,
            message: "the guest path /a is a symlink".into(),
        })));
    }

    #[test]
    fn a_listing_of_the_largest_size_fits_one_frame() {
        let entry = DirEntry {
            name: "\u{fffd}".repeat(255),
            raw_name: Some(vec![0xff; MAX_RAW_NAME]),
            kind: EntryKind::Other,
            size: u64::MAX,
            mode: 0o7777,
            mtime: i64::MIN,
        };
        let listing = Listing {
            entries: vec![entry; MAX_LIST_ENTRIES as usize],
            truncated: true,
        };
        assert!(listing.validate(MAX_LIST_ENTRIES).is_ok());
        encode_frame(1, &GuestMessage::Reply(Reply::Listing(listing))).expect("fits MAX_PAYLOAD");
    }

    #[test]
    fn a_listing_longer_than_asked_is_refused() {
        let listing = Listing {
            entries: vec![
                DirEntry {
                    name: "a".into(),
                    raw_name: None,
                    kind: EntryKind::File,
                    size: 0,
                    mode: 0,
                    mtime: 0,
                };
                3
            ],
            truncated: false,
        };
        assert!(listing.validate(3).is_ok());
        assert!(listing.validate(2).is_err());
    }

    #[test]
    fn guest_paths_must_be_absolute_normalised_and_outside_the_system_trees() {
        for ok in [
            "/",
            "/root",
            "/root/a.txt",
            "/tmp/x/y z",
            "/procfs",
            "/devices/x",
            "/a/.b/c..",
        ] {
            assert_eq!(validate_guest_path(ok), Ok(()), "{ok}");
        }
        let refused = |p: &str| validate_guest_path(p).expect_err(p);
        assert!(matches!(
            refused("root/a"),
            InvalidFileRequest::NotAbsolute { .. }
        ));
        assert!(matches!(refused(""), InvalidFileRequest::NotAbsolute { .. }));
        assert!(matches!(refused("/a/../etc"), InvalidFileRequest::DotDot { .. }));
        assert!(matches!(refused("/.."), InvalidFileRequest::DotDot { .. }));
        assert!(matches!(refused("/a/\0b"), InvalidFileRequest::Nul { .. }));
        assert!(matches!(
            refused("/a//b"),
            InvalidFileRequest::NotNormalised { .. }
        ));
        assert!(matches!(
            refused("/a/./b"),
            InvalidFileRequest::NotNormalised { .. }
        ));
        assert!(matches!(refused("/a/"), InvalidFileRequest::NotNormalised { .. }));
        assert!(matches!(
            refused("/proc/self/mem"),
            InvalidFileRequest::SystemPath { root: "/proc", .. }
        ));
        assert!(matches!(
            refused("/sys"),
            InvalidFileRequest::SystemPath { root: "/sys", .. }
        ));
        assert!(matches!(
            refused("/dev/sda"),
            InvalidFileRequest::SystemPath { root: "/dev", .. }
        ));
        let long = format!("/{}", "a".repeat(MAX_GUEST_PATH));
        assert!(matches!(refused(&long), InvalidFileRequest::PathLength { .. }));
        assert_eq!(
            refused("/a/../b").to_string(),
            "the guest path \"/a/../b\" has a '..' component"
        );
    }

    #[test]
    fn a_put_checks_mode_size_and_file_name() {
        let ok = PutFile {
            path: "/root/a".into(),
            mode: 0o755,
            size: MAX_PUT_SIZE,
            create_parents: false,
        };
        assert_eq!(ok.validate(), Ok(()));
        let e = PutFile {
            size: MAX_PUT_SIZE + 1,
            ..ok.clone()
        }
        .validate()
        .expect_err("too large");
        assert_eq!(e.kind(), FileErrorKind::TooLarge);
        assert!(PutFile {
            mode: 0o10000,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert_eq!(
            PutFile {
                path: "/".into(),
                ..ok
            }
            .validate(),
            Err(InvalidFileRequest::NoFileName)
        );
    }

    #[test]
    fn transfer_messages_that_move_nothing_or_too_much_are_refused() {
        assert!(TransferMessage::Data(vec![]).validate().is_err());
        assert!(TransferMessage::Data(vec![0; MAX_STREAM_CHUNK + 1])
            .validate()
            .is_err());
        assert!(TransferMessage::Data(vec![0; MAX_STREAM_CHUNK])
            .validate()
            .is_ok());
        assert!(TransferMessage::Credit(0).validate().is_err());
        assert!(TransferMessage::Eof.validate().is_ok());
    }
}
