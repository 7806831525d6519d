//! `airlock-guest-agent`: runs inside a sandbox and serves the host over one byte stream.
//!
//! Requests arrive as frames of [`airlock_protocol`]; each is validated (protocol limits, screen
//! bounds, the exec allowlist) before anything is done, then handled on its own thread so a long
//! exec never blocks a screenshot. A framing error from the host ends the process (status 3); the
//! image's init starts a fresh agent, which needs a fresh hello.
//!
//! Usage: `airlock-guest-agent --channel virtio:NAME|stdio|unix:PATH [--fbdir DIR] [--allow-exec DIR]...`
//!        `airlock-guest-agent terminal` (starts the desktop's terminal on a pty it owns)

mod channel;
mod display;
mod egress;
mod exec;
mod fb;
mod files;
mod frames;
mod session;
mod terminal;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_protocol::error_chain as chain;

/// Where exec may find programs unless `--allow-exec` says otherwise.
const DEFAULT_EXEC_DIRS: &[&str] = &["/usr/bin", "/usr/sbin", "/usr/local/bin"];

/// Parsed command line.
#[derive(Debug)]
pub struct Config {
    channel: String,
    fbdir: PathBuf,
    exec_dirs: Vec<PathBuf>,
}

/// Why the command line was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum ArgsError {
    /// A flag came last, without its value.
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    /// An argument this agent does not know.
    #[error("unknown argument {0:?}")]
    Unknown(String),
    /// `--channel` was not given.
    #[error("--channel is required")]
    NoChannel,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, ArgsError> {
    let mut channel = None;
    let mut fbdir = PathBuf::from("/tmp/fb");
    let mut exec_dirs = Vec::new();
    while let Some(a) = args.next() {
        let mut value = |name: &'static str| args.next().ok_or(ArgsError::MissingValue(name));
        match a.as_str() {
            "--channel" => channel = Some(value("--channel")?),
            "--fbdir" => fbdir = PathBuf::from(value("--fbdir")?),
            "--allow-exec" => exec_dirs.push(PathBuf::from(value("--allow-exec")?)),
            other => return Err(ArgsError::Unknown(other.to_string())),
        }
    }
    if exec_dirs.is_empty() {
        exec_dirs = DEFAULT_EXEC_DIRS.iter().map(PathBuf::from).collect();
    }
    Ok(Config {
        channel: channel.ok_or(ArgsError::NoChannel)?,
        fbdir,
        exec_dirs,
    })
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("terminal") {
        return match terminal::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("airlock-guest-agent terminal: {}", chain(&e));
                ExitCode::FAILURE
            }
        };
    }
    let config = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("airlock-guest-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let (reader, writer) = match channel::open(&config.channel) {
        Ok(rw) => rw,
        Err(e) => {
            eprintln!("airlock-guest-agent: cannot open channel {}: {e}", config.channel);
            return ExitCode::from(2);
        }
    };
    match session::serve(&config, reader, writer) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airlock-guest-agent: channel closed: {}", chain(&e));
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let c = parse_args(["--channel", "stdio"].map(String::from).into_iter()).expect("ok");
        assert_eq!(c.channel, "stdio");
        assert_eq!(c.exec_dirs.len(), DEFAULT_EXEC_DIRS.len());
        let unknown = parse_args(["--bogus"].map(String::from).into_iter()).expect_err("refused");
        assert_eq!(unknown.to_string(), "unknown argument \"--bogus\"");
        let missing = parse_args(["--fbdir"].map(String::from).into_iter()).expect_err("refused");
        assert_eq!(missing, ArgsError::MissingValue("--fbdir"));
        assert_eq!(
            parse_args(std::iter::empty()).expect_err("refused"),
            ArgsError::NoChannel
        );
    }
}
