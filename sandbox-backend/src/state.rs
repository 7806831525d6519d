//! The sandbox lifecycle as an explicit state machine, and the record kept on disk.

use serde::{Deserialize, Serialize};

use crate::{Accel, BackendKind, StoreError};

/// Lifecycle states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxState {
    /// Files written, keeper starting.
    Creating,
    /// The VM is starting; the guest agent has not answered yet.
    Booting,
    /// The guest agent answered hello.
    Running,
    /// The VM exited on its own (or crashed); see the reason.
    Exited,
    /// Starting failed, or the guest broke the channel; see the reason.
    Failed,
}

impl SandboxState {
    /// Checks a transition; every pair is spelled out.
    pub fn to(self, next: SandboxState) -> Result<SandboxState, StoreError> {
        use SandboxState::*;
        let ok = match (self, next) {
            (Creating, Booting) | (Creating, Failed) => true,
            (Booting, Running) | (Booting, Failed) | (Booting, Exited) => true,
            (Running, Exited) | (Running, Failed) => true,
            (Creating, Creating) | (Creating, Running) | (Creating, Exited) => false,
            (Booting, Creating) | (Booting, Booting) => false,
            (Running, Creating) | (Running, Booting) | (Running, Running) => false,
            (Exited, _) | (Failed, _) => false,
        };
        if ok {
            Ok(next)
        } else {
            Err(StoreError::InvalidTransition { from: self, to: next })
        }
    }

    /// No process should be running in this state.
    pub fn is_final(self) -> bool {
        match self {
            SandboxState::Exited | SandboxState::Failed => true,
            SandboxState::Creating | SandboxState::Booting | SandboxState::Running => false,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            SandboxState::Creating => "creating",
            SandboxState::Booting => "booting",
            SandboxState::Running => "running",
            SandboxState::Exited => "exited",
            SandboxState::Failed => "failed",
        }
    }
}

/// What the guest reported at hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSummary {
    /// Agent version.
    pub agent_version: String,
    /// Screen width.
    pub screen_w: u16,
    /// Screen height.
    pub screen_h: u16,
}

/// `sandbox.json`: the durable record of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxRecord {
    /// Short id.
    pub id: String,
    /// Backend.
    pub backend: BackendKind,
    /// Accelerator (microVM).
    pub accel: Option<Accel>,
    /// Why this backend was picked.
    pub placement: String,
    /// Image profile.
    pub profile: String,
    /// Image directory.
    pub image_dir: std::path::PathBuf,
    /// vCPUs.
    pub vcpus: u8,
    /// Memory, MiB.
    pub memory_mib: u32,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: u64,
    /// State.
    pub state: SandboxState,
    /// Why it is exited/failed.
    pub reason: Option<String>,
    /// The keeper process.
    pub keeper_pid: Option<u32>,
    /// The VM process (QEMU or runsc).
    pub vm_pid: Option<u32>,
    /// Milliseconds from keeper start to the agent's hello.
    pub boot_ms: Option<u64>,
    /// Guest facts.
    pub guest: Option<GuestSummary>,
    /// Host folders shared into the sandbox, validated at creation (canonical host paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<crate::Share>,
}

#[cfg(test)]
mod tests {
    use super::SandboxState::*;

    #[test]
    fn lifecycle() {
        assert_eq!(Creating.to(Booting).expect("ok"), Booting);
        assert!(Booting.to(Running).is_ok());
        assert!(Running.to(Exited).is_ok());
        assert!(Running.to(Booting).is_err());
        assert!(Exited.to(Running).is_err());
        assert!(Failed.to(Failed).is_err());
        assert!(Exited.is_final() && Failed.is_final() && !Running.is_final());
        let e = Creating.to(Running).unwrap_err();
        assert_eq!(e.to_string(), "sandbox state cannot go from Creating to Running");
    }
}
