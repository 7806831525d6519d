//! What a command line runs, and what a terminal's input line holds — so that Airlock's policy gate
//! judges what a command *does*, not how it is spelled.
//!
//! An agent runs commands in a sandbox two ways: `exec` with an argv, or typing into a terminal
//! window and pressing Return. This crate gives the gate both views:
//!
//! - [`parse_line`] and [`parse_argv`] turn a shell command line or an exec argv into the
//!   [`SimpleCommand`]s it runs: quotes removed, lists, pipes, groups and substitutions walked,
//!   wrappers (`sudo`, `env`, `sh -c`, `xargs`, `find -exec`...) unwrapped, and flags normalised
//!   (`rm -Rf`, `rm -r -f` and `rm --force --recursive` all give `{force, recursive}`). Each command
//!   keeps its program's base name and the path it was named by (`/tmp/x/ls`). What cannot be
//!   judged (a here-document, `case`, a function definition, anything that makes bash evaluate data
//!   as code such as `$((…))` or `${!name}`, an assignment to a variable that changes what later
//!   commands run, over-long, too deeply nested input or more than 64 commands) is a
//!   [`ParseError`], never a guess. [`parse_interactive`] also refuses history expansion (`!!`,
//!   `^a^b`), which only an interactive bash does, for lines typed into a terminal.
//! - [`Line`] follows what the agent types into one terminal window, and reports each line a
//!   keystroke submits ([`Submitted`]) *before* that keystroke is sent; [`Terminals`] keeps one
//!   line per window. A key the tracker cannot follow makes the line unknown rather than wrong: so
//!   do an erase after a cursor key (a program reading the terminal applies it elsewhere) and a
//!   paste (whose lines are still reported).
//!
//! Everything here is pure: no I/O, no clock, bounded memory, and no panic on any input.
//!
//! ```
//! use airlock_shell::{parse_argv, parse_line, Keystrokes, Line, Submitted};
//!
//! let commands = parse_line("cd /tmp && sudo sh -c 'rm -fR build'")?;
//! assert_eq!(commands[1].program, "rm");
//! assert_eq!(commands[1].wrappers, ["sudo", "sh"]);
//! assert!(commands[1].flags.contains("recursive") && commands[1].flags.contains("force"));
//!
//! let exec = parse_argv(&["echo".to_string(), "a; rm -rf /".to_string()])?;
//! assert_eq!(exec.len(), 1, "no shell splits an exec argv");
//!
//! let mut line = Line::empty();
//! assert!(line.apply(&Keystrokes::Text("rm -rf x")).is_empty());
//! line.apply(&Keystrokes::Key("ctrl+u"));
//! let sent = line.apply(&Keystrokes::Text("ls\n"));
//! assert_eq!(sent, [Submitted::Line("ls".into())]);
//! # Ok::<(), airlock_shell::ParseError>(())
//! ```

#![deny(missing_docs)]

pub mod command;
pub mod line;

pub use command::{parse_argv, parse_interactive, parse_line, ParseError, SimpleCommand};
pub use line::{Keystrokes, Line, Submitted, Terminals};
