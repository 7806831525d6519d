//! The end-to-end harness: real sandboxes in a private state directory per test, built from the
//! workspace's own `airlock` and `airlock-guest-agent` binaries (`cargo build --workspace --bins`
//! first; the README's test command does that), `airlock serve` driven through its API
//! ([`serve`]), local upstream servers for network tests ([`upstream`]), a scripted model API in place of
//! Anthropic's and OpenAI's ([`model_api`]), ledger entries read back as typed records ([`records`]).

pub mod model_api;
pub mod records;
pub mod serve;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use airlock_guest_image::{BuildInputs, Image, Profile};
use airlock_protocol::ExecRequest;
use airlock_sandbox::{BackendChoice, CreateOptions, GuestClient, SandboxRecord, Store};
use anyhow::{bail, Context, Result};

/// The directory holding the workspace's binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for b in ["airlock", "airlock-guest-agent"] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: run `cargo build --workspace --bins` first",
            dir.join(b).display()
        );
    }
    dir
}

/// The image cache shared by all tests (the user's, unless `AIRLOCK_CACHE_DIR` is set).
pub fn cache_dir() -> PathBuf {
    airlock_guest_image::default_cache_dir()
}

/// The image of `profile` (built once per test process; the builder's lock serialises processes).
pub fn image(profile: Profile) -> Image {
    static IMAGES: OnceLock<std::sync::Mutex<Vec<Image>>> = OnceLock::new();
    let cache = IMAGES.get_or_init(Default::default);
    let mut built = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(img) = built.iter().find(|i| i.manifest.profile == profile.name()) {
        return img.clone();
    }
    let inputs = BuildInputs {
        profile,
        cache_dir: cache_dir(),
        agent_binary: bin_dir().join("airlock-guest-agent"),
    };
    let img = airlock_guest_image::build(&inputs, &mut |_| {}).expect("build the image");
    built.push(img.clone());
    img
}

/// The minimal image.
pub fn minimal_image() -> Image {
    image(Profile::Minimal)
}

/// Runs the `airlock` CLI with state dir `root`.
pub fn airlock_in(root: &Path, args: &[&str]) -> Output {
    Command::new(bin_dir().join("airlock"))
        .args(args)
        .env("AIRLOCK_STATE_DIR", root)
        .env("AIRLOCK_CACHE_DIR", cache_dir())
        .output()
        .expect("run airlock")
}

/// [`Env::guest_sh`] for state dir `root` (usable from another thread).
pub fn guest_sh_in(root: &Path, sb: &str, script: &str) -> Result<String> {
    let out = airlock_in(root, &["sandbox", "exec", sb, "--", "sh", "-c", script]);
    if !out.status.success() {
        bail!(
            "`{script}` failed in the guest: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A private state directory (removed on drop, after destroying what is left in it).
pub struct Env {
    /// The state dir.
    pub root: PathBuf,
    /// The store on it.
    pub store: Store,
}

impl Env {
    /// A fresh state directory under /tmp (short paths: unix sockets live there).
    pub fn new(name: &str) -> Env {
        let root = PathBuf::from(format!("/tmp/airlock-t-{}-{}", name, std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (store, _) = Store::open(root.clone()).expect("open store");
        Env { root, store }
    }

    /// Creates a sandbox on `backend` from the minimal image.
    pub fn create(&self, backend: BackendChoice) -> Result<Sandbox<'_>> {
        self.create_from(backend, Profile::Minimal)
    }

    /// Creates a sandbox on `backend` from `profile`'s image.
    pub fn create_from(&self, backend: BackendChoice, profile: Profile) -> Result<Sandbox<'_>> {
        let opts = CreateOptions {
            backend,
            image: image(profile),
            vcpus: 1,
            memory_mib: 1024,
            keeper_command: vec![bin_dir().join("airlock").display().to_string(), "__keeper".into()],
            boot_timeout: Duration::from_secs(300),
        };
        let (record, _) = self.store.create(&opts)?;
        let client = self.store.connect(&record.id)?;
        Ok(Sandbox {
            env: self,
            record,
            client,
        })
    }

    /// Runs the `airlock` CLI with this state dir.
    pub fn airlock(&self, args: &[&str]) -> Output {
        airlock_in(&self.root, args)
    }

    /// Runs `sh -c script` in sandbox `sb` through the CLI (the operator's tool: no policy, no
    /// ledger); returns stdout, and fails on a non-zero exit.
    pub fn guest_sh(&self, sb: &str, script: &str) -> Result<String> {
        guest_sh_in(&self.root, sb, script)
    }

    /// `airlock ledger verify` on this state dir must pass; the error carries its report.
    pub fn ledger_verifies(&self) -> Result<()> {
        let out = self.airlock(&["ledger", "verify"]);
        if !out.status.success() {
            bail!(
                "the ledger does not verify: {}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(())
    }

    /// Directory of the sandboxes.
    pub fn sandboxes_dir(&self) -> PathBuf {
        self.root.join("sandboxes")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(all) = self.store.list() {
            for s in all {
                // A sandbox that died during a test: show why before its files go.
                if s.record.state != airlock_sandbox::SandboxState::Running
                    || s.liveness != airlock_sandbox::Liveness::Alive
                {
                    let dir = self.sandboxes_dir().join(&s.record.id);
                    eprintln!(
                        "sandbox {} is {:?} ({:?}): {}",
                        s.record.id,
                        s.record.state,
                        s.liveness,
                        s.record.reason.as_deref().unwrap_or("no reason recorded")
                    );
                    for log in ["keeper.log", "console.log", "qemu.log"] {
                        if let Ok(text) = std::fs::read_to_string(dir.join(log)) {
                            let lines: Vec<&str> = text.lines().collect();
                            eprintln!(
                                "--- {log} (last lines)\n{}",
                                lines[lines.len().saturating_sub(20)..].join("\n")
                            );
                        }
                    }
                }
                // Keep the logs for a post-mortem: destroy removes the sandbox directory.
                let keep = PathBuf::from("/tmp/airlock-test-logs");
                let _ = std::fs::create_dir_all(&keep);
                for log in ["keeper.log", "console.log"] {
                    let from = self.sandboxes_dir().join(&s.record.id).join(log);
                    let name = self
                        .root
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let _ = std::fs::copy(&from, keep.join(format!("{name}-{}-{log}", s.record.id)));
                }
                let _ = self.store.destroy(&s.record.id);
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A running sandbox with a connected client.
pub struct Sandbox<'a> {
    /// Its environment.
    pub env: &'a Env,
    /// Its record at creation.
    pub record: SandboxRecord,
    /// Connected client.
    pub client: GuestClient,
}

impl Sandbox<'_> {
    /// Its directory.
    pub fn dir(&self) -> PathBuf {
        self.env.store.dir(&self.record.id).expect("dir")
    }

    /// Runs `sh -c script` in the guest; fails unless it exits 0. Returns stdout.
    pub fn sh(&self, script: &str) -> Result<String> {
        let r = self.client.exec(ExecRequest {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            stdin: vec![],
            timeout_ms: 60_000,
            output_cap: 1 << 20,
        })?;
        if r.exit_code != Some(0) {
            bail!(
                "`{script}` failed (exit {:?}, signal {:?}, timed out {}): {}{}",
                r.exit_code,
                r.signal,
                r.timed_out,
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&r.stdout).into_owned())
    }

    /// Polls `f` until it returns `Some`, for up to `timeout`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        f: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        poll(what, timeout, f)
    }
}

/// Polls `f` every 200 ms until it returns `Some`, for up to `timeout` (blocking).
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Both backends this host can run, for tests that must cover each.
pub fn backends() -> [BackendChoice; 2] {
    [BackendChoice::Gvisor, BackendChoice::Microvm]
}

/// Pids of processes whose command line mentions `dir`.
pub fn processes_of(dir: &Path) -> Vec<u32> {
    airlock_sandbox::procs::pids_referencing(dir)
}

/// The guest shell command that prints the pointer position (xdotool's `--shell` format).
pub const POINTER_SCRIPT: &str = "DISPLAY=:0 xdotool getmouselocation --shell";

/// Reads the pointer position from inside the guest (xdotool), not from the agent's reply.
pub fn guest_pointer(sb: &Sandbox<'_>) -> Result<(u16, u16)> {
    parse_pointer(&sb.sh(POINTER_SCRIPT)?)
}

/// The X and Y of `xdotool getmouselocation --shell` output.
pub fn parse_pointer(out: &str) -> Result<(u16, u16)> {
    let get = |k: &str| -> Result<u16> {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .context(format!("no {k} in {out:?}"))?
            .trim()
            .parse()
            .context("not a number")
    };
    Ok((get("X")?, get("Y")?))
}

/// Polls the future `f` makes every 200 ms until it returns `Some`, for up to `timeout` (async
/// [`poll`]).
pub async fn poll_async<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
