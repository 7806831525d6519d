//! The gVisor OCI bundle (pure) and runsc's command line.

use std::path::Path;

use serde_json::{json, Value};

/// Everything the spec depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GvisorConfig {
    /// The image's root filesystem directory (shared, never written: runsc overlays it in memory).
    pub rootfs: std::path::PathBuf,
    /// vCPU limit (CPU quota).
    pub vcpus: u8,
    /// Memory limit, MiB.
    pub memory_mib: u32,
}

/// The OCI runtime spec for one sandbox: no network namespace peers (runsc `--network=none`), no host
/// mounts but the read-only root, private tmpfs for `/tmp`, `/run` and `/dev/shm`, a fresh devpts.
pub fn oci_spec(c: &GvisorConfig) -> Value {
    let tmpfs = |dest: &str, opts: &[&str]| json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts});
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
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            tmpfs("/dev", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            tmpfs("/dev/shm", &["nosuid", "nodev", "mode=1777", "size=262144k"]),
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            tmpfs("/tmp", &["nosuid", "nodev", "mode=1777"]),
            tmpfs("/run", &["nosuid", "nodev", "mode=755"])
        ],
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
/// needed), no network at all, writes kept in memory.
pub fn runsc_global_args(state_root: &Path, log_dir: &Path) -> Vec<String> {
    let platform = std::env::var("AIRLOCK_RUNSC_PLATFORM")
        .ok()
        .filter(|p| matches!(p.as_str(), "ptrace" | "systrap"))
        .unwrap_or_else(|| "ptrace".into());
    vec![
        format!("--root={}", state_root.display()),
        format!("--platform={platform}"),
        "--network=none".into(),
        "--overlay2=all:memory".into(),
        format!("--debug-log={}/", log_dir.display()),
    ]
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
        let g = runsc_global_args(Path::new("/s/runsc"), Path::new("/s/log"));
        assert!(g.contains(&"--network=none".to_string()));
    }
}
