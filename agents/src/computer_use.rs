//! What the computer-use adapters share: reports, display size, and the JSON-over-HTTP call to a model API.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::error::{AgentError, Provider};

/// The screen size the model is told about (the `desktop` profile is 1280x800).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Display {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Default for Display {
    fn default() -> Self {
        Display {
            width: 1280,
            height: 800,
        }
    }
}

/// One action a model asked for, and what the gateway did with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionReport {
    /// 1-based model turn that asked for the action.
    pub turn: usize,
    /// The MCP tool the action went to (`computer` or `computer_openai`).
    pub tool: String,
    /// The model's id for the call (`tool_use.id` or `computer_call.call_id`).
    pub call_id: String,
    /// The action as the model sent it.
    pub action: Value,
    /// True when the gateway refused, denied or failed the action.
    pub is_error: bool,
    /// The result's texts.
    pub texts: Vec<String>,
    /// Decoded size of the image sent back to the model (0 if none).
    pub image_bytes: usize,
    /// Safety checks the model raised and the adapter acknowledged (OpenAI only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acknowledged_safety_checks: Vec<Value>,
    /// Wall time of the action, including any follow-up screenshot.
    pub elapsed_ms: u64,
}

/// What a whole computer-use loop did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoopReport {
    /// `anthropic` or `openai`.
    pub provider: String,
    /// The model used.
    pub model: String,
    /// How many model requests were made.
    pub turns: usize,
    /// Every action, in order.
    pub actions: Vec<ActionReport>,
    /// Every text the model wrote, in order.
    pub assistant_texts: Vec<String>,
    /// Why the model stopped (`stop_reason` for Anthropic, response `status` for OpenAI).
    pub stop_reason: Option<String>,
    /// Wall time of the loop.
    pub elapsed_ms: u64,
}

impl LoopReport {
    /// An empty report of a loop starting with `model` at `provider`.
    pub(crate) fn new(provider: Provider, model: &str) -> LoopReport {
        LoopReport {
            provider: provider.id().into(),
            model: model.to_string(),
            turns: 0,
            actions: Vec::new(),
            assistant_texts: Vec::new(),
            stop_reason: None,
            elapsed_ms: 0,
        }
    }
}

/// Builds the HTTP client for a model API.
pub(crate) fn http_client(
    provider: Provider,
    url: &str,
    timeout: Duration,
) -> Result<reqwest::Client, AgentError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|source| AgentError::Http {
            provider,
            url: url.to_owned(),
            source,
        })
}

/// POSTs `body` as JSON and returns the decoded 2xx answer; error answers become [`AgentError::Api`].
pub(crate) async fn post_json(
    client: &reqwest::Client,
    provider: Provider,
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Result<Value, AgentError> {
    let http_error = |source| AgentError::Http {
        provider,
        url: url.to_owned(),
        source,
    };
    let mut request = client.post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.map_err(http_error)?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(http_error)?;
    let parsed = serde_json::from_slice::<Value>(&bytes);
    if !status.is_success() {
        return Err(api_error(provider, status.as_u16(), parsed.ok().as_ref(), &bytes));
    }
    let value = parsed.map_err(|e| provider.bad_response(format!("not JSON: {e}")))?;
    // Both APIs describe errors as {"error": {"type", "message"}}; Anthropic also tags the body
    // {"type": "error"}. Either can, rarely, arrive with a 2xx status.
    if value.get("type").and_then(Value::as_str) == Some("error") {
        return Err(api_error(provider, status.as_u16(), Some(&value), &bytes));
    }
    Ok(value)
}

fn api_error(provider: Provider, status: u16, body: Option<&Value>, raw: &[u8]) -> AgentError {
    let error = body.and_then(|b| b.get("error"));
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let kind = field("type")
        .or_else(|| field("code"))
        .unwrap_or_else(|| "http_error".into());
    let message = field("message").unwrap_or_else(|| {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim();
        match text.char_indices().nth(300) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None if text.is_empty() => "(empty body)".into(),
            None => text.to_owned(),
        }
    });
    AgentError::Api {
        provider,
        status,
        kind,
        message,
    }
}

/// A provider's settings from an environment-like lookup: `[KEY, BASE_URL, MODEL]` names; the
/// key is required, the others optional.
pub(crate) fn provider_env(
    lookup: &impl Fn(&str) -> Option<String>,
    [key, base_url, model]: [&'static str; 3],
) -> Result<(String, Option<String>, Option<String>), AgentError> {
    let api_key = lookup_var(lookup, key).ok_or(AgentError::MissingEnv { name: key })?;
    Ok((api_key, lookup_var(lookup, base_url), lookup_var(lookup, model)))
}

/// Reads an environment-like lookup, treating empty values as absent.
pub(crate) fn lookup_var(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|value| !value.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_type_and_message() {
        let body =
            serde_json::json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}});
        let error = api_error(Provider::Anthropic, 529, Some(&body), b"");
        assert_eq!(
            error.to_string(),
            "the Anthropic API answered HTTP 529 (overloaded_error): Overloaded"
        );
        let error = api_error(Provider::OpenAi, 502, None, b"<html>bad gateway</html>");
        assert_eq!(
            error.to_string(),
            "the OpenAI API answered HTTP 502 (http_error): <html>bad gateway</html>"
        );
    }
}
