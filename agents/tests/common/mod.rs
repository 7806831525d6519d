//! Shared harness: a fake Airlock MCP gateway and scripted model-API stubs, all on 127.0.0.1.
// Test harness: panicking on a broken fixture is the right failure.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

pub const TOKEN: &str = "s3cret-agent-token";

/// A 4x3 PNG.
pub fn tiny_png() -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(4, 3, image::Rgba([10, 20, 30, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

pub fn tiny_png_base64() -> String {
    base64::engine::general_purpose::STANDARD.encode(tiny_png())
}

/// What the fake gateway saw and keeps.
#[derive(Default)]
pub struct FakeState {
    /// Every tool call, in order: (tool, arguments).
    pub calls: Vec<(String, Value)>,
    /// Files "in the sandbox", written by typed `echo X > F` + Return, or `touch`.
    pub files: BTreeMap<String, String>,
    /// The line typed since the last Return.
    pub typed: String,
    pub created: Vec<String>,
    pub destroyed: Vec<String>,
}

/// A fake Airlock gateway: the real tool names and result shapes, a toy policy, and a toy shell.
#[derive(Clone, Default)]
pub struct FakeAirlock {
    pub state: Arc<Mutex<FakeState>>,
}

pub struct FakeServer {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

impl FakeServer {
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, tool: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|(t, _)| t == tool)
            .map(|(_, args)| args)
            .collect()
    }
}

/// Starts the fake gateway; requests need `Authorization: Bearer TOKEN`. With `challenge`, a wrong
/// token gets a `WWW-Authenticate` header, as OAuth-style servers send.
pub async fn start_fake_airlock(challenge: bool) -> FakeServer {
    let fake = FakeAirlock::default();
    // The guest's terminal writes this once it has the focus and a shell.
    fake.state
        .lock()
        .unwrap()
        .files
        .insert("/tmp/.airlock-terminal-ready".into(), String::new());
    let state = fake.state.clone();
    let config = StreamableHttpServerConfig::default().with_sse_keep_alive(None);
    let service: StreamableHttpService<FakeAirlock, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(fake.clone()), Default::default(), config);
    let router = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(challenge, require_bearer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    FakeServer {
        url: format!("http://{addr}/mcp"),
        state,
    }
}

async fn require_bearer(State(challenge): State<bool>, request: Request, next: Next) -> Response {
    let wanted = format!("Bearer {TOKEN}");
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if given == Some(wanted.as_str()) {
        return next.run(request).await;
    }
    let mut response = (StatusCode::UNAUTHORIZED, "bad token").into_response();
    if challenge {
        response.headers_mut().insert(
            "www-authenticate",
            "Bearer error=\"invalid_token\"".parse().unwrap(),
        );
    }
    response
}

fn tool(name: &'static str, description: &'static str) -> Tool {
    let schema = json!({ "type": "object", "additionalProperties": true });
    Tool::new(name, description, Arc::new(schema.as_object().unwrap().clone()))
}

fn text(value: Value) -> ContentBlock {
    ContentBlock::text(value.to_string())
}

fn allowed(sandbox: &str, extra: Value) -> CallToolResult {
    let mut body = json!({ "sandbox": sandbox, "epoch": 1, "decision": "allow" });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    CallToolResult::success(vec![text(body)])
}

fn denied(reason: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("denied by policy: {reason}"))])
}

fn screenshot(sandbox: &str) -> CallToolResult {
    CallToolResult::success(vec![
        ContentBlock::image(tiny_png_base64(), "image/png"),
        text(json!({ "sandbox": sandbox, "epoch": 1, "width": 1280, "height": 800 })),
    ])
}

fn exec_result(exit_code: i32, stdout: &str, stderr: &str) -> CallToolResult {
    CallToolResult::success(vec![text(json!({
        "exit_code": exit_code, "stdout": stdout, "stderr": stderr, "timed_out": false,
    }))])
}

impl FakeAirlock {
    fn handle(&self, tool: &str, args: &Value) -> Result<CallToolResult, ErrorData> {
        let mut state = self.state.lock().unwrap();
        state.calls.push((tool.to_owned(), args.clone()));
        let sandbox = args
            .get("sandbox")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        match tool {
            "computer" => {
                let action = args
                    .get("action")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ErrorData::invalid_params("`action` is required", None))?;
                Ok(match action {
                    "screenshot" | "zoom" => screenshot(&sandbox),
                    "type" => {
                        let typed = args.get("text").and_then(Value::as_str).unwrap_or_default();
                        if typed.contains("rm -rf /") {
                            denied("destructive command typed")
                        } else {
                            state.typed.push_str(typed);
                            allowed(&sandbox, json!({ "action": "type" }))
                        }
                    }
                    "key" if args.get("text").and_then(Value::as_str) == Some("Return") => {
                        let line = std::mem::take(&mut state.typed);
                        if let Some(["echo", word, ">", path]) =
                            Some(line.split_whitespace().collect::<Vec<_>>().as_slice())
                        {
                            state.files.insert((*path).to_owned(), format!("{word}\n"));
                        }
                        allowed(&sandbox, json!({ "action": "key" }))
                    }
                    other => allowed(&sandbox, json!({ "action": other })),
                })
            }
            "computer_openai" => {
                let kind = args
                    .pointer("/action/type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ErrorData::invalid_params("`action.type` is required", None))?;
                Ok(match kind {
                    "screenshot" => screenshot(&sandbox),
                    other => allowed(&sandbox, json!({ "action": other })),
                })
            }
            "exec" => {
                let argv: Vec<String> = args
                    .get("argv")
                    .and_then(|a| serde_json::from_value(a.clone()).ok())
                    .ok_or_else(|| ErrorData::invalid_params("`argv` is required", None))?;
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                Ok(match argv.as_slice() {
                    ["rm", "-rf", "/"] => denied("rm -rf / is never allowed"),
                    ["cat", path] => match state.files.get(*path) {
                        Some(content) => exec_result(0, content, ""),
                        None => exec_result(1, "", &format!("cat: {path}: No such file or directory")),
                    },
                    ["touch", path] => {
                        state.files.entry((*path).to_owned()).or_default();
                        exec_result(0, "", "")
                    }
                    ["stat", path] if state.files.contains_key(*path) => exec_result(0, path, ""),
                    ["stat", path] => exec_result(
                        1,
                        "",
                        &format!("stat: cannot statx '{path}': No such file or directory"),
                    ),
                    ["xdotool", ..] => exec_result(0, "4194306\n", ""),
                    other => exec_result(0, &other.join(" "), ""),
                })
            }
            "sandbox_create" => {
                let id = format!("sbx-{}", state.created.len() + 1);
                state.created.push(id.clone());
                Ok(CallToolResult::success(vec![text(json!({
                    "id": id, "backend": args.get("backend"), "profile": args.get("profile"),
                }))]))
            }
            "sandbox_destroy" => {
                state.destroyed.push(sandbox.clone());
                Ok(CallToolResult::success(vec![text(
                    json!({ "destroyed": sandbox }),
                )]))
            }
            "sandbox_list" => Ok(CallToolResult::success(vec![text(
                json!({ "sandboxes": state.created }),
            )])),
            other => Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        }
    }
}

impl ServerHandler for FakeAirlock {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![
            tool("computer", "Anthropic computer-use actions"),
            tool("computer_openai", "OpenAI computer_call actions"),
            tool("exec", "Run a program"),
            tool("sandbox_create", "Create a sandbox"),
            tool("sandbox_list", "List sandboxes"),
            tool("sandbox_destroy", "Destroy a sandbox"),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        self.handle(&request.name, &args).map(Into::into)
    }
}

/// One request a model-API stub received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
struct StubState {
    script: Arc<Mutex<VecDeque<(u16, Value)>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

/// A model-API stub replaying scripted `(status, body)` answers in order, recording each request.
pub struct Stub {
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Stub {
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

pub async fn start_stub(script: Vec<(u16, Value)>) -> Stub {
    let state = StubState {
        script: Arc::new(Mutex::new(script.into())),
        requests: Arc::new(Mutex::new(Vec::new())),
    };
    let requests = state.requests.clone();
    let router = Router::new().fallback(replay).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Stub {
        base: format!("http://{addr}"),
        requests,
    }
}

async fn replay(State(state): State<StubState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(Recorded {
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
    });
    let next = state.script.lock().unwrap().pop_front();
    let (status, body) = next.unwrap_or((
        500,
        json!({ "type": "error", "error": { "type": "api_error", "message": "the stub's script ran out" } }),
    ));
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}
