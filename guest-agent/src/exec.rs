//! Exec: allowlisted programs, a process group killed at the timeout, capped output.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use airlock_protocol::{ErrorKind, ExecRequest, ExecResult};

/// Finds the program the way a shell would, but only inside `allowed` directories.
pub fn resolve(program: &str, allowed: &[PathBuf]) -> Result<PathBuf, (ErrorKind, String)> {
    let inside = |p: &Path| {
        allowed
            .iter()
            .any(|d| p.parent().is_some_and(|parent| parent == d))
    };
    if program.contains('/') {
        let real = std::fs::canonicalize(program).map_err(|e| {
            (
                ErrorKind::SpawnFailed,
                format!("cannot find program {program}: {e}"),
            )
        })?;
        // Symlinks such as /bin -> usr/bin resolve before the check.
        return if inside(&real) {
            Ok(real)
        } else {
            Err((
                ErrorKind::NotAllowed,
                format!(
                    "{program} is outside the agent's exec allowlist ({})",
                    list(allowed)
                ),
            ))
        };
    }
    for d in allowed {
        let p = d.join(program);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err((
        ErrorKind::NotAllowed,
        format!(
            "{program} is not found in the agent's exec allowlist ({})",
            list(allowed)
        ),
    ))
}

fn list(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a validated request.
pub fn run(req: &ExecRequest, allowed: &[PathBuf]) -> Result<ExecResult, (ErrorKind, String)> {
    let program = resolve(&req.argv[0], allowed)?;
    let start = Instant::now();
    let mut child = Command::new(&program)
        .args(&req.argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin")
        .env("HOME", "/root")
        .env("DISPLAY", ":0")
        .env("LANG", "C.UTF-8")
        // The only way out of the sandbox is the proxy endpoints (see the image's init).
        .envs(crate::egress::proxy_env())
        .current_dir("/root")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            (
                ErrorKind::SpawnFailed,
                format!("cannot start {}: {e}", program.display()),
            )
        })?;
    let pid = child.id() as i32;
    if let Some(mut stdin) = child.stdin.take() {
        let data = req.stdin.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let cap = req.output_cap as usize;
    let (tx, rx) = mpsc::channel();
    for (which, pipe) in [
        (
            0u8,
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            1,
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        if let Some(pipe) = pipe {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send((which, capture(pipe, cap)));
            });
        }
    }
    drop(tx);
    let deadline = start + Duration::from_millis(u64::from(req.timeout_ms));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                kill_group(pid);
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    // Whatever the program left behind in its group goes too.
    kill_group(pid);
    let mut out = [(Vec::new(), false), (Vec::new(), false)];
    let drain_until = Instant::now() + Duration::from_secs(1);
    for _ in 0..2 {
        let left = drain_until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((which, captured)) => out[usize::from(which)] = captured,
            Err(_) => break, // a daemon escaped the group and holds the pipe: report what we have
        }
    }
    let [(stdout, stdout_truncated), (stderr, stderr_truncated)] = out;
    Ok(ExecResult {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        duration_ms: u32::try_from(start.elapsed().as_millis()).unwrap_or(u32::MAX),
    })
}

fn capture(mut pipe: Box<dyn Read + Send>, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 16384];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => return (kept, truncated),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
}

fn kill_group(pid: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created with process_group(0);
    // it has no memory-safety preconditions.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Vec<PathBuf> {
        vec![PathBuf::from("/usr/bin")]
    }

    fn req(argv: &[&str], timeout_ms: u32, cap: u32) -> ExecRequest {
        ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: vec![],
            timeout_ms,
            output_cap: cap,
        }
    }

    #[test]
    fn exit_code_and_output() {
        let r = run(
            &req(&["sh", "-c", "echo out; echo err >&2; exit 3"], 5000, 100),
            &dirs(),
        )
        .expect("ran");
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.stdout, b"out\n");
        assert_eq!(r.stderr, b"err\n");
        assert!(!r.timed_out);
    }

    #[test]
    fn timeout_kills_the_group() {
        let r = run(&req(&["sh", "-c", "sleep 30 & sleep 30"], 200, 100), &dirs()).expect("ran");
        assert!(r.timed_out);
        assert_eq!(r.signal, Some(libc::SIGKILL));
        assert!(r.duration_ms < 5000, "{}", r.duration_ms);
    }

    #[test]
    fn output_cap_holds() {
        let r = run(&req(&["head", "-c", "100000", "/dev/zero"], 5000, 1000), &dirs()).expect("ran");
        assert_eq!(r.stdout.len(), 1000);
        assert!(r.stdout_truncated);
    }

    #[test]
    fn allowlist() {
        assert!(resolve("sh", &dirs()).is_ok());
        let e = resolve("/usr/lib/os-release", &dirs()).unwrap_err();
        assert_eq!(e.0, ErrorKind::NotAllowed);
        assert_eq!(
            resolve("no-such-program-xyz", &dirs()).unwrap_err().0,
            ErrorKind::NotAllowed
        );
    }
}
