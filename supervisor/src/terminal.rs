//! Keystrokes into terminals. A `type` or `key` action that submits a line to a terminal (a
//! newline, `Return`, `KP_Enter`) runs a command as surely as an exec does, so the gateway judges
//! that line — parsed, as the `terminal_command` action, with the same context as an exec —
//! before the keystroke that submits it goes to the guest. A paste into a terminal (middle click,
//! shift+Insert, ctrl+shift+v) inserts text the gateway did not type: it is judged as a line the
//! gateway cannot see whole (the shipped policy asks), and the operator is shown what the guest's
//! selection or clipboard holds.
//!
//! Which windows are terminals comes from the guest's X server (the class in `WM_CLASS`), never
//! from a guess. [`judge`] is pure: the gateway reads the window, the terminal's line and any
//! paste first ([`Target`]), and keeps [`Judged::next`] once the keys were really sent.

use airlock_domain::{Action, MouseButton, Paste, Point, TerminalInput, TerminalLine};
use airlock_policy::{strictest, Evaluation, Focus, Policy, Subject, TerminalCommand};
use airlock_protocol::{SelectionKind, WindowInfo};
use airlock_shell::{Keystrokes, Line, Submitted};

/// `WM_CLASS` classes of terminal emulators (compared without regard to case).
pub const TERMINAL_CLASSES: &[&str] = &[
    "XTerm",
    "UXTerm",
    "URxvt",
    "Rxvt",
    "Gnome-terminal",
    "gnome-terminal-server",
    "konsole",
    "Xfce4-terminal",
    "Mate-terminal",
    "Lxterminal",
    "qterminal",
    "Terminator",
    "Tilix",
    "Alacritty",
    "kitty",
    "St",
    "st-256color",
    "foot",
    "org.wezfurlong.wezterm",
    "Sakura",
    "Termite",
    "Eterm",
    "terminology",
];

/// Whether a window of this class is a terminal emulator.
pub fn is_terminal(class: &str) -> bool {
    TERMINAL_CLASSES.iter().any(|c| c.eq_ignore_ascii_case(class))
}

/// Where an action's input lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// It sends no keys and pastes nothing.
    Nowhere,
    /// Keys go to the window with the keyboard focus.
    Focused,
    /// A paste lands in the window under this point (`None`: under the pointer).
    At(Option<Point>),
}

/// Whether a key combination presses more than modifiers (a click or scroll "holding" `Return`
/// presses Return).
pub fn presses_a_key(combo: &str) -> bool {
    airlock_domain::action::normalise_combo(combo)
        .split('+')
        .any(|k| !matches!(k, "ctrl" | "alt" | "shift" | "super" | "hyper" | ""))
}

/// Where `action`'s input lands.
pub fn reach(action: &Action) -> Reach {
    match action {
        Action::Key { .. } | Action::Type { .. } | Action::HoldKey { .. } => Reach::Focused,
        Action::Click {
            at,
            button: MouseButton::Middle,
            ..
        } => Reach::At(*at),
        Action::Click { hold: Some(h), .. } | Action::Scroll { hold: Some(h), .. } if presses_a_key(h) => {
            Reach::Focused
        }
        Action::MouseDown {
            button: MouseButton::Middle,
        }
        | Action::MouseUp {
            button: MouseButton::Middle,
        } => Reach::At(None),
        // The release (which pastes) goes to the window that got the press.
        Action::Drag {
            path,
            button: MouseButton::Middle,
        } => Reach::At(path.first().copied()),
        Action::Click { .. }
        | Action::MouseDown { .. }
        | Action::MouseUp { .. }
        | Action::Drag { .. }
        | Action::MouseMove { .. }
        | Action::Scroll { .. }
        | Action::Wait { .. }
        | Action::Screenshot
        | Action::CursorPosition
        | Action::Zoom { .. }
        | Action::Exec { .. }
        | Action::ReadFile { .. }
        | Action::WriteFile { .. }
        | Action::ListFiles { .. } => Reach::Nowhere,
    }
}

/// Which selection the action pastes in a terminal, if it pastes: the middle button and
/// shift+Insert paste the primary selection, ctrl+shift+v the clipboard.
pub fn paste_source(action: &Action) -> Option<SelectionKind> {
    match action {
        Action::Key { .. } | Action::HoldKey { .. } => {
            let combo = action.key_combo().unwrap_or_default();
            let mut keys: Vec<&str> = combo.split('+').collect();
            keys.sort_unstable();
            match keys.as_slice() {
                ["insert", "shift"] => Some(SelectionKind::Primary),
                ["ctrl", "shift", "v"] | ["ctrl", "insert", "shift"] => Some(SelectionKind::Clipboard),
                _ => None,
            }
        }
        Action::Click {
            button: MouseButton::Middle,
            ..
        }
        | Action::MouseDown {
            button: MouseButton::Middle,
        }
        | Action::MouseUp {
            button: MouseButton::Middle,
        }
        | Action::Drag {
            button: MouseButton::Middle,
            ..
        } => Some(SelectionKind::Primary),
        Action::Type { .. }
        | Action::Click { .. }
        | Action::MouseDown { .. }
        | Action::MouseUp { .. }
        | Action::Drag { .. }
        | Action::MouseMove { .. }
        | Action::Scroll { .. }
        | Action::Wait { .. }
        | Action::Screenshot
        | Action::CursorPosition
        | Action::Zoom { .. }
        | Action::Exec { .. }
        | Action::ReadFile { .. }
        | Action::WriteFile { .. }
        | Action::ListFiles { .. } => None,
    }
}

/// Where an action's keystrokes go, as read from the guest before judging it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The window (empty when the action reaches none, or the guest could not say).
    pub window: WindowInfo,
    /// The terminal's line before the action, when the window is a terminal — or an unknown line
    /// when the guest could not say which window it is (so a submitted line asks).
    pub line: Option<Line>,
    /// What a paste would insert, when the action pastes into a terminal.
    pub paste: Option<Paste>,
}

impl Target {
    /// The window as the policy sees it.
    pub fn focus(&self) -> Focus<'_> {
        Focus {
            title: &self.window.title,
            class: &self.window.class,
        }
    }
}

/// An action judged together with what it does in a terminal.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The strictest of the action's own evaluation and those of the lines it submits.
    pub evaluation: Evaluation,
    /// What it submits or pastes in a terminal (shown on an approval card and recorded).
    pub terminal: Option<TerminalInput>,
    /// The terminal's line after the action, to keep once the keys were sent.
    pub next: Option<Line>,
}

/// Judges `action` where it lands: its own rules, and in a terminal every line it submits as a
/// `terminal_command` (and a paste as a line the gateway cannot see whole). Pure.
pub fn judge(policy: &Policy, who: &Subject<'_>, action: &Action, target: &Target) -> Judged {
    let focus = target.focus();
    let own = policy.evaluate(who, action, focus);
    let Some(before) = &target.line else {
        return Judged {
            evaluation: own,
            terminal: None,
            next: None,
        };
    };
    let mut next = before.clone();
    let mut submitted = Vec::new();
    let mut pasted = None;
    match (&target.paste, action) {
        (Some(paste), _) => {
            pasted = Some(paste.clone());
            match &paste.error {
                None => submitted = next.apply(&Keystrokes::Paste(&paste.text)),
                Some(_) => next = Line::unknown("after a paste the gateway could not read"),
            }
        }
        (None, Action::Type { text }) => submitted = next.apply(&Keystrokes::Text(text)),
        (None, Action::Key { combo }) => submitted = next.apply(&Keystrokes::Key(combo)),
        (None, Action::HoldKey { combo, .. }) => {
            submitted = next.apply(&Keystrokes::Key(combo));
            if presses_a_key(combo) {
                // X repeats a key held down: how often is not known.
                next = Line::unknown(format!("after {combo} was held down (it may have repeated)"));
            }
        }
        (None, Action::Click { hold: Some(h), .. } | Action::Scroll { hold: Some(h), .. }) => {
            submitted = next.apply(&Keystrokes::Key(h));
        }
        (None, _) => {}
    }
    let mut evaluations = vec![own];
    let mut lines = Vec::new();
    for s in &submitted {
        let (text, command, unknown) = match s {
            Submitted::Line(text) => (text, TerminalCommand::Known(text), None),
            Submitted::Unknown { known, why } => {
                (known, TerminalCommand::Unknown { known, why }, Some(why.clone()))
            }
        };
        let unparsed = match (&unknown, airlock_shell::parse_interactive(text)) {
            (None, Err(e)) => Some(e.to_string()),
            (None, Ok(_)) | (Some(_), _) => None,
        };
        evaluations.extend(policy.evaluate_terminal(who, command, focus));
        lines.push(TerminalLine {
            text: text.clone(),
            unknown,
            unparsed,
        });
    }
    if let Some(paste) = &pasted {
        let why = match &paste.error {
            Some(e) => format!(
                "a paste from the {} the gateway could not read: {e}",
                paste.source
            ),
            None => format!("a paste from the {}", paste.source),
        };
        evaluations.extend(policy.evaluate_terminal(
            who,
            TerminalCommand::Unknown {
                known: &paste.text,
                why: &why,
            },
            focus,
        ));
    }
    let terminal = (!lines.is_empty() || pasted.is_some()).then(|| TerminalInput {
        window: target.window.title.clone(),
        lines,
        paste: pasted,
    });
    Judged {
        evaluation: strictest(evaluations).unwrap_or_else(|| policy.evaluate(who, action, focus)),
        terminal,
        next: Some(next),
    }
}

#[cfg(test)]
mod tests {
    use airlock_domain::Screen;
    use airlock_policy::Decision;
    use serde_json::json;

    use super::*;

    const WHO: Subject<'static> = Subject {
        agent: "bot",
        principal: "alice",
        sandbox: "sb1",
    };

    fn action(v: serde_json::Value) -> Action {
        Action::from_anthropic(
            &v,
            Screen {
                width: 1280,
                height: 800,
            },
        )
        .expect("a valid action")
    }

    fn xterm(line: Line) -> Target {
        Target {
            window: WindowInfo {
                id: 7,
                title: "xterm".into(),
                class: "XTerm".into(),
                instance: "xterm".into(),
            },
            line: Some(line),
            paste: None,
        }
    }

    #[test]
    fn a_typed_line_is_judged_as_the_command_it_submits() {
        let p = Policy::default_policy().expect("the shipped policy loads");
        let j = judge(
            &p,
            &WHO,
            &action(json!({"action": "type", "text": "sh -c 'touch x'\n"})),
            &xterm(Line::empty()),
        );
        assert_eq!(j.evaluation.decision, Decision::Ask, "{:?}", j.evaluation);
        assert!(
            j.evaluation.rules.contains(&"exec-other".to_string()),
            "{:?}",
            j.evaluation
        );
        let t = j.terminal.expect("the card shows the command");
        assert_eq!(t.lines[0].text, "sh -c 'touch x'");
        assert_eq!(j.next.and_then(|l| l.text()), Some(String::new()));
    }

    #[test]
    fn return_submits_what_single_keys_spelled() {
        let p = Policy::default_policy().expect("the shipped policy loads");
        let mut line = Line::empty();
        for k in [
            "r", "m", "space", "minus", "r", "space", "minus", "f", "space", "x",
        ] {
            line.apply(&Keystrokes::Key(k));
        }
        let j = judge(
            &p,
            &WHO,
            &action(json!({"action": "key", "text": "Return"})),
            &xterm(line),
        );
        assert_eq!(j.evaluation.decision, Decision::Ask);
        assert!(
            j.evaluation.rules.contains(&"recursive-delete".to_string()),
            "{:?}",
            j.evaluation
        );
    }

    #[test]
    fn typing_without_submitting_is_judged_as_typing() {
        let p = Policy::default_policy().expect("the shipped policy loads");
        let j = judge(
            &p,
            &WHO,
            &action(json!({"action": "type", "text": "rm -rf ~"})),
            &xterm(Line::empty()),
        );
        assert_eq!(j.evaluation.decision, Decision::Allow);
        assert!(j.terminal.is_none());
        assert_eq!(j.next.and_then(|l| l.text()).as_deref(), Some("rm -rf ~"));
    }

    #[test]
    fn harmless_typed_commands_stay_allowed() {
        let p = Policy::default_policy().expect("the shipped policy loads");
        for text in [
            "ls -la ~\n",
            "echo 'hello from the demo agent'\n",
            "echo mcp-sdk > /tmp/x.txt\n",
            "\n",
        ] {
            let j = judge(
                &p,
                &WHO,
                &action(json!({"action": "type", "text": text})),
                &xterm(Line::empty()),
            );
            assert_eq!(
                j.evaluation.decision,
                Decision::Allow,
                "{text:?}: {:?}",
                j.evaluation
            );
        }
    }

    #[test]
    fn typing_into_an_editor_is_not_a_command() {
        let p = Policy::default_policy().expect("the shipped policy loads");
        let editor = Target {
            window: WindowInfo {
                id: 9,
                title: "notes.txt - Mousepad".into(),
                class: "Mousepad".into(),
                instance: "mousepad".into(),
            },
            line: None,
            paste: None,
        };
        let j = judge(
            &p,
            &WHO,
            &action(json!({"action": "type", "text": "rm -rf ~/scratch\n"})),
            &editor,
        );
        assert_eq!(j.evaluation.decision, Decision::Allow);
        assert!(j.next.is_none());
    }

    #[test]
    fn a_paste_into_a_terminal_asks_and_shows_what_it_inserts() {
        let p = Policy::default_policy().expect("the shipped policy loads");
        let mut target = xterm(Line::empty());
        target.paste = Some(Paste {
            source: "primary".into(),
            text: "echo pasted".into(),
            truncated: false,
            error: None,
        });
        let j = judge(
            &p,
            &WHO,
            &action(json!({"action": "middle_click", "coordinate": [10, 10]})),
            &target,
        );
        assert_eq!(j.evaluation.decision, Decision::Ask, "{:?}", j.evaluation);
        assert_eq!(
            j.terminal.and_then(|t| t.paste).map(|p| p.text).as_deref(),
            Some("echo pasted")
        );
        // What the terminal inserted may differ (bracketed paste, a changed selection).
        assert_eq!(j.next.and_then(|l| l.text()), None);
    }

    #[test]
    fn pastes_are_recognised_by_button_and_combo() {
        assert_eq!(
            paste_source(&action(json!({"action": "key", "text": "shift+Insert"}))),
            Some(SelectionKind::Primary)
        );
        assert_eq!(
            paste_source(&action(json!({"action": "key", "text": "ctrl+shift+v"}))),
            Some(SelectionKind::Clipboard)
        );
        assert_eq!(
            paste_source(&action(json!({"action": "key", "text": "Control+Shift+V"}))),
            Some(SelectionKind::Clipboard)
        );
        assert_eq!(
            paste_source(&action(json!({"action": "key", "text": "ctrl+v"}))),
            None
        );
        assert_eq!(
            paste_source(&action(json!({"action": "middle_click", "coordinate": [1, 1]}))),
            Some(SelectionKind::Primary)
        );
        assert_eq!(
            paste_source(&action(json!({"action": "left_click", "coordinate": [1, 1]}))),
            None
        );
    }

    #[test]
    fn a_click_holding_return_submits_the_line() {
        let p = Policy::default_policy().expect("the shipped policy loads");
        let mut line = Line::empty();
        line.apply(&Keystrokes::Text("touch /tmp/p"));
        let click = action(json!({"action": "left_click", "coordinate": [5, 5], "text": "Return"}));
        assert_eq!(reach(&click), Reach::Focused);
        let j = judge(&p, &WHO, &click, &xterm(line));
        assert_eq!(j.evaluation.decision, Decision::Ask, "{:?}", j.evaluation);
        assert_eq!(
            j.terminal.map(|t| t.lines[0].text.clone()).as_deref(),
            Some("touch /tmp/p")
        );
        let shift_click = action(json!({"action": "left_click", "coordinate": [5, 5], "text": "shift"}));
        assert_eq!(reach(&shift_click), Reach::Nowhere);
    }

    #[test]
    fn a_key_held_down_leaves_the_line_unknown() {
        let p = Policy::default_policy().expect("the shipped policy loads");
        let hold = action(json!({"action": "hold_key", "text": "BackSpace", "duration": 2}));
        let j = judge(&p, &WHO, &hold, &xterm(Line::empty()));
        assert_eq!(j.next.and_then(|l| l.text()), None);
    }

    #[test]
    fn a_middle_drag_pastes_where_it_was_pressed() {
        let drag = Action::Drag {
            path: vec![Point { x: 1, y: 2 }, Point { x: 300, y: 400 }],
            button: MouseButton::Middle,
        };
        assert_eq!(reach(&drag), Reach::At(Some(Point { x: 1, y: 2 })));
    }

    #[test]
    fn terminals_are_told_by_class() {
        assert!(is_terminal("XTerm"));
        assert!(is_terminal("xterm"));
        assert!(!is_terminal("firefox-esr"));
        assert!(!is_terminal(""));
    }
}
