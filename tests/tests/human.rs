//! An agent asking for a human (`request_human`) end to end: `airlock serve` with a real gVisor
//! sandbox and a real SQLite ledger, Airlock's own MCP client as the agent, the operator over the
//! operator API. The call waits while operators see the request; an operator takes control, types
//! into the sandbox's terminal and hands back with a note, and the call returns the note and a
//! fresh screenshot; a request nobody answers ends with a clear "no operator answered". Each test
//! has its own serve and sandbox.

use std::time::Duration;

use airlock_domain::HelpKind;
use airlock_records::{HumanRequestRecord, Record};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::{Pending, Serve};
use airlock_test_kit::e2e::{poll, poll_async, Env};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

const SERVE_ARGS: [&str; 4] = ["--backend", "gvisor", "--profile", "minimal"];

/// A serve with its sandbox, its terminal ready for typing.
async fn start(name: &str) -> Result<(Env, Serve, String)> {
    let env = Env::new(name);
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let sb = serve.only_sandbox().await?;
    serve.wait_terminal(&env, &sb, Duration::from_secs(120)).await?;
    Ok((env, serve, sb))
}

/// The agent calls `request_human` with `args` from a client of its own; the call waits.
async fn ask_for_a_human(serve: &Serve, args: Value) -> Result<Pending> {
    let agent = serve.agent().await?;
    Ok(tokio::spawn(
        async move { agent.call("request_human", args).await },
    ))
}

/// The requests for a human in the operators' snapshot.
async fn waiting(serve: &Serve) -> Result<Vec<Value>> {
    let (status, snapshot) = serve.get("/snapshot").await?;
    ensure!(status == 200, "snapshot: {status} {snapshot}");
    Ok(snapshot["human_requests"].as_array().cloned().unwrap_or_default())
}

/// `POST /api/sandboxes/ID/lease` that must succeed.
async fn lease(serve: &Serve, sb: &str, body: Value) -> Result<Value> {
    let (status, v) = serve.post(&format!("/sandboxes/{sb}/lease"), body).await?;
    ensure!(status == 200, "lease: {status} {v}");
    Ok(v)
}

/// `POST /api/sandboxes/ID/input` with an Anthropic computer-use action, which must be accepted.
async fn input(serve: &Serve, sb: &str, action: Value) -> Result<()> {
    let (status, v) = serve
        .post(&format!("/sandboxes/{sb}/input"), json!({"action": action}))
        .await?;
    ensure!(status == 204, "input {action}: {status} {v}");
    Ok(())
}

/// The human-request records on the sandbox's ledger.
async fn human_records(serve: &Serve, sb: &str) -> Result<Vec<HumanRequestRecord>> {
    Ok(records(&serve.ledger(Some(sb)).await?)?
        .into_iter()
        .filter_map(|(_, r)| match r {
            Record::HumanRequest(h) => Some(h),
            _ => None,
        })
        .collect())
}

/// The agent asks for a sign-in; the operator takes control, types a command into the terminal
/// (which really runs there), and hands back with a note. The call returns who answered, the note,
/// the hand-back summary and the new epoch, with a fresh PNG of the screen; the ledger has the
/// request and its answer with the note, and never the typed text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_human_returns_the_operators_note_and_a_fresh_screen_after_they_typed() -> Result<()> {
    let (env, serve, sb) = start("human-answered").await?;
    let mut events = serve.events().await?;
    let call = ask_for_a_human(
        &serve,
        json!({"sandbox": sb, "reason": "sign in to the bank as alice", "kind": "login", "wait_s": 300}),
    )
    .await?;
    let asked = events.next_of("human_requested", Duration::from_secs(60)).await?;
    let request = &asked["request"];
    assert_eq!(request["sandbox"], sb.as_str(), "{asked}");
    assert_eq!(request["reason"], "sign in to the bank as alice");
    assert_eq!(request["kind"], "login");
    let wait = request["deadline_ms"].as_u64().context("deadline")?
        - request["asked_ms"].as_u64().context("asked")?;
    assert_eq!(wait, 300_000, "{asked}");
    let id = request["request"].as_u64().context("request id")?;
    let frame = request["frame"].as_str().context("frame")?;
    let shown = reqwest::Client::new()
        .get(format!("{}/api/blobs/{frame}", serve.base))
        .bearer_auth(&serve.operator_token)
        .send()
        .await?;
    ensure!(shown.status() == 200, "the screen when asked: {}", shown.status());
    assert!(
        shown.bytes().await?.starts_with(b"\x89PNG"),
        "operators see the screen as it was"
    );

    let took = lease(&serve, &sb, json!({"command": "take"})).await?;
    input(
        &serve,
        &sb,
        json!({"action": "type", "text": "echo hunter2 > /tmp/typed-by-human"}),
    )
    .await?;
    input(&serve, &sb, json!({"action": "key", "text": "Return"})).await?;
    // The typing reached the terminal: the command it made ran in the sandbox.
    let typed = poll(
        "the typed command to write its file",
        Duration::from_secs(20),
        || Ok(env.guest_sh(&sb, "cat /tmp/typed-by-human").ok()),
    )
    .inspect_err(|_| {
        // What the terminal shows, for the post-mortem.
        let _ = std::fs::create_dir_all("/tmp/airlock-test-logs");
        env.airlock(&[
            "sandbox",
            "screenshot",
            &sb,
            "--output",
            "/tmp/airlock-test-logs/human-typed.png",
        ]);
    })?;
    assert_eq!(typed, "hunter2\n");
    assert!(
        !call.is_finished(),
        "the agent still waits while the operator drives"
    );
    let note = "signed in as alice; the password is in";
    let back = lease(&serve, &sb, json!({"command": "hand_back", "note": note})).await?;

    let answer = tokio::time::timeout(Duration::from_secs(60), call).await???;
    ensure!(!answer.is_error, "request_human failed: {}", answer.text());
    let text = answer.json().context("a JSON answer")?;
    assert_eq!(text["answered_by"], serve.operator.as_str(), "{text}");
    assert_eq!(text["note"], note, "{text}");
    let summary = text["summary"].as_str().context("summary")?;
    assert!(summary.contains(note), "{summary}");
    let epoch = text["epoch"].as_u64().context("epoch")?;
    assert!(
        epoch > took["epoch"].as_u64().context("take epoch")?,
        "the agent acts under the epoch after the hand-back: {text} {took} {back}"
    );
    assert_eq!(answer.images.len(), 1, "a fresh screenshot comes with the answer");
    assert_eq!(answer.images[0].mime_type, "image/png");
    assert!(
        answer.images[0].decode("request_human")?.starts_with(b"\x89PNG"),
        "the screenshot is a PNG"
    );
    // The agent's next action runs at once: the hand-back was delivered with the answer.
    let next = serve
        .agent()
        .await?
        .call(
            "exec",
            json!({"sandbox": sb, "argv": ["wc", "-c", "/tmp/typed-by-human"]}),
        )
        .await?;
    ensure!(!next.is_error, "the agent drives again: {}", next.text());
    assert!(next.text().contains("8 /tmp/typed-by-human"), "{}", next.text());

    let ended = events
        .next_of("human_request_ended", Duration::from_secs(10))
        .await?;
    assert_eq!(
        ended["outcome"],
        json!({"outcome": "answered", "operator": serve.operator})
    );
    let recorded = human_records(&serve, &sb).await?;
    match recorded.as_slice() {
        [HumanRequestRecord::Requested {
            request,
            reason,
            kind,
            ..
        }, HumanRequestRecord::Answered {
            request: answered,
            operator,
            note: said,
            frame,
        }] => {
            assert_eq!((*request, *answered), (id, id));
            assert_eq!(reason, "sign in to the bank as alice");
            assert_eq!(*kind, HelpKind::Login);
            assert_eq!(operator, &serve.operator);
            assert_eq!(said.as_deref(), Some(note));
            assert_eq!(frame.len(), 64, "the screen the agent was given is a blob");
        }
        other => panic!("expected requested then answered, got {other:?}"),
    }
    let with_it: Vec<Value> = serve
        .ledger(None)
        .await?
        .into_iter()
        .filter(|e| e.to_string().contains("hunter2"))
        .collect();
    assert_eq!(
        with_it,
        Vec::<Value>::new(),
        "the operator's typing is not on the ledger"
    );
    env.ledger_verifies()
}

/// A request nobody answers ends when its wait is up: the agent gets a tool error saying no
/// operator answered (and what to do), the request leaves the operators' view, and the ledger
/// records that it timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_answers_says_so_after_its_wait_and_is_recorded_as_timed_out() -> Result<()> {
    let (env, serve, sb) = start("human-timeout").await?;
    let mut events = serve.events().await?;
    let call = ask_for_a_human(
        &serve,
        json!({"reason": "solve the CAPTCHA", "kind": "captcha", "wait_s": 3}),
    )
    .await?;
    let asked = events.next_of("human_requested", Duration::from_secs(60)).await?;
    assert_eq!(asked["request"]["sandbox"], sb.as_str(), "the only sandbox");
    let answer = tokio::time::timeout(Duration::from_secs(60), call).await???;
    assert!(answer.is_error, "{}", answer.text());
    assert!(
        answer.text().contains("no operator answered within 3 s"),
        "{}",
        answer.text()
    );
    let ended = events
        .next_of("human_request_ended", Duration::from_secs(10))
        .await?;
    assert_eq!(ended["outcome"], json!({"outcome": "timed_out"}));
    assert_eq!(waiting(&serve).await?, Vec::<Value>::new());
    let recorded = human_records(&serve, &sb).await?;
    assert!(
        matches!(
            recorded.as_slice(),
            [HumanRequestRecord::Requested { request: a, kind: HelpKind::Captcha, .. },
             HumanRequestRecord::TimedOut { request: b }] if a == b
        ),
        "{recorded:?}"
    );
    env.ledger_verifies()
}

/// While the agent waits, its request is in the snapshot every console starts from (with the
/// reason, kind and deadline); once an operator has answered, it is gone from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_is_in_the_snapshot_until_an_operator_answers_it() -> Result<()> {
    let (env, serve, sb) = start("human-snapshot").await?;
    assert_eq!(waiting(&serve).await?, Vec::<Value>::new());
    let call = ask_for_a_human(
        &serve,
        json!({"sandbox": sb, "reason": "confirm the payment of 12 EUR", "kind": "confirm", "wait_s": 300}),
    )
    .await?;
    let shown = poll_async("the request in the snapshot", Duration::from_secs(60), || async {
        let w = waiting(&serve).await?;
        Ok((!w.is_empty()).then_some(w))
    })
    .await?;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["sandbox"], sb.as_str());
    assert_eq!(shown[0]["reason"], "confirm the payment of 12 EUR");
    assert_eq!(shown[0]["kind"], "confirm");
    assert!(shown[0]["deadline_ms"].as_u64() > shown[0]["asked_ms"].as_u64());
    // A console joining now gets it in its first message too.
    let (status, again) = serve.get("/snapshot").await?;
    assert_eq!(status, 200);
    assert_eq!(again["human_requests"], json!(shown));

    lease(&serve, &sb, json!({"command": "take"})).await?;
    assert_eq!(
        waiting(&serve).await?.len(),
        1,
        "taking control is not yet an answer"
    );
    lease(&serve, &sb, json!({"command": "hand_back", "note": "confirmed"})).await?;
    let answer = tokio::time::timeout(Duration::from_secs(60), call).await???;
    ensure!(!answer.is_error, "{}", answer.text());
    assert_eq!(waiting(&serve).await?, Vec::<Value>::new(), "answered: gone");
    env.ledger_verifies()
}

/// A request whose sandbox goes away while it waits is abandoned: the agent's call ends with an
/// error, the request leaves the operators' view, and the ledger records the abandonment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_sandbox_is_destroyed_while_it_waits_is_recorded_as_abandoned() -> Result<()> {
    let (env, serve, sb) = start("human-abandoned").await?;
    let mut events = serve.events().await?;
    let call = ask_for_a_human(
        &serve,
        json!({"sandbox": sb, "reason": "approve the wire transfer", "wait_s": 300}),
    )
    .await?;
    events.next_of("human_requested", Duration::from_secs(60)).await?;
    let gone = reqwest::Client::new()
        .delete(format!("{}/api/sandboxes/{sb}", serve.base))
        .bearer_auth(&serve.operator_token)
        .send()
        .await?;
    ensure!(gone.status() == 204, "destroy: {}", gone.status());
    let answer = tokio::time::timeout(Duration::from_secs(60), call).await??;
    let failed = match answer {
        Ok(outcome) => outcome.is_error,
        Err(_) => true,
    };
    assert!(failed, "the call does not succeed without its sandbox");
    let ended = events
        .next_of("human_request_ended", Duration::from_secs(10))
        .await?;
    assert_eq!(ended["outcome"], json!({"outcome": "abandoned"}));
    assert_eq!(waiting(&serve).await?, Vec::<Value>::new());
    let recorded = poll_async(
        "the abandonment on the ledger",
        Duration::from_secs(10),
        || async {
            let r = human_records(&serve, &sb).await?;
            Ok((r.len() >= 2).then_some(r))
        },
    )
    .await?;
    assert!(
        matches!(
            recorded.as_slice(),
            [HumanRequestRecord::Requested { request: a, .. },
             HumanRequestRecord::Abandoned { request: b, .. }] if a == b
        ),
        "{recorded:?}"
    );
    env.ledger_verifies()
}
