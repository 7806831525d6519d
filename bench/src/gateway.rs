//! `airlock bench gateway`: the supervisor's own cost, measured against an in-process guest that
//! answers instantly over the real protocol, so the guest's time is not counted.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_domain::{Action, Screen};
use airlock_ledger::{Actor, Draft, EntryKind, Ledger};
use airlock_policy::{Policy, Subject};
use airlock_protocol::WindowInfo;
use airlock_sandbox::{GuestClient, Store};
use airlock_server::serve;
use airlock_server::tokens::Tokens;
use airlock_supervisor::gateway::{capture, execute};
use airlock_supervisor::{terminal, ActionRequest, AgentCall, AgentId, Config, Supervisor};
use airlock_test_kit::{Answers, FakeGuest, NoImages};
use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::percentile;

/// The guest: a flat screen of 0x40, one xterm window, every request answered at once and none
/// kept (so a long run does not grow).
fn instant_guest(screen: Screen) -> Answers {
    Answers {
        fill: 0x40,
        window: WindowInfo {
            id: 1,
            title: "bench".into(),
            class: "XTerm".into(),
            instance: "xterm".into(),
        },
        agent_version: "instant".into(),
        record: false,
        ..Answers::new(screen)
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs the benchmark in `dir` (a scratch state directory) with `samples` actions per figure.
pub async fn run(dir: &Path, samples: usize) -> Result<Value> {
    let samples = samples.max(10);
    let ledger = Ledger::open(&dir.join("ledger")).await?;
    let policy = Policy::default_policy()?;
    let (store, _) = Store::open(dir.join("store"))?;
    let mut config = Config::new(Vec::new());
    config.settle = Duration::ZERO;
    let sup = Supervisor::new(ledger.clone(), policy.clone(), store, Arc::new(NoImages), config);
    let screen = Screen {
        width: 64,
        height: 40,
    };
    let (_guest, host_end) = FakeGuest::start(instant_guest(screen))?;
    let guest = tokio::task::spawn_blocking(move || GuestClient::over_unix(host_end, "bench")).await??;
    sup.attach_guest("bench", screen, guest).await;
    let agent = AgentId {
        agent: "bench".into(),
        principal: "bench".into(),
    };
    let click = json!({"action": "left_click", "coordinate": [10, 10]});

    // The whole gateway path for an allowed action, guest answering instantly.
    let mut total = Vec::new();
    for _ in 0..samples {
        let call = AgentCall {
            sandbox: Some("bench".into()),
            agent: agent.clone(),
            epoch: None,
            request: ActionRequest::Anthropic(click.clone()),
        };
        let t = Instant::now();
        sup.act(call).await?;
        total.push(micros(t.elapsed()));
    }

    // Its parts.
    let session = sup.session("bench").await?;
    let mut guest_parts = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        let a = Action::from_anthropic(&click, screen)?;
        execute(&session, &a, Duration::ZERO).await?;
        capture(&session.guest).await?;
        guest_parts.push(micros(t.elapsed()));
    }
    let action = Action::from_anthropic(&click, screen)?;
    let who = Subject {
        agent: "bench",
        principal: "bench",
        sandbox: "bench",
    };
    let mut policy_us = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        std::hint::black_box(policy.evaluate(&who, &action, airlock_policy::Focus::NONE));
        policy_us.push(micros(t.elapsed()));
    }
    // Typing a command line into a terminal: judged as text alone (the baseline, as before
    // terminal lines were commands), and as the gateway judges it now (the line tracked, parsed,
    // each program it starts evaluated).
    let typed = Action::from_anthropic(
        &json!({"action": "type", "text": "ls -la ~ | grep notes > /tmp/found; echo done\n"}),
        screen,
    )?;
    let terminal = terminal::Target {
        window: WindowInfo {
            id: 1,
            title: "terminal".into(),
            class: "XTerm".into(),
            instance: "xterm".into(),
        },
        line: Some(airlock_shell::Line::empty()),
        paste: None,
    };
    let (mut as_text_us, mut as_command_us) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        let t = Instant::now();
        std::hint::black_box(policy.evaluate(&who, &typed, terminal.focus()));
        as_text_us.push(micros(t.elapsed()));
        let t = Instant::now();
        std::hint::black_box(terminal::judge(&policy, &who, &typed, &terminal));
        as_command_us.push(micros(t.elapsed()));
    }
    let mut append_us = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        ledger
            .append(Draft {
                ts_ms: airlock_supervisor::now_ms(),
                sandbox: Some("bench".into()),
                kind: EntryKind::ActionDecided,
                actor: Actor::default(),
                epoch: Some(1),
                policy_hash: None,
                frame_before: None,
                frame_after: None,
                what: json!({"action": action}),
            })
            .await?;
        append_us.push(micros(t.elapsed()));
    }

    let frame = capture(&session.guest).await?;
    let mut blob_us = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        ledger.put_blob(&frame.png).await?;
        blob_us.push(micros(t.elapsed()));
    }
    let mut session_us = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        let _ = session.admit(None).await?;
        session_us.push(micros(t.elapsed()));
    }

    // Proposed → approval event at an operator's WebSocket.
    let approval_ms = approval_latency(&sup, dir, samples.min(30)).await?;

    // Never empty (at least 10 samples each); 0 keeps the arithmetic total.
    let p = |v: &[f64], q: f64| percentile(v, q, 1).unwrap_or(0.0);
    let total_p50 = p(&total, 0.5);
    let guest_p50 = p(&guest_parts, 0.5);
    let as_text_p50 = p(&as_text_us, 0.5);
    let as_command_p50 = p(&as_command_us, 0.5);
    let report = json!({
        "samples": samples,
        "allowed_action_total_us_p50": total_p50,
        "allowed_action_total_us_p99": p(&total, 0.99),
        "instant_guest_input_and_after_frame_us_p50": guest_p50,
        "gateway_overhead_excluding_guest_us_p50": ((total_p50 - guest_p50) * 10.0).round() / 10.0,
        "policy_evaluate_us_p50": p(&policy_us, 0.5),
        "typed_line_judged_as_text_us_p50": as_text_p50,
        "typed_line_judged_as_terminal_command_us_p50": as_command_p50,
        "typed_line_command_over_text_ratio": ((as_command_p50 / as_text_p50.max(0.001)) * 100.0).round() / 100.0,
        "ledger_durable_append_us_p50": p(&append_us, 0.5),
        "ledger_appends_per_allowed_action": 2,
        "blob_put_existing_us_p50": p(&blob_us, 0.5),
        "session_round_trip_us_p50": p(&session_us, 0.5),
        "approval_event_to_operator_ms_p50": p(&approval_ms, 0.5),
        "approval_event_to_operator_ms_p95": p(&approval_ms, 0.95),
    });
    sup.shutdown().await;
    Ok(report)
}

async fn approval_latency(sup: &Supervisor, dir: &Path, samples: usize) -> Result<Vec<f64>> {
    let (tokens, _) = Tokens::load_or_create(&dir.join("tokens.json"), "bench")?;
    let stop = CancellationToken::new();
    let listener = serve::bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.addr;
    let app = serve::app(
        sup.clone(),
        tokens.clone(),
        stop.clone(),
        None,
        Default::default(),
    );
    let server = tokio::spawn(serve::run(listener, app, stop.clone()));
    let url = format!("ws://{addr}/api/events?token={}", tokens.operator_token);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    ws.next().await; // the snapshot
    let mut out = Vec::new();
    for _ in 0..samples {
        let sup2 = sup.clone();
        let t = Instant::now();
        let act = tokio::spawn(async move {
            sup2.act(AgentCall {
                sandbox: Some("bench".into()),
                agent: AgentId {
                    agent: "bench".into(),
                    principal: "bench".into(),
                },
                epoch: None,
                request: ActionRequest::Exec {
                    argv: vec!["touch".into(), "/tmp/x".into()],
                    stdin: String::new(),
                    timeout_ms: None,
                },
            })
            .await
        });
        let id = loop {
            let Some(msg) = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .context("no approval event within 10 s")?
            else {
                bail!("the event stream closed");
            };
            let v: Value = serde_json::from_str(&msg?.into_text()?)?;
            if v["event"]["type"] == "approval_requested" {
                break v["event"]["approval"]["id"]
                    .as_u64()
                    .context("approval without id")?;
            }
        };
        out.push(t.elapsed().as_secs_f64() * 1e3);
        sup.resolve(
            "bench",
            id,
            "bench",
            airlock_domain::Resolution::Deny { reason: None },
        )
        .await?;
        let _ = act.await;
    }
    let _ = ws
        .send(tokio_tungstenite::tungstenite::Message::Close(None))
        .await;
    stop.cancel();
    let _ = server.await;
    Ok(out)
}
