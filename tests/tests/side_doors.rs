//! The policy gate's side doors, closed: what an agent types into a terminal is judged as the
//! command it submits, commands are judged parsed (any flag spelling, through shell wrappers),
//! programs that run programs or send input ask, pastes into a terminal ask showing what they
//! insert, an operator's edit is judged with the real window title, and the MCP endpoint refuses
//! foreign web origins. Against `airlock serve` with a real gVisor sandbox (xterm and a shell on
//! a real X server) and a scripted MCP agent.

use std::time::Duration;

use airlock_test_kit::e2e::serve::{computer, Events, Pending, Serve};
use airlock_test_kit::e2e::{poll, Env};
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

fn text(o: &airlock_agents::ToolOutcome) -> String {
    o.texts.join("\n")
}

/// A serve with one sandbox whose terminal has a shell, and the operator's event stream.
async fn started(env: &Env, args: &[&str]) -> Result<(Serve, String, Events)> {
    let serve = Serve::start(env, args)?;
    let sb = serve.only_sandbox().await?;
    serve.wait_terminal(env, &sb, Duration::from_secs(120)).await?;
    let events = serve.events().await?;
    Ok((serve, sb, events))
}

/// An agent call the gate lets through without asking (it fails the test if it asks).
async fn allowed(serve: &Serve, tool: &str, args: Value) -> Result<()> {
    let agent = serve.agent().await?;
    let r = tokio::time::timeout(Duration::from_secs(60), agent.call(tool, args.clone()))
        .await
        .with_context(|| format!("{args} did not come back within 60 s: did it ask?"))??;
    ensure!(!r.is_error, "{args} failed: {}", text(&r));
    Ok(())
}

async fn outcome(call: Pending) -> Result<airlock_agents::ToolOutcome> {
    Ok(tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .context("the agent's call did not come back within 60 s")?
        .context("the agent task")??)
}

/// The operator denies the ask; the agent's call comes back refused.
async fn deny(serve: &Serve, sb: &str, ask: &Value, call: Pending) -> Result<()> {
    serve
        .decide(sb, approval_id(ask)?, json!({"decision": "deny"}))
        .await?;
    ensure!(
        outcome(call).await?.is_error,
        "the denied call did not fail: {ask}"
    );
    Ok(())
}

fn approval_id(ask: &Value) -> Result<u64> {
    ask["approval"]["id"]
        .as_u64()
        .with_context(|| format!("no approval id in {ask}"))
}

fn rules(ask: &Value) -> Vec<String> {
    ask["approval"]["reasons"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn command_lines(ask: &Value) -> Vec<String> {
    ask["approval"]["terminal"]["lines"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["text"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn exists(env: &Env, sb: &str, path: &str) -> bool {
    env.guest_sh(sb, &format!("test -e {path}")).is_ok()
}

/// Waits until `path` exists in the guest (the shell runs a submitted line a moment after the
/// keystroke).
fn appears(env: &Env, sb: &str, path: &str) -> Result<()> {
    poll(&format!("{path} in the guest"), Duration::from_secs(20), || {
        Ok(exists(env, sb, path).then_some(()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_typed_into_the_terminal_asks_and_runs_only_after_approval() -> Result<()> {
    let env = Env::new("sd-typed");
    let (serve, sb, mut events) = started(&env, &ARGS).await?;
    let (call, ask) = serve
        .ask(
            &mut events,
            "computer",
            computer(
                &sb,
                json!({"action": "type", "text": "sh -c 'touch /tmp/side-door'\n"}),
            ),
        )
        .await?;
    assert!(rules(&ask).contains(&"exec-other".to_string()), "{ask}");
    assert_eq!(command_lines(&ask), ["sh -c 'touch /tmp/side-door'"], "{ask}");
    ensure!(
        !exists(&env, &sb, "/tmp/side-door"),
        "the command ran before the operator decided"
    );
    serve
        .decide(&sb, approval_id(&ask)?, json!({"decision": "approve"}))
        .await?;
    let r = outcome(call).await?;
    ensure!(!r.is_error, "{}", text(&r));
    appears(&env, &sb, "/tmp/side-door")?;
    env.ledger_verifies()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_recursive_delete_asks() -> Result<()> {
    let env = Env::new("sd-rm");
    let (serve, sb, mut events) = started(&env, &ARGS).await?;
    env.guest_sh(&sb, "mkdir -p /root/scratch /tmp/scratch")?;
    for (tool, args) in [
        (
            "computer",
            json!({"action": "type", "text": "rm -r -f ~/scratch\n"}),
        ),
        (
            "computer",
            json!({"action": "type", "text": "rm -fR ~/scratch\n"}),
        ),
        (
            "computer",
            json!({"action": "type", "text": "rm --recursive --force ~/scratch\n"}),
        ),
        (
            "computer",
            json!({"action": "type", "text": "timeout 5 env X=1 rm -Rf /tmp/scratch\n"}),
        ),
        ("exec", json!({"argv": ["rm", "--force", "-r", "/tmp/scratch"]})),
        (
            "exec",
            json!({"argv": ["bash", "-c", "cd /tmp && rm -r -f scratch"]}),
        ),
    ] {
        let mut args = args.clone();
        args["sandbox"] = json!(sb);
        let (call, ask) = serve.ask(&mut events, tool, args.clone()).await?;
        assert!(
            rules(&ask).contains(&"recursive-delete".to_string()),
            "{args}: {ask}"
        );
        deny(&serve, &sb, &ask, call).await?;
    }
    ensure!(exists(&env, &sb, "/tmp/scratch"), "a delete ran");
    // The wipe rule denies every spelling outright, without asking.
    let agent = serve.agent().await?;
    for t in ["rm -r -f /\n", "rm --recursive --force --no-preserve-root /\n"] {
        let r = agent
            .call("computer", computer(&sb, json!({"action": "type", "text": t})))
            .await?;
        assert!(
            r.is_error && text(&r).contains("wipe-the-system"),
            "{t:?}: {}",
            text(&r)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_keys_spelling_a_command_are_judged_when_return_submits_them() -> Result<()> {
    let env = Env::new("sd-keys");
    let (serve, sb, mut events) = started(&env, &ARGS).await?;
    let keys = [
        "t", "o", "u", "c", "h", "space", "slash", "t", "m", "p", "slash", "k", "e", "y", "s",
    ];
    for k in keys {
        allowed(
            &serve,
            "computer",
            computer(&sb, json!({"action": "key", "text": k})),
        )
        .await?;
    }
    let (call, ask) = serve
        .ask(
            &mut events,
            "computer",
            computer(&sb, json!({"action": "key", "text": "Return"})),
        )
        .await?;
    assert_eq!(command_lines(&ask), ["touch /tmp/keys"], "{ask}");
    ensure!(!exists(&env, &sb, "/tmp/keys"), "the command ran before approval");
    serve
        .decide(&sb, approval_id(&ask)?, json!({"decision": "approve"}))
        .await?;
    ensure!(!outcome(call).await?.is_error);
    appears(&env, &sb, "/tmp/keys")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_edited_back_to_something_harmless_is_allowed() -> Result<()> {
    let env = Env::new("sd-edit");
    let (serve, sb, _events) = started(&env, &ARGS).await?;
    let type_ = |t: &str| computer(&sb, json!({"action": "type", "text": t}));
    let key = |k: &str| computer(&sb, json!({"action": "key", "text": k}));
    // ctrl+u throws the whole line away.
    allowed(&serve, "computer", type_("rm -rf /tmp/nothing")).await?;
    allowed(&serve, "computer", key("ctrl+u")).await?;
    allowed(&serve, "computer", type_("echo one > /tmp/after-ctrl-u\n")).await?;
    appears(&env, &sb, "/tmp/after-ctrl-u")?;
    // Backspace takes back what it deletes.
    allowed(&serve, "computer", type_("touch /tmp/no")).await?;
    for _ in 0.."touch /tmp/no".len() {
        allowed(&serve, "computer", key("BackSpace")).await?;
    }
    allowed(&serve, "computer", type_("echo two > /tmp/after-backspace")).await?;
    allowed(&serve, "computer", key("Return")).await?;
    appears(&env, &sb, "/tmp/after-backspace")?;
    ensure!(!exists(&env, &sb, "/tmp/no"), "the deleted command ran");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_operator_drove_the_first_submitted_line_asks_until_cleared() -> Result<()> {
    let env = Env::new("sd-human");
    let (serve, sb, mut events) = started(&env, &ARGS).await?;
    let lease_path = format!("/sandboxes/{sb}/lease");
    let (status, v) = serve.post(&lease_path, json!({"command": "take"})).await?;
    ensure!(status == 200, "{v}");
    let (status, v) = serve
        .post(
            &format!("/sandboxes/{sb}/input"),
            json!({"action": {"action": "type", "text": "touch /tmp/by-human"}}),
        )
        .await?;
    ensure!(status == 204, "{v}");
    let (status, v) = serve.post(&lease_path, json!({"command": "hand_back"})).await?;
    ensure!(status == 200, "{v}");
    // The first call after the handback gets the fresh screen instead of running.
    let agent = serve.agent().await?;
    let first = agent
        .call("computer", computer(&sb, json!({"action": "screenshot"})))
        .await?;
    ensure!(text(&first).contains("control came back"), "{}", text(&first));
    // The human left text on the line the gateway never saw: submitting it asks.
    let (call, ask) = serve
        .ask(
            &mut events,
            "computer",
            computer(&sb, json!({"action": "key", "text": "Return"})),
        )
        .await?;
    let line = &ask["approval"]["terminal"]["lines"][0];
    assert!(
        line["unknown"]
            .as_str()
            .unwrap_or_default()
            .contains("an operator drove the sandbox"),
        "{ask}"
    );
    deny(&serve, &sb, &ask, call).await?;
    ensure!(
        !exists(&env, &sb, "/tmp/by-human"),
        "the human's line ran unapproved"
    );
    // ctrl+c clears it: the line is known again and harmless commands run without asking.
    allowed(
        &serve,
        "computer",
        computer(&sb, json!({"action": "key", "text": "ctrl+c"})),
    )
    .await?;
    allowed(
        &serve,
        "computer",
        computer(
            &sb,
            json!({"action": "type", "text": "echo clear > /tmp/after-clear\n"}),
        ),
    )
    .await?;
    appears(&env, &sb, "/tmp/after-clear")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_held_during_a_click_is_judged_like_a_key_press() -> Result<()> {
    let env = Env::new("sd-hold");
    let (serve, sb, mut events) = started(&env, &ARGS).await?;
    allowed(
        &serve,
        "computer",
        computer(&sb, json!({"action": "type", "text": "touch /tmp/held"})),
    )
    .await?;
    let (call, ask) = serve
        .ask(
            &mut events,
            "computer",
            computer(
                &sb,
                json!({"action": "left_click", "coordinate": [640, 400], "text": "Return"}),
            ),
        )
        .await?;
    assert_eq!(command_lines(&ask), ["touch /tmp/held"], "{ask}");
    deny(&serve, &sb, &ask, call).await?;
    ensure!(!exists(&env, &sb, "/tmp/held"), "the held Return ran the line");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_redirected_into_a_shell_start_up_file_asks() -> Result<()> {
    let env = Env::new("sd-write");
    let (serve, sb, mut events) = started(&env, &ARGS).await?;
    let (call, ask) = serve
        .ask(
            &mut events,
            "computer",
            computer(
                &sb,
                json!({"action": "type", "text": "echo 'touch /tmp/rc' >> ~/.bashrc\n"}),
            ),
        )
        .await?;
    assert!(rules(&ask).contains(&"writes-outside-tmp".to_string()), "{ask}");
    deny(&serve, &sb, &ask, call).await?;
    ensure!(
        !env.guest_sh(&sb, "cat /root/.bashrc 2>/dev/null || true")?
            .contains("/tmp/rc"),
        "the start-up file was written"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_that_run_programs_or_send_input_ask() -> Result<()> {
    let env = Env::new("sd-exec");
    let (serve, sb, mut events) = started(&env, &ARGS).await?;
    for (argv, rule) in [
        (
            json!(["xdotool", "type", "touch /tmp/injected\n"]),
            "input-injection",
        ),
        (
            json!([
                "find",
                "/tmp",
                "-maxdepth",
                "0",
                "-exec",
                "sh",
                "-c",
                "touch /tmp/found",
                ";"
            ]),
            "find-runs-or-deletes",
        ),
        (
            json!(["find", "/tmp", "-name", "nothing-here", "-delete"]),
            "find-runs-or-deletes",
        ),
    ] {
        let (call, ask) = serve
            .ask(&mut events, "exec", json!({"sandbox": sb, "argv": argv}))
            .await?;
        assert!(rules(&ask).contains(&rule.to_string()), "{argv}: {ask}");
        deny(&serve, &sb, &ask, call).await?;
    }
    ensure!(!exists(&env, &sb, "/tmp/injected") && !exists(&env, &sb, "/tmp/found"));
    // find that only looks is still allowed.
    allowed(
        &serve,
        "exec",
        json!({"sandbox": sb, "argv": ["find", "/tmp", "-maxdepth", "1", "-name", "*.txt"]}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paste_into_the_terminal_asks_showing_what_it_inserts() -> Result<()> {
    let env = Env::new("sd-paste");
    let (serve, sb, mut events) = started(&env, &ARGS).await?;
    // Put a command on the terminal's first row and select that row (a triple click): xterm owns
    // the primary selection now.
    allowed(
        &serve,
        "computer",
        computer(&sb, json!({"action": "type", "text": "clear\n"})),
    )
    .await?;
    allowed(
        &serve,
        "computer",
        computer(&sb, json!({"action": "type", "text": "touch /tmp/pasted"})),
    )
    .await?;
    allowed(
        &serve,
        "computer",
        computer(&sb, json!({"action": "triple_click", "coordinate": [40, 8]})),
    )
    .await?;
    allowed(
        &serve,
        "computer",
        computer(&sb, json!({"action": "key", "text": "ctrl+c"})),
    )
    .await?;
    for paste in [
        json!({"action": "middle_click", "coordinate": [640, 400]}),
        json!({"action": "key", "text": "shift+Insert"}),
    ] {
        let (call, ask) = serve
            .ask(&mut events, "computer", computer(&sb, paste.clone()))
            .await?;
        let shown = ask["approval"]["terminal"]["paste"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(shown.contains("touch /tmp/pasted"), "{paste}: {ask}");
        assert_eq!(
            ask["approval"]["terminal"]["paste"]["source"],
            "primary selection"
        );
        deny(&serve, &sb, &ask, call).await?;
    }
    ensure!(!exists(&env, &sb, "/tmp/pasted"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_edit_into_a_password_window_is_judged_with_its_title() -> Result<()> {
    let env = Env::new("sd-title");
    std::fs::create_dir_all(&env.root)?;
    let policy = env.root.join("policy.cedar");
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../policy/default.cedar"))?;
    std::fs::write(
        &policy,
        format!(
            "{shipped}\n@id(\"secret-in-password-window\") @ask(\"a secret typed into a password window\")\n\
             permit (principal, action == Action::\"type\", resource)\n\
             when {{ context.window_title like \"*assword*\" && context.text like \"*secret*\" }};\n"
        ),
    )?;
    let policy = policy.display().to_string();
    let mut args = ARGS.to_vec();
    args.extend(["--policy", &policy]);
    let (serve, sb, mut events) = started(&env, &args).await?;
    // The terminal's title becomes "Password required" (an xterm title escape, printed by printf).
    allowed(
        &serve,
        "computer",
        computer(
            &sb,
            json!({"action": "type", "text": "printf '\\033]0;Password required\\007'\n"}),
        ),
    )
    .await?;
    let (call, ask) = serve
        .ask(
            &mut events,
            "computer",
            computer(&sb, json!({"action": "type", "text": "hello"})),
        )
        .await?;
    assert_eq!(rules(&ask), ["typing-into-a-password-field"], "{ask}");
    serve
        .decide(
            &sb,
            approval_id(&ask)?,
            json!({"decision": "edit", "computer": {"action": "type", "text": "my secret"}}),
        )
        .await?;
    // The edit lands in the same window: the rule on its title applies, and asks again.
    let again = events
        .next_of("approval_requested", Duration::from_secs(30))
        .await?;
    assert!(
        rules(&again).contains(&"secret-in-password-window".to_string()),
        "{again}"
    );
    assert_eq!(again["approval"]["action"]["text"], "my secret");
    serve
        .decide(
            &sb,
            approval_id(&again)?,
            json!({"decision": "deny", "reason": "no secrets"}),
        )
        .await?;
    let r = outcome(call).await?;
    assert!(r.is_error && text(&r).contains("no secrets"), "{}", text(&r));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_on_mcp_gets_403_and_a_loopback_one_works() -> Result<()> {
    let env = Env::new("sd-origin");
    let serve = Serve::start(&env, &["--no-sandbox"])?;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "origin-test", "version": "1"}}
    });
    let http = reqwest::Client::new();
    let post = |origin: &str| {
        http.post(serve.mcp_url())
            .bearer_auth(&serve.agent_token)
            .header("Origin", origin)
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
    };
    let r = post("http://evil.example").await?;
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await?;
    assert_eq!(body["code"], "forbidden_origin", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("http://evil.example"),
        "{body}"
    );
    let r = post(&serve.base).await?;
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    Ok(())
}
