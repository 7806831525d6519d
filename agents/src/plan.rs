//! Scripted agents: a [`Plan`] of MCP calls, loaded from YAML or JSON, and [`run_plan`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument as _;

use crate::error::AgentError;
use crate::gateway::{with_sandbox, Gateway, ToolOutcome};
use crate::observer::Observer;

/// A scripted run: which sandbox, and the steps to take in it.
///
/// The file form (YAML shown; JSON is the same structure). Unknown keys are errors.
///
/// ```yaml
/// name: demo
/// sandbox: {create: {backend: auto, profile: desktop}}   # or {id: "abc123"}; absent: the gateway's default
/// destroy_at_end: true                                   # default false
/// steps:
///   - note: "look at the screen"                         # optional, shown in reports and errors
///     computer: {action: screenshot}                     # Anthropic computer-use input, verbatim
///   - computer_openai: {type: click, x: 10, y: 20, button: left}   # an OpenAI computer_call action
///   - exec: {argv: [cat, /tmp/x], stdin: "", timeout_ms: 5000}
///     expect: ok              # ok (default) | error (must be refused) | any
///     expect_text: "hello"    # substring of the result text, case-insensitive
///     expect_exit_code: 0     # `exit_code` in the result's JSON
///     retry_for_ms: 10000     # repeat until the expectations hold, or give up after this long
///   - call: {tool: sandbox_list, args: {}}               # any other gateway tool
///   - pause_ms: 300
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The plan's name, used in reports and errors.
    pub name: String,
    /// The sandbox to act in; `None` leaves the choice to the gateway.
    pub sandbox: Option<SandboxSpec>,
    /// Destroy the sandbox when the run ends (also when it fails).
    pub destroy_at_end: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Which sandbox a plan acts in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SandboxSpec {
    /// Create one with `sandbox_create`.
    Create(CreateSandbox),
    /// Use an existing one.
    Id(String),
}

/// Arguments of `sandbox_create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    /// The isolation backend; the gateway's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// The guest profile; the gateway's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// A sandbox isolation backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Let Airlock choose.
    Auto,
    /// gVisor.
    Gvisor,
    /// A micro-VM.
    Microvm,
}

impl Backend {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Gvisor => "gvisor",
            Backend::Microvm => "microvm",
        }
    }
}

/// A guest profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// No display.
    Minimal,
    /// A 1280x800 X desktop with a focused xterm.
    Desktop,
}

impl Profile {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Minimal => "minimal",
            Profile::Desktop => "desktop",
        }
    }
}

/// What outcome a step must have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The action must succeed.
    #[default]
    Ok,
    /// The action must be refused, denied or fail (`isError`).
    Error,
    /// Either.
    Any,
}

/// Arguments of the `exec` tool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Text fed to standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Kill the program after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

/// A call of any gateway tool by name.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The tool's name.
    pub tool: String,
    /// Its arguments (an object); the sandbox id is added unless present.
    #[serde(default = "empty_object")]
    pub args: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// What one step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepAction {
    /// The `computer` tool with Anthropic computer-use input, e.g. `{"action":"screenshot"}`.
    Computer(Value),
    /// The `computer_openai` tool with an OpenAI `computer_call.action`, e.g. `{"type":"click",…}`.
    ComputerOpenai(Value),
    /// The `exec` tool.
    Exec(ExecArgs),
    /// Any other tool.
    Call(ToolCall),
    /// Wait, without calling anything.
    Pause(Duration),
}

impl StepAction {
    /// The tool this action calls (`pause` for a pause).
    pub fn tool(&self) -> &str {
        match self {
            StepAction::Computer(_) => "computer",
            StepAction::ComputerOpenai(_) => "computer_openai",
            StepAction::Exec(_) => "exec",
            StepAction::Call(call) => &call.tool,
            StepAction::Pause(_) => "pause",
        }
    }

    /// The key that names this action in a plan file.
    fn key(&self) -> &'static str {
        match self {
            StepAction::Computer(_) => "computer",
            StepAction::ComputerOpenai(_) => "computer_openai",
            StepAction::Exec(_) => "exec",
            StepAction::Call(_) => "call",
            StepAction::Pause(_) => "pause_ms",
        }
    }

    /// The tool's arguments, before the sandbox id is added (`None` for a pause).
    pub fn arguments(&self) -> Option<Value> {
        match self {
            StepAction::Computer(input) => Some(input.clone()),
            StepAction::ComputerOpenai(action) => Some(serde_json::json!({ "action": action })),
            StepAction::Exec(exec) => Some(serde_json::to_value(exec).unwrap_or_else(|_| empty_object())),
            StepAction::Call(call) => Some(call.args.clone()),
            StepAction::Pause(_) => None,
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawStep")]
pub struct Step {
    /// Free text shown in reports.
    pub note: Option<String>,
    /// What the step does.
    pub action: StepAction,
    /// The outcome it must have.
    pub expect: Expect,
    /// A substring the result text must contain (case-insensitive).
    pub expect_text: Option<String>,
    /// The `exit_code` the result's JSON must carry (for `exec`).
    pub expect_exit_code: Option<i64>,
    /// Repeat the step (every [`RETRY_INTERVAL`]) until its expectation holds or this much time
    /// has passed, e.g. to wait for a file a typed command writes. Only for idempotent actions.
    pub retry_for: Option<Duration>,
}

/// How long a retried step waits between attempts.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// The file form of a step: exactly one of the action keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    computer: Option<Value>,
    #[serde(default)]
    computer_openai: Option<Value>,
    #[serde(default)]
    exec: Option<ExecArgs>,
    #[serde(default)]
    call: Option<ToolCall>,
    #[serde(default)]
    pause_ms: Option<u64>,
    #[serde(default)]
    expect: Option<Expect>,
    #[serde(default)]
    expect_text: Option<String>,
    #[serde(default)]
    expect_exit_code: Option<i64>,
    #[serde(default)]
    retry_for_ms: Option<u64>,
}

/// Why a step in a plan file is not a valid step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStep {
    /// An action's mapping lacks the string field that names what to do.
    #[error("`{key}` must be a mapping with a string `{field}`")]
    ActionField {
        /// The step's key (`computer`, `computer_openai`).
        key: &'static str,
        /// The field it needs (`action`, `type`).
        field: &'static str,
    },
    /// `exec.argv` is empty.
    #[error("`exec.argv` must name a program")]
    EmptyArgv,
    /// `call.args` is not a mapping.
    #[error("`call.args` must be a mapping, not {found}")]
    CallArgs {
        /// What kind of JSON value it is.
        found: &'static str,
    },
    /// The step names no action.
    #[error("a step needs one of `computer`, `computer_openai`, `exec`, `call` or `pause_ms`")]
    NoAction,
    /// The step names several actions.
    #[error("a step has more than one of `computer`, `computer_openai`, `exec`, `call`, `pause_ms`: {}", .keys.join(", "))]
    SeveralActions {
        /// The action keys it has.
        keys: Vec<&'static str>,
    },
    /// A pause with an expectation or a retry.
    #[error("a `pause_ms` step cannot have `expect*` or `retry_for_ms`")]
    PauseExpectation,
}

impl TryFrom<RawStep> for Step {
    type Error = InvalidStep;

    fn try_from(raw: RawStep) -> Result<Self, InvalidStep> {
        let mut actions = Vec::new();
        if let Some(input) = raw.computer {
            require_string_field(&input, "computer", "action")?;
            actions.push(StepAction::Computer(input));
        }
        if let Some(action) = raw.computer_openai {
            require_string_field(&action, "computer_openai", "type")?;
            actions.push(StepAction::ComputerOpenai(action));
        }
        if let Some(exec) = raw.exec {
            if exec.argv.is_empty() {
                return Err(InvalidStep::EmptyArgv);
            }
            actions.push(StepAction::Exec(exec));
        }
        if let Some(call) = raw.call {
            if !call.args.is_object() {
                return Err(InvalidStep::CallArgs {
                    found: json_kind(&call.args),
                });
            }
            actions.push(StepAction::Call(call));
        }
        if let Some(ms) = raw.pause_ms {
            actions.push(StepAction::Pause(Duration::from_millis(ms)));
        }
        let action = match actions.len() {
            1 => actions.remove(0),
            0 => return Err(InvalidStep::NoAction),
            _ => {
                return Err(InvalidStep::SeveralActions {
                    keys: actions.iter().map(StepAction::key).collect(),
                })
            }
        };
        if matches!(action, StepAction::Pause(_))
            && (raw.expect.is_some()
                || raw.expect_text.is_some()
                || raw.expect_exit_code.is_some()
                || raw.retry_for_ms.is_some())
        {
            return Err(InvalidStep::PauseExpectation);
        }
        Ok(Step {
            note: raw.note,
            action,
            expect: raw.expect.unwrap_or_default(),
            expect_text: raw.expect_text,
            expect_exit_code: raw.expect_exit_code,
            retry_for: raw.retry_for_ms.map(Duration::from_millis),
        })
    }
}

fn require_string_field(value: &Value, key: &'static str, field: &'static str) -> Result<(), InvalidStep> {
    match value.get(field) {
        Some(Value::String(_)) => Ok(()),
        _ => Err(InvalidStep::ActionField { key, field }),
    }
}

/// The kind of a JSON value, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The top of a plan file, with steps left raw so each is parsed (and reported) on its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: String,
    #[serde(default)]
    sandbox: Option<SandboxSpec>,
    #[serde(default)]
    destroy_at_end: bool,
    steps: Vec<Value>,
}

/// The formats a plan can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFormat {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl Plan {
    /// Loads a plan from a file; the format follows the extension (`.yaml`, `.yml`, `.json`).
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let format = match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("yaml" | "yml") => PlanFormat::Yaml,
            Some("json") => PlanFormat::Json,
            _ => {
                return Err(AgentError::PlanFormat {
                    path: path.to_owned(),
                })
            }
        };
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::PlanRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_at(&text, format, path)
    }

    /// Parses a plan from text in the given format.
    pub fn parse(text: &str, format: PlanFormat) -> Result<Self, AgentError> {
        Self::parse_at(text, format, Path::new("<inline>"))
    }

    fn parse_at(text: &str, format: PlanFormat, path: &Path) -> Result<Self, AgentError> {
        let invalid = |reason: String| AgentError::PlanInvalid {
            path: PathBuf::from(path),
            reason,
        };
        let document: Value = match format {
            PlanFormat::Yaml => {
                serde_yaml::from_str(text).map_err(|e| invalid(format!("not valid YAML: {e}")))?
            }
            PlanFormat::Json => {
                serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?
            }
        };
        let raw: RawPlan = serde_json::from_value(document).map_err(|e| invalid(e.to_string()))?;
        let steps = raw
            .steps
            .into_iter()
            .enumerate()
            .map(|(i, step)| {
                serde_json::from_value::<Step>(step).map_err(|e| invalid(format!("step {}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            name: raw.name,
            sandbox: raw.sandbox,
            destroy_at_end: raw.destroy_at_end,
            steps,
        })
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// 1-based position of the step in the plan.
    pub index: usize,
    /// The step's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The tool called (`pause` for a pause).
    pub tool: String,
    /// True when the outcome met the step's expectation.
    pub ok: bool,
    /// True when the gateway refused, denied or failed the action.
    pub is_error: bool,
    /// The result's texts.
    pub texts: Vec<String>,
    /// How many images the result had.
    pub images: usize,
    /// Their total decoded size.
    pub image_bytes: usize,
    /// How many times the step ran (more than 1 only with `retry_for_ms`).
    pub attempts: u32,
    /// Wall time of the step, all attempts included.
    pub elapsed_ms: u64,
}

/// What a whole plan run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanReport {
    /// The plan's name.
    pub plan: String,
    /// The sandbox the plan acted in, if one was named or created.
    pub sandbox: Option<String>,
    /// True when the sandbox was destroyed at the end.
    pub destroyed: bool,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
    /// Wall time of the run.
    pub elapsed_ms: u64,
}

/// Runs `plan` through `gateway`, step by step, stopping at the first step whose outcome does not
/// meet its expectation.
///
/// The sandbox id is injected into every call (unless a step names one itself). `observer` sees each
/// step's report as it completes, including that of a failing step. With `destroy_at_end`, the
/// sandbox is destroyed whether the run succeeds or fails.
pub async fn run_plan(
    gateway: &Gateway,
    plan: &Plan,
    observer: &mut impl Observer<StepReport>,
) -> Result<PlanReport, AgentError> {
    let span = tracing::info_span!("plan", plan = %plan.name, sandbox = tracing::field::Empty);
    async {
        let started = Instant::now();
        let sandbox = match &plan.sandbox {
            None => None,
            Some(SandboxSpec::Id(id)) => Some(id.clone()),
            Some(SandboxSpec::Create(create)) => Some(
                gateway
                    .create_sandbox(create.backend.map(Backend::as_str), create.profile.map(Profile::as_str))
                    .await?,
            ),
        };
        if let Some(sandbox) = &sandbox {
            tracing::Span::current().record("sandbox", sandbox.as_str());
        }
        let mut steps = Vec::with_capacity(plan.steps.len());
        let result = run_steps(gateway, plan, sandbox.as_deref(), observer, &mut steps).await;
        let mut destroyed = false;
        let result = match (plan.destroy_at_end, &sandbox) {
            (true, Some(id)) => match (result, gateway.destroy_sandbox(id).await) {
                (Ok(()), destroy) => {
                    destroyed = destroy.is_ok();
                    destroy
                }
                (Err(error), destroy) => {
                    if let Err(destroy_error) = destroy {
                        tracing::warn!(error = %destroy_error, "destroying the sandbox after a failed run failed");
                    }
                    Err(error)
                }
            },
            _ => result,
        };
        result?;
        Ok(PlanReport {
            plan: plan.name.clone(),
            sandbox,
            destroyed,
            steps,
            elapsed_ms: millis(started.elapsed()),
        })
    }
    .instrument(span)
    .await
}

async fn run_steps(
    gateway: &Gateway,
    plan: &Plan,
    sandbox: Option<&str>,
    observer: &mut impl Observer<StepReport>,
    reports: &mut Vec<StepReport>,
) -> Result<(), AgentError> {
    for (i, step) in plan.steps.iter().enumerate() {
        let index = i + 1;
        let tool = step.action.tool().to_owned();
        let span = tracing::info_span!("plan_step", index, tool = %tool, ok = tracing::field::Empty);
        let step_error = |reason: Box<StepMismatch>| AgentError::StepFailed {
            plan: plan.name.clone(),
            index,
            note: step.note.clone(),
            tool: tool.clone(),
            reason,
        };
        let call_error = |source: AgentError| AgentError::StepCall {
            plan: plan.name.clone(),
            index,
            note: step.note.clone(),
            tool: tool.clone(),
            source: Box::new(source),
        };
        let started = Instant::now();
        let deadline = step.retry_for.map(|wait| started + wait);
        let mut attempts = 0u32;
        let (outcome, verdict) = loop {
            attempts += 1;
            let outcome = run_step(gateway, step, sandbox)
                .instrument(span.clone())
                .await
                .map_err(call_error)?;
            let verdict = step.check(&outcome);
            match (&verdict, deadline) {
                (Err(reason), Some(deadline)) if Instant::now() + RETRY_INTERVAL < deadline => {
                    span.in_scope(|| tracing::debug!(attempts, %reason, "expectation not met yet; retrying"));
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
                _ => break (outcome, verdict),
            }
        };
        let elapsed_ms = millis(started.elapsed());
        span.record("ok", verdict.is_ok());
        let image_bytes = outcome.image_bytes(&tool).map_err(call_error)?;
        let report = StepReport {
            index,
            note: step.note.clone(),
            tool: tool.clone(),
            ok: verdict.is_ok(),
            is_error: outcome.is_error,
            images: outcome.images.len(),
            image_bytes,
            texts: outcome.texts,
            attempts,
            elapsed_ms,
        };
        observer.observe(&report);
        reports.push(report);
        verdict.map_err(|reason| step_error(Box::new(reason)))?;
    }
    Ok(())
}

async fn run_step(gateway: &Gateway, step: &Step, sandbox: Option<&str>) -> Result<ToolOutcome, AgentError> {
    let Some(args) = step.action.arguments() else {
        if let StepAction::Pause(duration) = step.action {
            tokio::time::sleep(duration).await;
        }
        return Ok(ToolOutcome::default());
    };
    // A JSON-RPC error (e.g. invalid arguments) counts as the gateway refusing the action; the
    // step's expectation decides whether that is a failure.
    gateway
        .call_or_refusal(step.action.tool(), with_sandbox(args, sandbox))
        .await
}

/// How a step's outcome missed its expectation; each variant carries an excerpt of the result
/// text (quoted, cut at 400 characters, or `(no text)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepMismatch {
    /// The action was expected to succeed.
    #[error("expected the action to succeed, but it was refused: {text}")]
    Refused {
        /// The result text.
        text: String,
    },
    /// The action was expected to be refused.
    #[error("expected the action to be refused, but it succeeded: {text}")]
    Succeeded {
        /// The result text.
        text: String,
    },
    /// The result text lacks the expected substring.
    #[error("expected the result text to contain {wanted:?}, got: {text}")]
    Text {
        /// The substring expected.
        wanted: String,
        /// The result text.
        text: String,
    },
    /// The result has another exit code, or none.
    #[error("expected exit code {wanted}, got: {text}")]
    ExitCode {
        /// The exit code expected.
        wanted: i64,
        /// The exit code found, if the result had one.
        got: Option<i64>,
        /// The result text.
        text: String,
    },
}

impl Step {
    /// Decides whether `outcome` meets this step's expectation; `Err` says why not.
    pub fn check(&self, outcome: &ToolOutcome) -> Result<(), StepMismatch> {
        let text = outcome.text();
        match (self.expect, outcome.is_error) {
            (Expect::Ok, true) => return Err(StepMismatch::Refused { text: excerpt(&text) }),
            (Expect::Error, false) => return Err(StepMismatch::Succeeded { text: excerpt(&text) }),
            (Expect::Ok, false) | (Expect::Error, true) | (Expect::Any, _) => {}
        }
        if let Some(wanted) = &self.expect_text {
            if !text.to_lowercase().contains(&wanted.to_lowercase()) {
                return Err(StepMismatch::Text {
                    wanted: wanted.clone(),
                    text: excerpt(&text),
                });
            }
        }
        if let Some(wanted) = self.expect_exit_code {
            let got = outcome.json().and_then(|json| {
                // Airlock nests the exec result under `result`; accept a flat one too.
                json.get("result")
                    .and_then(|r| r.get("exit_code"))
                    .or_else(|| json.get("exit_code"))
                    .and_then(Value::as_i64)
            });
            if got != Some(wanted) {
                return Err(StepMismatch::ExitCode {
                    wanted,
                    got,
                    text: excerpt(&text),
                });
            }
        }
        Ok(())
    }
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 400;
    if text.is_empty() {
        return "(no text)".into();
    }
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(is_error: bool, text: &str) -> ToolOutcome {
        ToolOutcome {
            is_error,
            texts: vec![text.into()],
            images: Vec::new(),
        }
    }

    fn step(yaml: &str) -> Step {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn expectations() {
        let ok = step("exec: {argv: [ls]}");
        assert!(ok.check(&outcome(false, "x")).is_ok());
        assert!(ok.check(&outcome(true, "x")).is_err());
        let error = step("{exec: {argv: [ls]}, expect: error}");
        assert!(error.check(&outcome(true, "x")).is_ok());
        let err = error.check(&outcome(false, "fine")).unwrap_err();
        assert!(matches!(err, StepMismatch::Succeeded { .. }), "{err}");
        assert!(err.to_string().contains("succeeded"), "{err}");
        assert!(step("{exec: {argv: [ls]}, expect: any}")
            .check(&outcome(true, "x"))
            .is_ok());
        let denied = step("{exec: {argv: [ls]}, expect: error, expect_text: denied}");
        assert!(denied.check(&outcome(true, "Denied by policy")).is_ok());
        let err = denied.check(&outcome(true, "timeout")).unwrap_err();
        assert!(err.to_string().contains("\"denied\""), "{err}");
        let exit = step("{exec: {argv: [ls]}, expect_exit_code: 0}");
        assert!(exit
            .check(&outcome(false, r#"{"exit_code":0,"stdout":""}"#))
            .is_ok());
        assert!(exit
            .check(&outcome(false, r#"{"exit_code":1,"stdout":""}"#))
            .is_err());
        assert!(exit.check(&outcome(false, "no json")).is_err());
    }

    #[test]
    fn a_step_needs_exactly_one_action() {
        let none = Plan::parse("name: p\nsteps:\n  - note: nothing\n", PlanFormat::Yaml).unwrap_err();
        assert!(none.to_string().contains("step 1: a step needs one of"), "{none}");
        let two = Plan::parse(
            "name: p\nsteps:\n  - pause_ms: 1\n  - pause_ms: 1\n    exec: {argv: [ls]}\n",
            PlanFormat::Yaml,
        )
        .unwrap_err();
        assert!(
            two.to_string().contains("step 2: a step has more than one"),
            "{two}"
        );
    }

    #[test]
    fn actions_become_tool_arguments() {
        let plan = Plan::parse(
            r#"{"name":"p","steps":[
                {"computer_openai":{"type":"click","x":1,"y":2,"button":"left"}},
                {"exec":{"argv":["ls"],"timeout_ms":5}},
                {"call":{"tool":"sandbox_list"}}]}"#,
            PlanFormat::Json,
        )
        .unwrap();
        let args: Vec<_> = plan.steps.iter().map(|s| s.action.arguments().unwrap()).collect();
        assert_eq!(
            args[0],
            serde_json::json!({"action":{"type":"click","x":1,"y":2,"button":"left"}})
        );
        assert_eq!(args[1], serde_json::json!({"argv":["ls"],"timeout_ms":5}));
        assert_eq!(args[2], serde_json::json!({}));
        assert_eq!(
            with_sandbox(args[2].clone(), Some("s1")),
            serde_json::json!({"sandbox":"s1"})
        );
        assert_eq!(
            with_sandbox(serde_json::json!({"sandbox":"mine"}), Some("s1")),
            serde_json::json!({"sandbox":"mine"})
        );
    }
}
