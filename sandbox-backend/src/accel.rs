//! Which accelerator QEMU can use on this host, and which backend `auto` picks.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// Software emulation (10–50x slower, works everywhere).
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// What the host offers, as read by [`HostFacts::probe`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `/dev/kvm` exists and can be opened read-write.
    pub kvm_device: bool,
    /// The `kvm_pvm` module (software nested virtualization) provides /dev/kvm.
    pub kvm_pvm: bool,
    /// The CPU advertises VMX or SVM.
    pub cpu_virt: bool,
    /// `qemu-system-x86_64` is on PATH.
    pub qemu: bool,
    /// `runsc` is on PATH.
    pub runsc: bool,
}

impl HostFacts {
    /// Reads the facts from this host.
    pub fn probe() -> HostFacts {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_virt = cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        HostFacts {
            kvm_device: std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok(),
            kvm_pvm: Path::new("/sys/module/kvm_pvm").exists(),
            cpu_virt,
            qemu: on_path("qemu-system-x86_64"),
            runsc: on_path("runsc"),
        }
    }

    /// The accelerator QEMU should use, and why.
    pub fn accel(&self) -> (Accel, String) {
        if !self.kvm_device {
            return (Accel::Tcg, "no usable /dev/kvm on this host".into());
        }
        if self.kvm_pvm {
            return (
                Accel::Tcg,
                "/dev/kvm is kvm_pvm (software nested virtualization): ordinary guest kernels crash under it"
                    .into(),
            );
        }
        if !self.cpu_virt {
            return (Accel::Tcg, "the CPU advertises neither VMX nor SVM".into());
        }
        (
            Accel::Kvm,
            "hardware virtualization is available (/dev/kvm, VMX/SVM)".into(),
        )
    }
}

/// Looks for an executable on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Backend the user asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    #[default]
    /// Pick the best available.
    Auto,
    /// QEMU microVM.
    Microvm,
    /// gVisor.
    Gvisor,
}

impl BackendChoice {
    /// The choice's name, as on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Microvm => "microvm",
            BackendChoice::Gvisor => "gvisor",
        }
    }
}

/// The name is not `auto`, `microvm` or `gvisor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend must be auto, microvm or gvisor, not {0:?}")]
pub struct UnknownBackend(pub String);

impl std::str::FromStr for BackendChoice {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<BackendChoice, UnknownBackend> {
        [BackendChoice::Auto, BackendChoice::Microvm, BackendChoice::Gvisor]
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

/// The backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// QEMU microVM.
    Microvm,
    /// gVisor (runsc).
    Gvisor,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Microvm => "microvm",
            BackendKind::Gvisor => "gvisor",
        })
    }
}

/// A decision: which backend, which accelerator (for microVMs), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Backend.
    pub backend: BackendKind,
    /// Accelerator (microVM only).
    pub accel: Option<Accel>,
    /// Why, in a sentence for the user.
    pub reason: String,
}

/// Why no backend fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The requested backend's program is missing.
    #[error("the {backend} backend needs {program}, which is not installed (run scripts/setup)")]
    Missing {
        /// Backend.
        backend: BackendKind,
        /// Program.
        program: &'static str,
    },
    /// Nothing is installed.
    #[error("no sandbox backend is available: install qemu-system-x86 or runsc (run scripts/setup)")]
    Nothing,
}

/// `auto` picks microVM+KVM where usable, else gVisor, else microVM+TCG.
pub fn place(choice: BackendChoice, facts: &HostFacts) -> Result<Placement, PlacementError> {
    let (accel, why) = facts.accel();
    let microvm = |reason: String| -> Result<Placement, PlacementError> {
        if !facts.qemu {
            return Err(PlacementError::Missing {
                backend: BackendKind::Microvm,
                program: "qemu-system-x86_64",
            });
        }
        Ok(Placement {
            backend: BackendKind::Microvm,
            accel: Some(accel),
            reason,
        })
    };
    let gvisor = |reason: String| -> Result<Placement, PlacementError> {
        if !facts.runsc {
            return Err(PlacementError::Missing {
                backend: BackendKind::Gvisor,
                program: "runsc",
            });
        }
        Ok(Placement {
            backend: BackendKind::Gvisor,
            accel: None,
            reason,
        })
    };
    match choice {
        BackendChoice::Microvm => microvm(format!("microvm requested; accelerator {accel}: {why}")),
        BackendChoice::Gvisor => gvisor("gvisor requested".into()),
        BackendChoice::Auto => match accel {
            Accel::Kvm if facts.qemu => microvm(format!("auto: microVM with KVM ({why})")),
            _ if facts.runsc => gvisor(format!("auto: gVisor, because KVM is not usable ({why})")),
            _ if facts.qemu => microvm(format!(
                "auto: microVM under TCG emulation (slow): {why}, and runsc is missing"
            )),
            _ => Err(PlacementError::Nothing),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kvm_device: bool, kvm_pvm: bool, cpu_virt: bool, qemu: bool, runsc: bool) -> HostFacts {
        HostFacts {
            kvm_device,
            kvm_pvm,
            cpu_virt,
            qemu,
            runsc,
        }
    }

    #[test]
    fn kvm_pvm_means_tcg() {
        let (a, why) = facts(true, true, false, true, true).accel();
        assert_eq!(a, Accel::Tcg);
        assert!(why.contains("kvm_pvm"));
        assert_eq!(facts(true, false, true, true, true).accel().0, Accel::Kvm);
        assert_eq!(facts(false, false, true, true, true).accel().0, Accel::Tcg);
        assert_eq!(facts(true, false, false, true, true).accel().0, Accel::Tcg);
    }

    #[test]
    fn auto_order() {
        let p = place(BackendChoice::Auto, &facts(true, false, true, true, true)).expect("ok");
        assert_eq!((p.backend, p.accel), (BackendKind::Microvm, Some(Accel::Kvm)));
        let p = place(BackendChoice::Auto, &facts(true, true, false, true, true)).expect("ok");
        assert_eq!(p.backend, BackendKind::Gvisor);
        assert!(p.reason.contains("kvm_pvm"), "{}", p.reason);
        let p = place(BackendChoice::Auto, &facts(false, false, false, true, false)).expect("ok");
        assert_eq!((p.backend, p.accel), (BackendKind::Microvm, Some(Accel::Tcg)));
        assert_eq!(
            place(BackendChoice::Auto, &facts(false, false, false, false, false)),
            Err(PlacementError::Nothing)
        );
        assert!(place(BackendChoice::Gvisor, &facts(true, false, true, true, false)).is_err());
        let p = place(BackendChoice::Microvm, &facts(true, true, false, true, true)).expect("ok");
        assert_eq!(p.accel, Some(Accel::Tcg));
    }
}
