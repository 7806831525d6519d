//! Windows and selections, read straight from the X server: which top-level window has the focus
//! or lies under a point (id, title, `WM_CLASS`), and what a paste would insert.
//!
//! The host judges keystrokes by the window they reach (a terminal's line is a command), so this
//! answers from X properties, never from a guess. Everything read is cut to the protocol's limits.

use std::time::{Duration, Instant};

use airlock_protocol::{SelectionKind, WindowInfo, MAX_SELECTION_TEXT, MAX_WINDOW_TEXT};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

/// How deep to look, up or down the window tree, for the window that carries `WM_CLASS`.
const MAX_TREE_STEPS: usize = 8;
/// How long a selection owner has to answer.
const SELECTION_TIMEOUT: Duration = Duration::from_millis(1500);

/// The focused top-level window (`at: None`) or the one under a point; an empty [`WindowInfo`]
/// (id 0) when there is none.
pub fn window(conn: &RustConnection, root: Window, at: Option<(u16, u16)>) -> Result<WindowInfo, String> {
    let start = match at {
        Some((x, y)) => under_point(conn, root, x, y)?,
        None => focused(conn, root)?,
    };
    let Some(start) = start else {
        return Ok(WindowInfo::default());
    };
    let Some(client) = client_of(conn, root, start, at)? else {
        return Ok(WindowInfo {
            id: start,
            ..WindowInfo::default()
        });
    };
    let (instance, class) = wm_class(conn, client)?.unwrap_or_default();
    Ok(WindowInfo {
        id: client,
        title: cut(title(conn, client)?, MAX_WINDOW_TEXT),
        class: cut(class, MAX_WINDOW_TEXT),
        instance: cut(instance, MAX_WINDOW_TEXT),
    })
}

/// What a paste from `which` would insert: (text, whether it was cut). An unowned selection is "".
pub fn selection(which: SelectionKind) -> Result<(String, bool), String> {
    let (conn, screen) = x11rb::connect(None).map_err(|e| format!("cannot connect to the X server: {e}"))?;
    let root = conn.setup().roots[screen].root;
    let selection = match which {
        SelectionKind::Primary => Atom::from(AtomEnum::PRIMARY),
        SelectionKind::Clipboard => atom(&conn, b"CLIPBOARD")?,
    };
    let owner = conn
        .get_selection_owner(selection)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?
        .owner;
    if owner == x11rb::NONE {
        // Nobody owns it: xterm then pastes CUT_BUFFER0 (which it also sets when it selects), so
        // that is what a paste of the primary selection would insert.
        return match which {
            SelectionKind::Primary => cut_buffer(&conn, root),
            SelectionKind::Clipboard => Ok((String::new(), false)),
        };
    }
    let win = conn.generate_id().map_err(x_err)?;
    conn.create_window(
        0,
        win,
        root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_ONLY,
        0,
        &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
    )
    .map_err(x_err)?;
    let property = atom(&conn, b"AIRLOCK_SELECTION")?;
    let utf8 = atom(&conn, b"UTF8_STRING")?;
    let incr = atom(&conn, b"INCR")?;
    for target in [utf8, Atom::from(AtomEnum::STRING)] {
        conn.convert_selection(win, selection, target, property, x11rb::CURRENT_TIME)
            .map_err(x_err)?;
        conn.flush().map_err(x_err)?;
        if !wait_for_notify(&conn, win)? {
            continue; // the owner cannot convert to this target
        }
        let limit = (MAX_SELECTION_TEXT as u32).div_ceil(4) + 1;
        let r = conn
            .get_property(true, win, property, AtomEnum::ANY, 0, limit)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        if r.type_ == incr {
            return Err(format!(
                "the selection is too large to read (its owner sends it in parts; the limit is {MAX_SELECTION_TEXT} bytes)"
            ));
        }
        let truncated = r.bytes_after > 0 || r.value.len() > MAX_SELECTION_TEXT;
        let text = cut(String::from_utf8_lossy(&r.value).into_owned(), MAX_SELECTION_TEXT);
        return Ok((text, truncated));
    }
    Err("the selection's owner did not convert it to text".into())
}

/// The text of `CUT_BUFFER0` on the root window ("" when unset).
fn cut_buffer(conn: &RustConnection, root: Window) -> Result<(String, bool), String> {
    let limit = (MAX_SELECTION_TEXT as u32).div_ceil(4) + 1;
    let r = conn
        .get_property(false, root, AtomEnum::CUT_BUFFE_R0, AtomEnum::STRING, 0, limit)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    let truncated = r.bytes_after > 0 || r.value.len() > MAX_SELECTION_TEXT;
    Ok((
        cut(String::from_utf8_lossy(&r.value).into_owned(), MAX_SELECTION_TEXT),
        truncated,
    ))
}

/// Waits for the `SelectionNotify` to `win`; `false` when the owner refused the conversion.
fn wait_for_notify(conn: &RustConnection, win: Window) -> Result<bool, String> {
    let deadline = Instant::now() + SELECTION_TIMEOUT;
    loop {
        while let Some(ev) = conn.poll_for_event().map_err(x_err)? {
            if let Event::SelectionNotify(n) = ev {
                if n.requestor == win {
                    return Ok(n.property != x11rb::NONE);
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the selection's owner did not answer within {} ms",
                SELECTION_TIMEOUT.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The window keys go to: the input focus, or with focus `PointerRoot` (or on the root) the
/// top-level window under the pointer; `None` when keys go nowhere (focus `None`).
fn focused(conn: &RustConnection, root: Window) -> Result<Option<Window>, String> {
    let focus = conn
        .get_input_focus()
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?
        .focus;
    match focus {
        0 => Ok(None),
        f if f != 1 && f != root => Ok(Some(f)),
        _ => {
            let p = conn.query_pointer(root).map_err(x_err)?.reply().map_err(x_err)?;
            Ok((p.child != x11rb::NONE).then_some(p.child))
        }
    }
}

fn under_point(conn: &RustConnection, root: Window, x: u16, y: u16) -> Result<Option<Window>, String> {
    let r = conn
        .translate_coordinates(root, root, x as i16, y as i16)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    Ok((r.child != x11rb::NONE).then_some(r.child))
}

/// The window carrying `WM_CLASS` for `start`: itself, an ancestor below the root (the focus may
/// sit on a widget inside the client), or a descendant (a window manager's frame) — under the
/// point when one is given, else the first child that has one.
fn client_of(
    conn: &RustConnection,
    root: Window,
    start: Window,
    at: Option<(u16, u16)>,
) -> Result<Option<Window>, String> {
    let mut w = start;
    for _ in 0..MAX_TREE_STEPS {
        if wm_class(conn, w)?.is_some() {
            return Ok(Some(w));
        }
        let tree = conn.query_tree(w).map_err(x_err)?.reply().map_err(x_err)?;
        if tree.parent == root || tree.parent == x11rb::NONE {
            break;
        }
        w = tree.parent;
    }
    let mut w = start;
    for _ in 0..MAX_TREE_STEPS {
        let next = match at {
            Some((x, y)) => {
                let r = conn
                    .translate_coordinates(root, w, x as i16, y as i16)
                    .map_err(x_err)?
                    .reply()
                    .map_err(x_err)?;
                r.child
            }
            None => {
                let tree = conn.query_tree(w).map_err(x_err)?.reply().map_err(x_err)?;
                let mut found = x11rb::NONE;
                for c in tree.children.iter().rev() {
                    if wm_class(conn, *c)?.is_some() {
                        found = *c;
                        break;
                    }
                }
                found
            }
        };
        if next == x11rb::NONE {
            return Ok(None);
        }
        if wm_class(conn, next)?.is_some() {
            return Ok(Some(next));
        }
        w = next;
    }
    Ok(None)
}

/// `WM_CLASS` as (instance, class), when the window has it.
fn wm_class(conn: &RustConnection, w: Window) -> Result<Option<(String, String)>, String> {
    let r = conn
        .get_property(false, w, AtomEnum::WM_CLASS, AtomEnum::STRING, 0, 256)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    if r.value.is_empty() {
        return Ok(None);
    }
    let mut parts = r.value.split(|b| *b == 0);
    let instance = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let class = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    Ok(Some((instance, class)))
}

/// `_NET_WM_NAME` (UTF-8), else `WM_NAME`.
fn title(conn: &RustConnection, w: Window) -> Result<String, String> {
    let net = atom(conn, b"_NET_WM_NAME")?;
    let limit = (MAX_WINDOW_TEXT as u32).div_ceil(4) + 1;
    for prop in [net, Atom::from(AtomEnum::WM_NAME)] {
        let r = conn
            .get_property(false, w, prop, AtomEnum::ANY, 0, limit)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        if !r.value.is_empty() {
            return Ok(String::from_utf8_lossy(&r.value).into_owned());
        }
    }
    Ok(String::new())
}

fn atom(conn: &RustConnection, name: &[u8]) -> Result<Atom, String> {
    Ok(conn
        .intern_atom(false, name)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?
        .atom)
}

fn x_err(e: impl std::fmt::Display) -> String {
    format!("the X server refused a window query: {e}")
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cutting_keeps_whole_characters() {
        assert_eq!(cut("héllo".into(), 2), "h");
        assert_eq!(cut("héllo".into(), 3), "hé");
        assert_eq!(cut("abc".into(), 10), "abc");
    }
}
