//! Typed errors, one enum per kind of operation.

use std::path::PathBuf;
use std::time::Duration;

use airlock_protocol::{ErrorKind, FileError, InvalidFileRequest};

use crate::state::SandboxState;

/// Talking to a guest (through its keeper, or directly).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChannelError {
    /// Could not connect.
    #[error("cannot connect to sandbox {id}: {reason}")]
    Connect {
        /// Sandbox.
        id: String,
        /// Why.
        reason: String,
    },
    /// The channel is closed (and why).
    #[error("the guest channel is closed: {0}")]
    Closed(String),
    /// No reply in time.
    #[error("the guest did not answer within {0:?}")]
    Timeout(Duration),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The guest agent refused or failed the request.
    #[error("the guest agent refused the request ({kind:?}): {message}")]
    Guest {
        /// Category.
        kind: ErrorKind,
        /// The agent's explanation.
        message: String,
    },
}

/// Moving files between host and guest ([`crate::GuestClient::put_file`],
/// [`crate::GuestClient::get_path`], [`crate::GuestClient::list_dir`]): one enum for the three,
/// which fail the same ways.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The request breaks the protocol's rules; nothing was sent.
    #[error("the file request is invalid")]
    Invalid(#[source] InvalidFileRequest),
    /// The guest channel failed or closed.
    #[error("the guest channel failed during the file transfer")]
    Channel(#[source] ChannelError),
    /// The guest refused or failed the request (its kind says why: a symlink, not found, too
    /// large, …); nothing was written.
    #[error("the guest refused the file transfer")]
    Refused(#[source] FileError),
    /// The guest agent refused the request outright (an agent without file transfer, a restart).
    #[error("the guest agent refused the request ({kind:?}): {message}")]
    Guest {
        /// Category.
        kind: ErrorKind,
        /// The agent's explanation.
        message: String,
    },
    /// The data to send could not be read; the guest was told to drop the transfer.
    #[error("cannot read the data to send to the guest")]
    Source(#[source] std::io::Error),
    /// The data to send was shorter or longer than declared; the guest was told to drop it.
    #[error("the data to send holds {got} bytes{}, not the {declared} declared", if *.longer { " or more" } else { "" })]
    SourceSize {
        /// The declared size.
        declared: u64,
        /// The bytes read.
        got: u64,
        /// Whether it went on past `got`.
        longer: bool,
    },
    /// The guest broke the transfer's protocol (credit, sizes, digests, reply order).
    #[error("the guest broke the file transfer: {0}")]
    Protocol(String),
}

/// Starting a sandbox's processes.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A share the sandbox may not have (checked again at launch).
    #[error(transparent)]
    Share(#[from] crate::ShareError),
    /// A program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// Program.
        program: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A helper tool failed.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// Tool.
        tool: String,
        /// Its stderr or status.
        detail: String,
    },
    /// A file operation failed.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What.
        what: &'static str,
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The VM exited before its channel came up.
    #[error("the sandbox exited while starting ({status}); last console output:\n{console}")]
    Exited {
        /// Exit status.
        status: String,
        /// Console tail.
        console: String,
    },
    /// The channel never came up.
    #[error("the {what} did not come up within {after:?}")]
    Timeout {
        /// What.
        what: &'static str,
        /// Waited.
        after: Duration,
    },
    /// The backend needs an accelerator decision it did not get.
    #[error("the microvm backend needs an accelerator")]
    NoAccel,
}

/// Running a sandbox's keeper ([`crate::keeper::run`]); the sandbox's record says why too.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// The sandbox's record could not be read or written.
    #[error("the keeper cannot {what} the record of the sandbox in {dir}")]
    Record {
        /// `read` or `write`.
        what: &'static str,
        /// The sandbox's directory.
        dir: PathBuf,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// The sandbox's state cannot move on (it was changed under the keeper).
    #[error("the keeper cannot move the sandbox in {dir} to {to:?}")]
    State {
        /// The sandbox's directory.
        dir: PathBuf,
        /// The state it was to move to.
        to: SandboxState,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// The guest image could not be opened.
    #[error("the keeper cannot open the guest image in {dir}")]
    Image {
        /// The image directory.
        dir: PathBuf,
        /// Cause.
        #[source]
        source: Box<airlock_guest_image::BuildError>,
    },
    /// The VM could not be launched, exited while starting or did not come up in time.
    #[error("sandbox {id} did not start")]
    Launch {
        /// Sandbox.
        id: String,
        /// Cause.
        #[source]
        source: LaunchError,
    },
    /// The guest agent failed its hello.
    #[error("the guest agent of sandbox {id} did not answer hello")]
    Hello {
        /// Sandbox.
        id: String,
        /// Cause.
        #[source]
        source: ChannelError,
    },
    /// The socket for the keeper's clients could not be bound.
    #[error("the keeper cannot listen on {path}")]
    Listen {
        /// The socket.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the VM process failed.
    #[error("the keeper cannot wait for the VM process of sandbox {id}")]
    Wait {
        /// Sandbox.
        id: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Managing sandboxes in the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such sandbox.
    #[error("there is no sandbox {0} (see `airlock sandbox list`)")]
    NotFound(String),
    /// A file operation failed.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What.
        what: &'static str,
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A record on disk is corrupt.
    #[error("the record of sandbox {id} is unreadable: {reason}")]
    Corrupt {
        /// Sandbox.
        id: String,
        /// Why.
        reason: String,
    },
    /// The sandbox failed to start.
    #[error("sandbox {id} failed to start: {reason}")]
    StartFailed {
        /// Sandbox.
        id: String,
        /// Why.
        reason: String,
    },
    /// A state transition that the lifecycle does not allow.
    #[error("sandbox state cannot go from {from:?} to {to:?}")]
    InvalidTransition {
        /// From.
        from: SandboxState,
        /// To.
        to: SandboxState,
    },
    /// Bad arguments.
    #[error("{0}")]
    Invalid(String),
    /// Placement failed.
    #[error(transparent)]
    Placement(#[from] crate::PlacementError),
    /// A share the chosen backend may not have.
    #[error(transparent)]
    Share(#[from] crate::ShareError),
    /// Processes survived a kill.
    #[error("processes of sandbox {id} survived SIGKILL: {pids:?}")]
    Survivors {
        /// Sandbox.
        id: String,
        /// Pids.
        pids: Vec<u32>,
    },
}
