//! Sandbox lifecycle against real sandboxes: destroy leaves nothing, crashes are cleaned up on the
//! next start, a dead VM is reported as such, and sandboxes are isolated from each other.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use airlock_sandbox::{read_record, BackendChoice, SandboxState};
use airlock_test_kit::e2e::{bin_dir, cache_dir, processes_of, Env};
use airlock_test_kit::{deadline, wait_until_blocking};
use anyhow::{ensure, Context, Result};

fn wait_until(what: &str, timeout: Duration, f: impl FnMut() -> bool) -> Result<()> {
    Ok(wait_until_blocking(deadline(timeout), what, f)?)
}

/// The syscall number of read(2), as `/proc/PID/task/TID/syscall` shows it.
#[cfg(target_arch = "x86_64")]
const SYS_READ: &str = "0";
#[cfg(target_arch = "aarch64")]
const SYS_READ: &str = "63";

/// The threads of process `pid` blocked reading its stdin (the keeper's watchdog waits so for
/// its creator's pipe to close). A process that is gone has none.
fn threads_reading_stdin(pid: u32) -> Result<Vec<String>> {
    let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).context("list the keeper's threads"),
    };
    let mut reading = vec![];
    for task in tasks.flatten() {
        let call = match std::fs::read_to_string(task.path().join("syscall")) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).context("read a keeper thread's syscall"),
        };
        let mut words = call.split_whitespace();
        if words.next() == Some(SYS_READ) && words.next() == Some("0x0") {
            reading.push(task.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(reading)
}

/// The processes inside gVisor sandbox `id` (directory `dir`) as `runsc ps` reports them from the
/// host, not through the guest channel: (pid, parent pid, command).
fn gvisor_processes(dir: &Path, id: &str) -> Result<Vec<(u64, u64, String)>> {
    let out = Command::new("runsc")
        .arg(format!("--root={}", dir.join("runsc").display()))
        .args(["ps", &format!("airlock-{id}")])
        .output()
        .context("run runsc ps")?;
    ensure!(
        out.status.success(),
        "runsc ps: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A table: `UID PID PPID C TTY STIME TIME CMD`, one process a line, no spaces in a column.
    let table = String::from_utf8_lossy(&out.stdout);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no {name} column in runsc ps: {table}"))
    };
    let (pid, ppid, cmd) = (column("PID")?, column("PPID")?, column("CMD")?);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let num = |i: usize| w.get(i).and_then(|v| v.parse().ok());
            Ok((
                num(pid).with_context(|| format!("runsc ps line {l:?}"))?,
                num(ppid).with_context(|| format!("runsc ps line {l:?}"))?,
                w.get(cmd).map(|c| c.to_string()).unwrap_or_default(),
            ))
        })
        .collect()
}

fn kill9(pid: u32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

fn destroy_leaves_nothing(backend: BackendChoice, name: &str) -> Result<()> {
    let env = Env::new(name);
    let sb = env.create(backend)?;
    let dir = sb.dir();
    ensure!(
        !processes_of(&dir).is_empty(),
        "no processes found for a running sandbox"
    );
    let id = sb.record.id.clone();
    drop(sb);
    let out = env.airlock(&["sandbox", "destroy", &id]);
    ensure!(
        out.status.success(),
        "destroy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(!dir.exists(), "{} still exists", dir.display());
    ensure!(
        processes_of(&dir).is_empty(),
        "processes survived destroy: {:?}",
        processes_of(&dir)
    );
    ensure!(
        std::fs::read_dir(env.sandboxes_dir())?.next().is_none(),
        "files left in the state dir"
    );
    let again = env.airlock(&["sandbox", "destroy", &id]);
    ensure!(
        !again.status.success() && String::from_utf8_lossy(&again.stderr).contains("there is no sandbox")
    );
    Ok(())
}

#[test]
fn gvisor_destroy_leaves_no_files_or_processes() -> Result<()> {
    destroy_leaves_nothing(BackendChoice::Gvisor, "destroy-gv")
}

#[test]
fn microvm_destroy_leaves_no_files_or_processes() -> Result<()> {
    destroy_leaves_nothing(BackendChoice::Microvm, "destroy-vm")
}

fn keeper_killed(backend: BackendChoice, name: &str) -> Result<()> {
    let env = Env::new(name);
    let sb = env.create(backend)?;
    let dir = sb.dir();
    let rec = read_record(&dir)?;
    let (keeper, vm) = (
        rec.keeper_pid.context("no keeper pid")?,
        rec.vm_pid.context("no vm pid")?,
    );
    drop(sb);
    kill9(keeper);
    // The VM process is tied to the keeper's life.
    wait_until(
        "the VM process dies with its keeper",
        Duration::from_secs(10),
        || {
            !std::path::Path::new(&format!("/proc/{vm}")).exists()
                || std::fs::read_to_string(format!("/proc/{vm}/stat"))
                    .map(|s| s.contains(") Z"))
                    .unwrap_or(true)
        },
    )?;
    let list = env.airlock(&["sandbox", "list"]);
    let stderr = String::from_utf8_lossy(&list.stderr);
    ensure!(
        stderr.contains(&format!("Cleaned up sandbox {}", rec.id)),
        "next start did not clean up: {stderr}"
    );
    ensure!(!dir.exists(), "the stale sandbox's files are still there");
    ensure!(processes_of(&dir).is_empty(), "orphans: {:?}", processes_of(&dir));
    Ok(())
}

#[test]
fn gvisor_kill_9_of_the_keeper_is_cleaned_up_on_next_start() -> Result<()> {
    keeper_killed(BackendChoice::Gvisor, "kill-gv")
}

#[test]
fn microvm_kill_9_of_the_keeper_is_cleaned_up_on_next_start() -> Result<()> {
    keeper_killed(BackendChoice::Microvm, "kill-vm")
}

/// The CLI is killed while the microVM boots (TCG boot takes seconds, so the window is wide).
#[test]
fn kill_9_of_the_cli_during_create_leaves_nothing() -> Result<()> {
    let env = Env::new("kill-cli");
    airlock_test_kit::e2e::minimal_image();
    let mut cli = Command::new(bin_dir().join("airlock"))
        .args(["sandbox", "create", "--backend", "microvm"])
        .env("AIRLOCK_STATE_DIR", &env.root)
        .env("AIRLOCK_CACHE_DIR", cache_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let sandboxes = env.sandboxes_dir();
    let booting = || -> bool {
        std::fs::read_dir(&sandboxes)
            .map(|rd| {
                rd.flatten().any(|e| {
                    read_record(&e.path())
                        .is_ok_and(|r| r.state == SandboxState::Booting && r.vm_pid.is_some())
                })
            })
            .unwrap_or(false)
    };
    wait_until("the sandbox is booting", Duration::from_secs(60), booting)?;
    kill9(cli.id());
    let _ = cli.wait();
    wait_until("the half-made sandbox is gone", Duration::from_secs(20), || {
        std::fs::read_dir(&sandboxes)
            .map(|mut rd| rd.next().is_none())
            .unwrap_or(false)
    })?;
    wait_until("its processes are gone", Duration::from_secs(10), || {
        processes_of(&env.root).is_empty()
    })?;
    Ok(())
}

#[test]
fn a_sandbox_whose_qemu_died_is_reported_as_exited() -> Result<()> {
    let env = Env::new("qemu-died");
    let sb = env.create(BackendChoice::Microvm)?;
    let rec = read_record(&sb.dir())?;
    kill9(rec.vm_pid.context("no vm pid")?);
    let dir = sb.dir();
    wait_until("the keeper records the exit", Duration::from_secs(10), || {
        read_record(&dir).is_ok_and(|r| r.state == SandboxState::Exited)
    })?;
    let out = env.airlock(&["sandbox", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.contains(&rec.id) && text.contains("exited"),
        "list does not say so:\n{text}"
    );
    ensure!(text.contains("VM process exited"), "no reason shown:\n{text}");
    let screenshot = env.airlock(&["sandbox", "screenshot", &rec.id]);
    ensure!(!screenshot.status.success());
    ensure!(
        String::from_utf8_lossy(&screenshot.stderr).contains("is exited"),
        "{}",
        String::from_utf8_lossy(&screenshot.stderr)
    );
    Ok(())
}

fn isolation(backend: BackendChoice, name: &str) -> Result<()> {
    let env = Env::new(name);
    let a = env.create(backend)?;
    let b = env.create(backend)?;
    a.sh("echo secret-a > /tmp/marker; echo secret-a > /root/marker")?;
    let files = b.sh("cat /tmp/marker /root/marker 2>/dev/null || true")?;
    ensure!(!files.contains("secret-a"), "sandbox B sees A's files: {files}");
    // A marker process lives in A for the length of a concurrent exec.
    std::thread::scope(|scope| -> Result<()> {
        let marker = scope.spawn(|| a.sh("exec sleep 8.555"));
        let count = |sb: &airlock_test_kit::e2e::Sandbox<'_>| -> Result<String> {
            Ok(sb
                .sh("ps -eo args | grep -c '^sleep 8.555' || true")?
                .trim()
                .to_string())
        };
        let seen_in_a = a.wait_for("the marker process in A", Duration::from_secs(30), || {
            Ok((count(&a)? == "1").then_some(()))
        });
        let in_b = count(&b)?;
        marker
            .join()
            .map_err(|_| anyhow::anyhow!("marker thread panicked"))??;
        seen_in_a?;
        ensure!(in_b == "0", "sandbox B sees A's processes ({in_b})");
        Ok(())
    })
}

#[test]
fn gvisor_two_sandboxes_do_not_see_each_other() -> Result<()> {
    isolation(BackendChoice::Gvisor, "iso-gv")
}

#[test]
fn microvm_two_sandboxes_do_not_see_each_other() -> Result<()> {
    isolation(BackendChoice::Microvm, "iso-vm")
}

/// The CLI end to end: create, list, screenshot, exec exit code, destroy.
#[test]
fn cli_create_screenshot_exec_destroy() -> Result<()> {
    let env = Env::new("cli");
    airlock_test_kit::e2e::minimal_image();
    let out = env.airlock(&["sandbox", "create", "--backend", "gvisor"]);
    ensure!(
        out.status.success(),
        "create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout)?.trim().to_string();
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("Backend: gvisor"),
        "the backend choice is not explained"
    );
    let list = env.airlock(&["sandbox", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout)?;
    ensure!(v[0]["id"] == id.as_str() && v[0]["state"] == "running", "{v}");
    ensure!(
        v[0]["rss_bytes"].as_u64().unwrap_or(0) > 10 << 20,
        "no memory figure: {v}"
    );
    let png = env.root.join("shot.png");
    let out = env.airlock(&["sandbox", "screenshot", &id, "-o", png.to_str().context("path")?]);
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&png)?;
    ensure!(bytes.starts_with(b"\x89PNG"));
    ensure!(
        u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) == 1280,
        "PNG width"
    );
    ensure!(
        u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]) == 800,
        "PNG height"
    );
    let out = env.airlock(&["sandbox", "exec", &id, "--", "sh", "-c", "echo hi; exit 3"]);
    ensure!(out.status.code() == Some(3) && out.stdout == b"hi\n", "{out:?}");
    let out = env.airlock(&["sandbox", "click", &id, "2000", "10"]);
    ensure!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("outside the 1280x800 screen")
    );
    let out = env.airlock(&["sandbox", "destroy", &id]);
    ensure!(out.status.success());
    Ok(())
}

/// Regression: the keeper's "creator went away before ready" cleanup once raced with the creator
/// returning after seeing Running, killing a sandbox that had just been handed out. Fast gVisor
/// boots hit that window often; every sandbox created here must stay usable.
#[test]
fn a_created_sandbox_is_always_usable() -> Result<()> {
    let env = Env::new("churn");
    for round in 0..12 {
        let sb = env.create(BackendChoice::Gvisor)?;
        // Creating closed the keeper's stdin: its watchdog wakes, decides (under the record lock)
        // whether the creator left too early, and its thread ends. Wait for that decision before
        // checking, instead of giving a racing cleanup time to strike.
        let keeper = read_record(&sb.dir())?.keeper_pid.context("no keeper pid")?;
        let watchdog = threads_reading_stdin(keeper)?;
        wait_until(
            "the keeper's watchdog decided about its creator",
            Duration::from_secs(10),
            || {
                watchdog
                    .iter()
                    .all(|tid| !Path::new(&format!("/proc/{keeper}/task/{tid}")).exists())
                    && threads_reading_stdin(keeper).is_ok_and(|t| t.is_empty())
            },
        )
        .with_context(|| format!("round {round}"))?;
        sb.client
            .ping()
            .with_context(|| format!("round {round}: the new sandbox's channel"))?;
        ensure!(
            sb.dir().exists(),
            "round {round}: the new sandbox's directory is gone"
        );
        let id = sb.record.id.clone();
        drop(sb);
        env.store.destroy(&id)?;
    }
    Ok(())
}

/// The guest agent is killed inside the sandbox; init starts a new one, and the keeper greets it
/// on the next request, so the sandbox stays usable.
#[test]
fn the_sandbox_recovers_when_its_guest_agent_restarts() -> Result<()> {
    let env = Env::new("agent-restart");
    let sb = env.create(BackendChoice::Gvisor)?;
    let before = sb.sh("pgrep -f '^airlock-guest-agent --channel'")?;
    let old: u64 = before.trim().parse().context("the agent's pid")?;
    let (dir, id) = (sb.dir(), sb.record.id.clone());
    let parent = gvisor_processes(&dir, &id)?
        .into_iter()
        .find(|(pid, _, _)| *pid == old)
        .map(|(_, ppid, _)| ppid)
        .context("runsc ps does not list the guest agent")?;
    // The killer detaches into its own session first (exec kills what stays in its group), and
    // waits in the guest until this exec's reply is out.
    sb.sh(
        "setsid -f sh -c \"sleep 1; pkill -f '^airlock-guest-agent --channel'\" > /dev/null 2>&1; sleep 0.5",
    )?;
    // Watched from the host (runsc ps), not through the channel, so that the next request is the
    // first one after the restart: the old agent is gone and init started a new one.
    wait_until(
        "init restarted the killed guest agent",
        Duration::from_secs(30),
        || {
            gvisor_processes(&dir, &id).is_ok_and(|ps| {
                ps.iter().all(|(pid, _, _)| *pid != old)
                    && ps
                        .iter()
                        .any(|(_, ppid, cmd)| *ppid == parent && cmd.starts_with("airlock-guest"))
            })
        },
    )?;
    sb.client.ping().context("the first request after the restart")?;
    let after = sb.sh("pgrep -f '^airlock-guest-agent --channel'")?;
    ensure!(
        before.trim() != after.trim(),
        "the agent was not restarted ({before:?} -> {after:?})"
    );
    ensure!(sb.client.screenshot()?.width == 1280);
    Ok(())
}
