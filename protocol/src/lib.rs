//! The wire protocol between Airlock's host side and the guest agent inside a sandbox.
//!
//! Both ends treat the other as hostile. Every message travels in a frame with a fixed 12-byte
//! header — magic `AL`, protocol version, flags, a request id and a payload length — followed by a
//! [postcard](https://docs.rs/postcard)-encoded body. Payloads larger than [`MAX_PAYLOAD`] are refused
//! before a single byte of them is buffered, so a length prefix of 4 GiB costs nothing.
//!
//! The crate is pure: no I/O, no clock. [`FrameDecoder`] is fed bytes and hands out whole frames;
//! [`encode_frame`] produces them.
//!
//! ```
//! use airlock_protocol::{encode_frame, FrameDecoder, HostMessage, Request};
//! let bytes = encode_frame(7, &HostMessage::Request(Request::Ping)).unwrap();
//! let mut dec = FrameDecoder::default();
//! dec.extend(&bytes);
//! let frame = dec.next_frame().unwrap().unwrap();
//! assert_eq!(frame.id, 7);
//! let msg: HostMessage = frame.decode().unwrap();
//! assert_eq!(msg, HostMessage::Request(Request::Ping));
//! ```

mod chain;
mod codec;
mod files;
mod flow;
mod messages;

pub use chain::error_chain;
pub use codec::{encode_frame, Frame, FrameDecoder, FrameError, HEADER_LEN, MAGIC, MAX_PAYLOAD};
pub use files::{
    validate_guest_path, validate_list_limit, Content, Digest, DirEntry, EntryKind, FileError, FileErrorKind,
    InvalidFileRequest, Listing, PutFile, TransferMessage, MAX_ENTRY_NAME, MAX_FILE_ERROR, MAX_GUEST_PATH,
    MAX_LIST_ENTRIES, MAX_PUT_SIZE, MAX_RAW_NAME, SYSTEM_ROOTS,
};
pub use flow::{Flow, FlowError};
pub use messages::*;

/// File the guest's terminal writes once it has the keyboard focus and a running shell: input sent
/// before it exists may be lost.
pub const TERMINAL_READY_FILE: &str = "/tmp/.airlock-terminal-ready";

/// The protocol version this crate speaks. A peer announcing another version is refused.
pub const PROTOCOL_VERSION: u8 = 4;
