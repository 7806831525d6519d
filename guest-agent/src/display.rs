//! The X display: pointer input through XTest; single keys pressed or released through XTest
//! directly (the operator's live keyboard: no process per key); combos and text through xdotool
//! (also XTest, with its keymap handling); pointer queries.

use std::process::Command;
use std::sync::Mutex;

use airlock_protocol::Input;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, Keycode, Keysym, Window, BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT,
    KEY_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

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

impl Display {
    /// Connects to `$DISPLAY`, waiting up to 30 s for the server.
    pub fn connect() -> Result<Display, String> {
        let mut last = String::new();
        for _ in 0..300 {
            match x11rb::connect(None) {
                Ok((conn, screen)) => {
                    let s = &conn.setup().roots[screen];
                    let (root, width, height) = (s.root, s.width_in_pixels, s.height_in_pixels);
                    conn.xtest_get_version(2, 2)
                        .map_err(|e| e.to_string())?
                        .reply()
                        .map_err(|e| format!("the X server has no XTest: {e}"))?;
                    return Ok(Display {
                        conn: Mutex::new(conn),
                        root,
                        width,
                        height,
                    });
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(format!("cannot connect to the X server: {last}"))
    }

    /// Carries out one (already validated) input.
    pub fn input(&self, input: &Input) -> Result<InputOutcome, String> {
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
                let (first, rest) = path.split_first().ok_or("empty drag path")?;
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
                let wheel = |c: &RustConnection, n: i16, neg: u8, pos: u8| -> Result<(), String> {
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
                let conn = self.conn.lock().map_err(|_| "display lock poisoned")?;
                let r = conn
                    .query_pointer(self.root)
                    .map_err(|e| e.to_string())?
                    .reply()
                    .map_err(|e| e.to_string())?;
                Ok(InputOutcome::Pointer(
                    r.root_x.max(0) as u16,
                    r.root_y.max(0) as u16,
                ))
            }
        }
    }

    /// The focused top-level window, or the one under a point (see [`crate::window::window`]).
    pub fn window(&self, at: Option<(u16, u16)>) -> Result<airlock_protocol::WindowInfo, String> {
        let conn = self.conn.lock().map_err(|_| "display lock poisoned")?;
        crate::window::window(&conn, self.root, at)
    }

    /// The keycode that types a single keysym named as a letter, a digit or `0x…` hex, when the
    /// current keymap has one (in its unshifted or shifted column); `None` sends the key through
    /// xdotool, which remaps a spare keycode for keysyms the keymap lacks.
    fn keycode_of(&self, name: &str) -> Result<Option<Keycode>, String> {
        let Some(sym) = parse_keysym(name) else {
            return Ok(None);
        };
        let conn = self.conn.lock().map_err(|_| "display lock poisoned")?;
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let map = conn
            .get_keyboard_mapping(min, max - min + 1)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?;
        let per = usize::from(map.keysyms_per_keycode).max(1);
        Ok(map
            .keysyms
            .chunks(per)
            .position(|syms| syms.iter().take(2).any(|s| *s == sym))
            .map(|i| min + i as u8))
    }

    fn key(&self, code: Keycode, down: bool) -> Result<InputOutcome, String> {
        let conn = self.conn.lock().map_err(|_| "display lock poisoned")?;
        let t = if down { KEY_PRESS_EVENT } else { KEY_RELEASE_EVENT };
        conn.xtest_fake_input(t, code, 0, self.root, 0, 0, 0)
            .map_err(|e| e.to_string())?;
        sync(&conn)?;
        Ok(InputOutcome::Done)
    }

    fn pointer(
        &self,
        f: impl FnOnce(&RustConnection, Window) -> Result<(), String>,
    ) -> Result<InputOutcome, String> {
        let conn = self.conn.lock().map_err(|_| "display lock poisoned")?;
        f(&conn, self.root)?;
        sync(&conn)?;
        Ok(InputOutcome::Done)
    }
}

fn motion(c: &RustConnection, root: Window, x: u16, y: u16) -> Result<(), String> {
    c.xtest_fake_input(MOTION_NOTIFY_EVENT, 0, 0, root, x as i16, y as i16, 0)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn press(c: &RustConnection, root: Window, button: u8, down: bool) -> Result<(), String> {
    let t = if down {
        BUTTON_PRESS_EVENT
    } else {
        BUTTON_RELEASE_EVENT
    };
    c.xtest_fake_input(t, button, 0, root, 0, 0, 0)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A round trip, so the server has processed everything sent before it.
fn sync(c: &RustConnection) -> Result<(), String> {
    c.get_input_focus()
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?;
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

fn xdotool(args: &[&str]) -> Result<InputOutcome, String> {
    let out = Command::new("xdotool")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run xdotool: {e}"))?;
    if out.status.success() {
        Ok(InputOutcome::Done)
    } else {
        Err(format!(
            "xdotool {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        ))
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
