//! The session refuses a step it cannot record on the audit ledger, except a pause. Each test
//! runs a real supervisor over a real SQLite ledger and a fake guest, and makes appends fail for
//! real: a trigger in the ledger's file aborts the INSERT of the entries the test names.

use std::time::Duration;

use airlock_domain::{ApprovalState, Holder, LeaseCommand, Resolution, Screen};
use airlock_ledger::EntryKind;
use airlock_supervisor::{
    chain, ActionRequest, AgentCall, AgentId, CommandError, GatewayError, ResolveError, Supervisor,
};
use airlock_test_kit::{deadline, wait_for, Answers, RefusedAppends, Supervised, REFUSAL};
use anyhow::{bail, ensure, Result};
use serde_json::json;

const SCREEN: Screen = Screen {
    width: 32,
    height: 20,
};

async fn supervised() -> Result<Supervised> {
    Ok(Supervised::start("fake", Answers::new(SCREEN)).await?)
}

fn agent_call(request: ActionRequest) -> AgentCall {
    AgentCall {
        sandbox: Some("fake".into()),
        agent: AgentId {
            agent: "tester".into(),
            principal: "tester".into(),
        },
        epoch: None,
        request,
    }
}

/// A click the default policy allows.
fn click() -> AgentCall {
    agent_call(ActionRequest::Anthropic(
        json!({"action": "left_click", "coordinate": [10, 10]}),
    ))
}

/// A program outside the exec allowlist: the default policy asks an operator.
fn touch() -> AgentCall {
    agent_call(ActionRequest::Exec {
        argv: vec!["touch".into(), "/tmp/x".into()],
        stdin: String::new(),
        timeout_ms: None,
    })
}

async fn holder(sup: &Supervisor) -> Result<(Holder, u64)> {
    let view = sup.info("fake").await?.session;
    Ok((view.holder, view.epoch))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_that_cannot_be_recorded_is_refused_and_the_agent_keeps_control() -> Result<()> {
    let fake = supervised().await?;
    let sup = &fake.supervisor;
    let before = holder(sup).await?;
    ensure!(
        before.0 == Holder::Agent,
        "the agent does not start in control: {before:?}"
    );
    let refused = RefusedAppends::of_kind(&fake.ledger_dir(), EntryKind::LeaseChanged)?;

    let took = sup
        .lease(
            "fake",
            LeaseCommand::Take {
                operator: "ada".into(),
            },
        )
        .await;

    let Err(e @ CommandError::Unrecorded(_)) = took else {
        bail!("the unrecorded takeover was not refused as unrecorded: {took:?}");
    };
    ensure!(
        chain(&e).contains(REFUSAL),
        "not the ledger's refusal: {}",
        chain(&e)
    );
    let after = holder(sup).await?;
    ensure!(after == before, "the lease changed from {before:?} to {after:?}");
    // The agent still drives: its actions are recorded (only lease changes are refused) and run.
    sup.act(click()).await?;
    ensure!(
        !fake.guest.actions_seen().is_empty(),
        "the agent's click did not reach the guest"
    );
    refused.lift()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_that_cannot_be_recorded_still_pauses() -> Result<()> {
    let fake = supervised().await?;
    let sup = &fake.supervisor;
    let (_, epoch) = holder(sup).await?;
    let refused = RefusedAppends::of_kind(&fake.ledger_dir(), EntryKind::LeaseChanged)?;

    let change = sup
        .lease("fake", LeaseCommand::Pause { by: "ada".into() })
        .await?;

    let paused = Holder::Paused { by: "ada".into() };
    ensure!(
        change.to == paused,
        "the pause changed the lease to {}",
        change.to
    );
    let (now, now_epoch) = holder(sup).await?;
    ensure!(now == paused, "the session is not paused: {now}");
    ensure!(
        now_epoch > epoch,
        "the epoch did not move on: {epoch} then {now_epoch}"
    );
    let act = sup.act(click()).await;
    ensure!(
        matches!(act, Err(GatewayError::Refused(_))),
        "the paused agent's click was not refused: {act:?}"
    );
    ensure!(
        fake.guest.actions_seen().is_empty(),
        "the paused agent reached the guest: {:?}",
        fake.guest.actions_seen()
    );
    refused.lift()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_whose_policy_decision_cannot_be_recorded_is_refused_and_never_reaches_the_guest(
) -> Result<()> {
    let fake = supervised().await?;
    let refused = RefusedAppends::of_kind(&fake.ledger_dir(), EntryKind::ActionDecided)?;

    let act = fake.supervisor.act(click()).await;

    ensure!(
        matches!(act, Err(GatewayError::Ledger(_))),
        "the unrecorded click was not refused for the ledger: {act:?}"
    );
    ensure!(
        fake.guest.actions_seen().is_empty(),
        "the unrecorded click reached the guest: {:?}",
        fake.guest.actions_seen()
    );
    refused.lift()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_that_cannot_be_recorded_refuses_the_action_and_leaves_nothing_pending() -> Result<()> {
    let fake = supervised().await?;
    let refused = RefusedAppends::of_kind(&fake.ledger_dir(), EntryKind::ApprovalRequested)?;

    let act = fake.supervisor.act(touch()).await;

    let Err(e) = act else {
        bail!("the action ran without an operator's approval: {act:?}");
    };
    ensure!(
        matches!(e, GatewayError::Ledger(_)) && e.to_string().contains("audit ledger"),
        "the refusal does not name the audit ledger: {e}"
    );
    ensure!(e.to_string().contains(REFUSAL), "not the ledger's refusal: {e}");
    let pending = fake.supervisor.pending().await;
    ensure!(pending.is_empty(), "an unrecorded ask is pending: {pending:?}");
    ensure!(
        fake.guest.actions_seen().is_empty(),
        "the unasked program ran: {:?}",
        fake.guest.actions_seen()
    );
    refused.lift()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_that_cannot_be_recorded_is_refused_and_the_approval_stays_pending() -> Result<()> {
    let fake = supervised().await?;
    let sup = fake.supervisor.clone();
    let asking = tokio::spawn(async move { sup.act(touch()).await });
    let sup = &fake.supervisor;
    let asked = wait_for(
        deadline(Duration::from_secs(30)),
        "the agent's program is asked about",
        || async { sup.pending().await.into_iter().next() },
    )
    .await?;
    let refused = RefusedAppends::of_kind(&fake.ledger_dir(), EntryKind::ApprovalResolved)?;

    let decided = sup
        .resolve(
            "fake",
            asked.id,
            "ada",
            Resolution::Approve { grant_minutes: None },
        )
        .await;

    let Err(e @ CommandError::Resolve(ResolveError::Unrecorded(_))) = decided else {
        bail!("the unrecorded approval was not refused as unrecorded: {decided:?}");
    };
    ensure!(
        chain(&e).contains(REFUSAL),
        "not the ledger's refusal: {}",
        chain(&e)
    );
    let pending = sup.pending().await;
    ensure!(
        pending.len() == 1 && pending[0].id == asked.id && pending[0].state == ApprovalState::Pending,
        "the approval is not pending as it was: {pending:?}"
    );
    ensure!(
        !asking.is_finished(),
        "the agent's call ended: {:?}",
        asking.await?
    );
    ensure!(
        fake.guest.actions_seen().is_empty(),
        "the program ran without a recorded approval: {:?}",
        fake.guest.actions_seen()
    );
    // Once the ledger records again, the same approval can still be decided.
    refused.lift()?;
    sup.resolve("fake", asked.id, "ada", Resolution::Deny { reason: None })
        .await?;
    let act = asking.await?;
    ensure!(
        matches!(act, Err(GatewayError::OperatorDenied { .. })),
        "the agent was not told of the denial: {act:?}"
    );
    Ok(())
}
