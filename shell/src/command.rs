//! What a command line runs: the simple commands of a POSIX-shell (bash subset) command line or of an
//! exec argv, with wrappers (`sudo`, `env`, `sh -c`, `xargs`, `find -exec`...) unwrapped and flags
//! normalised, so that a policy judges what a command does rather than how it is spelled.
//!
//! The parser is a recursive-descent parser over the whole line. Every nested construct (a group, a
//! substitution, a `-c` script, one unwrapped wrapper) counts against [`MAX_DEPTH`], the line, each
//! script and each exec argument are capped at [`MAX_LINE`] bytes, and a line may run at most
//! [`MAX_COMMANDS`] simple commands, so any input, however hostile, is judged or refused in bounded
//! time and memory, without panicking.
//!
//! Things a shell does that are not judged are refused with a [`ParseError`] rather than guessed:
//! here-documents, `case`, function definitions, `select`, `coproc`; everything that makes bash
//! evaluate data as code (arithmetic `$((…))`, `$[…]`, `((…))`, `let`, `[[ … ]]`, array subscripts
//! and substring offsets that name variables, `${!name}` indirection, `${name@P}` transformations);
//! and assignments, in any form (`NAME=value`, `export`/`declare`, `env NAME=value`, `for NAME in`,
//! `${NAME:=value}`, `{NAME}>file`, `read`, `printf -v`...), to the variables that change what later
//! commands run (`PATH`, `PROMPT_COMMAND`, `LD_PRELOAD`, `BASH_ALIASES`, `IFS`...). Refusals that
//! leave the rest of the line readable are recorded and the line is read to its end, so that an
//! unterminated quote after them is still reported as [`ParseError::is_incomplete`].
//!
//! [`parse_interactive`] adds what only an interactive bash does before parsing: history expansion
//! (`!!`, `!-2`, `^old^new`).

use std::collections::BTreeSet;
use std::iter;

/// Longest command line, `-c` script or exec argument judged, in bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting of groups, substitutions, scripts and unwrapped wrappers.
pub const MAX_DEPTH: usize = 16;
/// Most words brace expansion may make of one command, and most words of an exec argv.
pub const MAX_WORDS: usize = 1024;
/// Most characters brace expansion may produce for one line.
pub const MAX_EXPANDED: usize = 256 * 1024;
/// Most simple commands one line or exec argv may run (after unwrapping and substitutions): each is
/// judged on its own, so this bounds the work of judging a line.
pub const MAX_COMMANDS: usize = 64;

/// One program that a command line would start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleCommand {
    /// Base name of the program (`/usr/bin/rm` → `rm`); "" when the command word is not a literal
    /// (starts with `$`, contains a glob, a substitution...) — see `literal`. Also "" for a command
    /// made only of redirections (`> /etc/passwd`), which still writes its targets.
    pub program: String,
    /// The program word as written, after quote removal and unwrapping (`/tmp/x/ls`, `./ls`, `ls`);
    /// "" when it is not a literal, or for a command made only of redirections. A program named by
    /// a path is whatever file that path holds, which its base name (`program`) does not tell.
    pub path: String,
    /// Every word after the program, as the program would receive them (quotes removed, escapes
    /// applied), in order. Redirections are not included. Expansions (`$HOME`, `$(...)`) are kept
    /// as written.
    pub argv: Vec<String>,
    /// Flags, normalised (`rm -Rf` and `rm --force --recursive` both give `force`, `recursive`),
    /// sorted and deduplicated.
    pub flags: BTreeSet<String>,
    /// Wrapper programs that were unwrapped to reach this one, outermost first (`sudo`, `sh`,
    /// `xargs`, `find`...), by base name.
    pub wrappers: Vec<String>,
    /// The same wrappers as written (`/tmp/x/sudo`, `nohup`): one entry per entry of `wrappers`.
    /// A wrapper named by a path outside the system's bin directories is not the wrapper its base
    /// name says, and runs whatever that file does.
    pub wrapper_paths: Vec<String>,
    /// Targets of output redirections (`> f`, `>> f`, `2> f`, `&> f`), literal words.
    pub redirects: Vec<String>,
    /// Whether the program word was a literal (no `$`, glob, or substitution in it).
    pub literal: bool,
}

/// Why a command line cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A quote is opened and never closed.
    #[error("the command line opens a {quote} quote and never closes it")]
    UnterminatedQuote {
        /// The quote character (`'` or `"`).
        quote: char,
    },
    /// The line ends in a backslash, which continues it on the next line.
    #[error("the command line ends in a backslash, which continues it on the next line")]
    TrailingBackslash,
    /// A group, substitution or compound command is opened and never closed.
    #[error("the command line opens `{open}` and never closes it")]
    UnclosedGroup {
        /// What was opened: `(`, `{`, `$(`, `` ` ``, `${`, `$((`, `[[`, `if`, `while`, `for`...
        open: String,
    },
    /// The line ends in an operator that needs a command after it.
    #[error("the command line ends in `{op}`, which needs a command after it")]
    DanglingOperator {
        /// The operator: `|`, `|&`, `&&` or `||`.
        op: String,
    },
    /// A here-document (`<<`, `<<-`), whose text is read from the following lines.
    #[error("the command line has a here-document (`<<`), whose text is not judged")]
    HereDoc,
    /// A construct that is not judged: `case`, a function definition, or one that makes bash
    /// evaluate data as code (arithmetic expansion, `let`, `[[ … ]]`, indirect expansion...).
    #[error("the command line uses {construct}, which is not judged")]
    Unsupported {
        /// The construct, as a phrase (`` `case` ``, "a function definition", "arithmetic
        /// expansion `$((…))` (bash evaluates variables' values in it as code)").
        construct: String,
    },
    /// A token where the grammar does not allow one (`)` without `(`, `fi` without `if`, `;;`).
    #[error("the command line has `{token}` where no command can start or continue")]
    UnexpectedToken {
        /// The token as written, or "newline" / "end of input".
        token: String,
    },
    /// The line, a script, an argument or the expansion of the line is too long.
    #[error("the command line or its expansion is {len} bytes long, over the {max}-byte limit")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Groups, substitutions, scripts and wrappers nest too deeply.
    #[error("the command line nests groups, substitutions, scripts or wrappers deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Brace expansion makes too many words of a command, or an exec argv has too many words.
    #[error("a command has more than {max} words after brace expansion, or in its exec argv")]
    TooManyWords {
        /// The limit.
        max: usize,
    },
    /// The line runs more simple commands than are judged ([`MAX_COMMANDS`]).
    #[error("the command line runs more than {max} commands, more than the gate judges for one line")]
    TooManyCommands {
        /// The limit.
        max: usize,
    },
    /// An assignment to a variable that changes what later commands run, or whose array subscript
    /// bash evaluates as code.
    #[error("the command line assigns {name}, which changes what later commands run, and is not judged")]
    RiskyAssignment {
        /// The variable (with its subscript, for a subscripted assignment).
        name: String,
    },
    /// History expansion (`!!`, `!-1`, `!rm`, `^old^new`), which an interactive bash replaces with
    /// text from an earlier command before parsing the line.
    #[error(
        "the line uses history expansion (`!…`), which bash replaces with an earlier command the gate cannot see"
    )]
    HistoryExpansion,
    /// The script given to a shell (`sh -c`, `su -c`, `eval`) cannot be judged.
    #[error("the script given to {program} cannot be judged: {error}")]
    Script {
        /// The program the script was given to.
        program: String,
        /// Why the script cannot be judged.
        #[source]
        error: Box<ParseError>,
    },
}

impl ParseError {
    /// Whether more input could complete the line: an unterminated quote, a trailing backslash, a
    /// line ending in `|`, `&&` or `||`, an unclosed `(`, `{`, `$(`, backtick, `$((` or `[[`, or an
    /// `if`, `while` or `for` without its end. An error inside a `-c` script is never incomplete:
    /// the shell that reads the line has all of it.
    pub fn is_incomplete(&self) -> bool {
        match self {
            ParseError::UnterminatedQuote { .. }
            | ParseError::TrailingBackslash
            | ParseError::UnclosedGroup { .. }
            | ParseError::DanglingOperator { .. } => true,
            ParseError::HereDoc
            | ParseError::Unsupported { .. }
            | ParseError::UnexpectedToken { .. }
            | ParseError::TooLong { .. }
            | ParseError::TooDeep { .. }
            | ParseError::TooManyWords { .. }
            | ParseError::TooManyCommands { .. }
            | ParseError::RiskyAssignment { .. }
            | ParseError::HistoryExpansion
            | ParseError::Script { .. } => false,
        }
    }
}

/// The simple commands a shell command line runs (it may hold several lines separated by `\n`), in
/// the order they appear, commands inside substitutions before the command whose word holds them.
pub fn parse_line(line: &str) -> Result<Vec<SimpleCommand>, ParseError> {
    parse_script(line, &mut Limits::default())
}

/// [`parse_line`] for a line typed into an interactive bash, which expands history before parsing:
/// a `!` outside single quotes (double quotes do not protect it; a backslash does) followed by
/// anything but a blank, a newline, `=`, `(` or the end of the line, or a line starting with `^`,
/// is [`ParseError::HistoryExpansion`]. An incomplete line is reported as incomplete first, so
/// that its continuation is read.
pub fn parse_interactive(line: &str) -> Result<Vec<SimpleCommand>, ParseError> {
    match parse_line(line) {
        Err(error) if error.is_incomplete() => Err(error),
        _ if expands_history(line) => Err(ParseError::HistoryExpansion),
        result => result,
    }
}

/// Whether an interactive bash would read another line to complete `line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continuation {
    /// Bash runs (or refuses) the line as it is.
    Complete,
    /// Bash reads more lines first.
    Incomplete,
    /// Not known: the parser stopped before the end of the line, or history expansion replaces
    /// part of it with text the gate cannot see.
    Unknown,
}

/// Whether bash would wait for more after `line` (history expansion included).
pub(crate) fn continuation(line: &str) -> Continuation {
    match run_script(line, &mut Limits::default()).stopped {
        Some(error) if error.is_incomplete() => Continuation::Incomplete,
        _ if expands_history(line) => Continuation::Unknown,
        // Bash reports a syntax error and drops the rest of the line.
        None | Some(ParseError::UnexpectedToken { .. }) => Continuation::Complete,
        Some(_) => Continuation::Unknown,
    }
}

/// The simple commands an exec argv runs: no shell is involved (`;` is an ordinary character), but
/// wrappers are unwrapped, and a `sh -c` script is parsed as a command line.
pub fn parse_argv(argv: &[String]) -> Result<Vec<SimpleCommand>, ParseError> {
    if argv.len() > MAX_WORDS {
        return Err(ParseError::TooManyWords { max: MAX_WORDS });
    }
    if let Some(long) = argv.iter().find(|a| a.len() > MAX_LINE) {
        return Err(ParseError::TooLong {
            len: long.len(),
            max: MAX_LINE,
        });
    }
    let args = argv.iter().map(|a| Arg::literal(a)).collect();
    let commands = resolve(args, Wrappers::default(), &mut Limits::default())?;
    if commands.len() > MAX_COMMANDS {
        return Err(ParseError::TooManyCommands { max: MAX_COMMANDS });
    }
    Ok(commands)
}

/// Whether an interactive bash would expand history in `line`. Read both as bash 5 does (a
/// backslash escapes a quote inside `$'…'`) and as older versions do (it does not), and true if
/// either would.
fn expands_history(line: &str) -> bool {
    let quick = line
        .split('\n')
        .any(|l| l.trim_start_matches([' ', '\t']).starts_with('^'));
    quick || history_bang(line, true) || history_bang(line, false)
}

fn history_bang(line: &str, ansi_c_escapes: bool) -> bool {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Quote {
        None,
        Single,
        AnsiC,
        Double,
    }
    let chars: Vec<char> = line.chars().collect();
    let mut quote = Quote::None;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match (quote, c) {
            (Quote::Single, '\'') | (Quote::AnsiC, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::AnsiC, '\\') if ansi_c_escapes => i += 1,
            (Quote::Single | Quote::AnsiC, _) => {}
            (Quote::None | Quote::Double, '\\') => i += 1,
            (Quote::None, '\'') => {
                let dollar = i > 0 && chars.get(i - 1) == Some(&'$');
                quote = if dollar { Quote::AnsiC } else { Quote::Single };
            }
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::None | Quote::Double, '!') => {
                if !matches!(chars.get(i + 1), None | Some(' ' | '\t' | '\n' | '=' | '(')) {
                    return true;
                }
            }
            (Quote::None | Quote::Double, _) => {}
        }
        i += 1;
    }
    false
}

/// Budgets shared by a line and everything nested in it.
#[derive(Debug, Default)]
struct Limits {
    /// Current nesting depth.
    depth: usize,
    /// Characters produced by brace expansion so far.
    expanded: usize,
}

impl Limits {
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::TooDeep { max: MAX_DEPTH });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

fn parse_script(text: &str, limits: &mut Limits) -> Result<Vec<SimpleCommand>, ParseError> {
    run_script(text, limits).into_result()
}

/// What parsing a script gave.
struct Outcome {
    commands: Vec<SimpleCommand>,
    /// The first refusal recorded while reading on.
    refused: Option<ParseError>,
    /// The error that stopped the parser before the end of the script.
    stopped: Option<ParseError>,
}

impl Outcome {
    /// An incomplete line is reported as such (more input may follow), then the first refusal, then
    /// whatever stopped the parser.
    fn into_result(self) -> Result<Vec<SimpleCommand>, ParseError> {
        match (self.stopped, self.refused) {
            (Some(stopped), _) if stopped.is_incomplete() => Err(stopped),
            (_, Some(refused)) => Err(refused),
            (Some(stopped), None) => Err(stopped),
            (None, None) => Ok(self.commands),
        }
    }
}

fn run_script(text: &str, limits: &mut Limits) -> Outcome {
    if text.len() > MAX_LINE {
        return Outcome {
            commands: Vec::new(),
            refused: None,
            stopped: Some(ParseError::TooLong {
                len: text.len(),
                max: MAX_LINE,
            }),
        };
    }
    let mut parser = Parser {
        src: text.chars().collect(),
        pos: 0,
        peeked: None,
        limits,
        out: Vec::new(),
        refused: None,
    };
    let stopped = match parser.parse_list() {
        Ok(Stop::Eof) => None,
        Ok(Stop::RParen) => Some(unexpected(")")),
        Ok(Stop::Reserved(word)) => Some(unexpected(word)),
        Err(error) => Some(error),
    };
    Outcome {
        commands: parser.out,
        refused: parser.refused,
        stopped,
    }
}

fn unexpected(token: &str) -> ParseError {
    ParseError::UnexpectedToken {
        token: token.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Words

/// How a character of a word was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unquoted: may be special (globs, braces, reserved words, assignments).
    Plain,
    /// Quoted or escaped: always literal.
    Quoted,
    /// Part of an expansion or substitution, kept as written; `quoted` when inside double quotes
    /// (then it cannot split into several words).
    Expansion { quoted: bool },
}

#[derive(Debug, Clone, Copy)]
struct Ch {
    c: char,
    kind: Kind,
}

/// A word as lexed: its characters with how each was written.
#[derive(Debug, Clone, Default)]
struct Word {
    chars: Vec<Ch>,
}

impl Word {
    fn push(&mut self, c: char, kind: Kind) {
        self.chars.push(Ch { c, kind });
    }

    fn push_raw(&mut self, raw: &[char], kind: Kind) {
        self.chars.extend(raw.iter().map(|&c| Ch { c, kind }));
    }

    fn text(&self) -> String {
        self.chars.iter().map(|ch| ch.c).collect()
    }

    /// Whether the word is exactly `s`, unquoted (a reserved word, `{`, `}`).
    fn is_bare(&self, s: &str) -> bool {
        self.chars.len() == s.chars().count()
            && self
                .chars
                .iter()
                .zip(s.chars())
                .all(|(ch, c)| ch.kind == Kind::Plain && ch.c == c)
    }

    /// The variable a `NAME=value`, `NAME+=value` or `NAME[i]=value` word assigns, and the
    /// subscript as written.
    fn assignment_name(&self) -> Option<(String, Option<String>)> {
        let mut name = String::new();
        let mut i = 0;
        while let Some(ch) = self.chars.get(i) {
            let fits =
                ch.c == '_' || ch.c.is_ascii_alphabetic() || (!name.is_empty() && ch.c.is_ascii_digit());
            if ch.kind != Kind::Plain || !fits {
                break;
            }
            name.push(ch.c);
            i += 1;
        }
        if name.is_empty() {
            return None;
        }
        let mut subscript = None;
        if self.plain_at(i, '[') {
            let close = (i..self.chars.len()).find(|&j| self.plain_at(j, ']'))?;
            subscript = Some(self.chars.get(i + 1..close)?.iter().map(|ch| ch.c).collect());
            i = close + 1;
        }
        if self.plain_at(i, '=') || (self.plain_at(i, '+') && self.plain_at(i + 1, '=')) {
            Some((name, subscript))
        } else {
            None
        }
    }

    /// The subscript of a `[subscript]=value` element of a compound array assignment.
    fn element_subscript(&self) -> Option<String> {
        if !self.plain_at(0, '[') {
            return None;
        }
        let close = (1..self.chars.len()).find(|&j| self.plain_at(j, ']'))?;
        let assigns =
            self.plain_at(close + 1, '=') || (self.plain_at(close + 1, '+') && self.plain_at(close + 2, '='));
        assigns.then(|| {
            self.chars
                .get(1..close)
                .unwrap_or(&[])
                .iter()
                .map(|ch| ch.c)
                .collect()
        })
    }

    /// The variable of a `{NAME}` word before a redirection operator (`{fd}>file`).
    fn fd_variable(&self) -> Option<String> {
        let (first, rest) = self.chars.split_first()?;
        let (last, name) = rest.split_last()?;
        let plain = |ch: &Ch| ch.kind == Kind::Plain;
        let is_name = !name.is_empty()
            && name
                .iter()
                .all(|ch| plain(ch) && (ch.c == '_' || ch.c.is_ascii_alphanumeric()))
            && !name.first().is_some_and(|ch| ch.c.is_ascii_digit());
        (plain(first) && first.c == '{' && plain(last) && last.c == '}' && is_name)
            .then(|| name.iter().map(|ch| ch.c).collect())
    }

    fn plain_at(&self, i: usize, c: char) -> bool {
        self.chars
            .get(i)
            .is_some_and(|ch| ch.kind == Kind::Plain && ch.c == c)
    }

    /// Whether the word is `NAME=` so far, and a `(` would open an array.
    fn opens_array(&self) -> bool {
        self.chars
            .last()
            .is_some_and(|ch| ch.kind == Kind::Plain && ch.c == '=')
            && self.assignment_name().is_some()
            && self.chars.iter().all(|ch| ch.kind == Kind::Plain)
    }

    fn is_io_number(&self) -> bool {
        !self.chars.is_empty()
            && self
                .chars
                .iter()
                .all(|ch| ch.kind == Kind::Plain && ch.c.is_ascii_digit())
    }
}

/// A word after expansion, as a wrapper or a program receives it.
#[derive(Debug, Clone)]
struct Arg {
    text: String,
    /// No expansion, substitution or glob in it.
    literal: bool,
    /// It may expand into several words, or none (an unquoted expansion or glob).
    splittable: bool,
}

impl Arg {
    fn literal(text: &str) -> Arg {
        Arg {
            text: text.to_string(),
            literal: true,
            splittable: false,
        }
    }

    fn from_chars(chars: &[Ch]) -> Arg {
        let glob = has_glob(chars);
        Arg {
            text: chars.iter().map(|ch| ch.c).collect(),
            literal: !glob && chars.iter().all(|ch| !matches!(ch.kind, Kind::Expansion { .. })),
            splittable: glob
                || chars
                    .iter()
                    .any(|ch| ch.kind == Kind::Expansion { quoted: false }),
        }
    }
}

/// Whether unquoted `*`, `?` or `[...]` make the word a pattern.
fn has_glob(chars: &[Ch]) -> bool {
    let mut closes_later = false;
    for ch in chars.iter().rev() {
        if ch.kind != Kind::Plain {
            continue;
        }
        match ch.c {
            '*' | '?' => return true,
            '[' if closes_later => return true,
            ']' => closes_later = true,
            _ => {}
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Semi,
    DoubleSemi,
    Amp,
    AndIf,
    OrIf,
    Pipe,
    PipeAmp,
    LParen,
    DoubleLParen,
    RParen,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Semi => ";",
            Op::DoubleSemi => ";;",
            Op::Amp => "&",
            Op::AndIf => "&&",
            Op::OrIf => "||",
            Op::Pipe => "|",
            Op::PipeAmp => "|&",
            Op::LParen => "(",
            Op::DoubleLParen => "((",
            Op::RParen => ")",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redir {
    In,
    Out,
    Append,
    Clobber,
    ReadWrite,
    DupIn,
    DupOut,
    All,
    AllAppend,
    HereString,
}

impl Redir {
    fn as_str(self) -> &'static str {
        match self {
            Redir::In => "<",
            Redir::Out => ">",
            Redir::Append => ">>",
            Redir::Clobber => ">|",
            Redir::ReadWrite => "<>",
            Redir::DupIn => "<&",
            Redir::DupOut => ">&",
            Redir::All => "&>",
            Redir::AllAppend => "&>>",
            Redir::HereString => "<<<",
        }
    }

    /// Whether the redirection writes to a file named by `target`.
    fn writes_to(self, target: &str) -> bool {
        match self {
            Redir::Out
            | Redir::Append
            | Redir::Clobber
            | Redir::ReadWrite
            | Redir::All
            | Redir::AllAppend => true,
            // `>&2`, `>&-`, `>&2-` duplicate or close a descriptor; `>&file` writes the file.
            Redir::DupOut => {
                let fd = target.strip_suffix('-').unwrap_or(target);
                !fd.chars().all(|c| c.is_ascii_digit())
            }
            Redir::In | Redir::DupIn | Redir::HereString => false,
        }
    }
}

#[derive(Debug)]
enum Token {
    Word(Word),
    Op(Op),
    Redirect(Redir),
    Newline,
    Eof,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => w.text(),
            Token::Op(op) => op.as_str().to_string(),
            Token::Redirect(r) => r.as_str().to_string(),
            Token::Newline => "newline".to_string(),
            Token::Eof => "end of input".to_string(),
        }
    }
}

/// Words that end a list when they stand where a command would start.
const STOP_WORDS: [&str; 8] = ["}", "then", "elif", "else", "fi", "do", "done", "esac"];

/// What ended a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Eof,
    RParen,
    Reserved(&'static str),
}

fn stop_of(token: &Token) -> Option<Stop> {
    match token {
        Token::Eof => Some(Stop::Eof),
        Token::Op(Op::RParen) => Some(Stop::RParen),
        Token::Word(w) => STOP_WORDS
            .iter()
            .find(|s| w.is_bare(s))
            .map(|s| Stop::Reserved(s)),
        Token::Op(_) | Token::Redirect(_) | Token::Newline => None,
    }
}

/// Whether a pipeline prefix (`!`, `time`) is followed by no command.
fn ends_pipeline(token: &Token) -> bool {
    matches!(
        token,
        Token::Newline | Token::Op(Op::Semi | Op::Amp | Op::AndIf | Op::OrIf)
    ) || stop_of(token).is_some()
}

// ---------------------------------------------------------------------------------------------
// The parser

struct Parser<'l> {
    src: Vec<char>,
    pos: usize,
    peeked: Option<Token>,
    limits: &'l mut Limits,
    out: Vec<SimpleCommand>,
    /// The first refusal met; the parser reads on, to tell an incomplete line.
    refused: Option<ParseError>,
}

impl Parser<'_> {
    /// Records a refusal and reads on: the line is refused once read (the first refusal wins), but
    /// reading it to its end still tells whether it is complete.
    fn refuse(&mut self, error: ParseError) {
        self.refused.get_or_insert(error);
    }

    /// Adds a command the line runs, refusing the line once it runs more than [`MAX_COMMANDS`].
    fn push(&mut self, command: SimpleCommand) {
        if self.out.len() < MAX_COMMANDS {
            self.out.push(command);
        } else {
            self.refuse(ParseError::TooManyCommands { max: MAX_COMMANDS });
        }
    }

    fn cur(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    fn at(&self, offset: usize) -> Option<char> {
        self.src.get(self.pos + offset).copied()
    }

    fn raw(&self, from: usize) -> &[char] {
        self.src.get(from..self.pos).unwrap_or(&[])
    }

    fn peek(&mut self) -> Result<&Token, ParseError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lex()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lex(),
        }
    }

    // --- grammar ---------------------------------------------------------------------------

    /// Commands separated by `;`, `&` and newlines, up to a token that ends the list (left unread).
    fn parse_list(&mut self) -> Result<Stop, ParseError> {
        loop {
            while matches!(self.peek()?, Token::Newline) {
                self.next()?;
            }
            if let Some(stop) = stop_of(self.peek()?) {
                return Ok(stop);
            }
            self.parse_and_or()?;
            let token = self.peek()?;
            if matches!(token, Token::Newline | Token::Op(Op::Semi | Op::Amp)) {
                self.next()?;
                continue;
            }
            if let Some(stop) = stop_of(token) {
                return Ok(stop);
            }
            return Err(unexpected(&token.describe()));
        }
    }

    fn parse_and_or(&mut self) -> Result<(), ParseError> {
        self.parse_pipeline()?;
        loop {
            let op = match self.peek()? {
                Token::Op(op @ (Op::AndIf | Op::OrIf)) => *op,
                _ => return Ok(()),
            };
            self.next()?;
            self.skip_newlines_after(op)?;
            self.parse_pipeline()?;
        }
    }

    fn skip_newlines_after(&mut self, op: Op) -> Result<(), ParseError> {
        loop {
            match self.peek()? {
                Token::Newline => {
                    self.next()?;
                }
                Token::Eof => {
                    return Err(ParseError::DanglingOperator {
                        op: op.as_str().to_string(),
                    })
                }
                _ => return Ok(()),
            }
        }
    }

    fn parse_pipeline(&mut self) -> Result<(), ParseError> {
        let mut prefixed = false;
        loop {
            let (bang, time) = match self.peek()? {
                Token::Word(w) => (w.is_bare("!"), w.is_bare("time")),
                _ => (false, false),
            };
            if !bang && !time {
                break;
            }
            self.next()?;
            if time && matches!(self.peek()?, Token::Word(w) if w.is_bare("-p")) {
                self.next()?;
            }
            prefixed = true;
        }
        if prefixed && ends_pipeline(self.peek()?) {
            return Ok(());
        }
        self.parse_command()?;
        loop {
            let op = match self.peek()? {
                Token::Op(op @ (Op::Pipe | Op::PipeAmp)) => *op,
                _ => return Ok(()),
            };
            self.next()?;
            self.skip_newlines_after(op)?;
            self.parse_command()?;
        }
    }

    fn parse_command(&mut self) -> Result<(), ParseError> {
        enum Start {
            Subshell,
            Brace,
            If,
            Loop(&'static str),
            For,
            Arithmetic,
            Test,
            Simple,
        }
        let start = match self.peek()? {
            Token::Op(Op::LParen) => Start::Subshell,
            Token::Op(Op::DoubleLParen) => Start::Arithmetic,
            Token::Redirect(_) => Start::Simple,
            Token::Word(w) => {
                if w.is_bare("{") {
                    Start::Brace
                } else if w.is_bare("if") {
                    Start::If
                } else if w.is_bare("while") {
                    Start::Loop("while")
                } else if w.is_bare("until") {
                    Start::Loop("until")
                } else if w.is_bare("for") {
                    Start::For
                } else if w.is_bare("[[") {
                    Start::Test
                } else if let Some(word) = ["case", "select", "function", "coproc"]
                    .iter()
                    .find(|s| w.is_bare(s))
                {
                    return Err(unsupported(&format!("`{word}`")));
                } else if STOP_WORDS.iter().any(|s| w.is_bare(s)) {
                    return Err(unexpected(&w.text()));
                } else {
                    Start::Simple
                }
            }
            token @ (Token::Op(_) | Token::Newline | Token::Eof) => {
                return Err(unexpected(&token.describe()))
            }
        };
        match start {
            Start::Simple => self.parse_simple(),
            Start::Subshell => self.compound(|p| {
                p.next()?;
                match p.parse_list()? {
                    Stop::RParen => p.next().map(drop),
                    Stop::Eof => Err(ParseError::UnclosedGroup { open: "(".into() }),
                    Stop::Reserved(word) => Err(unexpected(word)),
                }
            }),
            Start::Brace => self.compound(|p| {
                p.next()?;
                p.expect_list("}", "{")
            }),
            Start::If => self.compound(|p| {
                p.next()?;
                loop {
                    p.expect_list("then", "if")?;
                    match p.parse_list()? {
                        Stop::Reserved("elif") => {
                            p.next()?;
                        }
                        Stop::Reserved("else") => {
                            p.next()?;
                            return p.expect_list("fi", "if");
                        }
                        Stop::Reserved("fi") => return p.next().map(drop),
                        Stop::Eof => return Err(ParseError::UnclosedGroup { open: "if".into() }),
                        Stop::RParen => return Err(unexpected(")")),
                        Stop::Reserved(word) => return Err(unexpected(word)),
                    }
                }
            }),
            Start::Loop(keyword) => self.compound(|p| {
                p.next()?;
                p.expect_list("do", keyword)?;
                p.expect_list("done", keyword)
            }),
            Start::For => self.compound(Self::for_loop),
            Start::Arithmetic => self.compound(|p| {
                p.next()?;
                p.skip_arithmetic("((")?;
                p.refuse(unsupported(ARITHMETIC_COMMAND));
                Ok(())
            }),
            // `[[ … ]]`: read to its `]]` (substitutions in it still run), then refused.
            Start::Test => self.compound(|p| {
                p.next()?;
                loop {
                    match p.next()? {
                        Token::Word(w) if w.is_bare("]]") => break,
                        Token::Eof => return Err(ParseError::UnclosedGroup { open: "[[".into() }),
                        _ => {}
                    }
                }
                p.refuse(unsupported(DOUBLE_BRACKET));
                Ok(())
            }),
        }
    }

    /// Parses a compound command with `body`, one level deeper, then its redirections, which apply
    /// to every command inside it.
    fn compound(&mut self, body: impl FnOnce(&mut Self) -> Result<(), ParseError>) -> Result<(), ParseError> {
        let first = self.out.len();
        self.limits.enter()?;
        body(self)?;
        self.limits.leave();
        let mut targets = Vec::new();
        while matches!(self.peek()?, Token::Redirect(_)) {
            if let Token::Redirect(redir) = self.next()? {
                self.redirect(redir, &mut targets)?;
            }
        }
        for command in self.out.iter_mut().skip(first) {
            command.redirects.extend(targets.iter().cloned());
        }
        Ok(())
    }

    /// Parses a list that must end with the reserved word `end`, and reads that word.
    fn expect_list(&mut self, end: &'static str, open: &'static str) -> Result<(), ParseError> {
        match self.parse_list()? {
            Stop::Reserved(word) if word == end => self.next().map(drop),
            Stop::Eof => Err(ParseError::UnclosedGroup { open: open.into() }),
            Stop::RParen => Err(unexpected(")")),
            Stop::Reserved(word) => Err(unexpected(word)),
        }
    }

    /// `for NAME [in WORDS] ; do LIST done`: the header is skipped (its substitutions still run),
    /// but NAME is assigned like `NAME=value`. `for ((…))` is read, then refused.
    fn for_loop(&mut self) -> Result<(), ParseError> {
        let unclosed = || ParseError::UnclosedGroup { open: "for".into() };
        self.next()?;
        match self.next()? {
            Token::Word(name) => {
                if let Err(error) = check_variable(&name.text()) {
                    self.refuse(error);
                }
                self.skip_newlines(unclosed)?;
                if matches!(self.peek()?, Token::Word(w) if w.is_bare("in")) {
                    self.next()?;
                    loop {
                        match self.next()? {
                            Token::Word(_) => {}
                            Token::Op(Op::Semi) | Token::Newline => break,
                            Token::Eof => return Err(unclosed()),
                            token => return Err(unexpected(&token.describe())),
                        }
                    }
                } else if matches!(self.peek()?, Token::Op(Op::Semi)) {
                    self.next()?;
                }
            }
            Token::Op(Op::DoubleLParen) => {
                self.skip_arithmetic("for ((")?;
                self.refuse(unsupported(ARITHMETIC_FOR));
                if matches!(self.peek()?, Token::Op(Op::Semi)) {
                    self.next()?;
                }
            }
            Token::Eof => return Err(unclosed()),
            token => return Err(unexpected(&token.describe())),
        }
        self.skip_newlines(unclosed)?;
        match self.next()? {
            Token::Word(w) if w.is_bare("do") => self.expect_list("done", "for"),
            Token::Eof => Err(unclosed()),
            token => Err(unexpected(&token.describe())),
        }
    }

    fn skip_newlines(&mut self, at_eof: impl Fn() -> ParseError) -> Result<(), ParseError> {
        loop {
            match self.peek()? {
                Token::Newline => {
                    self.next()?;
                }
                Token::Eof => return Err(at_eof()),
                _ => return Ok(()),
            }
        }
    }

    fn parse_simple(&mut self) -> Result<(), ParseError> {
        let mut words: Vec<Word> = Vec::new();
        let mut targets = Vec::new();
        loop {
            match self.peek()? {
                Token::Word(_) => {
                    if let Token::Word(word) = self.next()? {
                        if words.is_empty() {
                            if let Some((name, subscript)) = word.assignment_name() {
                                if let Err(error) = check_assigned(&name, subscript.as_deref()) {
                                    self.refuse(error);
                                }
                                continue;
                            }
                        }
                        words.push(word);
                    }
                }
                Token::Redirect(_) => {
                    if let Token::Redirect(redir) = self.next()? {
                        self.redirect(redir, &mut targets)?;
                    }
                }
                Token::Op(Op::LParen | Op::DoubleLParen) if words.len() == 1 => {
                    return Err(unsupported("a function definition"));
                }
                Token::Op(_) | Token::Newline | Token::Eof => break,
            }
        }
        self.finish_simple(words, targets)
    }

    fn redirect(&mut self, redir: Redir, targets: &mut Vec<String>) -> Result<(), ParseError> {
        match self.next()? {
            Token::Word(target) => {
                let text = target.text();
                if redir.writes_to(&text) {
                    targets.push(text);
                }
                Ok(())
            }
            token => Err(unexpected(&token.describe())),
        }
    }

    /// Resolves a simple command into the commands it runs. What cannot be judged about it is
    /// refused without stopping the parser: the words were all read.
    fn finish_simple(&mut self, words: Vec<Word>, targets: Vec<String>) -> Result<(), ParseError> {
        if words.is_empty() {
            if !targets.is_empty() {
                self.push(SimpleCommand {
                    program: String::new(),
                    path: String::new(),
                    argv: Vec::new(),
                    flags: BTreeSet::new(),
                    wrappers: Vec::new(),
                    wrapper_paths: Vec::new(),
                    redirects: targets,
                    literal: true,
                });
            }
            return Ok(());
        }
        let depth = self.limits.depth;
        let resolved = expand_words(words, &mut self.limits.expanded)
            .and_then(|args| resolve(args, Wrappers::default(), self.limits));
        self.limits.depth = depth;
        match resolved {
            Ok(commands) => {
                for mut command in commands {
                    command.redirects.extend(targets.iter().cloned());
                    self.push(command);
                }
            }
            Err(error) => self.refuse(error),
        }
        Ok(())
    }

    // --- lexer -----------------------------------------------------------------------------

    fn lex(&mut self) -> Result<Token, ParseError> {
        loop {
            match (self.cur(), self.at(1)) {
                (Some(' ' | '\t'), _) => self.pos += 1,
                (Some('\\'), Some('\n')) => self.pos += 2,
                (Some('#'), _) => {
                    while self.cur().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let Some(c) = self.cur() else {
            return Ok(Token::Eof);
        };
        let (token, len) = match (c, self.at(1), self.at(2)) {
            ('\n', _, _) => (Token::Newline, 1),
            (';', Some(';' | '&'), _) => (Token::Op(Op::DoubleSemi), 2),
            (';', _, _) => (Token::Op(Op::Semi), 1),
            ('&', Some('&'), _) => (Token::Op(Op::AndIf), 2),
            ('&', Some('>'), Some('>')) => (Token::Redirect(Redir::AllAppend), 3),
            ('&', Some('>'), _) => (Token::Redirect(Redir::All), 2),
            ('&', _, _) => (Token::Op(Op::Amp), 1),
            ('|', Some('|'), _) => (Token::Op(Op::OrIf), 2),
            ('|', Some('&'), _) => (Token::Op(Op::PipeAmp), 2),
            ('|', _, _) => (Token::Op(Op::Pipe), 1),
            ('(', Some('('), _) => (Token::Op(Op::DoubleLParen), 2),
            ('(', _, _) => (Token::Op(Op::LParen), 1),
            (')', _, _) => (Token::Op(Op::RParen), 1),
            ('<' | '>', Some('('), _) => return self.lex_word(),
            ('<' | '>', _, _) => return self.lex_redirect(),
            _ => return self.lex_word(),
        };
        self.pos += len;
        Ok(token)
    }

    fn lex_redirect(&mut self) -> Result<Token, ParseError> {
        let (redir, len) = match (self.cur(), self.at(1), self.at(2)) {
            (Some('<'), Some('<'), Some('<')) => (Redir::HereString, 3),
            (Some('<'), Some('<'), _) => return Err(ParseError::HereDoc),
            (Some('<'), Some('>'), _) => (Redir::ReadWrite, 2),
            (Some('<'), Some('&'), _) => (Redir::DupIn, 2),
            (Some('<'), _, _) => (Redir::In, 1),
            (Some('>'), Some('>'), _) => (Redir::Append, 2),
            (Some('>'), Some('|'), _) => (Redir::Clobber, 2),
            (Some('>'), Some('&'), _) => (Redir::DupOut, 2),
            (Some('>'), _, _) => (Redir::Out, 1),
            (other, _, _) => return Err(unexpected(&other.map(String::from).unwrap_or_default())),
        };
        self.pos += len;
        Ok(Token::Redirect(redir))
    }

    fn lex_word(&mut self) -> Result<Token, ParseError> {
        let mut word = Word::default();
        while let Some(c) = self.cur() {
            match c {
                ' ' | '\t' | '\n' | ';' | '&' | '|' | ')' => break,
                '(' if word.opens_array() => self.lex_array(&mut word)?,
                '(' => break,
                '<' | '>' if self.at(1) == Some('(') => {
                    let start = self.pos;
                    self.pos += 2;
                    self.substitution(if c == '<' { "<(" } else { ">(" })?;
                    word.push_raw(self.raw(start), Kind::Expansion { quoted: false });
                }
                '<' | '>' if word.is_io_number() => return self.lex_redirect(),
                // `{NAME}>file` opens a descriptor and assigns its number to NAME.
                '<' | '>' if word.fd_variable().is_some() => {
                    if let Some(name) = word.fd_variable() {
                        if let Err(error) = check_variable(&name) {
                            self.refuse(error);
                        }
                    }
                    return self.lex_redirect();
                }
                '<' | '>' => break,
                '\\' => match self.at(1) {
                    None => return Err(ParseError::TrailingBackslash),
                    Some('\n') => self.pos += 2,
                    Some(escaped) => {
                        word.push(escaped, Kind::Quoted);
                        self.pos += 2;
                    }
                },
                '\'' => {
                    self.pos += 1;
                    loop {
                        match self.cur() {
                            None => return Err(ParseError::UnterminatedQuote { quote: '\'' }),
                            Some('\'') => break,
                            Some(quoted) => word.push(quoted, Kind::Quoted),
                        }
                        self.pos += 1;
                    }
                    self.pos += 1;
                }
                '"' => self.lex_double_quoted(&mut word)?,
                '`' => self.lex_backtick(&mut word, false)?,
                '$' => self.lex_dollar(&mut word, false)?,
                _ => {
                    word.push(c, Kind::Plain);
                    self.pos += 1;
                }
            }
        }
        Ok(Token::Word(word))
    }

    /// `NAME=(words...)`: the words are read (their substitutions run) and kept as written; a
    /// `[subscript]=value` word's subscript is checked like `NAME[subscript]=value`.
    fn lex_array(&mut self, word: &mut Word) -> Result<(), ParseError> {
        let start = self.pos;
        self.pos += 1;
        self.limits.enter()?;
        loop {
            match self.lex()? {
                Token::Word(element) => {
                    if let Some(subscript) = element.element_subscript() {
                        if let Err(error) = check_subscript(&word.text(), &subscript) {
                            self.refuse(error);
                        }
                    }
                }
                Token::Newline => {}
                Token::Op(Op::RParen) => break,
                Token::Eof => return Err(ParseError::UnclosedGroup { open: "(".into() }),
                token => return Err(unexpected(&token.describe())),
            }
        }
        self.limits.leave();
        word.push_raw(self.raw(start), Kind::Quoted);
        Ok(())
    }

    fn lex_double_quoted(&mut self, word: &mut Word) -> Result<(), ParseError> {
        self.pos += 1;
        loop {
            match self.cur() {
                None => return Err(ParseError::UnterminatedQuote { quote: '"' }),
                Some('"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some('\\') => match self.at(1) {
                    None => return Err(ParseError::UnterminatedQuote { quote: '"' }),
                    Some('\n') => self.pos += 2,
                    Some(escaped @ ('$' | '`' | '"' | '\\')) => {
                        word.push(escaped, Kind::Quoted);
                        self.pos += 2;
                    }
                    Some(_) => {
                        word.push('\\', Kind::Quoted);
                        self.pos += 1;
                    }
                },
                Some('$') => self.lex_dollar(word, true)?,
                Some('`') => self.lex_backtick(word, true)?,
                Some(c) => {
                    word.push(c, Kind::Quoted);
                    self.pos += 1;
                }
            }
        }
    }

    fn lex_dollar(&mut self, word: &mut Word, quoted: bool) -> Result<(), ParseError> {
        let start = self.pos;
        let expansion = Kind::Expansion { quoted };
        match (self.at(1), self.at(2)) {
            (Some('('), Some('(')) => self.lex_arithmetic()?,
            (Some('['), _) => self.lex_old_arithmetic()?,
            (Some('('), _) => {
                self.pos += 2;
                self.substitution("$(")?;
            }
            (Some('{'), _) => self.lex_parameter(quoted)?,
            (Some('\''), _) if !quoted => return self.lex_ansi_c(word),
            (Some('"'), _) if !quoted => {
                self.pos += 1;
                return self.lex_double_quoted(word);
            }
            (Some(c), _) if c == '_' || c.is_ascii_alphabetic() => {
                self.pos += 1;
                while self.cur().is_some_and(|c| c == '_' || c.is_ascii_alphanumeric()) {
                    self.pos += 1;
                }
            }
            (Some(c), _) if c.is_ascii_digit() || "@*#?$!-".contains(c) => self.pos += 2,
            _ => {
                word.push('$', if quoted { Kind::Quoted } else { Kind::Plain });
                self.pos += 1;
                return Ok(());
            }
        }
        word.push_raw(self.raw(start), expansion);
        Ok(())
    }

    /// After `$(`, `<(` or `>(`: the commands up to the matching `)`, one level deeper.
    fn substitution(&mut self, open: &str) -> Result<(), ParseError> {
        self.limits.enter()?;
        match self.parse_list()? {
            Stop::RParen => {
                self.next()?;
            }
            Stop::Eof => return Err(ParseError::UnclosedGroup { open: open.into() }),
            Stop::Reserved(word) => return Err(unexpected(word)),
        }
        self.limits.leave();
        Ok(())
    }

    /// `` `commands` ``: the text up to the closing backtick, unescaped, parsed one level deeper.
    fn lex_backtick(&mut self, word: &mut Word, quoted: bool) -> Result<(), ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut inner = String::new();
        loop {
            match (self.cur(), self.at(1)) {
                (None, _) | (Some('\\'), None) => return Err(ParseError::UnclosedGroup { open: "`".into() }),
                (Some('`'), _) => break,
                (Some('\\'), Some(escaped)) if "$`\\".contains(escaped) || (quoted && escaped == '"') => {
                    inner.push(escaped);
                    self.pos += 2;
                }
                (Some(c), _) => {
                    inner.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        self.limits.enter()?;
        let depth = self.limits.depth;
        let parsed = parse_script(&inner, self.limits);
        self.limits.depth = depth;
        self.limits.leave();
        match parsed {
            Ok(commands) => commands.into_iter().for_each(|command| self.push(command)),
            Err(error) if error.is_incomplete() => return Err(error),
            // The whole substitution was read: the line goes on after it.
            Err(error) => self.refuse(error),
        }
        word.push_raw(self.raw(start), Kind::Expansion { quoted });
        Ok(())
    }

    /// `${...}`: skipped to the matching `}`; substitutions inside it run. The forms that evaluate
    /// data as code or assign are refused (see [`check_parameter`]).
    fn lex_parameter(&mut self, quoted: bool) -> Result<(), ParseError> {
        self.pos += 2;
        let start = self.pos;
        self.limits.enter()?;
        let mut scratch = Word::default();
        loop {
            match self.cur() {
                None => return Err(ParseError::UnclosedGroup { open: "${".into() }),
                Some('}') => break,
                Some('\\') => {
                    if self.at(1).is_none() {
                        return Err(ParseError::UnclosedGroup { open: "${".into() });
                    }
                    self.pos += 2;
                }
                Some('\'') if !quoted => {
                    self.pos += 1;
                    while self.cur() != Some('\'') {
                        if self.cur().is_none() {
                            return Err(ParseError::UnterminatedQuote { quote: '\'' });
                        }
                        self.pos += 1;
                    }
                    self.pos += 1;
                }
                Some('"') => self.lex_double_quoted(&mut scratch)?,
                Some('$') => self.lex_dollar(&mut scratch, quoted)?,
                Some('`') => self.lex_backtick(&mut scratch, quoted)?,
                Some(_) => self.pos += 1,
            }
        }
        if let Err(error) = check_parameter(self.raw(start)) {
            self.refuse(error);
        }
        self.pos += 1;
        self.limits.leave();
        Ok(())
    }

    /// `$((...))`: read to the matching `))` (substitutions inside it run), then refused.
    fn lex_arithmetic(&mut self) -> Result<(), ParseError> {
        self.pos += 3;
        self.skip_arithmetic("$((")?;
        self.refuse(unsupported(ARITHMETIC_EXPANSION));
        Ok(())
    }

    /// `$[...]`, bash's old arithmetic expansion: read to the matching `]`, then refused.
    fn lex_old_arithmetic(&mut self) -> Result<(), ParseError> {
        self.pos += 2;
        self.limits.enter()?;
        let mut scratch = Word::default();
        let mut brackets = 0usize;
        loop {
            match self.cur() {
                None => return Err(ParseError::UnclosedGroup { open: "$[".into() }),
                Some('[') => {
                    brackets += 1;
                    self.pos += 1;
                }
                Some(']') if brackets == 0 => break,
                Some(']') => {
                    brackets -= 1;
                    self.pos += 1;
                }
                Some('\\') => {
                    if self.at(1).is_none() {
                        return Err(ParseError::UnclosedGroup { open: "$[".into() });
                    }
                    self.pos += 2;
                }
                Some('"') => self.lex_double_quoted(&mut scratch)?,
                Some('$') => self.lex_dollar(&mut scratch, true)?,
                Some('`') => self.lex_backtick(&mut scratch, true)?,
                Some(_) => self.pos += 1,
            }
        }
        self.pos += 1;
        self.limits.leave();
        self.refuse(unsupported(OLD_ARITHMETIC_EXPANSION));
        Ok(())
    }

    /// After the `((` of `$((`, `((` or `for ((`: the text up to the matching `))`, one level deeper
    /// (substitutions inside it run).
    fn skip_arithmetic(&mut self, open: &str) -> Result<(), ParseError> {
        self.limits.enter()?;
        let unclosed = || ParseError::UnclosedGroup { open: open.into() };
        let mut scratch = Word::default();
        let mut parens = 0usize;
        loop {
            match self.cur() {
                None => return Err(unclosed()),
                Some('(') => {
                    parens += 1;
                    self.pos += 1;
                }
                Some(')') if parens > 0 => {
                    parens -= 1;
                    self.pos += 1;
                }
                Some(')') => {
                    if self.at(1) == Some(')') {
                        self.pos += 2;
                        break;
                    }
                    return Err(match self.at(1) {
                        None => unclosed(),
                        Some(_) => unsupported(&format!("a `{open}` that is not arithmetic")),
                    });
                }
                Some('\\') => {
                    if self.at(1).is_none() {
                        return Err(unclosed());
                    }
                    self.pos += 2;
                }
                Some('"') => self.lex_double_quoted(&mut scratch)?,
                Some('$') => self.lex_dollar(&mut scratch, true)?,
                Some('`') => self.lex_backtick(&mut scratch, true)?,
                Some(_) => self.pos += 1,
            }
        }
        self.limits.leave();
        Ok(())
    }

    /// `$'...'`: ANSI-C quoting, escapes applied (text after a `\0` is dropped, as bash does).
    fn lex_ansi_c(&mut self, word: &mut Word) -> Result<(), ParseError> {
        self.pos += 2;
        let mut ended = false;
        loop {
            let c = match (self.cur(), self.at(1)) {
                (None, _) | (Some('\\'), None) => return Err(ParseError::UnterminatedQuote { quote: '\'' }),
                (Some('\''), _) => break,
                (Some('\\'), Some(escape)) => {
                    self.pos += 2;
                    self.ansi_c_escape(escape)
                }
                (Some(c), _) => {
                    self.pos += 1;
                    Some(c)
                }
            };
            match c {
                Some('\0') => ended = true,
                Some(c) if !ended => word.push(c, Kind::Quoted),
                Some(_) | None => {}
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// The character an ANSI-C escape stands for, the escape letter already read.
    fn ansi_c_escape(&mut self, escape: char) -> Option<char> {
        match escape {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '?' => Some(escape),
            'x' => self.digits(16, 2).and_then(char::from_u32),
            'u' => self.digits(16, 4).and_then(char::from_u32),
            'U' => self.digits(16, 8).and_then(char::from_u32),
            '0'..='7' => {
                self.pos -= 1;
                self.digits(8, 3).and_then(char::from_u32)
            }
            'c' => {
                let c = self.cur()?;
                self.pos += 1;
                char::from_u32(c as u32 & 0x1f)
            }
            _ => {
                // An unknown escape stays as written: the backslash, then the character.
                self.pos -= 1;
                Some('\\')
            }
        }
    }

    /// Up to `most` digits in `radix`, as a number.
    fn digits(&mut self, radix: u32, most: usize) -> Option<u32> {
        let mut value = 0u32;
        let mut count = 0;
        while count < most {
            let Some(digit) = self.cur().and_then(|c| c.to_digit(radix)) else {
                break;
            };
            value = value * radix + digit;
            count += 1;
            self.pos += 1;
        }
        (count > 0).then_some(value)
    }
}

fn unsupported(construct: &str) -> ParseError {
    ParseError::Unsupported {
        construct: construct.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Variables

/// Variables whose value changes what later commands run, which program a name runs, or what the
/// shell reads, writes or runs on its own. Every `LD_` variable and `BASH_FUNC_` function import
/// is refused too.
const RISKY_VARIABLES: [&str; 32] = [
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "GCONV_PATH",
    "BASH_ENV",
    "ENV",
    "PROMPT_COMMAND",
    "PS0",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "BASH_ALIASES",
    "BASH_CMDS",
    "BASH_LOADABLES_PATH",
    "BASH_XTRACEFD",
    "MAIL",
    "MAILPATH",
    "MAILCHECK",
    "HISTFILE",
    "HISTCONTROL",
    "HISTIGNORE",
    "INPUTRC",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "FIGNORE",
    "EXECIGNORE",
    "TIMEFORMAT",
];

// What each construct that evaluates data as code is called in `ParseError::Unsupported`.
const ARITHMETIC_EXPANSION: &str =
    "arithmetic expansion `$((…))` (bash evaluates the values of the variables in it as code, which may run commands)";
const OLD_ARITHMETIC_EXPANSION: &str =
    "arithmetic expansion `$[…]` (bash evaluates the values of the variables in it as code, which may run commands)";
const ARITHMETIC_COMMAND: &str =
    "an arithmetic command `((…))` (bash evaluates the values of the variables in it as code, which may run commands)";
const ARITHMETIC_FOR: &str =
    "an arithmetic `for ((…))` (bash evaluates the values of the variables in it as code, which may run commands)";
const LET: &str =
    "`let` (bash evaluates its arguments, and the values of the variables in them, as code, which may run commands)";
const DOUBLE_BRACKET: &str =
    "`[[ … ]]` (bash evaluates its operands as arithmetic or patterns, and the values of the variables in them as code)";
const INDIRECT: &str =
    "indirect expansion `${!…}` (it expands the variable another variable's value names, or lists variables)";
const TRANSFORMATION: &str =
    "a parameter transformation `${…@…}` (`@P` expands a value as a prompt, running the commands in it)";
const ARITHMETIC_SUBSCRIPT: &str =
    "an array subscript or substring offset in `${…}` that names a variable or \
     holds an expansion (bash evaluates it as arithmetic, and the variable's value as code)";
const NAME_REFERENCE: &str =
    "a name reference (`declare -n`), whose assignments assign the variable it names, which is not seen";
const INTEGER_VARIABLE: &str =
    "an integer variable (`declare -i`), whose assignments bash evaluates as arithmetic, running code values hold";

fn check_variable(name: &str) -> Result<(), ParseError> {
    let risky = RISKY_VARIABLES.contains(&name) || name.starts_with("LD_") || name.starts_with("BASH_FUNC_");
    if risky {
        return Err(ParseError::RiskyAssignment {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// An assignment to `name` or `name[subscript]`: refused for a risky variable, and for a subscript
/// that names a variable or holds an expansion, which bash evaluates as arithmetic, running code a
/// value holds (`x='a[$(cmd)]'; b[x]=1` runs cmd).
fn check_assigned(name: &str, subscript: Option<&str>) -> Result<(), ParseError> {
    check_variable(name)?;
    match subscript {
        Some(subscript) => check_subscript(name, subscript),
        None => Ok(()),
    }
}

fn check_subscript(name: &str, subscript: &str) -> Result<(), ParseError> {
    if evaluates_code(subscript) {
        return Err(ParseError::RiskyAssignment {
            name: format!("{name}[{subscript}]"),
        });
    }
    Ok(())
}

/// `NAME`, `NAME+` or `NAME[subscript]` (what an assignment word holds before its `=`), checked.
fn check_target(target: &str) -> Result<(), ParseError> {
    let target = target.strip_suffix('+').unwrap_or(target);
    match target.split_once('[') {
        Some((name, rest)) => check_assigned(name, Some(rest.strip_suffix(']').unwrap_or(rest))),
        None => check_variable(target),
    }
}

/// Whether bash evaluating `expression` as arithmetic may run code: it holds an expansion, or
/// names a variable, whose value bash evaluates as an expression in turn (`a[$(cmd)]`). Letters
/// inside a number (`0x1f`, `16#ff`) name nothing.
fn evaluates_code(expression: &str) -> bool {
    let mut previous = ' ';
    for c in expression.chars() {
        let in_number = previous.is_ascii_alphanumeric() || previous == '_' || previous == '#';
        if c == '$' || c == '`' || ((c == '_' || c.is_alphabetic()) && !in_number) {
            return true;
        }
        previous = c;
    }
    false
}

/// `${…}` (the text between its braces): refused when it evaluates data as code (indirection,
/// `@` transformations, a subscript or substring offset that names a variable) or assigns a risky
/// variable (`${NAME:=value}`).
fn check_parameter(raw: &[char]) -> Result<(), ParseError> {
    let text: String = raw.iter().collect();
    let mut rest = text.as_str();
    if let Some(after) = rest.strip_prefix('!') {
        // `${!}` is `$!`; anything after the `!` is indirection or a list of names.
        return if after.is_empty() {
            Ok(())
        } else {
            Err(unsupported(INDIRECT))
        };
    }
    if let Some(after) = rest.strip_prefix('#') {
        if !after.is_empty() && !after.starts_with([':', '}']) {
            rest = after;
            if rest.starts_with('!') && rest.len() > 1 {
                return Err(unsupported(INDIRECT));
            }
        }
    }
    let name_len = match rest.chars().next() {
        Some(c) if c == '_' || c.is_alphabetic() => rest
            .find(|c: char| !(c == '_' || c.is_alphanumeric()))
            .unwrap_or(rest.len()),
        Some(c) if c.is_ascii_digit() => rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len()),
        Some(c) if "@*#?$!-".contains(c) => 1,
        _ => return Ok(()),
    };
    let (name, mut rest) = rest.split_at(name_len);
    let mut subscript = None;
    if let Some(after) = rest.strip_prefix('[') {
        let mut depth = 0usize;
        let close = after.char_indices().find_map(|(at, c)| match c {
            '[' => {
                depth += 1;
                None
            }
            ']' if depth == 0 => Some(at),
            ']' => {
                depth -= 1;
                None
            }
            _ => None,
        });
        subscript = Some(close.map_or(after, |at| &after[..at]));
        rest = close.map_or("", |at| &after[at + 1..]);
    }
    if rest.starts_with(":=") || rest.starts_with('=') {
        check_variable(name)?;
    }
    if subscript.is_some_and(|s| s != "@" && s != "*" && evaluates_code(s)) {
        return Err(unsupported(ARITHMETIC_SUBSCRIPT));
    }
    if rest.starts_with('@') {
        return Err(unsupported(TRANSFORMATION));
    }
    if let Some(offsets) = rest.strip_prefix(':') {
        if !offsets.starts_with(['-', '=', '?', '+']) && evaluates_code(offsets) {
            return Err(unsupported(ARITHMETIC_SUBSCRIPT));
        }
    }
    Ok(())
}

/// Builtins that assign variables their arguments name, or evaluate their arguments as code, run
/// after any wrapper (`command export`, `builtin read`).
fn check_builtin(program: &str, args: &[Arg]) -> Result<(), ParseError> {
    let words = args.get(1..).unwrap_or(&[]);
    match program {
        "read" | "mapfile" | "readarray" | "getopts" | "wait" => check_named(words, Names::Every),
        // `export PATH` only marks it; `export PATH=x` assigns it.
        "export" | "readonly" => check_named(words, Names::Assigned),
        "declare" | "typeset" | "local" => {
            for word in words.iter().filter(|w| w.text.starts_with('-')) {
                if word.text.contains('n') {
                    return Err(unsupported(NAME_REFERENCE));
                }
                if word.text.contains('i') {
                    return Err(unsupported(INTEGER_VARIABLE));
                }
            }
            check_named(words, Names::Assigned)
        }
        "unset" => check_named(words, Names::None),
        "printf" => check_printf(words),
        "let" => Err(unsupported(LET)),
        _ => Ok(()),
    }
}

/// Which variables a builtin's arguments name that it assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// Every one (`read NAME`).
    Every,
    /// Those given a value (`export NAME=value`).
    Assigned,
    /// None (`unset NAME`), though subscripts are still evaluated.
    None,
}

/// The variables words name (`NAME`, `NAME[subscript]`, `NAME=value`, `NAME=([subscript]=value)`):
/// a risky one the builtin assigns, a subscript bash evaluates as code, or a name that is an
/// expansion (which may name any variable) is refused.
fn check_named(words: &[Arg], names: Names) -> Result<(), ParseError> {
    for word in words {
        let text = word.text.as_str();
        let (target, value) = match text.split_once('=') {
            Some((target, value)) => (target, Some(value)),
            None => (text, None),
        };
        if target.contains(['$', '`']) {
            return Err(ParseError::RiskyAssignment {
                name: format!("the variable `{target}` names"),
            });
        }
        let target = target.strip_suffix('+').unwrap_or(target);
        let (name, subscript) = match target.split_once('[') {
            Some((name, rest)) => match rest.strip_suffix(']') {
                Some(subscript) => (name, Some(subscript)),
                None => continue,
            },
            None => (target, None),
        };
        let is_name = name.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
            && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
        if !is_name {
            continue;
        }
        if names == Names::Every || (names == Names::Assigned && value.is_some()) {
            check_variable(name)?;
        }
        if let Some(subscript) = subscript {
            check_subscript(name, subscript)?;
        }
        // A compound assignment's `[subscript]=value` elements.
        if let Some(elements) = value.and_then(|v| v.strip_prefix('(')) {
            for element in elements.split('[').skip(1) {
                if let Some((subscript, _)) = element.split_once(']') {
                    check_subscript(name, subscript)?;
                }
            }
        }
    }
    Ok(())
}

/// `printf -v NAME` assigns NAME; so may a first argument that is an expansion (it may be `-v`).
fn check_printf(words: &[Arg]) -> Result<(), ParseError> {
    for (at, word) in words.iter().enumerate() {
        let text = word.text.as_str();
        if !word.literal && (word.splittable || text.starts_with(['$', '`'])) {
            return Err(ParseError::RiskyAssignment {
                name: "the variable an expansion may give `printf -v`".into(),
            });
        }
        if text == "--" || text == "-" || !text.starts_with('-') {
            return Ok(());
        }
        if let Some(v) = text.find('v') {
            let name = match text.get(v + 1..) {
                Some("") | None => words.get(at + 1).map_or("", |w| w.text.as_str()),
                Some(rest) => rest,
            };
            return Err(ParseError::RiskyAssignment {
                name: format!("`{name}` (with `printf -v`)"),
            });
        }
    }
    Ok(())
}

/// The variable a `NAME=value` word sets for `env` and `sudo` (any name without `=`).
fn env_assignment(text: &str) -> Option<&str> {
    let (name, _) = text.split_once('=')?;
    (!name.is_empty() && !name.starts_with('-')).then_some(name)
}

// ---------------------------------------------------------------------------------------------
// Brace expansion

/// The words a word brace-expands to (`{a,b}c` → `ac bc`, `{1..3}` → `1 2 3`), in order.
fn brace_expand(word: Vec<Ch>, budget: &mut usize) -> Result<Vec<Vec<Ch>>, ParseError> {
    let mut done = Vec::new();
    let mut todo = vec![word];
    while let Some(word) = todo.pop() {
        let Some(group) = brace_group(&word)? else {
            done.push(word);
            if done.len() > MAX_WORDS {
                return Err(ParseError::TooManyWords { max: MAX_WORDS });
            }
            continue;
        };
        let before = word.get(..group.open).unwrap_or(&[]);
        let after = word.get(group.close + 1..).unwrap_or(&[]);
        for alternative in group.alternatives.into_iter().rev() {
            let len = before.len() + alternative.len() + after.len();
            *budget += len;
            if *budget > MAX_EXPANDED {
                return Err(ParseError::TooLong {
                    len: *budget,
                    max: MAX_EXPANDED,
                });
            }
            todo.push(before.iter().chain(&alternative).chain(after).copied().collect());
        }
        if todo.len() + done.len() > MAX_WORDS {
            return Err(ParseError::TooManyWords { max: MAX_WORDS });
        }
    }
    Ok(done)
}

/// The leftmost brace group of a word that expands.
struct BraceGroup {
    open: usize,
    close: usize,
    alternatives: Vec<Vec<Ch>>,
}

fn brace_group(word: &[Ch]) -> Result<Option<BraceGroup>, ParseError> {
    // Pair unquoted braces, noting the commas directly inside each pair.
    let mut open: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut pairs: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    for (i, ch) in word.iter().enumerate() {
        match (ch.kind, ch.c) {
            (Kind::Plain, '{') => open.push((i, Vec::new())),
            (Kind::Plain, ',') => {
                if let Some((_, commas)) = open.last_mut() {
                    commas.push(i);
                }
            }
            (Kind::Plain, '}') => {
                if let Some((start, commas)) = open.pop() {
                    pairs.push((start, i, commas));
                }
            }
            _ => {}
        }
    }
    pairs.sort_by_key(|&(start, _, _)| start);
    for (start, close, commas) in pairs {
        let alternatives = if commas.is_empty() {
            match sequence(word.get(start + 1..close).unwrap_or(&[]))? {
                Some(alternatives) => alternatives,
                None => continue,
            }
        } else {
            let mut from = start + 1;
            commas
                .iter()
                .chain(iter::once(&close))
                .map(|&to| {
                    let part = word.get(from..to).unwrap_or(&[]).to_vec();
                    from = to + 1;
                    part
                })
                .collect()
        };
        return Ok(Some(BraceGroup {
            open: start,
            close,
            alternatives,
        }));
    }
    Ok(None)
}

/// `1..5`, `01..10..2`, `a..e`: the words a sequence expression stands for. All arithmetic is
/// checked: any bounds and step (`1..2..-170141183460469231731687303715884105728`) are judged or
/// refused, never overflow.
fn sequence(content: &[Ch]) -> Result<Option<Vec<Vec<Ch>>>, ParseError> {
    if content.len() > 64 || content.iter().any(|ch| ch.kind != Kind::Plain) {
        return Ok(None);
    }
    let text: String = content.iter().map(|ch| ch.c).collect();
    let parts: Vec<&str> = text.split("..").collect();
    let (from, to, step) = match parts.as_slice() {
        [from, to] => (*from, *to, 1u128),
        [from, to, step] => match step.parse::<i128>() {
            Ok(step) => (*from, *to, step.unsigned_abs().max(1)),
            Err(_) => return Ok(None),
        },
        _ => return Ok(None),
    };
    let quoted = |s: String| {
        s.chars()
            .map(|c| Ch {
                c,
                kind: Kind::Quoted,
            })
            .collect::<Vec<_>>()
    };
    let count = |a: i128, b: i128| -> Result<u128, ParseError> {
        match (a.abs_diff(b) / step).checked_add(1) {
            Some(count) if count <= MAX_WORDS as u128 => Ok(count),
            _ => Err(ParseError::TooManyWords { max: MAX_WORDS }),
        }
    };
    // The k-th value from `a` towards `b`.
    let nth = |a: i128, b: i128, k: u128| -> Option<i128> {
        let offset = i128::try_from(k.checked_mul(step)?).ok()?;
        if b >= a {
            a.checked_add(offset)
        } else {
            a.checked_sub(offset)
        }
    };
    if let (Ok(a), Ok(b)) = (from.parse::<i64>(), to.parse::<i64>()) {
        let (a, b) = (i128::from(a), i128::from(b));
        let padded =
            |s: &str| s.trim_start_matches('-').len() > 1 && s.trim_start_matches('-').starts_with('0');
        let width = if padded(from) || padded(to) {
            from.len().max(to.len())
        } else {
            0
        };
        let words = (0..count(a, b)?)
            .filter_map(|k| nth(a, b, k))
            .map(|v| {
                let digits = format!(
                    "{:0width$}",
                    v.unsigned_abs(),
                    width = if v < 0 { width.saturating_sub(1) } else { width }
                );
                quoted(if v < 0 { format!("-{digits}") } else { digits })
            })
            .collect();
        return Ok(Some(words));
    }
    let single = |s: &str| {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
            _ => None,
        }
    };
    if let (Some(a), Some(b)) = (single(from), single(to)) {
        let (a, b) = (i128::from(u32::from(a)), i128::from(u32::from(b)));
        let words = (0..count(a, b)?)
            .filter_map(|k| nth(a, b, k))
            .filter_map(|v| u32::try_from(v).ok().and_then(char::from_u32))
            .map(|c| quoted(c.to_string()))
            .collect();
        return Ok(Some(words));
    }
    Ok(None)
}

/// A simple command's words after brace expansion, which may add at most [`MAX_WORDS`] words to
/// what the line spelled out.
fn expand_words(words: Vec<Word>, budget: &mut usize) -> Result<Vec<Arg>, ParseError> {
    let most = words.len().max(MAX_WORDS);
    let mut args = Vec::new();
    for word in words {
        for chars in brace_expand(word.chars, budget)? {
            args.push(Arg::from_chars(&chars));
            if args.len() > most {
                return Err(ParseError::TooManyWords { max: MAX_WORDS });
            }
        }
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// Unwrapping

/// How a wrapper finds the program it runs.
#[derive(Debug, Clone, Copy)]
enum Wrapper {
    /// `sh -c SCRIPT`.
    Shell,
    /// `su ... -c SCRIPT`.
    Su,
    /// `eval WORDS...`: the words joined with spaces are a script.
    Eval,
    /// `find ... -exec CMD... ;`.
    Find,
    /// Options, then the command.
    Options(&'static Options),
}

/// The options of a wrapper that runs the command after them.
#[derive(Debug)]
struct Options {
    /// Short options that take a value, attached (`-n5`) or as the next word.
    short_values: &'static str,
    /// Short options whose value can only be attached (`xargs -i{}`).
    short_attached: &'static str,
    /// Long options that take a value, as `--name=value` or as the next word.
    long_values: &'static [&'static str],
    /// Short options after which no command runs (`command -v`, `sudo -l`).
    lookup_short: &'static str,
    /// Long options after which no command runs.
    lookup_long: &'static [&'static str],
    /// Operands before the command (`timeout DURATION`, `chroot NEWROOT`).
    operands: usize,
    /// Whether `NAME=value` words before the command set its environment (`env`, `sudo`).
    assignments: bool,
    /// Whether `-NUMBER` is an option (`nice -10`).
    numeric: bool,
    /// Whether a lone `-` is an option (`env -`).
    lone_dash: bool,
    /// The command run when none is given (`xargs` runs `echo`).
    default: Option<&'static str>,
    /// Whether `-S`/`--split-string` splits its value into the command (`env`).
    split_string: bool,
}

const NO_OPTIONS: Options = Options {
    short_values: "",
    short_attached: "",
    long_values: &[],
    lookup_short: "",
    lookup_long: &["help", "version"],
    operands: 0,
    assignments: false,
    numeric: false,
    lone_dash: false,
    default: None,
    split_string: false,
};

const ENV: Options = Options {
    short_values: "uCS",
    long_values: &["unset", "chdir", "split-string"],
    lookup_long: &["help", "version", "list-signal-handling"],
    assignments: true,
    lone_dash: true,
    split_string: true,
    ..NO_OPTIONS
};
const NICE: Options = Options {
    short_values: "n",
    long_values: &["adjustment"],
    numeric: true,
    ..NO_OPTIONS
};
const STDBUF: Options = Options {
    short_values: "ioe",
    long_values: &["input", "output", "error"],
    ..NO_OPTIONS
};
const TIMEOUT: Options = Options {
    short_values: "sk",
    long_values: &["signal", "kill-after"],
    operands: 1,
    ..NO_OPTIONS
};
const SUDO: Options = Options {
    short_values: "ugCDhprtTU",
    long_values: &[
        "user",
        "group",
        "close-from",
        "chdir",
        "host",
        "prompt",
        "role",
        "type",
        "command-timeout",
        "other-user",
    ],
    lookup_short: "elVKv",
    lookup_long: &["edit", "list", "version", "validate", "remove-timestamp", "help"],
    assignments: true,
    ..NO_OPTIONS
};
const DOAS: Options = Options {
    short_values: "uC",
    lookup_short: "CL",
    ..NO_OPTIONS
};
const COMMAND: Options = Options {
    lookup_short: "vV",
    ..NO_OPTIONS
};
const EXEC: Options = Options {
    short_values: "a",
    ..NO_OPTIONS
};
const TIME: Options = Options {
    short_values: "fo",
    long_values: &["format", "output"],
    ..NO_OPTIONS
};
const BUSYBOX: Options = Options {
    lookup_long: &["list", "list-full", "help", "install"],
    ..NO_OPTIONS
};
const CHROOT: Options = Options {
    long_values: &["userspec", "groups"],
    operands: 1,
    ..NO_OPTIONS
};
const IONICE: Options = Options {
    short_values: "cnpPu",
    lookup_short: "pPu",
    ..NO_OPTIONS
};
const PKEXEC: Options = Options {
    long_values: &["user"],
    ..NO_OPTIONS
};
const XARGS: Options = Options {
    short_values: "adEILnPs",
    short_attached: "iel",
    long_values: &[
        "arg-file",
        "delimiter",
        "max-args",
        "max-procs",
        "max-chars",
        "process-slot-var",
    ],
    default: Some("echo"),
    ..NO_OPTIONS
};

fn wrapper(program: &str) -> Option<Wrapper> {
    let options = match program {
        "sh" | "bash" | "dash" | "zsh" | "ash" | "ksh" | "mksh" | "rbash" => return Some(Wrapper::Shell),
        "su" => return Some(Wrapper::Su),
        "eval" => return Some(Wrapper::Eval),
        "find" => return Some(Wrapper::Find),
        "env" => &ENV,
        "nohup" | "setsid" | "builtin" => &NO_OPTIONS,
        "nice" => &NICE,
        "stdbuf" => &STDBUF,
        "timeout" => &TIMEOUT,
        "sudo" => &SUDO,
        "doas" => &DOAS,
        "command" => &COMMAND,
        "exec" => &EXEC,
        "time" => &TIME,
        "busybox" => &BUSYBOX,
        "chroot" => &CHROOT,
        "ionice" => &IONICE,
        "pkexec" => &PKEXEC,
        "xargs" => &XARGS,
        _ => return None,
    };
    Some(Wrapper::Options(options))
}

/// What a wrapper runs.
enum Inner {
    /// This command (the wrapper's own name not included).
    Runs(Vec<Arg>),
    /// This script, parsed as a command line.
    Script(String),
    /// Nothing but itself (`sudo -l`, `sh script.sh`, bare `bash`).
    Itself,
    /// Something that cannot be known: a word that may split into several stands where options
    /// or the command are read.
    Opaque,
}

/// Wrappers unwrapped so far, outermost first: base names, and the words as written.
#[derive(Debug, Clone, Default)]
struct Wrappers {
    names: Vec<String>,
    paths: Vec<String>,
}

impl Wrappers {
    fn push(&mut self, name: &str, path: &str) {
        self.names.push(name.to_string());
        self.paths.push(path.to_string());
    }

    /// `command`, run inside these wrappers.
    fn wrap(&self, mut command: SimpleCommand) -> SimpleCommand {
        let mut names = self.names.clone();
        names.append(&mut command.wrappers);
        command.wrappers = names;
        let mut paths = self.paths.clone();
        paths.append(&mut command.wrapper_paths);
        command.wrapper_paths = paths;
        command
    }
}

/// The simple commands `args` runs, with wrappers unwrapped.
fn resolve(
    mut args: Vec<Arg>,
    mut wrappers: Wrappers,
    limits: &mut Limits,
) -> Result<Vec<SimpleCommand>, ParseError> {
    let depth = limits.depth;
    let result = loop {
        let Some(first) = args.first() else {
            break Ok(Vec::new());
        };
        if !first.literal {
            break Ok(vec![simple("", &args, wrappers, false)]);
        }
        let path = first.text.clone();
        let program = base_name(&path);
        let inner = match wrapper(&program) {
            None => {
                check_builtin(&program, &args)?;
                break Ok(vec![simple(&program, &args, wrappers, true)]);
            }
            Some(Wrapper::Find) => break find(&program, &args, wrappers, limits),
            Some(Wrapper::Shell) => shell(&args),
            Some(Wrapper::Su) => su(&args),
            Some(Wrapper::Eval) => match args.get(1..) {
                Some(words) if !words.is_empty() => Inner::Script(
                    words
                        .iter()
                        .map(|a| a.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => Inner::Itself,
            },
            Some(Wrapper::Options(options)) => scan(&args, options)?,
        };
        match inner {
            Inner::Itself => break Ok(vec![simple(&program, &args, wrappers, true)]),
            Inner::Opaque => {
                wrappers.push(&program, &path);
                break Ok(vec![simple("", &args, wrappers, false)]);
            }
            Inner::Runs(next) => {
                limits.enter()?;
                wrappers.push(&program, &path);
                args = next;
            }
            Inner::Script(script) => {
                limits.enter()?;
                let commands = parse_script(&script, limits).map_err(|error| ParseError::Script {
                    program: program.clone(),
                    error: Box::new(error),
                })?;
                wrappers.push(&program, &path);
                break Ok(commands
                    .into_iter()
                    .map(|command| wrappers.wrap(command))
                    .collect());
            }
        }
    };
    limits.depth = depth;
    result
}

fn simple(program: &str, args: &[Arg], wrappers: Wrappers, literal: bool) -> SimpleCommand {
    let argv: Vec<String> = args.iter().skip(1).map(|a| a.text.clone()).collect();
    let (program, path) = match args.first() {
        Some(first) if literal => (program.to_string(), first.text.clone()),
        _ => (String::new(), String::new()),
    };
    SimpleCommand {
        flags: flags_of(&program, &argv),
        program,
        path,
        argv,
        wrappers: wrappers.names,
        wrapper_paths: wrappers.paths,
        redirects: Vec::new(),
        literal,
    }
}

/// `/usr/bin/rm` → `rm`; `dir/` → `dir`; `/` → "".
fn base_name(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

/// The command after a wrapper's options.
fn scan(args: &[Arg], options: &Options) -> Result<Inner, ParseError> {
    let mut i = 1;
    let mut split: Option<String> = None;
    let mut lookup = false;
    let mut options_done = false;
    while let Some(arg) = args.get(i) {
        if arg.splittable {
            return Ok(Inner::Opaque);
        }
        let text = arg.text.as_str();
        if !options_done {
            if text == "--" {
                options_done = true;
                i += 1;
                continue;
            }
            if text == "-" && options.lone_dash {
                i += 1;
                continue;
            }
            if let Some(long) = text.strip_prefix("--") {
                let (name, value) = match long.split_once('=') {
                    Some((name, value)) => (name, Some(value.to_string())),
                    None => (long, None),
                };
                lookup |= options.lookup_long.contains(&name);
                let value = match value {
                    Some(value) => Some(value),
                    None if options.long_values.contains(&name) => {
                        i += 1;
                        match args.get(i) {
                            None => return Ok(Inner::Itself),
                            Some(next) if next.splittable => return Ok(Inner::Opaque),
                            Some(next) => Some(next.text.clone()),
                        }
                    }
                    None => None,
                };
                if name == "split-string" && options.split_string {
                    split = value;
                }
                i += 1;
                continue;
            }
            if let Some(cluster) = text.strip_prefix('-').filter(|c| !c.is_empty()) {
                if options.numeric && cluster.chars().all(|c| c.is_ascii_digit()) {
                    i += 1;
                    continue;
                }
                for (at, c) in cluster.char_indices() {
                    lookup |= options.lookup_short.contains(c);
                    let takes_value = options.short_values.contains(c);
                    if !takes_value && !options.short_attached.contains(c) {
                        continue;
                    }
                    let rest = cluster.get(at + c.len_utf8()..).unwrap_or("");
                    let value = if !rest.is_empty() {
                        Some(rest.to_string())
                    } else if takes_value {
                        i += 1;
                        match args.get(i) {
                            None => return Ok(Inner::Itself),
                            Some(next) if next.splittable => return Ok(Inner::Opaque),
                            Some(next) => Some(next.text.clone()),
                        }
                    } else {
                        None
                    };
                    if c == 'S' && options.split_string {
                        split = value;
                    }
                    break;
                }
                i += 1;
                continue;
            }
        }
        if options.assignments {
            if let Some(name) = env_assignment(text) {
                check_target(name)?;
                options_done = true;
                i += 1;
                continue;
            }
        }
        break;
    }
    for _ in 0..options.operands {
        match args.get(i) {
            None => return Ok(Inner::Itself),
            Some(operand) if operand.splittable => return Ok(Inner::Opaque),
            Some(_) => i += 1,
        }
    }
    if lookup {
        return Ok(Inner::Itself);
    }
    let mut command: Vec<Arg> = args.get(i..).map(<[Arg]>::to_vec).unwrap_or_default();
    if let Some(split) = split {
        let mut words = split_string(&split);
        let assignments = words
            .iter()
            .take_while(|w| env_assignment(&w.text).is_some())
            .count();
        for word in &words[..assignments] {
            if let Some(name) = env_assignment(&word.text) {
                check_target(name)?;
            }
        }
        words.drain(..assignments);
        words.append(&mut command);
        command = words;
    }
    Ok(match (command.is_empty(), options.default) {
        (false, _) => Inner::Runs(command),
        (true, Some(default)) => Inner::Runs(vec![Arg::literal(default)]),
        (true, None) => Inner::Itself,
    })
}

/// `env -S 'a "b c"'`: words split on blanks, with quotes and backslashes.
fn split_string(text: &str) -> Vec<Arg> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, ' ' | '\t' | '\n') => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                current.get_or_insert_with(String::new);
            }
            (Some(q), _) if q == c => quote = None,
            (None | Some('"'), '\\') => {
                if let Some(escaped) = chars.next() {
                    current.get_or_insert_with(String::new).push(escaped);
                }
            }
            _ => current.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(current);
    words
        .into_iter()
        .map(|w| Arg {
            literal: !w.contains('$'),
            splittable: false,
            text: w,
        })
        .collect()
}

/// `sh [options] -c SCRIPT [name args...]`.
fn shell(args: &[Arg]) -> Inner {
    let mut i = 1;
    let mut command_mode = false;
    while let Some(arg) = args.get(i) {
        if arg.splittable {
            return Inner::Opaque;
        }
        let text = arg.text.as_str();
        if text == "--" || text == "-" {
            i += 1;
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            i += if matches!(long, "rcfile" | "init-file") {
                2
            } else {
                1
            };
            continue;
        }
        let Some(cluster) = text
            .strip_prefix('-')
            .or_else(|| text.strip_prefix('+'))
            .filter(|c| !c.is_empty())
        else {
            break;
        };
        command_mode |= text.starts_with('-') && cluster.contains('c');
        i += 1 + cluster.chars().filter(|&c| c == 'o' || c == 'O').count();
    }
    match args.get(i) {
        Some(script) if command_mode => Inner::Script(script.text.clone()),
        _ => Inner::Itself,
    }
}

/// `su [options] [-] [user] -c SCRIPT`: options may come anywhere.
fn su(args: &[Arg]) -> Inner {
    let mut i = 1;
    let mut script = None;
    while let Some(arg) = args.get(i) {
        if arg.splittable {
            return Inner::Opaque;
        }
        let text = arg.text.as_str();
        i += 1;
        if let Some(long) = text.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            let takes_value = matches!(
                name,
                "command" | "session-command" | "shell" | "group" | "supp-group" | "whitelist-environment"
            );
            let value = match value {
                Some(value) => Some(value),
                None if takes_value => {
                    i += 1;
                    args.get(i - 1).map(|a| a.text.clone())
                }
                None => None,
            };
            if matches!(name, "command" | "session-command") {
                script = value;
            }
            continue;
        }
        let Some(cluster) = text.strip_prefix('-').filter(|c| !c.is_empty()) else {
            continue;
        };
        for (at, c) in cluster.char_indices() {
            if !"csgGw".contains(c) {
                continue;
            }
            let rest = cluster.get(at + c.len_utf8()..).unwrap_or("");
            let value = if rest.is_empty() {
                i += 1;
                args.get(i - 1).map(|a| a.text.clone())
            } else {
                Some(rest.to_string())
            };
            if c == 'c' {
                script = value;
            }
            break;
        }
    }
    script.map_or(Inner::Itself, Inner::Script)
}

/// `find` itself, and every command its `-exec`, `-execdir`, `-ok` and `-okdir` run.
fn find(
    program: &str,
    args: &[Arg],
    wrappers: Wrappers,
    limits: &mut Limits,
) -> Result<Vec<SimpleCommand>, ParseError> {
    let mut flags = BTreeSet::new();
    let mut runs = Vec::new();
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        i += 1;
        let Some(name) = arg.text.strip_prefix('-').filter(|n| !n.is_empty()) else {
            continue;
        };
        flags.insert(name.to_string());
        if matches!(name, "exec" | "execdir" | "ok" | "okdir") {
            let start = i;
            while let Some(word) = args.get(i) {
                let plus_ends =
                    word.text == "+" && i > start && args.get(i - 1).is_some_and(|a| a.text == "{}");
                if word.text == ";" || plus_ends {
                    break;
                }
                i += 1;
            }
            let mut command = args.get(start..i).map(<[Arg]>::to_vec).unwrap_or_default();
            if let Some(first) = command.first_mut() {
                // `-exec {} ;` runs whatever file was found.
                if first.text.contains("{}") {
                    first.literal = false;
                }
            }
            runs.push(command);
            i += 1;
        } else {
            i += find_values(name);
        }
    }
    let argv: Vec<String> = args.iter().skip(1).map(|a| a.text.clone()).collect();
    let path = args.first().map_or(program, |a| a.text.as_str());
    let mut inner_wrappers = wrappers.clone();
    inner_wrappers.push(program, path);
    let mut out = vec![SimpleCommand {
        program: program.to_string(),
        path: path.to_string(),
        argv,
        flags,
        wrappers: wrappers.names,
        wrapper_paths: wrappers.paths,
        redirects: Vec::new(),
        literal: true,
    }];
    for command in runs {
        limits.enter()?;
        out.extend(resolve(command, inner_wrappers.clone(), limits)?);
        limits.leave();
    }
    Ok(out)
}

/// How many value words a `find` primary or option takes.
fn find_values(name: &str) -> usize {
    match name {
        "fprintf" => 2,
        "amin" | "anewer" | "atime" | "cmin" | "cnewer" | "ctime" | "fstype" | "gid" | "group" | "ilname"
        | "iname" | "inum" | "ipath" | "iregex" | "iwholename" | "links" | "lname" | "mmin" | "mtime"
        | "name" | "newer" | "path" | "perm" | "regex" | "samefile" | "size" | "type" | "uid" | "used"
        | "user" | "wholename" | "xtype" | "context" | "fprint" | "fprint0" | "fls" | "printf"
        | "maxdepth" | "mindepth" | "regextype" | "files0-from" | "D" => 1,
        newer if newer.len() == 7 && newer.starts_with("newer") => 1,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Flags

/// How a program's options are spelled, so that the same meaning gets the same flag name.
struct FlagSpec {
    /// Option name → flag name.
    aliases: &'static [(&'static str, &'static str)],
    /// Every long option, for GNU's unambiguous abbreviations (`--rec` is `--recursive`).
    longs: &'static [&'static str],
    /// Short options that take a value.
    short_values: &'static str,
    /// Long options that take a value.
    long_values: &'static [&'static str],
    /// For `chmod`: the short options; a cluster with other letters (`-rwx`) is a mode.
    mode_flags: Option<&'static str>,
}

const RM: FlagSpec = FlagSpec {
    aliases: &[
        ("r", "recursive"),
        ("R", "recursive"),
        ("f", "force"),
        ("i", "interactive"),
        ("I", "interactive-once"),
        ("d", "dir"),
        ("v", "verbose"),
    ],
    longs: &[
        "dir",
        "force",
        "interactive",
        "no-preserve-root",
        "one-file-system",
        "preserve-root",
        "recursive",
        "verbose",
        "help",
        "version",
    ],
    short_values: "",
    long_values: &[],
    mode_flags: None,
};

const CP: FlagSpec = FlagSpec {
    aliases: &[
        ("r", "recursive"),
        ("R", "recursive"),
        ("a", "archive"),
        ("f", "force"),
    ],
    longs: &[
        "archive",
        "attributes-only",
        "backup",
        "context",
        "copy-contents",
        "debug",
        "dereference",
        "force",
        "interactive",
        "keep-directory-symlink",
        "link",
        "no-clobber",
        "no-dereference",
        "no-preserve",
        "no-target-directory",
        "one-file-system",
        "parents",
        "preserve",
        "recursive",
        "reflink",
        "remove-destination",
        "sparse",
        "strip-trailing-slashes",
        "suffix",
        "symbolic-link",
        "target-directory",
        "update",
        "verbose",
        "help",
        "version",
    ],
    short_values: "tS",
    long_values: &["suffix", "target-directory"],
    mode_flags: None,
};

const MV: FlagSpec = FlagSpec {
    aliases: &[("f", "force"), ("i", "interactive"), ("n", "no-clobber")],
    longs: &[
        "backup",
        "context",
        "debug",
        "exchange",
        "force",
        "interactive",
        "no-clobber",
        "no-copy",
        "no-target-directory",
        "strip-trailing-slashes",
        "suffix",
        "target-directory",
        "update",
        "verbose",
        "help",
        "version",
    ],
    short_values: "tS",
    long_values: &["suffix", "target-directory"],
    mode_flags: None,
};

const CHMOD: FlagSpec = FlagSpec {
    aliases: &[("R", "recursive")],
    longs: &[
        "changes",
        "no-preserve-root",
        "preserve-root",
        "quiet",
        "silent",
        "reference",
        "recursive",
        "verbose",
        "help",
        "version",
    ],
    short_values: "",
    long_values: &[],
    mode_flags: Some("cfvR"),
};

const CHOWN: FlagSpec = FlagSpec {
    aliases: &[("R", "recursive")],
    longs: &[
        "changes",
        "dereference",
        "no-dereference",
        "from",
        "no-preserve-root",
        "preserve-root",
        "quiet",
        "silent",
        "recursive",
        "reference",
        "verbose",
        "help",
        "version",
    ],
    short_values: "",
    long_values: &[],
    mode_flags: None,
};

const SHRED: FlagSpec = FlagSpec {
    aliases: &[
        ("u", "remove"),
        ("z", "zero"),
        ("n", "iterations"),
        ("f", "force"),
        ("v", "verbose"),
        ("x", "exact"),
        ("s", "size"),
    ],
    longs: &[
        "exact",
        "force",
        "iterations",
        "random-source",
        "remove",
        "size",
        "verbose",
        "zero",
        "help",
        "version",
    ],
    short_values: "ns",
    long_values: &["iterations", "size", "random-source"],
    mode_flags: None,
};

const LN: FlagSpec = FlagSpec {
    aliases: &[("s", "symbolic"), ("f", "force")],
    longs: &[
        "backup",
        "directory",
        "force",
        "interactive",
        "logical",
        "no-dereference",
        "no-target-directory",
        "physical",
        "relative",
        "suffix",
        "symbolic",
        "target-directory",
        "verbose",
        "help",
        "version",
    ],
    short_values: "tS",
    long_values: &["suffix", "target-directory"],
    mode_flags: None,
};

fn flag_spec(program: &str) -> Option<&'static FlagSpec> {
    match program {
        "rm" => Some(&RM),
        "cp" => Some(&CP),
        "mv" => Some(&MV),
        "chmod" => Some(&CHMOD),
        "chown" | "chgrp" => Some(&CHOWN),
        "shred" => Some(&SHRED),
        "ln" => Some(&LN),
        _ => None,
    }
}

impl FlagSpec {
    /// The long option an abbreviation stands for, when it is unambiguous.
    fn long<'n>(&self, name: &'n str) -> &'n str {
        if self.longs.contains(&name) {
            return name;
        }
        let mut matches = self.longs.iter().filter(|long| long.starts_with(name));
        match (matches.next(), matches.next()) {
            (Some(&long), None) => long,
            _ => name,
        }
    }

    fn canonical(&self, name: &str) -> String {
        self.aliases
            .iter()
            .find(|(from, _)| *from == name)
            .map_or(name, |(_, to)| to)
            .to_string()
    }
}

/// The normalised flags of `program` called with `argv`.
fn flags_of(program: &str, argv: &[String]) -> BTreeSet<String> {
    let spec = flag_spec(program);
    let canonical = |name: &str| spec.map_or_else(|| name.to_string(), |s| s.canonical(name));
    let mut flags = BTreeSet::new();
    let mut words = argv.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, has_value) = match long.split_once('=') {
                Some((name, _)) => (name, true),
                None => (long, false),
            };
            let name = spec.map_or(name, |s| s.long(name));
            if !has_value && spec.is_some_and(|s| s.long_values.contains(&name)) {
                words.next();
            }
            if !name.is_empty() {
                flags.insert(canonical(name));
            }
            continue;
        }
        let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) else {
            continue;
        };
        if let Some(mode_flags) = spec.and_then(|s| s.mode_flags) {
            if !cluster.chars().all(|c| mode_flags.contains(c)) {
                continue;
            }
        }
        for (at, c) in cluster.char_indices() {
            flags.insert(canonical(c.encode_utf8(&mut [0; 4])));
            if spec.is_some_and(|s| s.short_values.contains(c)) {
                if cluster.len() == at + c.len_utf8() {
                    words.next();
                }
                break;
            }
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> SimpleCommand {
        let commands = parse_line(line).unwrap();
        assert_eq!(commands.len(), 1, "{line}: {commands:#?}");
        commands.into_iter().next().unwrap()
    }

    fn programs(line: &str) -> Vec<String> {
        parse_line(line).unwrap().into_iter().map(|c| c.program).collect()
    }

    fn flags(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_spelling_of_rm_recursive_force_gives_the_same_flags() {
        for line in [
            "rm -rf x",
            "rm -r -f x",
            "rm -fR x",
            "rm --recursive --force x",
            "rm -Rf x",
            "rm -f -R x",
            "rm --force -r x",
            "rm x -rf",
            "rm --rec --forc x",
        ] {
            assert_eq!(one(line).flags, flags(&["force", "recursive"]), "{line}");
        }
    }

    #[test]
    fn rm_of_root_keeps_the_slash_in_argv() {
        let rm = one("rm -rf /");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.argv, argv(&["-rf", "/"]));
        assert!(rm.literal);
    }

    #[test]
    fn quoting_is_removed_before_judging() {
        let rm = one(r#"r"m" '-rf' x"#);
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.argv, argv(&["-rf", "x"]));
        assert_eq!(rm.flags, flags(&["force", "recursive"]));
        assert_eq!(one("'r'm x").program, "rm");
        assert_eq!(one(r"\rm x").program, "rm");
    }

    #[test]
    fn a_path_to_the_program_gives_its_base_name() {
        assert_eq!(one("/usr/bin/rm -rf x").program, "rm");
        assert_eq!(one("./bin/tool").program, "tool");
    }

    #[test]
    fn double_quotes_apply_their_escapes() {
        let echo = one(r#"echo "a \"b\" \\ \$HOME \x""#);
        assert_eq!(echo.argv, argv(&[r#"a "b" \ $HOME \x"#]));
    }

    #[test]
    fn ansi_c_quoting_applies_its_escapes() {
        let printf = one(r"printf $'a\tb\n\x41\'\\'");
        assert_eq!(printf.argv, argv(&["a\tb\nA'\\"]));
        assert_eq!(one(r"$'\x72m' -rf x").program, "rm");
    }

    #[test]
    fn sh_c_scripts_are_unwrapped() {
        for line in [
            "sh -c 'rm -rf x'",
            "bash -c 'rm -rf x'",
            "bash -lc 'rm -rf x'",
            "dash -e -c 'rm -rf x'",
        ] {
            let rm = one(line);
            assert_eq!(rm.program, "rm", "{line}");
            assert_eq!(rm.flags, flags(&["force", "recursive"]), "{line}");
            assert_eq!(rm.wrappers.len(), 1, "{line}");
        }
        assert_eq!(one("bash -lc 'rm -rf x'").wrappers, ["bash"]);
    }

    #[test]
    fn a_shell_without_c_is_itself() {
        assert_eq!(one("sh script.sh").program, "sh");
        assert_eq!(one("bash").program, "bash");
        assert_eq!(one("bash -c").program, "bash");
    }

    #[test]
    fn env_with_options_and_assignments_is_unwrapped() {
        let rm = one("env -i A=1 rm -rf x");
        assert_eq!(
            (rm.program.as_str(), rm.wrappers.as_slice()),
            ("rm", ["env".to_string()].as_slice())
        );
        assert_eq!(rm.argv, argv(&["-rf", "x"]));
        assert_eq!(one("env -u HOME -- rm x").program, "rm");
        assert_eq!(one("env").program, "env");
    }

    #[test]
    fn env_split_string_is_split_into_the_command() {
        let rm = one("env -S 'rm -rf \"a b\"'");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.argv, argv(&["-rf", "a b"]));
    }

    #[test]
    fn nohup_is_unwrapped() {
        let rm = one("nohup rm -rf x &");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.wrappers, ["nohup"]);
    }

    #[test]
    fn xargs_is_unwrapped_past_its_option_values() {
        let rm = one("xargs -0 -n 1 rm -rf");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.wrappers, ["xargs"]);
        assert_eq!(rm.flags, flags(&["force", "recursive"]));
        assert_eq!(one("xargs -I{} rm {}").argv, argv(&["{}"]));
        assert_eq!(one("xargs --max-args 2 rm").program, "rm");
    }

    #[test]
    fn xargs_alone_runs_echo() {
        let commands = parse_line("find . | xargs").unwrap();
        assert_eq!(commands[1].program, "echo");
        assert_eq!(commands[1].wrappers, ["xargs"]);
    }

    #[test]
    fn timeout_is_unwrapped_past_its_signal_and_duration() {
        let rm = one("timeout -s KILL 5 rm -rf x");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.wrappers, ["timeout"]);
        assert_eq!(one("timeout --signal=KILL -k 1 5s rm x").program, "rm");
        assert_eq!(one("timeout 5").program, "timeout");
    }

    #[test]
    fn sudo_is_unwrapped_past_its_user() {
        let rm = one("sudo -u root rm -rf x");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.wrappers, ["sudo"]);
        assert_eq!(rm.argv, argv(&["-rf", "x"]));
    }

    #[test]
    fn sudo_alone_or_listing_is_sudo_itself() {
        assert_eq!(one("sudo").program, "sudo");
        assert_eq!(one("sudo -l rm").program, "sudo");
        assert_eq!(one("sudo -i").program, "sudo");
    }

    #[test]
    fn nested_wrappers_are_all_unwrapped_outermost_first() {
        let rm = one("sudo env FOO=1 timeout 5 sh -c 'nohup rm -rf x'");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.wrappers, ["sudo", "env", "timeout", "sh", "nohup"]);
        assert_eq!(rm.flags, flags(&["force", "recursive"]));
    }

    #[test]
    fn other_wrappers_are_unwrapped() {
        for (line, wrapper) in [
            ("nice -n 5 rm x", "nice"),
            ("nice -5 rm x", "nice"),
            ("setsid -f rm x", "setsid"),
            ("stdbuf -oL -e 0 rm x", "stdbuf"),
            ("doas -u root rm x", "doas"),
            ("command rm x", "command"),
            ("exec rm x", "exec"),
            ("busybox rm x", "busybox"),
            ("builtin rm x", "builtin"),
            ("chroot /mnt rm x", "chroot"),
            ("ionice -c 3 rm x", "ionice"),
            ("pkexec --user root rm x", "pkexec"),
        ] {
            let rm = one(line);
            assert_eq!(
                (rm.program.as_str(), rm.wrappers.as_slice()),
                ("rm", [wrapper.to_string()].as_slice())
            );
        }
    }

    #[test]
    fn command_v_is_a_lookup_not_a_run() {
        assert_eq!(one("command -v rm").program, "command");
    }

    #[test]
    fn su_c_script_is_unwrapped() {
        let rm = one("su - root -c 'rm -rf /'");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.wrappers, ["su"]);
        assert_eq!(one("su").program, "su");
    }

    #[test]
    fn eval_joins_its_words_into_a_script() {
        assert_eq!(programs("eval 'ls;' rm -rf x"), ["ls", "rm"]);
        assert_eq!(parse_line("eval rm x").unwrap()[0].wrappers, ["eval"]);
    }

    #[test]
    fn busybox_sh_c_is_unwrapped_twice() {
        let rm = one("busybox sh -c 'rm x'");
        assert_eq!(rm.wrappers, ["busybox", "sh"]);
    }

    #[test]
    fn find_exec_returns_find_and_the_command_it_runs() {
        let commands = parse_line(r#"find . -name x -exec sh -c 'rm -rf "$1"' _ {} \;"#).unwrap();
        assert_eq!(commands.len(), 2, "{commands:#?}");
        assert_eq!(commands[0].program, "find");
        assert_eq!(commands[0].flags, flags(&["exec", "name"]));
        assert_eq!(commands[1].program, "rm");
        assert_eq!(commands[1].wrappers, ["find", "sh"]);
        assert_eq!(commands[1].argv, argv(&["-rf", "$1"]));
    }

    #[test]
    fn find_exec_with_plus_keeps_the_placeholder() {
        let commands = parse_line("find / -type f -execdir rm {} + -print").unwrap();
        assert_eq!(commands[1].argv, argv(&["{}"]));
        assert_eq!(commands[0].flags, flags(&["execdir", "print", "type"]));
    }

    #[test]
    fn find_exec_of_the_found_file_is_not_literal() {
        let commands = parse_line(r"find . -exec {} \;").unwrap();
        assert!(!commands[1].literal);
        assert_eq!(commands[1].program, "");
    }

    #[test]
    fn find_delete_and_fprint_are_flags() {
        assert!(one("find / -delete").flags.contains("delete"));
        let find = one("find -fprint /etc/x");
        assert!(find.flags.contains("fprint"));
        assert!(find.argv.contains(&"/etc/x".to_string()));
    }

    #[test]
    fn find_values_are_not_flags() {
        assert_eq!(one("find . -name -delete").flags, flags(&["name"]));
    }

    #[test]
    fn lists_and_pipes_yield_every_command() {
        assert_eq!(
            programs("a | b |& c && d || e; f & g\nh"),
            ["a", "b", "c", "d", "e", "f", "g", "h"]
        );
    }

    #[test]
    fn subshells_and_braces_yield_the_commands_inside() {
        assert_eq!(programs("(a; b) && { c; d; }"), ["a", "b", "c", "d"]);
    }

    #[test]
    fn substitutions_yield_the_commands_inside_and_are_not_literal() {
        assert_eq!(
            programs("echo $(rm -rf x) `ls` \"$(pwd)\""),
            ["rm", "ls", "pwd", "echo"]
        );
        let commands = parse_line("$(which rm) -rf x").unwrap();
        assert_eq!(commands[0].program, "which");
        assert!(!commands[1].literal);
        assert_eq!(commands[1].program, "");
    }

    #[test]
    fn process_substitution_yields_the_commands_inside() {
        assert_eq!(programs("diff <(ls a) >(tee b)"), ["ls", "tee", "diff"]);
    }

    #[test]
    fn nested_substitutions_match_quote_aware() {
        assert_eq!(programs(r#"echo "$(echo ")" $(rm x))""#), ["rm", "echo", "echo"]);
    }

    #[test]
    fn substitutions_inside_parameter_expansions_run() {
        assert_eq!(programs("echo ${X:-$(rm a)} ${Y#$(rm b)}"), ["rm", "rm", "echo"]);
    }

    #[test]
    fn redirections_are_not_arguments_and_outputs_are_redirects() {
        let cat = one("cat <in >out 2>err 2>&1 >>log &>all >|clob 3<>rw x >&2");
        assert_eq!(cat.argv, argv(&["x"]));
        assert_eq!(cat.redirects, argv(&["out", "err", "log", "all", "clob", "rw"]));
        assert_eq!(one("echo x>f").redirects, argv(&["f"]));
        assert_eq!(one("echo x >&file").redirects, argv(&["file"]));
    }

    #[test]
    fn a_group_redirect_applies_to_every_command_inside() {
        let commands = parse_line("{ a; b; } > f").unwrap();
        assert!(commands.iter().all(|c| c.redirects == ["f"]));
    }

    #[test]
    fn a_redirection_alone_still_writes() {
        let truncate = one("> /etc/passwd");
        assert_eq!(truncate.program, "");
        assert_eq!(truncate.redirects, argv(&["/etc/passwd"]));
    }

    #[test]
    fn leading_assignments_are_skipped() {
        let rm = one("A=b C='d e' rm x");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.argv, argv(&["x"]));
        assert!(parse_line("A=b C=d").unwrap().is_empty());
        assert_eq!(one("echo A=b").argv, argv(&["A=b"]));
    }

    #[test]
    fn assignment_substitutions_still_run() {
        assert_eq!(programs("A=$(rm -rf x)"), ["rm"]);
    }

    #[test]
    fn risky_assignments_are_refused() {
        for line in [
            "PATH=/tmp ls",
            "PROMPT_COMMAND='rm -rf x'",
            "export PS1='$(rm x)'",
            "env LD_PRELOAD=x ls",
        ] {
            assert!(
                matches!(parse_line(line), Err(ParseError::RiskyAssignment { .. })),
                "{line}"
            );
        }
    }

    #[test]
    fn an_expansion_as_program_is_not_literal() {
        let command = one("$X -rf");
        assert!(!command.literal);
        assert_eq!(command.program, "");
        assert_eq!(command.argv, argv(&["-rf"]));
        assert!(!one("${X} y").literal);
        assert!(!one("r* -rf").literal);
        assert!(one("[ -f x ]").literal);
    }

    #[test]
    fn expansions_in_arguments_are_kept_as_written() {
        assert_eq!(
            one("rm -rf $HOME ${TMP}/x").argv,
            argv(&["-rf", "$HOME", "${TMP}/x"])
        );
    }

    #[test]
    fn a_splittable_word_among_wrapper_options_hides_the_program() {
        let command = one("sudo $OPTS rm -rf x");
        assert!(!command.literal);
        assert_eq!(command.wrappers, ["sudo"]);
    }

    #[test]
    fn brace_expansion_reveals_the_program_and_flags() {
        let rm = one("{rm,-rf,/}");
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.argv, argv(&["-rf", "/"]));
        assert_eq!(one("echo a{1..3}b").argv, argv(&["a1b", "a2b", "a3b"]));
        assert_eq!(one("echo {a,b{c,d}}").argv, argv(&["a", "bc", "bd"]));
        assert_eq!(
            one("echo {05..3..2} {c..a}").argv,
            argv(&["05", "03", "c", "b", "a"])
        );
        assert_eq!(one("echo '{a,b}' {a} {}").argv, argv(&["{a,b}", "{a}", "{}"]));
    }

    #[test]
    fn brace_expansion_is_bounded() {
        assert!(matches!(
            parse_line("echo {1..100000}"),
            Err(ParseError::TooManyWords { .. })
        ));
        let bomb = "{a,b}".repeat(30);
        assert!(parse_line(&format!("echo {bomb}")).is_err());
    }

    #[test]
    fn reserved_words_are_skipped() {
        assert_eq!(
            programs("if a; then b; elif c; then d; else e; fi"),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(
            programs("while a; do b; done; until c; do d; done"),
            ["a", "b", "c", "d"]
        );
        assert_eq!(programs("for f in $(ls) *; do rm \"$f\"; done"), ["ls", "rm"]);
        assert_eq!(programs("for f\ndo echo; done"), ["echo"]);
        assert_eq!(programs("! time -p ls"), ["ls"]);
    }

    #[test]
    fn reserved_words_as_arguments_are_words() {
        assert_eq!(
            one("echo if then fi done {").argv,
            argv(&["if", "then", "fi", "done", "{"])
        );
    }

    #[test]
    fn unterminated_quotes_are_incomplete() {
        for line in ["echo 'a", "echo \"a", "echo $'a"] {
            let error = parse_line(line).unwrap_err();
            assert!(
                matches!(error, ParseError::UnterminatedQuote { .. }),
                "{line}: {error}"
            );
            assert!(error.is_incomplete());
        }
    }

    #[test]
    fn a_trailing_backslash_is_incomplete() {
        let error = parse_line("echo a \\").unwrap_err();
        assert_eq!(error, ParseError::TrailingBackslash);
        assert!(error.is_incomplete());
    }

    #[test]
    fn a_backslash_newline_continues_the_word() {
        assert_eq!(one("r\\\nm x").program, "rm");
    }

    #[test]
    fn trailing_operators_are_incomplete() {
        for (line, op) in [("ls |", "|"), ("ls &&", "&&"), ("ls ||\n", "||"), ("ls |&", "|&")] {
            let error = parse_line(line).unwrap_err();
            assert_eq!(error, ParseError::DanglingOperator { op: op.into() }, "{line}");
            assert!(error.is_incomplete());
        }
    }

    #[test]
    fn unclosed_groups_are_incomplete() {
        for (line, open) in [
            ("(ls", "("),
            ("{ ls;", "{"),
            ("echo $(ls", "$("),
            ("echo `ls", "`"),
            ("echo ${x", "${"),
            ("if true; then ls", "if"),
            ("while true", "while"),
            ("for x in a b", "for"),
        ] {
            let error = parse_line(line).unwrap_err();
            assert_eq!(error, ParseError::UnclosedGroup { open: open.into() }, "{line}");
            assert!(error.is_incomplete());
        }
    }

    #[test]
    fn here_documents_are_refused() {
        assert_eq!(parse_line("cat <<EOF"), Err(ParseError::HereDoc));
        assert_eq!(parse_line("cat <<-EOF"), Err(ParseError::HereDoc));
        assert!(!ParseError::HereDoc.is_incomplete());
    }

    #[test]
    fn here_strings_are_fine() {
        let cat = one("cat <<< 'rm -rf x'");
        assert_eq!(cat.program, "cat");
        assert!(cat.argv.is_empty());
    }

    #[test]
    fn unsupported_constructs_are_refused() {
        for line in [
            "case x in a) ls;; esac",
            "f() { ls; }",
            "function f { ls; }",
            "select x in a; do ls; done",
            "((x++))",
            "[[ -f x ]]",
        ] {
            let error = parse_line(line).unwrap_err();
            assert!(matches!(error, ParseError::Unsupported { .. }), "{line}: {error}");
            assert!(!error.is_incomplete());
        }
    }

    #[test]
    fn a_fork_bomb_is_refused() {
        assert!(parse_line(":(){ :|:& };:").is_err());
    }

    #[test]
    fn misplaced_tokens_are_refused() {
        for line in [")", "fi", "; ls", "ls ;; ls", "| ls", "ls >", "(ls) x", "done"] {
            let error = parse_line(line).unwrap_err();
            assert!(
                matches!(error, ParseError::UnexpectedToken { .. }),
                "{line}: {error}"
            );
            assert!(!error.is_incomplete(), "{line}");
        }
    }

    #[test]
    fn over_long_input_is_refused() {
        let long = "a".repeat(MAX_LINE + 1);
        assert_eq!(
            parse_line(&long),
            Err(ParseError::TooLong {
                len: MAX_LINE + 1,
                max: MAX_LINE
            })
        );
        assert!(matches!(parse_argv(&[long]), Err(ParseError::TooLong { .. })));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        for line in [
            "$(".repeat(10_000),
            "( ".repeat(10_000),
            "{ ".repeat(10_000),
            "if ".repeat(10_000),
            "${x:-".repeat(10_000),
            format!("{}rm", "sudo ".repeat(100)),
        ] {
            assert_eq!(
                parse_line(&line),
                Err(ParseError::TooDeep { max: MAX_DEPTH }),
                "{}",
                &line[..10]
            );
        }
    }

    #[test]
    fn the_deepest_allowed_nesting_fits_in_a_small_stack() {
        let depth = MAX_DEPTH - 1;
        let lines = [
            format!("{}ls{}", "$(".repeat(depth), ")".repeat(depth)),
            format!("{}ls{}", "( ".repeat(depth), " )".repeat(depth)),
            format!("{}ls{}", "{ ".repeat(depth), "; }".repeat(depth)),
            format!("{}ls{}", "if a; then ".repeat(depth), "; fi".repeat(depth)),
            format!("echo {}x{}", "${a:-".repeat(depth), "}".repeat(depth)),
            format!("echo \"{}ls{}\"", "$(echo \"".repeat(depth), "\")".repeat(depth)),
            format!("{}ls", "sudo ".repeat(depth)),
            format!("{}ls", "eval ".repeat(depth)),
            format!("{}ls{}", "sh -c \"eval ".repeat(depth), "\"".repeat(depth)),
        ];
        let parsed = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                lines
                    .iter()
                    .map(|line| parse_line(line).map(|c| c.len()))
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(parsed.iter().all(Result::is_ok), "{parsed:?}");
    }

    fn shell_quote(text: &str) -> String {
        format!("'{}'", text.replace('\'', r"'\''"))
    }

    #[test]
    fn nested_sh_c_scripts_are_unwrapped_at_every_level() {
        let line = (0..3).fold("rm -rf x".to_string(), |script, _| {
            format!("sh -c {}", shell_quote(&script))
        });
        let rm = one(&line);
        assert_eq!(rm.program, "rm");
        assert_eq!(rm.wrappers, ["sh", "sh", "sh"]);
    }

    #[test]
    fn a_substitution_in_a_redirect_target_runs() {
        assert_eq!(programs("echo x > $(rm y)"), ["rm", "echo"]);
    }

    #[test]
    fn exec_argv_time_is_a_wrapper() {
        let commands = parse_argv(&argv(&["time", "-o", "out", "rm", "-rf", "x"])).unwrap();
        assert_eq!(commands[0].program, "rm");
        assert_eq!(commands[0].wrappers, ["time"]);
    }

    #[test]
    fn an_empty_exec_argv_runs_nothing() {
        assert_eq!(parse_argv(&[]), Ok(Vec::new()));
    }

    #[test]
    fn exec_alone_and_eval_alone_are_themselves() {
        assert_eq!(one("exec 3>&1").program, "exec");
        assert_eq!(one("eval").program, "eval");
    }

    #[test]
    fn a_long_plain_command_is_not_refused() {
        let line = format!("echo {}", "a ".repeat(5000));
        assert_eq!(one(&line).argv.len(), 5000);
    }

    #[test]
    fn an_open_brace_with_ls_inside_waits_for_its_close() {
        // `}` after a word is an argument, so bash reads on, as for any unclosed group.
        assert!(parse_line("{ ls }").unwrap_err().is_incomplete());
    }

    #[test]
    fn nesting_within_the_limit_is_fine() {
        let line = format!("{}ls{}", "$(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(programs(&format!("echo {line}")).len(), MAX_DEPTH + 1);
    }

    #[test]
    fn an_unparseable_c_script_is_an_error_that_is_not_incomplete() {
        let error = parse_line("sh -c 'echo \"'").unwrap_err();
        assert!(matches!(error, ParseError::Script { .. }), "{error}");
        assert!(!error.is_incomplete());
        assert!(parse_argv(&argv(&["bash", "-c", "case x in esac"])).is_err());
    }

    #[test]
    fn exec_argv_sh_c_is_parsed_as_a_script() {
        let commands = parse_argv(&argv(&["sh", "-c", "ls; rm -rf x"])).unwrap();
        let names: Vec<&str> = commands.iter().map(|c| c.program.as_str()).collect();
        assert_eq!(names, ["ls", "rm"]);
        assert!(commands.iter().all(|c| c.wrappers == ["sh"]));
    }

    #[test]
    fn exec_argv_is_not_split_by_a_shell() {
        let commands = parse_argv(&argv(&["echo", "a;b"])).unwrap();
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0].argv, argv(&["a;b"]));
    }

    #[test]
    fn exec_argv_is_unwrapped() {
        let commands = parse_argv(&argv(&["/usr/bin/sudo", "-u", "root", "/bin/rm", "-fr", "/"])).unwrap();
        assert_eq!(commands[0].program, "rm");
        assert_eq!(commands[0].wrappers, ["sudo"]);
        assert_eq!(commands[0].flags, flags(&["force", "recursive"]));
    }

    #[test]
    fn comments_are_ignored() {
        assert_eq!(programs("ls # rm -rf x\n# whole line\necho a#b"), ["ls", "echo"]);
        assert_eq!(one("echo a#b").argv, argv(&["a#b"]));
    }

    #[test]
    fn default_flag_rule_splits_clusters_and_long_names() {
        assert_eq!(
            one("tool -abc --long=v --other - -- -x").flags,
            flags(&["a", "b", "c", "long", "other"])
        );
        assert_eq!(one("tool -R").flags, flags(&["R"]));
    }

    #[test]
    fn option_values_of_known_programs_are_not_flags() {
        assert_eq!(
            one("shred -n 3 -uz f").flags,
            flags(&["iterations", "remove", "zero"])
        );
        assert_eq!(one("cp -t -x -r a").flags, flags(&["recursive", "t"]));
        assert_eq!(one("chmod -R -x f").flags, flags(&["recursive"]));
        assert_eq!(one("ln -sf a b").flags, flags(&["force", "symbolic"]));
        assert_eq!(one("mv -n a b").flags, flags(&["no-clobber"]));
        assert_eq!(one("chown --recursive u f").flags, flags(&["recursive"]));
    }

    #[test]
    fn every_error_message_is_a_sentence() {
        let errors = [
            ParseError::UnterminatedQuote { quote: '"' },
            ParseError::TrailingBackslash,
            ParseError::UnclosedGroup { open: "$(".into() },
            ParseError::DanglingOperator { op: "|".into() },
            ParseError::HereDoc,
            ParseError::Unsupported {
                construct: "`case`".into(),
            },
            ParseError::UnexpectedToken { token: ")".into() },
            ParseError::TooLong { len: 2, max: 1 },
            ParseError::TooDeep { max: 16 },
            ParseError::TooManyWords { max: 1 },
            ParseError::RiskyAssignment { name: "PATH".into() },
            ParseError::TooManyCommands { max: MAX_COMMANDS },
            ParseError::HistoryExpansion,
            unsupported(ARITHMETIC_EXPANSION),
            ParseError::Script {
                program: "sh".into(),
                error: Box::new(ParseError::HereDoc),
            },
        ];
        for error in errors {
            let message = error.to_string();
            assert!(
                message.starts_with("the ") || message.starts_with("a "),
                "{message}"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b" \t\n;&|()<>{}[]$`'\"\\#*?!=-+,.:@%^~0123456789abcdefrmshcx";
        for _ in 0..20000 {
            let len = (next() % 48) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 5 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let line = String::from_utf8_lossy(&bytes);
            let _ = parse_line(&line);
            let _ = parse_interactive(&line);
            let _ = continuation(&line);
            let words: Vec<String> = line.split(' ').map(str::to_string).collect();
            let _ = parse_argv(&words);
        }
    }

    fn refused(line: &str) -> ParseError {
        match parse_line(line) {
            Ok(commands) => panic!("{line}: parsed as {commands:#?}"),
            Err(error) => error,
        }
    }

    fn is_risky(error: &ParseError) -> bool {
        match error {
            ParseError::RiskyAssignment { .. } => true,
            ParseError::Script { error, .. } => is_risky(error),
            _ => false,
        }
    }

    fn is_unsupported(error: &ParseError) -> bool {
        match error {
            ParseError::Unsupported { .. } => true,
            ParseError::Script { error, .. } => is_unsupported(error),
            _ => false,
        }
    }

    #[test]
    fn a_brace_range_with_the_most_negative_step_does_not_overflow() {
        // A step longer than the range gives its first value.
        assert_eq!(
            one("echo {1..2..-170141183460469231731687303715884105728}").argv,
            argv(&["1"])
        );
        assert_eq!(one("echo {1..3..-1}").argv, argv(&["1", "2", "3"]));
        assert_eq!(one("echo {5..1..-2}").argv, argv(&["5", "3", "1"]));
        assert_eq!(
            one("echo {a..e..-170141183460469231731687303715884105728}").argv,
            argv(&["a"])
        );
    }

    #[test]
    fn brace_ranges_with_huge_or_negative_bounds_and_steps_never_panic() {
        let numbers = [
            "0".to_string(),
            "1".into(),
            "-1".into(),
            "007".into(),
            "-05".into(),
            i64::MIN.to_string(),
            i64::MAX.to_string(),
            (i64::MIN + 1).to_string(),
            (i64::MAX - 1).to_string(),
            "9223372036854775808".into(),
            "-9223372036854775809".into(),
            i128::MIN.to_string(),
            i128::MAX.to_string(),
            u128::MAX.to_string(),
            "a".into(),
            "Z".into(),
            "é".into(),
            "".into(),
        ];
        let mut state = 0x0123_4567_89ab_cdefu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let check = |range: String| {
            let line = format!("echo {{{range}}}");
            if let Ok(commands) = parse_line(&line) {
                assert!(commands.iter().all(|c| c.argv.len() <= MAX_WORDS), "{line}");
            }
        };
        for from in &numbers {
            for to in &numbers {
                check(format!("{from}..{to}"));
                for step in &numbers {
                    check(format!("{from}..{to}..{step}"));
                }
            }
        }
        for _ in 0..2000 {
            let pick = |r: u64| -> String {
                match r % 4 {
                    0 => (r as i64).to_string(),
                    1 => ((r as i64) >> (r % 64)).to_string(),
                    2 => (i128::from(r as i64) << 64).to_string(),
                    _ => (r % 3).to_string(),
                }
            };
            let (a, b, c) = (pick(next()), pick(next()), pick(next()));
            check(format!("{a}..{b}..{c}"));
            check(format!("{a}..{b}"));
        }
    }

    #[test]
    fn the_program_path_is_the_program_word_as_written() {
        for (line, program, path) in [
            ("/tmp/x/ls -l", "ls", "/tmp/x/ls"),
            ("./ls", "ls", "./ls"),
            ("ls", "ls", "ls"),
            ("'/tmp/my dir'/ls", "ls", "/tmp/my dir/ls"),
            ("sudo /tmp/x/rm -rf y", "rm", "/tmp/x/rm"),
            ("sh -c '../bin/cat f'", "cat", "../bin/cat"),
            ("find . -exec ./x {} ;", "x", "./x"),
            ("xargs", "echo", "echo"),
            ("$X y", "", ""),
            ("/tmp/*/ls", "", ""),
        ] {
            let command = parse_line(line).unwrap().pop().unwrap();
            assert_eq!(
                (command.program.as_str(), command.path.as_str()),
                (program, path),
                "{line}"
            );
        }
        assert_eq!(one("> /tmp/f").path, "");
        assert_eq!(parse_line("find /tmp -name x").unwrap()[0].path, "find");
        let exec = parse_argv(&argv(&["/opt/x/env", "A=1", "./run"])).unwrap();
        assert_eq!(exec[0].path, "./run");
    }

    #[test]
    fn wrappers_named_by_a_path_are_kept_as_written_beside_their_names() {
        let ls = one("/tmp/x/nohup sudo -u root ls");
        assert_eq!(ls.wrappers, ["nohup", "sudo"]);
        assert_eq!(ls.wrapper_paths, ["/tmp/x/nohup", "sudo"]);
        let rm = one("./env bash -c 'exec /usr/bin/nice rm x'");
        assert_eq!(rm.wrappers, ["env", "bash", "exec", "nice"]);
        assert_eq!(rm.wrapper_paths, ["./env", "bash", "exec", "/usr/bin/nice"]);
        let commands = parse_line("/tmp/find . -exec rm {} +").unwrap();
        assert_eq!(commands[1].wrapper_paths, ["/tmp/find"]);
        assert_eq!(one("/tmp/sudo $OPTS rm").wrapper_paths, ["/tmp/sudo"]);
    }

    #[test]
    fn variables_the_shell_acts_on_are_refused_in_every_assignment_form() {
        let names = [
            "PATH",
            "BASH_ALIASES",
            "BASH_CMDS",
            "MAIL",
            "MAILPATH",
            "MAILCHECK",
            "HISTFILE",
            "HISTCONTROL",
            "HISTIGNORE",
            "INPUTRC",
            "IFS",
            "CDPATH",
            "GLOBIGNORE",
            "BASH_XTRACEFD",
            "FIGNORE",
            "EXECIGNORE",
            "TIMEFORMAT",
            "BASH_LOADABLES_PATH",
            "LD_DEBUG_OUTPUT",
            "GCONV_PATH",
        ];
        let forms = [
            "N=x ls",
            "N+=x",
            "N=(a b)",
            "N[0]=x",
            "export N=x",
            "declare -x N=x",
            "local N=x",
            "readonly N=x",
            "command export N=x",
            "builtin declare N+=x",
            "env N=x ls",
            "env -i 'N=x' ls",
            "sudo N=x ls",
            "env -S 'N=x ls'",
            "for N in x; do ls; done",
            "echo ${N:=x}",
            "echo ${N=x}",
            "ls {N}>/tmp/f",
            "read N",
            "read -r -a N",
            "mapfile -t N",
            "getopts ab N",
            "sh -c 'N=x ls'",
            "echo $(N=x)",
        ];
        for name in names {
            for form in forms {
                let line = form.replace('N', name);
                let error = refused(&line);
                assert!(is_risky(&error), "{line}: {error}");
                assert!(!error.is_incomplete(), "{line}");
            }
        }
        assert!(parse_line("PROMPT_DIRTRIM=2; export PATH; readonly IFS; unset CDPATH").is_ok());
        assert!(parse_line("for x in a; do ls; done; echo ${x:=y}; ls {fd}>/tmp/f; read line").is_ok());
    }

    #[test]
    fn subscripted_assignments_to_bash_aliases_and_commands_are_refused() {
        for line in [
            "BASH_ALIASES[ls]='rm -rf ~'",
            "BASH_CMDS[ls]=/tmp/x",
            "BASH_ALIASES=([ls]=x)",
            "declare BASH_ALIASES[ls]=x",
            "declare -A BASH_CMDS='([ls]=/tmp/x)'",
            "echo ${BASH_ALIASES[ls]:=x}",
            "env 'BASH_ALIASES[ls]=x' ls",
        ] {
            assert!(is_risky(&refused(line)), "{line}");
        }
    }

    #[test]
    fn a_subscript_with_an_expansion_or_a_variable_is_refused() {
        for line in [
            "a[$(id)]=1",
            "a[`id`]=1",
            "a[$x]=1",
            "a[x]=1",
            "a[i+1]+=y",
            "declare 'a[$(id)]=1'",
            "export a[x]=1",
            "a=([$(id)]=1)",
            "a=([x]=1 [1]=2)",
            "declare -a 'a=([x]=1)'",
            "unset 'a[$(id)]'",
            "read 'a[x]'",
        ] {
            assert!(is_risky(&refused(line)), "{line}");
        }
        for line in [
            "a[1]=x",
            "a[0x1f]=y",
            "a[16#ff]=z",
            "a=(1 2)",
            "a=([1]=x [2]=y)",
            "unset a[1]",
        ] {
            assert!(parse_line(line).is_ok(), "{line}");
        }
    }

    #[test]
    fn printf_v_is_a_risky_assignment() {
        for line in [
            "printf -v x %s y",
            "printf -vPATH /tmp",
            "printf -v PATH /tmp",
            "command printf -v x y",
            "printf \"$f\" PATH /tmp/x",
            "printf $f PATH /tmp/x",
            "xargs printf -v x",
        ] {
            assert!(is_risky(&refused(line)), "{line}");
        }
        for line in [
            "printf '%s\\n' -v",
            "printf -- -v x",
            "printf 'a%sb' \"$x\"",
            "printf \"a$x\"",
        ] {
            assert_eq!(programs(line), ["printf"], "{line}");
        }
    }

    #[test]
    fn name_references_and_integer_variables_are_refused() {
        for line in [
            "declare -n r=PATH",
            "local -i x",
            "typeset -ni x=1",
            "builtin declare -gn r",
        ] {
            assert!(is_unsupported(&refused(line)), "{line}");
        }
        assert!(parse_line("export -n FOO; declare -a list; local -r x=1").is_ok());
    }

    #[test]
    fn arithmetic_that_evaluates_variables_as_code_is_refused_everywhere() {
        for line in [
            "echo $((1+1))",
            "echo \"$((x))\"",
            "echo $[1+1]",
            "echo \"$[x]\"",
            "echo ${a:-$((x))}",
            "sh -c 'echo $((x))'",
            "echo `echo $((x))`",
            "((x))",
            "((x)) > /tmp/f",
            "for ((i=0; i<1; i++)); do ls; done",
            "for ((;;))\ndo ls\ndone",
            "let x=1",
            "command let 'a[$(id)]'",
            "[[ -f x ]]",
            "[[ $x -eq 1 ]] && ls",
            "ls; [[ a < b || (c == d) ]]",
        ] {
            let error = refused(line);
            assert!(is_unsupported(&error), "{line}: {error}");
            assert!(!error.is_incomplete(), "{line}");
        }
    }

    #[test]
    fn substitutions_inside_refused_arithmetic_are_still_read() {
        assert!(refused("echo $(( $(rm -rf x) ))")
            .to_string()
            .contains("arithmetic"));
        assert!(matches!(
            parse_line("echo $(( $(rm 'x) ))"),
            Err(ParseError::UnterminatedQuote { .. })
        ));
    }

    #[test]
    fn parameter_transformations_and_indirection_are_refused() {
        for line in [
            "echo ${x@P}",
            "echo ${x@Q}",
            "echo \"${a[@]@P}\"",
            "echo ${!x}",
            "echo ${!pre*}",
            "echo ${!a[@]}",
            "echo ${#!x}",
            "echo ${a[x]}",
            "echo ${a[$i]}",
            "echo ${#a[i]}",
            "echo ${s:x:1}",
            "echo ${s:1:$n}",
            "echo ${@:i}",
        ] {
            let error = refused(line);
            assert!(is_unsupported(&error), "{line}: {error}");
        }
        for line in [
            "echo ${!} ${#} ${#x} ${x:-y} ${x:+y} ${x:?y} ${x: -1} ${x:0:2} ${a[@]} ${a[*]} ${a[1]}",
            "echo ${x#*@} ${x/@/y} ${@} ${#@} ${*:1} ${10} ${x,,} ${x^^}",
        ] {
            assert!(parse_line(line).is_ok(), "{line}");
        }
    }

    #[test]
    fn a_refusal_still_reports_a_line_that_continues_as_incomplete() {
        for line in [
            "echo $((1)) '",
            "PATH=/tmp ls \"",
            "[[ -f x ]] && echo '",
            "echo `echo $((1))` '",
            "sh -c 'echo $((x))' && ",
            "printf -v x y |",
            "for PATH in a; do",
            "echo ${!x} $(",
        ] {
            let error = refused(line);
            assert!(error.is_incomplete(), "{line}: {error}");
        }
        assert!(refused("[[ -f x").is_incomplete());
        assert!(refused("echo $[1").is_incomplete());
        assert!(refused("((x").is_incomplete());
    }

    #[test]
    fn history_expansion_is_refused_in_interactive_lines() {
        for line in [
            "!!",
            "sudo !!",
            "echo !-1",
            "echo !rm",
            "echo !$",
            "echo \"!rm\"",
            "echo \"'!x'\"",
            "echo hi!;",
            "^rm^ls",
            "  ^a^b",
            "ls\n^a^b",
            "echo x # !y",
            "echo $'\\'' !x",
        ] {
            assert_eq!(
                parse_interactive(line),
                Err(ParseError::HistoryExpansion),
                "{line}"
            );
            assert!(!ParseError::HistoryExpansion.is_incomplete());
        }
        for line in [
            "! ls",
            "ls !",
            "[ a != b ]",
            "echo '!x'",
            "echo \\!x",
            "echo \"\\!x\"",
            "echo a!=b",
            "echo $!",
            "echo x^y",
        ] {
            assert!(parse_interactive(line).is_ok(), "{line}");
        }
        assert_eq!(parse_line("echo !!").unwrap()[0].argv, ["!!"]);
        assert!(matches!(
            parse_interactive("echo !! \""),
            Err(ParseError::UnterminatedQuote { .. })
        ));
        assert_eq!(parse_interactive("PATH=x !!"), Err(ParseError::HistoryExpansion));
    }

    #[test]
    fn a_line_running_more_than_64_commands_is_refused() {
        let most = vec!["ls"; MAX_COMMANDS].join(";");
        assert_eq!(parse_line(&most).unwrap().len(), MAX_COMMANDS);
        for line in [
            format!("{most}; ls"),
            format!("echo $({most}; ls)"),
            format!("echo `{most}; ls`"),
            format!("ls; sh -c '{most}'"),
            format!("eval {{ls,ls}}\\;{}", "{a,b}".repeat(6)),
        ] {
            let error = refused(&line);
            let inner = match &error {
                ParseError::Script { error, .. } => error,
                error => error,
            };
            assert!(
                matches!(inner, ParseError::TooManyCommands { max: MAX_COMMANDS }),
                "{line}: {error}"
            );
        }
        let mut exec = vec!["find".to_string(), ".".into()];
        for _ in 0..MAX_COMMANDS {
            exec.extend(argv(&["-exec", "ls", ";"]));
        }
        assert_eq!(
            parse_argv(&exec),
            Err(ParseError::TooManyCommands { max: MAX_COMMANDS })
        );
    }

    #[test]
    fn continuation_tells_complete_incomplete_and_unknown_lines() {
        for (line, expected) in [
            ("ls", Continuation::Complete),
            ("echo $((1))", Continuation::Complete),
            ("PATH=x ls", Continuation::Complete),
            ("ls )", Continuation::Complete),
            ("echo 'a", Continuation::Incomplete),
            ("echo $((1)) '", Continuation::Incomplete),
            ("case x in a) echo '", Continuation::Unknown),
            ("cat <<EOF", Continuation::Unknown),
            ("echo !! '", Continuation::Incomplete),
            ("echo !!", Continuation::Unknown),
        ] {
            assert_eq!(continuation(line), expected, "{line}");
        }
    }
}
