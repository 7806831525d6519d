//! The messages viewers and the server exchange over a viewer's WebSocket.
//!
//! Binary messages, little-endian throughout:
//!
//! * server → client: video access units ([`encode_video`], tag 1, a [`VIDEO_HEADER_LEN`]-byte header) and
//!   stills ([`encode_still`], tag 2, a [`STILL_HEADER_LEN`]-byte header), each followed by its payload;
//! * client → server: operator input, one event per message with an exact length ([`parse_input`]).
//!
//! Text messages are JSON objects with a `type` field: [`ClientMessage`] (checked by [`parse_client`])
//! and [`ServerMessage`].
//!
//! Everything here is pure: bytes in, typed values out. Client input is hostile and every malformed
//! message gets an error that says what was wrong.
//!
//! ```
//! use airlock_streaming::wire::{encode_input, parse_input, OperatorInput};
//! let bytes = encode_input(&OperatorInput::Move { x: 10, y: 20 });
//! assert_eq!(bytes, [0x10, 10, 0, 20, 0]);
//! assert_eq!(parse_input(&bytes, 1280, 800).unwrap(), OperatorInput::Move { x: 10, y: 20 });
//! ```

use airlock_protocol::{Button, Input};
use serde::{Deserialize, Serialize};

use crate::{Codec, Rect};

/// Tag of a video access unit.
pub const TAG_VIDEO: u8 = 1;
/// Tag of a still image.
pub const TAG_STILL: u8 = 2;
/// Bytes before the payload of a video message.
pub const VIDEO_HEADER_LEN: usize = 24;
/// Bytes before the image of a still message.
pub const STILL_HEADER_LEN: usize = 32;

/// Input tag: pointer move.
pub const TAG_MOVE: u8 = 0x10;
/// Input tag: button press or release.
pub const TAG_BUTTON: u8 = 0x11;
/// Input tag: wheel.
pub const TAG_WHEEL: u8 = 0x12;
/// Input tag: key press or release.
pub const TAG_KEY: u8 = 0x13;
/// Input tag: release every held key and button.
pub const TAG_RELEASE_ALL: u8 = 0x14;

/// Largest keysym accepted (X11 keysyms are 29-bit).
pub const MAX_KEYSYM: u32 = 0x1FFF_FFFF;
/// Longest text message a client may send, in bytes.
pub const MAX_CLIENT_TEXT: usize = 96 * 1024;
/// Longest SDP offer, in bytes.
pub const MAX_SDP: usize = 64 * 1024;
/// Longest handback note, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;
/// Most codecs a hello may list.
pub const MAX_HELLO_CODECS: usize = 4;

const FLAG_KEYFRAME: u8 = 1;

/// Why a binary or text message was refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The message is shorter than its header.
    #[error("a {kind} message needs at least {want} bytes, got {got}")]
    TooShort {
        /// Which message.
        kind: &'static str,
        /// Least length.
        want: usize,
        /// Actual length.
        got: usize,
    },
    /// The first byte is not the expected tag.
    #[error("a {kind} message starts with tag {want}, got {got}")]
    WrongTag {
        /// Which message.
        kind: &'static str,
        /// The expected tag.
        want: u8,
        /// The tag found.
        got: u8,
    },
    /// The codec byte is unknown.
    #[error("unknown codec {0} (1 is H.264, 2 is VP8)")]
    UnknownCodec(u8),
    /// Flag bits are set that have no meaning.
    #[error("unknown flag bits 0x{0:02x}")]
    UnknownFlags(u8),
    /// A reserved byte is not zero.
    #[error("the reserved byte is 0x{0:02x}, not 0")]
    Reserved(u8),
    /// The still purpose byte is unknown.
    #[error("unknown still purpose {0} (1 thumbnail, 2 step still, 3 stills-mode frame)")]
    UnknownPurpose(u8),
    /// The still format byte is unknown.
    #[error("unknown still format {0} (1 WebP, 2 PNG)")]
    UnknownFormat(u8),
    /// A still's region is empty or outside its screen.
    #[error(
        "the still's region {x},{y} {width}x{height} is empty or outside the {screen_w}x{screen_h} screen"
    )]
    BadRegion {
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
    /// A message has no payload after its header.
    #[error("the {kind} message has no payload")]
    EmptyPayload {
        /// Which message.
        kind: &'static str,
    },
    /// A text message is longer than [`MAX_CLIENT_TEXT`].
    #[error("the text message is {len} bytes long, over the {max}-byte limit")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text message is not a valid JSON message.
    #[error("the text message is not a valid message: {0}")]
    Json(#[source] serde_json::Error),
    /// The SDP offer is empty.
    #[error("the SDP offer is empty")]
    EmptySdp,
    /// The SDP offer is longer than [`MAX_SDP`].
    #[error("the SDP offer is {len} bytes long, over the {max}-byte limit")]
    SdpTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The handback note is longer than [`MAX_NOTE_CHARS`].
    #[error("the handback note is {chars} characters long, over the {max}-character limit")]
    NoteTooLong {
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// A hello lists no codec for a video transport, or too many.
    #[error("a hello must list 1 to {max} codecs (none only with transport \"none\"), not {count}")]
    CodecCount {
        /// Codecs listed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A statistic is out of its range.
    #[error("the statistic {field} is {value}, it must be {range}")]
    BadStat {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What it must be.
        range: &'static str,
    },
}

/// Why an operator input message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The message has no bytes.
    #[error("the input message is empty")]
    Empty,
    /// The tag is not an input tag.
    #[error("unknown input message tag 0x{0:02x}")]
    UnknownTag(u8),
    /// The message has the wrong length for its tag.
    #[error("a {kind} message is {want} bytes, got {got}")]
    WrongLength {
        /// Which message.
        kind: &'static str,
        /// Its length.
        want: usize,
        /// The length received.
        got: usize,
    },
    /// The point lies outside the screen.
    #[error("the point ({x}, {y}) is outside the {screen_w}x{screen_h} screen")]
    OutsideScreen {
        /// Column.
        x: u16,
        /// Row.
        y: u16,
        /// Screen width.
        screen_w: u16,
        /// Screen height.
        screen_h: u16,
    },
    /// The button number is unknown.
    #[error("button {0} is not 0 (left), 1 (middle), 2 (right), 3 (back) or 4 (forward)")]
    BadButton(u8),
    /// The down flag is neither 0 nor 1.
    #[error("the down flag must be 0 or 1, not {0}")]
    BadDown(u8),
    /// The keysym is 0 or past [`MAX_KEYSYM`].
    #[error("0x{0:x} is not an X11 keysym (1 to 0x1fffffff)")]
    BadKeysym(u32),
    /// A wheel message that scrolls nowhere.
    #[error("a wheel message must scroll: dx and dy are both 0")]
    NoScroll,
}

/// What a video access unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoHeader {
    /// Codec of the payload (H.264 Annex B or VP8).
    pub codec: Codec,
    /// The payload decodes on its own.
    pub keyframe: bool,
    /// Coded width.
    pub width: u16,
    /// Coded height.
    pub height: u16,
    /// Mirror frame number of the picture.
    pub frame: u64,
    /// Capture time, Unix microseconds.
    pub captured_us: u64,
}

/// Why a still is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StillPurpose {
    /// A small picture of the whole screen for lists and grids (wire value 1).
    Thumbnail,
    /// The screen as an agent step left it (wire value 2).
    StepStill,
    /// A changed region in stills mode (wire value 3).
    StillsFrame,
    /// Exact pixels of a region that stopped changing, drawn on the refinement layer above the
    /// video (wire value 4; see [`crate::refine`]).
    Refine,
}

impl StillPurpose {
    fn to_byte(self) -> u8 {
        match self {
            StillPurpose::Thumbnail => 1,
            StillPurpose::StepStill => 2,
            StillPurpose::StillsFrame => 3,
            StillPurpose::Refine => 4,
        }
    }

    fn from_byte(byte: u8) -> Result<StillPurpose, WireError> {
        match byte {
            1 => Ok(StillPurpose::Thumbnail),
            2 => Ok(StillPurpose::StepStill),
            3 => Ok(StillPurpose::StillsFrame),
            4 => Ok(StillPurpose::Refine),
            other => Err(WireError::UnknownPurpose(other)),
        }
    }
}

/// Image format of a still.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StillFormat {
    /// Lossless WebP (wire value 1).
    Webp,
    /// PNG (wire value 2).
    Png,
}

impl StillFormat {
    /// The MIME type: `image/webp` or `image/png`.
    pub fn mime(self) -> &'static str {
        match self {
            StillFormat::Webp => "image/webp",
            StillFormat::Png => "image/png",
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            StillFormat::Webp => 1,
            StillFormat::Png => 2,
        }
    }

    fn from_byte(byte: u8) -> Result<StillFormat, WireError> {
        match byte {
            1 => Ok(StillFormat::Webp),
            2 => Ok(StillFormat::Png),
            other => Err(WireError::UnknownFormat(other)),
        }
    }
}

/// What a still image shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StillHeader {
    /// Why it is sent.
    pub purpose: StillPurpose,
    /// Its image format.
    pub format: StillFormat,
    /// The agent step it belongs to, 0 for none.
    pub step: u64,
    /// Mirror frame number of the picture.
    pub frame: u64,
    /// The screen region the image shows, in screen pixels (the image may be smaller: scaled down).
    pub rect: Rect,
    /// Screen width.
    pub screen_w: u16,
    /// Screen height.
    pub screen_h: u16,
}

fn codec_byte(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => 1,
        Codec::Vp8 => 2,
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn check_header(bytes: &[u8], kind: &'static str, tag: u8, len: usize) -> Result<(), WireError> {
    if bytes.len() < len {
        return Err(WireError::TooShort {
            kind,
            want: len,
            got: bytes.len(),
        });
    }
    if bytes[0] != tag {
        return Err(WireError::WrongTag {
            kind,
            want: tag,
            got: bytes[0],
        });
    }
    if bytes[3] != 0 {
        return Err(WireError::Reserved(bytes[3]));
    }
    Ok(())
}

/// A video message: the header, then the access unit.
pub fn encode_video(header: &VideoHeader, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VIDEO_HEADER_LEN + payload.len());
    out.push(TAG_VIDEO);
    out.push(codec_byte(header.codec));
    out.push(if header.keyframe { FLAG_KEYFRAME } else { 0 });
    out.push(0);
    out.extend_from_slice(&header.width.to_le_bytes());
    out.extend_from_slice(&header.height.to_le_bytes());
    out.extend_from_slice(&header.frame.to_le_bytes());
    out.extend_from_slice(&header.captured_us.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads a video message into its header and access unit.
pub fn parse_video(bytes: &[u8]) -> Result<(VideoHeader, &[u8]), WireError> {
    check_header(bytes, "video", TAG_VIDEO, VIDEO_HEADER_LEN)?;
    let codec = match bytes[1] {
        1 => Codec::H264,
        2 => Codec::Vp8,
        other => return Err(WireError::UnknownCodec(other)),
    };
    if bytes[2] & !FLAG_KEYFRAME != 0 {
        return Err(WireError::UnknownFlags(bytes[2] & !FLAG_KEYFRAME));
    }
    let payload = &bytes[VIDEO_HEADER_LEN..];
    if payload.is_empty() {
        return Err(WireError::EmptyPayload { kind: "video" });
    }
    let header = VideoHeader {
        codec,
        keyframe: bytes[2] & FLAG_KEYFRAME != 0,
        width: u16_at(bytes, 4),
        height: u16_at(bytes, 6),
        frame: u64_at(bytes, 8),
        captured_us: u64_at(bytes, 16),
    };
    Ok((header, payload))
}

/// A still message: the header, then the image.
pub fn encode_still(header: &StillHeader, image: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(STILL_HEADER_LEN + image.len());
    out.push(TAG_STILL);
    out.push(header.purpose.to_byte());
    out.push(header.format.to_byte());
    out.push(0);
    out.extend_from_slice(&header.step.to_le_bytes());
    out.extend_from_slice(&header.frame.to_le_bytes());
    for v in [
        header.rect.x,
        header.rect.y,
        header.rect.width,
        header.rect.height,
        header.screen_w,
        header.screen_h,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(image);
    out
}

/// Reads a still message into its header and image.
pub fn parse_still(bytes: &[u8]) -> Result<(StillHeader, &[u8]), WireError> {
    check_header(bytes, "still", TAG_STILL, STILL_HEADER_LEN)?;
    let purpose = StillPurpose::from_byte(bytes[1])?;
    let format = StillFormat::from_byte(bytes[2])?;
    let rect = Rect {
        x: u16_at(bytes, 20),
        y: u16_at(bytes, 22),
        width: u16_at(bytes, 24),
        height: u16_at(bytes, 26),
    };
    let (screen_w, screen_h) = (u16_at(bytes, 28), u16_at(bytes, 30));
    let inside = u32::from(rect.x) + u32::from(rect.width) <= u32::from(screen_w)
        && u32::from(rect.y) + u32::from(rect.height) <= u32::from(screen_h);
    if rect.area() == 0 || !inside {
        return Err(WireError::BadRegion {
            x: rect.x,
            y: rect.y,
            width: rect.width,
            height: rect.height,
            screen_w,
            screen_h,
        });
    }
    let image = &bytes[STILL_HEADER_LEN..];
    if image.is_empty() {
        return Err(WireError::EmptyPayload { kind: "still" });
    }
    let header = StillHeader {
        purpose,
        format,
        step: u64_at(bytes, 4),
        frame: u64_at(bytes, 12),
        rect,
        screen_w,
        screen_h,
    };
    Ok((header, image))
}

/// One operator input event from a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorInput {
    /// Move the pointer.
    Move {
        /// Column.
        x: u16,
        /// Row.
        y: u16,
    },
    /// Press or release a button at a point.
    Button {
        /// Which button.
        button: Button,
        /// Press (`true`) or release.
        down: bool,
        /// Column.
        x: u16,
        /// Row.
        y: u16,
    },
    /// Turn the wheel at a point, in clicks: positive `dy` scrolls down, positive `dx` right.
    Wheel {
        /// Horizontal clicks.
        dx: i8,
        /// Vertical clicks.
        dy: i8,
        /// Column.
        x: u16,
        /// Row.
        y: u16,
    },
    /// Press or release a key.
    Key {
        /// Press (`true`) or release.
        down: bool,
        /// X11 keysym.
        keysym: u32,
    },
    /// Release every key and button the operator holds.
    ReleaseAll,
}

impl OperatorInput {
    /// The guest inputs that carry this event out. [`OperatorInput::ReleaseAll`] gives none: the caller
    /// knows what is held and releases it.
    pub fn to_guest(&self) -> Vec<Input> {
        match *self {
            OperatorInput::Move { x, y } => vec![Input::MouseMove { x, y }],
            OperatorInput::Button { button, down, x, y } => {
                vec![Input::MouseMove { x, y }, Input::Button { button, down }]
            }
            OperatorInput::Wheel { dx, dy, x, y } => vec![Input::Scroll {
                x,
                y,
                dx: i16::from(dx),
                dy: i16::from(dy),
            }],
            OperatorInput::Key { down, keysym } => vec![Input::KeyState {
                combo: keysym_name(keysym),
                down,
            }],
            OperatorInput::ReleaseAll => Vec::new(),
        }
    }
}

/// The key name the guest's xdotool understands for a keysym: ASCII letters and digits as themselves
/// (`a`, `Z`, `7`), everything else as lowercase hex (`0xff0d`), which libX11's `XStringToKeysym` reads.
pub fn keysym_name(keysym: u32) -> String {
    match char::from_u32(keysym) {
        Some(c) if c.is_ascii_alphanumeric() => c.to_string(),
        _ => format!("{keysym:#x}"),
    }
}

fn button_byte(button: Button) -> u8 {
    match button {
        Button::Left => 0,
        Button::Middle => 1,
        Button::Right => 2,
        Button::Back => 3,
        Button::Forward => 4,
    }
}

/// An input message, as a client sends it.
pub fn encode_input(input: &OperatorInput) -> Vec<u8> {
    let mut out = Vec::with_capacity(7);
    match *input {
        OperatorInput::Move { x, y } => {
            out.push(TAG_MOVE);
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
        }
        OperatorInput::Button { button, down, x, y } => {
            out.extend_from_slice(&[TAG_BUTTON, button_byte(button), u8::from(down)]);
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
        }
        OperatorInput::Wheel { dx, dy, x, y } => {
            out.extend_from_slice(&[TAG_WHEEL, dx.to_le_bytes()[0], dy.to_le_bytes()[0]]);
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
        }
        OperatorInput::Key { down, keysym } => {
            out.extend_from_slice(&[TAG_KEY, u8::from(down)]);
            out.extend_from_slice(&keysym.to_le_bytes());
        }
        OperatorInput::ReleaseAll => out.push(TAG_RELEASE_ALL),
    }
    out
}

/// Reads and checks one input message from a viewer of a `screen_w` x `screen_h` screen.
///
/// Buttons are numbered as in the DOM's `MouseEvent.button`: 0 left, 1 middle, 2 right, 3 back,
/// 4 forward.
pub fn parse_input(bytes: &[u8], screen_w: u16, screen_h: u16) -> Result<OperatorInput, InputError> {
    let Some(&tag) = bytes.first() else {
        return Err(InputError::Empty);
    };
    let (kind, want) = match tag {
        TAG_MOVE => ("pointer move", 5),
        TAG_BUTTON => ("button", 7),
        TAG_WHEEL => ("wheel", 7),
        TAG_KEY => ("key", 6),
        TAG_RELEASE_ALL => ("release-all", 1),
        other => return Err(InputError::UnknownTag(other)),
    };
    if bytes.len() != want {
        return Err(InputError::WrongLength {
            kind,
            want,
            got: bytes.len(),
        });
    }
    let point = |at: usize| {
        let (x, y) = (u16_at(bytes, at), u16_at(bytes, at + 2));
        if x >= screen_w || y >= screen_h {
            Err(InputError::OutsideScreen {
                x,
                y,
                screen_w,
                screen_h,
            })
        } else {
            Ok((x, y))
        }
    };
    let down = |byte: u8| match byte {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(InputError::BadDown(other)),
    };
    match tag {
        TAG_MOVE => {
            let (x, y) = point(1)?;
            Ok(OperatorInput::Move { x, y })
        }
        TAG_BUTTON => {
            let button = match bytes[1] {
                0 => Button::Left,
                1 => Button::Middle,
                2 => Button::Right,
                3 => Button::Back,
                4 => Button::Forward,
                other => return Err(InputError::BadButton(other)),
            };
            let down = down(bytes[2])?;
            let (x, y) = point(3)?;
            Ok(OperatorInput::Button { button, down, x, y })
        }
        TAG_WHEEL => {
            let dx = i8::from_le_bytes([bytes[1]]);
            let dy = i8::from_le_bytes([bytes[2]]);
            if dx == 0 && dy == 0 {
                return Err(InputError::NoScroll);
            }
            let (x, y) = point(3)?;
            Ok(OperatorInput::Wheel { dx, dy, x, y })
        }
        TAG_KEY => {
            let down = down(bytes[1])?;
            let keysym = u32_at(bytes, 2);
            if keysym == 0 || keysym > MAX_KEYSYM {
                return Err(InputError::BadKeysym(keysym));
            }
            Ok(OperatorInput::Key { down, keysym })
        }
        _ => Ok(OperatorInput::ReleaseAll),
    }
}

pub use airlock_domain::TransportKind;

/// One line of the command view: what happened in the sandbox, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Its number in this sandbox's command view (a step sent again with the same number replaces
    /// the first).
    pub seq: u64,
    /// When (Unix ms).
    pub at_ms: u64,
    /// What kind of step.
    pub kind: StepKind,
    /// The step in words.
    pub title: String,
    /// Who: the agent, `agent`, `operator:NAME`, or an operator's name.
    pub actor: Option<String>,
    /// How it was decided or how it ended.
    pub decision: Option<StepDecision>,
    /// Why, or more detail.
    pub detail: Option<String>,
    /// The region of the screen its still shows, when one is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub still: Option<StillRegion>,
}

/// What a [`Step`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The policy decided on an agent's action.
    Decision,
    /// An action ran.
    Executed,
    /// An action was refused.
    Refused,
    /// An operator is asked to approve.
    Approval,
    /// An approval ended.
    ApprovalResolved,
    /// An operator granted a kind of action ahead.
    Grant,
    /// Control moved.
    Control,
    /// The sandbox appeared, went away or was lost.
    Lifecycle,
}

/// How a [`Step`] was decided or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum StepDecision {
    /// The policy allowed it.
    Allow,
    /// The policy asks an operator.
    Ask,
    /// The policy denied it.
    Deny,
    /// Shadow mode let through what the policy denies.
    ShadowDenied,
    /// It ran.
    Done,
    /// It failed in the sandbox.
    Failed,
    /// It was refused.
    Refused,
    /// An operator approved it.
    Approved,
    /// An operator approved an edited action.
    Edited,
    /// An operator denied it.
    Denied,
    /// Nobody decided in time.
    Expired,
    /// Still waiting.
    Pending,
}

/// The region a step's still shows, in screen pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct StillRegion {
    /// Left edge.
    pub x: u16,
    /// Top edge.
    pub y: u16,
    /// Width.
    pub w: u16,
    /// Height.
    pub h: u16,
}

/// What a viewer is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum ViewMode {
    /// The agent's commands and step stills only (`"command"`).
    Command,
    /// Stills of changed regions (`"stills"`).
    Stills,
    /// Live video (`"video"`).
    Video,
}

/// A text message from a viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message: what the viewer can do.
    Hello {
        /// How it wants video.
        transport: TransportKind,
        /// Codecs it decodes, preferred first.
        codecs: Vec<Codec>,
        /// Whether its window has the focus.
        focused: bool,
        /// A WebRTC viewer that can also decode video sent on this socket (WebCodecs): the server
        /// may move its video here while it controls the sandbox on a short, clean network.
        #[serde(default)]
        socket_video: bool,
    },
    /// The viewer gained or lost the focus.
    Focus {
        /// Whether it has it now.
        focused: bool,
    },
    /// The viewer has shown this frame.
    Ack {
        /// Mirror frame number.
        frame: u64,
    },
    /// The viewer's decoder needs a keyframe.
    Keyframe,
    /// A WebRTC offer.
    Offer {
        /// Session description.
        sdp: String,
    },
    /// The operator takes control from the agent.
    Takeover,
    /// The operator hands control back.
    Handback {
        /// What the operator did, for the agent.
        #[serde(default)]
        note: Option<String>,
    },
    /// Receiver statistics.
    Stats {
        /// Round-trip time, milliseconds.
        #[serde(default)]
        rtt_ms: Option<f64>,
        /// Fraction of packets lost, 0 to 1.
        #[serde(default)]
        loss: Option<f64>,
        /// Estimated available bandwidth, kbit/s.
        #[serde(default)]
        bandwidth_kbps: Option<f64>,
        /// Frames decoded so far.
        #[serde(default)]
        frames_decoded: Option<u64>,
    },
}

/// Reads and checks a text message from a viewer.
pub fn parse_client(text: &str) -> Result<ClientMessage, WireError> {
    if text.len() > MAX_CLIENT_TEXT {
        return Err(WireError::TooLong {
            len: text.len(),
            max: MAX_CLIENT_TEXT,
        });
    }
    let msg: ClientMessage = serde_json::from_str(text).map_err(WireError::Json)?;
    match &msg {
        ClientMessage::Hello {
            codecs, transport, ..
        } => {
            // A viewer without video (transport `none`) decodes no codec.
            let min = usize::from(*transport != TransportKind::None);
            if codecs.len() < min || codecs.len() > MAX_HELLO_CODECS {
                return Err(WireError::CodecCount {
                    count: codecs.len(),
                    max: MAX_HELLO_CODECS,
                });
            }
        }
        ClientMessage::Offer { sdp } => {
            if sdp.is_empty() {
                return Err(WireError::EmptySdp);
            }
            if sdp.len() > MAX_SDP {
                return Err(WireError::SdpTooLong {
                    len: sdp.len(),
                    max: MAX_SDP,
                });
            }
        }
        ClientMessage::Handback { note: Some(note) } => {
            let chars = note.chars().count();
            if chars > MAX_NOTE_CHARS {
                return Err(WireError::NoteTooLong {
                    chars,
                    max: MAX_NOTE_CHARS,
                });
            }
        }
        ClientMessage::Stats {
            rtt_ms,
            loss,
            bandwidth_kbps,
            frames_decoded: _,
        } => {
            check_stat("rtt_ms", *rtt_ms, None)?;
            check_stat("loss", *loss, Some(1.0))?;
            check_stat("bandwidth_kbps", *bandwidth_kbps, None)?;
        }
        ClientMessage::Keyframe | ClientMessage::Takeover => {
            // serde's `deny_unknown_fields` does not reach the unit variants of an internally tagged
            // enum: check that `type` is the only field.
            serde_json::from_str::<TypeOnly>(text).map_err(WireError::Json)?;
        }
        ClientMessage::Handback { note: None } | ClientMessage::Focus { .. } | ClientMessage::Ack { .. } => {}
    }
    Ok(msg)
}

/// A message with no field but its type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeOnly {
    #[serde(rename = "type")]
    _kind: String,
}

fn check_stat(field: &'static str, value: Option<f64>, max: Option<f64>) -> Result<(), WireError> {
    let Some(value) = value else {
        return Ok(());
    };
    let (ok, range) = match max {
        Some(max) => (
            value.is_finite() && (0.0..=max).contains(&value),
            "a number from 0 to 1",
        ),
        None => (value.is_finite() && value >= 0.0, "a finite number, 0 or more"),
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::BadStat { field, value, range })
    }
}

/// A text message to a viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMessage {
    /// Answer to hello.
    Welcome {
        /// This viewer's id.
        viewer: u64,
        /// The sandbox shown.
        sandbox: String,
        /// The operator the viewer is signed in as.
        operator: String,
        /// Screen width.
        width: u16,
        /// Screen height.
        height: u16,
    },
    /// What the viewer is shown from now on, and why.
    Mode {
        /// The view.
        mode: ViewMode,
        /// Video codec, in video mode.
        codec: Option<Codec>,
        /// Target frames per second.
        fps: u32,
        /// Target bitrate.
        bitrate_kbps: u32,
        /// Why, for the operator.
        reason: String,
    },
    /// The WebRTC answer.
    Answer {
        /// Session description.
        sdp: String,
    },
    /// Who controls the sandbox.
    Lease {
        /// `"agent"`, `"human"` or `"paused"`.
        holder: String,
        /// The operator holding it, if a human does.
        operator: Option<String>,
        /// Lease epoch, increasing with every change.
        epoch: u64,
        /// Whether this viewer's operator holds it.
        you_control: bool,
    },
    /// An agent step happened.
    Step {
        /// The step, as the supervisor describes it.
        step: Step,
    },
    /// Operator input was accepted or refused.
    Input {
        /// Whether it went through.
        accepted: bool,
        /// Why not, or empty.
        reason: String,
    },
    /// These regions changed: clear them from the refinement layer (the video shows them until
    /// they rest and come back exact as `Refine` stills). Comes before the stills and video that
    /// follow it on the socket.
    Damage {
        /// The changed regions.
        rects: Vec<crate::Rect>,
    },
    /// Something failed.
    Error {
        /// Stable machine-readable code.
        code: String,
        /// Sentence for the operator.
        message: String,
    },
}

impl ServerMessage {
    /// The message as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: no maps with non-string keys, no failing Serialize impls.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"type":"error","code":"internal","message":{}}}"#,
                serde_json::Value::String(format!("a message could not be encoded: {e}"))
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use airlock_protocol::validate_key_combo;

    use super::*;

    fn video_header() -> VideoHeader {
        VideoHeader {
            codec: Codec::Vp8,
            keyframe: true,
            width: 1280,
            height: 800,
            frame: 0x0102_0304_0506_0708,
            captured_us: 1_700_000_000_000_000,
        }
    }

    fn still_header() -> StillHeader {
        StillHeader {
            purpose: StillPurpose::StillsFrame,
            format: StillFormat::Png,
            step: 42,
            frame: 7,
            rect: Rect {
                x: 10,
                y: 20,
                width: 300,
                height: 200,
            },
            screen_w: 1280,
            screen_h: 800,
        }
    }

    #[test]
    fn video_round_trip_and_layout() {
        let h = video_header();
        let bytes = encode_video(&h, b"\x00\x00\x00\x01pay");
        assert_eq!(bytes.len(), VIDEO_HEADER_LEN + 7);
        assert_eq!(&bytes[..8], &[1, 2, 1, 0, 0x00, 0x05, 0x20, 0x03]);
        assert_eq!(&bytes[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        let (back, payload) = parse_video(&bytes).expect("parse");
        assert_eq!(back, h);
        assert_eq!(payload, b"\x00\x00\x00\x01pay");
        let delta = VideoHeader {
            codec: Codec::H264,
            keyframe: false,
            ..h
        };
        let bytes = encode_video(&delta, b"x");
        assert_eq!(&bytes[..3], &[1, 1, 0]);
        assert_eq!(parse_video(&bytes).expect("parse").0, delta);
    }

    #[test]
    fn malformed_video_is_refused() {
        let good = encode_video(&video_header(), b"payload");
        assert!(matches!(
            parse_video(&good[..10]),
            Err(WireError::TooShort {
                want: 24,
                got: 10,
                ..
            })
        ));
        assert!(matches!(
            parse_video(&[]),
            Err(WireError::TooShort { got: 0, .. })
        ));
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            b
        };
        assert!(matches!(
            parse_video(&with(0, 2)),
            Err(WireError::WrongTag { want: 1, got: 2, .. })
        ));
        assert!(matches!(
            parse_video(&with(1, 3)),
            Err(WireError::UnknownCodec(3))
        ));
        assert!(matches!(
            parse_video(&with(2, 0x81)),
            Err(WireError::UnknownFlags(0x80))
        ));
        assert!(matches!(parse_video(&with(3, 9)), Err(WireError::Reserved(9))));
        assert!(matches!(
            parse_video(&good[..VIDEO_HEADER_LEN]),
            Err(WireError::EmptyPayload { .. })
        ));
        let e = parse_video(&good[..3]).expect_err("short");
        assert_eq!(e.to_string(), "a video message needs at least 24 bytes, got 3");
    }

    #[test]
    fn still_round_trip_and_layout() {
        let h = still_header();
        let bytes = encode_still(&h, b"image");
        assert_eq!(bytes.len(), STILL_HEADER_LEN + 5);
        assert_eq!(&bytes[..4], &[2, 3, 2, 0]);
        assert_eq!(&bytes[4..12], &42u64.to_le_bytes());
        assert_eq!(&bytes[12..20], &7u64.to_le_bytes());
        assert_eq!(&bytes[20..24], &[10, 0, 20, 0]);
        assert_eq!(&bytes[28..32], &[0x00, 0x05, 0x20, 0x03]);
        let (back, image) = parse_still(&bytes).expect("parse");
        assert_eq!(back, h);
        assert_eq!(image, b"image");
        for (purpose, byte) in [
            (StillPurpose::Thumbnail, 1),
            (StillPurpose::StepStill, 2),
            (StillPurpose::StillsFrame, 3),
        ] {
            let h = StillHeader {
                purpose,
                format: StillFormat::Webp,
                step: 0,
                ..still_header()
            };
            let bytes = encode_still(&h, b"i");
            assert_eq!(&bytes[1..3], &[byte, 1]);
            assert_eq!(parse_still(&bytes).expect("parse").0, h);
        }
    }

    #[test]
    fn malformed_stills_are_refused() {
        let good = encode_still(&still_header(), b"image");
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            b
        };
        assert!(matches!(
            parse_still(&good[..31]),
            Err(WireError::TooShort { want: 32, .. })
        ));
        assert!(matches!(
            parse_still(&with(0, 1)),
            Err(WireError::WrongTag { want: 2, .. })
        ));
        assert!(matches!(
            parse_still(&with(1, 0)),
            Err(WireError::UnknownPurpose(0))
        ));
        assert!(matches!(
            parse_still(&with(2, 3)),
            Err(WireError::UnknownFormat(3))
        ));
        assert!(matches!(parse_still(&with(3, 1)), Err(WireError::Reserved(1))));
        // Width 0, and a region past the screen's right edge.
        let h = still_header();
        let zero_width = StillHeader {
            rect: Rect { width: 0, ..h.rect },
            ..h
        };
        assert!(matches!(
            parse_still(&encode_still(&zero_width, b"i")),
            Err(WireError::BadRegion { width: 0, .. })
        ));
        assert!(matches!(
            parse_still(&with(21, 0xff)),
            Err(WireError::BadRegion { .. })
        ));
        assert!(matches!(
            parse_still(&good[..STILL_HEADER_LEN]),
            Err(WireError::EmptyPayload { .. })
        ));
    }

    #[test]
    fn input_round_trips() {
        let all = [
            OperatorInput::Move { x: 0, y: 799 },
            OperatorInput::Button {
                button: Button::Left,
                down: true,
                x: 1279,
                y: 0,
            },
            OperatorInput::Button {
                button: Button::Right,
                down: false,
                x: 5,
                y: 6,
            },
            OperatorInput::Button {
                button: Button::Forward,
                down: true,
                x: 5,
                y: 6,
            },
            OperatorInput::Wheel {
                dx: 0,
                dy: -3,
                x: 100,
                y: 200,
            },
            OperatorInput::Wheel {
                dx: 127,
                dy: -128,
                x: 1,
                y: 2,
            },
            OperatorInput::Key {
                down: true,
                keysym: 0xff0d,
            },
            OperatorInput::Key {
                down: false,
                keysym: MAX_KEYSYM,
            },
            OperatorInput::ReleaseAll,
        ];
        for input in all {
            let bytes = encode_input(&input);
            assert_eq!(parse_input(&bytes, 1280, 800), Ok(input), "{bytes:?}");
        }
        assert_eq!(encode_input(&OperatorInput::ReleaseAll), [0x14]);
        assert_eq!(
            encode_input(&OperatorInput::Key {
                down: true,
                keysym: 0x61
            }),
            [0x13, 1, 0x61, 0, 0, 0]
        );
        assert_eq!(
            encode_input(&OperatorInput::Wheel {
                dx: -1,
                dy: 2,
                x: 3,
                y: 4
            }),
            [0x12, 0xff, 2, 3, 0, 4, 0]
        );
    }

    #[test]
    fn malformed_input_is_refused() {
        let p = |b: &[u8]| parse_input(b, 1280, 800);
        assert_eq!(p(&[]), Err(InputError::Empty));
        assert_eq!(p(&[0x15]), Err(InputError::UnknownTag(0x15)));
        assert_eq!(p(&[0x00, 1, 2]), Err(InputError::UnknownTag(0)));
        let e = p(&[0x13, 1, 0, 0, 0, 0, 0, 0, 0]).expect_err("long");
        assert_eq!(e.to_string(), "a key message is 6 bytes, got 9");
        assert!(matches!(
            p(&[0x10, 1, 0, 1]),
            Err(InputError::WrongLength { want: 5, got: 4, .. })
        ));
        assert!(matches!(
            p(&[0x14, 0]),
            Err(InputError::WrongLength { want: 1, got: 2, .. })
        ));
        assert!(matches!(
            p(&[0x11, 0, 1, 0, 0]),
            Err(InputError::WrongLength { want: 7, .. })
        ));
        assert!(matches!(
            p(&[0x12, 1, 1]),
            Err(InputError::WrongLength { want: 7, .. })
        ));
        // x = 1280 is one past the right edge.
        let e = p(&[0x10, 0x00, 0x05, 0, 0]).expect_err("outside");
        assert_eq!(
            e.to_string(),
            "the point (1280, 0) is outside the 1280x800 screen"
        );
        assert!(matches!(
            p(&[0x11, 0, 1, 0, 0, 0x20, 0x03]),
            Err(InputError::OutsideScreen { y: 800, .. })
        ));
        assert!(matches!(
            p(&[0x12, 0, 1, 0xff, 0xff, 0, 0]),
            Err(InputError::OutsideScreen { .. })
        ));
        assert_eq!(p(&[0x11, 5, 1, 0, 0, 0, 0]), Err(InputError::BadButton(5)));
        assert_eq!(p(&[0x11, 0, 2, 0, 0, 0, 0]), Err(InputError::BadDown(2)));
        assert_eq!(p(&[0x13, 7, 0x61, 0, 0, 0]), Err(InputError::BadDown(7)));
        assert_eq!(p(&[0x13, 1, 0, 0, 0, 0]), Err(InputError::BadKeysym(0)));
        assert_eq!(
            p(&[0x13, 1, 0, 0, 0, 0x20]),
            Err(InputError::BadKeysym(0x2000_0000))
        );
        assert_eq!(p(&[0x12, 0, 0, 1, 0, 1, 0]), Err(InputError::NoScroll));
    }

    #[test]
    fn input_maps_to_guest_input() {
        assert_eq!(
            OperatorInput::Move { x: 3, y: 4 }.to_guest(),
            vec![Input::MouseMove { x: 3, y: 4 }]
        );
        assert_eq!(
            OperatorInput::Button {
                button: Button::Middle,
                down: true,
                x: 3,
                y: 4
            }
            .to_guest(),
            vec![
                Input::MouseMove { x: 3, y: 4 },
                Input::Button {
                    button: Button::Middle,
                    down: true
                }
            ]
        );
        assert_eq!(
            OperatorInput::Wheel {
                dx: -2,
                dy: 5,
                x: 3,
                y: 4
            }
            .to_guest(),
            vec![Input::Scroll {
                x: 3,
                y: 4,
                dx: -2,
                dy: 5
            }]
        );
        assert_eq!(
            OperatorInput::Key {
                down: false,
                keysym: 0xff0d
            }
            .to_guest(),
            vec![Input::KeyState {
                combo: "0xff0d".into(),
                down: false
            }]
        );
        assert!(OperatorInput::ReleaseAll.to_guest().is_empty());
        for input in [
            OperatorInput::Move { x: 1279, y: 799 },
            OperatorInput::Key {
                down: true,
                keysym: MAX_KEYSYM,
            },
        ] {
            for guest in input.to_guest() {
                airlock_protocol::validate_input(&guest, 1280, 800).expect("valid guest input");
            }
        }
    }

    #[test]
    fn keysym_names() {
        assert_eq!(keysym_name(0x61), "a");
        assert_eq!(keysym_name(0x5a), "Z");
        assert_eq!(keysym_name(0x37), "7");
        assert_eq!(keysym_name(0xff0d), "0xff0d");
        assert_eq!(keysym_name(0x20), "0x20");
        assert_eq!(keysym_name(0x2b), "0x2b"); // '+' would split a combo.
        assert_eq!(keysym_name(0xe9), "0xe9"); // é is not ASCII.
        assert_eq!(keysym_name(0x100_20ac), "0x10020ac");
        let mut k: u32 = 1;
        while k <= MAX_KEYSYM {
            let name = keysym_name(k);
            validate_key_combo(&name).unwrap_or_else(|e| panic!("keysym {k:#x}: {e}"));
            k = if k < 0x1_0000 { k + 1 } else { k * 3 + 7 };
        }
        validate_key_combo(&keysym_name(MAX_KEYSYM)).expect("max");
    }

    #[test]
    fn client_messages_parse() {
        let hello = parse_client(
            r#"{"type":"hello","transport":"webcodecs","codecs":["vp8","h264"],"focused":true}"#,
        )
        .expect("hello");
        assert_eq!(
            hello,
            ClientMessage::Hello {
                transport: TransportKind::WebCodecs,
                codecs: vec![Codec::Vp8, Codec::H264],
                focused: true,
                socket_video: false
            }
        );
        assert!(matches!(
            parse_client(
                r#"{"type":"hello","transport":"webrtc","codecs":["h264"],"focused":true,"socket_video":true}"#
            ),
            Ok(ClientMessage::Hello {
                socket_video: true,
                ..
            })
        ));
        assert_eq!(
            parse_client(r#"{"type":"hello","transport":"none","codecs":["vp8"],"focused":false}"#)
                .expect("none"),
            ClientMessage::Hello {
                transport: TransportKind::None,
                codecs: vec![Codec::Vp8],
                focused: false,
                socket_video: false
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"focus","focused":false}"#).expect("focus"),
            ClientMessage::Focus { focused: false }
        );
        assert_eq!(
            parse_client(r#"{"type":"ack","frame":17}"#).expect("ack"),
            ClientMessage::Ack { frame: 17 }
        );
        assert_eq!(
            parse_client(r#"{"type":"keyframe"}"#).expect("kf"),
            ClientMessage::Keyframe
        );
        assert_eq!(
            parse_client(r#"{"type":"takeover"}"#).expect("takeover"),
            ClientMessage::Takeover
        );
        assert_eq!(
            parse_client(r#"{"type":"handback"}"#).expect("handback"),
            ClientMessage::Handback { note: None }
        );
        assert_eq!(
            parse_client(r#"{"type":"handback","note":"fixed the dialog"}"#).expect("note"),
            ClientMessage::Handback {
                note: Some("fixed the dialog".into())
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"offer","sdp":"v=0\r\n"}"#).expect("offer"),
            ClientMessage::Offer {
                sdp: "v=0\r\n".into()
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"stats","rtt_ms":35.5,"loss":0.01}"#).expect("stats"),
            ClientMessage::Stats {
                rtt_ms: Some(35.5),
                loss: Some(0.01),
                bandwidth_kbps: None,
                frames_decoded: None
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"stats"}"#).expect("empty stats"),
            ClientMessage::Stats {
                rtt_ms: None,
                loss: None,
                bandwidth_kbps: None,
                frames_decoded: None
            }
        );
        // Round trip through serde.
        let msg = ClientMessage::Stats {
            rtt_ms: Some(1.0),
            loss: Some(0.0),
            bandwidth_kbps: Some(2500.0),
            frames_decoded: Some(9),
        };
        let text = serde_json::to_string(&msg).expect("json");
        assert_eq!(parse_client(&text).expect("back"), msg);
    }

    #[test]
    fn malformed_client_messages_are_refused() {
        let bad = |text: &str| parse_client(text).expect_err(text);
        // Unknown fields, on every kind of variant.
        assert!(matches!(
            bad(r#"{"type":"ack","frame":1,"extra":2}"#),
            WireError::Json(_)
        ));
        assert!(matches!(
            bad(r#"{"type":"keyframe","extra":2}"#),
            WireError::Json(_)
        ));
        assert!(matches!(
            bad(r#"{"type":"takeover","now":true}"#),
            WireError::Json(_)
        ));
        assert!(matches!(
            bad(r#"{"type":"hello","transport":"webrtc","codecs":["vp8"],"focused":true,"x":1}"#),
            WireError::Json(_)
        ));
        assert!(matches!(
            bad(r#"{"type":"stats","jitter":1}"#),
            WireError::Json(_)
        ));
        // Unknown type, missing type, unknown enum values, bad JSON.
        assert!(matches!(bad(r#"{"type":"reboot"}"#), WireError::Json(_)));
        assert!(matches!(bad(r#"{"frame":1}"#), WireError::Json(_)));
        assert!(matches!(
            bad(r#"{"type":"hello","transport":"carrier-pigeon","codecs":["vp8"],"focused":true}"#),
            WireError::Json(_)
        ));
        assert!(matches!(
            bad(r#"{"type":"hello","transport":"webrtc","codecs":["av1"],"focused":true}"#),
            WireError::Json(_)
        ));
        assert!(matches!(bad(r#"{"type":"ack","frame":-1}"#), WireError::Json(_)));
        assert!(matches!(bad("not json"), WireError::Json(_)));
        assert!(matches!(bad(""), WireError::Json(_)));
        // Checks after decoding.
        assert!(matches!(
            bad(r#"{"type":"hello","transport":"webrtc","codecs":[],"focused":true}"#),
            WireError::CodecCount { count: 0, .. }
        ));
        // Without video, no codec is needed.
        assert!(parse_client(r#"{"type":"hello","transport":"none","codecs":[],"focused":false}"#).is_ok());
        assert!(matches!(
            bad(
                r#"{"type":"hello","transport":"webrtc","codecs":["vp8","vp8","vp8","vp8","h264"],"focused":true}"#
            ),
            WireError::CodecCount { count: 5, .. }
        ));
        assert!(matches!(bad(r#"{"type":"offer","sdp":""}"#), WireError::EmptySdp));
        let sdp = "a".repeat(MAX_SDP + 1);
        assert!(matches!(
            bad(&format!(r#"{{"type":"offer","sdp":"{sdp}"}}"#)),
            WireError::SdpTooLong { .. }
        ));
        let ok_sdp = "a".repeat(MAX_SDP);
        assert!(parse_client(&format!(r#"{{"type":"offer","sdp":"{ok_sdp}"}}"#)).is_ok());
        let note = "é".repeat(MAX_NOTE_CHARS + 1);
        assert!(matches!(
            bad(&format!(r#"{{"type":"handback","note":"{note}"}}"#)),
            WireError::NoteTooLong { chars: 1001, .. }
        ));
        let note = "é".repeat(MAX_NOTE_CHARS);
        assert!(parse_client(&format!(r#"{{"type":"handback","note":"{note}"}}"#)).is_ok());
        assert!(matches!(
            bad(r#"{"type":"stats","loss":1.5}"#),
            WireError::BadStat { field: "loss", .. }
        ));
        assert!(matches!(
            bad(r#"{"type":"stats","loss":-0.1}"#),
            WireError::BadStat { field: "loss", .. }
        ));
        assert!(matches!(
            bad(r#"{"type":"stats","rtt_ms":-1}"#),
            WireError::BadStat { field: "rtt_ms", .. }
        ));
        assert!(matches!(
            bad(r#"{"type":"stats","bandwidth_kbps":1e999}"#),
            WireError::Json(_) | WireError::BadStat { .. }
        ));
        let huge = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "a".repeat(MAX_CLIENT_TEXT));
        assert!(matches!(bad(&huge), WireError::TooLong { .. }));
        let e = bad(r#"{"type":"stats","loss":2}"#);
        assert_eq!(
            e.to_string(),
            "the statistic loss is 2, it must be a number from 0 to 1"
        );
    }

    #[test]
    fn server_messages_serialize() {
        let mode = ServerMessage::Mode {
            mode: ViewMode::Video,
            codec: Some(Codec::H264),
            fps: 30,
            bitrate_kbps: 2500,
            reason: "the viewer has the focus".into(),
        };
        let json = mode.to_json();
        assert_eq!(
            json,
            r#"{"type":"mode","mode":"video","codec":"h264","fps":30,"bitrate_kbps":2500,"reason":"the viewer has the focus"}"#
        );
        let back: ServerMessage = serde_json::from_str(&json).expect("back");
        assert_eq!(back, mode);
        let welcome = ServerMessage::Welcome {
            viewer: 3,
            sandbox: "sb-1".into(),
            operator: "ana".into(),
            width: 1280,
            height: 800,
        };
        assert!(welcome.to_json().starts_with(r#"{"type":"welcome","viewer":3"#));
        let lease = ServerMessage::Lease {
            holder: "human".into(),
            operator: None,
            epoch: 4,
            you_control: false,
        };
        assert_eq!(
            lease.to_json(),
            r#"{"type":"lease","holder":"human","operator":null,"epoch":4,"you_control":false}"#
        );
        let step = ServerMessage::Step {
            step: Step {
                seq: 1,
                at_ms: 5,
                kind: StepKind::Decision,
                title: "click at (1, 2)".into(),
                actor: Some("bot".into()),
                decision: Some(StepDecision::ShadowDenied),
                detail: None,
                still: None,
            },
        };
        assert!(step.to_json().contains(r#""step":{"#));
        for msg in [
            ServerMessage::Answer { sdp: "v=0".into() },
            ServerMessage::Input {
                accepted: false,
                reason: "the agent holds the lease".into(),
            },
            ServerMessage::Error {
                code: "bad_input".into(),
                message: "no".into(),
            },
            step,
            lease,
            welcome,
        ] {
            let back: ServerMessage = serde_json::from_str(&msg.to_json()).expect("back");
            assert_eq!(back, msg);
        }
        assert_eq!(
            serde_json::to_string(&TransportKind::WebRtc).expect("json"),
            r#""webrtc""#
        );
        assert_eq!(
            serde_json::to_string(&ViewMode::Command).expect("json"),
            r#""command""#
        );
        assert!(ViewMode::Command < ViewMode::Stills && ViewMode::Stills < ViewMode::Video);
    }

    /// Random bytes and random mutations of valid messages never panic any parser.
    #[test]
    fn random_bytes_never_panic() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds = [
            encode_video(&video_header(), b"abc"),
            encode_still(&still_header(), b"abc"),
            encode_input(&OperatorInput::Key {
                down: true,
                keysym: 0x61,
            }),
            encode_input(&OperatorInput::Wheel {
                dx: 1,
                dy: 1,
                x: 1,
                y: 1,
            }),
            br#"{"type":"hello","transport":"webrtc","codecs":["vp8"],"focused":true}"#.to_vec(),
            br#"{"type":"stats","rtt_ms":3,"loss":0.5}"#.to_vec(),
        ];
        for round in 0..20_000 {
            let mut bytes = if round % 2 == 0 {
                let len = (next() % 48) as usize;
                (0..len).map(|_| next() as u8).collect::<Vec<u8>>()
            } else {
                let mut b = seeds[(next() % seeds.len() as u64) as usize].clone();
                for _ in 0..1 + next() % 3 {
                    if b.is_empty() {
                        break;
                    }
                    let i = (next() % b.len() as u64) as usize;
                    b[i] = next() as u8;
                }
                b
            };
            if next() % 4 == 0 {
                let cut = (next() % (bytes.len() as u64 + 1)) as usize;
                bytes.truncate(cut);
            }
            let _ = parse_video(&bytes);
            let _ = parse_still(&bytes);
            let _ = parse_input(&bytes, 1280, 800);
            let _ = parse_input(&bytes, 0, 0);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = parse_client(text);
            }
        }
    }
}
