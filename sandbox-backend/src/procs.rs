//! Host processes of a sandbox: found by the sandbox directory in their command line, so a crash of
//! any of them (or of the CLI) never leaves an untraceable orphan.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Pids (other than this process) whose command line mentions `dir`.
pub fn pids_referencing(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    let me = std::process::id();
    let Ok(rd) = fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| mentions(*pid, &needle))
        .collect()
}

/// Does `pid`'s command line contain `needle`?
fn mentions(pid: u32, needle: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(needle))
        .unwrap_or(false)
}

/// Is `pid` alive and still one of this sandbox's processes (not a reused pid)?
pub fn alive_for(pid: u32, dir: &Path) -> bool {
    mentions(pid, &dir.display().to_string()) && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// SIGKILLs every process referencing `dir` until none is left (or `timeout`); returns survivors.
pub fn kill_all(dir: &Path, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids: Vec<u32> = pids_referencing(dir)
            .into_iter()
            .filter(|p| !is_zombie(*p))
            .collect();
        if pids.is_empty() || Instant::now() >= deadline {
            return pids;
        }
        for pid in &pids {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(*pid as i32, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of `pid`, bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Total RSS of every process referencing `dir`, except `skip` (the keeper).
pub fn sandbox_rss(dir: &Path, skip: Option<u32>) -> u64 {
    pids_referencing(dir)
        .into_iter()
        .filter(|p| Some(*p) != skip)
        .filter_map(rss_bytes)
        .sum()
}

/// Makes the child die with SIGKILL when the thread that spawned it (the keeper's main thread) dies.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and only changes the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
