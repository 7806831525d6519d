//! Takeover and handback, approval expiry, void-on-screen-change, grants, tamper evidence and
//! crash durability — against `airlock serve` with real gVisor sandboxes and a real ledger.

use std::time::Duration;

use airlock_domain::Action;
use airlock_records::{
    ActionDecided, ActionExecuted, ActionOutcome, ActionRefused, ExecRecord, HumanAction, HumanInput, Record,
    TypedText,
};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::{computer, Serve};
use airlock_test_kit::e2e::{poll_async, Env};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

fn text(o: &airlock_agents::ToolOutcome) -> String {
    o.texts.join("\n")
}

fn exec_args(sandbox: &str, argv: &[&str]) -> Value {
    json!({"sandbox": sandbox, "argv": argv})
}

/// While a human holds control, agent actions are refused with the reason (not queued); the
/// operator's typing is recorded as a hash and a length; after handback the agent's first
/// observation is a fresh screenshot with a summary, and its actions work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_refuses_the_agent_and_handback_shows_a_fresh_screen() -> Result<()> {
    let env = Env::new("takeover");
    let serve = Serve::start(&env, &["--backend", "gvisor", "--profile", "minimal"])?;
    let sb = serve.only_sandbox().await?;
    let agent = serve.agent().await?;
    let click = computer(&sb, json!({"action": "left_click", "coordinate": [100, 100]}));
    let first = agent.call("computer", click.clone()).await?;
    ensure!(!first.is_error, "{}", text(&first));

    let (status, change) = serve
        .post(&format!("/sandboxes/{sb}/lease"), json!({"command": "take"}))
        .await?;
    assert_eq!(status, 200, "{change}");
    let refused = agent.call("computer", click.clone()).await?;
    assert!(refused.is_error);
    assert!(
        text(&refused).contains(&format!("operator {} has taken control", serve.operator)),
        "{}",
        text(&refused)
    );
    let refused_exec = agent.call("exec", exec_args(&sb, &["true"])).await?;
    assert!(refused_exec.is_error && text(&refused_exec).contains("taken control"));

    // The human drives: two inputs, one of them typing a secret.
    for action in [
        json!({"action": "mouse_move", "coordinate": [300, 200]}),
        json!({"action": "type", "text": "hunter2-secret"}),
    ] {
        let (status, v) = serve
            .post(&format!("/sandboxes/{sb}/input"), json!({"action": action}))
            .await?;
        assert_eq!(status, 204, "{v}");
    }
    let (status, _) = serve
        .post(
            &format!("/sandboxes/{sb}/lease"),
            json!({"command": "hand_back", "note": "I closed the dialog for you"}),
        )
        .await?;
    assert_eq!(status, 200);

    // The first agent action after handback is not performed: it gets the screen and a summary.
    let after = agent.call("computer", click.clone()).await?;
    assert!(after.is_error, "the stale action is not performed");
    let t = text(&after);
    assert!(
        t.contains("performed 2 actions")
            && t.contains("their note: I closed the dialog for you")
            && t.contains("not performed"),
        "{t}"
    );
    assert_eq!(after.images.len(), 1, "a fresh screenshot comes with it");
    let again = agent.call("computer", click.clone()).await?;
    ensure!(!again.is_error, "after handback actions work: {}", text(&again));
    // An action stamped with the pre-takeover epoch is stale.
    let stale = agent
        .call(
            "computer",
            json!({"sandbox": sb, "action": "screenshot", "epoch": 1}),
        )
        .await?;
    assert!(
        stale.is_error && text(&stale).contains("epoch 1"),
        "{}",
        text(&stale)
    );

    let entries = serve.ledger(Some(&sb)).await?;
    let all = serde_json::to_string(&entries)?;
    let entries = records(&entries)?;
    let human: Vec<&HumanInput> = entries
        .iter()
        .filter_map(|(_, r)| match r {
            Record::HumanInput(x) => Some(x),
            _ => None,
        })
        .collect();
    assert_eq!(human.len(), 2);
    // Typed text is recorded as a hash and a length (the record has no room for the text).
    assert!(
        matches!(
            human[1].action,
            Some(HumanAction::Typed(TypedText { text_len: 14, .. }))
        ),
        "{:?}",
        human[1]
    );
    assert!(
        !all.contains("hunter2"),
        "the operator's typed text is not in the ledger"
    );
    let leases = entries
        .iter()
        .filter(|(_, r)| matches!(r, Record::LeaseChanged(_)))
        .count();
    assert_eq!(leases, 2);
    Ok(())
}

/// An ask nobody answers expires: the action is denied and the agent is paused until an
/// operator resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_expires_as_deny_and_pauses_the_agent() -> Result<()> {
    let env = Env::new("expiry");
    let serve = Serve::start(
        &env,
        &[
            "--backend",
            "gvisor",
            "--profile",
            "minimal",
            "--approval-timeout",
            "2",
        ],
    )?;
    let sb = serve.only_sandbox().await?;
    let agent = serve.agent().await?;
    let mut events = serve.events().await?;
    let t = std::time::Instant::now();
    let r = agent
        .call("exec", exec_args(&sb, &["touch", "/tmp/never"]))
        .await?;
    assert!(r.is_error);
    assert!(
        text(&r).contains("expired") && text(&r).contains("paused"),
        "{}",
        text(&r)
    );
    assert!(t.elapsed() >= Duration::from_secs(2));
    let resolved = events
        .next_of("approval_resolved", Duration::from_secs(10))
        .await?;
    assert_eq!(resolved["approval"]["state"]["state"], "expired");
    let paused = agent
        .call("computer", computer(&sb, json!({"action": "screenshot"})))
        .await?;
    assert!(
        paused.is_error && text(&paused).contains("paused by approval-expiry"),
        "{}",
        text(&paused)
    );
    let probe = agent
        .call("exec", exec_args(&sb, &["find", "/tmp/never"]))
        .await?;
    assert!(probe.is_error, "still paused");
    let (status, _) = serve
        .post(&format!("/sandboxes/{sb}/lease"), json!({"command": "resume"}))
        .await?;
    assert_eq!(status, 200);
    let probe = agent
        .call("exec", exec_args(&sb, &["find", "/tmp/never"]))
        .await?;
    ensure!(!probe.is_error, "{}", text(&probe));
    assert!(
        text(&probe).contains("\"exit_code\":1") && text(&probe).contains("No such file"),
        "the expired action never ran: {}",
        text(&probe)
    );
    Ok(())
}

/// An approval is bound to the frame the operator saw: if the screen changes before execution the
/// approval is void and the action is asked again. A grant lets later asks of that kind through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_void_when_the_screen_changed_and_grants_let_asks_through() -> Result<()> {
    let env = Env::new("void");
    let serve = Serve::start(&env, &["--backend", "gvisor", "--profile", "minimal"])?;
    let sb = serve.only_sandbox().await?;
    serve.wait_terminal(&env, &sb, Duration::from_secs(120)).await?;
    let agent = serve.agent().await?;
    let mut events = serve.events().await?;
    let (call, first) = serve
        .ask(
            &mut events,
            "exec",
            exec_args(&sb, &["touch", "/tmp/approved-twice"]),
        )
        .await?;
    // The screen changes after the operator looked (something else moves the pointer and types).
    let out = env.airlock(&["sandbox", "type", &sb, "screen-changed"]);
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = first["approval"]["frame_png"]
        .as_str()
        .context("frame_png")?
        .to_string();
    poll_async(
        "the typing to show on the screen",
        Duration::from_secs(20),
        || async { Ok((serve.frame_hash(&sb).await? != shown).then_some(())) },
    )
    .await?;
    serve
        .decide(
            &sb,
            first["approval"]["id"].as_u64().context("id")?,
            json!({"decision": "approve"}),
        )
        .await?;
    let second = events
        .next_of("approval_requested", Duration::from_secs(60))
        .await?;
    assert_ne!(
        second["approval"]["frame"], first["approval"]["frame"],
        "asked again on the new screen"
    );
    serve
        .decide(
            &sb,
            second["approval"]["id"].as_u64().context("id")?,
            json!({"decision": "approve", "grant_minutes": 5}),
        )
        .await?;
    let r = call.await??;
    ensure!(!r.is_error, "{}", text(&r));
    let entries = records(&serve.ledger(Some(&sb)).await?)?;
    assert!(
        entries
            .iter()
            .any(|(_, r)| matches!(r, Record::ActionRefused(ActionRefused { void: true, .. }))),
        "the void approval is recorded"
    );
    let executed = entries
        .iter()
        .filter(|(_, r)| {
            matches!(r, Record::ActionExecuted(ActionExecuted { action: Action::Exec { argv, .. }, .. })
                if argv.first().is_some_and(|p| p == "touch"))
        })
        .count();
    assert_eq!(executed, 1, "it ran once");
    assert!(entries.iter().any(|(_, r)| matches!(r, Record::GrantIssued(_))));

    // The grant covers the next exec outside the allowlist: no approval is asked.
    let r = agent
        .call("exec", exec_args(&sb, &["touch", "/tmp/granted"]))
        .await?;
    ensure!(!r.is_error, "{}", text(&r));
    let (_, pending) = serve.get("/approvals").await?;
    assert_eq!(pending, json!([]));
    // A grant never overrides a deny.
    let r = agent.call("exec", exec_args(&sb, &["rm", "-rf", "/"])).await?;
    assert!(r.is_error && text(&r).contains("denied"));
    // An operator denial reaches the agent with the operator's reason.
    let (call, ask) = serve
        .ask(
            &mut events,
            "computer",
            json!({"sandbox": sb, "action": "key", "text": "ctrl+alt+Delete"}),
        )
        .await?;
    serve
        .decide(
            &sb,
            ask["approval"]["id"].as_u64().context("id")?,
            json!({"decision": "deny", "reason": "not now"}),
        )
        .await?;
    let r = call.await??;
    assert!(r.is_error && text(&r).contains("not now"), "{}", text(&r));
    // An operator's edit runs instead of what was asked, and is recorded as edited.
    let (call, ask) = serve
        .ask(
            &mut events,
            "computer",
            json!({"sandbox": sb, "action": "key", "text": "ctrl+alt+Delete"}),
        )
        .await?;
    let edited = serve
        .decide(
            &sb,
            ask["approval"]["id"].as_u64().context("id")?,
            json!({"decision": "edit", "computer": {"action": "key", "text": "ctrl+alt+BackSpace"}}),
        )
        .await?;
    assert_eq!(edited["state"]["state"], "edited");
    let r = call.await??;
    ensure!(!r.is_error, "{}", text(&r));
    assert!(
        text(&r).contains("ctrl+alt+BackSpace"),
        "the edited action ran: {}",
        text(&r)
    );
    // An edit into a kind other than the one asked is refused.
    let (call, ask) = serve
        .ask(
            &mut events,
            "computer",
            json!({"sandbox": sb, "action": "key", "text": "super+r"}),
        )
        .await?;
    let id = ask["approval"]["id"].as_u64().context("id")?;
    let (status, v) = serve
        .post(
            &format!("/sandboxes/{sb}/approvals/{id}"),
            json!({"decision": "edit", "computer": {"action": "type", "text": "hello"}}),
        )
        .await?;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("must keep the action's kind"),
        "{v}"
    );
    serve.decide(&sb, id, json!({"decision": "deny"})).await?;
    assert!(call.await??.is_error);
    Ok(())
}

/// Shadow mode (operators only) records what would have been denied and lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_is_switched_by_operators_and_logs_would_be_denials() -> Result<()> {
    let env = Env::new("shadow");
    let policy = env.root.join("shadow.cedar");
    std::fs::create_dir_all(&env.root)?;
    std::fs::write(
        &policy,
        r#"@id("all") permit(principal, action, resource);
           @id("no-touch") forbid(principal, action == Action::"exec", resource) when { context.program == "touch" };"#,
    )?;
    let serve = Serve::start(
        &env,
        &[
            "--backend",
            "gvisor",
            "--profile",
            "minimal",
            "--policy",
            policy.to_str().context("path")?,
        ],
    )?;
    let sb = serve.only_sandbox().await?;
    let agent = serve.agent().await?;
    let r = agent
        .call("exec", exec_args(&sb, &["touch", "/tmp/shadow"]))
        .await?;
    assert!(r.is_error && text(&r).contains("no-touch"), "{}", text(&r));
    // Agents cannot reach the operator API.
    let r2 = reqwest::Client::new()
        .post(format!("{}/api/policy/mode", serve.base))
        .bearer_auth(&serve.agent_token)
        .json(&json!({"mode": "shadow"}))
        .send()
        .await?;
    assert_eq!(r2.status(), 401);
    let (status, _) = serve.post("/policy/mode", json!({"mode": "shadow"})).await?;
    assert_eq!(status, 200);
    let r = agent
        .call("exec", exec_args(&sb, &["touch", "/tmp/shadow"]))
        .await?;
    ensure!(!r.is_error, "{}", text(&r));
    let entries = records(&serve.ledger(Some(&sb)).await?)?;
    assert!(entries.iter().any(|(_, r)| matches!(
        r,
        Record::ActionDecided(ActionDecided {
            shadow_denied: true,
            ..
        })
    )));
    let all = records(&serve.ledger(None).await?)?;
    assert!(all.iter().any(|(e, r)| matches!(r, Record::PolicyChanged(_))
        && e.body.actor.operator.as_deref() == Some(serve.operator.as_str())));
    Ok(())
}

/// Changing one byte of one ledger row, or of one screenshot blob, is found by `airlock ledger
/// verify`, which names the entry and exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_a_row_or_a_blob_is_named_by_verify() -> Result<()> {
    let env = Env::new("tamper");
    let mut serve = Serve::start(&env, &["--backend", "gvisor", "--profile", "minimal"])?;
    let sb = serve.only_sandbox().await?;
    let agent = serve.agent().await?;
    for x in [10, 20, 30] {
        let r = agent
            .call(
                "computer",
                computer(&sb, json!({"action": "left_click", "coordinate": [x, x]})),
            )
            .await?;
        ensure!(!r.is_error, "{}", text(&r));
    }
    let entries = records(&serve.ledger(Some(&sb)).await?)?;
    let with_frame = entries
        .iter()
        .find(|(e, r)| matches!(r, Record::ActionExecuted(_)) && e.body.frame_after.is_some())
        .map(|(e, _)| e)
        .context("an executed click with an after-frame")?;
    drop(agent);
    serve.stop();
    env.ledger_verifies()?;

    // One byte of one blob.
    let frame = with_frame.body.frame_after.context("hash")?;
    let hash = frame.to_string();
    let blob = env.root.join("ledger/blobs").join(&hash[..2]).join(&hash[2..]);
    let original = std::fs::read(&blob).with_context(|| format!("read {}", blob.display()))?;
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    std::fs::write(&blob, &bad)?;
    let first_ref = entries
        .iter()
        .find(|(e, _)| e.body.frame_after == Some(frame) || e.body.frame_before == Some(frame))
        .map(|(e, _)| e.seq);
    verify_breaks_at(&env, first_ref)?;
    std::fs::write(&blob, &original)?;

    // One byte of one row, straight in the SQLite file (bypassing any guard).
    let seq = entries[entries.len() / 2].0.seq;
    let db = env.root.join("ledger/ledger.db");
    let script = format!(
        "import sqlite3; c = sqlite3.connect('{}'); \
         [c.execute('DROP TRIGGER ' + n) for (n,) in c.execute(\"SELECT name FROM sqlite_master WHERE type='trigger'\").fetchall()]; \
         b = c.execute('SELECT body FROM entries WHERE seq = {seq}').fetchone()[0]; \
         i = b.index('ts_ms') + 8; b = b[:i] + ('1' if b[i] != '1' else '2') + b[i+1:]; \
         c.execute('UPDATE entries SET body = ? WHERE seq = {seq}', (b,)); c.commit()",
        db.display()
    );
    let py = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()?;
    ensure!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let stderr = verify_breaks_at(&env, Some(seq))?;
    assert!(stderr.contains(&format!("broken at entry {seq}")));
    Ok(())
}

/// Runs `airlock ledger verify`, which must fail naming `seq` as the first broken entry; returns
/// what it printed on stderr.
fn verify_breaks_at(env: &Env, seq: Option<u64>) -> Result<String> {
    let out = env.airlock(&["ledger", "verify"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["first_broken"]["seq"].as_u64(), seq, "{report}");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// kill -9 of `airlock serve` during a stream of appends: every acknowledged action is in the
/// ledger after restart, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_appends_loses_no_acknowledged_entry() -> Result<()> {
    let env = Env::new("kill9");
    let mut serve = Serve::start(&env, &["--backend", "gvisor", "--profile", "minimal"])?;
    let sb = serve.only_sandbox().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let agent = serve.agent().await?;
        let (sb, tx) = (sb.clone(), tx.clone());
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                let n = w * 1_000_000 + i;
                match agent
                    .call("exec", exec_args(&sb, &["echo", &format!("ack-{n}")]))
                    .await
                {
                    Ok(r) if !r.is_error => {
                        let _ = tx.send(n);
                    }
                    _ => break,
                }
            }
        }));
    }
    drop(tx);
    // Kill in the middle of the stream: once a good number of actions were acknowledged, with
    // the workers still appending.
    let mut acked = Vec::new();
    while acked.len() < 40 {
        let n = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .with_context(|| format!("only {} actions acknowledged in 60 s", acked.len()))?
            .context("every worker stopped before the kill")?;
        acked.push(n);
    }
    serve.kill9();
    // The server is dead (kill9 reaped it): nothing more can be acknowledged, and a call in flight
    // at the kill never gets an answer. Stop the workers; what they acknowledged is in the channel.
    for w in &workers {
        w.abort();
    }
    for w in workers {
        let _ = w.await;
    }
    while let Some(n) = rx.recv().await {
        acked.push(n);
    }
    ensure!(
        acked.len() >= 10,
        "only {} actions were acknowledged before the kill",
        acked.len()
    );
    let out = env.airlock(&["ledger", "verify"]);
    assert!(
        out.status.success(),
        "after kill -9: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Restart: the ledger opens, adopts the sandbox, and holds every acknowledged step.
    let serve = Serve::start(&env, &["--backend", "gvisor", "--profile", "minimal"])?;
    let entries = records(&serve.ledger(Some(&sb)).await?)?;
    let recorded: std::collections::HashSet<String> = entries
        .iter()
        .filter_map(|(_, r)| match r {
            Record::ActionExecuted(ActionExecuted {
                result: ActionOutcome::Exec(ExecRecord { stdout, .. }),
                ..
            }) => Some(stdout.trim().to_string()),
            _ => None,
        })
        .collect();
    for n in &acked {
        assert!(
            recorded.contains(&format!("ack-{n}")),
            "acknowledged action ack-{n} is missing"
        );
    }
    eprintln!("{} acknowledged actions, all present after kill -9", acked.len());
    Ok(())
}
