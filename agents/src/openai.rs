//! The OpenAI Responses API computer-use loop (`computer_use_preview`).
//!
//! Each `computer_call.action` goes verbatim (plus the sandbox id) to the gateway's `computer_openai`
//! tool; a screenshot goes back as the `computer_call_output`. After any action other than
//! `screenshot` the adapter takes a fresh screenshot through the `computer` tool.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracing::Instrument as _;

use crate::computer_use::{http_client, post_json, provider_env, ActionReport, Display, LoopReport};
use crate::error::{AgentError, Provider};
use crate::gateway::{with_sandbox, Gateway, ToolImage};
use crate::observer::Observer;
use crate::plan::millis;

/// The default API base URL (including `/v1`).
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The default model.
pub const DEFAULT_MODEL: &str = "computer-use-preview";
/// The computer tool's type.
pub const COMPUTER_TOOL_TYPE: &str = "computer_use_preview";

const PROVIDER: Provider = Provider::OpenAi;

/// How to reach the OpenAI API and run the loop.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// Sent as `Authorization: Bearer`.
    pub api_key: String,
    /// API base URL including `/v1` (default `https://api.openai.com/v1`).
    pub base_url: String,
    /// The model (default `computer-use-preview`).
    pub model: String,
    /// The screen size announced to the model.
    pub display: Display,
    /// The environment announced to the model (`linux`).
    pub environment: String,
    /// The sandbox to act in; `None` leaves the choice to the gateway.
    pub sandbox: Option<String>,
    /// Acknowledge `pending_safety_checks` and go on (Airlock's policy still gates every action);
    /// when false, a safety check ends the loop with [`AgentError::SafetyChecks`].
    pub acknowledge_safety_checks: bool,
    /// Maximum number of model requests.
    pub max_steps: usize,
    /// Timeout of each model request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("display", &self.display)
            .field("sandbox", &self.sandbox)
            .field("max_steps", &self.max_steps)
            .finish_non_exhaustive()
    }
}

impl OpenAiConfig {
    /// A configuration with the given key and defaults for everything else.
    pub fn new(api_key: impl Into<String>) -> Self {
        OpenAiConfig {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.into(),
            model: DEFAULT_MODEL.into(),
            display: Display::default(),
            environment: "linux".into(),
            sandbox: None,
            acknowledge_safety_checks: true,
            max_steps: 50,
            request_timeout: Duration::from_secs(300),
        }
    }

    /// Reads `OPENAI_API_KEY` (required), `OPENAI_BASE_URL` and `OPENAI_MODEL`.
    pub fn from_env() -> Result<Self, AgentError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`OpenAiConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AgentError> {
        let (api_key, base_url, model) =
            provider_env(&lookup, ["OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"])?;
        let mut config = Self::new(api_key);
        config.base_url = base_url.unwrap_or(config.base_url);
        config.model = model.unwrap_or(config.model);
        Ok(config)
    }

    /// The `tools` array of each request.
    pub fn tools(&self) -> Value {
        json!([{
            "type": COMPUTER_TOOL_TYPE,
            "display_width": self.display.width,
            "display_height": self.display.height,
            "environment": self.environment,
        }])
    }

    fn responses_url(&self) -> String {
        format!("{}/responses", self.base_url.trim_end_matches('/'))
    }
}

/// Runs the computer-use loop for `task` until a response has no `computer_call`.
pub async fn run_openai(gateway: &Gateway, cfg: &OpenAiConfig, task: &str) -> Result<LoopReport, AgentError> {
    run_openai_observed(gateway, cfg, task, &mut |_: &ActionReport| {}).await
}

/// [`run_openai`], with `observer` seeing each action as it completes.
pub async fn run_openai_observed(
    gateway: &Gateway,
    cfg: &OpenAiConfig,
    task: &str,
    observer: &mut impl Observer<ActionReport>,
) -> Result<LoopReport, AgentError> {
    let span = tracing::info_span!("openai_loop", model = %cfg.model, sandbox = ?cfg.sandbox);
    async {
        let started = Instant::now();
        let url = cfg.responses_url();
        let client = http_client(PROVIDER, &url, cfg.request_timeout)?;
        let authorization = format!("Bearer {}", cfg.api_key);
        let headers = [("authorization", authorization.as_str())];
        let tools = cfg.tools();
        let mut body = json!({
            "model": cfg.model,
            "tools": tools,
            "input": [{ "role": "user", "content": task }],
            "truncation": "auto",
        });
        let mut report = LoopReport::new(PROVIDER, &cfg.model);
        for turn in 1..=cfg.max_steps {
            let response = post_json(&client, PROVIDER, &url, &headers, &body)
                .instrument(tracing::info_span!("openai_request", turn))
                .await?;
            report.turns = turn;
            let status = response.get("status").and_then(Value::as_str).map(str::to_owned);
            if status.as_deref() == Some("failed") {
                return Err(failed_response(&response));
            }
            let id = response
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| PROVIDER.bad_response("no response `id`"))?
                .to_owned();
            let output = response
                .get("output")
                .and_then(Value::as_array)
                .ok_or_else(|| PROVIDER.bad_response("no `output` array"))?;
            tracing::info!(turn, response_id = %id, status = ?status, items = output.len(), "model answered");
            report
                .assistant_texts
                .extend(output.iter().flat_map(message_texts));
            let calls: Vec<&Value> = output
                .iter()
                .filter(|item| item.get("type").and_then(Value::as_str) == Some("computer_call"))
                .collect();
            if calls.is_empty() {
                report.stop_reason = status;
                report.elapsed_ms = millis(started.elapsed());
                return Ok(report);
            }
            let mut input = Vec::with_capacity(calls.len());
            for call in calls {
                let action = run_computer_call(gateway, cfg, turn, call, &mut input).await?;
                observer.observe(&action);
                report.actions.push(action);
            }
            body = json!({
                "model": cfg.model,
                "previous_response_id": id,
                "tools": tools,
                "input": input,
                "truncation": "auto",
            });
        }
        Err(AgentError::MaxSteps {
            provider: PROVIDER,
            max_steps: cfg.max_steps,
        })
    }
    .instrument(span)
    .await
}

/// Carries out one `computer_call`, appending its `computer_call_output` (and, when the gateway
/// refused the action, a user message saying why) to `input`.
async fn run_computer_call(
    gateway: &Gateway,
    cfg: &OpenAiConfig,
    turn: usize,
    call: &Value,
    input: &mut Vec<Value>,
) -> Result<ActionReport, AgentError> {
    let call_id = call
        .get("call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| PROVIDER.bad_response("a `computer_call` has no `call_id`"))?
        .to_owned();
    let action = call
        .get("action")
        .filter(|a| a.is_object())
        .ok_or_else(|| PROVIDER.bad_response("a `computer_call` has no `action` object"))?
        .clone();
    let checks: Vec<Value> = call
        .get("pending_safety_checks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !checks.is_empty() && !cfg.acknowledge_safety_checks {
        return Err(AgentError::SafetyChecks {
            provider: PROVIDER,
            checks: describe_checks(&checks),
        });
    }
    if !checks.is_empty() {
        tracing::warn!(checks = %describe_checks(&checks), "acknowledging the model's safety checks");
    }
    let started = Instant::now();
    let sandbox = cfg.sandbox.as_deref();
    let span = tracing::info_span!("openai_action", turn, call_id = %call_id);
    let (outcome, image) = async {
        let outcome = gateway
            .call_or_refusal(
                "computer_openai",
                with_sandbox(json!({ "action": action }), sandbox),
            )
            .await?;
        let is_screenshot = action.get("type").and_then(Value::as_str) == Some("screenshot");
        let image = match outcome.first_image() {
            Some(image) if is_screenshot => image.clone(),
            _ => screenshot(gateway, sandbox).await?,
        };
        Ok::<_, AgentError>((outcome, image))
    }
    .instrument(span)
    .await?;
    let image_bytes = image.decode("computer")?.len();
    let mut output = json!({
        "type": "computer_call_output",
        "call_id": call_id,
        "output": {
            "type": "computer_screenshot",
            "image_url": format!("data:{};base64,{}", image.mime_type, image.data),
        },
    });
    if !checks.is_empty() {
        output["acknowledged_safety_checks"] = Value::Array(checks.clone());
    }
    input.push(output);
    if outcome.is_error {
        input.push(json!({
            "role": "user",
            "content": format!("Airlock refused that action: {}", outcome.text()),
        }));
    }
    Ok(ActionReport {
        turn,
        tool: "computer_openai".into(),
        call_id,
        action,
        is_error: outcome.is_error,
        texts: outcome.texts,
        image_bytes,
        acknowledged_safety_checks: checks,
        elapsed_ms: millis(started.elapsed()),
    })
}

async fn screenshot(gateway: &Gateway, sandbox: Option<&str>) -> Result<ToolImage, AgentError> {
    let outcome = gateway.screenshot(sandbox).await?;
    if outcome.is_error {
        return Err(AgentError::ToolRefused {
            tool: "computer".into(),
            reason: outcome.text(),
        });
    }
    outcome
        .first_image()
        .cloned()
        .ok_or_else(|| AgentError::UnexpectedToolResult {
            tool: "computer".into(),
            reason: "a screenshot returned no image".into(),
        })
}

/// The `output_text` (and `refusal`) texts of a `message` output item.
fn message_texts(item: &Value) -> Vec<String> {
    if item.get("type").and_then(Value::as_str) != Some("message") {
        return Vec::new();
    }
    item.get("content")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|part| match part.get("type").and_then(Value::as_str) {
                    Some("output_text") => part.get("text").and_then(Value::as_str),
                    Some("refusal") => part.get("refusal").and_then(Value::as_str),
                    _ => None,
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn describe_checks(checks: &[Value]) -> String {
    checks
        .iter()
        .map(|check| {
            let field = |name| check.get(name).and_then(Value::as_str).unwrap_or("?");
            format!("{}: {}", field("code"), field("message"))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn failed_response(response: &Value) -> AgentError {
    let error = response.get("error");
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    AgentError::Api {
        provider: PROVIDER,
        status: 200,
        kind: field("code").unwrap_or_else(|| "failed".into()),
        message: field("message").unwrap_or_else(|| "the response failed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_lookup() {
        let missing = OpenAiConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the environment variable OPENAI_API_KEY is not set"
        );
        let config =
            OpenAiConfig::from_lookup(|name| (name == "OPENAI_API_KEY").then(|| "k".into())).unwrap();
        assert_eq!(config.responses_url(), "https://api.openai.com/v1/responses");
        assert_eq!(config.model, "computer-use-preview");
    }

    #[test]
    fn message_texts_reads_output_text() {
        let item = json!({"type":"message","role":"assistant","content":[
            {"type":"output_text","text":"done","annotations":[]}]});
        assert_eq!(message_texts(&item), vec!["done".to_owned()]);
        assert!(message_texts(&json!({"type":"reasoning","summary":[]})).is_empty());
    }
}
