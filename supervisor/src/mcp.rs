//! The MCP server agents drive sandboxes through (Streamable HTTP, mounted by [`crate::serve`]).
//!
//! Tools: `computer` (Anthropic's computer-use input, verbatim), `computer_openai` (an OpenAI
//! computer-use `action`, verbatim), `exec`, `sandbox_create`, `sandbox_list`, `sandbox_destroy`.
//! Every action goes through [`Supervisor::act`]; refusals are tool errors with the reason.

use std::sync::Arc;

use airlock_ledger::Actor;
use base64::Engine;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::gateway::{recorded_result, ActionRequest, ActionResult, AgentCall, AgentId};
use crate::Supervisor;

/// The principal an authenticated agent acts for, put into the HTTP request by the auth layer.
#[derive(Debug, Clone)]
pub struct AgentPrincipal(pub String);

/// The MCP service: one per MCP session, all sharing the supervisor.
#[derive(Clone)]
pub struct AirlockMcp {
    sup: Supervisor,
}

impl AirlockMcp {
    /// A service over the supervisor.
    pub fn new(sup: Supervisor) -> AirlockMcp {
        AirlockMcp { sup }
    }
}

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(o) => Arc::new(o),
        _ => Arc::new(JsonObject::new()),
    }
}

const TARGET: &str = "The sandbox id (optional when exactly one sandbox runs).";
const EPOCH: &str =
    "The control-lease epoch from the previous result; an action planned under an older epoch is refused.";

/// The tools, with their input schemas.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "computer",
            "Use the sandbox's desktop with Anthropic's computer-use actions. Every action passes Airlock's policy gate; some wait for an operator's approval; while a human holds control, actions are refused.",
            schema(json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["key", "type", "mouse_move", "left_click", "left_click_drag",
                        "right_click", "middle_click", "double_click", "triple_click", "left_mouse_down", "left_mouse_up",
                        "scroll", "hold_key", "wait", "screenshot", "cursor_position", "zoom"]},
                    "coordinate": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                    "start_coordinate": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                    "text": {"type": "string"},
                    "scroll_direction": {"type": "string", "enum": ["up", "down", "left", "right"]},
                    "scroll_amount": {"type": "integer", "minimum": 0},
                    "duration": {"type": "number", "minimum": 0},
                    "region": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
                    "sandbox": {"type": "string", "description": TARGET},
                    "epoch": {"type": "integer", "minimum": 0, "description": EPOCH}
                },
                "required": ["action"]
            })),
        ),
        Tool::new(
            "computer_openai",
            "Use the sandbox's desktop with an OpenAI computer-use action object (click, double_click, drag, keypress, move, scroll, type, wait, screenshot).",
            schema(json!({
                "type": "object",
                "properties": {
                    "action": {"type": "object", "properties": {"type": {"type": "string"}}, "required": ["type"]},
                    "sandbox": {"type": "string", "description": TARGET},
                    "epoch": {"type": "integer", "minimum": 0, "description": EPOCH}
                },
                "required": ["action"]
            })),
        ),
        Tool::new(
            "exec",
            "Run a program inside the sandbox (no shell unless you run one). Subject to the policy gate.",
            schema(json!({
                "type": "object",
                "properties": {
                    "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "stdin": {"type": "string"},
                    "timeout_ms": {"type": "integer", "minimum": 1},
                    "sandbox": {"type": "string", "description": TARGET},
                    "epoch": {"type": "integer", "minimum": 0, "description": EPOCH}
                },
                "required": ["argv"]
            })),
        ),
        Tool::new(
            "sandbox_create",
            "Start a new empty sandbox (no network, no host files).",
            schema(json!({
                "type": "object",
                "properties": {
                    "backend": {"type": "string", "enum": ["auto", "microvm", "gvisor"]},
                    "profile": {"type": "string", "enum": ["minimal", "desktop"]}
                }
            })),
        ),
        Tool::new(
            "request_network",
            "Ask the operator, before you start, to let the sandbox reach these network destinations (its programs reach the network only through Airlock's egress gateway, which asks about every new destination). Waits for the operator's decision and returns it.",
            schema(json!({
                "type": "object",
                "properties": {
                    "hosts": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 32,
                              "description": "Destinations as host or host:port (port 443 when not given)."},
                    "reason": {"type": "string", "description": "Why the task needs them, for the operator."},
                    "sandbox": {"type": "string", "description": TARGET}
                },
                "required": ["hosts", "reason"]
            })),
        ),
        Tool::new("sandbox_list", "List the sandboxes under supervision.", schema(json!({"type": "object", "properties": {}}))),
        Tool::new(
            "sandbox_destroy",
            "Destroy a sandbox and everything in it.",
            schema(json!({"type": "object", "properties": {"sandbox": {"type": "string"}}, "required": ["sandbox"]})),
        ),
    ]
}

fn error(msg: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(msg.into())]).into()
}

fn png(bytes: &[u8]) -> ContentBlock {
    ContentBlock::image(
        base64::engine::general_purpose::STANDARD.encode(bytes),
        "image/png",
    )
}

/// Takes `sandbox` and `epoch` out of the arguments.
fn target(args: &mut JsonObject) -> Result<(Option<String>, Option<u64>), String> {
    let sandbox = match args.remove("sandbox") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(format!("`sandbox` must be a string, not {other}")),
    };
    let epoch = match args.remove("epoch") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| format!("`epoch` must be a non-negative integer, not {v}"))?,
        ),
    };
    Ok((sandbox, epoch))
}

/// The arguments of `request_network`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestNetwork {
    hosts: Vec<String>,
    reason: String,
    #[serde(default)]
    sandbox: Option<String>,
}

/// Splits `host:port` (`[v6]:port`); a bare host means port 443.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let split = match s.rsplit_once(':') {
        Some((h, p))
            if !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            Some((h, p))
        }
        _ => None,
    };
    match split {
        Some((h, p)) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .map(|p| (h.to_string(), p))
            .ok_or_else(|| format!("{s:?} does not end in a port from 1 to 65535")),
        None => Ok((s.to_string(), 443)),
    }
}

fn only(args: &JsonObject, allowed: &[&str], tool: &str) -> Result<(), String> {
    match args.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "the {tool} tool does not take `{k}`; it takes {}",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

impl AirlockMcp {
    async fn call(
        &self,
        name: &str,
        mut args: JsonObject,
        agent: AgentId,
    ) -> Result<CallToolResponse, String> {
        let actor = Actor {
            agent: Some(agent.agent.clone()),
            principal: Some(agent.principal.clone()),
            operator: None,
        };
        match name {
            "computer" | "computer_openai" | "exec" => {
                let (sandbox, epoch) = target(&mut args)?;
                let request = match name {
                    "computer" => ActionRequest::Anthropic(Value::Object(args)),
                    "computer_openai" => {
                        only(&args, &["action"], name)?;
                        ActionRequest::OpenAi(args.remove("action").unwrap_or(Value::Null))
                    }
                    _ => {
                        only(&args, &["argv", "stdin", "timeout_ms"], name)?;
                        let argv: Vec<String> = serde_json::from_value(args.remove("argv").unwrap_or(Value::Null))
                            .map_err(|e| format!("`argv` must be a list of strings: {e}"))?;
                        let stdin = match args.remove("stdin") {
                            None | Some(Value::Null) => String::new(),
                            Some(Value::String(s)) => s,
                            Some(v) => return Err(format!("`stdin` must be a string, not {v}")),
                        };
                        let timeout_ms = match args.remove("timeout_ms") {
                            None | Some(Value::Null) => None,
                            Some(v) => Some(
                                v.as_u64()
                                    .and_then(|t| u32::try_from(t).ok())
                                    .ok_or_else(|| format!("`timeout_ms` must be a positive integer, not {v}"))?,
                            ),
                        };
                        ActionRequest::Exec { argv, stdin, timeout_ms }
                    }
                };
                let reply = self
                    .sup
                    .act(AgentCall { sandbox, agent, epoch, request })
                    .await
                    .map_err(|e| e.to_string())?;
                let summary = json!({
                    "sandbox": reply.sandbox, "epoch": reply.epoch, "action": reply.action,
                    "decision": reply.decision, "reason": reply.reason, "result": recorded_result(&reply.result),
                });
                Ok(match reply.result {
                    ActionResult::Image(f) => {
                        CallToolResult::success(vec![png(&f.png), ContentBlock::text(summary.to_string())]).into()
                    }
                    ActionResult::Handback { frame, .. } => {
                        let content = vec![ContentBlock::text(reply.reason.clone()), png(&frame.png)];
                        if reply.action == airlock_domain::Action::Screenshot {
                            CallToolResult::success(content).into()
                        } else {
                            CallToolResult::error(content).into()
                        }
                    }
                    ActionResult::Done | ActionResult::Cursor(_) | ActionResult::Exec(_) => {
                        CallToolResult::success(vec![ContentBlock::text(summary.to_string())]).into()
                    }
                })
            }
            "sandbox_create" => {
                only(&args, &["backend", "profile"], name)?;
                let spec = crate::api::CreateRequest {
                    backend: args.get("backend").and_then(Value::as_str).map(str::to_string),
                    profile: args.get("profile").and_then(Value::as_str).map(str::to_string),
                    ..Default::default()
                }
                .spec()
                .map_err(|e| e.to_string())?;
                let info = self.sup.create_sandbox(spec, &actor).await.map_err(|e| e.to_string())?;
                Ok(CallToolResult::success(vec![ContentBlock::text(json!(info).to_string())]).into())
            }
            "request_network" => {
                let a: RequestNetwork = serde_json::from_value(Value::Object(args))
                    .map_err(|e| format!("request_network takes hosts (a list of host or host:port) and a reason: {e}"))?;
                let hosts = a.hosts.iter().map(|h| host_port(h)).collect::<Result<Vec<_>, _>>()?;
                let ask = self
                    .sup
                    .request_network(a.sandbox.as_deref(), &agent.agent, &hosts, &a.reason)
                    .await
                    .map_err(|e| e.to_string())?;
                let text = serde_json::to_string(&ask).map_err(|e| e.to_string())?;
                Ok(match ask.state {
                    airlock_domain::EgressAskState::Allowed { .. } => CallToolResult::success(vec![ContentBlock::text(text)]).into(),
                    airlock_domain::EgressAskState::Pending
                    | airlock_domain::EgressAskState::Denied { .. }
                    | airlock_domain::EgressAskState::Expired => CallToolResult::error(vec![ContentBlock::text(text)]).into(),
                })
            }
            "sandbox_list" => {
                only(&args, &[], name)?;
                let list = self.sup.list().await;
                Ok(CallToolResult::success(vec![ContentBlock::text(json!(list).to_string())]).into())
            }
            "sandbox_destroy" => {
                only(&args, &["sandbox"], name)?;
                let id = args.get("sandbox").and_then(Value::as_str).ok_or("`sandbox` must name a sandbox")?;
                self.sup.destroy_sandbox(id, &actor).await.map_err(|e| e.to_string())?;
                Ok(CallToolResult::success(vec![ContentBlock::text(json!({"destroyed": id}).to_string())]).into())
            }
            other => Err(format!(
                "there is no tool {other:?}; the tools are computer, computer_openai, exec, request_network, sandbox_create, sandbox_list, sandbox_destroy"
            )),
        }
    }
}

impl ServerHandler for AirlockMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Airlock supervises this desktop sandbox. Use the `computer` tool as you would Anthropic's computer tool. \
                 Actions may be allowed, denied, or held for a human operator's approval; a human may take control at any time, \
                 during which your actions are refused. Stamp actions with the `epoch` from the previous result.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let principal = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<AgentPrincipal>())
            .map(|p| p.0.clone())
            .unwrap_or_else(|| "unknown".into());
        let agent = context
            .peer
            .peer_info()
            .map(|i| i.client_info.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "mcp-client".into());
        let name = request.name.to_string();
        let span = tracing::info_span!("mcp_tool", tool = %name, agent = %agent);
        let args = request.arguments.unwrap_or_default();
        async move {
            match self.call(&name, args, AgentId { agent, principal }).await {
                Ok(r) => Ok(r),
                Err(msg) => {
                    tracing::info!(reason = %msg, "tool error");
                    Ok(error(msg))
                }
            }
        }
        .instrument(span)
        .await
    }
}
