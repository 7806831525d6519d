//! The gVisor OCI bundle (pure) and runsc's command line.

use std::path::Path;

use serde_json::{json, Value};

use crate::Share;

/// Everything the spec depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GvisorConfig {
    /// The image's root filesystem directory (shared, never written: runsc overlays it in memory).
    pub rootfs: std::path::PathBuf,
    /// vCPU limit (CPU quota).
    pub vcpus: u8,
    /// Memory limit, MiB.
    pub memory_mib: u32,
    /// Validated host folders to bind into the sandbox.
    pub shares: Vec<Share>,
}

/// The OCI runtime spec for one sandbox: no network namespace peers (runsc `--network=none`), no host
/// mounts but the read-only root and the granted shares, private tmpfs for `/tmp`, `/run` and
/// `/dev/shm`, a fresh devpts.
///
/// Each share is a bind mount, `ro` unless writable (and with a read-only share directfs is off:
/// see [`runsc_global_args`]). Writable shares never reach a gVisor sandbox: the store and the
/// launcher refuse them ([`crate::Shares::check_backend`]), because runsc writes the sandbox's
/// owners and set-user-ID bits onto the host. runsc's gofer serves a share: the sentry walks
/// paths itself and the gofer opens one component at a time relative to the share's directory
/// without following symlinks, so a symlink in the share (made by the host or by the sandbox)
/// resolves inside the sandbox's own root, never on the host (tested in `tests/shares.rs`).
pub fn oci_spec(c: &GvisorConfig) -> Value {
    let tmpfs = |dest: &str, opts: &[&str]| json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts});
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        tmpfs("/dev", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        tmpfs("/dev/shm", &["nosuid", "nodev", "mode=1777", "size=262144k"]),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        tmpfs("/tmp", &["nosuid", "nodev", "mode=1777"]),
        tmpfs("/run", &["nosuid", "nodev", "mode=755"]),
    ];
    mounts.extend(c.shares.iter().map(|s| {
        json!({
            "destination": s.guest.display().to_string(),
            "type": "bind",
            "source": s.host.display().to_string(),
            "options": ["rbind", "nosuid", "nodev", if s.writable { "rw" } else { "ro" }],
        })
    }));
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/usr/sbin/airlock-init"],
            "env": [
                "PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
                "AIRLOCK_CHANNEL=stdio"
            ],
            "cwd": "/",
            "noNewPrivileges": true,
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"],
                "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"],
                "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}]
        },
        "root": {"path": c.rootfs.display().to_string(), "readonly": false},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}
            ],
            "resources": {
                "memory": {"limit": u64::from(c.memory_mib) * 1024 * 1024},
                "cpu": {"quota": i64::from(c.vcpus) * 100_000, "period": 100_000}
            }
        }
    })
}

/// runsc's global flags: the platform (`$AIRLOCK_RUNSC_PLATFORM`, default ptrace: no KVM
/// needed), no network at all, writes to the root filesystem kept in memory.
///
/// The overlay covers the root only (`root:memory`): with `all:memory` runsc also overlays bind
/// mounts (measured with runsc 20240729: a writable share's writes landed in memory instead of
/// the host folder, back when gVisor sandboxes had writable shares).
///
/// With a read-only share, directfs is off (`--directfs=false`: the gofer opens files for the
/// sandbox): with directfs, runsc 20240729 honours `ro` for creating, appending, removing and
/// linking, but an `O_TRUNC` open of an existing file truncated the host's file to 0 bytes before
/// the write was refused (`tests/shares.rs`). Sandboxes without read-only shares keep directfs.
pub fn runsc_global_args(state_root: &Path, log_dir: &Path, read_only_shares: bool) -> Vec<String> {
    let platform = std::env::var("AIRLOCK_RUNSC_PLATFORM")
        .ok()
        .filter(|p| matches!(p.as_str(), "ptrace" | "systrap"))
        .unwrap_or_else(|| "ptrace".into());
    let mut args = vec![
        format!("--root={}", state_root.display()),
        format!("--platform={platform}"),
        "--network=none".into(),
        "--overlay2=root:memory".into(),
        format!("--debug-log={}/", log_dir.display()),
    ];
    if read_only_shares {
        args.push("--directfs=false".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_is_closed() {
        let s = oci_spec(&GvisorConfig {
            rootfs: "/cache/rootfs".into(),
            vcpus: 2,
            memory_mib: 512,
            shares: vec![],
        });
        assert_eq!(s["root"]["path"], "/cache/rootfs");
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 512u64 * 1024 * 1024);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 200_000);
        let mounts = s["mounts"].as_array().expect("mounts");
        // No bind mounts of host paths.
        assert!(mounts.iter().all(|m| m["type"] != "bind"
            && m["options"]
                .as_array()
                .is_none_or(|o| !o.contains(&json!("bind")))));
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/tmp" && m["type"] == "tmpfs"));
        assert!(s["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .contains(&json!({"type": "network"})));
        let g = runsc_global_args(Path::new("/s/runsc"), Path::new("/s/log"), false);
        assert!(g.contains(&"--network=none".to_string()));
        assert!(
            !g.iter().any(|a| a.starts_with("--directfs")),
            "directfs stays on without read-only shares"
        );
    }

    #[test]
    fn shares_are_bind_mounts_read_only_unless_writable() {
        let share = |host: &str, guest: &str, writable| Share {
            host: host.into(),
            guest: guest.into(),
            writable,
        };
        let s = oci_spec(&GvisorConfig {
            rootfs: "/cache/rootfs".into(),
            vcpus: 1,
            memory_mib: 512,
            shares: vec![share("/srv/in", "/data", false), share("/srv/out", "/out", true)],
        });
        let mounts = s["mounts"].as_array().expect("mounts");
        let binds: Vec<&Value> = mounts.iter().filter(|m| m["type"] == "bind").collect();
        assert_eq!(binds.len(), 2);
        assert_eq!(binds[0]["source"], "/srv/in");
        assert_eq!(binds[0]["destination"], "/data");
        assert_eq!(binds[0]["options"], json!(["rbind", "nosuid", "nodev", "ro"]));
        assert_eq!(binds[1]["destination"], "/out");
        assert_eq!(binds[1]["options"], json!(["rbind", "nosuid", "nodev", "rw"]));
        // Shares come after /tmp and the other runtime mounts they might sit under.
        let tmp = mounts
            .iter()
            .position(|m| m["destination"] == "/tmp")
            .expect("tmp");
        let first = mounts.iter().position(|m| m["type"] == "bind").expect("bind");
        assert!(tmp < first);
        // Only the root is overlaid, not the shares.
        let g = runsc_global_args(Path::new("/s/runsc"), Path::new("/s/log"), true);
        assert!(g.contains(&"--overlay2=root:memory".to_string()), "{g:?}");
        // A read-only share cannot be truncated through directfs: the gofer opens files.
        assert!(g.contains(&"--directfs=false".to_string()), "{g:?}");
    }
}
