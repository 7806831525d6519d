//! A real supervisor over a fake guest, with its ledger and sandbox store in a scratch directory.

use std::path::PathBuf;
use std::sync::Arc;

use airlock_domain::Screen;
use airlock_ledger::{Ledger, LedgerError};
use airlock_policy::{Policy, PolicyError};
use airlock_sandbox::{ChannelError, GuestClient, Store, StoreError};
use airlock_supervisor::{Config, ImageSource, Supervisor};

use crate::guest::{Answers, FakeGuest};

/// An image source for supervisors that create no sandboxes.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoImages;

impl ImageSource for NoImages {
    fn image(
        &self,
        profile: airlock_guest_image::Profile,
        _progress: &mut dyn FnMut(&str),
    ) -> Result<airlock_guest_image::Image, airlock_supervisor::ImageError> {
        Err(airlock_supervisor::ImageError {
            profile: profile.name(),
            source: "this test creates no sandboxes".into(),
        })
    }
}

/// Why a supervised fake guest could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The scratch directory or the socket pair could not be made.
    #[error("cannot set up the scratch directory or the guest's socket")]
    Io(#[from] std::io::Error),
    /// The ledger did not open.
    #[error("the ledger did not open")]
    Ledger(#[from] LedgerError),
    /// The default policy did not load.
    #[error("the default policy did not load")]
    Policy(#[from] PolicyError),
    /// The sandbox store did not open.
    #[error("the sandbox store did not open")]
    Store(#[from] StoreError),
    /// The host could not say hello to the fake guest.
    #[error("the host could not say hello to the fake guest")]
    Hello(#[from] ChannelError),
    /// The blocking hello was cancelled or panicked.
    #[error("the hello to the fake guest did not finish")]
    Join(#[from] tokio::task::JoinError),
    /// The sandbox got no egress gateway.
    #[error("the egress gateway of sandbox {0} did not attach")]
    NoGateway(String),
}

/// A supervisor supervising one fake guest, its ledger in `dir/ledger`, its store in `dir/store`.
/// Dropping it removes the directory.
#[derive(Debug)]
pub struct Supervised {
    /// The supervisor, with the default policy.
    pub supervisor: Supervisor,
    /// The fake guest behind the sandbox.
    pub guest: FakeGuest,
    /// The sandbox's id.
    pub sandbox: String,
    /// Its screen.
    pub screen: Screen,
    /// The scratch directory.
    pub dir: tempfile::TempDir,
}

impl Supervised {
    /// A supervisor with default settings over a fake guest answering as `answers` says, attached
    /// as sandbox `sandbox` (its egress gateway attached too).
    pub async fn start(sandbox: &str, answers: Answers) -> Result<Supervised, SuperviseError> {
        Supervised::start_with(sandbox, answers, Config::new(Vec::new())).await
    }

    /// As [`Supervised::start`], with `config`.
    pub async fn start_with(
        sandbox: &str,
        answers: Answers,
        config: Config,
    ) -> Result<Supervised, SuperviseError> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open(&dir.path().join("ledger")).await?;
        let (store, _) = Store::open(dir.path().join("store"))?;
        let supervisor = Supervisor::new(
            ledger,
            Policy::default_policy()?,
            store,
            Arc::new(NoImages),
            config,
        );
        let screen = answers.screen;
        let (guest, host) = FakeGuest::start(answers)?;
        let name = sandbox.to_string();
        let client = tokio::task::spawn_blocking(move || GuestClient::over_unix(host, &name)).await??;
        supervisor.attach_guest(sandbox, screen, client).await;
        if supervisor.egress_hub(sandbox).is_none() {
            return Err(SuperviseError::NoGateway(sandbox.to_string()));
        }
        Ok(Supervised {
            supervisor,
            guest,
            sandbox: sandbox.to_string(),
            screen,
            dir,
        })
    }

    /// The ledger's directory.
    pub fn ledger_dir(&self) -> PathBuf {
        self.dir.path().join("ledger")
    }
}
