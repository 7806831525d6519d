//! Windows and selections, read straight from the X server: which top-level window has the focus
//! or lies under a point (id, title, `WM_CLASS`), and what a paste would insert.
//!
//! The host judges keystrokes by the window they reach (a terminal's line is a command), so this
//! answers from X properties, never from a guess. Everything read is cut to the protocol's limits.

use std::time::{Duration, Instant};

use airlock_protocol::{SelectionKind, WindowInfo, MAX_SELECTION_TEXT, MAX_WINDOW_TEXT};
use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use crate::display::reply;

/// How deep to look, up or down the window tree, for the window that carries `WM_CLASS`.
const MAX_TREE_STEPS: usize = 8;
/// How long a selection owner has to answer.
const SELECTION_TIMEOUT: Duration = Duration::from_millis(1500);

/// Why the focused window, or the one under a point, could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// A thread panicked while it held the X connection.
    #[error("the X connection is unusable: a thread panicked while holding it")]
    Poisoned,
    /// The input focus could not be read.
    #[error("cannot read the input focus")]
    Focus(#[source] ReplyError),
    /// The pointer could not be queried (focus `PointerRoot`).
    #[error("cannot find the window under the pointer")]
    Pointer(#[source] ReplyError),
    /// The window under a point could not be found.
    #[error("cannot find the window under ({x}, {y}) in window {window:#x}")]
    UnderPoint {
        /// Where.
        x: u16,
        /// Where.
        y: u16,
        /// The window whose children were searched.
        window: Window,
        /// The server's error.
        #[source]
        source: ReplyError,
    },
    /// A window's parent or children could not be read.
    #[error("cannot read the window tree at window {window:#x}")]
    Tree {
        /// The window.
        window: Window,
        /// The server's error.
        #[source]
        source: ReplyError,
    },
    /// A property could not be read.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// An atom could not be interned.
    #[error(transparent)]
    Atom(#[from] AtomError),
}

/// Why a selection could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    /// No X server to ask.
    #[error("cannot connect to the X server")]
    Connect(#[source] x11rb::errors::ConnectError),
    /// The selection's owner could not be read.
    #[error("cannot read the owner of the {which} selection")]
    Owner {
        /// Which selection, by its atom's name.
        which: &'static str,
        /// The server's error.
        #[source]
        source: ReplyError,
    },
    /// The window that receives the conversion could not be created.
    #[error("cannot create a window to receive the selection")]
    CreateWindow(#[source] ReplyOrIdError),
    /// The conversion could not be asked for.
    #[error("cannot ask the selection's owner to convert it")]
    Convert(#[source] ConnectionError),
    /// Reading events while waiting for the owner failed.
    #[error("the X connection failed while waiting for the selection's owner")]
    Events(#[source] ConnectionError),
    /// The owner did not answer in time.
    #[error("the selection's owner did not answer within {ms} ms")]
    Timeout {
        /// The wait, in milliseconds.
        ms: u128,
    },
    /// The owner sends the selection in parts (INCR), which is not read.
    #[error("the selection is too large to read (its owner sends it in parts; the limit is {limit} bytes)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The owner converted it to neither UTF8_STRING nor STRING.
    #[error("the selection's owner did not convert it to text")]
    NotText,
    /// A property could not be read.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// An atom could not be interned.
    #[error(transparent)]
    Atom(#[from] AtomError),
}

/// A window property that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the property {property} of window {window:#x}")]
pub struct PropertyError {
    property: &'static str,
    window: Window,
    #[source]
    source: ReplyError,
}

/// An atom that could not be interned.
#[derive(Debug, thiserror::Error)]
#[error("cannot intern the atom {name}")]
pub struct AtomError {
    name: &'static str,
    #[source]
    source: ReplyError,
}

/// The focused top-level window (`at: None`) or the one under a point; an empty [`WindowInfo`]
/// (id 0) when there is none.
pub fn window(
    conn: &RustConnection,
    root: Window,
    at: Option<(u16, u16)>,
) -> Result<WindowInfo, WindowError> {
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
pub fn selection(which: SelectionKind) -> Result<(String, bool), SelectionError> {
    let (conn, screen) = x11rb::connect(None).map_err(SelectionError::Connect)?;
    let root = conn.setup().roots[screen].root;
    let (selection, name) = match which {
        SelectionKind::Primary => (Atom::from(AtomEnum::PRIMARY), "PRIMARY"),
        SelectionKind::Clipboard => (atom(&conn, "CLIPBOARD")?, "CLIPBOARD"),
    };
    let owner = reply(conn.get_selection_owner(selection))
        .map_err(|source| SelectionError::Owner { which: name, source })?
        .owner;
    if owner == x11rb::NONE {
        // Nobody owns it: xterm then pastes CUT_BUFFER0 (which it also sets when it selects), so
        // that is what a paste of the primary selection would insert.
        return match which {
            SelectionKind::Primary => cut_buffer(&conn, root),
            SelectionKind::Clipboard => Ok((String::new(), false)),
        };
    }
    let win = conn.generate_id().map_err(SelectionError::CreateWindow)?;
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
    .map_err(|e| SelectionError::CreateWindow(e.into()))?;
    let property = atom(&conn, "AIRLOCK_SELECTION")?;
    let utf8 = atom(&conn, "UTF8_STRING")?;
    let incr = atom(&conn, "INCR")?;
    for target in [utf8, Atom::from(AtomEnum::STRING)] {
        conn.convert_selection(win, selection, target, property, x11rb::CURRENT_TIME)
            .map_err(SelectionError::Convert)?;
        conn.flush().map_err(SelectionError::Convert)?;
        if !wait_for_notify(&conn, win)? {
            continue; // the owner cannot convert to this target
        }
        let limit = (MAX_SELECTION_TEXT as u32).div_ceil(4) + 1;
        let r = reply(conn.get_property(true, win, property, AtomEnum::ANY, 0, limit)).map_err(|source| {
            PropertyError {
                property: "AIRLOCK_SELECTION",
                window: win,
                source,
            }
        })?;
        if r.type_ == incr {
            return Err(SelectionError::TooLarge {
                limit: MAX_SELECTION_TEXT,
            });
        }
        let truncated = r.bytes_after > 0 || r.value.len() > MAX_SELECTION_TEXT;
        let text = cut(String::from_utf8_lossy(&r.value).into_owned(), MAX_SELECTION_TEXT);
        return Ok((text, truncated));
    }
    Err(SelectionError::NotText)
}

/// The text of `CUT_BUFFER0` on the root window ("" when unset).
fn cut_buffer(conn: &RustConnection, root: Window) -> Result<(String, bool), SelectionError> {
    let limit = (MAX_SELECTION_TEXT as u32).div_ceil(4) + 1;
    let r = reply(conn.get_property(false, root, AtomEnum::CUT_BUFFE_R0, AtomEnum::STRING, 0, limit))
        .map_err(|source| PropertyError {
            property: "CUT_BUFFER0",
            window: root,
            source,
        })?;
    let truncated = r.bytes_after > 0 || r.value.len() > MAX_SELECTION_TEXT;
    Ok((
        cut(String::from_utf8_lossy(&r.value).into_owned(), MAX_SELECTION_TEXT),
        truncated,
    ))
}

/// Waits for the `SelectionNotify` to `win`; `false` when the owner refused the conversion.
fn wait_for_notify(conn: &RustConnection, win: Window) -> Result<bool, SelectionError> {
    let deadline = Instant::now() + SELECTION_TIMEOUT;
    loop {
        while let Some(ev) = conn.poll_for_event().map_err(SelectionError::Events)? {
            if let Event::SelectionNotify(n) = ev {
                if n.requestor == win {
                    return Ok(n.property != x11rb::NONE);
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(SelectionError::Timeout {
                ms: SELECTION_TIMEOUT.as_millis(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The window keys go to: the input focus, or with focus `PointerRoot` (or on the root) the
/// top-level window under the pointer; `None` when keys go nowhere (focus `None`).
fn focused(conn: &RustConnection, root: Window) -> Result<Option<Window>, WindowError> {
    let focus = reply(conn.get_input_focus()).map_err(WindowError::Focus)?.focus;
    match focus {
        0 => Ok(None),
        f if f != 1 && f != root => Ok(Some(f)),
        _ => {
            let p = reply(conn.query_pointer(root)).map_err(WindowError::Pointer)?;
            Ok((p.child != x11rb::NONE).then_some(p.child))
        }
    }
}

fn under_point(conn: &RustConnection, root: Window, x: u16, y: u16) -> Result<Option<Window>, WindowError> {
    let child = child_at(conn, root, root, x, y)?;
    Ok((child != x11rb::NONE).then_some(child))
}

/// The child of `w` at root coordinates (`x`, `y`), or `NONE`.
fn child_at(conn: &RustConnection, root: Window, w: Window, x: u16, y: u16) -> Result<Window, WindowError> {
    let r = reply(conn.translate_coordinates(root, w, x as i16, y as i16)).map_err(|source| {
        WindowError::UnderPoint {
            x,
            y,
            window: w,
            source,
        }
    })?;
    Ok(r.child)
}

/// The window carrying `WM_CLASS` for `start`: itself, an ancestor below the root (the focus may
/// sit on a widget inside the client), or a descendant (a window manager's frame) — under the
/// point when one is given, else the first child that has one.
fn client_of(
    conn: &RustConnection,
    root: Window,
    start: Window,
    at: Option<(u16, u16)>,
) -> Result<Option<Window>, WindowError> {
    let tree =
        |w: Window| reply(conn.query_tree(w)).map_err(|source| WindowError::Tree { window: w, source });
    let mut w = start;
    for _ in 0..MAX_TREE_STEPS {
        if wm_class(conn, w)?.is_some() {
            return Ok(Some(w));
        }
        let tree = tree(w)?;
        if tree.parent == root || tree.parent == x11rb::NONE {
            break;
        }
        w = tree.parent;
    }
    let mut w = start;
    for _ in 0..MAX_TREE_STEPS {
        let next = match at {
            Some((x, y)) => child_at(conn, root, w, x, y)?,
            None => {
                let tree = tree(w)?;
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
fn wm_class(conn: &RustConnection, w: Window) -> Result<Option<(String, String)>, PropertyError> {
    let r = reply(conn.get_property(false, w, AtomEnum::WM_CLASS, AtomEnum::STRING, 0, 256)).map_err(
        |source| PropertyError {
            property: "WM_CLASS",
            window: w,
            source,
        },
    )?;
    if r.value.is_empty() {
        return Ok(None);
    }
    let mut parts = r.value.split(|b| *b == 0);
    let instance = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let class = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    Ok(Some((instance, class)))
}

/// `_NET_WM_NAME` (UTF-8), else `WM_NAME`.
fn title(conn: &RustConnection, w: Window) -> Result<String, WindowError> {
    let net = atom(conn, "_NET_WM_NAME")?;
    let limit = (MAX_WINDOW_TEXT as u32).div_ceil(4) + 1;
    for (prop, property) in [(net, "_NET_WM_NAME"), (Atom::from(AtomEnum::WM_NAME), "WM_NAME")] {
        let r = reply(conn.get_property(false, w, prop, AtomEnum::ANY, 0, limit)).map_err(|source| {
            PropertyError {
                property,
                window: w,
                source,
            }
        })?;
        if !r.value.is_empty() {
            return Ok(String::from_utf8_lossy(&r.value).into_owned());
        }
    }
    Ok(String::new())
}

fn atom(conn: &RustConnection, name: &'static str) -> Result<Atom, AtomError> {
    Ok(reply(conn.intern_atom(false, name.as_bytes()))
        .map_err(|source| AtomError { name, source })?
        .atom)
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
