//! The Anthropic Messages API computer-use loop (`computer_20250124`).
//!
//! Each `tool_use` block's `input` goes verbatim (plus the sandbox id) to the gateway's `computer`
//! tool; its texts and images go back to the model as a `tool_result`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracing::Instrument as _;

use crate::computer_use::{http_client, post_json, provider_env, ActionReport, Display, LoopReport};
use crate::error::{AgentError, Provider};
use crate::gateway::{with_sandbox, Gateway, ToolOutcome};
use crate::observer::Observer;
use crate::plan::millis;

/// The `anthropic-version` header value.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The `anthropic-beta` header value that enables the computer tool.
pub const COMPUTER_USE_BETA: &str = "computer-use-2025-01-24";
/// The computer tool's type.
pub const COMPUTER_TOOL_TYPE: &str = "computer_20250124";
/// The default API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The default model.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

const PROVIDER: Provider = Provider::Anthropic;

/// How to reach the Anthropic API and run the loop.
#[derive(Clone, PartialEq, Eq)]
pub struct AnthropicConfig {
    /// Sent as `x-api-key`.
    pub api_key: String,
    /// API base URL without `/v1` (default `https://api.anthropic.com`).
    pub base_url: String,
    /// The model (default `claude-sonnet-4-5`).
    pub model: String,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
    /// The screen size announced to the model.
    pub display: Display,
    /// The X display number announced to the model.
    pub display_number: u32,
    /// An optional system prompt.
    pub system: Option<String>,
    /// The sandbox to act in; `None` leaves the choice to the gateway.
    pub sandbox: Option<String>,
    /// Maximum number of model requests.
    pub max_steps: usize,
    /// Timeout of each model request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("display", &self.display)
            .field("sandbox", &self.sandbox)
            .field("max_steps", &self.max_steps)
            .finish_non_exhaustive()
    }
}

impl AnthropicConfig {
    /// A configuration with the given key and defaults for everything else.
    pub fn new(api_key: impl Into<String>) -> Self {
        AnthropicConfig {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.into(),
            model: DEFAULT_MODEL.into(),
            max_tokens: 4096,
            display: Display::default(),
            display_number: 1,
            system: None,
            sandbox: None,
            max_steps: 50,
            request_timeout: Duration::from_secs(300),
        }
    }

    /// Reads `ANTHROPIC_API_KEY` (required), `ANTHROPIC_BASE_URL` and `ANTHROPIC_MODEL`.
    pub fn from_env() -> Result<Self, AgentError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`AnthropicConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AgentError> {
        let (api_key, base_url, model) = provider_env(
            &lookup,
            ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL"],
        )?;
        let mut config = Self::new(api_key);
        config.base_url = base_url.unwrap_or(config.base_url);
        config.model = model.unwrap_or(config.model);
        Ok(config)
    }

    /// The `tools` array of each request.
    pub fn tools(&self) -> Value {
        json!([{
            "type": COMPUTER_TOOL_TYPE,
            "name": "computer",
            "display_width_px": self.display.width,
            "display_height_px": self.display.height,
            "display_number": self.display_number,
        }])
    }

    fn messages_url(&self) -> String {
        format!("{}/v1/messages", self.base_url.trim_end_matches('/'))
    }
}

/// Runs the computer-use loop for `task` until the model stops asking for tools.
pub async fn run_anthropic(
    gateway: &Gateway,
    cfg: &AnthropicConfig,
    task: &str,
) -> Result<LoopReport, AgentError> {
    run_anthropic_observed(gateway, cfg, task, &mut |_: &ActionReport| {}).await
}

/// [`run_anthropic`], with `observer` seeing each action as it completes.
pub async fn run_anthropic_observed(
    gateway: &Gateway,
    cfg: &AnthropicConfig,
    task: &str,
    observer: &mut impl Observer<ActionReport>,
) -> Result<LoopReport, AgentError> {
    let span = tracing::info_span!("anthropic_loop", model = %cfg.model, sandbox = ?cfg.sandbox);
    async {
        let started = Instant::now();
        let url = cfg.messages_url();
        let client = http_client(PROVIDER, &url, cfg.request_timeout)?;
        let headers = [
            ("x-api-key", cfg.api_key.as_str()),
            ("anthropic-version", ANTHROPIC_VERSION),
            ("anthropic-beta", COMPUTER_USE_BETA),
        ];
        let tools = cfg.tools();
        let mut messages = vec![json!({ "role": "user", "content": task })];
        let mut report = LoopReport::new(PROVIDER, &cfg.model);
        for turn in 1..=cfg.max_steps {
            let mut body = json!({
                "model": cfg.model,
                "max_tokens": cfg.max_tokens,
                "tools": tools,
                "messages": messages,
            });
            if let Some(system) = &cfg.system {
                body["system"] = Value::String(system.clone());
            }
            let response = post_json(&client, PROVIDER, &url, &headers, &body)
                .instrument(tracing::info_span!("anthropic_request", turn))
                .await?;
            report.turns = turn;
            let content = response
                .get("content")
                .and_then(Value::as_array)
                .ok_or_else(|| PROVIDER.bad_response("no `content` array"))?
                .clone();
            let stop_reason = response
                .get("stop_reason")
                .and_then(Value::as_str)
                .map(str::to_owned);
            tracing::info!(turn, stop_reason = ?stop_reason, blocks = content.len(), "model answered");
            report.assistant_texts.extend(
                content
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_owned)),
            );
            let tool_uses: Vec<&Value> = content
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
                .collect();
            if stop_reason.as_deref() != Some("tool_use") {
                report.stop_reason = stop_reason;
                report.elapsed_ms = millis(started.elapsed());
                return Ok(report);
            }
            if tool_uses.is_empty() {
                return Err(
                    PROVIDER.bad_response("`stop_reason` is `tool_use` but there is no `tool_use` block")
                );
            }
            let mut results = Vec::with_capacity(tool_uses.len());
            for block in tool_uses {
                let (result, action) = run_tool_use(gateway, cfg, turn, block).await?;
                observer.observe(&action);
                report.actions.push(action);
                results.push(result);
            }
            messages.push(json!({ "role": "assistant", "content": content }));
            messages.push(json!({ "role": "user", "content": results }));
        }
        Err(AgentError::MaxSteps {
            provider: PROVIDER,
            max_steps: cfg.max_steps,
        })
    }
    .instrument(span)
    .await
}

/// Carries out one `tool_use` block; returns its `tool_result` block and the report.
async fn run_tool_use(
    gateway: &Gateway,
    cfg: &AnthropicConfig,
    turn: usize,
    block: &Value,
) -> Result<(Value, ActionReport), AgentError> {
    let id = block
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| PROVIDER.bad_response("a `tool_use` block has no `id`"))?
        .to_owned();
    let name = block.get("name").and_then(Value::as_str).unwrap_or_default();
    let input = block.get("input").cloned().unwrap_or(Value::Null);
    let started = Instant::now();
    let outcome = if name != "computer" {
        ToolOutcome {
            is_error: true,
            texts: vec![format!("unknown tool {name:?}; only `computer` exists")],
            images: vec![],
        }
    } else if !input.is_object() {
        ToolOutcome {
            is_error: true,
            texts: vec!["the tool input must be an object".into()],
            images: vec![],
        }
    } else {
        gateway
            .call_or_refusal("computer", with_sandbox(input.clone(), cfg.sandbox.as_deref()))
            .instrument(tracing::info_span!("anthropic_action", turn, tool_use_id = %id))
            .await?
    };
    let image_bytes = outcome.image_bytes("computer")?;
    let result = tool_result(&id, &outcome);
    let action = ActionReport {
        turn,
        tool: "computer".into(),
        call_id: id,
        action: input,
        is_error: outcome.is_error,
        texts: outcome.texts,
        image_bytes,
        acknowledged_safety_checks: Vec::new(),
        elapsed_ms: millis(started.elapsed()),
    };
    Ok((result, action))
}

/// The `tool_result` block answering `tool_use_id` with a gateway outcome.
pub fn tool_result(tool_use_id: &str, outcome: &ToolOutcome) -> Value {
    let mut content: Vec<Value> = outcome
        .texts
        .iter()
        .filter(|text| !text.trim().is_empty())
        .map(|text| json!({ "type": "text", "text": text }))
        .collect();
    content.extend(outcome.images.iter().map(|image| {
        json!({
            "type": "image",
            "source": { "type": "base64", "media_type": image.mime_type, "data": image.data },
        })
    }));
    if content.is_empty() {
        content.push(json!({ "type": "text", "text": if outcome.is_error { "error" } else { "ok" } }));
    }
    let mut block = json!({ "type": "tool_result", "tool_use_id": tool_use_id, "content": content });
    if outcome.is_error {
        block["is_error"] = Value::Bool(true);
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ToolImage;

    #[test]
    fn config_from_lookup() {
        let missing = AnthropicConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the environment variable ANTHROPIC_API_KEY is not set"
        );
        let config = AnthropicConfig::from_lookup(|name| match name {
            "ANTHROPIC_API_KEY" => Some("k".into()),
            "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:9/".into()),
            _ => Some(String::new()),
        })
        .unwrap();
        assert_eq!(config.model, DEFAULT_MODEL);
        assert_eq!(config.messages_url(), "http://127.0.0.1:9/v1/messages");
        assert!(!format!("{config:?}").contains("\"k\""));
    }

    #[test]
    fn tool_result_shape() {
        let outcome = ToolOutcome {
            is_error: true,
            texts: vec!["denied".into(), String::new()],
            images: vec![ToolImage {
                mime_type: "image/png".into(),
                data: "AAAA".into(),
            }],
        };
        assert_eq!(
            tool_result("toolu_1", &outcome),
            json!({
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": [
                    {"type": "text", "text": "denied"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                ],
                "is_error": true,
            })
        );
    }
}
