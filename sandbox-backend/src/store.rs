//! The per-user state directory: one subdirectory per sandbox, holding its record, sockets, overlay
//! and logs. Creating spawns a keeper; destroying kills every process that references the
//! directory and removes it; opening the store cleans up sandboxes whose keeper died.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use airlock_guest_image::Image;

use crate::client::GuestClient;
use crate::procs::{alive_for, kill_all, sandbox_rss};
use crate::state::{SandboxRecord, SandboxState};
use crate::{place, BackendChoice, ChannelError, HostFacts, HostRules, Placement, Shares, StoreError};

const RECORD: &str = "sandbox.json";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads `dir/sandbox.json`.
pub fn read_record(dir: &Path) -> Result<SandboxRecord, StoreError> {
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = fs::read_to_string(dir.join(RECORD)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound(id.clone())
        } else {
            StoreError::Io {
                what: "read",
                path: dir.join(RECORD),
                source: e,
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        id,
        reason: e.to_string(),
    })
}

/// Writes `dir/sandbox.json` atomically (temp file, fsync, rename).
pub fn write_record(dir: &Path, rec: &SandboxRecord) -> Result<(), StoreError> {
    let tmp = dir.join(format!(".{RECORD}.{}", std::process::id()));
    let io = |what, source| StoreError::Io {
        what,
        path: tmp.clone(),
        source,
    };
    let mut f = fs::File::create(&tmp).map_err(|e| io("create", e))?;
    f.write_all(&serde_json::to_vec_pretty(rec).unwrap_or_default())
        .map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("sync", e))?;
    fs::rename(&tmp, dir.join(RECORD)).map_err(|e| io("rename", e))
}

/// How to create a sandbox.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Backend choice.
    pub backend: BackendChoice,
    /// The guest image (built).
    pub image: Image,
    /// vCPUs, 1–16.
    pub vcpus: u8,
    /// Memory, MiB, 256–65536.
    pub memory_mib: u32,
    /// Program + arguments that run the keeper; the sandbox directory is appended.
    pub keeper_command: Vec<String>,
    /// How long the guest may take to answer.
    pub boot_timeout: Duration,
}

/// Is the sandbox's keeper (and so its VM) alive?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Keeper alive.
    Alive,
    /// No keeper: the sandbox's processes are gone.
    Gone,
}

/// A sandbox as `list` reports it.
#[derive(Debug, Clone)]
pub struct SandboxStatus {
    /// The record.
    pub record: SandboxRecord,
    /// Keeper alive?
    pub liveness: Liveness,
    /// RSS of its VM processes, bytes.
    pub rss_bytes: u64,
    /// Time since creation.
    pub uptime: Duration,
}

/// The sandboxes of this user.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `$AIRLOCK_STATE_DIR`, else `$XDG_STATE_HOME/airlock`, else `~/.local/state/airlock`.
    pub fn default_root() -> PathBuf {
        if let Some(d) = std::env::var_os("AIRLOCK_STATE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
            return PathBuf::from(d).join("airlock");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        home.join(".local/state/airlock")
    }

    /// Opens the store and cleans up stale sandboxes; returns the ids it cleaned.
    pub fn open(root: PathBuf) -> Result<(Store, Vec<String>), StoreError> {
        let dir = root.join("sandboxes");
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        let store = Store { root };
        let cleaned = store.clean_stale()?;
        Ok((store, cleaned))
    }

    fn sandboxes(&self) -> PathBuf {
        self.root.join("sandboxes")
    }

    /// The directory of sandbox `id`.
    pub fn dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(StoreError::NotFound(id.to_string()));
        }
        Ok(self.sandboxes().join(id))
    }

    fn ids(&self) -> Result<Vec<String>, StoreError> {
        let d = self.sandboxes();
        let rd = fs::read_dir(&d).map_err(|source| StoreError::Io {
            what: "list",
            path: d.clone(),
            source,
        })?;
        let mut ids: Vec<String> = rd
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn clean_stale(&self) -> Result<Vec<String>, StoreError> {
        let mut cleaned = Vec::new();
        for id in self.ids()? {
            let dir = self.dir(&id)?;
            let stale = match read_record(&dir) {
                // A keeper that died without recording a final state: the sandbox cannot be used.
                Ok(r) => {
                    !r.state.is_final()
                        && !keeper_alive(&r, &dir)
                        && (r.keeper_pid.is_some() || age_ms(&r) > 60_000)
                }
                // No readable record and nothing running: debris of a crash.
                Err(_) => crate::procs::pids_referencing(&dir).is_empty(),
            };
            if stale {
                let survivors = kill_all(&dir, Duration::from_secs(5));
                if survivors.is_empty() {
                    let _ = fs::remove_dir_all(&dir);
                    tracing::info!(%id, "cleaned up a stale sandbox (its keeper died)");
                    cleaned.push(id);
                }
            }
        }
        Ok(cleaned)
    }

    /// Creates and boots a sandbox with nothing shared; returns once its guest agent answered (or
    /// it failed).
    pub fn create(&self, opts: &CreateOptions) -> Result<(SandboxRecord, Placement), StoreError> {
        self.create_with_shares(opts, &Shares::none())
    }

    /// The rules host folders are checked against for this store's sandboxes: this user's homes
    /// and this store's state directory. Pass them to [`Shares::validate`].
    pub fn share_rules(&self) -> HostRules {
        HostRules::for_this_user(&self.root)
    }

    /// Creates and boots a sandbox with host folders shared into it (validated with
    /// [`Store::share_rules`]); returns once its guest agent answered (or it failed).
    pub fn create_with_shares(
        &self,
        opts: &CreateOptions,
        shares: &Shares,
    ) -> Result<(SandboxRecord, Placement), StoreError> {
        if !(1..=16).contains(&opts.vcpus) {
            return Err(StoreError::Invalid(format!(
                "vCPUs must be 1 to 16, not {}",
                opts.vcpus
            )));
        }
        if !(256..=65536).contains(&opts.memory_mib) {
            return Err(StoreError::Invalid(format!(
                "memory must be 256 to 65536 MiB, not {}",
                opts.memory_mib
            )));
        }
        let placement = place(opts.backend, &HostFacts::probe())?;
        shares.check_backend(placement.backend)?;
        let id = new_id()?;
        let final_dir = self.dir(&id)?;
        // Build the directory under a hidden name and rename it, so cleanup never sees it half-made.
        let tmp = self.sandboxes().join(format!(".new-{id}"));
        fs::create_dir_all(&tmp).map_err(|source| StoreError::Io {
            what: "create",
            path: tmp.clone(),
            source,
        })?;
        let rec = SandboxRecord {
            id: id.clone(),
            backend: placement.backend,
            accel: placement.accel,
            placement: placement.reason.clone(),
            profile: opts.image.manifest.profile.clone(),
            image_dir: opts.image.dir.clone(),
            vcpus: opts.vcpus,
            memory_mib: opts.memory_mib,
            created_at_ms: now_ms(),
            state: SandboxState::Creating,
            reason: None,
            keeper_pid: None,
            vm_pid: None,
            boot_ms: None,
            guest: None,
            shares: shares.as_slice().to_vec(),
        };
        write_record(&tmp, &rec)?;
        fs::rename(&tmp, &final_dir).map_err(|source| StoreError::Io {
            what: "rename",
            path: final_dir.clone(),
            source,
        })?;
        let dir = final_dir;

        let log = fs::File::create(dir.join("keeper.log")).map_err(|source| StoreError::Io {
            what: "create",
            path: dir.join("keeper.log"),
            source,
        })?;
        let log2 = log.try_clone().map_err(|source| StoreError::Io {
            what: "open",
            path: dir.join("keeper.log"),
            source,
        })?;
        let (prog, args) = opts
            .keeper_command
            .split_first()
            .ok_or_else(|| StoreError::Invalid("no keeper command".into()))?;
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .arg(&dir)
            .arg(opts.boot_timeout.as_secs().to_string())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let mut keeper = cmd.spawn().map_err(|source| StoreError::Io {
            what: "start the keeper for",
            path: dir.clone(),
            source,
        })?;
        let watchdog = keeper.stdin.take(); // dropped (closed) when we return: the keeper's cue
        let deadline = Instant::now() + opts.boot_timeout + Duration::from_secs(15);
        let result = loop {
            std::thread::sleep(Duration::from_millis(25));
            let r = read_record(&dir)?;
            match r.state {
                SandboxState::Running => break Ok(r),
                SandboxState::Failed | SandboxState::Exited => {
                    break Err(r.reason.unwrap_or_else(|| "no reason recorded".into()));
                }
                SandboxState::Creating | SandboxState::Booting => {}
            }
            if let Ok(Some(status)) = keeper.try_wait() {
                let log = fs::read_to_string(dir.join("keeper.log")).unwrap_or_default();
                break Err(format!("the keeper exited ({status}): {}", log.trim()));
            }
            if Instant::now() > deadline {
                break Err(format!("it did not start within {:?}", opts.boot_timeout));
            }
        };
        drop(watchdog);
        match result {
            Ok(r) => {
                // Reap the keeper when it eventually exits, without blocking.
                std::thread::spawn(move || keeper.wait());
                Ok((r, placement))
            }
            Err(reason) => {
                let _ = keeper.kill();
                let _ = keeper.wait();
                let _ = self.destroy(&id);
                Err(StoreError::StartFailed { id, reason })
            }
        }
    }

    /// Every sandbox with its liveness and memory.
    pub fn list(&self) -> Result<Vec<SandboxStatus>, StoreError> {
        let mut out = Vec::new();
        for id in self.ids()? {
            match self.status(&id) {
                Ok(s) => out.push(s),
                Err(StoreError::NotFound(_)) => {} // destroyed meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// One sandbox's status.
    pub fn status(&self, id: &str) -> Result<SandboxStatus, StoreError> {
        let dir = self.dir(id)?;
        let record = read_record(&dir)?;
        let alive = keeper_alive(&record, &dir);
        Ok(SandboxStatus {
            liveness: if alive { Liveness::Alive } else { Liveness::Gone },
            rss_bytes: if alive {
                sandbox_rss(&dir, record.keeper_pid)
            } else {
                0
            },
            uptime: Duration::from_millis(age_ms(&record)),
            record,
        })
    }

    /// Kills every process of the sandbox and removes all its files.
    pub fn destroy(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.dir(id)?;
        if !dir.exists() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let survivors = kill_all(&dir, Duration::from_secs(10));
        if !survivors.is_empty() {
            return Err(StoreError::Survivors {
                id: id.to_string(),
                pids: survivors,
            });
        }
        fs::remove_dir_all(&dir).map_err(|source| StoreError::Io {
            what: "remove",
            path: dir,
            source,
        })
    }

    /// Connects to a running sandbox's guest agent.
    pub fn connect(&self, id: &str) -> Result<GuestClient, StoreError> {
        // Only liveness matters here: no need for `status`, which also sums RSS over /proc.
        let dir = self.dir(id)?;
        let record = read_record(&dir)?;
        let alive = keeper_alive(&record, &dir);
        match (record.state, alive) {
            (SandboxState::Running, true) => {}
            (state, _) => {
                return Err(StoreError::Invalid(format!(
                    "sandbox {id} is {}{}",
                    if !alive && !state.is_final() {
                        "dead (its keeper is gone), was "
                    } else {
                        ""
                    },
                    state.name()
                )))
            }
        }
        GuestClient::connect(&dir.join("keeper.sock"), id).map_err(|e: ChannelError| {
            StoreError::StartFailed {
                id: id.to_string(),
                reason: e.to_string(),
            }
        })
    }
}

fn keeper_alive(r: &SandboxRecord, dir: &Path) -> bool {
    r.keeper_pid.is_some_and(|p| alive_for(p, dir))
}

fn age_ms(r: &SandboxRecord) -> u64 {
    now_ms().saturating_sub(r.created_at_ms)
}

fn new_id() -> Result<String, StoreError> {
    let mut b = [0u8; 4];
    let mut f = fs::File::open("/dev/urandom").map_err(|source| StoreError::Io {
        what: "open",
        path: "/dev/urandom".into(),
        source,
    })?;
    std::io::Read::read_exact(&mut f, &mut b).map_err(|source| StoreError::Io {
        what: "read",
        path: "/dev/urandom".into(),
        source,
    })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
