//! The demo agent: a scripted plan (`demo.yaml`) run against the host's own MCP server, round
//! after round, so a fresh install shows allowed, asked and denied actions at once.

use std::time::Duration;

use airlock_agents::{run_plan, Gateway, Plan, PlanFormat, SandboxSpec, StepReport};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// The demo plan's text.
pub const DEMO_PLAN: &str = include_str!("demo.yaml");

/// The pause between two rounds.
pub const ROUND_PAUSE: Duration = Duration::from_secs(20);

/// The demo plan, aimed at `sandbox`.
pub fn demo_plan(sandbox: &str) -> Result<Plan, airlock_agents::AgentError> {
    let mut plan = Plan::parse(DEMO_PLAN, PlanFormat::Yaml)?;
    plan.sandbox = Some(SandboxSpec::Id(sandbox.to_string()));
    Ok(plan)
}

/// Runs the demo plan in `sandbox` through the MCP server at `url` until `stop`, pausing
/// [`ROUND_PAUSE`] between rounds. A failed round (the sandbox went away, the server stopped) is
/// logged and retried after the pause.
pub async fn run_demo(url: String, token: String, sandbox: String, stop: CancellationToken) {
    let span = tracing::info_span!("demo_agent", sandbox = %sandbox);
    async move {
        let plan = match demo_plan(&sandbox) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "the demo plan is invalid");
                return;
            }
        };
        let mut round = 0u64;
        while !stop.is_cancelled() {
            round += 1;
            let result = async {
                let gateway = Gateway::connect(&url, &token).await?;
                let mut log = |r: &StepReport| tracing::info!(step = r.index, ok = r.ok, "demo step");
                run_plan(&gateway, &plan, &mut log).await
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                r = result => match r {
                    Ok(report) => tracing::info!(round, steps = report.steps.len(), "demo round done"),
                    Err(e) => tracing::warn!(round, error = %e, "demo round failed"),
                },
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(ROUND_PAUSE) => {}
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use airlock_agents::StepAction;
    use airlock_domain::{Action, Screen};
    use airlock_policy::{Decision, Policy, Subject};
    use airlock_protocol::WindowInfo;
    use airlock_supervisor::terminal::{judge, Target};

    use super::*;

    #[test]
    fn the_demo_plan_parses_and_targets_the_sandbox() {
        let plan = demo_plan("abc123").expect("the shipped plan parses");
        assert_eq!(plan.sandbox, Some(SandboxSpec::Id("abc123".into())));
        assert!(plan.steps.len() >= 5);
    }

    /// The shipped demo, judged step by step by the shipped policy as the gateway judges it (keys
    /// go to the desktop's xterm, whose line the demo's typing fills and submits): two asks (`df`
    /// and the recursive delete) and one deny, as before terminal lines were judged as commands.
    #[test]
    fn the_demo_asks_twice_and_is_denied_once() {
        let plan = demo_plan("sb").expect("the demo plan parses");
        let policy = Policy::default_policy().expect("the shipped policy loads");
        let who = Subject {
            agent: "demo",
            principal: "alice",
            sandbox: "sb",
        };
        let screen = Screen {
            width: 1280,
            height: 800,
        };
        let mut line = airlock_shell::Line::empty();
        let mut decisions = Vec::new();
        for step in &plan.steps {
            let action = match &step.action {
                StepAction::Computer(v) => Action::from_anthropic(v, screen).expect("a valid action"),
                StepAction::Exec(e) => {
                    Action::exec(e.argv.clone(), String::new(), None).expect("a valid exec")
                }
                StepAction::ComputerOpenai(_) | StepAction::Call(_) | StepAction::Pause(_) => continue,
            };
            let target = Target {
                window: WindowInfo {
                    id: 1,
                    title: "terminal".into(),
                    class: "XTerm".into(),
                    instance: "xterm".into(),
                },
                line: Some(line.clone()),
                paste: None,
            };
            let judged = judge(&policy, &who, &action, &target);
            if let Some(next) = judged.next {
                line = next;
            }
            decisions.push(judged.evaluation.decision);
        }
        let count = |d: Decision| decisions.iter().filter(|x| **x == d).count();
        assert_eq!(
            (count(Decision::Ask), count(Decision::Deny)),
            (2, 1),
            "{decisions:?}"
        );
    }
}
