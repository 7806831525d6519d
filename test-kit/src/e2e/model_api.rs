//! A model API (Anthropic Messages, OpenAI Responses) on 127.0.0.1 that replays a scripted
//! conversation and records every request, in place of the real service: the adapters' tests check
//! what an adapter sends and give it the answers the script holds.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// One request the model-API stub received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request path.
    pub path: String,
    /// Its headers (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// Its JSON body (`null` when it was not JSON).
    pub body: Value,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct StubState {
    script: Arc<Mutex<VecDeque<Value>>>,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

/// A model API on 127.0.0.1 answering `POST path` with the scripted bodies, in order.
pub struct Stub {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub base: String,
    state: StubState,
    server: tokio::task::JoinHandle<()>,
}

impl Stub {
    /// Starts it with its script.
    pub async fn start(path: &str, script: Vec<Value>) -> Result<Stub> {
        let state = StubState {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
        };
        let router = Router::new()
            .route(path, post(replay))
            .fallback(unexpected)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the model-API stub")?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("the model-API stub stopped: {e}");
            }
        });
        Ok(Stub {
            base: format!("http://{addr}"),
            state,
            server,
        })
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many scripted answers were not asked for.
    pub fn left(&self) -> usize {
        self.state.script.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn record(state: &StubState, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    state
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Recorded {
            path: uri.path().to_owned(),
            headers,
            body,
        });
}

async fn replay(State(state): State<StubState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    record(&state, &uri, &headers, &body);
    let next = state.script.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
    match next {
        Some(answer) => axum::Json(answer).into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({
                "type": "error",
                "error": {"type": "api_error", "message": "the stub's script ran out"}
            })),
        )
            .into_response(),
    }
}

async fn unexpected(State(state): State<StubState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    record(&state, &uri, &headers, &body);
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "type": "error",
            "error": {"type": "not_found_error", "message": format!("the stub does not serve {uri}")}
        })),
    )
        .into_response()
}
