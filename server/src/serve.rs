//! `airlock serve`: the MCP server (`/mcp`, agent token) and the operator API (`/api`, operator
//! token) on one loopback listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::access::Caller;
use crate::origin::Origins;
use crate::tokens::{token_eq, Tokens};
use airlock_domain::{Principal, Role};
use airlock_mcp::{AgentPrincipal, AirlockMcp};
use airlock_supervisor::access::{Access, LinkLookup};
use airlock_supervisor::Supervisor;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Refusing to listen beyond loopback.
    #[error("{0} is not a loopback address; Airlock's APIs listen on loopback only")]
    NotLoopback(SocketAddr),
    /// The server failed.
    #[error("the server failed: {0}")]
    Server(#[source] std::io::Error),
}

/// A bound listener, ready to serve.
pub struct Listener {
    listener: tokio::net::TcpListener,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Binds `addr` (loopback only).
pub async fn bind(addr: SocketAddr) -> Result<Listener, ServeError> {
    if !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok(Listener { listener, addr })
}

#[derive(Clone)]
struct Auth {
    tokens: Arc<std::sync::RwLock<Arc<Tokens>>>,
    /// View links (tokens that are no operator's).
    access: Access,
    /// When the token file was last read (it is re-read only when it changed).
    read_at: Arc<std::sync::Mutex<Option<std::time::SystemTime>>>,
}

impl Auth {
    fn current(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The operator behind a token and their role. The token file is re-read whenever it changed
    /// (one `stat` per request), so operators added, rotated or given another role with
    /// `airlock operator add` take effect at once, without a restart, for tokens old and new.
    fn operator_for(&self, token: &str) -> Option<(String, Role)> {
        self.refresh();
        self.current()
            .operator_for(token)
            .map(|(name, role)| (name.to_string(), role))
    }

    /// Re-reads the token file if it changed since it was last read. The agent token and the
    /// first operator stay as started; only added operators change. A file that cannot be read
    /// or parsed leaves the tokens as they were.
    fn refresh(&self) {
        let tokens = self.current();
        let Some(path) = tokens.source.as_ref() else {
            return;
        };
        let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else {
            return;
        };
        {
            let Ok(mut read_at) = self.read_at.lock() else {
                return;
            };
            if *read_at == Some(modified) {
                return;
            }
            *read_at = Some(modified);
        }
        let Some(mut fresh) = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Tokens>(&bytes).ok())
        else {
            tracing::warn!(file = %path.display(), "the token file changed but cannot be read; keeping the tokens as they were");
            return;
        };
        fresh.agent_token = tokens.agent_token.clone();
        fresh.principal = tokens.principal.clone();
        fresh.operator_token = tokens.operator_token.clone();
        fresh.operator = tokens.operator.clone();
        fresh.source = tokens.source.clone();
        if let Ok(mut t) = self.tokens.write() {
            *t = Arc::new(fresh);
        }
    }
}

fn bearer(req: &Request) -> Option<String> {
    if let Some(h) = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return h.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    // Browsers cannot set headers on a WebSocket: the event stream and the viewer socket (only)
    // also take `?token=`.
    let path = req.uri().path();
    if !(path.ends_with("/events") || path.ends_with("/view")) {
        return None;
    }
    req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token=").map(str::to_string))
    })
}

fn unauthorized(what: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        Json(airlock_supervisor::api::ErrorBody {
            code: "unauthorized".into(),
            message: format!("a valid {what} bearer token is required"),
        }),
    )
        .into_response()
}

/// Refuses MCP requests from foreign web origins (DNS rebinding), before the token is looked at.
async fn mcp_origin(State(origins): State<Origins>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(axum::http::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    match origins.check(origin) {
        Ok(()) => next.run(req).await,
        Err(refused) => {
            tracing::warn!(origin = %refused.origin, "MCP request from a foreign origin refused");
            (
                StatusCode::FORBIDDEN,
                Json(airlock_supervisor::api::ErrorBody {
                    code: "forbidden_origin".into(),
                    message: refused.to_string(),
                }),
            )
                .into_response()
        }
    }
}

async fn agent_auth(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    match bearer(&req) {
        Some(t) if token_eq(&t, &auth.current().agent_token) => {
            req.extensions_mut()
                .insert(AgentPrincipal(auth.current().principal.clone()));
            next.run(req).await
        }
        _ => unauthorized("agent"),
    }
}

/// Who is calling: an operator with their role, or a live view link (a watcher of one sandbox,
/// whose sockets end when the link is revoked). An ended link is refused with its reason.
async fn operator_auth(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return unauthorized("operator");
    };
    if let Some((name, role)) = auth.operator_for(&token) {
        req.extensions_mut()
            .insert(Caller(Principal::operator(name, role)));
        return next.run(req).await;
    }
    match auth.access.lookup(&token).await {
        LinkLookup::Live(principal, closer) => {
            req.extensions_mut().insert(Caller(principal));
            req.extensions_mut().insert(LinkCloser(closer));
            next.run(req).await
        }
        LinkLookup::Refused(refused) => (
            StatusCode::UNAUTHORIZED,
            Json(airlock_supervisor::api::ErrorBody {
                code: "link_ended".into(),
                message: refused.to_string(),
            }),
        )
            .into_response(),
        LinkLookup::Unknown => unauthorized("operator"),
    }
}

/// Cancelled when the view link a request came with is revoked.
#[derive(Debug, Clone)]
pub struct LinkCloser(pub CancellationToken);

/// The stand-alone viewer page of the built console (ui/viewer.html): `GET /viewer?sandbox=ID#token=…`.
/// No secrets in it: the operator token comes in the URL fragment. Its assets are the console's.
const VIEWER_PAGE: &str = "viewer.html";

async fn viewer_not_built() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(airlock_supervisor::api::ErrorBody {
            code: "console_not_built".into(),
            message: "the viewer is part of the operator console, which is not built here \
                      (npm --prefix ui ci && npm --prefix ui run build)"
                .into(),
        }),
    )
        .into_response()
}

/// The whole HTTP surface.
///
/// With `ui`, the built operator console is served at `/` (unknown paths get its `index.html`) and
/// its stand-alone viewer at `/viewer`.
pub fn app(
    sup: Supervisor,
    tokens: Tokens,
    shutdown: CancellationToken,
    ui: Option<std::path::PathBuf>,
    origins: Origins,
) -> Router {
    let access = sup.access();
    let auth = Auth {
        access: access.clone(),
        tokens: Arc::new(std::sync::RwLock::new(Arc::new(tokens))),
        read_at: Arc::new(std::sync::Mutex::new(None)),
    };
    let mcp_sup = sup.clone();
    let mcp: StreamableHttpService<AirlockMcp, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(AirlockMcp::new(mcp_sup.clone())),
        Default::default(),
        StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token()),
    );
    let mcp = Router::new()
        .fallback_service(mcp)
        .layer(middleware::from_fn_with_state(auth.clone(), agent_auth))
        .layer(middleware::from_fn_with_state(origins, mcp_origin));
    let views = airlock_live::LiveViews::new(sup.clone());
    let api = crate::operator::router(sup, views, access)
        .layer(middleware::from_fn_with_state(auth, operator_auth));
    let router = Router::new()
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .nest("/api", api)
        .nest_service("/mcp", mcp);
    let router = match ui {
        Some(dir) => {
            let index = dir.join("index.html");
            router
                .route_service(
                    "/viewer",
                    tower_http::services::ServeFile::new(dir.join(VIEWER_PAGE)),
                )
                .fallback_service(
                    tower_http::services::ServeDir::new(dir)
                        .fallback(tower_http::services::ServeFile::new(index)),
                )
        }
        None => router.route("/viewer", get(viewer_not_built)),
    };
    // Spans name the path only: `?token=` (events and viewer sockets) must not reach the logs.
    router.layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(
        |req: &Request| tracing::debug_span!("request", method = %req.method(), path = %req.uri().path()),
    ))
}

/// Serves until `shutdown` is cancelled.
pub async fn run(listener: Listener, app: Router, shutdown: CancellationToken) -> Result<(), ServeError> {
    axum::serve(listener.listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
        .await
        .map_err(ServeError::Server)
}
