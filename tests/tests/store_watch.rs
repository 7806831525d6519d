//! `airlock serve` keeps in step with the sandbox store while it runs: a sandbox the CLI creates
//! is adopted, one the CLI destroys leaves supervision, one whose keeper dies is reported lost —
//! each announced on the operator's event stream and recorded on the ledger. Real gVisor
//! sandboxes, the real CLI.

use std::time::Duration;

use airlock_records::{Lifecycle, Record};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::{Events, Serve};
use airlock_test_kit::e2e::{airlock_in, Env};
use anyhow::{ensure, Context, Result};
use serde_json::Value;

/// A serve with no sandbox of its own, and its event stream.
async fn serving(env: &Env) -> Result<(Serve, Events)> {
    let serve = Serve::start(env, &["--no-sandbox"])?;
    let events = serve.events().await?;
    Ok((serve, events))
}

/// `airlock sandbox create` through the CLI; the new sandbox's id.
fn cli_create(env: &Env) -> Result<String> {
    let out = airlock_in(
        &env.root,
        &["sandbox", "create", "--backend", "gvisor", "--profile", "minimal"],
    );
    ensure!(
        out.status.success(),
        "the CLI could not create a sandbox: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    ensure!(!id.is_empty(), "the CLI printed no sandbox id");
    Ok(id)
}

/// The next `sandbox_state` event for `id` in `state`.
async fn state_event(events: &mut Events, id: &str, state: &str) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let e = events
            .next_of("sandbox_state", left)
            .await
            .with_context(|| format!("no {state} event for {id}"))?;
        if e["sandbox"] == id && e["state"] == state {
            return Ok(e);
        }
    }
}

async fn listed(serve: &Serve) -> Result<Vec<String>> {
    let (status, v) = serve.get("/sandboxes").await?;
    ensure!(status == 200, "{status} {v}");
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

async fn lifecycle_events(serve: &Serve, id: &str) -> Result<Vec<Lifecycle>> {
    Ok(records(&serve.ledger(Some(id)).await?)?
        .into_iter()
        .filter_map(|(_, r)| match r {
            Record::Lifecycle(x) => Some(x),
            _ => None,
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_the_cli_creates_while_serve_runs_is_supervised() -> Result<()> {
    let env = Env::new("watch-create");
    let (serve, mut events) = serving(&env).await?;
    let id = cli_create(&env)?;
    state_event(&mut events, &id, "running").await?;
    ensure!(
        listed(&serve).await? == vec![id.clone()],
        "serve lists {:?}",
        listed(&serve).await?
    );
    let (status, _) = serve.get(&format!("/sandboxes/{id}/screenshot")).await?;
    ensure!(status == 200, "the adopted sandbox gives no screenshot: {status}");
    ensure!(
        lifecycle_events(&serve, &id)
            .await?
            .contains(&Lifecycle::SandboxAdopted),
        "the ledger does not record the adoption"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_the_cli_destroys_while_serve_runs_leaves_supervision() -> Result<()> {
    let env = Env::new("watch-destroy");
    let (serve, mut events) = serving(&env).await?;
    let id = cli_create(&env)?;
    state_event(&mut events, &id, "running").await?;
    let out = airlock_in(&env.root, &["sandbox", "destroy", &id]);
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e = state_event(&mut events, &id, "destroyed").await?;
    ensure!(e["detail"] == "destroyed outside this supervisor", "{e}");
    ensure!(
        listed(&serve).await?.is_empty(),
        "serve still lists {:?}",
        listed(&serve).await?
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_whose_keeper_dies_is_reported_lost_once() -> Result<()> {
    let env = Env::new("watch-lost");
    let (serve, mut events) = serving(&env).await?;
    let id = cli_create(&env)?;
    state_event(&mut events, &id, "running").await?;
    let record: Value = serde_json::from_slice(&std::fs::read(
        env.sandboxes_dir().join(&id).join("sandbox.json"),
    )?)?;
    let keeper = record["keeper_pid"].as_u64().context("no keeper pid")? as i32;
    // SAFETY: kill(2) on the keeper this test's CLI started.
    unsafe { libc::kill(keeper, libc::SIGKILL) };
    state_event(&mut events, &id, "lost").await?;
    let lost = lifecycle_events(&serve, &id)
        .await?
        .iter()
        .filter(|e| matches!(e, Lifecycle::SandboxLost { .. }))
        .count();
    ensure!(lost == 1, "the loss is recorded {lost} times");
    // Reported once: no second event within a few watcher periods.
    let again = tokio::time::timeout(Duration::from_secs(4), state_event(&mut events, &id, "lost")).await;
    ensure!(again.is_err(), "the loss was reported again");
    Ok(())
}
