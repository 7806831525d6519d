//! The MCP server agents drive sandboxes through (Streamable HTTP, mounted by `airlock-server`).
//!
//! Tools: `computer` (Anthropic's computer-use input, verbatim), `computer_openai` (an OpenAI
//! computer-use `action`, verbatim), `exec`, `read_file`, `write_file`, `list_files`,
//! `request_network`, `request_human`, `sandbox_create`,
//! `sandbox_list`, `sandbox_destroy`.
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
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;

use airlock_guest_image::Profile;
use airlock_sandbox::BackendChoice;
use airlock_supervisor::gateway::{recorded_result, ActionRequest, ActionResult, AgentCall, AgentId};
use airlock_supervisor::Supervisor;

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

/// The input schema of a tool, derived from the type its arguments are parsed into.
fn schema<T: JsonSchema>() -> Arc<JsonObject> {
    let mut schema = match serde_json::to_value(schemars::schema_for!(T)) {
        Ok(Value::Object(o)) => o,
        _ => JsonObject::new(),
    };
    schema.remove("$schema");
    schema.remove("title");
    Arc::new(schema)
}

/// An Anthropic computer-use action name.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ComputerAction {
    Key,
    Type,
    MouseMove,
    LeftClick,
    LeftClickDrag,
    RightClick,
    MiddleClick,
    DoubleClick,
    TripleClick,
    LeftMouseDown,
    LeftMouseUp,
    Scroll,
    HoldKey,
    Wait,
    Screenshot,
    CursorPosition,
    Zoom,
}

/// A scroll direction.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ScrollDirection {
    Up,
    Down,
    Left,
    Right,
}

/// The arguments of `computer`: Anthropic's computer-use input, plus where and under which epoch.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ComputerArgs {
    /// Parsed (and an unknown name refused) by the action model, like every other field here.
    #[schemars(with = "ComputerAction")]
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    coordinate: Option<[i64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_coordinate: Option<[i64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scroll_direction: Option<ScrollDirection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scroll_amount: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<[i64; 4]>,
    /// The sandbox id (optional when exactly one sandbox runs).
    #[serde(default, skip_serializing)]
    sandbox: Option<String>,
    /// The control-lease epoch from the previous result; an action planned under an older epoch is refused.
    #[serde(default, skip_serializing)]
    epoch: Option<u64>,
}

/// An OpenAI computer-use action object.
#[derive(Debug, Deserialize, JsonSchema)]
struct OpenAiActionArg {
    /// click, double_click, drag, keypress, move, scroll, type, wait or screenshot.
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    #[schemars(skip)]
    rest: JsonObject,
}

/// The arguments of `computer_openai`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OpenAiArgs {
    action: OpenAiActionArg,
    /// The sandbox id (optional when exactly one sandbox runs).
    #[serde(default)]
    sandbox: Option<String>,
    /// The control-lease epoch from the previous result; an action planned under an older epoch is refused.
    #[serde(default)]
    epoch: Option<u64>,
}

/// The arguments of `exec`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExecArgs {
    /// The program and its arguments.
    #[schemars(length(min = 1))]
    argv: Vec<String>,
    /// What to write to its standard input.
    #[serde(default)]
    stdin: Option<String>,
    /// Kill it after this many milliseconds.
    #[serde(default)]
    #[schemars(range(min = 1))]
    timeout_ms: Option<u32>,
    /// The sandbox id (optional when exactly one sandbox runs).
    #[serde(default)]
    sandbox: Option<String>,
    /// The control-lease epoch from the previous result; an action planned under an older epoch is refused.
    #[serde(default)]
    epoch: Option<u64>,
}

/// How `write_file`'s content is written.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum EncodingArg {
    /// Text, written as UTF-8.
    #[default]
    Utf8,
    /// Bytes, base64-encoded.
    Base64,
}

/// The arguments of `read_file` and `list_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    /// An absolute path in the sandbox (no `..`).
    path: String,
    /// The sandbox id (optional when exactly one sandbox runs).
    #[serde(default)]
    sandbox: Option<String>,
    /// The control-lease epoch from the previous result; an action planned under an older epoch is refused.
    #[serde(default)]
    epoch: Option<u64>,
}

/// The arguments of `write_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WriteFileArgs {
    /// An absolute path in the sandbox (no `..`); missing folders are created.
    path: String,
    /// What to write.
    content: String,
    /// utf8 (default) or base64.
    #[serde(default)]
    encoding: Option<EncodingArg>,
    /// The sandbox id (optional when exactly one sandbox runs).
    #[serde(default)]
    sandbox: Option<String>,
    /// The control-lease epoch from the previous result; an action planned under an older epoch is refused.
    #[serde(default)]
    epoch: Option<u64>,
}

/// A backend to create a sandbox on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum BackendArg {
    Auto,
    Microvm,
    Gvisor,
}

impl BackendArg {
    fn choice(self) -> BackendChoice {
        match self {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Microvm => BackendChoice::Microvm,
            BackendArg::Gvisor => BackendChoice::Gvisor,
        }
    }
}

/// A guest profile.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ProfileArg {
    Minimal,
    Desktop,
}

impl ProfileArg {
    fn profile(self) -> Profile {
        match self {
            ProfileArg::Minimal => Profile::Minimal,
            ProfileArg::Desktop => Profile::Desktop,
        }
    }
}

/// The arguments of `sandbox_create`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateArgs {
    #[serde(default)]
    backend: Option<BackendArg>,
    #[serde(default)]
    profile: Option<ProfileArg>,
}

/// The arguments of `request_network`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RequestNetwork {
    /// Destinations as host or host:port (port 443 when not given).
    #[schemars(length(min = 1, max = 32))]
    hosts: Vec<String>,
    /// Why the task needs them, for the operator.
    reason: String,
    /// The sandbox id (optional when exactly one sandbox runs).
    #[serde(default)]
    sandbox: Option<String>,
}

/// The kind of help asked for.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum HelpKindArg {
    Login,
    Captcha,
    Confirm,
    Other,
}

impl HelpKindArg {
    fn kind(self) -> airlock_domain::HelpKind {
        match self {
            HelpKindArg::Login => airlock_domain::HelpKind::Login,
            HelpKindArg::Captcha => airlock_domain::HelpKind::Captcha,
            HelpKindArg::Confirm => airlock_domain::HelpKind::Confirm,
            HelpKindArg::Other => airlock_domain::HelpKind::Other,
        }
    }
}

/// The arguments of `request_human`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RequestHuman {
    /// What you need a human for, for the operator (a sign-in, a CAPTCHA, a confirmation).
    #[schemars(length(min = 1, max = 2000))]
    reason: String,
    /// login, captcha, confirm or other (default).
    #[serde(default)]
    kind: Option<HelpKindArg>,
    /// How long to wait for an operator, in seconds (default 600, at most 3600).
    #[serde(default)]
    #[schemars(range(min = 1, max = 3600))]
    wait_s: Option<u64>,
    /// The sandbox id (optional when exactly one sandbox runs).
    #[serde(default)]
    sandbox: Option<String>,
}

/// The arguments of `sandbox_list`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// The arguments of `sandbox_destroy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DestroyArgs {
    /// The sandbox to destroy.
    sandbox: String,
}

/// The tools, with their input schemas (derived from the argument types the calls are parsed into).
pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "computer",
            "Use the sandbox's desktop with Anthropic's computer-use actions. Every action passes Airlock's policy gate; some wait for an operator's approval; while a human holds control, actions are refused.",
            schema::<ComputerArgs>(),
        ),
        Tool::new(
            "computer_openai",
            "Use the sandbox's desktop with an OpenAI computer-use action object (click, double_click, drag, keypress, move, scroll, type, wait, screenshot).",
            schema::<OpenAiArgs>(),
        ),
        Tool::new(
            "exec",
            "Run a program inside the sandbox (no shell unless you run one). Subject to the policy gate.",
            schema::<ExecArgs>(),
        ),
        Tool::new(
            "read_file",
            "Read a file in the sandbox (at most 16 MiB; text comes back as text, other bytes as base64). Passes the policy gate: the home directory is yours, anything else or a large read waits for an operator.",
            schema::<PathArgs>(),
        ),
        Tool::new(
            "write_file",
            "Write a file in the sandbox (created or replaced atomically, missing folders created; at most 16 MiB). Passes the policy gate like read_file.",
            schema::<WriteFileArgs>(),
        ),
        Tool::new(
            "list_files",
            "List a folder in the sandbox: each entry's name, kind (file, dir, symlink, other), size, mode and modification time. Passes the policy gate like read_file.",
            schema::<PathArgs>(),
        ),
        Tool::new(
            "sandbox_create",
            "Start a new empty sandbox (no network, no host files).",
            schema::<CreateArgs>(),
        ),
        Tool::new(
            "request_network",
            "Ask the operator, before you start, to let the sandbox reach these network destinations (its programs reach the network only through Airlock's egress gateway, which asks about every new destination). Waits for the operator's decision and returns it.",
            schema::<RequestNetwork>(),
        ),
        Tool::new(
            "request_human",
            "Ask a human operator to step in instead of guessing: a password or sign-in, a CAPTCHA, a step a person should confirm. Waits until an operator has taken control, done it and handed back; returns their note and a fresh screenshot (and the new epoch). If nobody answers in time, returns an error saying so.",
            schema::<RequestHuman>(),
        ),
        Tool::new("sandbox_list", "List the sandboxes under supervision.", schema::<NoArgs>()),
        Tool::new(
            "sandbox_destroy",
            "Destroy a sandbox and everything in it.",
            schema::<DestroyArgs>(),
        ),
    ]
}

/// Parses a tool's arguments into its argument type; the error names the tool and what was wrong.
fn args<T: serde::de::DeserializeOwned>(tool: &str, args: JsonObject) -> Result<T, String> {
    serde_json::from_value(Value::Object(args))
        .map_err(|e| format!("the {tool} tool's arguments do not fit: {e}"))
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

impl AirlockMcp {
    async fn call(
        &self,
        name: &str,
        call_args: JsonObject,
        agent: AgentId,
    ) -> Result<CallToolResponse, String> {
        let actor = Actor {
            agent: Some(agent.agent.clone()),
            principal: Some(agent.principal.clone()),
            operator: None,
        };
        match name {
            "computer" | "computer_openai" | "exec" | "read_file" | "write_file" | "list_files" => {
                let (sandbox, epoch, request) = match name {
                    "computer" => {
                        let a: ComputerArgs = args(name, call_args)?;
                        let input = serde_json::to_value(&a).map_err(|e| airlock_supervisor::chain(&e))?;
                        (a.sandbox, a.epoch, ActionRequest::Anthropic(input))
                    }
                    "computer_openai" => {
                        let a: OpenAiArgs = args(name, call_args)?;
                        let mut action = a.action.rest;
                        action.insert("type".into(), Value::String(a.action.kind));
                        (a.sandbox, a.epoch, ActionRequest::OpenAi(Value::Object(action)))
                    }
                    "read_file" | "list_files" => {
                        let a: PathArgs = args(name, call_args)?;
                        let request = match name {
                            "read_file" => ActionRequest::ReadFile { path: a.path },
                            _ => ActionRequest::ListFiles { path: a.path },
                        };
                        (a.sandbox, a.epoch, request)
                    }
                    "write_file" => {
                        let a: WriteFileArgs = args(name, call_args)?;
                        let content = match a.encoding.unwrap_or_default() {
                            EncodingArg::Utf8 => a.content.into_bytes(),
                            EncodingArg::Base64 => base64::engine::general_purpose::STANDARD
                                .decode(a.content.as_bytes())
                                .map_err(|e| format!("write_file: the content is not base64: {e}"))?,
                        };
                        (a.sandbox, a.epoch, ActionRequest::WriteFile { path: a.path, content })
                    }
                    _ => {
                        let a: ExecArgs = args(name, call_args)?;
                        let request = ActionRequest::Exec {
                            argv: a.argv,
                            stdin: a.stdin.unwrap_or_default(),
                            timeout_ms: a.timeout_ms,
                        };
                        (a.sandbox, a.epoch, request)
                    }
                };
                let reply = self
                    .sup
                    .act(AgentCall { sandbox, agent, epoch, request })
                    .await
                    .map_err(|e| airlock_supervisor::chain(&e))?;
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
                    ActionResult::File(airlock_supervisor::gateway::FileResult::Read { bytes, .. }) => {
                        let content = match String::from_utf8(bytes) {
                            Ok(text) => ContentBlock::text(text),
                            Err(e) => ContentBlock::text(format!(
                                "base64:{}",
                                base64::engine::general_purpose::STANDARD.encode(e.as_bytes())
                            )),
                        };
                        CallToolResult::success(vec![content, ContentBlock::text(summary.to_string())]).into()
                    }
                    ActionResult::File(airlock_supervisor::gateway::FileResult::Listed(listing)) => {
                        let listing = serde_json::to_string(&listing).map_err(|e| airlock_supervisor::chain(&e))?;
                        CallToolResult::success(vec![ContentBlock::text(listing), ContentBlock::text(summary.to_string())])
                            .into()
                    }
                    ActionResult::File(airlock_supervisor::gateway::FileResult::Written { .. })
                    | ActionResult::Done
                    | ActionResult::Cursor(_)
                    | ActionResult::Exec(_) => {
                        CallToolResult::success(vec![ContentBlock::text(summary.to_string())]).into()
                    }
                })
            }
            "sandbox_create" => {
                let a: CreateArgs = args(name, call_args)?;
                let spec = airlock_supervisor::api::CreateRequest {
                    backend: a.backend.map(BackendArg::choice),
                    profile: a.profile.map(ProfileArg::profile),
                    ..Default::default()
                }
                .spec()
                .map_err(|e| airlock_supervisor::chain(&e))?;
                let info = self.sup.create_sandbox(spec, &actor).await.map_err(|e| airlock_supervisor::chain(&e))?;
                Ok(CallToolResult::success(vec![ContentBlock::text(json!(info).to_string())]).into())
            }
            "request_network" => {
                let a: RequestNetwork = args(name, call_args)?;
                let hosts = a.hosts.iter().map(|h| host_port(h)).collect::<Result<Vec<_>, _>>()?;
                let ask = self
                    .sup
                    .request_network(a.sandbox.as_deref(), &agent.agent, &hosts, &a.reason)
                    .await
                    .map_err(|e| airlock_supervisor::chain(&e))?;
                let text = serde_json::to_string(&ask).map_err(|e| airlock_supervisor::chain(&e))?;
                Ok(match ask.state {
                    airlock_domain::EgressAskState::Allowed { .. } => CallToolResult::success(vec![ContentBlock::text(text)]).into(),
                    airlock_domain::EgressAskState::Pending
                    | airlock_domain::EgressAskState::Denied { .. }
                    | airlock_domain::EgressAskState::Expired => CallToolResult::error(vec![ContentBlock::text(text)]).into(),
                })
            }
            "request_human" => {
                let a: RequestHuman = args(name, call_args)?;
                let kind = a.kind.map(HelpKindArg::kind).unwrap_or_default();
                let answer = self
                    .sup
                    .request_human(
                        a.sandbox.as_deref(),
                        &agent,
                        &a.reason,
                        kind,
                        a.wait_s.map(|s| s.saturating_mul(1000)),
                    )
                    .await
                    .map_err(|e| airlock_supervisor::chain(&e))?;
                let text = json!({
                    "answered_by": answer.summary.operator,
                    "note": answer.summary.note,
                    "summary": answer.summary.to_string(),
                    "epoch": answer.epoch,
                });
                Ok(CallToolResult::success(vec![ContentBlock::text(text.to_string()), png(&answer.frame.png)]).into())
            }
            "sandbox_list" => {
                let NoArgs {} = args(name, call_args)?;
                let list = self.sup.list().await;
                Ok(CallToolResult::success(vec![ContentBlock::text(json!(list).to_string())]).into())
            }
            "sandbox_destroy" => {
                let DestroyArgs { sandbox: id } = args(name, call_args)?;
                self.sup.destroy_sandbox(&id, &actor).await.map_err(|e| airlock_supervisor::chain(&e))?;
                Ok(CallToolResult::success(vec![ContentBlock::text(json!({"destroyed": id}).to_string())]).into())
            }
            other => Err(format!(
                "there is no tool {other:?}; the tools are computer, computer_openai, exec, read_file, write_file, list_files, request_network, request_human, sandbox_create, sandbox_list, sandbox_destroy"
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

#[cfg(test)]
mod tests {
    use airlock_domain::{Action, Screen};

    use super::*;

    fn object(v: Value) -> JsonObject {
        match v {
            Value::Object(o) => o,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn a_tool_schema_is_derived_from_the_type_its_arguments_parse_into() {
        let tools = tools();
        let computer = tools
            .iter()
            .find(|t| t.name == "computer")
            .expect("computer tool");
        let schema = Value::Object((*computer.input_schema).clone());
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["action"]));
        let properties = schema["properties"].as_object().expect("properties");
        for field in [
            "action",
            "coordinate",
            "text",
            "scroll_direction",
            "sandbox",
            "epoch",
        ] {
            assert!(properties.contains_key(field), "{field} missing from {schema}");
        }
        assert!(schema.to_string().contains("left_click_drag"), "{schema}");
        assert!(schema.get("$schema").is_none());
    }

    #[test]
    fn an_argument_a_tool_does_not_take_is_refused_by_name() {
        let e = args::<ExecArgs>("exec", object(json!({"argv": ["ls"], "shell": true})))
            .expect_err("unknown field");
        assert!(e.contains("exec") && e.contains("shell"), "{e}");
        let e = args::<ComputerArgs>("computer", object(json!({"action": "left_click", "button": 1})))
            .expect_err("unknown field");
        assert!(e.contains("button"), "{e}");
    }

    #[test]
    fn computer_arguments_reach_the_action_parser_without_the_target() {
        let a: ComputerArgs = args(
            "computer",
            object(json!({"action": "left_click", "coordinate": [10, 20], "sandbox": "sb1", "epoch": 3})),
        )
        .expect("parse");
        assert_eq!((a.sandbox.as_deref(), a.epoch), (Some("sb1"), Some(3)));
        let input = serde_json::to_value(&a).expect("encode");
        assert_eq!(input, json!({"action": "left_click", "coordinate": [10, 20]}));
        let action = Action::from_anthropic(
            &input,
            Screen {
                width: 1280,
                height: 800,
            },
        )
        .expect("an Anthropic action");
        assert_eq!(action.kind().to_string(), "click");
    }
}
