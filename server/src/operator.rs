//! The operator API (HTTP + WebSocket under `/api`): what the console and the web UI use.
//!
//! Handlers parse into typed calls on [`Supervisor`] and map errors to `{code, message}` with an
//! HTTP status; the operator's identity comes from their token.

use std::collections::HashMap;

use airlock_ledger::{Actor, EntryKind};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use airlock_live::LiveViews;
use airlock_supervisor::api::{
    CreateRequest, ErrorBody, EventMessage, LeaseRequest, LedgerQuery, Me, ModeRequest, ResolveRequest,
};
use airlock_supervisor::gateway::{parse, ActionRequest};
use airlock_supervisor::{CommandError, ResolveError, Supervisor};

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
            Json(ErrorBody {
                code: self.code.to_string(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> ApiError {
        let status = match &e {
            CommandError::UnknownSandbox(_) | CommandError::UnknownBlob(_) => StatusCode::NOT_FOUND,
            CommandError::Invalid(_) => StatusCode::BAD_REQUEST,
            CommandError::Lease(_) => StatusCode::CONFLICT,
            CommandError::Resolve(ResolveError::Unknown(_)) => StatusCode::NOT_FOUND,
            CommandError::Resolve(ResolveError::Unrecorded(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            CommandError::Resolve(_) => StatusCode::CONFLICT,
            CommandError::Store(_)
            | CommandError::Image(_)
            | CommandError::NoScreen(_)
            | CommandError::Task(_)
            | CommandError::Poisoned(_)
            | CommandError::Ledger(_)
            | CommandError::Record(_)
            | CommandError::Unrecorded(_) => StatusCode::INTERNAL_SERVER_ERROR,
            CommandError::Guest(_) => StatusCode::BAD_GATEWAY,
            CommandError::Gone(_) => StatusCode::GONE,
        };
        ApiError::new(status, e.code(), airlock_supervisor::chain(&e))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The routes, to be nested under `/api` behind the operator auth layer; viewer sockets watch
/// `views`.
pub fn router(sup: Supervisor, views: LiveViews) -> Router {
    Router::new()
        .route("/sandboxes", get(list_sandboxes).post(create_sandbox))
        .route("/sandboxes/{id}", get(get_sandbox).delete(destroy_sandbox))
        .route("/sandboxes/{id}/screenshot", get(screenshot))
        .route("/sandboxes/{id}/lease", post(lease))
        .route("/sandboxes/{id}/input", post(input))
        .route("/sandboxes/{id}/approvals/{approval}", post(resolve))
        .route("/approvals", get(pending))
        .route("/sandboxes/{id}/network", get(network))
        .route("/sandboxes/{id}/egress/{ask}", post(resolve_egress))
        .route("/egress", get(pending_egress))
        .route("/me", get(me))
        .route("/snapshot", get(snapshot))
        .route("/ledger/export", get(export))
        .route("/ledger", get(ledger))
        .route("/ledger/verify", get(verify))
        .route("/blobs/{hash}", get(blob))
        .route("/policy", get(policy))
        .route("/policy/mode", post(set_mode))
        .route("/events", get(events))
        .route("/sandboxes/{id}/view", get(view).layer(Extension(views)))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("there is no operator API route {}", uri.path()),
            )
        })
        .with_state(sup)
}

async fn view(
    State(sup): State<Supervisor>,
    Extension(views): Extension<LiveViews>,
    Extension(op): Extension<OperatorId>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    // Refuse unknown sandboxes before the upgrade, with a status the client can read.
    sup.session(&id).await?;
    Ok(ws
        .max_message_size(256 * 1024)
        .on_upgrade(move |socket| airlock_live::viewer::serve(views, op.0, id, socket)))
}

async fn list_sandboxes(State(sup): State<Supervisor>) -> impl IntoResponse {
    Json(sup.list().await)
}

async fn create_sandbox(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Json(body): Json<CreateRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(sup.create_requested(&body, &op.0).await?),
    ))
}

async fn me(Extension(op): Extension<OperatorId>) -> impl IntoResponse {
    Json(Me { operator: op.0 })
}

async fn snapshot(State(sup): State<Supervisor>) -> impl IntoResponse {
    Json(sup.snapshot().await)
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

async fn lease(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Path(id): Path<String>,
    Json(body): Json<LeaseRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(sup.lease_requested(&id, &op.0, body).await?))
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

async fn resolve(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Path((id, approval)): Path<(String, u64)>,
    Json(body): Json<ResolveRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(sup.resolve_requested(&id, approval, &op.0, body).await?))
}

async fn network(State(sup): State<Supervisor>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(sup.network(&id)?))
}

async fn resolve_egress(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Path((id, ask)): Path<(String, u64)>,
    Json(body): Json<airlock_domain::EgressResolution>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(sup.resolve_egress(&id, ask, &op.0, body).await?))
}

async fn pending_egress(State(sup): State<Supervisor>) -> impl IntoResponse {
    Json(sup.pending_egress())
}

async fn pending(State(sup): State<Supervisor>) -> impl IntoResponse {
    Json(sup.pending().await)
}

async fn ledger(
    State(sup): State<Supervisor>,
    UrlQuery(q): UrlQuery<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let mut query = LedgerQuery {
        sandbox: q.get("sandbox").cloned(),
        ..LedgerQuery::default()
    };
    let number = |k: &str, v: &str| -> Result<u64, ApiError> {
        v.parse()
            .map_err(|_| ApiError::bad(format!("{k}={v:?} is not a number")))
    };
    for (k, v) in &q {
        match k.as_str() {
            "sandbox" => {}
            "after" => query.after = Some(number(k, v)?),
            "limit" => query.limit = Some(u32::try_from(number(k, v)?).unwrap_or(u32::MAX)),
            "kind" => {
                for name in v.split(',').filter(|n| !n.is_empty()) {
                    let kind: EntryKind = serde_json::from_value(json!(name))
                        .map_err(|_| ApiError::bad(format!("{name:?} is not a ledger entry kind")))?;
                    query.kind.push(kind);
                }
            }
            other => return Err(ApiError::bad(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(Json(sup.ledger_page(&query).await?))
}

async fn verify(State(sup): State<Supervisor>) -> ApiResult<impl IntoResponse> {
    Ok(Json(sup.verify_ledger().await?))
}

async fn export(State(sup): State<Supervisor>) -> ApiResult<impl IntoResponse> {
    let body = sup.export_ledger().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"airlock-ledger.jsonl\"",
            ),
        ],
        body,
    ))
}

async fn blob(State(sup): State<Supervisor>, Path(hash): Path<String>) -> ApiResult<impl IntoResponse> {
    let bytes = sup.blob(&hash).await?;
    let ty = if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, ty)], bytes))
}

async fn policy(State(sup): State<Supervisor>) -> impl IntoResponse {
    Json(sup.policy_view())
}

async fn set_mode(
    State(sup): State<Supervisor>,
    Extension(op): Extension<OperatorId>,
    Json(body): Json<ModeRequest>,
) -> ApiResult<impl IntoResponse> {
    sup.set_mode(body.mode, &op.0).await?;
    Ok(Json(ModeRequest { mode: body.mode }))
}

async fn events(State(sup): State<Supervisor>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(move |socket| stream_events(sup, socket))
}

/// Sends a snapshot (sandboxes and pending approvals), then every event as a JSON text message.
async fn stream_events(sup: Supervisor, mut socket: WebSocket) {
    let mut rx = sup.events().subscribe();
    let snapshot = match serde_json::to_value(sup.snapshot().await) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("type".into(), json!("snapshot"));
            serde_json::Value::Object(m)
        }
        _ => return,
    };
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
                    Ok(ev) => json!(EventMessage::from(ev)).to_string(),
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
