//! The supervisor: sandboxes under supervision, each with one session task that owns its control
//! lease, pending approvals and grants; the gateway every agent action passes
//! ([`Supervisor::act`]); the egress gateway's host side ([`egress`]); the operator requests both
//! transports send ([`api`]); events.
//!
//! Transports — the MCP server (`airlock-mcp`), the HTTP API (`airlock-server`), the live view
//! (`airlock-live`), the desktop app's commands — only parse requests into typed calls on
//! [`Supervisor`]; the session tasks mutate state; the pure rules live in `airlock-domain` and
//! `airlock-policy`; every step is appended to the `airlock-ledger` as an `airlock-records` record.

pub mod access;
pub mod api;
pub mod egress;
pub mod events;
pub mod files;
pub mod gateway;
pub mod help;
pub mod session;
pub mod terminal;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use airlock_domain::{Action, Approval, LeaseChange, LeaseCommand, LeaseError, Resolution, Screen};
use airlock_guest_image::{Image, Profile};
use airlock_ledger::{Actor, Ledger};
use airlock_policy::{Mode, Policy};
use airlock_records::{HumanAction, HumanInput, Lifecycle, PolicyChanged, Record, RecordError};
use airlock_sandbox::{CreateOptions, Liveness, Store};
use serde::Serialize;
use tokio::sync::RwLock as AsyncRwLock;
use tracing::{info, warn, Instrument};

pub use crate::events::{By, CreateOutcome, Event, Events, SandboxState};
pub use crate::gateway::{ActionReply, ActionRequest, ActionResult, AgentCall, AgentId, Frame, GatewayError};
pub use crate::help::{HelpError, HumanAnswer, HumanRequest, HumanRequestOutcome};
pub use crate::session::{LeaseChangeError, ResolveError, Session, SessionGone, SessionView, Unrecorded};

pub use airlock_protocol::error_chain as chain;

/// Milliseconds since the Unix epoch: the only clock the supervisor reads (drivers pass it to
/// the pure core).
pub fn now_ms() -> u64 {
    airlock_sandbox::now_ms()
}

/// Where guest images come from (the CLI builds or reuses cached ones).
pub trait ImageSource: Send + Sync {
    /// The image for a profile; a build reports its steps to `progress`.
    fn image(&self, profile: Profile, progress: &mut dyn FnMut(&str)) -> Result<Image, ImageError>;
}

/// A guest image could not be prepared.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the {profile} image")]
pub struct ImageError {
    /// The profile asked for.
    pub profile: &'static str,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long an ask waits for an operator before it counts as deny.
    pub approval_timeout: Duration,
    /// Pause after an input action before the after-frame is taken.
    pub settle: Duration,
    /// Command that runs a sandbox keeper (`airlock __keeper`).
    pub keeper_command: Vec<String>,
    /// vCPUs per sandbox.
    pub vcpus: u8,
    /// Memory per sandbox, MiB.
    pub memory_mib: u32,
    /// How long a sandbox may take to boot.
    pub boot_timeout: Duration,
    /// Where WebRTC peers bind their UDP sockets (port 0: any free port).
    pub rtc_udp: std::net::SocketAddr,
    /// How the egress gateway resolves names it has allowed (tests map names to their servers).
    pub egress_resolver: egress::Resolver,
}

impl Config {
    /// Defaults, with the keeper command given.
    pub fn new(keeper_command: Vec<String>) -> Config {
        Config {
            approval_timeout: Duration::from_secs(120),
            settle: Duration::from_millis(50),
            keeper_command,
            vcpus: 1,
            memory_mib: 1024,
            boot_timeout: Duration::from_secs(180),
            rtc_udp: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            egress_resolver: egress::Resolver::default(),
        }
    }
}

/// Why an operator or lifecycle command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No such sandbox.
    #[error("no sandbox {0} is supervised here")]
    UnknownSandbox(String),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// The lease refused.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// A step could not be recorded, so it was not taken.
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
    /// The approval refused.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The sandbox store failed.
    #[error("the sandbox store failed")]
    Store(#[from] airlock_sandbox::StoreError),
    /// A guest image could not be prepared.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A sandbox has not reported its screen size, so it cannot be supervised.
    #[error("sandbox {0} has not reported its screen")]
    NoScreen(String),
    /// A blocking task of the supervisor's panicked or was cancelled.
    #[error("a background task of the supervisor failed")]
    Task(#[from] tokio::task::JoinError),
    /// A table shared by the supervisor's tasks is poisoned (a task panicked holding it).
    #[error("the supervisor's {0} table is poisoned")]
    Poisoned(&'static str),
    /// The guest failed.
    #[error("the sandbox failed to carry out the input")]
    Guest(#[from] gateway::GuestError),
    /// The ledger failed.
    #[error("the audit ledger failed")]
    Ledger(#[from] airlock_ledger::LedgerError),
    /// A ledger record could not be encoded.
    #[error("the audit ledger cannot take the record")]
    Record(#[from] RecordError),
    /// No stored blob has that hash.
    #[error("{0}")]
    UnknownBlob(String),
    /// The session ended.
    #[error(transparent)]
    Gone(#[from] SessionGone),
    /// A view link could not be made or revoked.
    #[error(transparent)]
    Link(#[from] airlock_domain::LinkError),
    /// The kernel's random generator could not be read.
    #[error("cannot read random bytes for a token")]
    Random(#[source] std::io::Error),
}

/// A sandbox as listed to agents and operators.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct SandboxInfo {
    /// Id.
    pub id: String,
    /// Backend (`microvm`, `gvisor`).
    pub backend: String,
    /// Image profile.
    pub profile: String,
    /// Screen.
    pub screen: Screen,
    /// `running`, `lost` (its keeper or VM is gone) or `external` (attached, not from the store).
    pub state: String,
    /// vCPUs and memory (MiB), when known.
    pub vcpus: Option<u8>,
    /// Memory, MiB, when known.
    pub memory_mib: Option<u32>,
    /// Lease and approvals.
    pub session: SessionView,
}

pub(crate) struct Inner {
    ledger: Ledger,
    events: Events,
    policy: RwLock<Arc<Policy>>,
    mode: RwLock<Mode>,
    sessions: AsyncRwLock<HashMap<String, Session>>,
    store: Store,
    images: Arc<dyn ImageSource>,
    config: Config,
    next_approval: AtomicU64,
    /// Requests for a human: the next id, and those waiting (for the snapshot).
    next_human_request: AtomicU64,
    human_requests: std::sync::Mutex<std::collections::BTreeMap<u64, help::HumanRequest>>,
    /// View links.
    access: std::sync::OnceLock<access::Access>,
    /// Each supervised sandbox's egress gateway.
    egress: std::sync::Mutex<HashMap<String, Arc<egress::Hub>>>,
    /// Where this supervisor listens: never reachable from a sandbox.
    own_addresses: RwLock<Vec<std::net::SocketAddr>>,
    /// Creations in progress (the store watcher waits for them: they attach what they make).
    creating: AtomicU64,
    /// Supervised sandboxes that come from the store (not attached by hand, as tests do).
    from_store: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Sandboxes already reported lost, or that could not be attached (reported once).
    reported: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Uploads under way ([`files::MAX_UPLOADS_AT_ONCE`]).
    uploads: Arc<tokio::sync::Semaphore>,
}

/// The supervisor. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor over `store`'s sandboxes, recording to `ledger`.
    pub fn new(
        ledger: Ledger,
        policy: Policy,
        store: Store,
        images: Arc<dyn ImageSource>,
        config: Config,
    ) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                ledger,
                events: Events::default(),
                policy: RwLock::new(Arc::new(policy)),
                mode: RwLock::new(Mode::Enforce),
                sessions: AsyncRwLock::new(HashMap::new()),
                store,
                images,
                config,
                next_approval: AtomicU64::new(now_ms()),
                next_human_request: AtomicU64::new(now_ms()),
                human_requests: std::sync::Mutex::new(std::collections::BTreeMap::new()),
                access: std::sync::OnceLock::new(),
                egress: std::sync::Mutex::new(HashMap::new()),
                own_addresses: RwLock::new(Vec::new()),
                creating: AtomicU64::new(0),
                from_store: std::sync::Mutex::new(Default::default()),
                reported: std::sync::Mutex::new(Default::default()),
                uploads: Arc::new(tokio::sync::Semaphore::new(files::MAX_UPLOADS_AT_ONCE)),
            }),
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The event fan-out.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.inner
            .policy
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Enforce or shadow.
    pub fn mode(&self) -> Mode {
        self.inner
            .mode
            .read()
            .map(|m| *m)
            .unwrap_or_else(|e| *e.into_inner())
    }

    pub(crate) fn approval_timeout(&self) -> Duration {
        self.inner.config.approval_timeout
    }

    pub(crate) fn settle(&self) -> Duration {
        self.inner.config.settle
    }

    /// The view links and access refusals of this supervisor.
    pub fn access(&self) -> access::Access {
        self.inner
            .access
            .get_or_init(|| access::Access::new(Arc::downgrade(&self.inner)))
            .clone()
    }

    pub(crate) fn next_human_request(&self) -> u64 {
        self.inner.next_human_request.fetch_add(1, Ordering::Relaxed)
    }

    /// Lists a waiting request for a human and tells the consoles.
    pub(crate) fn remember_human_request(&self, request: help::HumanRequest) {
        self.inner
            .human_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request.request, request.clone());
        self.events().publish(Event::HumanRequested { request });
    }

    /// Takes a request for a human off the list and tells the consoles how it ended.
    pub(crate) fn forget_human_request(
        &self,
        request: &help::HumanRequest,
        outcome: help::HumanRequestOutcome,
    ) {
        self.inner
            .human_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&request.request);
        self.events().publish(Event::HumanRequestEnded {
            sandbox: request.sandbox.clone(),
            request: request.request,
            outcome,
        });
    }

    /// The requests for a human still waiting, oldest first.
    pub fn human_requests(&self) -> Vec<help::HumanRequest> {
        self.inner
            .human_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn next_approval_id(&self) -> u64 {
        self.inner.next_approval.fetch_add(1, Ordering::Relaxed)
    }

    /// Records the supervisor's start and adopts the store's running sandboxes.
    pub async fn start(&self) -> Result<Vec<String>, CommandError> {
        let policy = self.policy();
        self.record(
            None,
            Actor::default(),
            Record::Lifecycle(Lifecycle::SupervisorStarted {
                policy_version: policy.version().to_string(),
                mode: self.mode(),
            }),
        )
        .await?;
        let store = self.inner.store.clone();
        let statuses = tokio::task::spawn_blocking(move || store.list()).await??;
        let mut adopted = Vec::new();
        for s in statuses {
            if s.liveness != Liveness::Alive {
                continue;
            }
            match self.attach(&s.record.id).await {
                Ok(()) => {
                    // Whatever was typed into its terminals before this supervisor started is
                    // not known: their lines ask until cleared.
                    if let Ok(session) = self.session(&s.record.id).await {
                        session
                            .terminals
                            .lock()
                            .await
                            .forget_all("the supervisor started while the sandbox was running");
                    }
                    adopted.push(s.record.id.clone());
                }
                Err(e) => {
                    warn!(sandbox = %s.record.id, error = %chain(&e), "could not adopt a running sandbox")
                }
            }
        }
        Ok(adopted)
    }

    /// Connects to a running sandbox and starts its session.
    async fn attach(&self, id: &str) -> Result<(), CommandError> {
        let store = self.inner.store.clone();
        let sid = id.to_string();
        let (guest, rec) = tokio::task::spawn_blocking(move || {
            let guest = store.connect(&sid)?;
            let rec = store.status(&sid)?.record;
            Ok::<_, airlock_sandbox::StoreError>((guest, rec))
        })
        .await??;
        let screen = rec
            .guest
            .as_ref()
            .map(|g| Screen {
                width: g.screen_w,
                height: g.screen_h,
            })
            .ok_or_else(|| CommandError::NoScreen(id.to_string()))?;
        self.attach_guest(id, screen, guest).await;
        if let Ok(mut f) = self.inner.from_store.lock() {
            f.insert(id.to_string());
        }
        self.events().publish(Event::SandboxState {
            sandbox: id.to_string(),
            state: SandboxState::Running,
            detail: Some(format!("{} {}", rec.backend, rec.profile)),
            at_ms: now_ms(),
        });
        Ok(())
    }

    /// Supervises a guest reached some other way (benchmarks and tests use in-process guests).
    pub async fn attach_guest(&self, id: &str, screen: Screen, guest: airlock_sandbox::GuestClient) {
        let session = Session::start(
            id.to_string(),
            screen,
            guest,
            self.ledger().clone(),
            self.events().clone(),
        );
        let guest = session.guest.clone();
        self.inner.sessions.write().await.insert(id.to_string(), session);
        match egress::Hub::attach(self.clone(), id.to_string(), guest).await {
            Ok(hub) => {
                if let Ok(mut m) = self.inner.egress.lock() {
                    m.insert(id.to_string(), hub);
                }
            }
            Err(e) => {
                warn!(sandbox = %id, error = %chain(&e), "the sandbox has no egress gateway: its connections are refused")
            }
        }
    }

    /// A sandbox's egress gateway.
    pub fn egress_hub(&self, id: &str) -> Option<Arc<egress::Hub>> {
        self.inner.egress.lock().ok().and_then(|m| m.get(id).cloned())
    }

    /// A sandbox's network: destinations, asks, grants, refused DNS lookups.
    pub fn network(&self, id: &str) -> Result<airlock_domain::NetworkView, CommandError> {
        self.egress_hub(id)
            .map(|h| h.view())
            .ok_or_else(|| CommandError::UnknownSandbox(id.to_string()))
    }

    /// Every pending network ask, across sandboxes.
    pub fn pending_egress(&self) -> Vec<airlock_domain::EgressAsk> {
        let hubs: Vec<Arc<egress::Hub>> = self
            .inner
            .egress
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let mut asks: Vec<airlock_domain::EgressAsk> = hubs.iter().flat_map(|h| h.pending()).collect();
        asks.sort_by_key(|a| a.id);
        asks
    }

    /// An operator decides a network ask.
    pub async fn resolve_egress(
        &self,
        id: &str,
        ask: u64,
        operator: &str,
        resolution: airlock_domain::EgressResolution,
    ) -> Result<airlock_domain::EgressAsk, CommandError> {
        let span = tracing::info_span!("resolve_egress", sandbox = id, ask, operator);
        async move {
            let hub = self
                .egress_hub(id)
                .ok_or_else(|| CommandError::UnknownSandbox(id.to_string()))?;
            hub.resolve(ask, operator, resolution)
                .await
                .map_err(|e| CommandError::Invalid(chain(&e)))
        }
        .instrument(span)
        .await
    }

    /// An agent asks ahead for network destinations (one card for the operator).
    pub async fn request_network(
        &self,
        id: Option<&str>,
        agent: &str,
        hosts: &[(String, u16)],
        reason: &str,
    ) -> Result<airlock_domain::EgressAsk, GatewayError> {
        let session = self.session_for(id).await?;
        let hub = self.egress_hub(&session.id).ok_or_else(|| {
            egress::EgressError::Invalid(format!("sandbox {} has no egress gateway", session.id))
        })?;
        hub.note_agent(agent);
        Ok(hub.request(agent, hosts, reason).await?)
    }

    /// Adds a rule to the policy in force (an operator's "add to policy"), on the record.
    pub async fn add_policy_rule(&self, rule: &str, operator: &str) -> Result<(), CommandError> {
        let version = {
            // One edit at a time: read, extend and replace without another edit in between.
            let mut p = self
                .inner
                .policy
                .write()
                .map_err(|_| CommandError::Invalid("the policy lock is poisoned".into()))?;
            if p.text().contains(rule.trim()) {
                return Ok(()); // already there (another ask added it)
            }
            let updated = p
                .with_rule(rule)
                .map_err(|e| CommandError::Invalid(e.to_string()))?;
            let version = updated.version().to_string();
            *p = Arc::new(updated);
            version
        };
        self.record(
            None,
            Actor::operator(operator),
            Record::PolicyChanged(PolicyChanged::RuleAdded {
                rule: rule.to_string(),
                policy_version: version,
            }),
        )
        .await
    }

    /// Addresses this supervisor listens on: the egress gateway never dials them.
    pub fn set_own_addresses(&self, addrs: Vec<std::net::SocketAddr>) {
        if let Ok(mut a) = self.inner.own_addresses.write() {
            *a = addrs;
        }
    }

    /// Whether `ip:port` is where this supervisor listens (an unspecified listen address covers
    /// every local address).
    pub fn is_own_address(&self, ip: std::net::IpAddr, port: u16) -> bool {
        let own = self
            .inner
            .own_addresses
            .read()
            .map(|a| a.clone())
            .unwrap_or_default();
        own.iter().any(|a| {
            a.port() == port
                && (a.ip() == ip || a.ip().is_unspecified() || (a.ip().is_loopback() && ip.is_loopback()))
        })
    }

    pub(crate) fn egress_resolver(&self) -> &egress::Resolver {
        &self.inner.config.egress_resolver
    }

    /// Creates a sandbox and puts it under supervision; with `spec.job`, `create_progress` events
    /// follow the steps (image build, boot).
    pub async fn create_sandbox(
        &self,
        spec: api::SandboxSpec,
        by: &Actor,
    ) -> Result<SandboxInfo, CommandError> {
        // The store watcher leaves the store alone while a creation runs: the creation attaches
        // what it makes.
        self.inner.creating.fetch_add(1, Ordering::SeqCst);
        let r = self.create_sandbox_now(spec, by).await;
        self.inner.creating.fetch_sub(1, Ordering::SeqCst);
        r
    }

    async fn create_sandbox_now(
        &self,
        spec: api::SandboxSpec,
        by: &Actor,
    ) -> Result<SandboxInfo, CommandError> {
        let span = tracing::info_span!("create_sandbox", backend = ?spec.backend, profile = spec.profile.name(), job = ?spec.job);
        async move {
            let images = self.inner.images.clone();
            let store = self.inner.store.clone();
            let cfg = self.inner.config.clone();
            let events = self.inner.events.clone();
            let job = spec.job.clone();
            let report = move |step: &str, outcome: CreateOutcome| {
                if let Some(job) = &job {
                    events.publish(Event::CreateProgress {
                        job: job.clone(),
                        step: step.to_string(),
                        outcome,
                        at_ms: now_ms(),
                    });
                }
            };
            let step = report.clone();
            let mut progress = move |s: &str| step(s, CreateOutcome::Working);
            let backend = spec.backend;
            let profile = spec.profile;
            let shares = airlock_sandbox::Shares::validate(&spec.shares, &store.share_rules())
                .map_err(|e| CommandError::Invalid(chain(&e)))?;
            let recorded: Vec<airlock_records::SharedFolder> = shares
                .as_slice()
                .iter()
                .map(|s| airlock_records::SharedFolder {
                    host: s.host.display().to_string(),
                    guest: s.guest.display().to_string(),
                    writable: s.writable,
                })
                .collect();
            let made = tokio::task::spawn_blocking(move || {
                progress(&format!("preparing the {} image", profile.name()));
                let image = images.image(profile, &mut progress)?;
                progress("booting the sandbox");
                let opts = CreateOptions {
                    backend,
                    image,
                    vcpus: spec.vcpus.unwrap_or(cfg.vcpus),
                    memory_mib: spec.memory_mib.unwrap_or(cfg.memory_mib),
                    keeper_command: cfg.keeper_command.clone(),
                    boot_timeout: cfg.boot_timeout,
                };
                match store.create_with_shares(&opts, &shares) {
                    Ok((rec, _)) => Ok(rec),
                    // A share the chosen backend may not have is the request's fault.
                    Err(airlock_sandbox::StoreError::Share(e)) => Err(CommandError::Invalid(chain(&e))),
                    Err(e) => Err(CommandError::Store(e)),
                }
            })
            .await
            .map_err(CommandError::from)
            .and_then(|r| r);
            let rec = match made {
                Ok(rec) => rec,
                Err(e) => {
                    report(&chain(&e), CreateOutcome::Failed);
                    return Err(e);
                }
            };
            self.record(
                Some(&rec.id),
                by.clone(),
                Record::Lifecycle(Lifecycle::SandboxCreated {
                    backend: rec.backend.to_string(),
                    profile: rec.profile.clone(),
                    placement: rec.placement.clone(),
                    boot_ms: rec.boot_ms,
                    shares: recorded,
                }),
            )
            .await?;
            self.attach(&rec.id).await?;
            report(
                &format!("sandbox {} is running", rec.id),
                CreateOutcome::Running {
                    sandbox: rec.id.clone(),
                },
            );
            info!(sandbox = %rec.id, "sandbox created");
            self.info(&rec.id).await
        }
        .instrument(span)
        .await
    }

    /// Destroys a sandbox.
    #[tracing::instrument(skip(self, by), fields(by = ?by.operator))]
    pub async fn destroy_sandbox(&self, id: &str, by: &Actor) -> Result<(), CommandError> {
        if !self.drop_session(id).await {
            return Err(CommandError::UnknownSandbox(id.to_string()));
        }
        let store = self.inner.store.clone();
        let sid = id.to_string();
        let done = async {
            tokio::task::spawn_blocking(move || store.destroy(&sid)).await??;
            self.record(
                Some(id),
                by.clone(),
                Record::Lifecycle(Lifecycle::SandboxDestroyed { outside: false }),
            )
            .await
        }
        .await;
        // It left supervision either way: viewers and its stream go whatever the store said.
        self.events().publish(Event::SandboxState {
            sandbox: id.to_string(),
            state: SandboxState::Destroyed,
            detail: done.as_ref().err().map(|e| chain(e)),
            at_ms: now_ms(),
        });
        done
    }

    /// Stops supervising a sandbox (its session and gateway); whether it was supervised.
    async fn drop_session(&self, id: &str) -> bool {
        let removed = self.inner.sessions.write().await.remove(id);
        if let Ok(mut m) = self.inner.egress.lock() {
            m.remove(id);
        }
        if let Ok(mut f) = self.inner.from_store.lock() {
            f.remove(id);
        }
        removed.is_some()
    }

    /// Keeps supervision in step with the store while serving, checking every `every`: a sandbox
    /// another process started (`airlock sandbox create`) is adopted, one it destroyed is dropped
    /// (`destroyed`), one whose keeper died is reported `lost` once.
    pub async fn watch_store(self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if self.inner.creating.load(Ordering::SeqCst) > 0 {
                continue;
            }
            let store = self.inner.store.clone();
            let statuses = match tokio::task::spawn_blocking(move || store.list()).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot read the sandbox store");
                    continue;
                }
                Err(_) => continue,
            };
            self.sync_with_store(&statuses).await;
        }
    }

    async fn sync_with_store(&self, statuses: &[airlock_sandbox::SandboxStatus]) {
        let supervised: std::collections::HashSet<String> =
            self.inner.sessions.read().await.keys().cloned().collect();
        for s in statuses {
            let id = &s.record.id;
            let ready =
                s.liveness == Liveness::Alive && s.record.state == airlock_sandbox::SandboxState::Running;
            if !ready || supervised.contains(id) {
                continue;
            }
            match self.attach(id).await {
                Ok(()) => {
                    info!(sandbox = %id, "adopted a sandbox started outside this supervisor");
                    if let Ok(session) = self.session(id).await {
                        session
                            .terminals
                            .lock()
                            .await
                            .forget_all("the sandbox was started outside this supervisor");
                    }
                    let _ = self
                        .record(
                            Some(id),
                            Actor::default(),
                            Record::Lifecycle(Lifecycle::SandboxAdopted),
                        )
                        .await;
                }
                Err(e) => {
                    if self.first_report(id) {
                        warn!(sandbox = %id, error = %chain(&e), "cannot adopt a sandbox started outside this supervisor");
                    }
                }
            }
        }
        let from_store: Vec<String> = self
            .inner
            .from_store
            .lock()
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default();
        for id in from_store {
            match statuses.iter().find(|s| s.record.id == id) {
                None => {
                    if self.drop_session(&id).await {
                        info!(sandbox = %id, "a sandbox was destroyed outside this supervisor");
                        let _ = self
                            .record(
                                Some(&id),
                                Actor::default(),
                                Record::Lifecycle(Lifecycle::SandboxDestroyed { outside: true }),
                            )
                            .await;
                        self.events().publish(Event::SandboxState {
                            sandbox: id.clone(),
                            state: SandboxState::Destroyed,
                            detail: Some("destroyed outside this supervisor".into()),
                            at_ms: now_ms(),
                        });
                    }
                }
                Some(s) if s.liveness == Liveness::Gone && self.first_report(&id) => {
                    let why = s
                        .record
                        .reason
                        .clone()
                        .unwrap_or_else(|| "its keeper is gone".into());
                    warn!(sandbox = %id, reason = %why, "sandbox lost");
                    let _ = self
                        .record(
                            Some(&id),
                            Actor::default(),
                            Record::Lifecycle(Lifecycle::SandboxLost { reason: why.clone() }),
                        )
                        .await;
                    self.events().publish(Event::SandboxState {
                        sandbox: id.clone(),
                        state: SandboxState::Lost,
                        detail: Some(why),
                        at_ms: now_ms(),
                    });
                }
                Some(_) => {}
            }
        }
    }

    /// Whether `id` is reported for the first time (lost, or not adoptable).
    fn first_report(&self, id: &str) -> bool {
        self.inner
            .reported
            .lock()
            .map(|mut r| r.insert(id.to_string()))
            .unwrap_or(false)
    }

    /// The sandboxes under supervision.
    pub async fn list(&self) -> Vec<SandboxInfo> {
        let ids: Vec<String> = self.inner.sessions.read().await.keys().cloned().collect();
        let mut out = Vec::new();
        for id in ids {
            if let Ok(i) = self.info(&id).await {
                out.push(i);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// One sandbox.
    pub async fn info(&self, id: &str) -> Result<SandboxInfo, CommandError> {
        let session = self.session(id).await?;
        let view = session.view().await?;
        let store = self.inner.store.clone();
        let sid = id.to_string();
        let status = tokio::task::spawn_blocking(move || store.status(&sid))
            .await?
            .ok();
        let state = match &status {
            None => "external",
            Some(s) if s.liveness == Liveness::Alive => "running",
            Some(_) => "lost",
        };
        let rec = status.map(|s| s.record);
        Ok(SandboxInfo {
            id: id.to_string(),
            backend: rec
                .as_ref()
                .map_or_else(|| "external".to_string(), |r| r.backend.to_string()),
            state: state.to_string(),
            vcpus: rec.as_ref().map(|r| r.vcpus),
            memory_mib: rec.as_ref().map(|r| r.memory_mib),
            profile: rec.map_or_else(|| "external".to_string(), |r| r.profile),
            screen: session.screen,
            session: view,
        })
    }

    /// The session of a sandbox.
    pub async fn session(&self, id: &str) -> Result<Session, CommandError> {
        self.inner
            .sessions
            .read()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| CommandError::UnknownSandbox(id.to_string()))
    }

    /// The settings this supervisor was made with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The session an agent call is for.
    pub(crate) async fn session_for(&self, id: Option<&str>) -> Result<Session, GatewayError> {
        let sessions = self.inner.sessions.read().await;
        match id {
            Some(id) => sessions
                .get(id)
                .cloned()
                .ok_or_else(|| GatewayError::UnknownSandbox(id.to_string())),
            None if sessions.len() == 1 => Ok(sessions.values().next().cloned().ok_or_else(|| {
                GatewayError::WhichSandbox("no sandbox is running; create one first".into())
            })?),
            None if sessions.is_empty() => Err(GatewayError::WhichSandbox(
                "no sandbox is running; create one first".into(),
            )),
            None => {
                let mut ids: Vec<&String> = sessions.keys().collect();
                ids.sort();
                Err(GatewayError::WhichSandbox(format!(
                    "several sandboxes are running; name one with `sandbox`: {}",
                    ids.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )))
            }
        }
    }

    /// An operator changes who holds control.
    #[tracing::instrument(skip(self, cmd), fields(command = ?cmd))]
    pub async fn lease(&self, id: &str, cmd: LeaseCommand) -> Result<LeaseChange, CommandError> {
        let session = self.session(id).await?;
        match session.lease(cmd).await? {
            Ok(change) => Ok(change),
            Err(LeaseChangeError::Lease(e)) => Err(e.into()),
            Err(LeaseChangeError::Unrecorded(e)) => Err(e.into()),
        }
    }

    /// An operator decides an approval.
    pub async fn resolve(
        &self,
        id: &str,
        approval: u64,
        operator: &str,
        resolution: Resolution,
    ) -> Result<Approval, CommandError> {
        let span = tracing::info_span!("resolve", sandbox = id, approval, operator);
        async move {
            let session = self.session(id).await?;
            Ok(session.resolve(approval, operator, resolution).await??)
        }
        .instrument(span)
        .await
    }

    /// Every pending approval, across sandboxes.
    pub async fn pending(&self) -> Vec<Approval> {
        // Only the session tasks know approvals: no need to read each sandbox's record.
        let sessions: Vec<Session> = self.inner.sessions.read().await.values().cloned().collect();
        let mut out = Vec::new();
        for s in sessions {
            if let Ok(view) = s.view().await {
                out.extend(view.pending);
            }
        }
        out.sort_by_key(|a| a.id);
        out
    }

    /// An operator drives the sandbox (they must hold control). Typed text is recorded only as a
    /// hash and a length.
    pub async fn human_input(&self, id: &str, operator: &str, action: Action) -> Result<(), CommandError> {
        let span = tracing::info_span!("human_input", sandbox = id, operator, kind = %action.kind());
        async move {
            let session = self.session(id).await?;
            let epoch = session.admit_human(operator).await??;
            let outcome = gateway::execute(&session, &action, Duration::ZERO).await;
            self.record(
                Some(id),
                Actor::operator(operator),
                Record::HumanInput(HumanInput {
                    viewer: None,
                    transport: None,
                    epoch: Some(epoch),
                    action: Some(HumanAction::of(&action)),
                    summary: None,
                    ok: outcome.is_ok(),
                    error: outcome.as_ref().err().map(|e| chain(e)),
                    handback_note: None,
                }),
            )
            .await?;
            self.events().publish(Event::ActionExecuted {
                sandbox: id.to_string(),
                by: By::Operator(operator.to_string()),
                action: redact_action(&action),
                ok: outcome.is_ok(),
                error: outcome.as_ref().err().map(|e| chain(e)),
                frame_after: None,
                at_ms: now_ms(),
            });
            outcome.map(|_| ()).map_err(CommandError::Guest)
        }
        .instrument(span)
        .await
    }

    /// The current screen of a sandbox (for operators), stored as a blob.
    pub async fn screenshot(&self, id: &str) -> Result<Frame, CommandError> {
        let session = self.session(id).await?;
        let frame = gateway::capture(&session.guest).await?;
        self.ledger()
            .put_blob(&frame.png)
            .await
            .map_err(CommandError::Ledger)?;
        Ok(frame)
    }

    /// Switches shadow mode (operators only) and records it.
    #[tracing::instrument(skip(self))]
    pub async fn set_mode(&self, mode: Mode, operator: &str) -> Result<(), CommandError> {
        if let Ok(mut m) = self.inner.mode.write() {
            *m = mode;
        }
        self.record(
            None,
            Actor::operator(operator),
            Record::PolicyChanged(PolicyChanged::ModeSet {
                mode,
                policy_version: self.policy().version().to_string(),
            }),
        )
        .await?;
        self.events().publish(Event::PolicyMode {
            mode,
            by: operator.to_string(),
            at_ms: now_ms(),
        });
        Ok(())
    }

    /// Records a summary of an operator's input stream (counts, durations; typed keys only as a
    /// hash and a count), as a viewer socket sends it.
    pub async fn record_human_input_summary(
        &self,
        id: &str,
        operator: &str,
        input: HumanInput,
    ) -> Result<(), CommandError> {
        self.record(Some(id), Actor::operator(operator), Record::HumanInput(input))
            .await
    }

    /// Records who may do what: a view link made, used, refused or revoked, or a request refused
    /// for the caller's role (`who` is the operator, or `link:ID`).
    pub async fn record_access(
        &self,
        sandbox: Option<&str>,
        who: &str,
        record: airlock_records::AccessRecord,
    ) -> Result<(), CommandError> {
        self.record(sandbox, Actor::operator(who), Record::Access(record))
            .await
    }

    async fn record(&self, sandbox: Option<&str>, actor: Actor, record: Record) -> Result<(), CommandError> {
        let draft = record.draft(now_ms(), sandbox.map(str::to_string), actor)?;
        self.ledger()
            .append(draft)
            .await
            .map(|_| ())
            .map_err(CommandError::Ledger)
    }

    /// Stops all sessions (sandboxes keep running under their keepers).
    pub async fn shutdown(&self) {
        self.inner.sessions.write().await.clear();
        let _ = self
            .record(
                None,
                Actor::default(),
                Record::Lifecycle(Lifecycle::SupervisorStopped),
            )
            .await;
    }
}

/// The event form of a human's action: typed text is not published.
fn redact_action(action: &Action) -> Action {
    match action {
        Action::Type { text } => Action::Type {
            text: format!("<{} bytes typed by the operator>", text.len()),
        },
        other => other.clone(),
    }
}
