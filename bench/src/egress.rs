//! `airlock bench egress`: the egress gateway against real sandboxes, per backend — download
//! throughput through the gateway as a ratio of the same channel's exec-output throughput (the
//! figure `bench boot` reports as channel throughput), tunnel-open
//! latency for an allowed host (guest connects to its proxy → the upstream accepted and the
//! tunnel is open), ask → card at an operator's WebSocket, and the latency of an allowed agent
//! action while a download saturates the channel (against the same action idle).
//!
//! The upstream is an HTTP server this benchmark starts on 127.0.0.1, reached as `bench.test`
//! through the gateway's resolver map; nothing leaves the machine.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_domain::EgressResolution;
use airlock_host::{Host, HostOptions};
use airlock_policy::{Decision, Policy};
use airlock_protocol::ExecRequest;
use airlock_sandbox::GuestClient;
use airlock_supervisor::api::CreateRequest;
use airlock_supervisor::{ActionRequest, AgentCall, AgentId, Config};
use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::percentile;

/// Bytes per download sample.
const DOWNLOAD: usize = 64 << 20;
/// Bytes per raw-channel sample (exec output; its cap is 8 MiB).
const RAW: u32 = 8 << 20;

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// An HTTP upstream on 127.0.0.1: `GET /bytes/N` answers N bytes; anything else a short body.
fn upstream() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind the benchmark's upstream")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut r = BufReader::new(conn.try_clone()?);
                let mut line = String::new();
                r.read_line(&mut line)?;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h)? == 0 || h == "\r\n" {
                        break;
                    }
                }
                let n = line
                    .split(' ')
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/bytes/"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(2);
                let mut w = std::io::BufWriter::with_capacity(1 << 20, conn);
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
                )?;
                let block = vec![b'x'; 1 << 16];
                let mut left = n;
                while left > 0 {
                    let k = left.min(block.len());
                    w.write_all(&block[..k])?;
                    left -= k;
                }
                w.flush()
            });
        }
    });
    Ok(port)
}

fn policy() -> Result<Policy> {
    let shipped = airlock_policy::DEFAULT_POLICY;
    let special = "when { context.resolved && context.address_class != \"public\" };";
    if !shipped.contains(special) {
        bail!("the shipped policy's special-address rule changed; update the benchmark");
    }
    let text = format!(
        "{}\n\n@id(\"bench-upstream\")\npermit (principal, action == Action::\"connect\", resource)\n\
         when {{ context.host == \"bench.test\" }};\n",
        shipped.replace(
            special,
            "when { context.resolved && context.address_class != \"public\" }\nunless { context.host == \"bench.test\" };"
        )
    );
    Ok(Policy::new(&text, Decision::Ask)?)
}

async fn exec(guest: &Arc<GuestClient>, script: String, timeout_ms: u32) -> Result<String> {
    let g = guest.clone();
    let r = tokio::task::spawn_blocking(move || {
        g.exec(ExecRequest {
            argv: vec!["sh".into(), "-c".into(), script],
            stdin: vec![],
            timeout_ms,
            output_cap: RAW,
        })
    })
    .await??;
    if r.exit_code != Some(0) {
        bail!(
            "a guest command failed ({:?}): {}",
            r.exit_code,
            String::from_utf8_lossy(&r.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&r.stdout).into_owned())
}

/// Runs the benchmark on each backend this host can run.
pub fn run(samples: usize) -> Result<Value> {
    let samples = samples.max(5);
    let state = tempfile::tempdir().context("a scratch state directory")?;
    // The host reads its state directory from the environment; nothing else runs yet.
    std::env::set_var("AIRLOCK_STATE_DIR", state.path());
    let port = upstream()?;
    let mut config = Config::new(airlock_host::keeper_command()?);
    config.approval_timeout = Duration::from_secs(60);
    config
        .egress_resolver
        .map
        .insert("bench.test".into(), std::net::IpAddr::from([127, 0, 0, 1]));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let host = Host::start(HostOptions {
            listen: "127.0.0.1:0".parse()?,
            policy: policy()?,
            config,
            ui_dir: None,
            mcp_origins: Default::default(),
        })
        .await?;
        let facts = airlock_sandbox::HostFacts::probe();
        let mut out = serde_json::Map::new();
        out.insert(
            "host".into(),
            json!({"accel": facts.accel().0.to_string(), "download_bytes": DOWNLOAD, "samples": samples}),
        );
        for backend in ["gvisor", "microvm"] {
            let b = match backend {
                "gvisor" => airlock_sandbox::BackendChoice::Gvisor,
                _ => airlock_sandbox::BackendChoice::Microvm,
            };
            let Ok(placed) = airlock_sandbox::place(b, &facts) else {
                continue;
            };
            let key = format!(
                "{}{}",
                placed.backend,
                placed.accel.map(|a| format!("_{a}")).unwrap_or_default()
            );
            let figures = one(&host, backend, port, samples)
                .await
                .with_context(|| format!("benchmarking egress on {key}"))?;
            out.insert(key, figures);
        }
        host.shutdown().await;
        Ok(Value::Object(out))
    })
}

async fn one(host: &Host, backend: &str, port: u16, samples: usize) -> Result<Value> {
    let spec = CreateRequest {
        backend: Some(backend.parse()?),
        profile: Some(airlock_guest_image::Profile::Minimal),
        ..CreateRequest::default()
    }
    .spec()?;
    let info = host
        .sup
        .create_sandbox(spec, &airlock_ledger::Actor::operator("bench"))
        .await?;
    let id = info.id.clone();
    let result = figures(host, &id, port, samples).await;
    host.sup
        .destroy_sandbox(&id, &airlock_ledger::Actor::operator("bench"))
        .await?;
    result
}

async fn figures(host: &Host, id: &str, port: u16, samples: usize) -> Result<Value> {
    let session = host.sup.session(id).await?;
    let guest = session.guest.clone();

    // The baseline over the same channel: 8 MiB of exec output in one reply (what `bench boot`
    // calls channel throughput).
    let mut raw = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = exec(&guest, format!("head -c {RAW} /dev/zero"), 120_000).await?;
        raw.push(out.len() as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    // Downloads through the proxy and the gateway (curl's own figure, in the guest).
    let mut down = Vec::new();
    for _ in 0..3 {
        let out = exec(
            &guest,
            format!(
                "curl -sS -o /dev/null -w '%{{speed_download}}' http://bench.test:{port}/bytes/{DOWNLOAD}"
            ),
            300_000,
        )
        .await?;
        down.push(out.trim().parse::<f64>().context("curl's speed")? / 1e6);
    }
    let raw_mb_s = percentile(&raw, 0.5, 2).context("no exec output samples")?;
    let down_mb_s = percentile(&down, 0.5, 2).context("no download samples")?;

    // Tunnel open: the guest connects to its proxy, CONNECTs, the gateway decides, dials, replies.
    let out = exec(
        &guest,
        format!(
            "for i in $(seq {samples}); do curl -sS -p -x http://127.0.0.1:3128 -o /dev/null \
             -w '%{{time_pretransfer}}\\n' http://bench.test:{port}/bytes/1; done"
        ),
        300_000,
    )
    .await?;
    let tunnel: Vec<f64> = out
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(|s| s * 1000.0)
        .collect();

    // Ask → card at an operator's WebSocket (from the proxy request's arrival on the host).
    let url = format!(
        "ws://{}/api/events?token={}",
        host.addr, host.tokens.operator_token
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let _snapshot = ws.next().await;
    let mut cards = Vec::new();
    for i in 0..samples.min(10) {
        let name = format!("ask{i}.bench.test");
        let g = guest.clone();
        let script = format!("curl -s -m 30 http://{name}:{port}/ >/dev/null; true");
        let call = tokio::spawn(async move { exec(&g, script, 60_000).await });
        let (latency, ask) = loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .context("no egress_asked event within 30 s")?
                .context("the event stream ended")??;
            let Ok(text) = msg.to_text() else { continue };
            let v: Value = serde_json::from_str(text)?;
            if v["event"]["type"] == "egress_asked" && v["event"]["ask"]["destinations"][0]["host"] == name {
                let at = airlock_supervisor::now_ms();
                let requested = v["event"]["ask"]["requested_ms"].as_u64().unwrap_or(at);
                break (
                    at.saturating_sub(requested) as f64,
                    v["event"]["ask"]["id"].as_u64(),
                );
            }
        };
        cards.push(latency);
        if let Some(ask) = ask {
            host.sup
                .resolve_egress(id, ask, "bench", EgressResolution::Deny { reason: None })
                .await?;
        }
        call.await??;
    }

    // An allowed agent action's round trip (gate + guest), idle and while a download saturates
    // the same channel.
    let act = |agent: AgentId| {
        let sup = host.sup.clone();
        let id = id.to_string();
        async move {
            let t = Instant::now();
            sup.act(AgentCall {
                sandbox: Some(id),
                agent,
                epoch: None,
                request: ActionRequest::Anthropic(json!({"action": "cursor_position"})),
            })
            .await?;
            Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64() * 1000.0)
        }
    };
    let agent = AgentId {
        agent: "bench".into(),
        principal: "bench".into(),
    };
    let mut idle = Vec::new();
    for _ in 0..samples {
        idle.push(act(agent.clone()).await?);
    }
    let g = guest.clone();
    let download = tokio::spawn(async move {
        exec(
            &g,
            format!(
                "curl -sS -o /dev/null http://bench.test:{port}/bytes/{}",
                1u64 << 32
            ),
            600_000,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut busy = Vec::new();
    for _ in 0..samples {
        busy.push(act(agent.clone()).await?);
    }
    download.abort();
    let _ = exec(&guest, "pkill curl; true".into(), 10_000).await;

    Ok(json!({
        "channel_exec_output_mb_s": round1(raw_mb_s),
        "download_through_gateway_mb_s": round1(down_mb_s),
        "download_to_exec_output_ratio": (down_mb_s / raw_mb_s * 100.0).round() / 100.0,
        "tunnel_open_ms_p50": percentile(&tunnel, 0.5, 2),
        "tunnel_open_ms_p95": percentile(&tunnel, 0.95, 2),
        "ask_to_card_ms_p50": percentile(&cards, 0.5, 2),
        "ask_to_card_ms_p95": percentile(&cards, 0.95, 2),
        "allowed_action_ms_p50_idle": percentile(&idle, 0.5, 2),
        "allowed_action_ms_p95_idle": percentile(&idle, 0.95, 2),
        "allowed_action_ms_p50_during_download": percentile(&busy, 0.5, 2),
        "allowed_action_ms_p95_during_download": percentile(&busy, 0.95, 2),
    }))
}
