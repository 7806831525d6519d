//! The X display: pointer input through XTest; single keys pressed or released through XTest
//! directly (the operator's live keyboard: no process per key); combos and text through xdotool
//! (also XTest, with its keymap handling); pointer queries.

use std::process::Command;
use std::sync::Mutex;

use airlock_protocol::Input;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::cookie::Cookie;
use x11rb::errors::{ConnectionError, ReplyError};
use x11rb::protocol::xproto::{
    ConnectionExt as _, Keycode, Keysym, Window, BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT,
    KEY_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;
use x11rb::x11_utils::TryParse;

use crate::window::WindowError;

/// A connection to the guest's X server.
pub struct Display {
    conn: Mutex<RustConnection>,
    root: Window,
    /// Screen width.
    pub width: u16,
    /// Screen height.
    pub height: u16,
}

/// What an input produced.
pub enum InputOutcome {
    /// Done.
    Done,
    /// Pointer position (for `QueryPointer`).
    Pointer(u16, u16),
}

/// Why [`Display::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No X server answered on `$DISPLAY` within the wait.
    #[error("cannot connect to the X server")]
    Connect(#[source] x11rb::errors::ConnectError),
    /// The server does not offer XTest, which every input goes through.
    #[error("the X server has no XTest")]
    NoXTest(#[source] ReplyError),
}

/// Why an input could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A thread panicked while it held the X connection.
    #[error("the X connection is unusable: a thread panicked while holding it")]
    Poisoned,
    /// A drag needs at least its starting point (validation normally rejects this first).
    #[error("a drag needs at least one point, got an empty path")]
    EmptyDrag,
    /// An XTest event could not be sent.
    #[error("cannot send a fake {event} to the X server")]
    Fake {
        /// The event, e.g. "button 1 press".
        event: String,
        /// The connection's error.
        #[source]
        source: ConnectionError,
    },
    /// The round trip after the events failed, so they may not have been processed.
    #[error("the X server did not confirm the input")]
    Sync(#[source] ReplyError),
    /// The keymap could not be read to find a key's keycode.
    #[error("cannot read the keyboard mapping to find the key {key:?}")]
    KeyboardMapping {
        /// The key asked for.
        key: String,
        /// The server's error.
        #[source]
        source: ReplyError,
    },
    /// The pointer position could not be read.
    #[error("cannot query the pointer position")]
    QueryPointer(#[source] ReplyError),
    /// xdotool could not be started.
    #[error("cannot run xdotool {command}")]
    XdotoolSpawn {
        /// Its subcommand.
        command: String,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// xdotool ran and failed.
    #[error("xdotool {command} failed: {stderr}")]
    Xdotool {
        /// Its subcommand.
        command: String,
        /// What it wrote to stderr, trimmed.
        stderr: String,
    },
}

/// Sends a request and waits for its reply: one result for both steps.
pub fn reply<C, R>(cookie: Result<Cookie<'_, C, R>, ConnectionError>) -> Result<R, ReplyError>
where
    C: RequestConnection + ?Sized,
    R: TryParse,
{
    cookie?.reply()
}

impl Display {
    /// Connects to `$DISPLAY`, waiting up to 30 s for the server.
    pub fn connect() -> Result<Display, ConnectError> {
        let mut attempts = 0;
        let (conn, screen) = loop {
            match x11rb::connect(None) {
                Ok(c) => break c,
                Err(e) if attempts >= 299 => return Err(ConnectError::Connect(e)),
                Err(_) => attempts += 1,
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let s = &conn.setup().roots[screen];
        let (root, width, height) = (s.root, s.width_in_pixels, s.height_in_pixels);
        reply(conn.xtest_get_version(2, 2)).map_err(ConnectError::NoXTest)?;
        Ok(Display {
            conn: Mutex::new(conn),
            root,
            width,
            height,
        })
    }

    /// Carries out one (already validated) input.
    pub fn input(&self, input: &Input) -> Result<InputOutcome, InputError> {
        match input {
            Input::MouseMove { x, y } => self.pointer(|c, r| motion(c, r, *x, *y)),
            Input::Button { button, down } => self.pointer(|c, r| press(c, r, button.x11(), *down)),
            Input::Click { x, y, button, count } => self.pointer(|c, r| {
                motion(c, r, *x, *y)?;
                for _ in 0..*count {
                    press(c, r, button.x11(), true)?;
                    press(c, r, button.x11(), false)?;
                }
                Ok(())
            }),
            Input::Drag { path, button } => self.pointer(|c, r| {
                let (first, rest) = path.split_first().ok_or(InputError::EmptyDrag)?;
                motion(c, r, first.0, first.1)?;
                press(c, r, button.x11(), true)?;
                sync(c)?;
                for (x, y) in rest {
                    motion(c, r, *x, *y)?;
                    sync(c)?;
                }
                press(c, r, button.x11(), false)
            }),
            Input::Scroll { x, y, dx, dy } => self.pointer(|c, r| {
                motion(c, r, *x, *y)?;
                let wheel = |c: &RustConnection, n: i16, neg: u8, pos: u8| -> Result<(), InputError> {
                    let b = if n < 0 { neg } else { pos };
                    for _ in 0..n.unsigned_abs() {
                        press(c, r, b, true)?;
                        press(c, r, b, false)?;
                    }
                    Ok(())
                };
                wheel(c, *dy, 4, 5)?;
                wheel(c, *dx, 6, 7)
            }),
            Input::Key { combo } => xdotool(&["key", "--", combo]),
            Input::KeyState { combo, down } => match self.keycode_of(combo)? {
                Some(code) => self.key(code, *down),
                None => xdotool(&[if *down { "keydown" } else { "keyup" }, "--", combo]),
            },
            Input::Type { text } => {
                if text.is_empty() {
                    Ok(InputOutcome::Done)
                } else {
                    xdotool(&["type", "--delay", "4", "--", text])
                }
            }
            Input::QueryPointer => {
                let conn = self.conn.lock().map_err(|_| InputError::Poisoned)?;
                let r = reply(conn.query_pointer(self.root)).map_err(InputError::QueryPointer)?;
                Ok(InputOutcome::Pointer(
                    r.root_x.max(0) as u16,
                    r.root_y.max(0) as u16,
                ))
            }
        }
    }

    /// The focused top-level window, or the one under a point (see [`crate::window::window`]).
    pub fn window(&self, at: Option<(u16, u16)>) -> Result<airlock_protocol::WindowInfo, WindowError> {
        let conn = self.conn.lock().map_err(|_| WindowError::Poisoned)?;
        crate::window::window(&conn, self.root, at)
    }

    /// The keycode that types a single keysym named as a letter, a digit or `0x…` hex, when the
    /// current keymap has one (in its unshifted or shifted column); `None` sends the key through
    /// xdotool, which remaps a spare keycode for keysyms the keymap lacks.
    fn keycode_of(&self, name: &str) -> Result<Option<Keycode>, InputError> {
        let Some(sym) = parse_keysym(name) else {
            return Ok(None);
        };
        let conn = self.conn.lock().map_err(|_| InputError::Poisoned)?;
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let map = reply(conn.get_keyboard_mapping(min, max - min + 1)).map_err(|source| {
            InputError::KeyboardMapping {
                key: name.to_string(),
                source,
            }
        })?;
        let per = usize::from(map.keysyms_per_keycode).max(1);
        Ok(map
            .keysyms
            .chunks(per)
            .position(|syms| syms.iter().take(2).any(|s| *s == sym))
            .map(|i| min + i as u8))
    }

    fn key(&self, code: Keycode, down: bool) -> Result<InputOutcome, InputError> {
        let conn = self.conn.lock().map_err(|_| InputError::Poisoned)?;
        let t = if down { KEY_PRESS_EVENT } else { KEY_RELEASE_EVENT };
        conn.xtest_fake_input(t, code, 0, self.root, 0, 0, 0)
            .map_err(|source| InputError::Fake {
                event: format!("keycode {code} {}", if down { "press" } else { "release" }),
                source,
            })?;
        sync(&conn)?;
        Ok(InputOutcome::Done)
    }

    fn pointer(
        &self,
        f: impl FnOnce(&RustConnection, Window) -> Result<(), InputError>,
    ) -> Result<InputOutcome, InputError> {
        let conn = self.conn.lock().map_err(|_| InputError::Poisoned)?;
        f(&conn, self.root)?;
        sync(&conn)?;
        Ok(InputOutcome::Done)
    }
}

fn motion(c: &RustConnection, root: Window, x: u16, y: u16) -> Result<(), InputError> {
    c.xtest_fake_input(MOTION_NOTIFY_EVENT, 0, 0, root, x as i16, y as i16, 0)
        .map_err(|source| InputError::Fake {
            event: format!("pointer motion to ({x}, {y})"),
            source,
        })?;
    Ok(())
}

fn press(c: &RustConnection, root: Window, button: u8, down: bool) -> Result<(), InputError> {
    let t = if down {
        BUTTON_PRESS_EVENT
    } else {
        BUTTON_RELEASE_EVENT
    };
    c.xtest_fake_input(t, button, 0, root, 0, 0, 0)
        .map_err(|source| InputError::Fake {
            event: format!("button {button} {}", if down { "press" } else { "release" }),
            source,
        })?;
    Ok(())
}

/// A round trip, so the server has processed everything sent before it.
fn sync(c: &RustConnection) -> Result<(), InputError> {
    reply(c.get_input_focus()).map_err(InputError::Sync)?;
    Ok(())
}

/// A keysym named as one ASCII letter or digit, or as `0x…` hex.
fn parse_keysym(name: &str) -> Option<Keysym> {
    if let Some(hex) = name.strip_prefix("0x") {
        return Keysym::from_str_radix(hex, 16).ok().filter(|k| *k != 0);
    }
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphanumeric() => Some(c as Keysym),
        _ => None,
    }
}

fn xdotool(args: &[&str]) -> Result<InputOutcome, InputError> {
    let command = args.first().copied().unwrap_or_default().to_string();
    let out = Command::new("xdotool")
        .args(args)
        .output()
        .map_err(|source| InputError::XdotoolSpawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(InputOutcome::Done)
    } else {
        Err(InputError::Xdotool {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod keysym_tests {
    use super::parse_keysym;

    #[test]
    fn keysym_names() {
        assert_eq!(parse_keysym("a"), Some(0x61));
        assert_eq!(parse_keysym("Z"), Some(0x5a));
        assert_eq!(parse_keysym("0xff0d"), Some(0xff0d));
        assert_eq!(parse_keysym("0x0"), None);
        assert_eq!(parse_keysym("Return"), None);
        assert_eq!(parse_keysym("ctrl+s"), None);
        assert_eq!(parse_keysym("0xzz"), None);
    }
}
