//! The supervision core against real parts: `airlock serve` with real sandboxes, a real SQLite
//! ledger, the official MCP Python SDK and Airlock's own MCP client, and the operator API.

use std::process::Command;
use std::time::Duration;

use airlock_domain::{Action, ActionKind};
use airlock_ledger::EntryKind;
use airlock_records::{ActionExecuted, Record};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::Serve;
use airlock_test_kit::e2e::{bin_dir, cache_dir, Env};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

/// Whether `action` runs exactly `cmd`.
fn runs(action: &Action, cmd: &[&str]) -> bool {
    matches!(action, Action::Exec { argv, .. } if argv == cmd)
}

fn python() -> String {
    std::env::var("AIRLOCK_PYENV").unwrap_or_else(|_| "/opt/airlock/pyenv".into()) + "/bin/python"
}

fn python_sdk_drives(backend: &str) -> Result<()> {
    let env = Env::new(&format!("py-{backend}"));
    let serve = Serve::start(&env, &["--backend", backend, "--profile", "desktop"])?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/mcp_client.py");
    let out = Command::new(python())
        .args([script, &serve.mcp_url(), &serve.agent_token])
        .output()
        .context("run the MCP Python SDK client (scripts/setup installs it)")?;
    ensure!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(r["server"], "airlock");
    assert_eq!(
        r["tools"],
        json!([
            "computer",
            "computer_openai",
            "exec",
            "list_files",
            "read_file",
            "request_human",
            "request_network",
            "sandbox_create",
            "sandbox_destroy",
            "sandbox_list",
            "write_file"
        ])
    );
    let shot = &r["screenshot"];
    assert_eq!(shot["is_error"], false, "{shot}");
    assert_eq!(shot["images"][0]["mime"], "image/png");
    assert_eq!(
        (
            shot["images"][0]["width"].as_u64(),
            shot["images"][0]["height"].as_u64()
        ),
        (Some(1280), Some(800))
    );
    let zoom = &r["zoom"]["images"][0];
    assert_eq!(
        (zoom["width"].as_u64(), zoom["height"].as_u64()),
        (Some(640), Some(400)),
        "{}",
        r["zoom"]
    );
    for step in ["click", "type", "enter", "wait", "openai_move", "cursor", "zoom"] {
        assert_eq!(r[step]["is_error"], false, "{step}: {}", r[step]);
    }
    let exec: Value = serde_json::from_str(r["exec"]["texts"][0].as_str().unwrap_or("null"))?;
    assert_eq!(
        exec["result"]["stdout"], "mcp-sdk\n",
        "typed command ran in the terminal: {exec}"
    );
    let cursor: Value = serde_json::from_str(r["cursor"]["texts"][0].as_str().unwrap_or("null"))?;
    assert_eq!(
        cursor["result"],
        json!({"x": 10, "y": 10}),
        "the OpenAI-style move landed"
    );
    for (step, needle) in [
        ("unknown_action", "unknown action \"teleport\""),
        ("off_screen", "outside the 1280x800 screen"),
        ("huge_text", "over the 65536-byte limit"),
        ("bad_field", "unknown field `colour`"),
        ("unknown_tool", "no tool \"teleport\""),
    ] {
        assert_eq!(r[step]["is_error"], true, "{step}: {}", r[step]);
        let text = r[step]["texts"][0].as_str().unwrap_or_default();
        assert!(text.contains(needle), "{step}: {text}");
    }
    // Nothing malformed reached the ledger as executed: exactly the good calls did.
    let rt = tokio::runtime::Runtime::new()?;
    let entries = rt.block_on(serve.ledger(None))?;
    let executed: Vec<ActionKind> = records(&entries)?
        .iter()
        .filter_map(|(_, r)| match r {
            Record::ActionExecuted(ActionExecuted { action, .. }) => Some(action),
            _ => None,
        })
        .filter(|a| {
            !matches!(a, Action::Exec { argv, .. }
                if argv.get(1).is_some_and(|p| p == "/tmp/.airlock-terminal-ready"))
        })
        .map(Action::kind)
        .collect();
    assert_eq!(
        executed,
        [
            ActionKind::Screenshot,
            ActionKind::Click,
            ActionKind::Type,
            ActionKind::Key,
            ActionKind::Wait,
            ActionKind::Exec,
            ActionKind::MouseMove,
            ActionKind::CursorPosition,
            ActionKind::Zoom
        ],
        "executed entries"
    );
    assert!(
        entries.iter().all(|e| !e.to_string().contains("teleport")),
        "bad calls are not logged as steps"
    );
    env.ledger_verifies()?;
    Ok(())
}

/// The official MCP Python SDK, unmodified, lists tools, takes a screenshot, clicks, types and
/// execs; malformed calls get tool errors with reasons and are not logged as executed.
#[test]
fn the_python_mcp_sdk_drives_a_gvisor_sandbox() -> Result<()> {
    python_sdk_drives("gvisor")
}

/// The same through a QEMU microVM (TCG here).
#[test]
fn the_python_mcp_sdk_drives_a_microvm() -> Result<()> {
    python_sdk_drives("microvm")
}

/// The shipped demo plan, run by `airlock agent run`: allowed steps run, the ask blocks until the
/// operator approves over the operator API, the deny is refused, and the ledger has every step in
/// order and verifies (live and exported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plan_runs_end_to_end_with_an_operator() -> Result<()> {
    let env = Env::new("demo-plan");
    let serve = Serve::start(&env, &["--backend", "gvisor", "--no-sandbox"])?;
    let mut events = serve.events().await?;
    let plan = concat!(env!("CARGO_MANIFEST_DIR"), "/../agents/plans/demo.yaml");
    let agent = tokio::process::Command::new(bin_dir().join("airlock"))
        .args(["agent", "--url", &serve.mcp_url(), "run", "--plan", plan])
        .env("AIRLOCK_AGENT_TOKEN", &serve.agent_token)
        .env("AIRLOCK_STATE_DIR", &env.root)
        .env("AIRLOCK_CACHE_DIR", cache_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // The ask: the operator sees the frame it is bound to, then approves.
    let asked = events
        .next_of("approval_requested", Duration::from_secs(300))
        .await?;
    let approval = &asked["approval"];
    assert_eq!(
        approval["action"]["argv"],
        json!(["touch", "/tmp/approved"]),
        "{asked}"
    );
    assert_eq!(approval["state"]["state"], "pending");
    let sandbox = approval["sandbox"].as_str().context("sandbox")?.to_string();
    // Bound to the pixels' hash; shown from the PNG blob.
    assert_eq!(approval["frame"].as_str().map(str::len), Some(64), "{approval}");
    let frame = approval["frame_png"].as_str().context("frame_png")?;
    assert_ne!(approval["frame"].as_str(), Some(frame));
    let blob = reqwest::Client::new()
        .get(format!("{}/api/blobs/{frame}", serve.base))
        .bearer_auth(&serve.operator_token)
        .send()
        .await?;
    assert_eq!(blob.status(), 200);
    assert!(
        blob.bytes().await?.starts_with(b"\x89PNG"),
        "the frame shown is a PNG"
    );
    let decided = serve
        .decide(
            &sandbox,
            approval["id"].as_u64().context("id")?,
            json!({"decision": "approve"}),
        )
        .await?;
    assert_eq!(decided["state"]["state"], "approved");
    assert_eq!(decided["state"]["by"], serve.operator.as_str());

    let out = tokio::time::timeout(Duration::from_secs(300), agent.wait_with_output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "plan failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let entries = records(&serve.ledger(Some(&sandbox)).await?)?;
    let k: Vec<EntryKind> = entries.iter().map(|(e, _)| e.body.kind).collect();
    let pos = |kind: EntryKind, from: usize| k.iter().skip(from).position(|x| *x == kind).map(|p| p + from);
    let asked_at = pos(EntryKind::ApprovalRequested, 0).context("approval requested")?;
    let resolved_at = pos(EntryKind::ApprovalResolved, asked_at).context("approval resolved")?;
    let ran_at = pos(EntryKind::ActionExecuted, resolved_at).context("approved action executed")?;
    let ran = &entries[ran_at].1;
    assert!(
        matches!(ran, Record::ActionExecuted(x) if runs(&x.action, &["touch", "/tmp/approved"])),
        "{ran:?}"
    );
    assert_eq!(
        entries[resolved_at].0.body.actor.operator.as_deref(),
        Some(serve.operator.as_str())
    );
    let denied = entries
        .iter()
        .find_map(|(_, r)| match r {
            Record::ActionRefused(x) if runs(&x.action, &["rm", "-rf", "/"]) => Some(x),
            _ => None,
        })
        .context("the rm -rf / refusal is recorded")?;
    assert!(denied.reason.contains("wipe-the-system"));
    assert!(
        !entries
            .iter()
            .any(|(_, r)| matches!(r, Record::ActionExecuted(x) if runs(&x.action, &["rm", "-rf", "/"]))),
        "the denied command never ran"
    );
    // Sequence numbers are in order, each executed input action has an after-frame.
    let seqs: Vec<u64> = entries.iter().map(|(e, _)| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    for (e, r) in &entries {
        if let Record::ActionExecuted(ActionExecuted {
            action: Action::Click { .. },
            ..
        }) = r
        {
            assert!(e.body.frame_after.is_some(), "{e:?}");
        }
    }
    env.ledger_verifies()?;
    let export = env.root.join("export.jsonl");
    let out = env.airlock(&["ledger", "export", "-o", export.to_str().context("path")?]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let blobs = env.root.join("ledger/blobs");
    let out = env.airlock(&[
        "ledger",
        "verify",
        "--jsonl",
        export.to_str().context("path")?,
        "--blobs",
        blobs.to_str().context("path")?,
    ]);
    assert!(
        out.status.success(),
        "offline verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
