//! What each terminal window's input line holds, followed keystroke by keystroke, so that the line a
//! keystroke submits is judged before that keystroke is sent.
//!
//! The model is bash's readline in emacs mode (its default) reading from xterm, with keys sent by
//! `xdotool key` (combinations) and `xdotool type` (text). It is conservative: a key whose effect it
//! cannot follow makes the line *unknown* until `ctrl+c` or a submit, and a key that might submit the
//! line without being a plain Return (an unknown key name, `alt+#`, a paste the gateway did not see)
//! is reported as a [`Submitted::Unknown`] while the line stays unknown. Once the editor may have
//! left emacs mode (`Escape ctrl+j` switches to vi mode, `ctrl+x ctrl+e` hands the line to an
//! editor), every later line of that window is unknown.
//!
//! Keys typed while a program runs in the foreground are read by the kernel's line editing first
//! (canonical mode), which applies erase keys (`BackSpace`, `ctrl+u`, `ctrl+w`, `ctrl+d`) at the end
//! of what it holds, where readline would apply them at its cursor, and takes cursor and editing
//! keys as characters. So once such a key was pressed on a line, an erase after it makes the line
//! unknown; insertions after it stay known. A paste reports the lines its newlines submit, but
//! leaves the line unknown: the terminal may insert it differently (bracketed paste, a selection
//! changed since it was read). Whether a submitted line continues on the next is decided by
//! [`parse_interactive`](crate::parse_interactive)'s rules; a line the parser could not read to
//! its end (or that expands history) may continue, so the next line is unknown.

use crate::command::{continuation, Continuation, MAX_LINE};

/// Why an erase makes the line unknown after a cursor key.
const ERASE_AFTER_MOVE: &str =
    "after an erase with the cursor moved, which a program reading the terminal would apply elsewhere";
/// Why an erase makes the line unknown after an editing key (`Delete`, `ctrl+k`, `ctrl+l`...).
const ERASE_AFTER_EDIT: &str =
    "after an erase following an editing key, which a program reading the terminal would apply elsewhere";
/// Why a paste makes the line unknown.
const AFTER_PASTE: &str =
    "after a paste, which the terminal may insert differently (bracketed paste, a changed selection)";

/// Most windows [`Terminals`] follows; the least recently stored is forgotten first.
pub const MAX_WINDOWS: usize = 64;

/// What the agent sends to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keystrokes<'a> {
    /// `type` text: characters typed literally; '\n' and '\r' press Return, '\t' presses Tab.
    Text(&'a str),
    /// One key combination, xdotool-style names (`Return`, `KP_Enter`, `ctrl+u`, `BackSpace`, `a`,
    /// `shift+a`, `space`, `minus`, `Control_L+c`, `ctrl+shift+v`, `shift+Insert`).
    Key(&'a str),
    /// Text the terminal receives from a paste (selection or clipboard), already read and shown to
    /// an operator. The lines its newlines submit are reported, but the line is unknown after it.
    Paste(&'a str),
}

/// A line handed to the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The command text the shell will run: for a continuation (previous line(s) incomplete:
    /// unterminated quote, trailing backslash, trailing `|`/`&&`), the earlier lines joined with
    /// '\n' before this one.
    Line(String),
    /// The gateway cannot know what the line holds (after history recall, completion, cursor keys it
    /// cannot follow, an operator's typing...), or whether a key submitted it: `known` is what was
    /// tracked, `why` a sentence fragment ("after Up (history recall)").
    Unknown {
        /// What the tracker followed of the line (earlier continuation lines joined with '\n').
        known: String,
        /// Why it is not known, as a fragment: "after Tab (completion)".
        why: String,
    },
}

/// A key that consumes the key after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    /// `Escape`: the next key is read as meta+key.
    Meta,
    /// `ctrl+x`: the next key completes a `ctrl+x` binding.
    CtrlX,
    /// `ctrl+v` (quoted insert), `ctrl+]` (character search): the next key is taken literally.
    Literal,
}

/// Whether the next key is read on its own or completes a prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Mode {
    #[default]
    Normal,
    After(Prefix),
}

/// One terminal's input line.
///
/// `ctrl+c` always leaves a known empty line (the terminal interrupts readline); `ctrl+u` on an
/// unknown line leaves it unknown, because the cursor the deletion starts from is unknown too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// The text typed since the last submit (for an unknown line: what was followed, for display).
    text: String,
    /// Cursor position in `text`, in bytes, always on a character boundary.
    cursor: usize,
    /// Why the line is not known, if it is not.
    unknown: Option<String>,
    /// Earlier lines of an incomplete command, joined with '\n'.
    pending: Option<String>,
    /// Whether the next key completes a prefix key.
    mode: Mode,
    /// Whether a history search (`ctrl+r`) may still be going on.
    searching: bool,
    /// Why every line of this window is unknown from now on, if it is.
    distrust: Option<String>,
    /// Why an erase key would make this line unknown: a cursor or editing key was pressed on it,
    /// which a program reading the terminal takes as characters that its erase keys then remove.
    edited: Option<&'static str>,
}

/// What one key press or typed character does to the line, in readline's emacs mode.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Press {
    Insert(char),
    /// `Return`, `ctrl+m`: accept the line.
    Return,
    /// `ctrl+j`: accept the line, or end a history search.
    Newline,
    /// `ctrl+c`.
    Interrupt,
    Backspace,
    /// `ctrl+h`: backspace for readline, but a character for the kernel when BackSpace is its erase
    /// key.
    CtrlH,
    Delete,
    /// `ctrl+d`: delete at the cursor, or end of input on an empty line.
    EofOrDelete,
    KillBackward,
    KillForward,
    RuboutWord,
    Left,
    Right,
    Home,
    End,
    Nothing,
    /// `ctrl+g`: abort a history search.
    Abort,
    /// `ctrl+o`: accept the line, then fetch the next history line.
    OperateAndGetNext,
    Search(String),
    Prefix(Prefix, String),
    /// The line can no longer be followed (it cannot have been submitted).
    Lost(String),
    /// The line may have been submitted, and can no longer be followed.
    MaySubmit(String),
    /// The editor may have left emacs mode: no line of this window can be followed any more.
    Distrust(String),
}

impl Line {
    /// A line known to be empty (a fresh prompt).
    pub fn empty() -> Line {
        Line::default()
    }

    /// A line the tracker knows nothing about (why: "an operator typed while holding control").
    pub fn unknown(why: impl Into<String>) -> Line {
        Line {
            unknown: Some(why.into()),
            ..Line::default()
        }
    }

    /// What the line holds now, if known.
    pub fn text(&self) -> Option<String> {
        match self.unknown {
            None => Some(self.text.clone()),
            Some(_) => None,
        }
    }

    /// Applies keystrokes, returning the lines they submit, in order. Pure; callers apply to a clone
    /// to preview, and keep the clone once the keys were really sent.
    pub fn apply(&mut self, keys: &Keystrokes<'_>) -> Vec<Submitted> {
        if !self.text.is_char_boundary(self.cursor) {
            self.cursor = self.text.len();
        }
        let mut submitted = Vec::new();
        // Characters typed in a row are inserted at once, so typing at the line start stays linear.
        let mut run = String::new();
        match keys {
            Keystrokes::Text(text) | Keystrokes::Paste(text) => {
                for c in text.chars() {
                    let mut buffer = [0; 4];
                    let name = c.encode_utf8(&mut buffer);
                    self.step(typed(c), name, &mut run, &mut submitted);
                }
            }
            Keystrokes::Key(combo) => {
                for press in combo_presses(combo) {
                    self.step(press, combo, &mut run, &mut submitted);
                }
            }
        }
        self.insert_run(&mut run);
        if let Keystrokes::Paste(_) = keys {
            self.lose(AFTER_PASTE.into());
        }
        submitted
    }

    /// One press, with plain insertions gathered into `run`.
    fn step(&mut self, press: Press, name: &str, run: &mut String, submitted: &mut Vec<Submitted>) {
        if let (Press::Insert(c), Mode::Normal) = (&press, self.mode) {
            run.push(*c);
            return;
        }
        self.insert_run(run);
        submitted.extend(self.press(press, name));
    }

    fn insert_run(&mut self, run: &mut String) {
        let room = MAX_LINE.saturating_sub(self.text.len());
        let mut fits = run.len().min(room);
        while !run.is_char_boundary(fits) {
            fits -= 1;
        }
        self.text.insert_str(self.cursor, run.get(..fits).unwrap_or(""));
        self.cursor += fits;
        if fits < run.len() {
            self.lose("the line grew over 64 KiB".into());
        }
        run.clear();
    }

    /// Marks the line unknown (a human drove the sandbox).
    fn forget(&mut self, why: &str) {
        self.unknown = Some(why.to_string());
        self.cursor = self.text.len();
        self.mode = Mode::Normal;
        self.searching = false;
    }

    fn press(&mut self, press: Press, name: &str) -> Option<Submitted> {
        if press == Press::Interrupt {
            self.interrupt();
            return None;
        }
        let press = match std::mem::take(&mut self.mode) {
            Mode::Normal => press,
            Mode::After(Prefix::Meta) => after_meta(press, name),
            Mode::After(Prefix::CtrlX) => after_ctrl_x(press, name),
            Mode::After(Prefix::Literal) => after_literal(press, name),
        };
        self.perform(press)
    }

    fn perform(&mut self, press: Press) -> Option<Submitted> {
        let erases = matches!(
            press,
            Press::Backspace | Press::CtrlH | Press::EofOrDelete | Press::KillBackward | Press::RuboutWord
        );
        if let (true, Some(why)) = (erases, self.edited) {
            if press == Press::EofOrDelete && self.pending.is_some() {
                // On an empty kernel line, ctrl+d is end of input, which runs a continuation.
                return self.may_submit(why.into());
            }
            self.lose(why.into());
            return None;
        }
        let edits = match press {
            Press::Left | Press::Right | Press::Home | Press::End => Some(ERASE_AFTER_MOVE),
            Press::Delete | Press::KillForward => Some(ERASE_AFTER_EDIT),
            // A control character alone on an empty line has no effect either way.
            Press::Nothing | Press::Abort | Press::CtrlH if !self.text.is_empty() => Some(ERASE_AFTER_EDIT),
            _ => None,
        };
        if let Some(why) = edits {
            self.edited.get_or_insert(why);
        }
        match press {
            Press::Insert(c) => self.insert(c),
            Press::Return => return self.submit(),
            Press::Newline if self.searching => {
                self.searching = false;
                return self.may_submit("after ctrl+j, which ends a history search or runs the line".into());
            }
            Press::Newline => return self.submit(),
            Press::Interrupt => self.interrupt(),
            Press::Backspace | Press::CtrlH => {
                let start = self.previous_boundary();
                self.text.replace_range(start..self.cursor, "");
                self.cursor = start;
            }
            Press::Delete => self.delete_forward(),
            Press::EofOrDelete if self.unknown.is_none() && self.text.is_empty() => {
                // End of input: bash runs a continuation that is complete by then (`rm x \`), or
                // refuses it; on a fresh line it exits.
                let pending = self.pending.take()?;
                return Some(Submitted::Line(format!("{pending}\n")));
            }
            Press::EofOrDelete => self.delete_forward(),
            Press::KillBackward => {
                self.text.replace_range(..self.cursor, "");
                self.cursor = 0;
            }
            Press::KillForward => self.text.truncate(self.cursor),
            Press::RuboutWord => {
                let before = self.text.get(..self.cursor).unwrap_or("");
                let trimmed = before.trim_end_matches([' ', '\t']);
                let start = trimmed.rfind([' ', '\t']).map_or(0, |at| at + 1);
                self.text.replace_range(start..self.cursor, "");
                self.cursor = start;
            }
            Press::Left => self.cursor = self.previous_boundary(),
            Press::Right => self.cursor = self.next_boundary(),
            Press::Home => self.cursor = 0,
            Press::End => self.cursor = self.text.len(),
            Press::Nothing => {}
            Press::Abort => {
                if self.searching {
                    self.searching = false;
                    self.lose("after ctrl+g, which ends a history search".into());
                }
            }
            Press::OperateAndGetNext => {
                let submitted = self.submit();
                self.lose("after ctrl+o (the next history line)".into());
                return submitted;
            }
            Press::Search(why) => {
                self.searching = true;
                self.lose(why);
            }
            Press::Prefix(prefix, why) => {
                if prefix == Prefix::Meta {
                    self.searching = false;
                }
                self.mode = Mode::After(prefix);
                self.lose(why);
            }
            Press::Lost(why) => self.lose(why),
            Press::MaySubmit(why) => return self.may_submit(why),
            Press::Distrust(why) => {
                self.distrust = Some(why.clone());
                return self.may_submit(why);
            }
        }
        None
    }

    fn insert(&mut self, c: char) {
        self.insert_run(&mut c.to_string());
    }

    fn delete_forward(&mut self) {
        let end = self.next_boundary();
        self.text.replace_range(self.cursor..end, "");
    }

    fn previous_boundary(&self) -> usize {
        let before = self.text.get(..self.cursor).unwrap_or("");
        before
            .chars()
            .next_back()
            .map_or(0, |c| self.cursor - c.len_utf8())
    }

    fn next_boundary(&self) -> usize {
        let after = self.text.get(self.cursor..).unwrap_or("");
        after
            .chars()
            .next()
            .map_or(self.cursor, |c| self.cursor + c.len_utf8())
    }

    /// Makes the line unknown, keeping the first reason.
    fn lose(&mut self, why: String) {
        if self.unknown.is_none() {
            self.unknown = Some(why);
            self.cursor = self.text.len();
        }
    }

    fn interrupt(&mut self) {
        self.text.clear();
        self.cursor = 0;
        self.pending = None;
        self.mode = Mode::Normal;
        self.searching = false;
        self.edited = None;
        self.unknown = self.distrust.clone();
    }

    /// The whole command text so far: earlier continuation lines, then this one.
    fn full_text(&self) -> String {
        match &self.pending {
            Some(pending) => format!("{pending}\n{}", self.text),
            None => self.text.clone(),
        }
    }

    /// A key that may have submitted the line: reported, and the line stays unknown.
    fn may_submit(&mut self, why: String) -> Option<Submitted> {
        let known = self.full_text();
        let reported = self.unknown.clone().unwrap_or_else(|| why.clone());
        self.lose(why);
        Some(Submitted::Unknown { known, why: reported })
    }

    fn submit(&mut self) -> Option<Submitted> {
        let full = self.full_text();
        self.text.clear();
        self.cursor = 0;
        self.pending = None;
        self.mode = Mode::Normal;
        self.searching = false;
        self.edited = None;
        match self.unknown.take() {
            Some(why) => {
                self.unknown = self.distrust.clone();
                if self.unknown.is_none() && continuation(&full) != Continuation::Complete {
                    self.unknown =
                        Some("after a line the gateway could not follow, which may continue".into());
                }
                Some(Submitted::Unknown { known: full, why })
            }
            None if full.is_empty() => None,
            None => {
                match continuation(&full) {
                    Continuation::Complete => {}
                    Continuation::Incomplete => self.pending = Some(full.clone()),
                    Continuation::Unknown => {
                        self.unknown = Some(
                            "after a line the gateway could not parse to its end, which may continue".into(),
                        );
                    }
                }
                Some(Submitted::Line(full))
            }
        }
    }
}

/// What typing one character does.
fn typed(c: char) -> Press {
    match c {
        '\n' | '\r' => Press::Return,
        '\t' => Press::Lost("after Tab (completion)".into()),
        '\x1b' => Press::Prefix(Prefix::Meta, "after Escape".into()),
        c if c.is_control() => Press::MaySubmit(format!(
            "after the control character U+{:04X} in typed text",
            u32::from(c)
        )),
        c => Press::Insert(c),
    }
}

/// What a key does when it follows `Escape` (or is pressed with `alt`).
fn after_meta(press: Press, name: &str) -> Press {
    match press {
        Press::Interrupt => Press::Interrupt,
        Press::Insert('#') => Press::MaySubmit(format!(
            "after meta-# ({name}), which comments out the line and runs it"
        )),
        Press::Newline => Press::Distrust(format!(
            "after meta-ctrl+j ({name}), which switches the shell to vi editing"
        )),
        Press::Return | Press::OperateAndGetNext | Press::MaySubmit(_) => {
            Press::MaySubmit(format!("after a meta key ({name}) that may run the line"))
        }
        Press::Distrust(why) => Press::Distrust(why),
        Press::Prefix(Prefix::Literal, _) => {
            Press::Prefix(Prefix::Literal, format!("after {name} (character search)"))
        }
        Press::Insert(_)
        | Press::Backspace
        | Press::CtrlH
        | Press::Delete
        | Press::EofOrDelete
        | Press::KillBackward
        | Press::KillForward
        | Press::RuboutWord
        | Press::Left
        | Press::Right
        | Press::Home
        | Press::End
        | Press::Nothing
        | Press::Abort
        | Press::Search(_)
        | Press::Prefix(Prefix::Meta | Prefix::CtrlX, _)
        | Press::Lost(_) => Press::Lost(format!("after a meta key ({name})")),
    }
}

/// What a key does when it follows `ctrl+x`.
fn after_ctrl_x(press: Press, name: &str) -> Press {
    match press {
        Press::Interrupt => Press::Interrupt,
        // ctrl+x ctrl+e edits the line in an editor and runs it; ctrl+x ctrl+r re-reads key bindings.
        Press::End | Press::Search(_) => Press::Distrust(format!(
            "after ctrl+x then {name}, which hands the line to an editor or rebinds keys"
        )),
        Press::Insert('e') => Press::MaySubmit(format!(
            "after ctrl+x then {name}, which replays a keyboard macro"
        )),
        Press::Return | Press::Newline | Press::OperateAndGetNext | Press::MaySubmit(_) => {
            Press::MaySubmit(format!("after ctrl+x then {name}"))
        }
        Press::Distrust(why) => Press::Distrust(why),
        Press::Insert(_)
        | Press::Backspace
        | Press::CtrlH
        | Press::Delete
        | Press::EofOrDelete
        | Press::KillBackward
        | Press::KillForward
        | Press::RuboutWord
        | Press::Left
        | Press::Right
        | Press::Home
        | Press::Nothing
        | Press::Abort
        | Press::Prefix(..)
        | Press::Lost(_) => Press::Lost(format!("after ctrl+x then {name}")),
    }
}

/// What a key does when it is taken literally (after `ctrl+v` or `ctrl+]`).
fn after_literal(press: Press, name: &str) -> Press {
    match press {
        Press::Interrupt => Press::Interrupt,
        Press::Return
        | Press::Newline
        | Press::OperateAndGetNext
        | Press::MaySubmit(_)
        | Press::Distrust(_) => Press::MaySubmit(format!("after a quoted or searched-for {name}")),
        Press::Insert(_)
        | Press::Backspace
        | Press::CtrlH
        | Press::Delete
        | Press::EofOrDelete
        | Press::KillBackward
        | Press::KillForward
        | Press::RuboutWord
        | Press::Left
        | Press::Right
        | Press::Home
        | Press::End
        | Press::Nothing
        | Press::Abort
        | Press::Search(_)
        | Press::Prefix(..)
        | Press::Lost(_) => Press::Lost(format!("after a quoted or searched-for {name}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Key names

/// Modifiers held while a key is pressed.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    ctrl: bool,
    shift: bool,
    alt: bool,
    /// Super, Hyper, AltGr: what the terminal receives is unknown.
    other: bool,
}

/// What one `+`-separated name of a combination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Ctrl,
    Shift,
    Alt,
    OtherModifier,
    Lock,
    Key(Key),
    Unknown,
}

/// A key that is not a modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Char(char),
    Keypad(char),
    Return,
    Linefeed,
    BackSpace,
    Delete,
    Left,
    Right,
    Home,
    End,
    History,
    Tab,
    Escape,
    Insert,
    Other,
}

/// US-layout keysym names of printable characters.
const PRINTABLE: [(&str, char); 36] = [
    ("space", ' '),
    ("exclam", '!'),
    ("quotedbl", '"'),
    ("numbersign", '#'),
    ("dollar", '$'),
    ("percent", '%'),
    ("ampersand", '&'),
    ("apostrophe", '\''),
    ("quoteright", '\''),
    ("parenleft", '('),
    ("parenright", ')'),
    ("asterisk", '*'),
    ("plus", '+'),
    ("comma", ','),
    ("minus", '-'),
    ("period", '.'),
    ("slash", '/'),
    ("colon", ':'),
    ("semicolon", ';'),
    ("less", '<'),
    ("equal", '='),
    ("greater", '>'),
    ("question", '?'),
    ("at", '@'),
    ("bracketleft", '['),
    ("backslash", '\\'),
    ("bracketright", ']'),
    ("asciicircum", '^'),
    ("underscore", '_'),
    ("grave", '`'),
    ("quoteleft", '`'),
    ("braceleft", '{'),
    ("bar", '|'),
    ("braceright", '}'),
    ("asciitilde", '~'),
    ("KP_Space", ' '),
];

/// Keypad keysyms that type a character.
const KEYPAD: [(&str, char); 16] = [
    ("KP_0", '0'),
    ("KP_1", '1'),
    ("KP_2", '2'),
    ("KP_3", '3'),
    ("KP_4", '4'),
    ("KP_5", '5'),
    ("KP_6", '6'),
    ("KP_7", '7'),
    ("KP_8", '8'),
    ("KP_9", '9'),
    ("KP_Add", '+'),
    ("KP_Subtract", '-'),
    ("KP_Multiply", '*'),
    ("KP_Divide", '/'),
    ("KP_Decimal", '.'),
    ("KP_Equal", '='),
];

/// Keys with no effect readline can be followed through.
const OTHER_KEYS: [&str; 25] = [
    "Page_Up",
    "Page_Down",
    "Prior",
    "Next",
    "KP_Prior",
    "KP_Next",
    "KP_Page_Up",
    "KP_Page_Down",
    "Begin",
    "KP_Begin",
    "Menu",
    "Print",
    "Pause",
    "Break",
    "Sys_Req",
    "Cancel",
    "Help",
    "Clear",
    "Undo",
    "Redo",
    "Find",
    "Select",
    "Execute",
    "KP_F1",
    "KP_F2",
];

/// What xdotool makes of one name of a combination: its modifier aliases are case-insensitive,
/// every other name is an exact X keysym name (`Return`; `return` and `enter` depend on the
/// xdotool version, so they are unknown).
fn name(token: &str) -> Name {
    match token.to_ascii_lowercase().as_str() {
        "ctrl" | "control" => return Name::Ctrl,
        "shift" => return Name::Shift,
        "alt" | "meta" => return Name::Alt,
        "super" => return Name::OtherModifier,
        _ => {}
    }
    let key = match token {
        "Control_L" | "Control_R" => return Name::Ctrl,
        "Shift_L" | "Shift_R" => return Name::Shift,
        "Alt_L" | "Alt_R" | "Meta_L" | "Meta_R" => return Name::Alt,
        "Super_L" | "Super_R" | "Hyper_L" | "Hyper_R" | "ISO_Level3_Shift" | "ISO_Level5_Shift"
        | "Mode_switch" => return Name::OtherModifier,
        "Caps_Lock" | "Shift_Lock" | "Num_Lock" | "Scroll_Lock" => return Name::Lock,
        "Return" | "KP_Enter" => Key::Return,
        "Linefeed" => Key::Linefeed,
        "BackSpace" => Key::BackSpace,
        "Delete" | "KP_Delete" => Key::Delete,
        "Left" | "KP_Left" => Key::Left,
        "Right" | "KP_Right" => Key::Right,
        "Home" | "KP_Home" => Key::Home,
        "End" | "KP_End" => Key::End,
        "Up" | "Down" | "KP_Up" | "KP_Down" => Key::History,
        "Tab" | "KP_Tab" | "ISO_Left_Tab" => Key::Tab,
        "Escape" => Key::Escape,
        "Insert" | "KP_Insert" => Key::Insert,
        other if OTHER_KEYS.contains(&other) || is_function_key(other) => Key::Other,
        other => {
            let mut chars = other.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                if c.is_ascii_alphanumeric() {
                    return Name::Key(Key::Char(c));
                }
            }
            if let Some((_, c)) = PRINTABLE.iter().find(|(n, _)| *n == other) {
                Key::Char(*c)
            } else if let Some((_, c)) = KEYPAD.iter().find(|(n, _)| *n == other) {
                Key::Keypad(*c)
            } else {
                return Name::Unknown;
            }
        }
    };
    Name::Key(key)
}

/// `F1` to `F35`, `KP_F3`...
fn is_function_key(name: &str) -> bool {
    let digits = name.strip_prefix("KP_F").or_else(|| name.strip_prefix('F'));
    digits
        .and_then(|d| d.parse::<u8>().ok())
        .is_some_and(|n| (1..=35).contains(&n))
        && digits.is_some_and(|d| !d.starts_with('0'))
}

/// The presses an xdotool key combination makes: each name is pressed in order with the modifiers
/// named before it held.
fn combo_presses(combo: &str) -> Vec<Press> {
    if combo.is_empty() {
        return Vec::new();
    }
    // xdotool refuses these outright; whatever was meant, the line can no longer be followed.
    if combo.contains([' ', '\t', '\n', '.', '-', '[', ']', '{', '}', '\\', '|']) {
        return vec![Press::MaySubmit(format!(
            "after {combo:?}, a key combination the gateway cannot follow"
        ))];
    }
    let mut held = Held::default();
    let mut presses = Vec::new();
    for token in combo.split('+').filter(|t| !t.is_empty()) {
        match name(token) {
            Name::Ctrl => held.ctrl = true,
            Name::Shift => held.shift = true,
            Name::Alt => held.alt = true,
            Name::OtherModifier => held.other = true,
            Name::Lock => presses.push(Press::Lost(format!("after {token} (a lock key)"))),
            Name::Key(key) => presses.push(key_press(held, key, combo)),
            Name::Unknown => presses.push(Press::MaySubmit(format!(
                "after {combo} ({token} is a key the gateway does not know)"
            ))),
        }
    }
    presses
}

fn key_press(held: Held, key: Key, combo: &str) -> Press {
    if held.other {
        return Press::MaySubmit(format!(
            "after {combo}, which the terminal may not receive as typed"
        ));
    }
    let press = match (held.ctrl, held.shift) {
        (true, true) if matches!(key, Key::Char('v' | 'V') | Key::Insert) => {
            Press::MaySubmit(format!("after {combo} (a paste the gateway did not see)"))
        }
        (true, true) => Press::MaySubmit(format!("after {combo}, which may send a control character")),
        (true, false) => ctrl_key(key, combo),
        (false, true) => shift_key(key, combo),
        (false, false) => plain_key(key, combo),
    };
    if held.alt {
        after_meta(press, combo)
    } else {
        press
    }
}

fn plain_key(key: Key, combo: &str) -> Press {
    match key {
        Key::Char(c) | Key::Keypad(c) => Press::Insert(c),
        Key::Return => Press::Return,
        Key::Linefeed => Press::Newline,
        Key::BackSpace => Press::Backspace,
        Key::Delete => Press::Delete,
        Key::Left => Press::Left,
        Key::Right => Press::Right,
        Key::Home => Press::Home,
        Key::End => Press::End,
        Key::History => Press::Lost(format!("after {combo} (history recall)")),
        Key::Tab => Press::Lost(format!("after {combo} (completion)")),
        Key::Escape => Press::Prefix(Prefix::Meta, format!("after {combo}")),
        Key::Insert | Key::Other => Press::Lost(format!("after {combo}")),
    }
}

fn shift_key(key: Key, combo: &str) -> Press {
    match key {
        Key::Char(c) => Press::Insert(shifted(c)),
        Key::Return | Key::Linefeed => {
            Press::MaySubmit(format!("after {combo}, which the terminal may send as Return"))
        }
        Key::Insert => Press::MaySubmit(format!("after {combo} (a paste the gateway did not see)")),
        Key::Escape => Press::Prefix(Prefix::Meta, format!("after {combo}")),
        Key::Tab => Press::Lost(format!("after {combo} (completion)")),
        Key::History => Press::Lost(format!("after {combo} (history recall)")),
        Key::Keypad(_)
        | Key::BackSpace
        | Key::Delete
        | Key::Left
        | Key::Right
        | Key::Home
        | Key::End
        | Key::Other => Press::Lost(format!("after {combo}")),
    }
}

/// The character a key types with shift held, on a US keyboard.
fn shifted(c: char) -> char {
    const PAIRS: [(char, char); 21] = [
        ('1', '!'),
        ('2', '@'),
        ('3', '#'),
        ('4', '$'),
        ('5', '%'),
        ('6', '^'),
        ('7', '&'),
        ('8', '*'),
        ('9', '('),
        ('0', ')'),
        ('-', '_'),
        ('=', '+'),
        ('[', '{'),
        (']', '}'),
        ('\\', '|'),
        (';', ':'),
        ('\'', '"'),
        ('`', '~'),
        (',', '<'),
        ('.', '>'),
        ('/', '?'),
    ];
    PAIRS
        .iter()
        .find(|(from, _)| *from == c)
        .map_or(c.to_ascii_uppercase(), |(_, to)| *to)
}

fn ctrl_key(key: Key, combo: &str) -> Press {
    let lost = || Press::Lost(format!("after {combo}"));
    match key {
        Key::Char(c) if c.is_ascii_lowercase() => match c {
            'a' => Press::Home,
            'b' => Press::Left,
            'c' => Press::Interrupt,
            'd' => Press::EofOrDelete,
            'e' => Press::End,
            'f' => Press::Right,
            'g' => Press::Abort,
            'h' => Press::CtrlH,
            'i' => Press::Lost(format!("after {combo} (completion)")),
            'j' => Press::Newline,
            'k' => Press::KillForward,
            'l' | 'z' => Press::Nothing,
            'm' => Press::Return,
            'n' | 'p' => Press::Lost(format!("after {combo} (history recall)")),
            'o' => Press::OperateAndGetNext,
            'q' | 'v' => Press::Prefix(Prefix::Literal, format!("after {combo} (quoted insert)")),
            'r' | 's' => Press::Search(format!("after {combo} (history search)")),
            'u' => Press::KillBackward,
            'w' => Press::RuboutWord,
            'x' => Press::Prefix(Prefix::CtrlX, format!("after {combo}")),
            'y' => Press::Lost(format!("after {combo} (yank)")),
            _ => lost(),
        },
        // xdotool holds shift for an uppercase letter: ctrl+shift may send the control character.
        Key::Char(c) if c.is_ascii_uppercase() => {
            Press::MaySubmit(format!("after {combo}, which may send a control character"))
        }
        Key::Char('[' | '3') => Press::Prefix(Prefix::Meta, format!("after {combo} (Escape)")),
        Key::Char(']' | '5') => Press::Prefix(Prefix::Literal, format!("after {combo} (character search)")),
        Key::Return | Key::Linefeed => {
            Press::MaySubmit(format!("after {combo}, which the terminal may send as Return"))
        }
        Key::Char(_)
        | Key::Keypad(_)
        | Key::BackSpace
        | Key::Delete
        | Key::Left
        | Key::Right
        | Key::Home
        | Key::End
        | Key::History
        | Key::Tab
        | Key::Escape
        | Key::Insert
        | Key::Other => lost(),
    }
}

// ---------------------------------------------------------------------------------------------
// Windows

/// Per-window lines, bounded (at most [`MAX_WINDOWS`] windows, least recently stored forgotten).
#[derive(Debug, Clone, Default)]
pub struct Terminals {
    /// Followed windows, least recently stored first.
    windows: Vec<(u32, Line)>,
    /// Why windows not followed are unknown (after `forget_all`, or once a window was forgotten).
    unseen: Option<String>,
}

impl Terminals {
    /// The line of `window` (a window id from the guest); a window never seen is `Line::empty()`
    /// unless `forget_all` was called, after which unseen windows are `Line::unknown(that reason)`
    /// too. Once a window was forgotten to stay within [`MAX_WINDOWS`], unseen windows are unknown
    /// as well, since the forgotten one may come back.
    pub fn line(&self, window: u32) -> Line {
        match self.windows.iter().find(|(id, _)| *id == window) {
            Some((_, line)) => line.clone(),
            None => self.unseen.as_ref().map_or_else(Line::empty, Line::unknown),
        }
    }

    /// Stores the line after the keys were sent.
    pub fn store(&mut self, window: u32, line: Line) {
        self.windows.retain(|(id, _)| *id != window);
        self.windows.push((window, line));
        if self.windows.len() > MAX_WINDOWS {
            self.windows.remove(0);
            self.unseen.get_or_insert_with(|| {
                format!("the gateway stopped following a window (more than {MAX_WINDOWS} windows)")
            });
        }
    }

    /// Marks every line (and every window not seen yet) unknown: e.g. a human drove the sandbox.
    pub fn forget_all(&mut self, why: &str) {
        for (_, line) in &mut self.windows {
            line.forget(why);
        }
        self.unseen = Some(why.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed_line(text: &str) -> Vec<Submitted> {
        Line::empty().apply(&Keystrokes::Text(text))
    }

    fn keys(line: &mut Line, names: &[&str]) -> Vec<Submitted> {
        names
            .iter()
            .flat_map(|k| line.apply(&Keystrokes::Key(k)))
            .collect()
    }

    fn text(line: &mut Line, text: &str) -> Vec<Submitted> {
        line.apply(&Keystrokes::Text(text))
    }

    fn submitted(line: &str) -> Vec<Submitted> {
        vec![Submitted::Line(line.to_string())]
    }

    fn is_unknown(submitted: &[Submitted]) -> bool {
        matches!(submitted, [Submitted::Unknown { .. }])
    }

    #[test]
    fn typed_text_then_return_submits_it() {
        let mut line = Line::empty();
        assert!(text(&mut line, "ls -l").is_empty());
        assert_eq!(line.text().as_deref(), Some("ls -l"));
        assert_eq!(keys(&mut line, &["Return"]), submitted("ls -l"));
        assert_eq!(line, Line::empty());
    }

    #[test]
    fn single_keys_spell_a_command() {
        let mut line = Line::empty();
        let spelled = ["r", "m", "space", "minus", "r", "f", "space", "x", "Return"];
        assert_eq!(keys(&mut line, &spelled), submitted("rm -rf x"));
    }

    #[test]
    fn backspace_edits_back_to_something_harmless() {
        let mut line = Line::empty();
        text(&mut line, "rm -rf x");
        keys(&mut line, &["BackSpace"; 8]);
        text(&mut line, "ls");
        assert_eq!(keys(&mut line, &["Return"]), submitted("ls"));
    }

    #[test]
    fn ctrl_u_deletes_back_to_the_line_start() {
        let mut line = Line::empty();
        text(&mut line, "rm -rf x");
        keys(&mut line, &["ctrl+u"]);
        assert_eq!(text(&mut line, "ls\n"), submitted("ls"));
    }

    #[test]
    fn ctrl_w_deletes_the_previous_word() {
        let mut line = Line::empty();
        text(&mut line, "rm -rf /  ");
        keys(&mut line, &["ctrl+w", "ctrl+w"]);
        assert_eq!(line.text().as_deref(), Some("rm "));
        keys(&mut line, &["ctrl+w"]);
        assert_eq!(text(&mut line, "ls\r"), submitted("ls"));
    }

    #[test]
    fn ctrl_h_is_backspace_and_ctrl_k_kills_to_the_end() {
        let mut line = Line::empty();
        text(&mut line, "echo abc");
        keys(&mut line, &["ctrl+h", "Left", "Left", "ctrl+k"]);
        assert_eq!(line.text().as_deref(), Some("echo "));
    }

    #[test]
    fn home_then_typing_inserts_at_the_start() {
        let mut line = Line::empty();
        text(&mut line, "rm -rf x");
        keys(&mut line, &["Home"]);
        text(&mut line, "echo ");
        assert_eq!(keys(&mut line, &["KP_Enter"]), submitted("echo rm -rf x"));
    }

    #[test]
    fn cursor_keys_move_within_the_line() {
        let mut line = Line::empty();
        text(&mut line, "ac");
        keys(
            &mut line,
            &[
                "Left", "b", "ctrl+a", "Delete", "ctrl+e", "d", "ctrl+b", "ctrl+b", "ctrl+f", "Delete",
            ],
        );
        assert_eq!(line.text().as_deref(), Some("bc"));
        keys(&mut line, &["End", "Right", "Right", "e"]);
        assert_eq!(line.text().as_deref(), Some("bce"));
    }

    #[test]
    fn ctrl_c_clears_the_line() {
        let mut line = Line::empty();
        text(&mut line, "rm -rf x");
        keys(&mut line, &["ctrl+c"]);
        assert_eq!(line, Line::empty());
        assert!(keys(&mut line, &["Return"]).is_empty());
    }

    #[test]
    fn ctrl_c_makes_an_unknown_line_known_empty() {
        let mut line = Line::unknown("an operator typed");
        keys(&mut line, &["Control_L+c"]);
        assert_eq!(line.text().as_deref(), Some(""));
    }

    #[test]
    fn up_makes_the_line_unknown_and_its_submit_unknown() {
        let mut line = Line::empty();
        text(&mut line, "ls");
        keys(&mut line, &["Up"]);
        assert_eq!(line.text(), None);
        let sent = keys(&mut line, &["Return"]);
        assert_eq!(
            sent,
            [Submitted::Unknown {
                known: "ls".into(),
                why: "after Up (history recall)".into()
            }]
        );
        assert_eq!(line.text().as_deref(), Some(""));
    }

    #[test]
    fn tab_makes_the_line_unknown() {
        let mut line = Line::empty();
        text(&mut line, "rm -rf /ho\t");
        assert_eq!(line.text(), None);
        let sent = text(&mut line, "\n");
        assert_eq!(
            sent,
            [Submitted::Unknown {
                known: "rm -rf /ho".into(),
                why: "after Tab (completion)".into()
            }]
        );
    }

    #[test]
    fn typing_after_an_unknown_key_is_shown_in_known() {
        let mut line = Line::empty();
        keys(&mut line, &["Tab"]);
        let sent = text(&mut line, "abc\n");
        assert!(matches!(&sent[..], [Submitted::Unknown { known, .. }] if known == "abc"));
    }

    #[test]
    fn ctrl_u_on_an_unknown_line_keeps_it_unknown() {
        let mut line = Line::unknown("an operator typed");
        keys(&mut line, &["ctrl+u"]);
        assert_eq!(line.text(), None);
    }

    #[test]
    fn a_newline_inside_text_submits_twice() {
        assert_eq!(
            typed_line("ls\npwd\n"),
            [Submitted::Line("ls".into()), Submitted::Line("pwd".into())]
        );
    }

    #[test]
    fn an_unterminated_quote_continues_on_the_next_line() {
        let mut line = Line::empty();
        assert_eq!(text(&mut line, "echo 'a\n"), submitted("echo 'a"));
        assert_eq!(
            text(&mut line, "b' ; rm -rf x\n"),
            submitted("echo 'a\nb' ; rm -rf x")
        );
        assert_eq!(text(&mut line, "ls\n"), submitted("ls"));
    }

    #[test]
    fn an_empty_submit_during_a_continuation_is_still_reported() {
        let mut line = Line::empty();
        text(&mut line, "ls |\n");
        assert_eq!(keys(&mut line, &["Return"]), submitted("ls |\n"));
        assert_eq!(text(&mut line, "wc\n"), submitted("ls |\n\nwc"));
    }

    #[test]
    fn a_trailing_backslash_continues_and_ctrl_c_drops_the_continuation() {
        let mut line = Line::empty();
        text(&mut line, "rm \\\n");
        keys(&mut line, &["ctrl+c"]);
        assert_eq!(text(&mut line, "ls\n"), submitted("ls"));
    }

    #[test]
    fn ctrl_d_on_an_empty_continuation_line_submits_what_bash_runs_at_end_of_input() {
        let mut line = Line::empty();
        text(&mut line, "rm -rf x \\\n");
        assert_eq!(keys(&mut line, &["ctrl+d"]), submitted("rm -rf x \\\n"));
        assert_eq!(text(&mut line, "ls\n"), submitted("ls"));
    }

    #[test]
    fn ctrl_d_on_a_fresh_empty_line_submits_nothing() {
        let mut line = Line::empty();
        assert!(keys(&mut line, &["ctrl+d"]).is_empty());
        assert_eq!(line, Line::empty());
    }

    #[test]
    fn kp_enter_ctrl_m_and_ctrl_j_submit() {
        for key in ["KP_Enter", "ctrl+m", "ctrl+j", "Linefeed", "Control_R+m"] {
            let mut line = Line::empty();
            text(&mut line, "ls");
            assert_eq!(keys(&mut line, &[key]), submitted("ls"), "{key}");
        }
    }

    #[test]
    fn shift_letters_and_digits_type_us_shifted_characters() {
        let mut line = Line::empty();
        keys(
            &mut line,
            &[
                "shift+a",
                "B",
                "Shift_L+1",
                "shift+minus",
                "shift+slash",
                "shift+exclam",
            ],
        );
        assert_eq!(line.text().as_deref(), Some("AB!_?!"));
    }

    #[test]
    fn us_punctuation_names_type_their_characters() {
        let names = [
            "exclam",
            "at",
            "numbersign",
            "dollar",
            "percent",
            "asciicircum",
            "ampersand",
            "asterisk",
            "parenleft",
            "parenright",
            "underscore",
            "period",
            "comma",
            "slash",
            "backslash",
            "semicolon",
            "colon",
            "apostrophe",
            "quotedbl",
            "grave",
            "asciitilde",
            "bracketleft",
            "bracketright",
            "braceleft",
            "braceright",
            "less",
            "greater",
            "equal",
            "plus",
            "bar",
            "question",
            "KP_7",
            "KP_Add",
            "KP_Divide",
        ];
        let mut line = Line::empty();
        keys(&mut line, &names);
        assert_eq!(
            line.text().as_deref(),
            Some("!@#$%^&*()_.,/\\;:'\"`~[]{}<>=+|?7+/")
        );
    }

    #[test]
    fn plain_modifier_keys_do_nothing() {
        let mut line = Line::empty();
        keys(
            &mut line,
            &[
                "shift",
                "ctrl",
                "Shift_L",
                "Control_R",
                "alt",
                "Alt_L",
                "super",
                "ctrl+l",
            ],
        );
        assert_eq!(line, Line::empty());
    }

    #[test]
    fn pasted_text_reports_the_lines_its_newlines_submit_and_leaves_the_line_unknown() {
        let mut line = Line::empty();
        let sent = line.apply(&Keystrokes::Paste("rm -rf x\npwd\nls"));
        assert_eq!(
            sent,
            [Submitted::Line("rm -rf x".into()), Submitted::Line("pwd".into())]
        );
        assert_eq!(line.text(), None);
        let sent = keys(&mut line, &["Return"]);
        assert_eq!(
            sent,
            [Submitted::Unknown {
                known: "ls".into(),
                why: AFTER_PASTE.into()
            }]
        );
        assert_eq!(line.text().as_deref(), Some(""));
    }

    #[test]
    fn a_paste_without_a_newline_makes_the_line_unknown() {
        for paste in ["ls", ""] {
            let mut line = Line::empty();
            text(&mut line, "echo ");
            assert!(line.apply(&Keystrokes::Paste(paste)).is_empty());
            assert_eq!(line.text(), None, "{paste:?}");
            assert!(is_unknown(&keys(&mut line, &["Return"])));
        }
    }

    #[test]
    fn a_paste_ending_in_a_newline_still_leaves_the_next_line_unknown() {
        let mut line = Line::empty();
        assert_eq!(line.apply(&Keystrokes::Paste("ls\n")), submitted("ls"));
        assert_eq!(line.text(), None);
        keys(&mut line, &["ctrl+c"]);
        assert_eq!(line, Line::empty());
    }

    #[test]
    fn a_paste_key_may_submit_what_the_gateway_did_not_see() {
        for key in ["shift+Insert", "ctrl+shift+v"] {
            let mut line = Line::empty();
            text(&mut line, "echo ");
            let sent = keys(&mut line, &[key]);
            assert!(
                matches!(&sent[..], [Submitted::Unknown { known, why }] if known == "echo " && why.contains("paste")),
                "{key}: {sent:?}"
            );
            assert_eq!(line.text(), None);
        }
    }

    #[test]
    fn an_unknown_key_name_may_submit() {
        for key in ["enter", "0xff0d", "36", "cmd+c", "ctrl_l+c", "Foo", "ctrl+-"] {
            let mut line = Line::empty();
            text(&mut line, "rm -rf x");
            assert!(is_unknown(&keys(&mut line, &[key])), "{key}");
            assert_eq!(line.text(), None, "{key}");
        }
    }

    #[test]
    fn escape_then_hash_may_submit_and_escape_then_letter_only_loses_the_line() {
        let mut line = Line::empty();
        text(&mut line, "rm x");
        assert!(keys(&mut line, &["Escape", "b"]).is_empty());
        assert_eq!(line.text(), None);
        assert!(is_unknown(&keys(&mut line, &["Escape", "numbersign"])));
        assert!(is_unknown(&keys(&mut line, &["alt+numbersign"])));
    }

    #[test]
    fn quoted_insert_of_return_does_not_reset_the_line() {
        let mut line = Line::empty();
        text(&mut line, "rm x");
        assert!(is_unknown(&keys(&mut line, &["ctrl+v", "Return"])));
        assert_eq!(line.text(), None);
    }

    #[test]
    fn ctrl_j_during_a_history_search_keeps_the_line_unknown() {
        let mut line = Line::empty();
        keys(&mut line, &["ctrl+r"]);
        text(&mut line, "rm");
        assert!(is_unknown(&keys(&mut line, &["ctrl+j"])));
        assert_eq!(line.text(), None);
        assert!(is_unknown(&keys(&mut line, &["Return"])));
        assert_eq!(line.text().as_deref(), Some(""));
    }

    #[test]
    fn vi_mode_makes_every_later_line_unknown() {
        let mut line = Line::empty();
        assert!(is_unknown(&keys(&mut line, &["Escape", "ctrl+j"])));
        keys(&mut line, &["ctrl+c"]);
        assert_eq!(line.text(), None);
        assert!(is_unknown(&text(&mut line, "ls\n")));
        assert_eq!(line.text(), None);
    }

    #[test]
    fn ctrl_x_ctrl_e_makes_every_later_line_unknown() {
        let mut line = Line::empty();
        keys(&mut line, &["ctrl+x", "ctrl+e"]);
        keys(&mut line, &["ctrl+c"]);
        assert_eq!(line.text(), None);
    }

    #[test]
    fn ctrl_o_submits_then_loses_the_line() {
        let mut line = Line::empty();
        text(&mut line, "ls");
        assert_eq!(keys(&mut line, &["ctrl+o"]), submitted("ls"));
        assert_eq!(line.text(), None);
    }

    #[test]
    fn keys_that_may_send_return_may_submit() {
        for combo in [
            &["shift+Return"][..],
            &["Escape", "Return"],
            &["super+Return"],
            &["ctrl+shift+m"],
        ] {
            let mut line = Line::empty();
            text(&mut line, "ls");
            assert!(is_unknown(&keys(&mut line, combo)), "{combo:?}");
            assert_eq!(line.text(), None, "{combo:?}");
        }
    }

    #[test]
    fn keys_that_cannot_submit_only_lose_the_line() {
        for key in [
            "alt+b",
            "F5",
            "Page_Up",
            "Caps_Lock",
            "Insert",
            "ctrl+y",
            "ctrl+t",
            "shift+Left",
            "Down",
        ] {
            let mut line = Line::empty();
            text(&mut line, "ls");
            assert!(keys(&mut line, &[key]).is_empty(), "{key}");
            assert_eq!(line.text(), None, "{key}");
        }
    }

    #[test]
    fn modifier_aliases_are_case_insensitive_like_xdotool() {
        let mut line = Line::empty();
        text(&mut line, "rm -rf x");
        keys(&mut line, &["CTRL+c"]);
        assert_eq!(line, Line::empty());
        text(&mut line, "rm -rf x");
        keys(&mut line, &["Control+u"]);
        assert_eq!(line.text().as_deref(), Some(""));
    }

    #[test]
    fn an_escape_in_typed_text_consumes_the_next_character() {
        let mut line = Line::empty();
        let sent = text(&mut line, "\x1bls\n");
        assert_eq!(
            sent,
            [Submitted::Unknown {
                known: "s".into(),
                why: "after Escape".into()
            }]
        );
    }

    #[test]
    fn a_control_character_in_typed_text_may_submit() {
        let mut line = Line::empty();
        assert!(is_unknown(&text(&mut line, "rm\x0f")));
    }

    #[test]
    fn an_unknown_line_whose_known_part_is_incomplete_leaves_the_next_line_unknown() {
        let mut line = Line::empty();
        text(&mut line, "echo 'a");
        keys(&mut line, &["Up"]);
        keys(&mut line, &["Return"]);
        assert_eq!(line.text(), None);
    }

    #[test]
    fn an_empty_submit_yields_nothing() {
        assert!(typed_line("\n\r\n").is_empty());
        assert!(keys(&mut Line::empty(), &["Return", "KP_Enter"]).is_empty());
    }

    #[test]
    fn a_whitespace_line_is_reported() {
        assert_eq!(typed_line("  \n"), submitted("  "));
    }

    #[test]
    fn multibyte_characters_are_edited_whole() {
        let mut line = Line::empty();
        text(&mut line, "écho ü");
        keys(&mut line, &["BackSpace", "Home", "Delete", "Right", "Right"]);
        text(&mut line, "ö");
        assert_eq!(line.text().as_deref(), Some("chöo "));
    }

    #[test]
    fn a_line_over_64_kib_becomes_unknown_and_stops_growing() {
        let mut line = Line::empty();
        let long = "a".repeat(MAX_LINE + 10);
        text(&mut line, &long);
        assert_eq!(line.text(), None);
        let sent = text(&mut line, "\n");
        assert!(
            matches!(&sent[..], [Submitted::Unknown { known, why }] if known.len() == MAX_LINE && why.contains("64 KiB"))
        );
    }

    #[test]
    fn typing_64_kib_at_the_line_start_is_fast() {
        let mut line = Line::empty();
        text(&mut line, "x");
        keys(&mut line, &["Home"]);
        let started = std::time::Instant::now();
        text(&mut line, &"é".repeat(MAX_LINE));
        assert!(started.elapsed().as_secs() < 1);
        assert_eq!(line.text(), None);
    }

    #[test]
    fn windows_have_separate_lines() {
        let mut terminals = Terminals::default();
        let mut one = terminals.line(1);
        text(&mut one, "rm -rf");
        terminals.store(1, one);
        let mut two = terminals.line(2);
        assert_eq!(text(&mut two, "ls\n"), submitted("ls"));
        terminals.store(2, two);
        assert_eq!(terminals.line(1).text().as_deref(), Some("rm -rf"));
        assert_eq!(terminals.line(2), Line::empty());
    }

    #[test]
    fn forget_all_makes_seen_and_unseen_windows_unknown() {
        let mut terminals = Terminals::default();
        terminals.store(1, Line::empty());
        terminals.forget_all("a human drove the sandbox");
        assert_eq!(terminals.line(1).text(), None);
        assert_eq!(terminals.line(2), Line::unknown("a human drove the sandbox"));
        let sent = terminals.line(1).apply(&Keystrokes::Key("Return"));
        assert!(matches!(&sent[..], [Submitted::Unknown { why, .. }] if why == "a human drove the sandbox"));
    }

    #[test]
    fn at_most_64_windows_are_followed_least_recently_stored_first_out() {
        let mut terminals = Terminals::default();
        for window in 0..MAX_WINDOWS as u32 {
            let mut line = Line::empty();
            text(&mut line, "x");
            terminals.store(window, line);
        }
        terminals.store(0, terminals.line(0));
        let mut newest = Line::empty();
        text(&mut newest, "y");
        terminals.store(1000, newest);
        assert_eq!(terminals.windows.len(), MAX_WINDOWS);
        assert_eq!(terminals.line(0).text().as_deref(), Some("x"));
        assert_eq!(
            terminals.line(1).text(),
            None,
            "the least recently stored window was forgotten"
        );
        assert_eq!(terminals.line(1000).text().as_deref(), Some("y"));
    }

    #[test]
    fn a_window_never_seen_is_empty() {
        assert_eq!(Terminals::default().line(7), Line::empty());
    }

    #[test]
    fn random_keys_and_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let names = [
            "Return",
            "BackSpace",
            "Delete",
            "Left",
            "Right",
            "Home",
            "End",
            "Up",
            "Tab",
            "Escape",
            "ctrl+a",
            "ctrl+c",
            "ctrl+d",
            "ctrl+e",
            "ctrl+j",
            "ctrl+k",
            "ctrl+o",
            "ctrl+r",
            "ctrl+u",
            "ctrl+v",
            "ctrl+w",
            "ctrl+x",
            "alt+b",
            "shift+a",
            "a",
            "space",
            "quotedbl",
            "apostrophe",
            "backslash",
            "bar",
            "é",
            "",
            "+",
            "ctrl+",
            "shift+Insert",
            "KP_Enter",
            "F5",
            "0x41",
            "Caps_Lock",
            "ctrl+shift+c",
        ];
        let mut terminals = Terminals::default();
        for round in 0..5000 {
            let window = (next() % 70) as u32;
            let mut line = terminals.line(window);
            let r = next();
            if r % 3 == 0 {
                line.apply(&Keystrokes::Key(names[(r >> 8) as usize % names.len()]));
            } else {
                let bytes: Vec<u8> = (0..(r >> 8) % 12).map(|_| (next() % 256) as u8).collect();
                let text = String::from_utf8_lossy(&bytes);
                line.apply(&if r % 3 == 1 {
                    Keystrokes::Text(&text)
                } else {
                    Keystrokes::Paste(&text)
                });
            }
            terminals.store(window, line);
            if round % 1000 == 999 {
                terminals.forget_all("a test");
            }
        }
    }

    fn unknown_why(sent: &[Submitted]) -> &str {
        match sent {
            [Submitted::Unknown { why, .. }] => why,
            other => panic!("not one unknown line: {other:?}"),
        }
    }

    #[test]
    fn an_erase_after_a_cursor_move_makes_the_line_unknown() {
        let moves = [
            "Left", "Home", "ctrl+a", "ctrl+b", "Right", "End", "ctrl+e", "ctrl+f", "KP_Left",
        ];
        let erases = ["BackSpace", "ctrl+h", "ctrl+u", "ctrl+w", "ctrl+d"];
        for move_key in moves {
            for erase in erases {
                let mut line = Line::empty();
                text(&mut line, "rm -rf x");
                keys(&mut line, &[move_key]);
                text(&mut line, "y");
                assert!(keys(&mut line, &[erase]).is_empty(), "{move_key} {erase}");
                assert_eq!(line.text(), None, "{move_key} {erase}");
                assert_eq!(unknown_why(&keys(&mut line, &["Return"])), ERASE_AFTER_MOVE);
            }
        }
    }

    #[test]
    fn cursor_moves_followed_only_by_insertions_stay_known() {
        let mut line = Line::empty();
        text(&mut line, "rm x");
        keys(&mut line, &["Home", "Right", "Right", "ctrl+b", "ctrl+f"]);
        text(&mut line, "m");
        keys(&mut line, &["End", "Left", "ctrl+a", "ctrl+e"]);
        text(&mut line, "y");
        assert_eq!(keys(&mut line, &["Return"]), submitted("rmm xy"));
    }

    #[test]
    fn an_erase_after_an_editing_key_makes_the_line_unknown() {
        for edit in ["Delete", "ctrl+k", "ctrl+l", "ctrl+g", "ctrl+h"] {
            let mut line = Line::empty();
            text(&mut line, "ls -l");
            keys(&mut line, &[edit]);
            keys(&mut line, &["BackSpace"]);
            assert_eq!(line.text(), None, "{edit}");
            assert_eq!(
                unknown_why(&keys(&mut line, &["Return"])),
                ERASE_AFTER_EDIT,
                "{edit}"
            );
        }
    }

    #[test]
    fn control_keys_on_an_empty_line_do_not_guard_later_erases() {
        let mut line = Line::empty();
        keys(&mut line, &["ctrl+l", "ctrl+g", "ctrl+h"]);
        text(&mut line, "rm x");
        keys(&mut line, &["BackSpace", "ctrl+w", "ctrl+u"]);
        assert_eq!(text(&mut line, "ls\n"), submitted("ls"));
    }

    #[test]
    fn the_erase_guard_is_reset_by_a_submit_and_by_ctrl_c() {
        let mut line = Line::empty();
        text(&mut line, "ls");
        keys(&mut line, &["Left", "Return"]);
        text(&mut line, "rm");
        keys(&mut line, &["BackSpace", "BackSpace"]);
        assert_eq!(line.text().as_deref(), Some(""));
        text(&mut line, "ls");
        keys(&mut line, &["Home", "ctrl+c"]);
        text(&mut line, "rm");
        keys(&mut line, &["ctrl+u"]);
        assert_eq!(text(&mut line, "ls\n"), submitted("ls"));
    }

    #[test]
    fn ctrl_d_after_a_cursor_move_on_an_empty_continuation_line_may_submit() {
        let mut line = Line::empty();
        text(&mut line, "rm x \\\n");
        keys(&mut line, &["Left"]);
        let sent = keys(&mut line, &["ctrl+d"]);
        assert_eq!(unknown_why(&sent), ERASE_AFTER_MOVE);
        assert_eq!(line.text(), None);
    }

    #[test]
    fn a_refused_line_that_leaves_a_quote_open_continues_on_the_next_line() {
        let mut line = Line::empty();
        assert_eq!(text(&mut line, "echo $((1)) '\n"), submitted("echo $((1)) '"));
        assert_eq!(
            text(&mut line, "'; rm -rf ~ #'\n"),
            submitted("echo $((1)) '\n'; rm -rf ~ #'")
        );
        assert_eq!(text(&mut line, "ls\n"), submitted("ls"));
    }

    #[test]
    fn a_line_the_parser_stops_in_leaves_the_next_line_unknown() {
        for first in ["case x in a) echo '", "echo !-1 '"] {
            let mut line = Line::empty();
            let sent = text(&mut line, &format!("{first}\n"));
            assert_eq!(sent, submitted(first));
            if first.contains('!') {
                // An incomplete line is followed first; history expansion is seen once it is whole.
                assert!(matches!(&text(&mut line, "'\n")[..], [Submitted::Line(_)]));
            }
            assert_eq!(line.text(), None, "{first}");
            assert!(is_unknown(&text(&mut line, "echo '; rm -rf ~ #'\n")), "{first}");
            assert_eq!(text(&mut line, "ls\n"), submitted("ls"), "{first}");
        }
    }

    #[test]
    fn a_line_with_history_expansion_leaves_the_next_line_unknown() {
        let mut line = Line::empty();
        assert_eq!(text(&mut line, "sudo !!\n"), submitted("sudo !!"));
        assert_eq!(line.text(), None);
        keys(&mut line, &["ctrl+c"]);
        assert_eq!(text(&mut line, "ls\n"), submitted("ls"));
    }
}
