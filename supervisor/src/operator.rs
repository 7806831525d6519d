//! The operator API (HTTP + WebSocket under `/api`): what the console and the web UI use.
//!
//! Handlers parse into typed calls on [`Supervisor`] and map errors to `{code, message}` with an
//! HTTP status; the operator's identity comes from their token.

use std::collections::HashMap;

use airlock_domain::{LeaseCommand, Resolution};
use airlock_ledger::{Actor, Digest, EntryKind, Query};
use airlock_policy::Mode;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::gateway::{parse, ActionRequest};
use crate::{CommandError, Supervisor};

/// The operator a request is from, put there by the auth layer.
#[derive(Debug, Clone)]
pub struct OperatorId(pub String);

/// An API error: `{code, message}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> ApiError {
        let (status, code) = match &e {
            CommandError::UnknownSandbox(_) => (StatusCode::NOT_FOUND, "unknown_sandbox"),
            CommandError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            CommandError::Lease(_) => (StatusCode::CONFLICT, "lease"),
            CommandError::Resolve(crate::ResolveError::Unknown(_)) => {
                (StatusCode::NOT_FOUND, "unknown_approval")
            }
            CommandError::Resolve(_) => (StatusCode::CONFLICT, "approval"),
            CommandError::Sandbox(_) => (StatusCode::INTERNAL_SERVER_ERROR, "sandbox"),
            CommandError::Guest(_) => (StatusCode::BAD_GATEWAY, "guest"),
            CommandError::Ledger(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ledger"),
            CommandError::Gone(_) => (StatusCode::GONE, "session_gone"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The routes, to be nested under `/api` behind the operator auth layer.
pub fn router(sup: Supervisor) -> Router {
    Router::new()
        .route("/sandboxes", get(list_sandboxes).post(create_sandbox))
        .route("/sandboxes/{id}", get(get_sandbox).delete(destroy_sandbox))
        .route("/sandboxes/{id}/screenshot", get(screenshot))
        .route("/sandboxes/{id}/lease", post(lease))
        .route("/sandboxes/{id}/input", post(input))
        .route("/sandboxes/{id}/approvals/{approval}", post(resolve))
        .route("/approvals", get(pending))
        .route("/ledger", get(ledger))
        .route("/ledger/verify", get(verify))
        .route("/blobs/{hash}", get(blob))
        .route("/policy", get(policy))
        .route("/policy/mode", post(set_mode))
        .route("/events", get(events))
        .route("/sandboxes/{id}/view", get(view))
        .with_state(sup)
}

async fn view(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    // Refuse unknown sandboxes before the upgrade, with a status the client can read.
    sup.session(&id).await?;
    let config = sup.viewer_config();
    Ok(ws
        .max_message_size(256 * 1024)
        .on_upgrade(move |socket| crate::viewer::serve(sup, op.0, id, socket, config)))
}

async fn list_sandboxes(State(sup): State<Supervisor>) -> impl IntoResponse {
    Json(sup.list().await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

async fn create_sandbox(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Json(body): Json<CreateBody>,
) -> ApiResult<impl IntoResponse> {
    let (backend, profile) = crate::sandbox_kind(body.backend.as_deref(), body.profile.as_deref())?;
    let by = Actor::operator(op.0);
    Ok((
        StatusCode::CREATED,
        Json(sup.create_sandbox(backend, profile, &by).await?),
    ))
}

async fn get_sandbox(State(sup): State<Supervisor>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(sup.info(&id).await?))
}

async fn destroy_sandbox(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    sup.destroy_sandbox(&id, &Actor::operator(op.0)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn screenshot(State(sup): State<Supervisor>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    let frame = sup.screenshot(&id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png".to_string()),
            (header::ETAG, format!("\"{}\"", frame.hash)),
        ],
        frame.png,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseBody {
    command: String,
    /// With `hand_back`: a note for the agent.
    #[serde(default)]
    note: Option<String>,
}

async fn lease(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Path(id): Path<String>,
    Json(body): Json<LeaseBody>,
) -> ApiResult<impl IntoResponse> {
    let who = op.0;
    let cmd = match body.command.as_str() {
        "take" => LeaseCommand::Take { operator: who },
        "hand_back" => LeaseCommand::HandBack {
            operator: who,
            note: body.note,
        },
        "pause" => LeaseCommand::Pause { by: who },
        "resume" => LeaseCommand::Resume { by: who },
        other => {
            return Err(ApiError::bad(format!(
                "command must be take, hand_back, pause or resume, not {other:?}"
            )))
        }
    };
    Ok(Json(sup.lease(&id, cmd).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputBody {
    /// Anthropic computer-use input.
    action: serde_json::Value,
}

async fn input(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Path(id): Path<String>,
    Json(body): Json<InputBody>,
) -> ApiResult<impl IntoResponse> {
    let session = sup.session(&id).await?;
    let action = parse(&ActionRequest::Anthropic(body.action), session.screen)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    sup.human_input(&id, &op.0, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    decision: String,
    #[serde(default)]
    grant_minutes: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
    /// For `edit`: the replacement in Anthropic's computer-use form…
    #[serde(default)]
    computer: Option<serde_json::Value>,
    /// …or, for an exec, the replacement argv.
    #[serde(default)]
    argv: Option<Vec<String>>,
}

async fn resolve(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Path((id, approval)): Path<(String, u64)>,
    Json(body): Json<ResolveBody>,
) -> ApiResult<impl IntoResponse> {
    let resolution = match body.decision.as_str() {
        "approve" => Resolution::Approve {
            grant_minutes: body.grant_minutes,
        },
        "deny" => Resolution::Deny { reason: body.reason },
        "edit" => {
            let session = sup.session(&id).await?;
            let request = match (body.computer, body.argv) {
                (Some(c), None) => ActionRequest::Anthropic(c),
                (None, Some(argv)) => ActionRequest::Exec {
                    argv,
                    stdin: String::new(),
                    timeout_ms: None,
                },
                _ => return Err(ApiError::bad("an edit needs exactly one of `computer` or `argv`")),
            };
            let action = parse(&request, session.screen).map_err(|e| ApiError::bad(e.to_string()))?;
            Resolution::Edit { action }
        }
        other => {
            return Err(ApiError::bad(format!(
                "decision must be approve, edit or deny, not {other:?}"
            )))
        }
    };
    Ok(Json(sup.resolve(&id, approval, &op.0, resolution).await?))
}

async fn pending(State(sup): State<Supervisor>) -> impl IntoResponse {
    Json(sup.pending().await)
}

async fn ledger(
    State(sup): State<Supervisor>,
    UrlQuery(q): UrlQuery<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let mut query = Query {
        sandbox: q.get("sandbox").cloned(),
        after_seq: None,
        kinds: Vec::new(),
        limit: 1000,
    };
    for (k, v) in &q {
        match k.as_str() {
            "sandbox" => {}
            "after" => {
                query.after_seq = Some(
                    v.parse()
                        .map_err(|_| ApiError::bad(format!("after={v:?} is not a number")))?,
                )
            }
            "limit" => {
                query.limit = v
                    .parse()
                    .map_err(|_| ApiError::bad(format!("limit={v:?} is not a number")))?
            }
            "kind" => {
                for name in v.split(',') {
                    let kind: EntryKind = serde_json::from_value(json!(name))
                        .map_err(|_| ApiError::bad(format!("{name:?} is not a ledger entry kind")))?;
                    query.kinds.push(kind);
                }
            }
            other => return Err(ApiError::bad(format!("unknown query parameter {other:?}"))),
        }
    }
    let entries = sup
        .ledger()
        .query(&query)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ledger", e.to_string()))?;
    Ok(Json(entries))
}

async fn verify(State(sup): State<Supervisor>) -> ApiResult<impl IntoResponse> {
    let report = sup
        .ledger()
        .verify()
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ledger", e.to_string()))?;
    Ok(Json(report))
}

async fn blob(State(sup): State<Supervisor>, Path(hash): Path<String>) -> ApiResult<impl IntoResponse> {
    let digest: Digest = hash
        .parse()
        .map_err(|_| ApiError::bad(format!("{hash:?} is not a SHA-256 hex digest")))?;
    let bytes = sup
        .ledger()
        .read_blob(&digest)
        .await
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "unknown_blob", e.to_string()))?;
    let ty = if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, ty)], bytes))
}

async fn policy(State(sup): State<Supervisor>) -> impl IntoResponse {
    let p = sup.policy();
    Json(
        json!({"version": p.version(), "default": p.default_decision(), "mode": sup.mode(), "text": p.text()}),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeBody {
    mode: Mode,
}

async fn set_mode(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Json(body): Json<ModeBody>,
) -> ApiResult<impl IntoResponse> {
    sup.set_mode(body.mode, &op.0).await?;
    Ok(Json(json!({"mode": body.mode})))
}

async fn events(State(sup): State<Supervisor>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(move |socket| stream_events(sup, socket))
}

/// Sends a snapshot (sandboxes and pending approvals), then every event as a JSON text message.
async fn stream_events(sup: Supervisor, mut socket: WebSocket) {
    let mut rx = sup.events().subscribe();
    let snapshot = json!({"type": "snapshot", "sandboxes": sup.list().await, "mode": sup.mode()});
    if socket
        .send(Message::Text(snapshot.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let text = match ev {
                    Ok(ev) => json!({"topic": ev.topic(), "event": ev}).to_string(),
                    Err(RecvError::Lagged(n)) => json!({"type": "lagged", "missed": n}).to_string(),
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
