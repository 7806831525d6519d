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
use axum::middleware;

use crate::access::Caller;
use crate::serve::LinkCloser;
use airlock_protocol::{Content, FileErrorKind};
use airlock_sandbox::TransferError;
use airlock_supervisor::access::Access;
use airlock_supervisor::api::{
    CreateRequest, ErrorBody, EventMessage, LeaseRequest, LedgerQuery, Me, ModeRequest, ResolveRequest,
};
use airlock_supervisor::files::{FileError, Mover};
use airlock_supervisor::gateway::{parse, ActionRequest};
use airlock_supervisor::{CommandError, ResolveError, Supervisor};
use futures::StreamExt;

/// An API error: `{code, message}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
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
            CommandError::Link(airlock_domain::LinkError::Unknown(_)) => StatusCode::NOT_FOUND,
            CommandError::Link(airlock_domain::LinkError::Lifetime { .. }) => StatusCode::BAD_REQUEST,
            CommandError::Link(_) => StatusCode::CONFLICT,
            CommandError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), airlock_supervisor::chain(&e))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The routes, to be nested under `/api` behind the operator auth layer; viewer sockets watch
/// `views`.
/// Every route is checked against [`crate::access::rule`] for the caller (operator role or view
/// link) before its handler runs.
pub fn router(sup: Supervisor, views: LiveViews, access: Access) -> Router {
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
        .route("/sandboxes/{id}/files", get(download).post(upload))
        .route("/sandboxes/{id}/files/list", get(list_files))
        .route("/sandboxes/{id}/links", post(crate::access::create_link))
        .route("/links", get(crate::access::list_links))
        .route("/links/{link}", axum::routing::delete(crate::access::revoke_link))
        .route_layer(middleware::from_fn_with_state(
            access.clone(),
            crate::access::authorize,
        ))
        .layer(Extension(access))
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
    Extension(access): Extension<Access>,
    Extension(Caller(op)): Extension<Caller>,
    closer: Option<Extension<LinkCloser>>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    // Refuse unknown sandboxes before the upgrade, with a status the client can read.
    sup.session(&id).await?;
    access.used(&op).await;
    let ends = link_end(&access, &op, closer);
    Ok(ws
        .max_message_size(256 * 1024)
        .on_upgrade(move |socket| async move {
            tokio::select! {
                () = airlock_live::viewer::serve(views, op, id, socket) => {}
                () = ends => tracing::info!("view link ended: its viewer socket closes"),
            }
        }))
}

/// Resolves when the view link a request came with is revoked or expires; never for operators.
fn link_end(
    access: &Access,
    op: &airlock_domain::Principal,
    closer: Option<Extension<LinkCloser>>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let expiry = access.expiry_of(op);
    let closer = closer.map(|Extension(LinkCloser(c))| c);
    async move {
        let (Some(expires_ms), Some(closer)) = (expiry, closer) else {
            return std::future::pending().await;
        };
        let left = expires_ms.saturating_sub(airlock_supervisor::now_ms());
        tokio::select! {
            () = closer.cancelled() => {}
            () = tokio::time::sleep(std::time::Duration::from_millis(left)) => {}
        }
    }
}

async fn list_sandboxes(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
) -> impl IntoResponse {
    let mut list = sup.list().await;
    list.retain(|s| op.sees(&s.id));
    Json(list.into_iter().map(|s| shown(s, &op)).collect::<Vec<_>>())
}

async fn create_sandbox(
    State(sup): State<Supervisor>,
    Extension(access): Extension<Access>,
    Extension(Caller(op)): Extension<Caller>,
    Json(body): Json<CreateRequest>,
) -> ApiResult<impl IntoResponse> {
    // Host folders are the host's files: sharing them needs more than creating a sandbox.
    if !body.shares.is_empty() {
        if let Err(forbidden) = op.check(airlock_domain::Permission::Share, None, false) {
            let request = "POST /api/sandboxes (with shares)".to_string();
            return Err(crate::access::refuse(&access, request, None, forbidden, &op.name).await);
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(sup.create_requested(&body, &op.name).await?),
    ))
}

async fn me(Extension(Caller(op)): Extension<Caller>) -> impl IntoResponse {
    Json(Me {
        operator: op.name,
        role: op.role,
        scope: op.scope,
    })
}

async fn snapshot(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
) -> impl IntoResponse {
    Json(visible(sup.snapshot().await, &op))
}

/// What of a snapshot a caller sees: a view link, only its sandbox and no approvals.
fn visible(
    mut snap: airlock_supervisor::api::Snapshot,
    op: &airlock_domain::Principal,
) -> airlock_supervisor::api::Snapshot {
    snap.sandboxes.retain(|s| op.sees(&s.id));
    snap.sandboxes = snap.sandboxes.into_iter().map(|s| shown(s, op)).collect();
    snap.human_requests.retain(|r| op.sees(&r.sandbox));
    if op.scope != airlock_domain::Scope::All {
        snap.pending.clear();
    }
    snap
}

async fn get_sandbox(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(shown(sup.info(&id).await?, &op)))
}

/// What of a sandbox a caller sees: a view link, not its pending approvals or grants (what the
/// agent asked to do and what operators allowed are for those who may decide).
fn shown(
    mut info: airlock_supervisor::SandboxInfo,
    op: &airlock_domain::Principal,
) -> airlock_supervisor::SandboxInfo {
    if op.scope != airlock_domain::Scope::All {
        info.session.pending.clear();
        info.session.grants.clear();
    }
    info
}

async fn destroy_sandbox(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    sup.destroy_sandbox(&id, &Actor::operator(op.name)).await?;
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
    Extension(Caller(op)): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<LeaseRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(sup.lease_requested(&id, &op.name, body).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputBody {
    /// Anthropic computer-use input.
    action: serde_json::Value,
}

async fn input(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<InputBody>,
) -> ApiResult<impl IntoResponse> {
    let session = sup.session(&id).await?;
    let action = parse(&ActionRequest::Anthropic(body.action), session.screen)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    sup.human_input(&id, &op.name, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resolve(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
    Path((id, approval)): Path<(String, u64)>,
    Json(body): Json<ResolveRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(sup.resolve_requested(&id, approval, &op.name, body).await?))
}

async fn network(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let mut view = sup.network(&id)?;
    // Like approvals, network asks and grants are for those who may decide (see `shown`).
    if op.scope != airlock_domain::Scope::All {
        view.asks.clear();
        view.grants.clear();
    }
    Ok(Json(view))
}

async fn resolve_egress(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
    Path((id, ask)): Path<(String, u64)>,
    Json(body): Json<airlock_domain::EgressResolution>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(sup.resolve_egress(&id, ask, &op.name, body).await?))
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

/// A blob, streamed (a kept upload may be a GiB), typed by its first bytes.
async fn blob(State(sup): State<Supervisor>, Path(hash): Path<String>) -> ApiResult<impl IntoResponse> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let (mut file, len) = sup.open_blob(&hash).await?;
    let unreadable = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "blob",
            format!("blob {hash} could not be read: {e}"),
        )
    };
    let mut head = Vec::with_capacity(12);
    (&mut file)
        .take(12)
        .read_to_end(&mut head)
        .await
        .map_err(unreadable)?;
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(unreadable)?;
    let ty = if head.starts_with(b"\x89PNG") {
        "image/png"
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else {
        "application/octet-stream"
    };
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, ty.to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    ))
}

async fn policy(State(sup): State<Supervisor>) -> impl IntoResponse {
    Json(sup.policy_view())
}

async fn set_mode(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
    Json(body): Json<ModeRequest>,
) -> ApiResult<impl IntoResponse> {
    sup.set_mode(body.mode, &op.name).await?;
    Ok(Json(ModeRequest { mode: body.mode }))
}

async fn events(
    State(sup): State<Supervisor>,
    Extension(access): Extension<Access>,
    Extension(Caller(op)): Extension<Caller>,
    closer: Option<Extension<LinkCloser>>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    let ends = link_end(&access, &op, closer);
    ws.on_upgrade(move |socket| async move {
        tokio::select! {
            () = stream_events(sup, op, socket) => {}
            () = ends => tracing::info!("view link ended: its event socket closes"),
        }
    })
}

/// Whether a view link's events socket carries `event`: only its sandbox's, and not the
/// approvals and network asks it may not decide.
fn carries(op: &airlock_domain::Principal, event: &airlock_supervisor::Event) -> bool {
    use airlock_supervisor::Event;
    if op.scope == airlock_domain::Scope::All {
        return true;
    }
    let asks = matches!(
        event,
        Event::ApprovalRequested { .. }
            | Event::ApprovalResolved { .. }
            | Event::EgressAsked { .. }
            | Event::EgressResolved { .. }
            | Event::GrantIssued { .. }
    );
    !asks && event.sandbox().is_some_and(|s| op.sees(s))
}

/// Sends a snapshot (sandboxes and pending approvals), then every event as a JSON text message:
/// a view link's only of its sandbox.
async fn stream_events(sup: Supervisor, op: airlock_domain::Principal, mut socket: WebSocket) {
    let mut rx = sup.events().subscribe();
    let snapshot = match serde_json::to_value(visible(sup.snapshot().await, &op)) {
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
                    Ok(ev) if !carries(&op, &ev) => continue,
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

impl From<FileError> for ApiError {
    fn from(e: FileError) -> ApiError {
        let message = airlock_supervisor::chain(&e);
        match e {
            FileError::Command(c) => c.into(),
            FileError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message),
            FileError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message),
            FileError::NoSpace { .. } => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "no_space", message),
            FileError::Transfer {
                source: TransferError::Refused(ref r),
                ..
            } if r.kind == FileErrorKind::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            ref e if e.is_callers() => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_file_request", message)
            }
            FileError::Mismatch { .. } | FileError::Transfer { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "guest", message)
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "files", message),
        }
    }
}

/// `?path=` (and, for uploads, `&mode=` in decimal or `0o…` octal).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    path: String,
    #[serde(default)]
    mode: Option<String>,
}

fn file_mode(mode: Option<&str>) -> Result<u32, ApiError> {
    let Some(m) = mode else { return Ok(0o644) };
    // Octal, as chmod writes it: a decimal 644 would be 0o1204.
    airlock_supervisor::files::parse_mode(m)
        .ok_or_else(|| ApiError::bad(format!("mode={m:?} is not octal permission bits like 644")))
}

async fn list_files(
    State(sup): State<Supervisor>,
    Path(id): Path<String>,
    UrlQuery(q): UrlQuery<FileQuery>,
) -> ApiResult<impl IntoResponse> {
    if q.mode.is_some() {
        return Err(ApiError::bad("a listing takes no mode"));
    }
    Ok(Json(sup.list_files(&id, &q.path).await?))
}

/// `POST /api/sandboxes/{id}/files?path=…`: the raw body is the file (Content-Length, at most
/// 1 GiB), streamed, not buffered.
async fn upload(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
    Path(id): Path<String>,
    UrlQuery(q): UrlQuery<FileQuery>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<impl IntoResponse> {
    let mode = file_mode(q.mode.as_deref())?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stream = body.into_data_stream().map(|r| r.map_err(std::io::Error::other));
    let reader = tokio_util::io::StreamReader::new(stream);
    let written = sup
        .upload(
            &id,
            &q.path,
            mode,
            reader,
            declared,
            Mover {
                by: &Actor::operator(op.name),
                via: "api",
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(written)))
}

/// `GET /api/sandboxes/{id}/files?path=…`: a file's bytes, or a folder as a tar archive.
async fn download(
    State(sup): State<Supervisor>,
    Extension(Caller(op)): Extension<Caller>,
    Path(id): Path<String>,
    UrlQuery(q): UrlQuery<FileQuery>,
) -> ApiResult<Response> {
    if q.mode.is_some() {
        return Err(ApiError::bad("a download takes no mode"));
    }
    let out = sup
        .download(
            &id,
            &q.path,
            Mover {
                by: &Actor::operator(op.name),
                via: "api",
            },
        )
        .await?;
    let base = q
        .path
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("download")
        .replace(
            |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
            "_",
        );
    let (ty, name, size) = match out.content {
        Content::File { size, .. } => ("application/octet-stream", base, Some(size)),
        Content::DirectoryTar { .. } => ("application/x-tar", format!("{base}.tar"), None),
    };
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(out.body));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static(ty));
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // No Content-Length: with one, hyper stops reading the body after the last byte, before the
    // guest's closing digest arrives, and the download would be recorded as broken off without its
    // SHA-256. Chunked, the body is read to its end. The size goes in a header of its own.
    if let Some(size) = size {
        h.insert("x-airlock-size", axum::http::HeaderValue::from(size));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_mode_is_octal_as_chmod_writes_it() {
        assert_eq!(file_mode(None).unwrap(), 0o644);
        assert_eq!(file_mode(Some("644")).unwrap(), 0o644);
        assert_eq!(file_mode(Some("0o600")).unwrap(), 0o600);
        assert_eq!(file_mode(Some("0755")).unwrap(), 0o755);
        assert!(file_mode(Some("420")).is_ok_and(|m| m == 0o420));
        assert!(file_mode(Some("9")).is_err());
        assert!(file_mode(Some("17777")).is_err());
        assert!(file_mode(Some("")).is_err());
    }
}
