//! The live view of sandboxes: what operators watch while agents work.
//!
//! [`LiveViews`] owns one [`SandboxStream`] per watched sandbox: the guest's frame stream feeding a
//! hub (mirror, encoders, thumbnails) and the command view built from the supervisor's events. A
//! stream starts when its first viewer arrives, stops [`STREAM_IDLE`] after its last viewer
//! leaves, and is dropped when its sandbox is destroyed. [`viewer::serve`] runs one viewer socket
//! (`GET /api/sandboxes/{id}/view`) over a stream: its pure state machine is `viewer::core`.
//!
//! Everything it needs from the supervisor goes through `airlock_supervisor`'s public API:
//! sessions, events, the lease and the ledger record of an operator's input.
//!
//! ```no_run
//! # async fn run(sup: airlock_supervisor::Supervisor, socket: axum::extract::ws::WebSocket) {
//! let views = airlock_live::LiveViews::new(sup);
//! // One per upgraded viewer socket, until it closes:
//! let alice = airlock_domain::Principal::operator("alice", airlock_domain::Role::Operator);
//! airlock_live::viewer::serve(views.clone(), alice, "sb-1".into(), socket).await;
//! # }
//! ```

#![deny(missing_docs)]

pub mod stream;
pub mod viewer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use airlock_supervisor::{CommandError, Event, SandboxState, Supervisor};
use tokio::sync::broadcast;

pub use crate::stream::SandboxStream;
pub use crate::viewer::ViewerConfig;

/// How long a sandbox's stream runs with no viewer before it stops.
pub const STREAM_IDLE: Duration = Duration::from_secs(30);

/// How often an unwatched stream is checked.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// The sandboxes' live streams, one per watched sandbox. Cheap to clone.
#[derive(Clone)]
pub struct LiveViews {
    inner: Arc<Inner>,
}

struct Inner {
    sup: Supervisor,
    config: ViewerConfig,
    streams: Mutex<HashMap<String, Arc<SandboxStream>>>,
    /// Whether the task that drops destroyed sandboxes' streams runs.
    watching: AtomicBool,
}

impl std::fmt::Debug for LiveViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveViews")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl LiveViews {
    /// The live views of `sup`'s sandboxes; viewers' WebRTC peers bind where its config says.
    pub fn new(sup: Supervisor) -> LiveViews {
        let config = ViewerConfig {
            rtc: airlock_streaming::rtc::RtcConfig {
                udp_addr: sup.config().rtc_udp,
            },
        };
        LiveViews {
            inner: Arc::new(Inner {
                sup,
                config,
                streams: Mutex::new(HashMap::new()),
                watching: AtomicBool::new(false),
            }),
        }
    }

    /// The supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.inner.sup
    }

    /// The viewer settings.
    pub fn config(&self) -> ViewerConfig {
        self.inner.config
    }

    /// The stream of a sandbox (mirror, encoders, command view), started on first use.
    pub async fn stream(&self, id: &str) -> Result<Arc<SandboxStream>, CommandError> {
        if !self.inner.watching.swap(true, Ordering::SeqCst) {
            // Subscribed before the sandbox is looked up: its destruction cannot be missed.
            let events = self.inner.sup.events().subscribe();
            tokio::spawn(drop_destroyed(Arc::downgrade(&self.inner), events));
        }
        let session = self.inner.sup.session(id).await?;
        let mut streams = self
            .inner
            .streams
            .lock()
            .map_err(|_| CommandError::Poisoned("stream"))?;
        if let Some(s) = streams.get(id) {
            if !s.hub.is_stopped() {
                return Ok(s.clone());
            }
        }
        let s = SandboxStream::start(
            &self.inner.sup,
            id,
            session.guest.clone(),
            (session.screen.width, session.screen.height),
        );
        streams.insert(id.to_string(), s.clone());
        tokio::spawn(
            self.clone()
                .retire_when_unwatched(id.to_string(), Arc::downgrade(&s)),
        );
        Ok(s)
    }

    /// Stops a sandbox's stream (mirror, encoders, command view) once no viewer has used it for
    /// [`STREAM_IDLE`]; the next viewer starts a fresh one.
    async fn retire_when_unwatched(self, id: String, stream: Weak<SandboxStream>) {
        let mut unwatched_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(IDLE_CHECK).await;
            let Some(s) = stream.upgrade() else { return };
            if s.hub.is_stopped() {
                return;
            }
            // The table's reference and this one: nobody else.
            if Arc::strong_count(&s) > 2 {
                unwatched_since = None;
                continue;
            }
            let since = *unwatched_since.get_or_insert_with(Instant::now);
            if since.elapsed() < STREAM_IDLE {
                continue;
            }
            if let Ok(mut streams) = self.inner.streams.lock() {
                if streams.get(&id).is_some_and(|t| Arc::ptr_eq(t, &s)) && Arc::strong_count(&s) == 2 {
                    streams.remove(&id);
                    s.stop();
                    tracing::debug!(sandbox = %id, "stream stopped: nobody watches");
                    return;
                }
            }
        }
    }
}

impl Inner {
    /// Stops and forgets a sandbox's stream.
    fn drop_stream(&self, id: &str) {
        if let Some(s) = self.streams.lock().ok().and_then(|mut m| m.remove(id)) {
            s.stop();
            tracing::debug!(sandbox = %id, "stream stopped: the sandbox is gone");
        }
    }
}

/// Drops a sandbox's stream when the sandbox is destroyed; after missed events, the streams of
/// every sandbox no longer supervised. Ends once the views are gone.
async fn drop_destroyed(inner: Weak<Inner>, mut events: broadcast::Receiver<Event>) {
    loop {
        let destroyed = match events.recv().await {
            Ok(Event::SandboxState {
                sandbox,
                state: SandboxState::Destroyed,
                ..
            }) => Some(sandbox),
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "the live views missed events");
                None
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        match destroyed {
            Some(id) => inner.drop_stream(&id),
            None => {
                let ids: Vec<String> = inner
                    .streams
                    .lock()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                for id in ids {
                    if inner.sup.session(&id).await.is_err() {
                        inner.drop_stream(&id);
                    }
                }
            }
        }
    }
}
