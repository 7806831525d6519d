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

/// Opens a pty, starts xterm on it and keeps a shell running inside. Returns when xterm exits.
pub fn run() -> Result<(), String> {
    let (master, slave, name) = openpty()?;
    set_echo(&slave, false)?;
    let pts = name
        .strip_prefix("/dev/pts/")
        .ok_or_else(|| format!("unexpected pty name {name}"))?;
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
        .map_err(|e| format!("cannot start xterm: {e}"))?;
    // In slave mode xterm first writes its window id as one line to the pty: swallow it before the
    // shell can read it as a command.
    let mut line = Vec::new();
    let mut f = File::from(slave.try_clone().map_err(|e| e.to_string())?);
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
            if let Some(status) = xterm.try_wait().map_err(|e| e.to_string())? {
                let _ = shell.kill();
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("xterm exited with {status}"))
                };
            }
            if shell.try_wait().map_err(|e| e.to_string())?.is_some() {
                break; // the user typed `exit`: give them a new shell
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn shell_on(slave: &OwnedFd) -> Result<std::process::Child, String> {
    let io = |_: ()| slave.try_clone().map(Stdio::from).map_err(|e| e.to_string());
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
    cmd.spawn().map_err(|e| format!("cannot start the shell: {e}"))
}

fn openpty() -> Result<(OwnedFd, OwnedFd, String), String> {
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
        return Err(format!("openpty failed: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: openpty succeeded, so both fds are open and owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: buf is writable for its full length, which is what we pass.
    let rc = unsafe { libc::ttyname_r(slave.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(format!(
            "ttyname failed: {}",
            std::io::Error::from_raw_os_error(rc)
        ));
    }
    // SAFETY: ttyname_r succeeded and NUL-terminated buf.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Ok((master, slave, name))
}

fn set_echo(fd: &OwnedFd, on: bool) -> Result<(), String> {
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a valid tty and t is a valid termios.
    if unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) } != 0 {
        return Err(format!("tcgetattr failed: {}", std::io::Error::last_os_error()));
    }
    if on {
        t.c_lflag |= libc::ECHO;
    } else {
        t.c_lflag &= !libc::ECHO;
    }
    // SAFETY: as above.
    if unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &t) } != 0 {
        return Err(format!("tcsetattr failed: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
