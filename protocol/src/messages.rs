//! Typed messages. Every enum is closed: an unknown variant fails to decode.

use serde::{Deserialize, Serialize};

use crate::files::{Content, Digest, FileError, Listing, PutFile, TransferMessage};

/// Longest text a single `Type` input may carry, in bytes.
pub const MAX_TYPE_TEXT: usize = 64 * 1024;
/// Longest key combo string (`ctrl+alt+Delete`), in bytes.
pub const MAX_KEY_COMBO: usize = 128;
/// Most points in one drag path.
pub const MAX_DRAG_POINTS: usize = 1024;
/// Largest exec output cap, per stream, in bytes.
pub const MAX_EXEC_OUTPUT: u32 = 8 * 1024 * 1024;
/// Longest exec timeout, in milliseconds (10 minutes).
pub const MAX_EXEC_TIMEOUT_MS: u32 = 600_000;
/// Most argv entries, and the longest one in bytes.
pub const MAX_ARGV: usize = 256;
/// Longest single argv entry in bytes.
pub const MAX_ARG_LEN: usize = 64 * 1024;
/// Longest window title or class the guest reports, in bytes (longer ones are cut).
pub const MAX_WINDOW_TEXT: usize = 1024;
/// Most selection or clipboard text the guest reports, in bytes (longer text is cut and flagged).
pub const MAX_SELECTION_TEXT: usize = 64 * 1024;

/// Host → guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostMessage {
    /// A request; the guest answers with one reply (or a stream, for `StartFrames`) under the same id.
    Request(Request),
    /// Cancel the request or stream with this frame's id (stops a frame stream).
    Cancel,
    /// Traffic of the egress stream with this frame's id (see [`StreamMessage`]).
    Stream(StreamMessage),
    /// Traffic of the file transfer started by the request with this frame's id (see
    /// [`crate::files`]).
    Transfer(TransferMessage),
}

/// What the host can ask of the guest agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First message on a channel: the agent replies with [`Reply::Hello`].
    Hello {
        /// Protocol version the host speaks.
        protocol: u8,
        /// Free-form name of the host side, for the guest's log.
        client: String,
    },
    /// Liveness check; answered with [`Reply::Pong`].
    Ping,
    /// The whole screen, answered with [`Reply::Screenshot`].
    Screenshot,
    /// Synthetic input through XTest, answered with [`Reply::Done`] (or [`Reply::Pointer`]).
    Input(Input),
    /// Run a program, answered with [`Reply::Exec`].
    Exec(ExecRequest),
    /// Start a stream of [`Reply::Frame`] damage updates, until [`HostMessage::Cancel`].
    StartFrames {
        /// Upper bound on updates per second.
        max_fps: u16,
    },
    /// Which top-level window has the keyboard focus (`at: None`) or lies under a point, answered
    /// with [`Reply::Window`].
    Window {
        /// A point on the screen, or `None` for the focused window.
        at: Option<(u16, u16)>,
    },
    /// What a paste would insert: the text of the primary selection or the clipboard, answered
    /// with [`Reply::Selection`].
    Selection {
        /// Which one.
        which: SelectionKind,
    },
    /// The sender becomes the sandbox's egress gateway: the streams the guest opens (connections
    /// to its proxy endpoint) and its notices go to it from now on. Answered with [`Reply::Done`].
    /// A keeper answers it itself and routes the guest's streams to the client that sent it.
    AttachEgress,
    /// Write a file into the guest, atomically; its bytes follow as [`HostMessage::Transfer`]
    /// under this request's id. Answered with [`Reply::Written`] or [`Reply::FileError`].
    PutFile(PutFile),
    /// Read a file, or a directory as a tar archive, out of the guest: answered with
    /// [`Reply::Opened`], the bytes as [`GuestMessage::Transfer`], then [`Reply::Sent`] (or
    /// [`Reply::FileError`] at any point).
    GetPath {
        /// Absolute, normalised; no symlink in any component.
        path: String,
    },
    /// List a directory, answered with [`Reply::Listing`] or [`Reply::FileError`].
    ListDir {
        /// Absolute, normalised; no symlink in any component.
        path: String,
        /// Most entries to list, 1 to [`crate::MAX_LIST_ENTRIES`].
        limit: u32,
    },
}

/// The two X selections a paste reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectionKind {
    /// `PRIMARY`: what was last selected; a middle click and xterm's shift+Insert paste it (xterm
    /// falls back to `CUT_BUFFER0` when nobody owns it, and so does the guest's answer).
    Primary,
    /// `CLIPBOARD`: what was last copied; ctrl+shift+v pastes it in terminals.
    Clipboard,
}

/// A top-level window as the guest's X server describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowInfo {
    /// The X window id (0 when there is no such window).
    pub id: u32,
    /// Its title (`_NET_WM_NAME`, else `WM_NAME`), at most [`MAX_WINDOW_TEXT`] bytes.
    pub title: String,
    /// The class part of `WM_CLASS` (`XTerm`, `firefox-esr`), at most [`MAX_WINDOW_TEXT`] bytes.
    pub class: String,
    /// The instance part of `WM_CLASS` (`xterm`), at most [`MAX_WINDOW_TEXT`] bytes.
    pub instance: String,
}

impl WindowInfo {
    /// Checks the lengths a hostile guest could inflate.
    pub fn validate(&self) -> Result<(), InvalidMessage> {
        for (field, v) in [
            ("title", &self.title),
            ("class", &self.class),
            ("instance", &self.instance),
        ] {
            if v.len() > MAX_WINDOW_TEXT {
                return Err(InvalidMessage::WindowText { field, len: v.len() });
            }
        }
        Ok(())
    }
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Button {
    /// Left (X button 1).
    Left,
    /// Middle (X button 2).
    Middle,
    /// Right (X button 3).
    Right,
    /// Back (X button 8).
    Back,
    /// Forward (X button 9).
    Forward,
}

impl Button {
    /// The X11 button number.
    pub fn x11(self) -> u8 {
        match self {
            Button::Left => 1,
            Button::Middle => 2,
            Button::Right => 3,
            Button::Back => 8,
            Button::Forward => 9,
        }
    }
}

/// Synthetic input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// Move the pointer.
    MouseMove {
        /// Column, from the left.
        x: u16,
        /// Row, from the top.
        y: u16,
    },
    /// Press or release a button where the pointer is.
    Button {
        /// Which button.
        button: Button,
        /// Press (`true`) or release.
        down: bool,
    },
    /// Move to (x, y) and click `count` times.
    Click {
        /// Column.
        x: u16,
        /// Row.
        y: u16,
        /// Which button.
        button: Button,
        /// 1 to 3.
        count: u8,
    },
    /// Press at the first point, move through the path, release at the last.
    Drag {
        /// At least two points.
        path: Vec<(u16, u16)>,
        /// Which button is held.
        button: Button,
    },
    /// Scroll at (x, y): positive `dy` scrolls down, positive `dx` right, in wheel clicks.
    Scroll {
        /// Column.
        x: u16,
        /// Row.
        y: u16,
        /// Horizontal clicks.
        dx: i16,
        /// Vertical clicks.
        dy: i16,
    },
    /// Press a key combination, xdotool-style: `ctrl+s`, `Return`, `ctrl+alt+Delete`.
    Key {
        /// The combo.
        combo: String,
    },
    /// Press or release a combination without the other half (hold_key).
    KeyState {
        /// The combo.
        combo: String,
        /// Press (`true`) or release.
        down: bool,
    },
    /// Type text as keystrokes.
    Type {
        /// UTF-8 text, at most [`MAX_TYPE_TEXT`] bytes.
        text: String,
    },
    /// Report where the pointer is: answered with [`Reply::Pointer`].
    QueryPointer,
}

/// Run a program inside the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments; the program must be on the agent's allowlist.
    pub argv: Vec<String>,
    /// Bytes written to the program's stdin, then closed.
    pub stdin: Vec<u8>,
    /// Kill the process group after this long.
    pub timeout_ms: u32,
    /// Keep at most this many bytes of stdout and of stderr each.
    pub output_cap: u32,
}

/// Pixel layout of [`Pixels::data`] after decompression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelFormat {
    /// 4 bytes per pixel, blue-green-red-unused (X11 depth 24 on little-endian).
    Bgrx8888,
}

/// A rectangle of pixels, LZ4-compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pixels {
    /// Left edge within the screen.
    pub x: u16,
    /// Top edge within the screen.
    pub y: u16,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Layout of the decompressed bytes (rows top to bottom, no padding).
    pub format: PixelFormat,
    /// `lz4_flex` block with its uncompressed size prepended.
    pub lz4: Vec<u8>,
}

/// Why decompressed pixels were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelsError {
    /// LZ4 data is corrupt.
    #[error("pixel data is corrupt: {0}")]
    Corrupt(String),
    /// The size does not match the rectangle.
    #[error("pixel data holds {got} bytes, a {width}x{height} rectangle needs {want}")]
    Size {
        /// Bytes decompressed.
        got: usize,
        /// Bytes expected.
        want: usize,
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// The rectangle lies outside the screen.
    #[error("rectangle {x},{y} {width}x{height} lies outside the {screen_w}x{screen_h} screen")]
    OutOfScreen {
        /// Left.
        x: u16,
        /// Top.
        y: u16,
        /// Width.
        width: u16,
        /// Height.
        height: u16,
        /// Screen width.
        screen_w: u16,
        /// Screen height.
        screen_h: u16,
    },
}

impl Pixels {
    /// Compresses `bgrx` (rows of `width * 4` bytes) into a rectangle.
    pub fn compress(x: u16, y: u16, width: u16, height: u16, bgrx: &[u8]) -> Self {
        Pixels {
            x,
            y,
            width,
            height,
            format: PixelFormat::Bgrx8888,
            lz4: lz4_flex::compress_prepend_size(bgrx),
        }
    }

    /// Decompresses, checking the size against the rectangle before allocating more than it needs.
    pub fn decompress(&self) -> Result<Vec<u8>, PixelsError> {
        let want = usize::from(self.width) * usize::from(self.height) * 4;
        if self.lz4.len() < 4 {
            return Err(PixelsError::Corrupt("missing size prefix".into()));
        }
        let announced = u32::from_le_bytes([self.lz4[0], self.lz4[1], self.lz4[2], self.lz4[3]]) as usize;
        if announced != want {
            return Err(PixelsError::Size {
                got: announced,
                want,
                width: self.width,
                height: self.height,
            });
        }
        let out = lz4_flex::decompress_size_prepended(&self.lz4)
            .map_err(|e| PixelsError::Corrupt(e.to_string()))?;
        if out.len() != want {
            return Err(PixelsError::Size {
                got: out.len(),
                want,
                width: self.width,
                height: self.height,
            });
        }
        Ok(out)
    }

    /// Checks the rectangle lies within a `screen_w` x `screen_h` screen.
    pub fn check_bounds(&self, screen_w: u16, screen_h: u16) -> Result<(), PixelsError> {
        let inside = u32::from(self.x) + u32::from(self.width) <= u32::from(screen_w)
            && u32::from(self.y) + u32::from(self.height) <= u32::from(screen_h);
        if inside {
            Ok(())
        } else {
            Err(PixelsError::OutOfScreen {
                x: self.x,
                y: self.y,
                width: self.width,
                height: self.height,
                screen_w,
                screen_h,
            })
        }
    }
}

/// Result of an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// Exit code, or `None` if killed by a signal.
    pub exit_code: Option<i32>,
    /// Signal that ended the process, if any.
    pub signal: Option<i32>,
    /// The process was killed because it ran past its timeout.
    pub timed_out: bool,
    /// Captured stdout (at most the cap).
    pub stdout: Vec<u8>,
    /// Captured stderr (at most the cap).
    pub stderr: Vec<u8>,
    /// Stdout went past the cap and was cut.
    pub stdout_truncated: bool,
    /// Stderr went past the cap and was cut.
    pub stderr_truncated: bool,
    /// Wall time in milliseconds.
    pub duration_ms: u32,
}

/// One damage update: the rectangles that changed since the previous update, with their pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameUpdate {
    /// Increases by one per update on a stream; the first update of a stream is a full frame.
    pub seq: u64,
    /// Screen width.
    pub screen_w: u16,
    /// Screen height.
    pub screen_h: u16,
    /// Guest monotonic time of the capture, microseconds.
    pub captured_us: u64,
    /// Changed rectangles.
    pub regions: Vec<Pixels>,
}

/// Guest → host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestMessage {
    /// A reply or stream item for the request with this frame's id.
    Reply(Reply),
    /// Traffic of the egress stream with this frame's id (see [`StreamMessage`]).
    Stream(StreamMessage),
    /// Something the guest reports on its own (frame id 0).
    Notice(Notice),
    /// Traffic of the file transfer of the request with this frame's id (see [`crate::files`]).
    Transfer(TransferMessage),
}

/// Most bytes one [`StreamMessage::Data`] carries.
pub const MAX_STREAM_CHUNK: usize = 32 * 1024;
/// Bytes either side may send on a stream before the other grants more with
/// [`StreamMessage::Credit`]: per-stream flow control, so one download cannot fill the channel
/// ahead of screenshots, input and approvals.
pub const STREAM_WINDOW: u32 = 256 * 1024;
/// Most streams open at once on one channel; the guest refuses connections beyond it and the
/// host closes any stream the guest opens beyond it.
pub const MAX_STREAMS: usize = 256;
/// Most names one [`Notice::DnsRefused`] reports, and the longest name in bytes.
pub const MAX_NOTICE_NAMES: usize = 256;
/// Longest name a [`Notice::DnsRefused`] carries, in bytes (presentation form, escapes included).
pub const MAX_NOTICE_NAME: usize = 1024;
/// Longest reason a [`StreamMessage::Close`] carries, in bytes.
pub const MAX_CLOSE_REASON: usize = 1024;

/// One connection a program in the sandbox made to the guest's proxy endpoint, carried over the
/// channel to the host's egress gateway. The guest opens a stream (choosing its id, the frame
/// id); from then on both sides send data within the credit the other granted, and either may
/// end it. The guest side is untrusted convenience: it forwards bytes, and the host parses the
/// proxy request, decides and dials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamMessage {
    /// Guest → host only: a program connected to the proxy endpoint of this kind. Each side starts
    /// with [`STREAM_WINDOW`] bytes of credit.
    Open {
        /// Which endpoint it connected to.
        kind: ProxyKind,
    },
    /// Bytes of the connection, at most [`MAX_STREAM_CHUNK`], never more than the credit left.
    Data(Vec<u8>),
    /// The sender has consumed this many bytes: the peer may send that many more.
    Credit(u32),
    /// The sender will send no more data (the connection's write half closed).
    Eof,
    /// The stream is over, in both directions; a reason when it ended badly. No reply expected.
    Close {
        /// What went wrong, at most [`MAX_CLOSE_REASON`] bytes.
        reason: Option<String>,
    },
}

/// The guest's proxy endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyKind {
    /// HTTP proxy: `CONNECT host:port` tunnels and absolute-URI `http://` requests.
    Http,
    /// SOCKS5 with remote name resolution (`socks5h`).
    Socks5,
}

impl ProxyKind {
    /// The endpoint's port on the guest's 127.0.0.1.
    pub fn port(self) -> u16 {
        match self {
            ProxyKind::Http => 3128,
            ProxyKind::Socks5 => 1080,
        }
    }
}

/// What the guest reports without being asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// DNS lookups the guest's resolver refused since its last notice (it answers every query
    /// REFUSED and resolves nothing): each name with how often it was asked.
    DnsRefused {
        /// At most [`MAX_NOTICE_NAMES`] names, each at most [`MAX_NOTICE_NAME`] bytes.
        names: Vec<(String, u32)>,
        /// Lookups refused but not listed, because too many distinct names were asked.
        unlisted: u32,
    },
}

impl Notice {
    /// Checks the sizes a hostile guest could inflate.
    pub fn validate(&self) -> Result<(), InvalidMessage> {
        match self {
            Notice::DnsRefused { names, .. } => {
                if names.len() > MAX_NOTICE_NAMES {
                    return Err(InvalidMessage::NoticeNames { count: names.len() });
                }
                match names.iter().find(|(n, _)| n.len() > MAX_NOTICE_NAME) {
                    Some((n, _)) => Err(InvalidMessage::NoticeName { len: n.len() }),
                    None => Ok(()),
                }
            }
        }
    }
}

impl StreamMessage {
    /// Checks the sizes a hostile peer could inflate.
    pub fn validate(&self) -> Result<(), InvalidMessage> {
        match self {
            StreamMessage::Data(d) if d.len() > MAX_STREAM_CHUNK => {
                Err(InvalidMessage::StreamChunk { len: d.len() })
            }
            // Neither moves anything: they would only make the peer work.
            StreamMessage::Data(d) if d.is_empty() => Err(InvalidMessage::EmptyStreamData),
            StreamMessage::Credit(0) => Err(InvalidMessage::ZeroCredit),
            StreamMessage::Close { reason: Some(r) } if r.len() > MAX_CLOSE_REASON => {
                Err(InvalidMessage::CloseReason { len: r.len() })
            }
            StreamMessage::Open { .. }
            | StreamMessage::Data(_)
            | StreamMessage::Credit(_)
            | StreamMessage::Eof
            | StreamMessage::Close { .. } => Ok(()),
        }
    }
}

/// Reasons the guest agent refuses or fails a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request is malformed or out of range.
    InvalidRequest,
    /// The agent's own allowlist refuses it.
    NotAllowed,
    /// The X server or another guest facility failed.
    Unavailable,
    /// The program could not be started.
    SpawnFailed,
    /// A request arrived out of order (duplicate id).
    OutOfOrder,
    /// A request arrived before hello: this agent instance has not been greeted (it restarted).
    HelloRequired,
}

/// Replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Answer to hello.
    Hello {
        /// Protocol version the agent speaks.
        protocol: u8,
        /// Agent build version.
        agent_version: String,
        /// Screen size.
        screen_w: u16,
        /// Screen height.
        screen_h: u16,
    },
    /// Answer to ping.
    Pong,
    /// The request was carried out.
    Done,
    /// The whole screen.
    Screenshot(Pixels),
    /// Pointer position.
    Pointer {
        /// Column.
        x: u16,
        /// Row.
        y: u16,
    },
    /// Exec result.
    Exec(ExecResult),
    /// A frame stream item.
    Frame(FrameUpdate),
    /// The stream with this id has ended.
    StreamEnded,
    /// A window (see [`Request::Window`]).
    Window(WindowInfo),
    /// Selection text (see [`Request::Selection`]).
    Selection {
        /// The text (UTF-8, invalid bytes replaced), at most [`MAX_SELECTION_TEXT`] bytes.
        text: String,
        /// Whether the selection held more and was cut.
        truncated: bool,
    },
    /// The request failed.
    Error {
        /// Category.
        kind: ErrorKind,
        /// Sentence-style explanation.
        message: String,
    },
    /// A file write is complete: the file is in place, with this size and SHA-256.
    Written(Digest),
    /// A read's first reply: what its bytes are (not the end of the request).
    Opened(Content),
    /// A read is complete: every byte was sent, with this size and SHA-256.
    Sent(Digest),
    /// A directory's entries.
    Listing(Listing),
    /// A file request was refused or failed; nothing was written.
    FileError(FileError),
}

/// Why a message from the peer breaks the protocol's limits (sizes a hostile peer could inflate,
/// or traffic that would only make the receiver work).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// A window's title, class or instance is too long.
    #[error("the window {field} is {len} bytes long, over the {MAX_WINDOW_TEXT}-byte limit")]
    WindowText {
        /// `title`, `class` or `instance`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A DNS notice lists too many names.
    #[error("a DNS notice lists {count} names, over the limit of {MAX_NOTICE_NAMES}")]
    NoticeNames {
        /// How many it lists.
        count: usize,
    },
    /// A DNS notice names a name that is too long.
    #[error("a DNS notice names a {len}-byte name, over the {MAX_NOTICE_NAME}-byte limit")]
    NoticeName {
        /// The name's length in bytes.
        len: usize,
    },
    /// A stream data message is too large.
    #[error("a stream data message carries {len} bytes, over the {MAX_STREAM_CHUNK}-byte limit")]
    StreamChunk {
        /// Its length in bytes.
        len: usize,
    },
    /// A stream data message is empty.
    #[error("a stream data message carries no bytes")]
    EmptyStreamData,
    /// A stream credit message grants nothing.
    #[error("a stream credit message grants no bytes")]
    ZeroCredit,
    /// A stream close reason is too long.
    #[error("a stream close reason is {len} bytes long, over the {MAX_CLOSE_REASON}-byte limit")]
    CloseReason {
        /// Its length in bytes.
        len: usize,
    },
    /// A listing holds more entries than were asked for.
    #[error("a listing holds {count} entries, over the {max} asked for")]
    ListingEntries {
        /// How many it holds.
        count: usize,
        /// How many were asked for.
        max: usize,
    },
    /// A listing names an entry with a name that is too long.
    #[error("a listing names a {len}-byte entry, over the limit")]
    EntryName {
        /// The name's length in bytes.
        len: usize,
    },
    /// A file error message is too long.
    #[error(
        "a file error message is {len} bytes long, over the {}-byte limit",
        crate::MAX_FILE_ERROR
    )]
    FileErrorMessage {
        /// Its length in bytes.
        len: usize,
    },
}

/// Why a request (an input, an exec, a window lookup) is out of range or breaks the protocol's
/// limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// The key combo is empty.
    #[error("the key combo is empty")]
    EmptyKeyCombo,
    /// The key combo is too long.
    #[error("the key combo is {len} bytes long, over the {MAX_KEY_COMBO}-byte limit")]
    KeyComboLength {
        /// Its length in bytes.
        len: usize,
    },
    /// The key combo has an empty key name (`ctrl++s`).
    #[error("the key combo {combo:?} has an empty key name")]
    EmptyKeyName {
        /// The combo.
        combo: String,
    },
    /// A key name holds characters other than letters, digits and `_`.
    #[error("the key name {key:?} in {combo:?} is not a key name (letters, digits, '_')")]
    KeyName {
        /// The key name.
        key: String,
        /// The combo it is part of.
        combo: String,
    },
    /// A point lies outside the screen.
    #[error("the point ({x}, {y}) is outside the {screen_w}x{screen_h} screen")]
    OffScreen {
        /// Column.
        x: u16,
        /// Row.
        y: u16,
        /// Screen width.
        screen_w: u16,
        /// Screen height.
        screen_h: u16,
    },
    /// A click count other than 1 to 3.
    #[error("a click count must be 1 to 3, not {count}")]
    ClickCount {
        /// The count.
        count: u8,
    },
    /// A drag path with too few or too many points.
    #[error("a drag path needs 2 to {MAX_DRAG_POINTS} points, not {points}")]
    DragPoints {
        /// How many it has.
        points: usize,
    },
    /// The text to type is too long.
    #[error("the text is {len} bytes long, over the {MAX_TYPE_TEXT}-byte limit")]
    TypeText {
        /// Its length in bytes.
        len: usize,
    },
    /// An exec without a program.
    #[error("exec needs a program name")]
    NoProgram,
    /// An exec with too many arguments.
    #[error("exec takes at most {MAX_ARGV} arguments, not {count}")]
    TooManyArguments {
        /// How many it has (the program included).
        count: usize,
    },
    /// An exec argument that is too long.
    #[error("exec argument {index} is {len} bytes long, over the {MAX_ARG_LEN}-byte limit")]
    ArgumentLength {
        /// Its position in argv (0 is the program).
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// An exec argument that holds a NUL byte.
    #[error("exec argument {index} holds a NUL byte")]
    ArgumentNul {
        /// Its position in argv (0 is the program).
        index: usize,
    },
    /// An exec timeout out of range.
    #[error("an exec timeout must be 1 to {MAX_EXEC_TIMEOUT_MS} ms, not {timeout_ms}")]
    ExecTimeout {
        /// The timeout asked for.
        timeout_ms: u32,
    },
    /// An exec output cap out of range.
    #[error("an exec output cap must be at most {MAX_EXEC_OUTPUT} bytes, not {output_cap}")]
    OutputCap {
        /// The cap asked for.
        output_cap: u32,
    },
}

/// Checks an xdotool-style key combo: `+`-separated key names of letters, digits and `_`.
pub fn validate_key_combo(combo: &str) -> Result<(), InvalidRequest> {
    if combo.is_empty() {
        return Err(InvalidRequest::EmptyKeyCombo);
    }
    if combo.len() > MAX_KEY_COMBO {
        return Err(InvalidRequest::KeyComboLength { len: combo.len() });
    }
    for part in combo.split('+') {
        if part.is_empty() {
            return Err(InvalidRequest::EmptyKeyName { combo: combo.into() });
        }
        if !part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(InvalidRequest::KeyName {
                key: part.into(),
                combo: combo.into(),
            });
        }
    }
    Ok(())
}

/// Checks an input against the screen size and the protocol's limits.
pub fn validate_input(input: &Input, screen_w: u16, screen_h: u16) -> Result<(), InvalidRequest> {
    let point = |x: u16, y: u16| validate_point(x, y, screen_w, screen_h);
    match input {
        Input::MouseMove { x, y } | Input::Scroll { x, y, .. } => point(*x, *y),
        Input::Click { x, y, count, .. } => {
            point(*x, *y)?;
            if !(1..=3).contains(count) {
                return Err(InvalidRequest::ClickCount { count: *count });
            }
            Ok(())
        }
        Input::Drag { path, .. } => {
            if path.len() < 2 || path.len() > MAX_DRAG_POINTS {
                return Err(InvalidRequest::DragPoints { points: path.len() });
            }
            path.iter().try_for_each(|(x, y)| point(*x, *y))
        }
        Input::Key { combo } | Input::KeyState { combo, .. } => validate_key_combo(combo),
        Input::Type { text } => {
            if text.len() > MAX_TYPE_TEXT {
                Err(InvalidRequest::TypeText { len: text.len() })
            } else {
                Ok(())
            }
        }
        Input::Button { .. } | Input::QueryPointer => Ok(()),
    }
}

/// Checks a window request against the screen size.
pub fn validate_window_at(
    at: Option<(u16, u16)>,
    screen_w: u16,
    screen_h: u16,
) -> Result<(), InvalidRequest> {
    match at {
        Some((x, y)) => validate_point(x, y, screen_w, screen_h),
        None => Ok(()),
    }
}

fn validate_point(x: u16, y: u16, screen_w: u16, screen_h: u16) -> Result<(), InvalidRequest> {
    if x >= screen_w || y >= screen_h {
        Err(InvalidRequest::OffScreen {
            x,
            y,
            screen_w,
            screen_h,
        })
    } else {
        Ok(())
    }
}

/// Checks an exec request against the protocol's limits (not the allowlist: that is the agent's).
pub fn validate_exec(req: &ExecRequest) -> Result<(), InvalidRequest> {
    if req.argv.is_empty() || req.argv[0].is_empty() {
        return Err(InvalidRequest::NoProgram);
    }
    if req.argv.len() > MAX_ARGV {
        return Err(InvalidRequest::TooManyArguments {
            count: req.argv.len(),
        });
    }
    for (index, a) in req.argv.iter().enumerate() {
        if a.len() > MAX_ARG_LEN {
            return Err(InvalidRequest::ArgumentLength { index, len: a.len() });
        }
        if a.contains('\0') {
            return Err(InvalidRequest::ArgumentNul { index });
        }
    }
    if req.timeout_ms == 0 || req.timeout_ms > MAX_EXEC_TIMEOUT_MS {
        return Err(InvalidRequest::ExecTimeout {
            timeout_ms: req.timeout_ms,
        });
    }
    if req.output_cap > MAX_EXEC_OUTPUT {
        return Err(InvalidRequest::OutputCap {
            output_cap: req.output_cap,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_messages_that_move_nothing_are_refused() {
        assert!(StreamMessage::Data(vec![]).validate().is_err());
        assert!(StreamMessage::Credit(0).validate().is_err());
        assert!(StreamMessage::Data(vec![0; MAX_STREAM_CHUNK]).validate().is_ok());
        assert!(StreamMessage::Data(vec![0; MAX_STREAM_CHUNK + 1])
            .validate()
            .is_err());
        assert!(StreamMessage::Credit(1).validate().is_ok());
    }

    #[test]
    fn key_combos() {
        assert!(validate_key_combo("ctrl+alt+Delete").is_ok());
        assert!(validate_key_combo("Return").is_ok());
        assert!(validate_key_combo("").is_err());
        assert!(validate_key_combo("ctrl++s").is_err());
        assert!(validate_key_combo("--help").is_err());
        assert!(validate_key_combo("a;rm").is_err());
    }

    #[test]
    fn points_outside_the_screen_are_refused() {
        assert!(validate_input(&Input::MouseMove { x: 1279, y: 799 }, 1280, 800).is_ok());
        let e = validate_input(&Input::MouseMove { x: 1280, y: 10 }, 1280, 800).unwrap_err();
        assert!(e.to_string().contains("outside the 1280x800 screen"), "{e}");
        assert!(
            matches!(e, InvalidRequest::OffScreen { x: 1280, y: 10, .. }),
            "{e:?}"
        );
        assert!(validate_input(
            &Input::Drag {
                path: vec![(1, 1)],
                button: Button::Left
            },
            1280,
            800
        )
        .is_err());
        assert!(validate_input(
            &Input::Click {
                x: 1,
                y: 1,
                button: Button::Left,
                count: 0
            },
            1280,
            800
        )
        .is_err());
    }

    #[test]
    fn exec_limits() {
        let ok = ExecRequest {
            argv: vec!["/bin/true".into()],
            stdin: vec![],
            timeout_ms: 1000,
            output_cap: 10,
        };
        assert!(validate_exec(&ok).is_ok());
        assert!(validate_exec(&ExecRequest {
            argv: vec![],
            ..ok.clone()
        })
        .is_err());
        assert!(validate_exec(&ExecRequest {
            timeout_ms: 0,
            ..ok.clone()
        })
        .is_err());
        assert!(validate_exec(&ExecRequest {
            output_cap: MAX_EXEC_OUTPUT + 1,
            ..ok
        })
        .is_err());
    }

    #[test]
    fn pixels_roundtrip_and_lies_are_caught() {
        let data = vec![7u8; 16 * 8 * 4];
        let p = Pixels::compress(0, 0, 16, 8, &data);
        assert_eq!(p.decompress().expect("ok"), data);
        let lie = Pixels {
            width: 1000,
            ..p.clone()
        };
        assert!(matches!(lie.decompress(), Err(PixelsError::Size { .. })));
        assert!(p.check_bounds(16, 8).is_ok());
        assert!(Pixels { x: 1, ..p }.check_bounds(16, 8).is_err());
    }
}
