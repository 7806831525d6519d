//! `airlock bench gateway`: the supervisor's own cost, measured against an in-process guest that
//! answers instantly over the real protocol, so the guest's time is not counted.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_domain::{Action, Screen};
use airlock_ledger::{Actor, Draft, EntryKind, Ledger};
use airlock_policy::{Policy, Subject};
use airlock_protocol::{
    encode_frame, ExecResult, FrameDecoder, GuestMessage, HostMessage, Input, Pixels, Reply, Request,
    PROTOCOL_VERSION,
};
use airlock_sandbox::{GuestClient, Store};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::gateway::{ActionRequest, AgentCall, AgentId};
use crate::tokens::Tokens;
use crate::{Config, ImageSource, Supervisor};

/// A guest that answers every request at once: a flat screen, inputs done, exec succeeds.
pub fn instant_guest(screen: Screen) -> std::io::Result<UnixStream> {
    let (host, mut guest) = UnixStream::pair()?;
    std::thread::spawn(move || {
        let mut dec = FrameDecoder::default();
        let mut buf = vec![0u8; 64 * 1024];
        let pixels = vec![0x40u8; usize::from(screen.width) * usize::from(screen.height) * 4];
        loop {
            let frame = loop {
                match dec.next_frame() {
                    Ok(Some(f)) => break f,
                    Ok(None) => {}
                    Err(_) => return,
                }
                match guest.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => dec.extend(&buf[..n]),
                }
            };
            let Ok(HostMessage::Request(req)) = frame.decode::<HostMessage>() else {
                continue;
            };
            let reply = match req {
                Request::Hello { .. } => Reply::Hello {
                    protocol: PROTOCOL_VERSION,
                    agent_version: "instant".into(),
                    screen_w: screen.width,
                    screen_h: screen.height,
                },
                Request::Ping => Reply::Pong,
                Request::Screenshot => {
                    Reply::Screenshot(Pixels::compress(0, 0, screen.width, screen.height, &pixels))
                }
                Request::Input(Input::QueryPointer) => Reply::Pointer { x: 1, y: 1 },
                Request::Input(_) => Reply::Done,
                Request::Exec(_) => Reply::Exec(ExecResult {
                    exit_code: Some(0),
                    signal: None,
                    timed_out: false,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    stdout_truncated: false,
                    stderr_truncated: false,
                    duration_ms: 0,
                }),
                Request::StartFrames { .. } => Reply::StreamEnded,
                Request::AttachEgress => Reply::Done,
                Request::Window { .. } => Reply::Window(airlock_protocol::WindowInfo {
                    id: 1,
                    title: "bench".into(),
                    class: "XTerm".into(),
                    instance: "xterm".into(),
                }),
                Request::Selection { .. } => Reply::Selection {
                    text: String::new(),
                    truncated: false,
                },
            };
            let Ok(bytes) = encode_frame(frame.id, &GuestMessage::Reply(reply)) else {
                return;
            };
            if guest.write_all(&bytes).is_err() {
                return;
            }
        }
    });
    Ok(host)
}

struct NoImages;

impl ImageSource for NoImages {
    fn image(
        &self,
        _profile: &str,
        _progress: &mut dyn FnMut(&str),
    ) -> Result<airlock_guest_image::Image, String> {
        Err("the benchmark creates no sandboxes".into())
    }
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    (v[i] * 10.0).round() / 10.0
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs the benchmark in `dir` (a scratch state directory) with `samples` actions per figure.
pub async fn gateway(dir: &Path, samples: usize) -> Result<Value, String> {
    let samples = samples.max(10);
    let ledger = Ledger::open(&dir.join("ledger"))
        .await
        .map_err(|e| e.to_string())?;
    let policy = Policy::default_policy().map_err(|e| e.to_string())?;
    let (store, _) = Store::open(dir.join("store")).map_err(|e| e.to_string())?;
    let mut config = Config::new(Vec::new());
    config.settle = Duration::ZERO;
    let sup = Supervisor::new(ledger.clone(), policy.clone(), store, Arc::new(NoImages), config);
    let screen = Screen {
        width: 64,
        height: 40,
    };
    let guest = tokio::task::spawn_blocking(move || {
        let s = instant_guest(screen).map_err(|e| e.to_string())?;
        GuestClient::over_unix(s, "bench").map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
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
        sup.act(call).await.map_err(|e| e.to_string())?;
        total.push(micros(t.elapsed()));
    }

    // Its parts.
    let session = sup.session("bench").await.map_err(|e| e.to_string())?;
    let mut guest_parts = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        let a = Action::from_anthropic(&click, screen).map_err(|e| e.to_string())?;
        crate::gateway::execute(&session, &a, Duration::ZERO).await?;
        crate::gateway::capture(&session.guest).await?;
        guest_parts.push(micros(t.elapsed()));
    }
    let action = Action::from_anthropic(&click, screen).map_err(|e| e.to_string())?;
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
    )
    .map_err(|e| e.to_string())?;
    let terminal = crate::terminal::Target {
        window: airlock_protocol::WindowInfo {
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
        std::hint::black_box(crate::terminal::judge(&policy, &who, &typed, &terminal));
        as_command_us.push(micros(t.elapsed()));
    }
    let as_text_p50 = percentile(as_text_us, 0.5);
    let as_command_p50 = percentile(as_command_us, 0.5);
    let mut append_us = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        ledger
            .append(Draft {
                ts_ms: crate::now_ms(),
                sandbox: Some("bench".into()),
                kind: EntryKind::ActionDecided,
                actor: Actor::default(),
                epoch: Some(1),
                policy_hash: None,
                frame_before: None,
                frame_after: None,
                what: json!({"action": action}),
            })
            .await
            .map_err(|e| e.to_string())?;
        append_us.push(micros(t.elapsed()));
    }

    let frame = crate::gateway::capture(&session.guest).await?;
    let mut blob_us = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        ledger.put_blob(&frame.png).await.map_err(|e| e.to_string())?;
        blob_us.push(micros(t.elapsed()));
    }
    let mut session_us = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        let _ = session.admit(None).await.map_err(|e| e.to_string())?;
        session_us.push(micros(t.elapsed()));
    }

    // Proposed → approval event at an operator's WebSocket.
    let approval_ms = approval_latency(&sup, dir, samples.min(30)).await?;

    let total_p50 = percentile(total.clone(), 0.5);
    let guest_p50 = percentile(guest_parts, 0.5);
    let report = json!({
        "samples": samples,
        "allowed_action_total_us_p50": total_p50,
        "allowed_action_total_us_p99": percentile(total, 0.99),
        "instant_guest_input_and_after_frame_us_p50": guest_p50,
        "gateway_overhead_excluding_guest_us_p50": ((total_p50 - guest_p50) * 10.0).round() / 10.0,
        "policy_evaluate_us_p50": percentile(policy_us, 0.5),
        "typed_line_judged_as_text_us_p50": as_text_p50,
        "typed_line_judged_as_terminal_command_us_p50": as_command_p50,
        "typed_line_command_over_text_ratio": ((as_command_p50 / as_text_p50.max(0.001)) * 100.0).round() / 100.0,
        "ledger_durable_append_us_p50": percentile(append_us, 0.5),
        "ledger_appends_per_allowed_action": 2,
        "blob_put_existing_us_p50": percentile(blob_us, 0.5),
        "session_round_trip_us_p50": percentile(session_us, 0.5),
        "approval_event_to_operator_ms_p50": percentile(approval_ms.clone(), 0.5),
        "approval_event_to_operator_ms_p95": percentile(approval_ms, 0.95),
    });
    sup.shutdown().await;
    Ok(report)
}

async fn approval_latency(sup: &Supervisor, dir: &Path, samples: usize) -> Result<Vec<f64>, String> {
    let (tokens, _) = Tokens::load_or_create(&dir.join("tokens.json"), "bench").map_err(|e| e.to_string())?;
    let stop = CancellationToken::new();
    let listener = crate::serve::bind("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.addr;
    let app = crate::serve::app(sup.clone(), tokens.clone(), stop.clone(), None);
    let server = tokio::spawn(crate::serve::run(listener, app, stop.clone()));
    let url = format!("ws://{addr}/api/events?token={}", tokens.operator_token);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| e.to_string())?;
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
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .map_err(|_| "no approval event within 10 s".to_string())?
                .ok_or("the event stream closed")?
                .map_err(|e| e.to_string())?;
            let text = msg.into_text().map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if v["event"]["type"] == "approval_requested" {
                break v["event"]["approval"]["id"]
                    .as_u64()
                    .ok_or("approval without id")?;
            }
        };
        out.push(t.elapsed().as_secs_f64() * 1e3);
        sup.resolve(
            "bench",
            id,
            "bench",
            airlock_domain::Resolution::Deny { reason: None },
        )
        .await
        .map_err(|e| e.to_string())?;
        let _ = act.await;
    }
    let _ = ws
        .send(tokio_tungstenite::tungstenite::Message::Close(None))
        .await;
    stop.cancel();
    let _ = server.await;
    Ok(out)
}
