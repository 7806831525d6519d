//! `airlock agent …`: the command-line front of this crate.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::anthropic::{run_anthropic_observed, AnthropicConfig};
use crate::computer_use::{ActionReport, Display, LoopReport};
use crate::error::AgentError;
use crate::gateway::Gateway;
use crate::openai::{run_openai_observed, OpenAiConfig};
use crate::plan::{run_plan, Plan, PlanReport, SandboxSpec, StepReport};

/// The gateway URL used when `--url` is not given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7878/mcp";
/// The environment variable holding the bearer token when neither `--token` nor `--token-file` is given.
pub const TOKEN_ENV: &str = "AIRLOCK_AGENT_TOKEN";

/// Drive Airlock through its MCP gateway with a scripted plan or a computer-use model.
///
/// Every report is printed to stdout as one JSON object per line, tagged by `"event"`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentCommand {
    /// The Airlock MCP endpoint.
    #[arg(long, global = true, default_value = DEFAULT_URL)]
    pub url: String,
    /// The bearer token (prefer --token-file or AIRLOCK_AGENT_TOKEN: arguments are visible to other users).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long, global = true, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Act in this existing sandbox (for a plan: instead of the plan's own, which is then not destroyed).
    #[arg(long, global = true)]
    pub sandbox: Option<String>,
    /// Maximum number of model turns of a computer-use loop.
    #[arg(long, global = true, default_value_t = 50)]
    pub max_steps: usize,
    /// What to run.
    #[command(subcommand)]
    pub action: AgentAction,
}

/// What `airlock agent` runs.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AgentAction {
    /// Run a scripted plan (YAML or JSON).
    Run {
        /// The plan file (.yaml, .yml or .json).
        #[arg(long)]
        plan: PathBuf,
    },
    /// Let a Claude model do a task (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_MODEL).
    Anthropic(LoopArgs),
    /// Let an OpenAI computer-use model do a task (OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL).
    Openai(LoopArgs),
}

/// Arguments of the computer-use loops.
#[derive(Debug, Clone, clap::Args)]
pub struct LoopArgs {
    /// What the model should do.
    #[arg(long)]
    pub task: String,
    /// Screen width announced to the model.
    #[arg(long, default_value_t = 1280)]
    pub display_width: u32,
    /// Screen height announced to the model.
    #[arg(long, default_value_t = 800)]
    pub display_height: u32,
}

impl LoopArgs {
    fn display(&self) -> Display {
        Display {
            width: self.display_width,
            height: self.display_height,
        }
    }
}

/// One line of output.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line<'a> {
    Step(&'a StepReport),
    PlanDone {
        plan: &'a str,
        sandbox: Option<&'a str>,
        destroyed: bool,
        steps: usize,
        elapsed_ms: u64,
    },
    Action(&'a ActionReport),
    LoopDone {
        provider: &'a str,
        model: &'a str,
        turns: usize,
        actions: usize,
        assistant_texts: &'a [String],
        stop_reason: Option<&'a str>,
        elapsed_ms: u64,
    },
}

impl<'a> Line<'a> {
    fn plan_done(report: &'a PlanReport) -> Self {
        Line::PlanDone {
            plan: &report.plan,
            sandbox: report.sandbox.as_deref(),
            destroyed: report.destroyed,
            steps: report.steps.len(),
            elapsed_ms: report.elapsed_ms,
        }
    }

    fn loop_done(report: &'a LoopReport) -> Self {
        Line::LoopDone {
            provider: &report.provider,
            model: &report.model,
            turns: report.turns,
            actions: report.actions.len(),
            assistant_texts: &report.assistant_texts,
            stop_reason: report.stop_reason.as_deref(),
            elapsed_ms: report.elapsed_ms,
        }
    }
}

/// Writes JSON lines, remembering the first write error (observers cannot return one).
struct JsonLines<W: Write> {
    out: W,
    error: Option<std::io::Error>,
}

impl<W: Write> JsonLines<W> {
    fn emit(&mut self, line: &Line<'_>) {
        if self.error.is_some() {
            return;
        }
        let written = serde_json::to_writer(&mut self.out, line)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        if let Err(error) = written {
            self.error = Some(error);
        }
    }

    fn finish(self) -> Result<(), AgentError> {
        self.error.map_or(Ok(()), |error| Err(AgentError::Output(error)))
    }
}

/// Runs `airlock agent …`, printing reports as JSON lines to stdout.
pub async fn run_command(cmd: AgentCommand) -> Result<(), AgentError> {
    let env_token = std::env::var(TOKEN_ENV).ok();
    let token = resolve_token(cmd.token.as_deref(), cmd.token_file.as_deref(), env_token)?;
    let mut lines = JsonLines {
        out: std::io::stdout(),
        error: None,
    };
    match &cmd.action {
        AgentAction::Run { plan } => {
            let mut plan = Plan::load(plan)?;
            if let Some(sandbox) = &cmd.sandbox {
                plan.sandbox = Some(SandboxSpec::Id(sandbox.clone()));
                plan.destroy_at_end = false;
            }
            let gateway = Gateway::connect(&cmd.url, &token).await?;
            let result = run_plan(&gateway, &plan, &mut |step: &StepReport| {
                lines.emit(&Line::Step(step))
            })
            .await;
            gateway.close().await;
            lines.emit(&Line::plan_done(&result?));
        }
        AgentAction::Anthropic(args) => {
            let mut cfg = AnthropicConfig::from_env()?;
            cfg.display = args.display();
            cfg.sandbox = cmd.sandbox.clone();
            cfg.max_steps = cmd.max_steps;
            let gateway = Gateway::connect(&cmd.url, &token).await?;
            let result = run_anthropic_observed(&gateway, &cfg, &args.task, &mut |action: &ActionReport| {
                lines.emit(&Line::Action(action))
            })
            .await;
            gateway.close().await;
            lines.emit(&Line::loop_done(&result?));
        }
        AgentAction::Openai(args) => {
            let mut cfg = OpenAiConfig::from_env()?;
            cfg.display = args.display();
            cfg.sandbox = cmd.sandbox.clone();
            cfg.max_steps = cmd.max_steps;
            let gateway = Gateway::connect(&cmd.url, &token).await?;
            let result = run_openai_observed(&gateway, &cfg, &args.task, &mut |action: &ActionReport| {
                lines.emit(&Line::Action(action))
            })
            .await;
            gateway.close().await;
            lines.emit(&Line::loop_done(&result?));
        }
    }
    lines.finish()
}

/// Picks the bearer token: `--token`, else the contents of `--token-file` (trimmed), else the value of
/// `AIRLOCK_AGENT_TOKEN`.
pub fn resolve_token(
    token: Option<&str>,
    token_file: Option<&Path>,
    env_token: Option<String>,
) -> Result<String, AgentError> {
    if let Some(token) = token {
        return Ok(token.to_owned());
    }
    if let Some(path) = token_file {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::TokenFile {
            path: path.to_owned(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(AgentError::MissingToken);
        }
        return Ok(token.to_owned());
    }
    env_token
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or(AgentError::MissingToken)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand)]
    enum Top {
        Agent(AgentCommand),
    }

    fn parse(args: &[&str]) -> AgentCommand {
        let Top::Agent(cmd) = Cli::try_parse_from(args).unwrap().command;
        cmd
    }

    #[test]
    fn common_options_go_before_or_after_the_subcommand() {
        let cmd = parse(&[
            "airlock",
            "agent",
            "--url",
            "http://x/mcp",
            "run",
            "--plan",
            "p.yaml",
            "--sandbox",
            "s1",
        ]);
        assert_eq!(cmd.url, "http://x/mcp");
        assert_eq!(cmd.sandbox.as_deref(), Some("s1"));
        assert!(matches!(cmd.action, AgentAction::Run { ref plan } if plan == Path::new("p.yaml")));
        let cmd = parse(&["airlock", "agent", "openai", "--task", "t", "--max-steps", "3"]);
        assert_eq!(cmd.url, DEFAULT_URL);
        assert_eq!(cmd.max_steps, 3);
        assert!(matches!(cmd.action, AgentAction::Openai(ref a) if a.task == "t" && a.display_width == 1280));
    }

    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: &T) {}
        send(&run_command(parse(&[
            "airlock", "agent", "run", "--plan", "p.yaml",
        ])));
    }

    #[test]
    fn token_sources_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        assert_eq!(
            resolve_token(Some("arg"), Some(&file), Some("env".into())).unwrap(),
            "arg"
        );
        assert_eq!(
            resolve_token(None, Some(&file), Some("env".into())).unwrap(),
            "from-file"
        );
        assert_eq!(resolve_token(None, None, Some("env".into())).unwrap(), "env");
        assert!(matches!(
            resolve_token(None, None, None),
            Err(AgentError::MissingToken)
        ));
        let missing = resolve_token(None, Some(&dir.path().join("nope")), None).unwrap_err();
        assert!(
            missing.to_string().contains("could not read the token file"),
            "{missing}"
        );
    }

    #[test]
    fn lines_are_tagged() {
        let step = StepReport {
            index: 1,
            note: None,
            tool: "exec".into(),
            ok: true,
            is_error: false,
            texts: vec![],
            images: 0,
            image_bytes: 0,
            attempts: 1,
            elapsed_ms: 2,
        };
        let line = serde_json::to_value(Line::Step(&step)).unwrap();
        assert_eq!(line["event"], "step");
        assert_eq!(line["tool"], "exec");
    }
}
