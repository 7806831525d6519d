//! The desktop's terminal. Under gVisor, xterm cannot open the slave side of a pty it allocates
//! itself ("open ttydev: Input/output error"), so the terminal runs xterm in slave mode (`-S`) on a
//! pty this process opens, with a login shell on the other side. The same path serves the microVM.

use std::ffi::CStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use airlock_protocol::TERMINAL_READY_FILE as READY_FILE;

/// Why the terminal could not be started or kept running.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// No pty could be allocated.
    #[error("cannot open a pty")]
    OpenPty(#[source] std::io::Error),
    /// The pty's slave has no name.
    #[error("cannot name the pty's slave side")]
    TtyName(#[source] std::io::Error),
    /// The slave is not under `/dev/pts/`, so xterm cannot be told where it is.
    #[error("unexpected pty name {0}, expected one under /dev/pts/")]
    PtyName(String),
    /// The pty's echo could not be switched.
    #[error("cannot turn the pty's echo {}: {call} failed", if *.on { "on" } else { "off" })]
    Echo {
        /// Whether echo was being turned on.
        on: bool,
        /// The call that failed: tcgetattr or tcsetattr.
        call: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The pty's slave fd could not be duplicated.
    #[error("cannot duplicate the pty's slave fd")]
    Dup(#[source] std::io::Error),
    /// xterm could not be started.
    #[error("cannot start xterm")]
    SpawnXterm(#[source] std::io::Error),
    /// The shell could not be started.
    #[error("cannot start the shell")]
    SpawnShell(#[source] std::io::Error),
    /// A child's status could not be read.
    #[error("cannot wait for {child}")]
    Wait {
        /// "xterm" or "the shell".
        child: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// xterm ended unsuccessfully.
    #[error("xterm exited with {0}")]
    XtermFailed(std::process::ExitStatus),
}

/// Opens a pty, starts xterm on it and keeps a shell running inside. Returns when xterm exits.
pub fn run() -> Result<(), TerminalError> {
    let (master, slave, name) = openpty()?;
    set_echo(&slave, false)?;
    let pts = name
        .strip_prefix("/dev/pts/")
        .ok_or_else(|| TerminalError::PtyName(name.clone()))?;
    let mut xterm = Command::new("xterm")
        .arg(format!("-S{pts}/{}", master.as_raw_fd()))
        .args([
            "-geometry",
            "120x40+0+0",
            "-title",
            "terminal",
            "-bg",
            "black",
            "-fg",
            "grey90",
        ])
        .stdin(Stdio::null())
        .spawn()
        .map_err(TerminalError::SpawnXterm)?;
    // In slave mode xterm first writes its window id as one line to the pty: swallow it before the
    // shell can read it as a command.
    let mut line = Vec::new();
    let mut f = File::from(slave.try_clone().map_err(TerminalError::Dup)?);
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") && line.len() < 64 {
        match f.read(&mut b) {
            Ok(1) => line.push(b[0]),
            _ => break,
        }
    }
    set_echo(&slave, true)?;
    // The desktop has nothing else: give the terminal the keyboard, so typing lands without a click.
    let wid = String::from_utf8_lossy(&line).trim().to_string();
    if u64::from_str_radix(wid.trim_start_matches("0x"), 16).is_ok() {
        let focus = Command::new("xdotool")
            .args(["windowfocus", "--sync", &wid])
            .output();
        if let Err(e) = focus {
            eprintln!("airlock-guest-agent terminal: cannot focus the terminal: {e}");
        }
    }
    let mut announced = false;
    loop {
        let mut shell = shell_on(&slave)?;
        if !announced {
            // Focused and a shell reads the pty: keystrokes from now on reach it.
            if let Err(e) = std::fs::write(READY_FILE, format!("{wid}\n")) {
                eprintln!("airlock-guest-agent terminal: cannot write {READY_FILE}: {e}");
            }
            announced = true;
        }
        loop {
            let xterm_status = xterm.try_wait().map_err(|source| TerminalError::Wait {
                child: "xterm",
                source,
            })?;
            if let Some(status) = xterm_status {
                let _ = shell.kill();
                return if status.success() {
                    Ok(())
                } else {
                    Err(TerminalError::XtermFailed(status))
                };
            }
            let shell_status = shell.try_wait().map_err(|source| TerminalError::Wait {
                child: "the shell",
                source,
            })?;
            if shell_status.is_some() {
                break; // the user typed `exit`: give them a new shell
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn shell_on(slave: &OwnedFd) -> Result<std::process::Child, TerminalError> {
    let io = |_: ()| slave.try_clone().map(Stdio::from).map_err(TerminalError::Dup);
    let mut cmd = Command::new("bash");
    cmd.arg("-i")
        .env("TERM", "xterm")
        .env("PS1", "sandbox# ")
        .current_dir("/root")
        .stdin(io(())?)
        .stdout(io(())?)
        .stderr(io(())?);
    // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe and touch only this child's state;
    // fd 0 is the pty slave set up by Command before pre_exec runs.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(TerminalError::SpawnShell)
}

fn openpty() -> Result<(OwnedFd, OwnedFd, String), TerminalError> {
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: openpty writes two fds into the provided ints; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(TerminalError::OpenPty(std::io::Error::last_os_error()));
    }
    // SAFETY: openpty succeeded, so both fds are open and owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: buf is writable for its full length, which is what we pass.
    let rc = unsafe { libc::ttyname_r(slave.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(TerminalError::TtyName(std::io::Error::from_raw_os_error(rc)));
    }
    // SAFETY: ttyname_r succeeded and NUL-terminated buf.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Ok((master, slave, name))
}

fn set_echo(fd: &OwnedFd, on: bool) -> Result<(), TerminalError> {
    let failed = |call| TerminalError::Echo {
        on,
        call,
        source: std::io::Error::last_os_error(),
    };
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a valid tty and t is a valid termios.
    if unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) } != 0 {
        return Err(failed("tcgetattr"));
    }
    if on {
        t.c_lflag |= libc::ECHO;
    } else {
        t.c_lflag &= !libc::ECHO;
    }
    // SAFETY: as above.
    if unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &t) } != 0 {
        return Err(failed("tcsetattr"));
    }
    Ok(())
}
