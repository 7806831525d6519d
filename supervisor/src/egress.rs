//! The egress gateway: the only way out of a sandbox. Every connection a program makes to the
//! guest's proxy endpoint arrives here as a stream over the guest channel.
//!
//! The host is authoritative; the guest only forwards bytes. Per connection: parse the proxy
//! request (HTTP `CONNECT`, absolute-URI `http://`, SOCKS5 with a remote name) and normalise the
//! host → the policy decides allow / ask / deny on `connect` (a forbid wins over any grant) → an
//! ask is answered by a standing grant, or holds the connection until an operator decides
//! (concurrent attempts to one destination share one ask) →
//! only then resolve the name (on the host; the guest never resolves anything) → the policy judges
//! the resolved address (private, loopback, metadata… are refused unless a rule makes an
//! exception; the supervisor's own listening ports never) → dial the pinned address → for TLS,
//! check that the ClientHello's server name is the host that was allowed (a forwarded HTTP request
//! carries one request, its `Host` set to the allowed one) → splice, within each side's credit; no
//! byte goes upstream before the decision is committed to the ledger. Every attempt goes on the ledger when it is decided; a connection that was let
//! through also when it closes (bytes, duration, error).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_domain::{
    Destination, DestinationView, DnsGroup, EgressAsk, EgressAskError, EgressAskState, EgressGrants,
    EgressOutcome, EgressProtocol, EgressRecord, EgressResolution, EgressScope, NetworkView,
};
use airlock_egress::request::{
    parse_http, parse_socks5_greeting, parse_socks5_request, socks5_reply, Parse, ProxyRequest, Socks5Reply,
    SOCKS5_METHOD_REPLY,
};
use airlock_egress::{classify, Host};
use airlock_ledger::{Actor, Draft};
use airlock_policy::{Connect, Decision, Resolved, Subject};
use airlock_protocol::{Flow, Notice, ProxyKind, StreamMessage, MAX_STREAMS};
use airlock_records::Record;
use airlock_sandbox::{EgressSink, GuestClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::{now_ms, Event, Supervisor};

/// How long dialling an upstream may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a program may take to send its proxy request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Destinations the Network view remembers per sandbox; the least recently seen go first.
const MAX_DESTINATIONS: usize = 1024;
/// DNS groups remembered per sandbox.
const MAX_DNS_GROUPS: usize = 256;
/// How often refused DNS lookups are written to the ledger, at most.
const DNS_FLUSH: Duration = Duration::from_secs(2);
/// Messages a stream's task may have waiting before the stream is closed.
const MAX_QUEUED: usize = 1024;
/// Network asks that may wait for an operator at once, per sandbox.
const MAX_PENDING_ASKS: usize = 32;
/// How long a program may take to send its TLS ClientHello after the tunnel opened.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// How the gateway resolves a name the policy allowed. By default the host's resolver; tests map
/// names to their own servers on 127.0.0.1 and point unmapped names at their own DNS server, so
/// nothing ever leaves the machine.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Names and the address each resolves to.
    pub map: HashMap<String, IpAddr>,
    /// A DNS server (UDP) for names the map does not list; with a map and no server, unlisted
    /// names do not resolve at all.
    pub server: Option<SocketAddr>,
}

/// Why the gateway could not resolve a name it allowed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver map (tests) does not list the name and there is no DNS server to ask.
    #[error("the name {0} does not resolve (the gateway's resolver map does not list it)")]
    NotMapped(String),
    /// The host's resolver failed.
    #[error("the name {name} does not resolve")]
    Lookup {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It resolves to no (IPv4) address.
    #[error("the name {0} resolves to no address")]
    NoAddress(String),
    /// The query could not be written (the name does not fit DNS).
    #[error("cannot ask about the name {name}")]
    Query {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: airlock_egress::resolve::ResolveError,
    },
    /// The DNS server could not be reached.
    #[error("cannot ask the DNS server {server} about {name}")]
    Server {
        /// The server.
        server: SocketAddr,
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The DNS server did not answer in time.
    #[error("the DNS server {server} did not answer about {name} in time")]
    Timeout {
        /// The server.
        server: SocketAddr,
        /// The name.
        name: String,
    },
    /// The DNS server's answer says the name does not resolve, or cannot be read.
    #[error("the name {name} does not resolve")]
    Answer {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: airlock_egress::resolve::ResolveError,
    },
}

impl Resolver {
    async fn resolve(&self, host: &Host, port: u16) -> Result<IpAddr, ResolveError> {
        let name = match host {
            Host::Ip(ip) => return Ok(*ip),
            Host::Name(name) => name,
        };
        if let Some(ip) = self.map.get(name) {
            return Ok(*ip);
        }
        if let Some(server) = self.server {
            return ask_server(server, name).await;
        }
        if !self.map.is_empty() {
            return Err(ResolveError::NotMapped(name.clone()));
        }
        let mut addrs = tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|source| ResolveError::Lookup {
                name: name.clone(),
                source,
            })?;
        addrs
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| ResolveError::NoAddress(name.clone()))
    }
}

/// One `A` lookup at a DNS server, over UDP, with a deadline.
async fn ask_server(server: SocketAddr, name: &str) -> Result<IpAddr, ResolveError> {
    use airlock_egress::resolve::{a_answers, a_query};
    let id = rand_id();
    let query = a_query(id, name).map_err(|source| ResolveError::Query {
        name: name.to_string(),
        source,
    })?;
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let unreachable = |source| ResolveError::Server {
        server,
        name: name.to_string(),
        source,
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.map_err(unreachable)?;
    socket.connect(server).await.map_err(unreachable)?;
    socket.send(&query).await.map_err(unreachable)?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| ResolveError::Timeout {
                server,
                name: name.to_string(),
            })?
            .map_err(unreachable)?;
        match a_answers(&buf[..n], id) {
            Ok(addrs) => {
                return addrs
                    .first()
                    .map(|a| IpAddr::V4(*a))
                    .ok_or_else(|| ResolveError::NoAddress(name.to_string()))
            }
            Err(airlock_egress::resolve::ResolveError::WrongId { .. }) => continue,
            Err(source) => {
                return Err(ResolveError::Answer {
                    name: name.to_string(),
                    source,
                })
            }
        }
    }
}

/// A query id nobody can guess ahead (the id is the only defence of a UDP query against forged
/// answers from the local network).
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u16
}

/// One sandbox's egress: its streams, asks, grants and what it has reached.
pub struct Hub {
    /// This hub, for the tasks it spawns.
    me: std::sync::Weak<Hub>,
    sandbox: String,
    sup: Supervisor,
    guest: Arc<GuestClient>,
    runtime: tokio::runtime::Handle,
    streams: Mutex<HashMap<u32, StreamSlot>>,
    /// Streams the reader closed while their task still ran (see [`Hub::closed_here`]).
    closed_here: Mutex<std::collections::HashSet<u32>>,
    state: Mutex<State>,
}

struct StreamSlot {
    /// Guest → host accounting, checked before anything is queued (bounds memory per stream).
    flow: Flow,
    tx: mpsc::UnboundedSender<StreamMessage>,
    /// Messages queued for the task and not yet taken (control messages carry no bytes, so the
    /// credit window does not bound them: this does).
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Wakes the task out of a decision or a dial when the stream ends.
    ended: Arc<tokio::sync::Notify>,
    /// The guest closed it; the task is finishing (the slot counts until it has).
    guest_closed: bool,
}

#[derive(Default)]
struct State {
    agent: String,
    next_connection: u64,
    grants: EgressGrants,
    asks: HashMap<u64, PendingAsk>,
    destinations: HashMap<Destination, DestinationView>,
    dns_total: Option<airlock_egress::dns::Refusals>,
    dns_pending: Option<airlock_egress::dns::Refusals>,
    dns_flush_scheduled: bool,
}

struct PendingAsk {
    ask: EgressAsk,
    decided: watch::Sender<Option<EgressAskState>>,
}

/// What the gate decided about one attempt.
struct Verdict {
    outcome: EgressOutcome,
    rules: Vec<String>,
    approver: Option<String>,
    /// Why, for the ledger and the operator.
    reason: String,
    /// Why, for the program (no operator names).
    guest: String,
    /// Shadow mode let a denial through: the ledger says it would have been denied.
    would_deny: bool,
    /// Bytes the connection may send before it is paused and asked about again.
    upload_budget: Option<u64>,
}

impl Verdict {
    fn lets_through(&self) -> bool {
        match self.outcome {
            EgressOutcome::Allowed | EgressOutcome::Granted | EgressOutcome::Approved => true,
            EgressOutcome::Denied | EgressOutcome::Refused | EgressOutcome::Failed => false,
        }
    }
}

/// Why a sandbox's egress gateway could not be attached (its connections are then refused).
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The guest channel refused it.
    #[error("cannot attach the egress gateway")]
    Channel(#[from] airlock_sandbox::ChannelError),
    /// The blocking task that attaches it failed.
    #[error("attaching the egress gateway failed")]
    Task(#[from] tokio::task::JoinError),
}

impl Hub {
    /// The hub for a sandbox, attached as its guest's egress gateway.
    pub async fn attach(
        sup: Supervisor,
        sandbox: String,
        guest: Arc<GuestClient>,
    ) -> Result<Arc<Hub>, AttachError> {
        let hub = Arc::new_cyclic(|me| Hub {
            me: me.clone(),
            sandbox,
            sup,
            guest: guest.clone(),
            runtime: tokio::runtime::Handle::current(),
            streams: Mutex::new(HashMap::new()),
            closed_here: Mutex::new(std::collections::HashSet::new()),
            state: Mutex::new(State::default()),
        });
        let sink: Arc<dyn EgressSink> = hub.clone();
        tokio::task::spawn_blocking(move || guest.attach_egress(sink)).await??;
        Ok(hub)
    }

    /// Notes the agent working in the sandbox (asks and records name it).
    pub fn note_agent(&self, agent: &str) {
        if let Ok(mut st) = self.state.lock() {
            if st.agent != agent {
                st.agent = agent.to_string();
            }
        }
    }

    /// Sends to the guest without blocking; if the guest does not take it (it stopped reading its
    /// channel), the stream ends here.
    fn send(&self, id: u32, msg: StreamMessage) {
        if let Err(e) = self.guest.send_stream(id, msg) {
            tracing::debug!(sandbox = %self.sandbox, stream = id, error = %e, "cannot send to the guest");
            self.end_slot(id);
        }
    }

    /// The gateway used `n` bytes of stream `id`: credit goes back to the guest in batches.
    fn consumed(&self, id: u32, n: usize) {
        let credit = self
            .streams
            .lock()
            .ok()
            .and_then(|mut s| s.get_mut(&id).and_then(|slot| slot.flow.consumed(n)));
        if let Some(c) = credit {
            self.send(id, StreamMessage::Credit(c));
        }
    }

    /// Forgets stream `id` and wakes its task out of whatever it waits for.
    fn end_slot(&self, id: u32) {
        let slot = self.streams.lock().ok().and_then(|mut s| s.remove(&id));
        if let Some(slot) = slot {
            slot.ended.notify_one();
        }
    }

    /// Whether the gateway's reader already closed stream `id` (then its task sends no close of
    /// its own, which would only hide the reader's reason). Each task asks once, as it ends.
    fn closed_here(&self, id: u32) -> bool {
        self.closed_here.lock().is_ok_and(|mut c| c.remove(&id))
    }

    fn close(&self, id: u32, reason: Option<String>) {
        if let Ok(mut c) = self.closed_here.lock() {
            c.remove(&id);
        }
        self.end_slot(id);
        self.send(id, StreamMessage::Close { reason });
    }

    /// Closes a stream from the channel's reader thread, waiting for room in the queue to the
    /// guest (a guest that floods without reading is itself no longer read meanwhile).
    fn close_from_reader(&self, id: u32, reason: String) {
        let slot = self.streams.lock().ok().and_then(|mut s| s.remove(&id));
        if let Some(slot) = slot {
            // Its task is still running: it must end without a close of its own. (Bounded: one
            // entry per running task, taken when it ends.)
            if let Ok(mut c) = self.closed_here.lock() {
                c.insert(id);
            }
            slot.ended.notify_one();
        }
        let close = StreamMessage::Close { reason: Some(reason) };
        if let Err(e) = self.guest.send_stream_wait(id, close) {
            tracing::debug!(sandbox = %self.sandbox, stream = id, error = %e, "cannot send to the guest");
        }
    }

    /// The sandbox's network, for the console.
    pub fn view(&self) -> NetworkView {
        let now = now_ms();
        let Ok(st) = self.state.lock() else {
            return NetworkView {
                sandbox: self.sandbox.clone(),
                destinations: vec![],
                asks: vec![],
                grants: vec![],
                dns_refused: vec![],
                dns_unlisted: 0,
            };
        };
        let mut destinations: Vec<DestinationView> = st.destinations.values().cloned().collect();
        destinations.sort_by_key(|d| std::cmp::Reverse(d.last_seen_ms));
        let mut asks: Vec<EgressAsk> = st.asks.values().map(|p| p.ask.clone()).collect();
        asks.sort_by_key(|a| a.id);
        let (dns_refused, dns_unlisted) = match &st.dns_total {
            Some(r) => {
                let d = r.clone().drain();
                (d.groups.into_iter().map(dns_group).collect(), d.overflow)
            }
            None => (vec![], 0),
        };
        NetworkView {
            sandbox: self.sandbox.clone(),
            destinations,
            asks,
            grants: st.grants.active(now),
            dns_refused,
            dns_unlisted,
        }
    }

    /// Pending asks.
    pub fn pending(&self) -> Vec<EgressAsk> {
        self.view().asks
    }

    /// An operator decides an ask.
    pub async fn resolve(
        &self,
        ask: u64,
        operator: &str,
        resolution: EgressResolution,
    ) -> Result<EgressAsk, EgressError> {
        let now = now_ms();
        // Decide on a copy first: "add to policy" must succeed before anything changes.
        let mut decided_ask = {
            let st = self.state.lock().map_err(|_| EgressError::Poisoned)?;
            st.asks.get(&ask).ok_or(EgressError::UnknownAsk(ask))?.ask.clone()
        };
        if let Err(e) = decided_ask.resolve(operator, resolution, now) {
            if let EgressAskError::Expired { .. } = e {
                // Its deadline passed: it ends now, as its waiters would end it.
                self.expire(ask).await;
            }
            return Err(e.into());
        }
        if let EgressAskState::Allowed {
            scope: EgressScope::Policy,
            ..
        } = &decided_ask.state
        {
            for d in &decided_ask.destinations {
                self.sup
                    .add_policy_rule(&airlock_policy::connect_rule(&d.host, d.port), operator)
                    .await
                    .map_err(|e| EgressError::Policy(crate::chain(&e)))?;
            }
        }
        let decided = {
            let mut st = self.state.lock().map_err(|_| EgressError::Poisoned)?;
            let mut p = st.asks.remove(&ask).ok_or(EgressError::UnknownAsk(ask))?;
            // Connections that joined meanwhile are counted in the final state too.
            decided_ask.waiting = p.ask.waiting;
            p.ask = decided_ask;
            if let EgressAskState::Allowed {
                by,
                scope,
                upload_budget,
            } = &p.ask.state
            {
                if p.ask.over_budget.is_none() {
                    for d in &p.ask.destinations {
                        st.grants.issue(d, by, *scope, *upload_budget, now);
                    }
                }
            }
            p
        };
        // On the record before the waiting connections go on (their decisions follow it).
        self.ask_ended(&decided.ask).await;
        let _ = decided.decided.send(Some(decided.ask.state.clone()));
        Ok(decided.ask)
    }

    async fn ask_ended(&self, ask: &EgressAsk) {
        let by = match &ask.state {
            EgressAskState::Allowed { by, .. } | EgressAskState::Denied { by, .. } => {
                Actor::operator(by.clone())
            }
            EgressAskState::Pending | EgressAskState::Expired => Actor::default(),
        };
        self.record(by, EgressRecord::AskResolved { ask: ask.clone() })
            .await;
        self.sup
            .events()
            .publish(Event::EgressResolved { ask: ask.clone() });
    }

    /// An agent asks ahead for destinations: one card, no connection held.
    pub async fn request(
        &self,
        agent: &str,
        hosts: &[(String, u16)],
        reason: &str,
    ) -> Result<EgressAsk, EgressError> {
        if hosts.is_empty() || hosts.len() > 32 {
            return Err(EgressError::Invalid(format!(
                "request_network takes 1 to 32 destinations, not {}",
                hosts.len()
            )));
        }
        // Each destination is judged by the policy as a connection would be: a forbid refuses
        // the request (naming it), an allow needs no card, and only asks go in front of the
        // operator — never grantable when any rule says so.
        let mut destinations = Vec::new();
        let (mut rules, mut grantable) = (Vec::new(), true);
        for (h, port) in hosts {
            let host = airlock_egress::parse_host(h).map_err(|e| EgressError::Invalid(e.to_string()))?;
            let dest = Destination {
                host: host.to_string(),
                port: *port,
            };
            let eval = self.evaluate(&dest, &host, "connect", None);
            match airlock_policy::enforce(&eval, self.sup.mode()).decision {
                Decision::Deny => return Err(EgressError::Denied(eval.reason)),
                Decision::Allow => continue,
                Decision::Ask => {}
            }
            grantable &= eval.grantable;
            for r in eval.rules {
                if !rules.contains(&r) {
                    rules.push(r);
                }
            }
            if !destinations.contains(&dest) {
                destinations.push(dest);
            }
        }
        if destinations.is_empty() {
            return Err(EgressError::Invalid(
                "the policy already allows every destination asked for: nothing to ask".into(),
            ));
        }
        let (ask, mut rx) = self
            .open_ask(AskSpec {
                asked_ms: now_ms(),
                destinations: destinations.clone(),
                protocol: None,
                agent_reason: Some(reason.to_string()),
                rules,
                reason: format!("{agent} asks ahead for network access"),
                grantable,
                over_budget: None,
            })
            .await
            .ok_or_else(|| {
                EgressError::Invalid(format!(
                    "{MAX_PENDING_ASKS} network asks already wait for an operator; try again later"
                ))
            })?;
        self.record(
            Actor {
                agent: Some(agent.to_string()),
                ..Actor::default()
            },
            EgressRecord::Requested {
                ask: ask.id,
                agent: agent.to_string(),
                destinations,
                reason: reason.to_string(),
            },
        )
        .await;
        let wait = Duration::from_millis(ask.deadline_ms.saturating_sub(now_ms()));
        if tokio::time::timeout(wait, rx.wait_for(|d| d.is_some()))
            .await
            .is_err()
        {
            self.expire(ask.id).await;
        }
        let state = rx.borrow().clone().unwrap_or(EgressAskState::Expired);
        Ok(EgressAsk { state, ..ask })
    }

    /// Registers an ask (or joins the pending one for the same single destination) and returns it
    /// with a receiver of its decision. `asked_ms` is when the request arrived. The card goes out
    /// at once; the frame of what the agent was doing follows in a second event when captured.
    async fn open_ask(&self, spec: AskSpec) -> Option<(EgressAsk, watch::Receiver<Option<EgressAskState>>)> {
        let AskSpec {
            asked_ms,
            destinations,
            protocol,
            agent_reason,
            rules,
            reason,
            grantable,
            over_budget,
        } = spec;
        let policy_rule = destinations
            .iter()
            .map(|d| airlock_policy::connect_rule(&d.host, d.port))
            .collect::<Vec<_>>()
            .join("\n\n");
        // Join the pending ask for the same destination, or register a new one, in one step.
        let (ask, rx, joined) = {
            let mut st = match self.state.lock() {
                Ok(s) => s,
                Err(e) => e.into_inner(),
            };
            let joinable = protocol.is_some() && over_budget.is_none();
            let full = st.asks.len() >= MAX_PENDING_ASKS;
            let existing = st.asks.values_mut().find(|p| {
                joinable
                    && p.ask.protocol.is_some()
                    && p.ask.over_budget.is_none()
                    && p.ask.destinations == destinations
                    && p.ask.state == EgressAskState::Pending
            });
            match existing {
                Some(p) => {
                    p.ask.waiting = p.ask.waiting.saturating_add(1);
                    (p.ask.clone(), p.decided.subscribe(), true)
                }
                None if full => return None,
                None => {
                    let (tx, rx) = watch::channel(None);
                    let ask = EgressAsk {
                        id: self.sup.next_approval_id(),
                        sandbox: self.sandbox.clone(),
                        agent: st.agent.clone(),
                        destinations,
                        protocol,
                        waiting: u32::from(protocol.is_some()),
                        agent_reason,
                        frame_png: None,
                        rules,
                        reason,
                        policy_rule,
                        grantable,
                        over_budget,
                        requested_ms: asked_ms,
                        deadline_ms: asked_ms.saturating_add(self.sup.approval_timeout().as_millis() as u64),
                        state: EgressAskState::Pending,
                    };
                    st.asks.insert(
                        ask.id,
                        PendingAsk {
                            ask: ask.clone(),
                            decided: tx,
                        },
                    );
                    (ask, rx, false)
                }
            }
        };
        // The card goes out at once; the frame of what the agent was doing follows.
        self.sup.events().publish(Event::EgressAsked { ask: ask.clone() });
        if joined {
            return Some((ask, rx));
        }
        let frame_png = match crate::gateway::capture(&self.guest).await {
            Ok(frame) => self
                .sup
                .ledger()
                .put_blob(&frame.png)
                .await
                .ok()
                .map(|d| d.to_string()),
            Err(e) => {
                tracing::debug!(sandbox = %self.sandbox, error = %e, "no frame for the network ask");
                None
            }
        };
        let updated = self.state.lock().ok().and_then(|mut st| {
            let p = st.asks.get_mut(&ask.id)?;
            p.ask.frame_png = frame_png.clone();
            Some(p.ask.clone())
        });
        let ask = match updated {
            Some(a) => {
                self.sup.events().publish(Event::EgressAsked { ask: a.clone() });
                a
            }
            None => EgressAsk { frame_png, ..ask },
        };
        Some((ask, rx))
    }

    /// Expires an ask whose deadline passed (no-op if it was decided).
    async fn expire(&self, id: u64) {
        let expired = {
            let Ok(mut st) = self.state.lock() else { return };
            let now = now_ms();
            match st.asks.get_mut(&id) {
                // Called when its waiter's time is up (a monotonic clock; the wall clock may
                // disagree): it ends as expired.
                Some(p) => {
                    p.ask.expire(now.max(p.ask.deadline_ms));
                    st.asks.remove(&id)
                }
                None => None,
            }
        };
        if let Some(p) = expired {
            self.ask_ended(&p.ask).await;
            let _ = p.decided.send(Some(p.ask.state.clone()));
        }
    }

    /// Appends a record to the ledger (and publishes it); whether it was committed.
    async fn record(&self, actor: Actor, record: EgressRecord) -> bool {
        let entry = Record::Egress(record.clone());
        let draft = match entry.draft(now_ms(), Some(self.sandbox.clone()), actor) {
            Ok(d) => Draft {
                policy_hash: Some(self.sup.policy().version().to_string()),
                ..d
            },
            Err(e) => {
                tracing::error!(error = %crate::chain(&e), "cannot encode an egress record");
                return false;
            }
        };
        if let Err(e) = self.sup.ledger().append(draft).await {
            tracing::error!(sandbox = %self.sandbox, error = %e, "cannot record egress");
            return false;
        }
        self.sup.events().publish(Event::Egress {
            sandbox: self.sandbox.clone(),
            record,
        });
        true
    }

    /// The policy's judgement of a destination: before anything is resolved (`resolved: None`),
    /// or of the address it resolved to.
    fn evaluate(
        &self,
        dest: &Destination,
        host: &Host,
        protocol: &str,
        resolved: Option<Resolved<'_>>,
    ) -> airlock_policy::Evaluation {
        let agent = self.state.lock().map(|s| s.agent.clone()).unwrap_or_default();
        self.sup.policy().evaluate_connect(
            &Subject {
                agent: if agent.is_empty() { "unknown" } else { &agent },
                principal: "unknown",
                sandbox: &self.sandbox,
            },
            &Connect {
                host: &dest.host,
                port: dest.port,
                protocol,
                ip_literal: matches!(host, Host::Ip(_)),
                resolved,
            },
        )
    }

    /// Decides an attempt: the policy first (a forbid wins over everything, grants included); an
    /// ask is answered by a standing grant, else by an operator.
    async fn decide(
        &self,
        dest: &Destination,
        host: &Host,
        protocol: EgressProtocol,
        asked_ms: u64,
    ) -> Verdict {
        let eval = self.evaluate(dest, host, protocol.as_str(), None);
        let verdict = airlock_policy::enforce(&eval, self.sup.mode());
        let would_deny = verdict.shadow_denied;
        let plain = |outcome| Verdict {
            outcome,
            rules: eval.rules.clone(),
            approver: None,
            reason: eval.reason.clone(),
            guest: eval.reason.clone(),
            would_deny,
            upload_budget: None,
        };
        match verdict.decision {
            Decision::Allow => return plain(EgressOutcome::Allowed),
            Decision::Deny => return plain(EgressOutcome::Denied),
            Decision::Ask => {}
        }
        let grant = self
            .state
            .lock()
            .ok()
            .and_then(|mut st| st.grants.covering(dest, now_ms()).cloned());
        if let Some(g) = grant {
            if eval.grantable {
                let reason = format!("{dest} is granted to this sandbox by {}", g.by);
                return Verdict {
                    outcome: EgressOutcome::Granted,
                    rules: eval.rules,
                    approver: Some(g.by.clone()),
                    guest: format!("{dest} is granted to this sandbox"),
                    reason,
                    would_deny,
                    upload_budget: g.upload_budget,
                };
            }
        }
        let spec = AskSpec {
            asked_ms,
            destinations: vec![dest.clone()],
            protocol: Some(protocol),
            agent_reason: None,
            rules: eval.rules.clone(),
            reason: eval.reason.clone(),
            grantable: eval.grantable,
            over_budget: None,
        };
        let Some(end) = self.ask_and_wait(spec).await else {
            return Verdict {
                guest: format!(
                    "{MAX_PENDING_ASKS} network asks already wait for an operator; try again later"
                ),
                ..plain(EgressOutcome::Refused)
            };
        };
        match end {
            EgressAskState::Allowed {
                by,
                scope,
                upload_budget,
            } => Verdict {
                outcome: EgressOutcome::Approved,
                rules: eval.rules,
                approver: Some(by.clone()),
                reason: format!("{by} allowed {dest} ({})", scope_text(scope)),
                guest: format!("an operator allowed {dest}"),
                would_deny,
                upload_budget,
            },
            EgressAskState::Denied { by, reason } => Verdict {
                outcome: EgressOutcome::Refused,
                rules: eval.rules,
                approver: Some(by.clone()),
                guest: match &reason {
                    Some(r) => format!("an operator denied {dest}: {r}"),
                    None => format!("an operator denied {dest}"),
                },
                reason: match reason {
                    Some(r) => format!("{by} denied {dest}: {r}"),
                    None => format!("{by} denied {dest}"),
                },
                would_deny,
                upload_budget: None,
            },
            EgressAskState::Pending | EgressAskState::Expired => {
                let why = format!("nobody answered the ask about {dest} in time");
                Verdict {
                    outcome: EgressOutcome::Refused,
                    rules: eval.rules,
                    approver: None,
                    reason: why.clone(),
                    guest: why,
                    would_deny,
                    upload_budget: None,
                }
            }
        }
    }

    /// Opens an ask (or joins one) and waits for its decision; expiry counts as a refusal.
    /// `None` when too many asks wait already.
    async fn ask_and_wait(&self, spec: AskSpec) -> Option<EgressAskState> {
        let (ask, mut rx) = self.open_ask(spec).await?;
        let wait = Duration::from_millis(ask.deadline_ms.saturating_sub(now_ms()));
        if tokio::time::timeout(wait, rx.wait_for(|d| d.is_some()))
            .await
            .is_err()
        {
            self.expire(ask.id).await;
        }
        let end = rx.borrow().clone();
        Some(end.unwrap_or(EgressAskState::Expired))
    }

    /// The second judgement: the address the name resolved to.
    fn judge_address(
        &self,
        dest: &Destination,
        host: &Host,
        protocol: EgressProtocol,
        ip: IpAddr,
    ) -> Result<(), Failure> {
        if self.sup.is_own_address(ip, dest.port) {
            return Err(Failure {
                ledger: format!(
                    "{dest} resolves to {ip}, where the Airlock supervisor itself listens: never reachable from a sandbox"
                ),
                guest: format!("{dest} is never reachable from a sandbox"),
            });
        }
        let address = ip.to_string();
        let resolved = Resolved {
            address: &address,
            class: classify(ip).as_str(),
        };
        let eval = self.evaluate(dest, host, protocol.as_str(), Some(resolved));
        // The destination itself was decided already: here a rule's denial refuses, and so does a
        // rule that asks (an operator cannot be asked about an address mid-connection); the
        // default decision does not apply. The program is not told the address.
        let refused = |why: &str| Failure {
            ledger: eval.reason.clone(),
            guest: format!(
                "{dest} resolves to an address this sandbox may not reach ({why} {})",
                eval.rules.join(", ")
            ),
        };
        match eval.decision {
            Decision::Deny if !eval.defaulted => Err(refused("rule")),
            Decision::Ask if !eval.defaulted => Err(refused(
                "rules that ask about resolved addresses are not supported:",
            )),
            Decision::Deny | Decision::Allow | Decision::Ask => Ok(()),
        }
    }

    fn seen(&self, dest: &Destination, verdict: &Verdict, up: u64, down: u64, opened: bool) {
        let Ok(mut st) = self.state.lock() else { return };
        let now = now_ms();
        if !st.destinations.contains_key(dest) && st.destinations.len() >= MAX_DESTINATIONS {
            let oldest = st
                .destinations
                .values()
                .min_by_key(|d| d.last_seen_ms)
                .map(|d| d.destination.clone());
            if let Some(o) = oldest {
                st.destinations.remove(&o);
            }
        }
        let v = st
            .destinations
            .entry(dest.clone())
            .or_insert_with(|| DestinationView {
                destination: dest.clone(),
                outcome: verdict.outcome,
                rules: vec![],
                connections: 0,
                open: 0,
                bytes_up: 0,
                bytes_down: 0,
                last_seen_ms: now,
            });
        if opened {
            v.connections += 1;
            v.outcome = verdict.outcome;
            v.rules = verdict.rules.clone();
            if verdict.lets_through() {
                v.open += 1;
            }
        } else {
            v.open = v.open.saturating_sub(1);
        }
        v.bytes_up += up;
        v.bytes_down += down;
        v.last_seen_ms = now;
    }

    /// Marks a destination's last attempt as failed after it was allowed.
    fn failed(&self, dest: &Destination) {
        if let Ok(mut st) = self.state.lock() {
            if let Some(v) = st.destinations.get_mut(dest) {
                v.outcome = EgressOutcome::Failed;
            }
        }
    }

    async fn on_dns(self: Arc<Self>, names: Vec<(String, u32)>, unlisted: u32) {
        let schedule = {
            let Ok(mut st) = self.state.lock() else { return };
            let st = &mut *st;
            for r in [&mut st.dns_total, &mut st.dns_pending] {
                let agg = r.get_or_insert_with(|| airlock_egress::dns::Refusals::new(MAX_DNS_GROUPS));
                for (n, c) in &names {
                    agg.record(n, *c);
                }
                if unlisted > 0 {
                    agg.record("(unlisted)", unlisted);
                }
            }
            !std::mem::replace(&mut st.dns_flush_scheduled, true)
        };
        if schedule {
            tokio::time::sleep(DNS_FLUSH).await;
            let drained = {
                let Ok(mut st) = self.state.lock() else { return };
                st.dns_flush_scheduled = false;
                st.dns_pending.take().map(|mut r| r.drain())
            };
            if let Some(d) = drained {
                let record = EgressRecord::DnsRefused {
                    groups: d.groups.into_iter().map(dns_group).collect(),
                    unlisted: d.overflow,
                };
                self.record(Actor::default(), record).await;
            }
        }
    }

    fn connection_number(&self) -> u64 {
        self.state
            .lock()
            .map(|mut s| {
                s.next_connection += 1;
                s.next_connection
            })
            .unwrap_or(0)
    }
}

fn scope_text(scope: EgressScope) -> String {
    match scope {
        EgressScope::Once => "this connection".into(),
        EgressScope::Minutes { minutes } => format!("for {minutes} minutes"),
        EgressScope::Sandbox => "for the sandbox's life".into(),
        EgressScope::Policy => "added to the policy".into(),
    }
}

fn dns_group(g: airlock_egress::dns::RefusedGroup) -> DnsGroup {
    DnsGroup {
        group: g.group,
        count: g.count,
        examples: g.examples,
    }
}

/// What an ask is about.
struct AskSpec {
    /// When the request arrived.
    asked_ms: u64,
    destinations: Vec<Destination>,
    /// `None` when an agent asks ahead.
    protocol: Option<EgressProtocol>,
    agent_reason: Option<String>,
    rules: Vec<String>,
    reason: String,
    grantable: bool,
    /// Set when a connection is paused over its upload budget.
    over_budget: Option<airlock_domain::OverBudget>,
}

/// Why an egress command failed.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// No such ask.
    #[error("no network ask {0} is pending")]
    UnknownAsk(u64),
    /// The ask refused the resolution.
    #[error(transparent)]
    Ask(#[from] EgressAskError),
    /// Adding the rule to the policy failed.
    #[error("cannot add the rule to the policy: {0}")]
    Policy(String),
    /// A bad request.
    #[error("{0}")]
    Invalid(String),
    /// The policy forbids a destination asked for.
    #[error("denied by policy: {0}")]
    Denied(String),
    /// A lock was poisoned by a panic.
    #[error("the egress gateway's state is poisoned")]
    Poisoned,
}

impl EgressSink for Hub {
    fn stream(&self, id: u32, msg: StreamMessage) {
        if let Err(e) = msg.validate() {
            self.close_from_reader(id, crate::chain(&e));
            return;
        }
        let mut streams = match self.streams.lock() {
            Ok(s) => s,
            Err(_) => return,
        };
        match msg {
            StreamMessage::Open { kind } => {
                if streams.contains_key(&id) {
                    drop(streams);
                    self.close_from_reader(id, format!("stream {id} was opened twice"));
                    return;
                }
                // Every slot is a task that has not finished: this bounds tasks, not just streams.
                if streams.len() >= MAX_STREAMS {
                    drop(streams);
                    let close = StreamMessage::Close {
                        reason: Some(format!(
                            "{MAX_STREAMS} connections are open already; this one is refused"
                        )),
                    };
                    if let Err(e) = self.guest.send_stream_wait(id, close) {
                        tracing::debug!(sandbox = %self.sandbox, stream = id, error = %e, "cannot send to the guest");
                    }
                    return;
                }
                let Some(hub) = self.me.upgrade() else { return };
                let (tx, rx) = mpsc::unbounded_channel();
                let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let ended = Arc::new(tokio::sync::Notify::new());
                streams.insert(
                    id,
                    StreamSlot {
                        flow: Flow::default(),
                        tx,
                        queued: queued.clone(),
                        ended: ended.clone(),
                        guest_closed: false,
                    },
                );
                drop(streams);
                let from_guest = FromGuest::new(rx, queued);
                let span = tracing::info_span!("egress", sandbox = %self.sandbox, stream = id);
                self.runtime.spawn(
                    async move { serve_stream(hub, id, kind, from_guest, ended).await }.instrument(span),
                );
            }
            msg => {
                let Some(slot) = streams.get_mut(&id) else {
                    return; // late traffic for a stream that ended
                };
                if slot.guest_closed {
                    return;
                }
                let overrun = match &msg {
                    StreamMessage::Data(d) => slot.flow.received(d.len()).err().map(|e| e.to_string()),
                    _ => None,
                };
                let flooded = slot.queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= MAX_QUEUED;
                if let Some(reason) = overrun.or_else(|| {
                    flooded.then(|| {
                        format!("the guest sent over {MAX_QUEUED} messages the gateway has not taken yet")
                    })
                }) {
                    drop(streams);
                    self.close_from_reader(id, reason);
                    return;
                }
                if matches!(msg, StreamMessage::Close { .. }) {
                    slot.guest_closed = true;
                    slot.ended.notify_one();
                }
                let _ = slot.tx.send(msg);
            }
        }
    }

    fn closed(&self, reason: &str) {
        tracing::debug!(sandbox = %self.sandbox, %reason, "the guest channel closed: every connection ends");
        let slots: Vec<StreamSlot> = self
            .streams
            .lock()
            .map(|mut s| s.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        for slot in slots {
            slot.ended.notify_one();
        }
    }

    fn notice(&self, notice: Notice) {
        if let Err(e) = notice.validate() {
            tracing::warn!(sandbox = %self.sandbox, error = %e, "a guest notice was refused");
            return;
        }
        match notice {
            Notice::DnsRefused { names, unlisted } => {
                if let Some(hub) = self.sup.egress_hub(&self.sandbox) {
                    self.runtime.spawn(hub.on_dns(names, unlisted));
                }
            }
        }
    }
}

/// Bytes of one stream received from the guest (the sink accounted them against the credit it
/// granted; [`Hub::consumed`] grants it back as they are used).
struct FromGuest {
    rx: mpsc::UnboundedReceiver<StreamMessage>,
    /// The sink's count of messages waiting in `rx`.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Host → guest credit (what this side may still send).
    send: Flow,
    /// Data that arrived while this side waited for credit, to be read first.
    stash: std::collections::VecDeque<Vec<u8>>,
    eof: bool,
    closed: Option<Option<String>>,
}

impl FromGuest {
    fn new(
        rx: mpsc::UnboundedReceiver<StreamMessage>,
        queued: Arc<std::sync::atomic::AtomicUsize>,
    ) -> FromGuest {
        FromGuest {
            rx,
            queued,
            send: Flow::default(),
            stash: Default::default(),
            eof: false,
            closed: None,
        }
    }

    /// The next message from the guest.
    async fn recv(&mut self) -> Option<StreamMessage> {
        let m = self.rx.recv().await;
        if m.is_some() {
            self.queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        m
    }

    /// The next data from the guest (`None` at its end of stream or close); credits and other
    /// control messages are applied on the way.
    async fn next_data(&mut self) -> Option<Vec<u8>> {
        if let Some(d) = self.stash.pop_front() {
            return Some(d);
        }
        loop {
            if self.eof || self.closed.is_some() {
                return None;
            }
            match self.recv().await {
                Some(StreamMessage::Data(d)) => return Some(d),
                Some(other) => self.apply(other),
                None => self.closed = Some(None),
            }
        }
    }

    fn apply(&mut self, msg: StreamMessage) {
        match msg {
            StreamMessage::Credit(n) => {
                if let Err(e) = self.send.credited(n) {
                    self.closed = Some(Some(e.to_string()));
                }
            }
            StreamMessage::Eof => self.eof = true,
            StreamMessage::Close { reason } => self.closed = Some(reason),
            StreamMessage::Open { .. } => self.closed = Some(Some("a stream was opened twice".into())),
            StreamMessage::Data(_) => {}
        }
    }
}

/// What a connection's close records.
#[derive(Default)]
struct Tally {
    up: u64,
    /// Bytes up the connection may carry in all (a forwarded request: its head and body).
    up_limit: Option<u64>,
    down: u64,
    address: Option<String>,
    /// Total bytes up the connection may send before it is paused and asked about again.
    budget: Option<u64>,
}

/// Runs `f` unless the stream ends first (the guest closed it, or the channel died).
async fn unless_ended<T>(ended: &tokio::sync::Notify, f: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        v = f => Some(v),
        () = ended.notified() => None,
    }
}

async fn serve_stream(
    hub: Arc<Hub>,
    id: u32,
    kind: ProxyKind,
    mut g: FromGuest,
    ended: Arc<tokio::sync::Notify>,
) {
    let started = Instant::now();
    let mut tally = Tally::default();
    let request = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&hub, id, kind, &mut g)).await;
    let (req, head, rest) = match request {
        Ok(Ok(r)) => r,
        Ok(Err(RequestFailure::Malformed(e))) => {
            // The program gets the reason in its own protocol, then the stream ends.
            if let ProxyKind::Http = kind {
                let page = error_page(
                    "400 Bad Request",
                    "Airlock could not read this proxy request",
                    None,
                    &e,
                );
                let _ = send_data(&hub, id, &mut g, page).await;
            }
            hub.close(id, Some(e));
            return;
        }
        Ok(Err(RequestFailure::Ended(e))) => {
            hub.close(id, Some(e));
            return;
        }
        Err(_) => {
            hub.close(id, Some("the program sent no proxy request in time".into()));
            return;
        }
    };
    let (host, port, protocol) = match &req {
        ProxyRequest::Connect { host, port } => (
            host.clone(),
            *port,
            match kind {
                ProxyKind::Http => EgressProtocol::Connect,
                ProxyKind::Socks5 => EgressProtocol::Socks5,
            },
        ),
        ProxyRequest::Forward { host, port, .. } => (host.clone(), *port, EgressProtocol::Http),
    };
    let dest = Destination {
        host: host.to_string(),
        port,
    };
    let connection = hub.connection_number();
    let asked_ms = now_ms();
    let parsed = started.elapsed();
    let Some(verdict) = unless_ended(&ended, hub.decide(&dest, &host, protocol, asked_ms)).await else {
        // The program went away while its connection waited (for an operator, say) — unless the
        // gateway itself closed the stream (a flow-control breach): then the guest already has
        // that close, with its reason, and a second one would only hide it.
        if !hub.closed_here(id) {
            hub.close(
                id,
                Some("the program closed the connection before it was decided".into()),
            );
        }
        return;
    };
    let judged = started.elapsed();
    let agent = hub.state.lock().map(|s| s.agent.clone()).unwrap_or_default();
    hub.seen(&dest, &verdict, 0, 0, true);
    let recorder = hub.clone();
    let decided_actor = Actor {
        agent: (!agent.is_empty()).then(|| agent.clone()),
        operator: verdict.approver.clone(),
        ..Actor::default()
    };
    let decided_record = EgressRecord::Decided {
        connection,
        destination: dest.clone(),
        protocol,
        agent,
        outcome: verdict.outcome,
        rules: verdict.rules.clone(),
        approver: verdict.approver.clone(),
        reason: verdict.reason.clone(),
        shadow_denied: verdict.would_deny,
    };
    // The decision is committed to the ledger while the gateway resolves and dials; the first
    // byte of the connection waits for the commit, and a decision that cannot be recorded lets
    // nothing through.
    let mut decided = Some(tokio::spawn(async move {
        recorder.record(decided_actor, decided_record).await
    }));
    tally.budget = verdict.upload_budget;
    if !verdict.lets_through() {
        committed(&mut decided).await;
        refuse(&hub, id, kind, &mut g, &dest, &verdict.guest, Refusal::Policy).await;
        return;
    }
    let dialed = unless_ended(&ended, dial(&hub, &dest, &host, protocol, &mut tally)).await;
    tracing::debug!(
        %dest,
        parse_us = parsed.as_micros() as u64,
        decide_us = (judged - parsed).as_micros() as u64,
        dial_us = (started.elapsed() - judged).as_micros() as u64,
        "connection decided and dialled"
    );
    let target = Target {
        req: &req,
        head: &head,
        dest: &dest,
        host: &host,
        protocol,
    };
    let result = match dialed {
        Some(Ok(upstream)) => {
            let conn = Upstream {
                stream: upstream,
                decided: &mut decided,
            };
            tunnel(&hub, id, kind, &mut g, &target, rest, conn, &mut tally).await
        }
        Some(Err(f)) => {
            // Allowed, but it could not be carried out (no such name, an address a rule refuses,
            // the upstream refused): the Network view shows it failed; the program is told why,
            // without the host's details.
            hub.failed(&dest);
            committed(&mut decided).await;
            refuse(&hub, id, kind, &mut g, &dest, &f.guest, Refusal::Upstream).await;
            Err(f.ledger)
        }
        None => Err("the program closed the connection while it was being dialled".into()),
    };
    let error = result.err();
    if !hub.closed_here(id) {
        hub.close(id, error.clone());
    }
    committed(&mut decided).await;
    hub.seen(&dest, &verdict, tally.up, tally.down, false);
    hub.record(
        Actor::default(),
        EgressRecord::Closed {
            connection,
            destination: dest,
            address: tally.address,
            bytes_up: tally.up,
            bytes_down: tally.down,
            duration_ms: started.elapsed().as_millis() as u64,
            error,
        },
    )
    .await;
}

/// Why no proxy request could be read.
enum RequestFailure {
    /// What the program sent is not a proxy request (it is told why).
    Malformed(String),
    /// The stream ended first.
    Ended(String),
}

/// Reads the proxy request; returns it, its bytes, and the bytes after it (the start of the
/// connection).
async fn read_request(
    hub: &Hub,
    id: u32,
    kind: ProxyKind,
    g: &mut FromGuest,
) -> Result<(ProxyRequest, Vec<u8>, Vec<u8>), RequestFailure> {
    let bad = |e: airlock_egress::request::RequestError| RequestFailure::Malformed(e.to_string());
    let mut buf = Vec::new();
    let mut greeted = false;
    loop {
        let parsed = match kind {
            ProxyKind::Http => parse_http(&buf).map_err(bad)?,
            ProxyKind::Socks5 if !greeted => match parse_socks5_greeting(&buf).map_err(bad)? {
                Parse::NeedMore => Parse::NeedMore,
                Parse::Done { consumed, .. } => {
                    buf.drain(..consumed);
                    greeted = true;
                    send_data(hub, id, g, SOCKS5_METHOD_REPLY.to_vec())
                        .await
                        .map_err(RequestFailure::Ended)?;
                    continue;
                }
            },
            ProxyKind::Socks5 => parse_socks5_request(&buf).map_err(|e| {
                let reply = socks5_reply(Socks5Reply::GeneralFailure);
                hub.send(id, StreamMessage::Data(reply.to_vec()));
                RequestFailure::Ended(e.to_string())
            })?,
        };
        match parsed {
            Parse::Done { value, consumed } => {
                let rest = buf.split_off(consumed);
                return Ok((value, buf, rest));
            }
            Parse::NeedMore => {}
        }
        let Some(d) = g.next_data().await else {
            return Err(RequestFailure::Ended(match g.closed.take().flatten() {
                Some(r) => r,
                None => "the program closed the connection before its proxy request was complete".into(),
            }));
        };
        hub.consumed(id, d.len());
        buf.extend_from_slice(&d);
    }
}

/// Sends bytes to the guest within its credit, waiting for credit as needed.
async fn send_data(hub: &Hub, id: u32, g: &mut FromGuest, mut data: Vec<u8>) -> Result<(), String> {
    while !data.is_empty() {
        while g.send.sendable() == 0 {
            match g.recv().await {
                // Data from the guest while this side waits for credit: kept for the reader.
                Some(StreamMessage::Data(d)) => g.stash.push_back(d),
                Some(other) => g.apply(other),
                None => return Err("the stream ended".into()),
            }
            if let Some(Some(r)) = &g.closed {
                return Err(r.clone());
            }
            if g.closed.is_some() {
                return Err("the program closed the connection".into());
            }
        }
        let n = g.send.sendable().min(data.len());
        let rest = data.split_off(n);
        g.send.sent(n);
        hub.send(id, StreamMessage::Data(data));
        data = rest;
    }
    Ok(())
}

enum Refusal {
    Policy,
    Upstream,
}

/// Tells the program why, in its protocol: an HTTP error page naming the rule, or a SOCKS reply.
async fn refuse(
    hub: &Hub,
    id: u32,
    kind: ProxyKind,
    g: &mut FromGuest,
    dest: &Destination,
    why: &str,
    r: Refusal,
) {
    let bytes = match kind {
        ProxyKind::Http => refusal_page(dest, why, r),
        ProxyKind::Socks5 => socks5_reply(match r {
            Refusal::Policy => Socks5Reply::NotAllowed,
            Refusal::Upstream => Socks5Reply::HostUnreachable,
        })
        .to_vec(),
    };
    let _ = send_data(hub, id, g, bytes).await;
    hub.send(id, StreamMessage::Eof);
    hub.close(id, Some(why.to_string()));
}

/// The page a browser or curl shows when the gateway refuses.
fn refusal_page(dest: &Destination, why: &str, r: Refusal) -> Vec<u8> {
    let (status, title) = match r {
        Refusal::Policy => ("403 Forbidden", "Airlock refused this connection"),
        Refusal::Upstream => ("502 Bad Gateway", "Airlock could not reach this destination"),
    };
    error_page(status, title, Some(dest), why)
}

/// An HTTP error response for the program: a page a person can read, and the reason in the
/// `X-Airlock-Refusal` header for programs.
fn error_page(status: &str, title: &str, dest: Option<&Destination>, why: &str) -> Vec<u8> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"margin:0;font-family:sans-serif\">\
         <div style=\"background:#8b0000;color:#fff;padding:24px 32px\"><h1 style=\"margin:0\">{title}</h1></div>\
         <div style=\"padding:8px 32px\">{}<p>{}</p>\
         <p>Network access from this sandbox goes through Airlock's egress gateway; an operator decides \
         which destinations it may reach.</p></div></body></html>\n",
        dest.map(|d| format!("<p>Destination: <code>{}</code></p>", esc(&d.to_string())))
            .unwrap_or_default(),
        esc(why)
    );
    let header_reason: String = why
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .take(300)
        .collect();
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         X-Airlock-Refusal: {header_reason}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a connection asked for.
struct Target<'a> {
    req: &'a ProxyRequest,
    /// The proxy request's bytes.
    head: &'a [u8],
    dest: &'a Destination,
    host: &'a Host,
    protocol: EgressProtocol,
}

/// Resolves the host (on the host, now that the destination is allowed), judges the address and
/// dials it.
async fn dial(
    hub: &Hub,
    dest: &Destination,
    host: &Host,
    protocol: EgressProtocol,
    tally: &mut Tally,
) -> Result<TcpStream, Failure> {
    let ip = hub
        .sup
        .egress_resolver()
        .resolve(host, dest.port)
        .await
        .map_err(|e| Failure {
            ledger: crate::chain(&e),
            guest: format!("the name {} does not resolve", dest.host),
        })?;
    hub.judge_address(dest, host, protocol, ip)?;
    tally.address = Some(ip.to_string());
    let addr = SocketAddr::new(ip, dest.port);
    let failed = |ledger: String| Failure {
        ledger,
        guest: format!("cannot connect to {dest}"),
    };
    let upstream = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(failed(format!("cannot connect to {dest} at {addr}: {e}"))),
        Err(_) => return Err(failed(format!("connecting to {dest} at {addr} timed out"))),
    };
    let _ = upstream.set_nodelay(true);
    Ok(upstream)
}

/// Why an allowed connection could not be made: the whole story for the ledger, and what the
/// program is told (no host addresses, no resolver details, no operator names).
struct Failure {
    ledger: String,
    guest: String,
}

/// Waits until the decision record is committed (once); whether it was.
async fn committed(decided: &mut Option<tokio::task::JoinHandle<bool>>) -> bool {
    match decided.take() {
        Some(h) => match h.await {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(error = %e, "recording an egress decision failed");
                false
            }
        },
        None => true,
    }
}

/// A dialled upstream whose first byte waits for the decision's ledger commit.
struct Upstream<'a> {
    stream: TcpStream,
    decided: &'a mut Option<tokio::task::JoinHandle<bool>>,
}

/// Opens the tunnel (or forwards the request) on a dialled upstream and splices.
#[allow(clippy::too_many_arguments)]
async fn tunnel(
    hub: &Hub,
    id: u32,
    kind: ProxyKind,
    g: &mut FromGuest,
    t: &Target<'_>,
    rest: Vec<u8>,
    conn: Upstream<'_>,
    tally: &mut Tally,
) -> Result<(), String> {
    let Upstream {
        stream: mut upstream,
        decided,
    } = conn;
    let (req, dest, host, protocol) = (t.req, t.dest, t.host, t.protocol);
    let after = |e: String| e;
    let mut first = rest;
    match req {
        ProxyRequest::Connect { .. } => {
            let reply = match kind {
                ProxyKind::Http => b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
                ProxyKind::Socks5 => socks5_reply(Socks5Reply::Succeeded).to_vec(),
            };
            send_data(hub, id, g, reply).await.map_err(after)?;
            tokio::time::timeout(HELLO_TIMEOUT, check_server_name(hub, id, g, host, &mut first))
                .await
                .map_err(|_| format!("the program sent no complete TLS ClientHello to {dest} in time"))??;
        }
        ProxyRequest::Forward { method, path, .. } => {
            // One request per connection: the rewritten head, then exactly the body its
            // Content-Length announces; anything after it (a pipelined request, perhaps for
            // another host) never reaches this upstream.
            let body = match request_body_length(t.head) {
                Ok(n) => n,
                Err(e) => {
                    let why = e.to_string();
                    let page = error_page(
                        "411 Length Required",
                        "Airlock cannot forward this request",
                        Some(dest),
                        &why,
                    );
                    let _ = send_data(hub, id, g, page).await;
                    return Err(why);
                }
            };
            let mut head = origin_form_head(method, path, dest, t.head);
            tally.up_limit = Some(head.len() as u64 + body);
            first.truncate(usize::try_from(body).unwrap_or(usize::MAX));
            head.append(&mut first);
            first = head;
        }
    }
    // Nothing goes upstream before the decision is on the record.
    if !committed(decided).await {
        return Err(after(format!(
            "the decision about {dest} could not be written to the audit ledger, so nothing was sent"
        )));
    }
    if !first.is_empty() {
        over_budget(hub, dest, protocol, tally, first.len()).await?;
        upstream
            .write_all(&first)
            .await
            .map_err(|e| after(format!("cannot write to {dest}: {e}")))?;
        tally.up += first.len() as u64;
    }
    splice(hub, id, g, &mut upstream, (dest, protocol), tally)
        .await
        .map_err(after)
}

/// Reads the start of a tunnel; when it is TLS, the ClientHello's server name must be the host
/// the policy allowed (for a name; an address literal has none to compare).
async fn check_server_name(
    hub: &Hub,
    id: u32,
    g: &mut FromGuest,
    host: &Host,
    first: &mut Vec<u8>,
) -> Result<(), String> {
    loop {
        if first.is_empty() {
            match g.next_data().await {
                Some(d) => {
                    hub.consumed(id, d.len());
                    first.extend_from_slice(&d);
                }
                None => return Ok(()),
            }
        }
        if first.first() != Some(&0x16) {
            return Ok(()); // not TLS: a plain protocol through the tunnel
        }
        match airlock_egress::tls::client_hello_sni(first).map_err(|e| e.to_string())? {
            Parse::NeedMore => {
                let Some(d) = g.next_data().await else {
                    return Err("the program closed the tunnel in the middle of its TLS ClientHello".into());
                };
                hub.consumed(id, d.len());
                first.extend_from_slice(&d);
            }
            Parse::Done { value, .. } => {
                return match (value, host) {
                    (Some(sni), Host::Name(name)) if sni != *name => Err(format!(
                        "the TLS server name {sni:?} is not the host {name} that was allowed"
                    )),
                    (None, Host::Name(name)) => Err(format!(
                        "the TLS ClientHello names no server; the host allowed is {name}"
                    )),
                    (Some(_), Host::Name(_)) | (Some(_) | None, Host::Ip(_)) => Ok(()),
                }
            }
        }
    }
}

/// Pauses a connection whose next `more` bytes would pass its upload budget and asks the operator
/// again (nothing is read from the program meanwhile, so it stops sending); an allow lets it go on
/// with the new budget, if one was given, counted from here.
async fn over_budget(
    hub: &Hub,
    dest: &Destination,
    protocol: EgressProtocol,
    tally: &mut Tally,
    more: usize,
) -> Result<(), String> {
    let Some(budget) = tally.budget else {
        return Ok(());
    };
    if tally.up.saturating_add(more as u64) <= budget {
        return Ok(());
    }
    let spec = AskSpec {
        asked_ms: now_ms(),
        destinations: vec![dest.clone()],
        protocol: Some(protocol),
        agent_reason: None,
        rules: vec!["upload-budget".into()],
        reason: format!(
            "the connection to {dest} has sent {} bytes; {more} more would pass its upload budget of {budget} bytes: it is paused until an operator decides",
            tally.up
        ),
        grantable: true,
        over_budget: Some(airlock_domain::OverBudget { sent: tally.up, budget }),
    };
    match hub.ask_and_wait(spec).await.unwrap_or(EgressAskState::Expired) {
        EgressAskState::Allowed { upload_budget, .. } => {
            tally.budget = upload_budget.map(|b| tally.up.saturating_add(b));
            Ok(())
        }
        EgressAskState::Denied { .. } => Err(format!(
            "the upload to {dest} passed its budget of {budget} bytes and an operator stopped it"
        )),
        EgressAskState::Pending | EgressAskState::Expired => Err(format!(
            "the upload to {dest} passed its budget of {budget} bytes and nobody allowed more in time"
        )),
    }
}

/// Why a forwarded request's body length cannot be known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BodyLengthError {
    /// `Transfer-Encoding`: its end cannot be found without decoding it.
    #[error("request bodies sent in chunks (Transfer-Encoding) are not forwarded; send a Content-Length")]
    Chunked,
    /// `Content-Length` is not a number.
    #[error("the Content-Length {0:?} is not a number")]
    NotANumber(String),
    /// Two different `Content-Length`s.
    #[error("the request has two different Content-Length headers")]
    TwoLengths,
}

/// The body length a forwarded request announces: its `Content-Length`, or 0. Chunked bodies
/// are refused (their end cannot be found without decoding them).
fn request_body_length(head: &[u8]) -> Result<u64, BodyLengthError> {
    let text = String::from_utf8_lossy(head);
    let mut length = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" => return Err(BodyLengthError::Chunked),
            "content-length" => {
                let n: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| BodyLengthError::NotANumber(value.trim().to_string()))?;
                if length.is_some_and(|l| l != n) {
                    return Err(BodyLengthError::TwoLengths);
                }
                length = Some(n);
            }
            _ => {}
        }
    }
    Ok(length.unwrap_or(0))
}

/// Rewrites an absolute-URI request head to origin form for the upstream: `METHOD /path
/// HTTP/1.1`, `Host` set to the destination that was allowed (whatever the program wrote), the
/// program's other headers without proxy headers, and `Connection: close`.
fn origin_form_head(method: &str, path: &str, dest: &Destination, head: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    let host = match dest.port {
        80 => dest.host.clone(),
        p => format!("{}:{p}", dest.host),
    };
    out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
    let text = String::from_utf8_lossy(head);
    for line in text.split("\r\n").skip(1) {
        if line.is_empty() {
            break;
        }
        let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "host" | "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive"
        ) {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// What of `d` may still go upstream under the connection's limit (the rest is dropped: it is
/// not part of the one request a forwarded connection carries).
fn within_limit(tally: &Tally, mut d: Vec<u8>) -> Vec<u8> {
    if let Some(limit) = tally.up_limit {
        let room = usize::try_from(limit.saturating_sub(tally.up)).unwrap_or(usize::MAX);
        d.truncate(room);
    }
    d
}

async fn splice(
    hub: &Hub,
    id: u32,
    g: &mut FromGuest,
    upstream: &mut TcpStream,
    (dest, protocol): (&Destination, EgressProtocol),
    tally: &mut Tally,
) -> Result<(), String> {
    let (mut up_r, mut up_w) = upstream.split();
    let mut buf = vec![0u8; airlock_protocol::MAX_STREAM_CHUNK];
    let mut upstream_done = false;
    if g.eof {
        let _ = up_w.shutdown().await;
    }
    while let Some(d) = g.stash.pop_front() {
        let got = d.len();
        let d = within_limit(tally, d);
        over_budget(hub, dest, protocol, tally, d.len()).await?;
        up_w.write_all(&d)
            .await
            .map_err(|e| format!("cannot write to {dest}: {e}"))?;
        tally.up += d.len() as u64;
        hub.consumed(id, got);
    }
    loop {
        if upstream_done && (g.eof || g.closed.is_some()) {
            return Ok(());
        }
        if let Some(Some(r)) = &g.closed {
            return Err(r.clone());
        }
        if g.closed.is_some() {
            return Ok(());
        }
        let can_read = !upstream_done && g.send.sendable() > 0;
        let readable = g.send.sendable().max(1);
        tokio::select! {
            msg = g.recv() => match msg {
                Some(StreamMessage::Data(d)) => {
                    let got = d.len();
                    let d = within_limit(tally, d);
                    if d.is_empty() {
                        hub.consumed(id, got);
                        continue;
                    }
                    over_budget(hub, dest, protocol, tally, d.len()).await?;
                    up_w.write_all(&d).await.map_err(|e| format!("cannot write to {dest}: {e}"))?;
                    tally.up += d.len() as u64;
                    hub.consumed(id, got);
                }
                Some(StreamMessage::Eof) => {
                    g.eof = true;
                    let _ = up_w.shutdown().await;
                }
                Some(other) => g.apply(other),
                None => g.closed = Some(None),
            },
            n = up_r.read(&mut buf[..readable]), if can_read => match n {
                Ok(0) => {
                    upstream_done = true;
                    hub.send(id, StreamMessage::Eof);
                }
                Ok(n) => {
                    g.send.sent(n);
                    tally.down += n as u64;
                    hub.send(id, StreamMessage::Data(buf[..n].to_vec()));
                }
                Err(e) => return Err(format!("the connection to {dest} failed: {e}")),
            },
        }
    }
}
