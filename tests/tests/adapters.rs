//! The Anthropic and OpenAI computer-use adapters (`airlock agent anthropic|openai`) against the real
//! gateway (`airlock serve`) and a real gVisor sandbox, with a local stub replaying a scripted
//! conversation in place of the model API: the stub checks what the adapter sends (headers, tools,
//! tool results carrying real screenshots), the sandbox shows that the typed commands ran, and the
//! ledger shows what was executed and what the policy refused.

use std::process::{Output, Stdio};
use std::time::Duration;

use airlock_domain::{Action, MouseButton, Point};
use airlock_ledger::Entry;
use airlock_records::{ActionExecuted, ActionOutcome, ActionRefused, Record};
use airlock_test_kit::e2e::model_api::{Recorded, Stub};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::Serve;
use airlock_test_kit::e2e::{bin_dir, cache_dir, Env};
use anyhow::{ensure, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

/// How long an agent run may take end to end.
const AGENT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the sandbox's terminal may take to come up.
const TERMINAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a typed command may take to leave its file behind.
const FILE_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `airlock sandbox exec ID -- ARGV…` against the sandbox directly (not through the gateway).
fn sandbox_exec(env: &Env, id: &str, argv: &[&str]) -> Output {
    let mut args = vec!["sandbox", "exec", id, "--"];
    args.extend_from_slice(argv);
    env.airlock(&args)
}

/// [`airlock_test_kit::e2e::poll`], off the async workers.
fn poll<T>(what: &str, timeout: Duration, f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    tokio::task::block_in_place(|| airlock_test_kit::e2e::poll(what, timeout, f))
}

/// Waits until `path` in the sandbox holds `want` (trimmed).
fn wait_file(env: &Env, id: &str, path: &str, want: &str) -> Result<()> {
    let mut last = String::new();
    poll(&format!("{path} to hold {want:?}"), FILE_TIMEOUT, || {
        let out = sandbox_exec(env, id, &["cat", path]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && stdout.trim() == want {
            return Ok(Some(()));
        }
        last = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        Ok(None)
    })
    .with_context(|| format!("the typed command did not run in the sandbox; `cat {path}` said {last:?}"))
}

/// Runs `airlock agent --url … --sandbox ID PROVIDER --task TASK` with `vars` set; returns its stdout.
async fn run_agent(
    serve: &Serve,
    sandbox: &str,
    provider: &str,
    task: &str,
    vars: &[(&str, &str)],
) -> Result<String> {
    let mut cmd = tokio::process::Command::new(bin_dir().join("airlock"));
    cmd.args([
        "agent",
        "--url",
        &serve.mcp_url(),
        "--sandbox",
        sandbox,
        provider,
        "--task",
        task,
    ])
    .env("AIRLOCK_AGENT_TOKEN", &serve.agent_token)
    .env("AIRLOCK_CACHE_DIR", cache_dir())
    .env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    // Nothing from the environment of the test may redirect the adapter elsewhere.
    for var in [
        "ANTHROPIC_MODEL",
        "OPENAI_MODEL",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawn airlock agent")?;
    let out = tokio::time::timeout(AGENT_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("airlock agent {provider} did not finish within {AGENT_TIMEOUT:?}"))??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "airlock agent {provider} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// The `loop_done` line the agent printed last.
fn loop_done(stdout: &str) -> Result<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "loop_done")
        .with_context(|| format!("no loop_done line in the agent's output:\n{stdout}"))
}

/// Checks that `bytes` are a PNG and returns its size from the IHDR chunk.
fn png_size(bytes: &[u8]) -> Result<(u32, u32)> {
    ensure!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: starts with {:02x?}",
        &bytes[..bytes.len().min(8)]
    );
    ensure!(
        bytes.len() >= 24 && &bytes[12..16] == b"IHDR",
        "the PNG does not start with an IHDR chunk"
    );
    let be = |at: usize| -> Result<u32> { Ok(u32::from_be_bytes(bytes[at..at + 4].try_into()?)) };
    Ok((be(16)?, be(20)?))
}

/// Decodes base64 PNG data and checks it is a full 1280x800 screenshot.
fn assert_screenshot(data: &str, what: &str) -> Result<()> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .with_context(|| format!("{what}: the image is not base64"))?;
    let size = png_size(&bytes).with_context(|| what.to_owned())?;
    ensure!(
        size == (1280, 800),
        "{what}: the screenshot is {size:?}, not 1280x800"
    );
    ensure!(
        bytes.len() > 1000,
        "{what}: a {}-byte PNG is no screenshot",
        bytes.len()
    );
    Ok(())
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The executed actions in the ledger, with their entries.
fn executed(entries: &[(Entry, Record)]) -> Vec<(&Entry, &ActionExecuted)> {
    entries
        .iter()
        .filter_map(|(e, r)| match r {
            Record::ActionExecuted(x) => Some((e, x)),
            _ => None,
        })
        .collect()
}

/// The refused actions in the ledger, with their entries.
fn refused(entries: &[(Entry, Record)]) -> Vec<(&Entry, &ActionRefused)> {
    entries
        .iter()
        .filter_map(|(e, r)| match r {
            Record::ActionRefused(x) => Some((e, x)),
            _ => None,
        })
        .collect()
}

/// Asserts that the agent's entries all name the same, non-empty MCP client; returns it.
fn one_agent<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Result<String> {
    let entries: Vec<&Entry> = entries.into_iter().collect();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e.body.actor.agent.as_deref().unwrap_or_default())
        .collect();
    let first = names.first().copied().context("no ledger entries of the agent")?;
    ensure!(
        !first.is_empty(),
        "the agent has no name in the ledger: {:?}",
        entries[0]
    );
    ensure!(
        names.iter().all(|n| *n == first),
        "the entries name different agents: {names:?}"
    );
    Ok(first.to_owned())
}

/// Starts `airlock serve` with one minimal gVisor sandbox whose terminal is ready; returns its id.
async fn serve_with_ready_sandbox(env: &Env) -> Result<(Serve, String)> {
    let serve = Serve::start(env, &["--backend", "gvisor", "--profile", "minimal"])?;
    let sandbox = serve.only_sandbox().await?;
    serve.wait_terminal(env, &sandbox, TERMINAL_TIMEOUT).await?;
    Ok((serve, sandbox))
}

fn anthropic_tool_use(n: u32, input: Value) -> Value {
    json!({
        "id": format!("msg_{n}"),
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": format!("Step {n}.")},
            {"type": "tool_use", "id": format!("toolu_{n}"), "name": "computer", "input": input}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}
    })
}

/// The `tool_result` block answering `tool_use_id` in the last (user) message of a request.
fn tool_result<'a>(request: &'a Recorded, tool_use_id: &str) -> Result<&'a Value> {
    let messages = request.body["messages"]
        .as_array()
        .context("the request has no messages")?;
    let last = messages.last().context("the request has no messages")?;
    ensure!(
        last["role"] == "user",
        "the last message is not the user's: {last}"
    );
    last["content"]
        .as_array()
        .and_then(|blocks| {
            blocks
                .iter()
                .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == tool_use_id)
        })
        .with_context(|| format!("no tool_result for {tool_use_id} in {last}"))
}

/// The text blocks of a `tool_result`, joined.
fn result_text(block: &Value) -> String {
    block["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|b| b["type"] == "text")
                .map(|b| str_of(&b["text"]).to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The gateway's JSON summary in a successful `tool_result`.
fn result_summary(block: &Value) -> Result<Value> {
    let text = result_text(block);
    let summary: Value =
        serde_json::from_str(&text).with_context(|| format!("not a JSON summary: {text}"))?;
    Ok(summary)
}

/// Claude's computer tool, scripted: screenshot, type a command, press Return, try to wipe the
/// system (denied by the default policy), stop. The command runs in the real sandbox, the model
/// sees real screenshots and the refusal, and the ledger records it all under the MCP client's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_adapter_drives_a_real_sandbox() -> Result<()> {
    let env = Env::new("adapter-anthropic");
    let (serve, sandbox) = serve_with_ready_sandbox(&env).await?;
    let first = json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "computer", "input": {"action": "screenshot"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}
    });
    let done = json!({
        "id": "msg_5",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "The file is written; I will not wipe the system."}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}
    });
    let stub = Stub::start(
        "/v1/messages",
        vec![
            first.clone(),
            anthropic_tool_use(
                2,
                json!({"action": "type", "text": "echo from-claude > /tmp/claude.txt"}),
            ),
            anthropic_tool_use(3, json!({"action": "key", "text": "Return"})),
            anthropic_tool_use(4, json!({"action": "type", "text": "rm -rf /\n"})),
            done,
        ],
    )
    .await?;

    let task = "Write from-claude into /tmp/claude.txt using the terminal.";
    let stdout = run_agent(
        &serve,
        &sandbox,
        "anthropic",
        task,
        &[
            ("ANTHROPIC_API_KEY", "test-key"),
            ("ANTHROPIC_BASE_URL", &stub.base),
        ],
    )
    .await?;

    // The loop as the adapter reports it.
    let report = loop_done(&stdout)?;
    assert_eq!(report["provider"], "anthropic", "{report}");
    assert_eq!(report["turns"], 5, "{report}");
    assert_eq!(report["actions"], 4, "{report}");
    assert_eq!(report["stop_reason"], "end_turn", "{report}");

    // What the model API saw.
    let requests = stub.requests();
    assert_eq!(requests.len(), 5, "one request per scripted turn: {requests:#?}");
    assert_eq!(stub.left(), 0);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.path, "/v1/messages", "request {i}");
        assert_eq!(r.header("x-api-key"), Some("test-key"), "request {i}");
        assert_eq!(r.header("anthropic-version"), Some("2023-06-01"), "request {i}");
        assert_eq!(r.body["model"], "claude-sonnet-4-5", "request {i}");
        let tools = r.body["tools"].as_array().context("no tools")?;
        let computer = tools
            .iter()
            .find(|t| t["type"] == "computer_20250124")
            .with_context(|| format!("request {i}: no computer_20250124 tool in {tools:?}"))?;
        assert_eq!(computer["name"], "computer");
        assert_eq!(computer["display_width_px"], 1280, "{computer}");
        assert_eq!(computer["display_height_px"], 800, "{computer}");
        assert_eq!(
            r.body["messages"].as_array().map(Vec::len),
            Some(1 + 2 * i),
            "request {i}"
        );
    }
    assert_eq!(
        requests[0].body["messages"],
        json!([{"role": "user", "content": task}])
    );
    // Turn 1's assistant content goes back verbatim, followed by the screenshot as a tool result.
    assert_eq!(
        requests[1].body["messages"][1],
        json!({"role": "assistant", "content": first["content"]})
    );
    let shot = tool_result(&requests[1], "toolu_1")?;
    assert!(shot.get("is_error").is_none(), "the screenshot succeeded: {shot}");
    let images: Vec<&Value> = shot["content"]
        .as_array()
        .context("tool_result content")?
        .iter()
        .filter(|b| b["type"] == "image")
        .collect();
    assert_eq!(images.len(), 1, "one image in {shot}");
    assert_eq!(images[0]["source"]["type"], "base64");
    assert_eq!(images[0]["source"]["media_type"], "image/png");
    assert_screenshot(str_of(&images[0]["source"]["data"]), "the screenshot for toolu_1")?;

    // Typing and the key were allowed and performed.
    for (i, id, kind) in [(2, "toolu_2", "type"), (3, "toolu_3", "key")] {
        let result = tool_result(&requests[i], id)?;
        assert!(result.get("is_error").is_none(), "{id}: {result}");
        let summary = result_summary(result)?;
        assert_eq!(summary["sandbox"], sandbox.as_str(), "{summary}");
        assert_eq!(summary["decision"], "allow", "{summary}");
        assert_eq!(summary["action"]["kind"], kind, "{summary}");
    }
    // Wiping the system was denied, and the model was told why.
    let denied = tool_result(&requests[4], "toolu_4")?;
    assert_eq!(denied["is_error"], true, "{denied}");
    let why = result_text(denied);
    assert!(
        why.contains("denied") && why.contains("wipe-the-system"),
        "the refusal says why: {why}"
    );

    // The typed command ran in the sandbox's terminal.
    wait_file(&env, &sandbox, "/tmp/claude.txt", "from-claude")?;

    // The ledger.
    let entries = records(&serve.ledger(Some(&sandbox)).await?)?;
    let executed = executed(&entries);
    let actions: Vec<&Action> = executed.iter().map(|(_, x)| &x.action).collect();
    assert_eq!(
        actions,
        [
            &Action::Screenshot,
            &Action::Type {
                text: "echo from-claude > /tmp/claude.txt".into()
            },
            &Action::Key {
                combo: "Return".into()
            },
        ],
        "executed actions"
    );
    let refused = refused(&entries);
    assert_eq!(refused.len(), 1, "one refusal: {refused:?}");
    assert_eq!(
        refused[0].1.action,
        Action::Type {
            text: "rm -rf /\n".into()
        }
    );
    let reason = &refused[0].1.reason;
    assert!(reason.contains("wipe-the-system"), "{reason}");
    let decided = entries
        .iter()
        .filter(|(_, r)| matches!(r, Record::ActionDecided(_)))
        .map(|(e, _)| e);
    let agent = one_agent(
        executed
            .iter()
            .map(|(e, _)| *e)
            .chain(refused.iter().map(|(e, _)| *e))
            .chain(decided),
    )?;
    eprintln!("the ledger names the agent {agent:?}");
    Ok(())
}

fn openai_call(n: u32, action: Value) -> Value {
    json!({
        "id": format!("resp_{n}"),
        "object": "response",
        "status": "completed",
        "output": [{
            "type": "computer_call",
            "id": format!("cu_{n}"),
            "call_id": format!("call_{n}"),
            "action": action,
            "pending_safety_checks": [],
            "status": "completed"
        }]
    })
}

/// OpenAI's `computer_use_preview`, scripted: click, type a command, press Enter, stop. Each
/// action runs in the real sandbox and the model gets a real screenshot back, chained to the
/// previous response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_adapter_drives_a_real_sandbox() -> Result<()> {
    let env = Env::new("adapter-openai");
    let (serve, sandbox) = serve_with_ready_sandbox(&env).await?;
    let stub = Stub::start(
        "/v1/responses",
        vec![
            openai_call(1, json!({"type": "click", "button": "left", "x": 640, "y": 400})),
            openai_call(
                2,
                json!({"type": "type", "text": "echo from-openai > /tmp/openai.txt"}),
            ),
            openai_call(3, json!({"type": "keypress", "keys": ["ENTER"]})),
            json!({
                "id": "resp_4",
                "object": "response",
                "status": "completed",
                "output": [{
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Done.", "annotations": []}]
                }]
            }),
        ],
    )
    .await?;

    let task = "Write from-openai into /tmp/openai.txt using the terminal.";
    let base = format!("{}/v1", stub.base);
    let stdout = run_agent(
        &serve,
        &sandbox,
        "openai",
        task,
        &[("OPENAI_API_KEY", "test-key"), ("OPENAI_BASE_URL", &base)],
    )
    .await?;

    let report = loop_done(&stdout)?;
    assert_eq!(report["provider"], "openai", "{report}");
    assert_eq!(report["turns"], 4, "{report}");
    assert_eq!(report["actions"], 3, "{report}");
    assert_eq!(report["assistant_texts"], json!(["Done."]), "{report}");
    assert_eq!(report["stop_reason"], "completed", "{report}");

    // What the model API saw.
    let requests = stub.requests();
    assert_eq!(
        requests.len(),
        4,
        "one request per scripted response: {requests:#?}"
    );
    assert_eq!(stub.left(), 0);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.path, "/v1/responses", "request {i}");
        assert_eq!(r.header("authorization"), Some("Bearer test-key"), "request {i}");
        assert_eq!(r.body["model"], "computer-use-preview", "request {i}");
        assert_eq!(
            r.body["tools"],
            json!([{
                "type": "computer_use_preview",
                "display_width": 1280,
                "display_height": 800,
                "environment": "linux"
            }]),
            "request {i}"
        );
    }
    let first = &requests[0].body;
    assert!(first.get("previous_response_id").is_none(), "{first}");
    assert_eq!(first["input"], json!([{"role": "user", "content": task}]));
    // Every later request chains to the previous response and answers its call with a real screenshot.
    for (i, r) in requests.iter().enumerate().skip(1) {
        assert_eq!(
            r.body["previous_response_id"],
            format!("resp_{i}"),
            "request {i}: {}",
            r.body
        );
        let input = r.body["input"].as_array().context("input")?;
        assert_eq!(
            input.len(),
            1,
            "no refusal message, only the call's output: {input:?}"
        );
        let output = &input[0];
        assert_eq!(output["type"], "computer_call_output", "{output}");
        assert_eq!(output["call_id"], format!("call_{i}"), "{output}");
        assert_eq!(output["output"]["type"], "computer_screenshot", "{output}");
        let url = str_of(&output["output"]["image_url"]);
        let data = url
            .strip_prefix("data:image/png;base64,")
            .with_context(|| format!("request {i}: not a PNG data URL: {:.60}", url))?;
        assert_screenshot(data, &format!("the screenshot for call_{i}"))?;
    }

    // The typed command ran in the sandbox's terminal.
    wait_file(&env, &sandbox, "/tmp/openai.txt", "from-openai")?;

    // The ledger: the three actions, each followed by the adapter's screenshot; nothing refused.
    let entries = records(&serve.ledger(Some(&sandbox)).await?)?;
    let executed = executed(&entries);
    let inputs: Vec<&Action> = executed
        .iter()
        .map(|(_, x)| &x.action)
        .filter(|a| !matches!(a, Action::Screenshot))
        .collect();
    assert_eq!(
        inputs,
        [
            &Action::Click {
                at: Some(Point { x: 640, y: 400 }),
                button: MouseButton::Left,
                count: 1,
                hold: None
            },
            &Action::Type {
                text: "echo from-openai > /tmp/openai.txt".into()
            },
            &Action::Key {
                combo: "Return".into()
            },
        ],
        "executed input actions"
    );
    let screenshots = executed.len() - inputs.len();
    assert_eq!(screenshots, 3, "a screenshot after each action");
    for (_, x) in &executed {
        assert!(!matches!(x.result, ActionOutcome::Failed(_)), "{x:?}");
    }
    assert!(refused(&entries).is_empty(), "nothing was refused");
    let agent = one_agent(executed.iter().map(|(e, _)| *e))?;
    eprintln!("the ledger names the agent {agent:?}");
    Ok(())
}
