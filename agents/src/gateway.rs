//! The client side of Airlock's MCP gateway.

use std::error::Error as StdError;
use std::time::Duration;

use base64::Engine as _;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ContentBlock, Implementation, ResourceContents,
};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, InsufficientScopeError, StreamableHttpClientTransportConfig,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceError, ServiceExt as _};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::error::AgentError;

/// How long [`Gateway::connect`] waits for the MCP handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One image a tool returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolImage {
    /// The MIME type, e.g. `image/png`.
    pub mime_type: String,
    /// The image, base64-encoded (standard alphabet, padded), as the tool sent it.
    pub data: String,
}

impl ToolImage {
    /// The image's bytes; `tool` names the source in the error.
    pub fn decode(&self, tool: &str) -> Result<Vec<u8>, AgentError> {
        base64::engine::general_purpose::STANDARD
            .decode(self.data.as_bytes())
            .map_err(|source| AgentError::InvalidImage {
                tool: tool.to_owned(),
                source,
            })
    }
}

/// What an MCP tool call returned, flattened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ToolOutcome {
    /// True when the tool refused, denied or failed the action (`isError`).
    pub is_error: bool,
    /// The text contents, in order.
    pub texts: Vec<String>,
    /// The image contents, in order.
    pub images: Vec<ToolImage>,
}

impl ToolOutcome {
    /// All text contents joined by newlines.
    pub fn text(&self) -> String {
        self.texts.join("\n")
    }

    /// The first text content that parses as a JSON object, e.g. `{"exit_code":0,…}`.
    pub fn json(&self) -> Option<Value> {
        self.texts
            .iter()
            .filter_map(|text| serde_json::from_str::<Value>(text).ok())
            .find(Value::is_object)
    }

    /// The first image, if any.
    pub fn first_image(&self) -> Option<&ToolImage> {
        self.images.first()
    }

    /// Total decoded size of all images in bytes; `tool` names the source in the error.
    pub fn image_bytes(&self, tool: &str) -> Result<usize, AgentError> {
        self.images
            .iter()
            .try_fold(0usize, |sum, image| Ok(sum + image.decode(tool)?.len()))
    }

    fn from_result(result: rmcp::model::CallToolResult) -> Self {
        let mut outcome = ToolOutcome {
            is_error: result.is_error.unwrap_or(false),
            ..Self::default()
        };
        for block in result.content {
            match block {
                ContentBlock::Text(text) => outcome.texts.push(text.text),
                ContentBlock::Image(image) => outcome.images.push(ToolImage {
                    mime_type: image.mime_type,
                    data: image.data,
                }),
                ContentBlock::Resource(resource) => {
                    if let ResourceContents::TextResourceContents { text, .. } = resource.resource {
                        outcome.texts.push(text);
                    }
                }
                // Audio, resource links and kinds added after rmcp 3.11 carry nothing an agent uses.
                _ => {}
            }
        }
        if outcome.texts.is_empty() {
            if let Some(structured) = result.structured_content {
                outcome.texts.push(structured.to_string());
            }
        }
        outcome
    }
}

/// A tool the gateway offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolInfo {
    /// The tool's name, e.g. `computer`.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its JSON Schema for arguments.
    pub input_schema: Value,
}

/// A connection to Airlock's MCP gateway (streamable HTTP, bearer token).
///
/// Calls take `&self` and may run concurrently.
pub struct Gateway {
    url: String,
    client: RunningService<RoleClient, ClientConfig>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Connects to the gateway at `url` (e.g. `http://127.0.0.1:7878/mcp`) with a bearer token and
    /// performs the MCP handshake.
    pub async fn connect(url: &str, token: &str) -> Result<Self, AgentError> {
        let span = tracing::info_span!("mcp_connect", url);
        async {
            let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token);
            let transport = StreamableHttpClientTransport::from_config(config);
            let info = ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new("airlock-agents", env!("CARGO_PKG_VERSION")),
            );
            let client = tokio::time::timeout(CONNECT_TIMEOUT, info.serve(transport))
                .await
                .map_err(|_| AgentError::ConnectTimeout {
                    url: url.to_owned(),
                    seconds: CONNECT_TIMEOUT.as_secs(),
                })?
                .map_err(|error| connect_error(url, error))?;
            tracing::debug!("connected");
            Ok(Gateway {
                url: url.to_owned(),
                client,
            })
        }
        .instrument(span)
        .await
    }

    /// The URL this gateway was reached at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Lists the tools the gateway offers.
    pub async fn list_tools(&self) -> Result<Vec<ToolInfo>, AgentError> {
        let tools = self
            .client
            .list_all_tools()
            .instrument(tracing::info_span!("mcp_list_tools"))
            .await
            .map_err(|error| self.service_error(error, |e| AgentError::ListTools(Box::new(e))))?;
        Ok(tools
            .into_iter()
            .map(|tool| ToolInfo {
                name: tool.name.into_owned(),
                description: tool.description.map(|d| d.into_owned()),
                input_schema: Value::Object((*tool.input_schema).clone()),
            })
            .collect())
    }

    /// Calls `tool` with `args` (a JSON object).
    ///
    /// A refused, denied or failed action is `Ok` with [`ToolOutcome::is_error`] set; `Err` means the
    /// call itself failed (transport, authentication, JSON-RPC error).
    pub async fn call(&self, tool: &str, args: Value) -> Result<ToolOutcome, AgentError> {
        let Value::Object(arguments) = args else {
            return Err(AgentError::ArgumentsNotObject {
                tool: tool.to_owned(),
            });
        };
        let span = tracing::info_span!("mcp_call", tool, is_error = tracing::field::Empty);
        async {
            let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
            let result = self.client.call_tool(params).await.map_err(|error| {
                self.service_error(error, |source| AgentError::Call {
                    tool: tool.to_owned(),
                    source: Box::new(source),
                })
            })?;
            let outcome = ToolOutcome::from_result(result);
            tracing::Span::current().record("is_error", outcome.is_error);
            tracing::debug!(
                texts = outcome.texts.len(),
                images = outcome.images.len(),
                "tool answered"
            );
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    /// Like [`Gateway::call`], but a JSON-RPC error answer (e.g. arguments the gateway rejects) becomes
    /// a refused outcome carrying the error message, as agents treat both the same way.
    pub async fn call_or_refusal(&self, tool: &str, args: Value) -> Result<ToolOutcome, AgentError> {
        match self.call(tool, args).await {
            Err(AgentError::Call { source, .. }) if matches!(*source, ServiceError::McpError(_)) => {
                Ok(ToolOutcome {
                    is_error: true,
                    texts: vec![source.to_string()],
                    images: Vec::new(),
                })
            }
            other => other,
        }
    }

    /// Creates a sandbox with `sandbox_create` and returns its id.
    pub async fn create_sandbox(
        &self,
        backend: Option<&str>,
        profile: Option<&str>,
    ) -> Result<String, AgentError> {
        let mut args = Map::new();
        if let Some(backend) = backend {
            args.insert("backend".into(), backend.into());
        }
        if let Some(profile) = profile {
            args.insert("profile".into(), profile.into());
        }
        let outcome = self.call("sandbox_create", Value::Object(args)).await?;
        if outcome.is_error {
            return Err(AgentError::ToolRefused {
                tool: "sandbox_create".into(),
                reason: outcome.text(),
            });
        }
        outcome
            .json()
            .and_then(|json| json.get("id").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| AgentError::UnexpectedToolResult {
                tool: "sandbox_create".into(),
                reason: format!("no \"id\" in {:?}", outcome.text()),
            })
    }

    /// Destroys a sandbox with `sandbox_destroy`.
    pub async fn destroy_sandbox(&self, sandbox: &str) -> Result<(), AgentError> {
        let outcome = self
            .call("sandbox_destroy", serde_json::json!({ "sandbox": sandbox }))
            .await?;
        if outcome.is_error {
            return Err(AgentError::ToolRefused {
                tool: "sandbox_destroy".into(),
                reason: outcome.text(),
            });
        }
        Ok(())
    }

    /// Takes a screenshot through the `computer` tool.
    pub async fn screenshot(&self, sandbox: Option<&str>) -> Result<ToolOutcome, AgentError> {
        self.call(
            "computer",
            with_sandbox(serde_json::json!({ "action": "screenshot" }), sandbox),
        )
        .await
    }

    /// Closes the MCP session.
    pub async fn close(mut self) {
        if let Err(error) = self.client.close().await {
            tracing::debug!(%error, "closing the MCP session failed");
        }
    }

    fn service_error(
        &self,
        error: ServiceError,
        wrap: impl FnOnce(ServiceError) -> AgentError,
    ) -> AgentError {
        match auth_status(&error) {
            Some(status) => AgentError::Unauthorized {
                url: self.url.clone(),
                status,
            },
            None => wrap(error),
        }
    }
}

/// Adds `"sandbox": id` to an argument object unless it already names one.
pub(crate) fn with_sandbox(mut args: Value, sandbox: Option<&str>) -> Value {
    if let (Some(sandbox), Value::Object(map)) = (sandbox, &mut args) {
        map.entry("sandbox")
            .or_insert_with(|| Value::String(sandbox.to_owned()));
    }
    args
}

fn connect_error(url: &str, error: ClientInitializeError) -> AgentError {
    // The transport error is a field, not the `source`, of `TransportError`: walk it directly.
    let status = match &error {
        ClientInitializeError::TransportError { error, .. } => auth_status(error),
        other if other.is_authorization_required() => Some(401),
        other => auth_status(other),
    };
    match status {
        Some(status) => AgentError::Unauthorized {
            url: url.to_owned(),
            status,
        },
        None => AgentError::Connect {
            url: url.to_owned(),
            source: Box::new(error),
        },
    }
}

/// Finds a 401/403 anywhere in an error chain: a challenged one is typed by rmcp, an unchallenged one
/// only shows in the message ("HTTP 401 Unauthorized: …").
fn auth_status(error: &(dyn StdError + 'static)) -> Option<u16> {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<AuthRequiredError>() {
            return Some(401);
        }
        if error.is::<InsufficientScopeError>() {
            return Some(403);
        }
        let message = error.to_string();
        for status in [401u16, 403] {
            if message.contains(&format!("HTTP {status} ")) || message.ends_with(&format!("HTTP {status}")) {
                return Some(status);
            }
        }
        current = error.source();
    }
    None
}
