//! Sandboxes for computer-use agents: an empty Linux desktop with no network, reachable only
//! through the guest agent's channel.
//!
//! * [`SandboxBackend`] is the seam between lifecycle and technology. Two implementations share one
//!   guest image and agent: [`backend::Microvm`] (QEMU; KVM where the host has usable hardware
//!   virtualization, TCG otherwise) and [`backend::Gvisor`] (runsc on the ptrace platform).
//! * [`place`] picks a backend for `auto` from [`HostFacts`] and says why.
//! * A per-sandbox **keeper** process ([`keeper::run`]) owns the VM and the guest channel
//!   ([`GuestMux`]); clients reach it through [`Store::connect`], which returns a [`GuestClient`].
//! * [`Store`] keeps one directory per sandbox under the state dir; [`SandboxState`] is the
//!   explicit lifecycle.
//!
//! Pure parts — the QEMU command line ([`qemu::qemu_args`]), the OCI spec ([`gvisor::oci_spec`]),
//! placement, the state machine — are unit-tested; the rest is tested against real sandboxes in
//! the workspace's `tests` crate.

mod accel;
pub mod backend;
mod client;
mod error;
pub mod gvisor;
pub mod keeper;
mod mux;
pub mod procs;
pub mod qemu;
pub mod share;
mod state;
mod store;

pub use accel::{
    on_path, place, Accel, BackendChoice, BackendKind, HostFacts, Placement, PlacementError, UnknownBackend,
};
pub use backend::{LaunchSpec, Launched, SandboxBackend};
pub use client::{bgrx_to_rgba, reply_timeout, Download, GuestClient, Screenshot};
pub use error::{ChannelError, KeeperError, LaunchError, StoreError, TransferError};
pub use mux::{EgressSink, GuestInfo, GuestMux, ReplyStream, TransferEvent, TransferSink};
pub use share::{
    folder_owner, GuestRefusal, HostRefusal, HostRules, ParseShareError, Share, ShareError, Shares,
    MAX_SHARES,
};
pub use state::{GuestSummary, SandboxRecord, SandboxState};
pub use store::{now_ms, read_record, write_record, CreateOptions, Liveness, SandboxStatus, Store};
