//! The [`SandboxBackend`] trait and its two implementations.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_guest_image::Image;

use crate::gvisor::{oci_spec, runsc_global_args, GvisorConfig};
use crate::procs::die_with_parent;
use crate::qemu::{qemu_args, virtiofsd_args, QemuConfig, VirtiofsListen, VirtiofsShare};
use crate::store::read_record;
use crate::{folder_owner, on_path, Accel, BackendKind, LaunchError, Share, ShareError};

/// What a backend needs to start one sandbox.
#[derive(Debug, Clone)]
pub struct LaunchSpec<'a> {
    /// Sandbox id.
    pub id: &'a str,
    /// The sandbox's private directory (sockets, overlay, logs).
    pub dir: &'a Path,
    /// The guest image.
    pub image: &'a Image,
    /// vCPU limit.
    pub vcpus: u8,
    /// Memory limit, MiB.
    pub memory_mib: u32,
}

/// A started sandbox: its main process and a byte stream to the guest agent.
pub struct Launched {
    /// QEMU, or `runsc run`.
    pub child: Child,
    /// Guest → host bytes.
    pub reader: Box<dyn Read + Send>,
    /// Host → guest bytes.
    pub writer: Box<dyn Write + Send>,
    /// Where the guest's console/log output goes.
    pub console: PathBuf,
}

/// A way to run sandboxes. Implementations must start the sandbox with nothing granted: no network,
/// no host files but the image and the shares its record grants, resource limits applied.
pub trait SandboxBackend {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Starts the sandbox's processes. Called on the keeper's main thread: children may be tied
    /// to its lifetime.
    fn launch(&self, spec: &LaunchSpec<'_>) -> Result<Launched, LaunchError>;
}

/// The backend for a record.
pub fn backend_for(kind: BackendKind, accel: Option<Accel>) -> Result<Box<dyn SandboxBackend>, LaunchError> {
    match kind {
        BackendKind::Microvm => Ok(Box::new(Microvm {
            accel: accel.ok_or(LaunchError::NoAccel)?,
        })),
        BackendKind::Gvisor => Ok(Box::new(Gvisor)),
    }
}

/// QEMU microVMs.
pub struct Microvm {
    /// KVM or TCG.
    pub accel: Accel,
}

impl SandboxBackend for Microvm {
    fn kind(&self) -> BackendKind {
        BackendKind::Microvm
    }

    fn launch(&self, spec: &LaunchSpec<'_>) -> Result<Launched, LaunchError> {
        let overlay = spec.dir.join("overlay.qcow2");
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(spec.image.ext4())
            .arg(&overlay)
            .output()
            .map_err(|source| LaunchError::Spawn {
                program: "qemu-img".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(LaunchError::Tool {
                tool: "qemu-img create".into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let shares = recorded_shares(spec.dir)?
            .into_iter()
            .enumerate()
            .map(|(i, share)| VirtiofsShare {
                socket: spec.dir.join(format!("fs{i}.sock")),
                share,
            })
            .collect::<Vec<_>>();
        for (i, v) in shares.iter().enumerate() {
            start_virtiofsd(v, &spec.dir.join(format!("virtiofsd{i}.log")))?;
        }
        let cfg = QemuConfig {
            accel: self.accel,
            machine: crate::qemu::Machine::for_accel(self.accel),
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            kernel: spec.image.kernel(),
            initramfs: spec.image.initramfs(),
            overlay,
            agent_socket: spec.dir.join("agent.sock"),
            qmp_socket: spec.dir.join("qmp.sock"),
            console_log: spec.dir.join("console.log"),
            tcg_tb_mib: std::env::var("AIRLOCK_TCG_TB_MIB")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(crate::qemu::DEFAULT_TCG_TB_MIB),
            shares,
        };
        let stderr = log_file(&spec.dir.join("qemu.log"))?;
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(qemu_args(&cfg))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut child = die_with_parent(&mut cmd)
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                program: "qemu-system-x86_64".into(),
                source,
            })?;
        // QEMU creates the socket while it initialises (~0.1 s); connect as soon as it is there.
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(&cfg.agent_socket) {
                Ok(s) => break s,
                Err(_) if start.elapsed() < Duration::from_secs(30) => {
                    if let Some(status) = child.try_wait().ok().flatten() {
                        let log = fs::read_to_string(spec.dir.join("qemu.log")).unwrap_or_default();
                        return Err(LaunchError::Exited {
                            status: status.to_string(),
                            console: log,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => {
                    let _ = child.kill();
                    return Err(LaunchError::Timeout {
                        what: "QEMU agent socket",
                        after: start.elapsed(),
                    });
                }
            }
        };
        let reader = stream.try_clone().map_err(|source| LaunchError::Io {
            what: "clone",
            path: cfg.agent_socket.clone(),
            source,
        })?;
        Ok(Launched {
            child,
            reader: Box::new(reader),
            writer: Box::new(stream),
            console: cfg.console_log,
        })
    }
}

/// gVisor (runsc, ptrace platform).
pub struct Gvisor;

impl SandboxBackend for Gvisor {
    fn kind(&self) -> BackendKind {
        BackendKind::Gvisor
    }

    fn launch(&self, spec: &LaunchSpec<'_>) -> Result<Launched, LaunchError> {
        let bundle = spec.dir.join("bundle");
        let root = spec.dir.join("runsc");
        let logs = spec.dir.join("runsc-logs");
        for d in [&bundle, &root, &logs] {
            fs::create_dir_all(d).map_err(|source| LaunchError::Io {
                what: "create",
                path: d.clone(),
                source,
            })?;
        }
        let cfg = GvisorConfig {
            rootfs: spec.image.rootfs(),
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            shares: recorded_shares(spec.dir)?,
        };
        let config = bundle.join("config.json");
        fs::write(
            &config,
            serde_json::to_vec_pretty(&oci_spec(&cfg)).unwrap_or_default(),
        )
        .map_err(|source| LaunchError::Io {
            what: "write",
            path: config.clone(),
            source,
        })?;
        if let Some(s) = cfg.shares.iter().find(|s| s.writable) {
            // Refused when the sandbox was made; a record edited since is refused again.
            return Err(ShareError::WritableOnGvisor(s.host.clone()).into());
        }
        let console = spec.dir.join("console.log");
        let mut cmd = Command::new("runsc");
        let read_only_shares = cfg.shares.iter().any(|s| !s.writable);
        cmd.args(runsc_global_args(&root, &logs, read_only_shares))
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(format!("airlock-{}", spec.id))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file(&console)?);
        let mut child = die_with_parent(&mut cmd)
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                program: "runsc".into(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(LaunchError::Tool {
                tool: "runsc".into(),
                detail: "no stdio pipes".into(),
            });
        };
        Ok(Launched {
            child,
            reader: Box::new(stdout),
            writer: Box::new(stdin),
            console,
        })
    }
}

/// The shares the sandbox's record grants (validated when it was created), checked again: each
/// host folder must still be a directory at the same canonical path, so a folder swapped for a
/// symlink since creation is not followed.
fn recorded_shares(dir: &Path) -> Result<Vec<Share>, LaunchError> {
    let record = read_record(dir).map_err(|e| LaunchError::Tool {
        tool: "reading the sandbox's shares".into(),
        detail: e.to_string(),
    })?;
    for s in &record.shares {
        let now = fs::canonicalize(&s.host).map_err(|source| LaunchError::Io {
            what: "resolve the shared folder",
            path: s.host.clone(),
            source,
        })?;
        if now != s.host || !now.is_dir() {
            return Err(LaunchError::Tool {
                tool: "checking the shares".into(),
                detail: format!(
                    "the shared folder {} changed since the sandbox was created (it now resolves to {})",
                    s.host.display(),
                    now.display()
                ),
            });
        }
    }
    Ok(record.shares)
}

/// The virtiofsd program: `$AIRLOCK_VIRTIOFSD`, `virtiofsd` on PATH, or where distributions put it
/// (`/usr/libexec/virtiofsd`, `/usr/lib/qemu/virtiofsd`).
pub fn virtiofsd_program() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AIRLOCK_VIRTIOFSD") {
        return Some(PathBuf::from(p));
    }
    if on_path("virtiofsd") {
        return Some(PathBuf::from("virtiofsd"));
    }
    ["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Starts the virtiofsd for one share, tied to the keeper's life, and waits for its socket. It
/// exits by itself when QEMU disconnects.
fn start_virtiofsd(v: &VirtiofsShare, log: &Path) -> Result<(), LaunchError> {
    let program = virtiofsd_program().ok_or_else(|| LaunchError::Spawn {
        program: "virtiofsd".into(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not installed (shares on the microvm backend need it; see scripts/setup)",
        ),
    })?;
    let _ = fs::remove_file(&v.socket);
    let mut cmd = Command::new(&program);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(log)?);
    // A writable share's virtiofsd runs as the folder's owner, so the host kernel keeps the
    // sandbox to that owner's rights: it cannot hand a file to root or leave a set-user-ID root
    // program behind. It could not make its socket in the sandbox's directory, so it inherits
    // one listening there. A read-only share's runs as root, refusing every write itself.
    let listener = if v.share.writable {
        let (uid, gid) = folder_owner(&v.share.host)?;
        if uid == 0 {
            return Err(ShareError::WritableOwnedByRoot(v.share.host.clone()).into());
        }
        let listener =
            std::os::unix::net::UnixListener::bind(&v.socket).map_err(|source| LaunchError::Io {
                what: "listen on",
                path: v.socket.clone(),
                source,
            })?;
        cmd.args(virtiofsd_args(&v.share, VirtiofsListen::Fd(INHERITED_FD)))
            .uid(uid)
            .gid(gid);
        inherit_fd(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(&listener), INHERITED_FD);
        Some(listener)
    } else {
        cmd.args(virtiofsd_args(&v.share, VirtiofsListen::Socket(&v.socket)));
        None
    };
    let mut child = die_with_parent(&mut cmd)
        .spawn()
        .map_err(|source| LaunchError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    // The child holds its own copy of the listening socket.
    drop(listener);
    let start = Instant::now();
    while !v.socket.exists() {
        if let Some(status) = child.try_wait().ok().flatten() {
            return Err(LaunchError::Exited {
                status: format!("virtiofsd for {}: {status}", v.share.host.display()),
                console: fs::read_to_string(log).unwrap_or_default(),
            });
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return Err(LaunchError::Timeout {
                what: "virtiofsd socket",
                after: start.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Reap it when it exits (after QEMU disconnects, or with the keeper).
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// The descriptor a writable share's virtiofsd finds its listening socket on.
const INHERITED_FD: i32 = 3;

/// Makes the child find `fd` as descriptor `as_fd` (open across exec).
fn inherit_fd(cmd: &mut Command, fd: i32, as_fd: i32) {
    // SAFETY: dup2 is async-signal-safe; it only changes the child's own descriptor table, and
    // the descriptor it makes has no close-on-exec flag.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear the flag instead.
            let r = if fd == as_fd {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, as_fd)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn log_file(p: &Path) -> Result<fs::File, LaunchError> {
    fs::File::create(p).map_err(|source| LaunchError::Io {
        what: "create",
        path: p.to_path_buf(),
        source,
    })
}
