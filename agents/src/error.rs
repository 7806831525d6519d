//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// A model provider whose API an adapter talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The Anthropic Messages API.
    Anthropic,
    /// The OpenAI Responses API.
    OpenAi,
}

impl Provider {
    /// The lowercase name reports use: `anthropic`, `openai`.
    pub fn id(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
        }
    }

    /// A 2xx answer whose body is not of the documented shape.
    pub(crate) fn bad_response(self, reason: impl Into<String>) -> AgentError {
        AgentError::ApiResponse {
            provider: self,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Anthropic => "Anthropic",
            Provider::OpenAi => "OpenAI",
        })
    }
}

/// Everything that can go wrong while an agent drives Airlock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The MCP handshake with the gateway failed.
    #[error("could not connect to the Airlock MCP server at {url}")]
    Connect {
        /// The gateway URL.
        url: String,
        /// What the MCP client reported.
        #[source]
        source: Box<rmcp::service::ClientInitializeError>,
    },
    /// The MCP handshake did not finish in time.
    #[error("the Airlock MCP server at {url} did not complete the MCP handshake within {seconds} s")]
    ConnectTimeout {
        /// The gateway URL.
        url: String,
        /// The time waited.
        seconds: u64,
    },
    /// The gateway refused the bearer token.
    #[error("the Airlock MCP server at {url} refused the bearer token (HTTP {status}); check --token")]
    Unauthorized {
        /// The gateway URL.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// An MCP tool call failed below the tool level (transport, protocol error).
    #[error("the MCP call to the tool `{tool}` failed")]
    Call {
        /// The tool called.
        tool: String,
        /// What the MCP client reported.
        #[source]
        source: Box<rmcp::ServiceError>,
    },
    /// Listing the gateway's tools failed.
    #[error("listing the tools of the Airlock MCP server failed")]
    ListTools(#[source] Box<rmcp::ServiceError>),
    /// Tool arguments must be a JSON object.
    #[error("the arguments for the tool `{tool}` are not a JSON object")]
    ArgumentsNotObject {
        /// The tool.
        tool: String,
    },
    /// A tool returned an image whose data is not valid base64.
    #[error("the tool `{tool}` returned an image whose data is not valid base64")]
    InvalidImage {
        /// The tool.
        tool: String,
        /// The decoding error.
        #[source]
        source: base64::DecodeError,
    },
    /// A tool answered successfully, but not in the shape expected.
    #[error("the tool `{tool}` answered in an unexpected shape: {reason}")]
    UnexpectedToolResult {
        /// The tool.
        tool: String,
        /// What was wrong.
        reason: String,
    },
    /// A tool refused or failed an action the agent needs to proceed.
    #[error("the tool `{tool}` refused the action: {reason}")]
    ToolRefused {
        /// The tool.
        tool: String,
        /// The text the tool returned.
        reason: String,
    },
    /// The plan file could not be read.
    #[error("could not read the plan file {path}")]
    PlanRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The plan file's name does not say which format it is in.
    #[error("the plan file {path} must end in .yaml, .yml or .json")]
    PlanFormat {
        /// The file.
        path: PathBuf,
    },
    /// The plan file is not a valid plan.
    #[error("the plan file {path} is invalid: {reason}")]
    PlanInvalid {
        /// The file (or `<inline>` for a plan parsed from a string).
        path: PathBuf,
        /// What is wrong, naming the step or field.
        reason: String,
    },
    /// A plan step did not meet its expectation.
    #[error(
        "step {index} ({tool}{}) of plan `{plan}` failed: {reason}",
        note_suffix(note)
    )]
    StepFailed {
        /// The plan's name.
        plan: String,
        /// 1-based position of the step in the plan.
        index: usize,
        /// The step's note, if it has one.
        note: Option<String>,
        /// The tool the step called.
        tool: String,
        /// What was expected and what happened.
        reason: Box<crate::plan::StepMismatch>,
    },
    /// A plan step could not be carried out at all.
    #[error(
        "step {index} ({tool}{}) of plan `{plan}` could not be run",
        note_suffix(note)
    )]
    StepCall {
        /// The plan's name.
        plan: String,
        /// 1-based position of the step in the plan.
        index: usize,
        /// The step's note, if it has one.
        note: Option<String>,
        /// The tool the step called.
        tool: String,
        /// Why.
        #[source]
        source: Box<AgentError>,
    },
    /// A required environment variable is not set.
    #[error("the environment variable {name} is not set")]
    MissingEnv {
        /// The variable.
        name: &'static str,
    },
    /// No bearer token was given.
    #[error("no bearer token for the Airlock MCP server: pass --token or --token-file, or set AIRLOCK_AGENT_TOKEN")]
    MissingToken,
    /// The token file could not be read.
    #[error("could not read the token file {path}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request to a model API failed before an answer arrived.
    #[error("the request to the {provider} API at {url} failed")]
    Http {
        /// Which API.
        provider: Provider,
        /// The endpoint.
        url: String,
        /// The HTTP client error.
        #[source]
        source: reqwest::Error,
    },
    /// A model API answered with an error.
    #[error("the {provider} API answered HTTP {status} ({kind}): {message}")]
    Api {
        /// Which API.
        provider: Provider,
        /// The HTTP status.
        status: u16,
        /// The API's error type, e.g. `invalid_request_error`.
        kind: String,
        /// The API's error message.
        message: String,
    },
    /// A model API answered 2xx with a body that is not of the documented shape.
    #[error("the {provider} API answered with an unexpected body: {reason}")]
    ApiResponse {
        /// Which API.
        provider: Provider,
        /// What was wrong.
        reason: String,
    },
    /// A computer-use loop hit its step limit before the model finished.
    #[error(
        "the {provider} computer-use loop reached its limit of {max_steps} model turns without finishing"
    )]
    MaxSteps {
        /// Which API.
        provider: Provider,
        /// The limit.
        max_steps: usize,
    },
    /// The model raised safety checks and the configuration does not acknowledge them.
    #[error("the {provider} model raised safety checks that are not acknowledged: {checks}")]
    SafetyChecks {
        /// Which API.
        provider: Provider,
        /// The checks' codes and messages.
        checks: String,
    },
    /// Writing a report line failed.
    #[error("could not write a report line to stdout")]
    Output(#[source] std::io::Error),
}

fn note_suffix(note: &Option<String>) -> String {
    match note {
        Some(note) => format!(", \"{note}\""),
        None => String::new(),
    }
}
