//! Agents that drive Airlock through its MCP API: a scripted plan runner, and adapters for the
//! Anthropic Messages and OpenAI Responses computer-use loops.
//!
//! Every action goes through Airlock's MCP gateway ([`Gateway`]: streamable HTTP with a bearer
//! token), so policy, approval and audit apply to scripted and model-driven agents alike. A refused
//! action is not an error of the agent: it is a [`ToolOutcome`] with `is_error` set, which a plan
//! step can expect and a model sees as a failed tool result.
//!
//! - [`run_plan`] runs a [`Plan`] (YAML or JSON) step by step and checks each step's expectation.
//! - [`run_anthropic`] and [`run_openai`] forward a model's computer actions verbatim to the
//!   gateway's `computer` / `computer_openai` tools and feed screenshots back.
//! - [`AgentCommand`] and [`run_command`] are `airlock agent …`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), airlock_agents::AgentError> {
//! use airlock_agents::{run_plan, Gateway, Plan, StepReport};
//!
//! let gateway = Gateway::connect("http://127.0.0.1:7878/mcp", "token").await?;
//! let plan = Plan::load(std::path::Path::new("agents/plans/demo.yaml"))?;
//! let report = run_plan(&gateway, &plan, &mut |step: &StepReport| println!("{step:?}")).await?;
//! assert!(report.steps.iter().all(|step| step.ok));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod anthropic;
mod cli;
mod computer_use;
mod error;
mod gateway;
mod observer;
pub mod openai;
mod plan;

pub use anthropic::{run_anthropic, run_anthropic_observed, AnthropicConfig};
pub use cli::{resolve_token, run_command, AgentAction, AgentCommand, LoopArgs, DEFAULT_URL, TOKEN_ENV};
pub use computer_use::{ActionReport, Display, LoopReport};
pub use error::{AgentError, Provider};
pub use gateway::{Gateway, ToolImage, ToolInfo, ToolOutcome, CONNECT_TIMEOUT};
pub use observer::Observer;
pub use openai::{run_openai, run_openai_observed, OpenAiConfig};
pub use plan::{
    run_plan, Backend, CreateSandbox, ExecArgs, Expect, InvalidStep, Plan, PlanFormat, PlanReport, Profile,
    SandboxSpec, Step, StepAction, StepMismatch, StepReport, ToolCall, RETRY_INTERVAL,
};
