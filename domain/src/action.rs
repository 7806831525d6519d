//! One typed action model for every agent, parsed from Anthropic's `computer` tool input and from
//! OpenAI's computer-use `action` objects exactly as those APIs send them.

use std::fmt;

use airlock_protocol::{
    validate_exec, validate_key_combo, Button, ExecRequest, Input, InvalidRequest, MAX_DRAG_POINTS,
    MAX_TYPE_TEXT,
};
use serde::{Deserialize, Serialize};

/// Screen size the coordinates are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Screen {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

/// A point on the screen, already checked to lie inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Point {
    /// Column from the left.
    pub x: u16,
    /// Row from the top.
    pub y: u16,
}

/// A rectangle on the screen (zoom).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Region {
    /// Top-left corner.
    pub from: Point,
    /// Bottom-right corner (inclusive).
    pub to: Point,
}

/// Most bytes an agent reads or writes in one file action (the MCP message carries them).
pub const MAX_AGENT_FILE: u64 = 16 << 20;

/// A file action's path: absolute, normalised, no NUL, no `..` (the guest checks again). A path
/// under `/proc`, `/sys` or `/dev` is well formed: the policy denies it, on the record.
fn check_file_path(path: &str) -> Result<(), ActionError> {
    match airlock_protocol::validate_guest_path(path) {
        Ok(()) | Err(airlock_protocol::InvalidFileRequest::SystemPath { .. }) => Ok(()),
        Err(e) => Err(ActionError::Invalid(format!(
            "the path {path:?} cannot be used: {e}"
        ))),
    }
}

/// Most milliseconds a `wait` or `hold_key` may take.
pub const MAX_WAIT_MS: u32 = 60_000;
/// Exec timeout when the agent names none.
pub const DEFAULT_EXEC_TIMEOUT_MS: u32 = 30_000;
/// Exec output kept per stream when the agent names no cap.
pub const DEFAULT_EXEC_OUTPUT_CAP: u32 = 1024 * 1024;
/// Pixels of OpenAI `scroll_x`/`scroll_y` per wheel click.
pub const PIXELS_PER_WHEEL_CLICK: i64 = 100;

/// What an agent asks to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Press a key combination (xdotool names: `ctrl+s`, `Return`).
    Key {
        /// The combination.
        combo: String,
    },
    /// Type text.
    Type {
        /// The text.
        text: String,
    },
    /// Move the pointer.
    MouseMove {
        /// Where to.
        to: Point,
    },
    /// Click `count` times, at `at` or where the pointer is, holding `hold` keys if given.
    Click {
        /// Where; `None` clicks where the pointer is.
        at: Option<Point>,
        /// Which button.
        button: MouseButton,
        /// 1, 2 or 3.
        count: u8,
        /// Keys held during the click (`shift`, `ctrl+shift`).
        hold: Option<String>,
    },
    /// Press a button where the pointer is, without releasing it.
    MouseDown {
        /// Which button.
        button: MouseButton,
    },
    /// Release a button where the pointer is.
    MouseUp {
        /// Which button.
        button: MouseButton,
    },
    /// Press at the first point, move along the path, release at the last.
    Drag {
        /// Two or more points.
        path: Vec<Point>,
        /// Which button.
        button: MouseButton,
    },
    /// Turn the wheel at `at` (or where the pointer is): positive `dy` is down, positive `dx` right.
    Scroll {
        /// Where; `None` scrolls where the pointer is.
        at: Option<Point>,
        /// Horizontal clicks.
        dx: i16,
        /// Vertical clicks.
        dy: i16,
        /// Keys held while scrolling.
        hold: Option<String>,
    },
    /// Hold a key combination down for a while.
    HoldKey {
        /// The combination.
        combo: String,
        /// How long.
        duration_ms: u32,
    },
    /// Do nothing for a while, then look.
    Wait {
        /// How long.
        duration_ms: u32,
    },
    /// Look at the whole screen.
    Screenshot,
    /// Ask where the pointer is.
    CursorPosition,
    /// Look at part of the screen at full resolution.
    Zoom {
        /// Which part.
        region: Region,
    },
    /// Run a program inside the sandbox.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
        /// Text for its stdin.
        stdin: String,
        /// Kill it after this long.
        timeout_ms: u32,
    },
    /// Read a file out of the sandbox (data leaving it).
    ReadFile {
        /// Absolute, normalised path.
        path: String,
        /// Its size, as the gateway found it before judging (0 when it could not tell).
        size: u64,
    },
    /// Write a file into the sandbox (created or replaced atomically).
    WriteFile {
        /// Absolute, normalised path.
        path: String,
        /// Bytes.
        size: u64,
        /// SHA-256 of the bytes, hex (the bytes themselves are not recorded).
        sha256: String,
        /// The bytes (kept out of the ledger and the wire).
        #[serde(skip)]
        #[ts(skip)]
        content: Vec<u8>,
    },
    /// List a directory of the sandbox.
    ListFiles {
        /// Absolute, normalised path.
        path: String,
    },
}

/// A mouse button, as agents name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum MouseButton {
    /// Left.
    Left,
    /// Middle (OpenAI's `wheel`).
    Middle,
    /// Right.
    Right,
    /// Back.
    Back,
    /// Forward.
    Forward,
}

impl MouseButton {
    fn guest(self) -> Button {
        match self {
            MouseButton::Left => Button::Left,
            MouseButton::Middle => Button::Middle,
            MouseButton::Right => Button::Right,
            MouseButton::Back => Button::Back,
            MouseButton::Forward => Button::Forward,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            MouseButton::Left => "left",
            MouseButton::Middle => "middle",
            MouseButton::Right => "right",
            MouseButton::Back => "back",
            MouseButton::Forward => "forward",
        }
    }
}

/// The kind of an action: what policies, grants and the ledger name it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// [`Action::Key`].
    Key,
    /// [`Action::Type`].
    Type,
    /// [`Action::MouseMove`].
    MouseMove,
    /// [`Action::Click`].
    Click,
    /// [`Action::MouseDown`].
    MouseDown,
    /// [`Action::MouseUp`].
    MouseUp,
    /// [`Action::Drag`].
    Drag,
    /// [`Action::Scroll`].
    Scroll,
    /// [`Action::HoldKey`].
    HoldKey,
    /// [`Action::Wait`].
    Wait,
    /// [`Action::Screenshot`].
    Screenshot,
    /// [`Action::CursorPosition`].
    CursorPosition,
    /// [`Action::Zoom`].
    Zoom,
    /// [`Action::Exec`].
    Exec,
    /// A command line a `type` or `key` action submits to a terminal (judged like an exec before
    /// the keystroke that submits it is sent).
    TerminalCommand,
    /// [`Action::ReadFile`].
    ReadFile,
    /// [`Action::WriteFile`].
    WriteFile,
    /// [`Action::ListFiles`].
    ListFiles,
}

impl ActionKind {
    /// Every kind, in a stable order.
    pub const ALL: [ActionKind; 18] = [
        ActionKind::Key,
        ActionKind::Type,
        ActionKind::MouseMove,
        ActionKind::Click,
        ActionKind::MouseDown,
        ActionKind::MouseUp,
        ActionKind::Drag,
        ActionKind::Scroll,
        ActionKind::HoldKey,
        ActionKind::Wait,
        ActionKind::Screenshot,
        ActionKind::CursorPosition,
        ActionKind::Zoom,
        ActionKind::Exec,
        ActionKind::TerminalCommand,
        ActionKind::ReadFile,
        ActionKind::WriteFile,
        ActionKind::ListFiles,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Key => "key",
            ActionKind::Type => "type",
            ActionKind::MouseMove => "mouse_move",
            ActionKind::Click => "click",
            ActionKind::MouseDown => "mouse_down",
            ActionKind::MouseUp => "mouse_up",
            ActionKind::Drag => "drag",
            ActionKind::Scroll => "scroll",
            ActionKind::HoldKey => "hold_key",
            ActionKind::Wait => "wait",
            ActionKind::Screenshot => "screenshot",
            ActionKind::CursorPosition => "cursor_position",
            ActionKind::Zoom => "zoom",
            ActionKind::Exec => "exec",
            ActionKind::TerminalCommand => "terminal_command",
            ActionKind::ReadFile => "read_file",
            ActionKind::WriteFile => "write_file",
            ActionKind::ListFiles => "list_files",
        }
    }

    /// Parses a snake_case name.
    pub fn parse(name: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an action could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The JSON does not have the API's shape.
    #[error("the action is malformed: {0}")]
    Malformed(String),
    /// The action name is not one the API defines.
    #[error("unknown action {name:?}; known actions: {known}")]
    Unknown {
        /// What was sent.
        name: String,
        /// What is accepted.
        known: &'static str,
    },
    /// A parameter the action needs is absent.
    #[error("the {action} action needs `{param}`")]
    Missing {
        /// The action.
        action: String,
        /// The parameter.
        param: &'static str,
    },
    /// A parameter the action does not take was given.
    #[error("the {action} action does not take `{param}`")]
    Unexpected {
        /// The action.
        action: String,
        /// The parameter.
        param: &'static str,
    },
    /// A point lies outside the screen.
    #[error("the point ({x}, {y}) is outside the {width}x{height} screen")]
    OffScreen {
        /// Column sent.
        x: i64,
        /// Row sent.
        y: i64,
        /// Screen width.
        width: u16,
        /// Screen height.
        height: u16,
    },
    /// A value is out of range or badly formed.
    #[error("{0}")]
    Invalid(String),
    /// A key combo or an exec request breaks the protocol's limits.
    #[error(transparent)]
    Request(#[from] InvalidRequest),
}

/// Why an action cannot become an exec request for the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestExecError {
    /// The action is not an exec.
    #[error("a {kind} action is not an exec")]
    NotExec {
        /// What it is.
        kind: ActionKind,
    },
    /// The request breaks the protocol's limits.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
}

/// The exec request for `argv`, checked against the protocol's limits.
fn exec_request(argv: &[String], stdin: &str, timeout_ms: u32) -> Result<ExecRequest, InvalidRequest> {
    let req = ExecRequest {
        argv: argv.to_vec(),
        stdin: stdin.as_bytes().to_vec(),
        timeout_ms,
        output_cap: DEFAULT_EXEC_OUTPUT_CAP,
    };
    validate_exec(&req)?;
    Ok(req)
}

/// Anthropic's computer tool actions.
pub const ANTHROPIC_ACTIONS: &str = "key, type, mouse_move, left_click, left_click_drag, right_click, \
middle_click, double_click, triple_click, left_mouse_down, left_mouse_up, scroll, hold_key, wait, \
screenshot, cursor_position, zoom";
/// OpenAI's computer-use actions.
pub const OPENAI_ACTIONS: &str = "click, double_click, drag, keypress, move, scroll, type, wait, screenshot";

/// Anthropic's `computer` tool input, as the Messages API sends it in a `tool_use` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnthropicInput {
    action: String,
    coordinate: Option<[i64; 2]>,
    start_coordinate: Option<[i64; 2]>,
    text: Option<String>,
    scroll_direction: Option<String>,
    scroll_amount: Option<i64>,
    duration: Option<f64>,
    region: Option<[i64; 4]>,
    key: Option<String>,
}

impl Action {
    /// Parses Anthropic's `computer` tool input (`{"action": "left_click", "coordinate": [x, y]}`).
    pub fn from_anthropic(input: &serde_json::Value, screen: Screen) -> Result<Action, ActionError> {
        let i: AnthropicInput =
            serde_json::from_value(input.clone()).map_err(|e| ActionError::Malformed(e.to_string()))?;
        let name = i.action.clone();
        let p = Params {
            action: &name,
            screen,
        };
        let action = match name.as_str() {
            "key" => {
                p.only(&i, &["text"])?;
                Action::Key {
                    combo: p.combo(i.text.as_deref())?,
                }
            }
            "type" => {
                p.only(&i, &["text"])?;
                Action::Type {
                    text: p.text(i.text)?,
                }
            }
            "mouse_move" => {
                p.only(&i, &["coordinate"])?;
                Action::MouseMove {
                    to: p.required_point(i.coordinate)?,
                }
            }
            "left_click" | "right_click" | "middle_click" | "double_click" | "triple_click" => {
                p.only(&i, &["coordinate", "text"])?;
                let (button, count) = match name.as_str() {
                    "right_click" => (MouseButton::Right, 1),
                    "middle_click" => (MouseButton::Middle, 1),
                    "double_click" => (MouseButton::Left, 2),
                    "triple_click" => (MouseButton::Left, 3),
                    _ => (MouseButton::Left, 1),
                };
                Action::Click {
                    at: p.optional_point(i.coordinate)?,
                    button,
                    count,
                    hold: p.optional_combo(i.text.as_deref())?,
                }
            }
            "left_click_drag" => {
                p.only(&i, &["start_coordinate", "coordinate"])?;
                let from = p.point(i.start_coordinate.ok_or_else(|| p.missing("start_coordinate"))?)?;
                let to = p.required_point(i.coordinate)?;
                Action::Drag {
                    path: vec![from, to],
                    button: MouseButton::Left,
                }
            }
            "left_mouse_down" | "left_mouse_up" => {
                p.only(&i, &[])?;
                if name == "left_mouse_down" {
                    Action::MouseDown {
                        button: MouseButton::Left,
                    }
                } else {
                    Action::MouseUp {
                        button: MouseButton::Left,
                    }
                }
            }
            "scroll" => {
                p.only(&i, &["coordinate", "scroll_direction", "scroll_amount", "text"])?;
                let amount = i.scroll_amount.ok_or_else(|| p.missing("scroll_amount"))?;
                if !(0..=100).contains(&amount) {
                    return Err(ActionError::Invalid(format!(
                        "scroll_amount must be 0 to 100 wheel clicks, not {amount}"
                    )));
                }
                let amount = amount as i16;
                let (dx, dy) = match i.scroll_direction.as_deref() {
                    Some("up") => (0, -amount),
                    Some("down") => (0, amount),
                    Some("left") => (-amount, 0),
                    Some("right") => (amount, 0),
                    Some(other) => {
                        return Err(ActionError::Invalid(format!(
                            "scroll_direction must be up, down, left or right, not {other:?}"
                        )))
                    }
                    None => return Err(p.missing("scroll_direction")),
                };
                Action::Scroll {
                    at: p.optional_point(i.coordinate)?,
                    dx,
                    dy,
                    hold: p.optional_combo(i.text.as_deref())?,
                }
            }
            "hold_key" => {
                p.only(&i, &["text", "duration"])?;
                Action::HoldKey {
                    combo: p.combo(i.text.as_deref())?,
                    duration_ms: p.seconds(i.duration.ok_or_else(|| p.missing("duration"))?)?,
                }
            }
            "wait" => {
                p.only(&i, &["duration"])?;
                Action::Wait {
                    duration_ms: p.seconds(i.duration.unwrap_or(1.0))?,
                }
            }
            "screenshot" => {
                p.only(&i, &[])?;
                Action::Screenshot
            }
            "cursor_position" => {
                p.only(&i, &[])?;
                Action::CursorPosition
            }
            "zoom" => {
                p.only(&i, &["region"])?;
                let [x0, y0, x1, y1] = i.region.ok_or_else(|| p.missing("region"))?;
                let (from, to) = (p.point([x0, y0])?, p.point([x1, y1])?);
                if from.x >= to.x || from.y >= to.y {
                    return Err(ActionError::Invalid(format!(
                        "zoom region [{x0}, {y0}, {x1}, {y1}] must run from top-left to bottom-right"
                    )));
                }
                Action::Zoom {
                    region: Region { from, to },
                }
            }
            _ => {
                return Err(ActionError::Unknown {
                    name,
                    known: ANTHROPIC_ACTIONS,
                })
            }
        };
        Ok(action)
    }

    /// Parses an OpenAI computer-use `action` object (`{"type": "click", "button": "left", "x": 1, "y": 2}`).
    pub fn from_openai(action: &serde_json::Value, screen: Screen) -> Result<Action, ActionError> {
        let name = action
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or_else(|| ActionError::Malformed("an OpenAI action needs a string `type`".into()))?
            .to_string();
        let parsed: OpenAiAction = serde_json::from_value(action.clone()).map_err(|e| {
            let msg = e.to_string();
            if msg.starts_with("unknown variant") {
                ActionError::Unknown {
                    name: name.clone(),
                    known: OPENAI_ACTIONS,
                }
            } else {
                ActionError::Malformed(msg)
            }
        })?;
        let p = Params {
            action: &name,
            screen,
        };
        Ok(match parsed {
            OpenAiAction::Click { button, x, y } => {
                let button = match button.as_str() {
                    "left" => MouseButton::Left,
                    "right" => MouseButton::Right,
                    "wheel" => MouseButton::Middle,
                    "back" => MouseButton::Back,
                    "forward" => MouseButton::Forward,
                    other => {
                        return Err(ActionError::Invalid(format!(
                            "button must be left, right, wheel, back or forward, not {other:?}"
                        )))
                    }
                };
                Action::Click {
                    at: Some(p.point([x, y])?),
                    button,
                    count: 1,
                    hold: None,
                }
            }
            OpenAiAction::DoubleClick { x, y } => Action::Click {
                at: Some(p.point([x, y])?),
                button: MouseButton::Left,
                count: 2,
                hold: None,
            },
            OpenAiAction::Drag { path } => {
                if path.len() < 2 || path.len() > MAX_DRAG_POINTS {
                    return Err(ActionError::Invalid(format!(
                        "a drag path needs 2 to {MAX_DRAG_POINTS} points, not {}",
                        path.len()
                    )));
                }
                let path = path
                    .iter()
                    .map(|q| p.point([q.x, q.y]))
                    .collect::<Result<_, _>>()?;
                Action::Drag {
                    path,
                    button: MouseButton::Left,
                }
            }
            OpenAiAction::Keypress { keys } => Action::Key {
                combo: openai_keys(&keys)?,
            },
            OpenAiAction::Move { x, y } => Action::MouseMove { to: p.point([x, y])? },
            OpenAiAction::Scroll {
                x,
                y,
                scroll_x,
                scroll_y,
            } => Action::Scroll {
                at: Some(p.point([x, y])?),
                dx: wheel_clicks(scroll_x)?,
                dy: wheel_clicks(scroll_y)?,
                hold: None,
            },
            OpenAiAction::Type { text } => Action::Type {
                text: p.text(Some(text))?,
            },
            OpenAiAction::Wait {} => Action::Wait { duration_ms: 2_000 },
            OpenAiAction::Screenshot {} => Action::Screenshot,
        })
    }

    /// The kind, for policies, grants and the ledger.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Key { .. } => ActionKind::Key,
            Action::Type { .. } => ActionKind::Type,
            Action::MouseMove { .. } => ActionKind::MouseMove,
            Action::Click { .. } => ActionKind::Click,
            Action::MouseDown { .. } => ActionKind::MouseDown,
            Action::MouseUp { .. } => ActionKind::MouseUp,
            Action::Drag { .. } => ActionKind::Drag,
            Action::Scroll { .. } => ActionKind::Scroll,
            Action::HoldKey { .. } => ActionKind::HoldKey,
            Action::Wait { .. } => ActionKind::Wait,
            Action::Screenshot => ActionKind::Screenshot,
            Action::CursorPosition => ActionKind::CursorPosition,
            Action::Zoom { .. } => ActionKind::Zoom,
            Action::Exec { .. } => ActionKind::Exec,
            Action::ReadFile { .. } => ActionKind::ReadFile,
            Action::WriteFile { .. } => ActionKind::WriteFile,
            Action::ListFiles { .. } => ActionKind::ListFiles,
        }
    }

    /// Whether the action only looks (and so needs no after-frame).
    pub fn is_observation(&self) -> bool {
        match self.kind() {
            ActionKind::Screenshot | ActionKind::CursorPosition | ActionKind::Zoom | ActionKind::Wait => true,
            ActionKind::Key
            | ActionKind::Type
            | ActionKind::MouseMove
            | ActionKind::Click
            | ActionKind::MouseDown
            | ActionKind::MouseUp
            | ActionKind::Drag
            | ActionKind::Scroll
            | ActionKind::HoldKey
            | ActionKind::Exec
            | ActionKind::TerminalCommand
            | ActionKind::ReadFile
            | ActionKind::WriteFile
            | ActionKind::ListFiles => false,
        }
    }

    /// The point the action targets, if any (the first point of a drag).
    pub fn point(&self) -> Option<Point> {
        match self {
            Action::MouseMove { to } => Some(*to),
            Action::Click { at, .. } | Action::Scroll { at, .. } => *at,
            Action::Drag { path, .. } => path.first().copied(),
            Action::Zoom { region } => Some(region.from),
            Action::Key { .. }
            | Action::Type { .. }
            | Action::MouseDown { .. }
            | Action::MouseUp { .. }
            | Action::HoldKey { .. }
            | Action::Wait { .. }
            | Action::Screenshot
            | Action::CursorPosition
            | Action::Exec { .. }
            | Action::ReadFile { .. }
            | Action::WriteFile { .. }
            | Action::ListFiles { .. } => None,
        }
    }

    /// The sandbox path a file action reads, writes or lists.
    pub fn file_path(&self) -> Option<&str> {
        match self {
            Action::ReadFile { path, .. } | Action::WriteFile { path, .. } | Action::ListFiles { path } => {
                Some(path)
            }
            _ => None,
        }
    }

    /// Builds a file read, checking the path.
    pub fn read_file(path: &str, size: u64) -> Result<Action, ActionError> {
        check_file_path(path)?;
        Ok(Action::ReadFile {
            path: path.to_string(),
            size,
        })
    }

    /// Builds a file write of `content`, checking the path and the size.
    pub fn write_file(path: &str, content: Vec<u8>) -> Result<Action, ActionError> {
        use sha2::Digest as _;
        check_file_path(path)?;
        if content.len() as u64 > MAX_AGENT_FILE {
            return Err(ActionError::Invalid(format!(
                "write_file: {} bytes is more than the {MAX_AGENT_FILE} an agent may write at once",
                content.len()
            )));
        }
        Ok(Action::WriteFile {
            path: path.to_string(),
            size: content.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(&content)),
            content,
        })
    }

    /// Builds a directory listing, checking the path.
    pub fn list_files(path: &str) -> Result<Action, ActionError> {
        check_file_path(path)?;
        Ok(Action::ListFiles {
            path: path.to_string(),
        })
    }

    /// The key combination, normalised to lowercase with `ctrl`/`alt`/`shift`/`super` names.
    pub fn key_combo(&self) -> Option<String> {
        match self {
            Action::Key { combo } | Action::HoldKey { combo, .. } => Some(normalise_combo(combo)),
            Action::Click { hold: Some(h), .. } | Action::Scroll { hold: Some(h), .. } => {
                Some(normalise_combo(h))
            }
            _ => None,
        }
    }

    /// Typed text, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Action::Type { text } => Some(text),
            _ => None,
        }
    }

    /// The command line of an exec, arguments joined by spaces.
    pub fn command_line(&self) -> Option<String> {
        match self {
            Action::Exec { argv, .. } => Some(argv.join(" ")),
            _ => None,
        }
    }

    /// Builds an exec action, checking the protocol's limits.
    pub fn exec(argv: Vec<String>, stdin: String, timeout_ms: Option<u32>) -> Result<Action, ActionError> {
        let timeout_ms = timeout_ms.unwrap_or(DEFAULT_EXEC_TIMEOUT_MS);
        exec_request(&argv, &stdin, timeout_ms)?;
        Ok(Action::Exec {
            argv,
            stdin,
            timeout_ms,
        })
    }

    /// The exec request for the guest, checked against the protocol's limits.
    pub fn guest_exec(&self) -> Result<ExecRequest, GuestExecError> {
        match self {
            Action::Exec {
                argv,
                stdin,
                timeout_ms,
            } => Ok(exec_request(argv, stdin, *timeout_ms)?),
            _ => Err(GuestExecError::NotExec { kind: self.kind() }),
        }
    }

    /// The guest inputs that carry out an input action, in order; empty for actions that are not
    /// input (observations, wait, exec). `hold_key` is press then release: the caller waits between.
    ///
    /// `pointer` is where the pointer is now: a scroll without coordinates happens there (see
    /// [`Action::needs_pointer`]); without it such a scroll yields no input.
    pub fn guest_inputs(&self, pointer: Option<Point>) -> Vec<Input> {
        let mv = |p: Point| Input::MouseMove { x: p.x, y: p.y };
        match self {
            Action::Key { combo } => vec![Input::Key { combo: combo.clone() }],
            Action::Type { text } => vec![Input::Type { text: text.clone() }],
            Action::MouseMove { to } => vec![mv(*to)],
            Action::Click {
                at,
                button,
                count,
                hold,
            } => {
                let mut out = Vec::new();
                if let Some(h) = hold {
                    out.push(Input::KeyState {
                        combo: h.clone(),
                        down: true,
                    });
                }
                match at {
                    Some(p) => out.push(Input::Click {
                        x: p.x,
                        y: p.y,
                        button: button.guest(),
                        count: *count,
                    }),
                    None => {
                        for _ in 0..*count {
                            out.push(Input::Button {
                                button: button.guest(),
                                down: true,
                            });
                            out.push(Input::Button {
                                button: button.guest(),
                                down: false,
                            });
                        }
                    }
                }
                if let Some(h) = hold {
                    out.push(Input::KeyState {
                        combo: h.clone(),
                        down: false,
                    });
                }
                out
            }
            Action::MouseDown { button } => vec![Input::Button {
                button: button.guest(),
                down: true,
            }],
            Action::MouseUp { button } => vec![Input::Button {
                button: button.guest(),
                down: false,
            }],
            Action::Drag { path, button } => vec![Input::Drag {
                path: path.iter().map(|p| (p.x, p.y)).collect(),
                button: button.guest(),
            }],
            Action::Scroll { at, dx, dy, hold } => {
                let mut out = Vec::new();
                if let Some(h) = hold {
                    out.push(Input::KeyState {
                        combo: h.clone(),
                        down: true,
                    });
                }
                match at.or(pointer) {
                    Some(p) => out.push(Input::Scroll {
                        x: p.x,
                        y: p.y,
                        dx: *dx,
                        dy: *dy,
                    }),
                    None => return Vec::new(),
                }
                if let Some(h) = hold {
                    out.push(Input::KeyState {
                        combo: h.clone(),
                        down: false,
                    });
                }
                out
            }
            Action::HoldKey { combo, .. } => vec![
                Input::KeyState {
                    combo: combo.clone(),
                    down: true,
                },
                Input::KeyState {
                    combo: combo.clone(),
                    down: false,
                },
            ],
            Action::Wait { .. }
            | Action::Screenshot
            | Action::CursorPosition
            | Action::Zoom { .. }
            | Action::Exec { .. }
            | Action::ReadFile { .. }
            | Action::WriteFile { .. }
            | Action::ListFiles { .. } => Vec::new(),
        }
    }

    /// Whether carrying the action out needs the current pointer position.
    pub fn needs_pointer(&self) -> bool {
        matches!(self, Action::Scroll { at: None, .. } | Action::CursorPosition)
    }

    /// Whether an operator's edit keeps the action's kind (edits change coordinates or text, not
    /// what is done).
    pub fn same_kind(&self, other: &Action) -> bool {
        self.kind() == other.kind()
    }
}

/// Lowercases modifier names and maps aliases (`control` → `ctrl`, `cmd`/`meta`/`win` → `super`).
pub fn normalise_combo(combo: &str) -> String {
    combo
        .split('+')
        .map(|k| {
            let l = k.to_ascii_lowercase();
            match l.as_str() {
                "control" | "ctrl_l" | "control_l" | "ctrl_r" | "control_r" => "ctrl".to_string(),
                "alt_l" | "alt_r" | "option" => "alt".to_string(),
                "shift_l" | "shift_r" => "shift".to_string(),
                "cmd" | "meta" | "win" | "super_l" | "super_r" | "command" => "super".to_string(),
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// OpenAI computer-use action objects.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum OpenAiAction {
    Click {
        button: String,
        x: i64,
        y: i64,
    },
    DoubleClick {
        x: i64,
        y: i64,
    },
    Drag {
        path: Vec<OpenAiPoint>,
    },
    Keypress {
        keys: Vec<String>,
    },
    Move {
        x: i64,
        y: i64,
    },
    Scroll {
        x: i64,
        y: i64,
        scroll_x: i64,
        scroll_y: i64,
    },
    Type {
        text: String,
    },
    Wait {},
    Screenshot {},
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAiPoint {
    x: i64,
    y: i64,
}

/// Maps OpenAI key names (`CTRL`, `ENTER`, `ARROWLEFT`, `a`) to an xdotool combo.
fn openai_keys(keys: &[String]) -> Result<String, ActionError> {
    if keys.is_empty() {
        return Err(ActionError::Invalid("keypress needs at least one key".into()));
    }
    let names: Vec<String> = keys
        .iter()
        .map(|k| {
            let upper = k.to_ascii_uppercase();
            let name = match upper.as_str() {
                "CTRL" | "CONTROL" => "ctrl",
                "ALT" | "OPTION" => "alt",
                "SHIFT" => "shift",
                "CMD" | "META" | "SUPER" | "WIN" => "super",
                "ENTER" | "RETURN" => "Return",
                "SPACE" => "space",
                "BACKSPACE" => "BackSpace",
                "TAB" => "Tab",
                "ESC" | "ESCAPE" => "Escape",
                "DELETE" | "DEL" => "Delete",
                "INSERT" => "Insert",
                "HOME" => "Home",
                "END" => "End",
                "PAGEUP" => "Page_Up",
                "PAGEDOWN" => "Page_Down",
                "ARROWUP" | "UP" => "Up",
                "ARROWDOWN" | "DOWN" => "Down",
                "ARROWLEFT" | "LEFT" => "Left",
                "ARROWRIGHT" | "RIGHT" => "Right",
                _ if k.chars().count() == 1 => return Ok(k.to_ascii_lowercase()),
                _ if upper.starts_with('F')
                    && upper[1..].parse::<u8>().is_ok_and(|n| (1..=24).contains(&n)) =>
                {
                    return Ok(upper)
                }
                _ => return Ok(k.clone()),
            };
            Ok(name.to_string())
        })
        .collect::<Result<_, ActionError>>()?;
    let combo = names.join("+");
    validate_key_combo(&combo)?;
    Ok(combo)
}

fn wheel_clicks(pixels: i64) -> Result<i16, ActionError> {
    if pixels.abs() > 100_000 {
        return Err(ActionError::Invalid(format!(
            "a scroll of {pixels} pixels is too far"
        )));
    }
    if pixels == 0 {
        return Ok(0);
    }
    let clicks = (pixels.abs() + PIXELS_PER_WHEEL_CLICK - 1) / PIXELS_PER_WHEEL_CLICK;
    Ok((clicks * pixels.signum()) as i16)
}

/// Checks parameters of one Anthropic action.
struct Params<'a> {
    action: &'a str,
    screen: Screen,
}

impl Params<'_> {
    fn missing(&self, param: &'static str) -> ActionError {
        ActionError::Missing {
            action: self.action.to_string(),
            param,
        }
    }

    /// Refuses parameters the action does not take.
    fn only(&self, i: &AnthropicInput, allowed: &[&'static str]) -> Result<(), ActionError> {
        let given: [(&'static str, bool); 8] = [
            ("coordinate", i.coordinate.is_some()),
            ("start_coordinate", i.start_coordinate.is_some()),
            ("text", i.text.is_some()),
            ("scroll_direction", i.scroll_direction.is_some()),
            ("scroll_amount", i.scroll_amount.is_some()),
            ("duration", i.duration.is_some()),
            ("region", i.region.is_some()),
            ("key", i.key.is_some()),
        ];
        match given.iter().find(|(name, set)| *set && !allowed.contains(name)) {
            Some((param, _)) => Err(ActionError::Unexpected {
                action: self.action.to_string(),
                param,
            }),
            None => Ok(()),
        }
    }

    fn point(&self, [x, y]: [i64; 2]) -> Result<Point, ActionError> {
        let Screen { width, height } = self.screen;
        if x < 0 || y < 0 || x >= i64::from(width) || y >= i64::from(height) {
            return Err(ActionError::OffScreen { x, y, width, height });
        }
        Ok(Point {
            x: x as u16,
            y: y as u16,
        })
    }

    fn required_point(&self, c: Option<[i64; 2]>) -> Result<Point, ActionError> {
        self.point(c.ok_or_else(|| self.missing("coordinate"))?)
    }

    fn optional_point(&self, c: Option<[i64; 2]>) -> Result<Option<Point>, ActionError> {
        c.map(|c| self.point(c)).transpose()
    }

    fn text(&self, t: Option<String>) -> Result<String, ActionError> {
        let t = t.ok_or_else(|| self.missing("text"))?;
        if t.is_empty() {
            return Err(ActionError::Invalid(format!(
                "the {} action needs non-empty text",
                self.action
            )));
        }
        if t.len() > MAX_TYPE_TEXT {
            return Err(ActionError::Invalid(format!(
                "the text is {} bytes long, over the {MAX_TYPE_TEXT}-byte limit",
                t.len()
            )));
        }
        Ok(t)
    }

    fn combo(&self, t: Option<&str>) -> Result<String, ActionError> {
        let t = t.ok_or_else(|| self.missing("text"))?;
        validate_key_combo(t)?;
        Ok(t.to_string())
    }

    fn optional_combo(&self, t: Option<&str>) -> Result<Option<String>, ActionError> {
        t.map(|t| self.combo(Some(t))).transpose()
    }

    fn seconds(&self, s: f64) -> Result<u32, ActionError> {
        let max = f64::from(MAX_WAIT_MS) / 1000.0;
        if !s.is_finite() || !(0.0..=max).contains(&s) {
            return Err(ActionError::Invalid(format!(
                "duration must be 0 to {max} seconds, not {s}"
            )));
        }
        Ok((s * 1000.0).round() as u32)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_file_write_records_its_size_and_hash_but_never_its_bytes() {
        let a = Action::write_file("/root/a.txt", b"secret".to_vec()).unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("secret") && !json.contains("content"), "{json}");
        assert!(json.contains("\"size\":6"), "{json}");
        assert!(
            json.contains("2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"),
            "{json}"
        );
        assert_eq!(a.kind(), ActionKind::WriteFile);
    }

    #[test]
    fn file_paths_must_be_absolute_and_normalised_but_system_trees_are_left_to_the_policy() {
        assert!(Action::read_file("root/a", 0).is_err());
        assert!(Action::read_file("/root/../etc/shadow", 0).is_err());
        assert!(Action::read_file("/root/a\0b", 0).is_err());
        assert!(Action::list_files("/root//a").is_err());
        assert!(Action::read_file("/proc/self/environ", 0).is_ok());
        assert!(Action::write_file("/root/big", vec![0; (MAX_AGENT_FILE + 1) as usize]).is_err());
    }

    const SCREEN: Screen = Screen {
        width: 1280,
        height: 800,
    };

    fn a(v: serde_json::Value) -> Result<Action, ActionError> {
        Action::from_anthropic(&v, SCREEN)
    }

    fn o(v: serde_json::Value) -> Result<Action, ActionError> {
        Action::from_openai(&v, SCREEN)
    }

    #[test]
    fn anthropic_actions_parse() {
        assert_eq!(
            a(json!({"action": "key", "text": "ctrl+s"})).unwrap(),
            Action::Key {
                combo: "ctrl+s".into()
            }
        );
        assert_eq!(
            a(json!({"action": "type", "text": "hi"})).unwrap(),
            Action::Type { text: "hi".into() }
        );
        assert_eq!(
            a(json!({"action": "mouse_move", "coordinate": [10, 20]})).unwrap(),
            Action::MouseMove {
                to: Point { x: 10, y: 20 }
            }
        );
        assert_eq!(
            a(json!({"action": "left_click", "coordinate": [1, 2]})).unwrap(),
            Action::Click {
                at: Some(Point { x: 1, y: 2 }),
                button: MouseButton::Left,
                count: 1,
                hold: None
            }
        );
        assert_eq!(
            a(json!({"action": "left_click", "coordinate": [1, 2], "text": "shift"}))
                .unwrap()
                .key_combo(),
            Some("shift".into())
        );
        assert_eq!(
            a(json!({"action": "left_click"})).unwrap(),
            Action::Click {
                at: None,
                button: MouseButton::Left,
                count: 1,
                hold: None
            }
        );
        for (name, button, count) in [
            ("right_click", MouseButton::Right, 1),
            ("middle_click", MouseButton::Middle, 1),
            ("double_click", MouseButton::Left, 2),
            ("triple_click", MouseButton::Left, 3),
        ] {
            assert_eq!(
                a(json!({"action": name, "coordinate": [5, 6]})).unwrap(),
                Action::Click {
                    at: Some(Point { x: 5, y: 6 }),
                    button,
                    count,
                    hold: None
                },
                "{name}"
            );
        }
        assert_eq!(
            a(json!({"action": "left_click_drag", "start_coordinate": [1, 1], "coordinate": [100, 50]}))
                .unwrap(),
            Action::Drag {
                path: vec![Point { x: 1, y: 1 }, Point { x: 100, y: 50 }],
                button: MouseButton::Left
            }
        );
        assert_eq!(
            a(json!({"action": "left_mouse_down"})).unwrap(),
            Action::MouseDown {
                button: MouseButton::Left
            }
        );
        assert_eq!(
            a(json!({"action": "left_mouse_up"})).unwrap(),
            Action::MouseUp {
                button: MouseButton::Left
            }
        );
        assert_eq!(
            a(json!({"action": "scroll", "coordinate": [9, 9], "scroll_direction": "up", "scroll_amount": 3}))
                .unwrap(),
            Action::Scroll { at: Some(Point { x: 9, y: 9 }), dx: 0, dy: -3, hold: None }
        );
        assert_eq!(
            a(json!({"action": "hold_key", "text": "shift", "duration": 0.5})).unwrap(),
            Action::HoldKey {
                combo: "shift".into(),
                duration_ms: 500
            }
        );
        assert_eq!(
            a(json!({"action": "wait", "duration": 2})).unwrap(),
            Action::Wait { duration_ms: 2000 }
        );
        assert_eq!(a(json!({"action": "screenshot"})).unwrap(), Action::Screenshot);
        assert_eq!(
            a(json!({"action": "cursor_position"})).unwrap(),
            Action::CursorPosition
        );
        assert_eq!(
            a(json!({"action": "zoom", "region": [0, 0, 640, 400]})).unwrap(),
            Action::Zoom {
                region: Region {
                    from: Point { x: 0, y: 0 },
                    to: Point { x: 640, y: 400 }
                }
            }
        );
    }

    #[test]
    fn openai_actions_parse() {
        assert_eq!(
            o(json!({"type": "click", "button": "right", "x": 3, "y": 4})).unwrap(),
            Action::Click {
                at: Some(Point { x: 3, y: 4 }),
                button: MouseButton::Right,
                count: 1,
                hold: None
            }
        );
        assert_eq!(
            o(json!({"type": "click", "button": "wheel", "x": 3, "y": 4}))
                .unwrap()
                .kind(),
            ActionKind::Click
        );
        assert_eq!(
            o(json!({"type": "double_click", "x": 3, "y": 4})).unwrap(),
            Action::Click {
                at: Some(Point { x: 3, y: 4 }),
                button: MouseButton::Left,
                count: 2,
                hold: None
            }
        );
        assert_eq!(
            o(json!({"type": "drag", "path": [{"x": 1, "y": 1}, {"x": 5, "y": 5}, {"x": 9, "y": 2}]}))
                .unwrap(),
            Action::Drag {
                path: vec![Point { x: 1, y: 1 }, Point { x: 5, y: 5 }, Point { x: 9, y: 2 }],
                button: MouseButton::Left
            }
        );
        assert_eq!(
            o(json!({"type": "keypress", "keys": ["CTRL", "ALT", "T"]})).unwrap(),
            Action::Key {
                combo: "ctrl+alt+t".into()
            }
        );
        assert_eq!(
            o(json!({"type": "keypress", "keys": ["ENTER"]})).unwrap(),
            Action::Key {
                combo: "Return".into()
            }
        );
        assert_eq!(
            o(json!({"type": "move", "x": 7, "y": 8})).unwrap(),
            Action::MouseMove {
                to: Point { x: 7, y: 8 }
            }
        );
        assert_eq!(
            o(json!({"type": "scroll", "x": 7, "y": 8, "scroll_x": 0, "scroll_y": 250})).unwrap(),
            Action::Scroll {
                at: Some(Point { x: 7, y: 8 }),
                dx: 0,
                dy: 3,
                hold: None
            }
        );
        assert_eq!(
            o(json!({"type": "type", "text": "abc"})).unwrap(),
            Action::Type { text: "abc".into() }
        );
        assert_eq!(
            o(json!({"type": "wait"})).unwrap(),
            Action::Wait { duration_ms: 2000 }
        );
        assert_eq!(o(json!({"type": "screenshot"})).unwrap(), Action::Screenshot);
    }

    #[test]
    fn bad_actions_are_clear_errors() {
        let e = a(json!({"action": "teleport"})).unwrap_err();
        assert!(matches!(e, ActionError::Unknown { .. }), "{e}");
        assert!(e.to_string().contains("teleport"));
        let e = o(json!({"type": "teleport", "x": 1})).unwrap_err();
        assert!(matches!(e, ActionError::Unknown { .. }), "{e}");
        let e = a(json!({"action": "left_click", "coordinate": [1280, 5]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the point (1280, 5) is outside the 1280x800 screen"
        );
        let e = o(json!({"type": "move", "x": -1, "y": 5})).unwrap_err();
        assert!(matches!(e, ActionError::OffScreen { .. }), "{e}");
        let e = a(json!({"action": "type"})).unwrap_err();
        assert_eq!(e.to_string(), "the type action needs `text`");
        let e = a(json!({"action": "type", "text": "x", "coordinate": [1, 1]})).unwrap_err();
        assert_eq!(e.to_string(), "the type action does not take `coordinate`");
        let e = a(json!({"action": "type", "text": "x", "colour": "red"})).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = o(json!({"type": "click", "x": 1, "y": 1, "button": "left", "extra": 1})).unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
        let e = a(json!({"action": "type", "text": "x".repeat(MAX_TYPE_TEXT + 1)})).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        let e = a(json!({"action": "key", "text": "ctrl+$(reboot)"})).unwrap_err();
        assert!(e.to_string().contains("not a key name"), "{e}");
        let e = a(json!({"action": "wait", "duration": 1e9})).unwrap_err();
        assert!(e.to_string().contains("duration"), "{e}");
        let e = a(json!({"action": "scroll", "coordinate": [1, 1], "scroll_direction": "sideways", "scroll_amount": 1}))
            .unwrap_err();
        assert!(e.to_string().contains("sideways"), "{e}");
        let e = a(json!({"action": "zoom", "region": [10, 10, 5, 5]})).unwrap_err();
        assert!(e.to_string().contains("top-left"), "{e}");
        let e = a(json!("screenshot")).unwrap_err();
        assert!(matches!(e, ActionError::Malformed(_)), "{e}");
        assert!(Action::exec(vec![], String::new(), None).is_err());
    }

    #[test]
    fn guest_inputs_follow_the_action() {
        let click = Action::Click {
            at: Some(Point { x: 1, y: 2 }),
            button: MouseButton::Left,
            count: 2,
            hold: Some("shift".into()),
        };
        assert_eq!(
            click.guest_inputs(None),
            vec![
                Input::KeyState {
                    combo: "shift".into(),
                    down: true
                },
                Input::Click {
                    x: 1,
                    y: 2,
                    button: Button::Left,
                    count: 2
                },
                Input::KeyState {
                    combo: "shift".into(),
                    down: false
                },
            ]
        );
        assert!(Action::Screenshot.guest_inputs(None).is_empty());
        assert_eq!(normalise_combo("Control+ALT+Delete"), "ctrl+alt+delete");
    }
}
