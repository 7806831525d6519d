//! Airlock on this machine: the state directory, guest images, sandbox keepers, the audit ledger,
//! API tokens, the HTTP server and the demo agent — assembled once, for `airlock serve` and for
//! the desktop app, which differ only in what they show.

pub mod demo;
pub mod images;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use airlock_ledger::{Actor, Ledger};
use airlock_policy::Policy;
use airlock_sandbox::Store;
use airlock_server::origin::Origins;
use airlock_server::tokens::Tokens;
use airlock_supervisor::api::CreateRequest;
use airlock_supervisor::{CommandError, Config, SandboxInfo, Supervisor};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use images::{agent_binary, build_image, BuildEvent, HostImages};

/// Why the host could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// This executable's path could not be found (the keeper and the guest agent are found from it).
    #[error("cannot locate this executable")]
    Exe(#[source] std::io::Error),
    /// The guest agent binary is not where it is looked for.
    #[error("the guest agent binary is not next to {exe} ({looked}); build the workspace (cargo build --workspace) or set AIRLOCK_GUEST_AGENT")]
    NoGuestAgent {
        /// This executable.
        exe: PathBuf,
        /// Where the agent was looked for.
        looked: PathBuf,
    },
    /// A guest image could not be built or read.
    #[error("the guest image failed")]
    Image(#[source] airlock_guest_image::BuildError),
    /// The sandbox store could not be opened.
    #[error("cannot open the sandbox store")]
    Store(#[source] airlock_sandbox::StoreError),
    /// The token file could not be read or written.
    #[error(transparent)]
    Tokens(#[from] airlock_server::tokens::TokenError),
    /// The ledger could not be opened.
    #[error("cannot open the audit ledger")]
    Ledger(#[source] airlock_ledger::LedgerError),
    /// The server could not listen.
    #[error(transparent)]
    Serve(#[from] airlock_server::serve::ServeError),
    /// A supervisor command failed.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// `$AIRLOCK_STATE_DIR`, else `$XDG_STATE_HOME/airlock`, else `~/.local/state/airlock`.
pub fn state_dir() -> PathBuf {
    Store::default_root()
}

/// Where the audit ledger lives.
pub fn ledger_dir() -> PathBuf {
    state_dir().join("ledger")
}

/// Where the API tokens live.
pub fn token_path() -> PathBuf {
    state_dir().join("tokens.json")
}

/// Opens the sandbox store; also returns the sandboxes cleaned up because their keeper had died.
pub fn open_store() -> Result<(Store, Vec<String>), HostError> {
    Store::open(state_dir()).map_err(HostError::Store)
}

/// The command that runs a sandbox keeper: `EXE __keeper` (both binaries understand it).
pub fn keeper_command() -> Result<Vec<String>, HostError> {
    let exe = std::env::current_exe().map_err(HostError::Exe)?;
    Ok(vec![exe.display().to_string(), KEEPER_ARG.into()])
}

/// The hidden first argument that turns either binary into a sandbox keeper.
pub const KEEPER_ARG: &str = "__keeper";

/// The built operator console: `$AIRLOCK_UI_DIR`, else `ui/dist` of this source tree, when it has
/// an `index.html`.
pub fn default_ui_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AIRLOCK_UI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/dist")));
    dir.join("index.html").exists().then_some(dir)
}

/// How to start.
#[derive(Debug)]
pub struct HostOptions {
    /// Loopback address of the MCP server and the operator API (port 0: any free port).
    pub listen: SocketAddr,
    /// The policy to enforce.
    pub policy: Policy,
    /// Supervisor settings.
    pub config: Config,
    /// The built console to serve at `/`, if any.
    pub ui_dir: Option<PathBuf>,
    /// Web origins besides loopback ones that may call the MCP endpoint.
    pub mcp_origins: Origins,
}

/// A running host.
pub struct Host {
    /// The supervisor.
    pub sup: Supervisor,
    /// The ledger it records to.
    pub ledger: Ledger,
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The API tokens.
    pub tokens: Tokens,
    /// True when the tokens were made just now (first run).
    pub tokens_created: bool,
    /// Sandboxes found running (from an earlier run) and adopted.
    pub adopted: Vec<String>,
    /// Sandboxes cleaned up because their keeper had died.
    pub cleaned: Vec<String>,
    stop: CancellationToken,
    server: std::sync::Mutex<Option<JoinHandle<Result<(), airlock_server::serve::ServeError>>>>,
    demo: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Opens the store, tokens and ledger, adopts running sandboxes and starts serving.
    pub async fn start(opts: HostOptions) -> Result<Host, HostError> {
        let (store, cleaned) = open_store()?;
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        let (tokens, tokens_created) = Tokens::load_or_create(&token_path(), &user)?;
        let ledger = Ledger::open(&ledger_dir()).await.map_err(HostError::Ledger)?;
        let sup = Supervisor::new(
            ledger.clone(),
            opts.policy,
            store,
            std::sync::Arc::new(HostImages),
            opts.config,
        );
        let listener = airlock_server::serve::bind(opts.listen).await?;
        let addr = listener.addr;
        // Before any sandbox is adopted: no sandbox may ever reach the supervisor's own port.
        sup.set_own_addresses(vec![addr]);
        let adopted = sup.start().await?;
        let stop = CancellationToken::new();
        // Sandboxes created or destroyed by other processes (the CLI) while this one serves.
        tokio::spawn(
            sup.clone()
                .watch_store(Duration::from_secs(1), stop.child_token()),
        );
        let app = airlock_server::serve::app(
            sup.clone(),
            tokens.clone(),
            stop.clone(),
            opts.ui_dir,
            opts.mcp_origins,
        );
        let server = tokio::spawn(airlock_server::serve::run(listener, app, stop.clone()));
        tracing::info!(%addr, "serving");
        Ok(Host {
            sup,
            ledger,
            addr,
            tokens,
            tokens_created,
            adopted,
            cleaned,
            stop,
            server: std::sync::Mutex::new(Some(server)),
            demo: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The MCP endpoint agents use.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The first supervised sandbox, or a new one (as the host's operator) when there is none.
    pub async fn ensure_sandbox(&self, req: &CreateRequest) -> Result<SandboxInfo, HostError> {
        if let Some(first) = self.sup.list().await.into_iter().next() {
            return Ok(first);
        }
        let spec = req.spec()?;
        Ok(self
            .sup
            .create_sandbox(spec, &Actor::operator(self.tokens.operator.clone()))
            .await?)
    }

    /// Starts the demo agent in `sandbox` (it stops with the host).
    pub fn start_demo(&self, sandbox: &str) {
        let task = tokio::spawn(demo::run_demo(
            self.mcp_url(),
            self.tokens.agent_token.clone(),
            sandbox.to_string(),
            self.stop.child_token(),
        ));
        if let Ok(mut d) = self.demo.lock() {
            d.push(task);
        }
    }

    /// Stops serving and the demo agent, and closes the ledger. Sandboxes keep running (the next
    /// start adopts them). A second call does nothing more.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let server = self.server.lock().ok().and_then(|mut s| s.take());
        if let Some(server) = server {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        } else {
            return;
        }
        let demo = self
            .demo
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default();
        for task in demo {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        self.sup.shutdown().await;
        self.ledger.clone().close().await;
    }
}
