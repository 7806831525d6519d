//! An agent's files through the gateway: `read_file`, `write_file` and `list_files` are actions the
//! policy judges by path, size and direction, against `airlock serve` with a real gVisor sandbox
//! and a real MCP client. At home they run; elsewhere they ask; kernel trees are denied.

use std::time::Duration;

use airlock_ledger::EntryKind;
use airlock_records::{ActionExecuted, ActionOutcome, Record};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::{Events, Pending, Serve};
use airlock_test_kit::e2e::Env;
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

const ARGS: [&str; 6] = [
    "--backend",
    "gvisor",
    "--profile",
    "minimal",
    "--approval-timeout",
    "60",
];

async fn started(env: &Env) -> Result<(Serve, String, Events)> {
    let serve = Serve::start(env, &ARGS)?;
    let sb = serve.only_sandbox().await?;
    let events = serve.events().await?;
    Ok((serve, sb, events))
}

async fn outcome(call: Pending) -> Result<airlock_agents::ToolOutcome> {
    Ok(tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .context("the agent's call did not come back within 60 s")?
        .context("the agent task")??)
}

fn rules(ask: &Value) -> Vec<String> {
    ask["approval"]["reasons"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_writes_reads_and_lists_files_in_its_home_without_asking_and_the_ledger_has_their_hashes(
) -> Result<()> {
    let env = Env::new("af-home");
    let (serve, sb, _events) = started(&env).await?;
    let agent = serve.agent().await?;
    let text = "line one\nline two\n";
    let w = tokio::time::timeout(
        Duration::from_secs(60),
        agent.call(
            "write_file",
            json!({"sandbox": sb, "path": "/root/work/notes.txt", "content": text}),
        ),
    )
    .await
    .context("write_file asked or hung")??;
    ensure!(!w.is_error, "write_file failed: {}", w.text());
    // The bytes are in the sandbox, exactly.
    let inside = env.guest_sh(&sb, "cat /root/work/notes.txt")?;
    assert_eq!(inside, text);
    let r = agent
        .call(
            "read_file",
            json!({"sandbox": sb, "path": "/root/work/notes.txt"}),
        )
        .await?;
    ensure!(!r.is_error, "read_file failed: {}", r.text());
    assert_eq!(r.texts.first().map(String::as_str), Some(text));
    let l = agent
        .call("list_files", json!({"sandbox": sb, "path": "/root/work"}))
        .await?;
    ensure!(!l.is_error, "list_files failed: {}", l.text());
    let listing: Value = serde_json::from_str(l.texts.first().context("a listing")?)?;
    assert_eq!(listing["entries"][0]["name"], "notes.txt", "{listing}");
    assert_eq!(listing["entries"][0]["size"], text.len() as u64);
    // On the ledger: each as an executed action with size and SHA-256, never the bytes.
    let ledger = serve.ledger(Some(&sb)).await?;
    let executed: Vec<ActionExecuted> = records(&ledger)?
        .into_iter()
        .filter_map(|(e, r)| match r {
            Record::ActionExecuted(x) if e.body.kind == EntryKind::ActionExecuted => Some(x),
            _ => None,
        })
        .collect();
    let moved: Vec<_> = executed
        .iter()
        .filter_map(|e| match &e.result {
            ActionOutcome::FileMoved(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(moved.len(), 2, "the write and the read: {executed:?}");
    assert!(moved
        .iter()
        .all(|m| m.size == text.len() as u64 && m.sha256.len() == 64));
    assert_eq!(
        moved[0].sha256, moved[1].sha256,
        "the read gave back what was written"
    );
    ensure!(
        !ledger.iter().any(|e| e.to_string().contains("line two")),
        "the file's bytes reached the ledger"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_writing_outside_its_home_waits_for_an_operator_and_a_denial_writes_nothing() -> Result<()> {
    let env = Env::new("af-etc");
    let (serve, sb, mut events) = started(&env).await?;
    let before = env.guest_sh(&sb, "sha256sum /etc/passwd")?;
    let (call, ask) = serve
        .ask(
            &mut events,
            "write_file",
            json!({"sandbox": sb, "path": "/etc/passwd", "content": "root::0:0::/root:/bin/sh\n"}),
        )
        .await?;
    assert_eq!(ask["approval"]["action"]["kind"], "write_file", "{ask}");
    assert_eq!(ask["approval"]["action"]["path"], "/etc/passwd");
    assert!(rules(&ask).contains(&"files-elsewhere".to_string()), "{ask}");
    assert!(
        ask["approval"]["action"].get("content").is_none(),
        "the operator sees size and hash, not a copy of the bytes: {ask}"
    );
    let id = ask["approval"]["id"].as_u64().context("approval id")?;
    serve.decide(&sb, id, json!({"decision": "deny"})).await?;
    let r = outcome(call).await?;
    ensure!(r.is_error, "a denied write succeeded: {}", r.text());
    assert_eq!(
        env.guest_sh(&sb, "sha256sum /etc/passwd")?,
        before,
        "/etc/passwd changed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reading_proc_is_denied_by_the_policy_without_asking() -> Result<()> {
    let env = Env::new("af-proc");
    let (serve, sb, _events) = started(&env).await?;
    let agent = serve.agent().await?;
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        agent.call("read_file", json!({"sandbox": sb, "path": "/proc/1/environ"})),
    )
    .await
    .context("a /proc read asked instead of being denied")??;
    ensure!(r.is_error, "a /proc read succeeded");
    assert!(r.text().contains("files-system"), "{}", r.text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_with_dot_dot_is_refused_before_the_policy_with_a_clear_error() -> Result<()> {
    let env = Env::new("af-dotdot");
    let (serve, sb, _events) = started(&env).await?;
    let agent = serve.agent().await?;
    let r = agent
        .call(
            "write_file",
            json!({"sandbox": sb, "path": "/root/../etc/shadow", "content": "x"}),
        )
        .await?;
    ensure!(r.is_error, "a '..' path was written");
    assert!(r.text().contains("'..'"), "{}", r.text());
    Ok(())
}
