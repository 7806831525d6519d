//! `airlock bench boot`: per backend, cold start to agent ready and to first frame, screenshot
//! latency, input → damage round trip, channel throughput, idle RSS and how many idle sandboxes
//! fit in memory while 4 GiB stay free.

use std::time::{Duration, Instant};

use airlock_guest_image::Image;
use airlock_protocol::{ExecRequest, Input, Reply};
use airlock_sandbox::{place, BackendChoice, CreateOptions, HostFacts, Store};
use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::percentile;

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Runs the boot benchmark for each backend in `backends` (all runnable ones if empty), booting
/// `image` with the sandbox keeper `keeper` (`airlock __keeper`).
pub fn run(
    store: &Store,
    image: &Image,
    keeper: &[String],
    backends: &[BackendChoice],
    samples: usize,
) -> Result<Value> {
    let facts = HostFacts::probe();
    let mut chosen: Vec<BackendChoice> = backends.to_vec();
    if chosen.is_empty() {
        chosen = [BackendChoice::Gvisor, BackendChoice::Microvm]
            .into_iter()
            .filter(|b| place(*b, &facts).is_ok())
            .collect();
    }
    let mut out = serde_json::Map::new();
    let (accel, why) = facts.accel();
    out.insert(
        "host".into(),
        json!({"accel": accel.to_string(), "accel_reason": why, "load_avg_1m": load(), "mem_available_bytes": mem_available()}),
    );
    for b in chosen {
        let p = place(b, &facts)?;
        let key = format!(
            "{}{}",
            p.backend,
            p.accel.map(|a| format!("_{a}")).unwrap_or_default()
        );
        let fig =
            one(store, image, keeper, b, samples.max(1)).with_context(|| format!("benchmarking {key}"))?;
        out.insert(key, fig);
    }
    Ok(Value::Object(out))
}

fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn one(
    store: &Store,
    image: &Image,
    keeper: &[String],
    backend: BackendChoice,
    samples: usize,
) -> Result<Value> {
    let opts = CreateOptions {
        backend,
        image: image.clone(),
        vcpus: 1,
        memory_mib: 1024,
        keeper_command: keeper.to_vec(),
        boot_timeout: Duration::from_secs(300),
    };
    let t0 = Instant::now();
    let (rec, _) = store.create(&opts)?;
    let ready = t0.elapsed();
    let result = (|| -> Result<Value> {
        let c = store.connect(&rec.id)?;
        c.screenshot()?;
        let first_frame = t0.elapsed();
        // The desktop is drawn once a screenshot is no longer one flat colour (the terminal is up).
        let desktop = loop {
            if c.screenshot()?.distinct_colors(8) > 1 {
                break t0.elapsed();
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(300),
                "the desktop never appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Idle: booted, desktop drawn, nothing happening for a few seconds.
        std::thread::sleep(Duration::from_secs(5));
        let rss = store.status(&rec.id)?.rss_bytes;

        let mut shots = Vec::new();
        for _ in 0..samples {
            let t = Instant::now();
            c.screenshot()?;
            shots.push(ms(t.elapsed()));
        }

        // Input → damage: type a character into the terminal, wait for the frame that shows it.
        c.wait_terminal_ready(Duration::from_secs(120))?;
        let stream = c.frames(60)?;
        while let Some(Reply::Frame(_)) = stream.next(Duration::from_millis(500))? {} // the full frame
        let mut rtts = Vec::new();
        for i in 0..samples {
            let combo = if i % 2 == 0 { "x" } else { "BackSpace" };
            let t = Instant::now();
            c.input(Input::Key { combo: combo.into() })?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match stream.next(Duration::from_millis(100))? {
                    Some(Reply::Frame(_)) => {
                        rtts.push(ms(t.elapsed()));
                        break;
                    }
                    Some(other) => anyhow::bail!("frame stream ended: {other:?}"),
                    None if Instant::now() > deadline => {
                        anyhow::bail!("no damage within 10 s of a key press")
                    }
                    None => {}
                }
            }
            // Let the rest of this change's damage drain before the next press.
            while let Some(Reply::Frame(_)) = stream.next(Duration::from_millis(150))? {}
        }
        drop(stream);

        // Channel throughput: 8 MiB of exec output through the guest channel and the keeper.
        let n: u32 = 8 * 1024 * 1024;
        let t = Instant::now();
        let r = c.exec(ExecRequest {
            argv: vec!["head".into(), "-c".into(), n.to_string(), "/dev/urandom".into()],
            stdin: vec![],
            timeout_ms: 120_000,
            output_cap: n,
        })?;
        let secs = t.elapsed().as_secs_f64();
        let throughput = r.stdout.len() as f64 / secs / 1e6;

        let headroom = mem_available().saturating_sub(4 << 30);
        Ok(json!({
            "cold_start_to_agent_ready_ms": ms(ready),
            "cold_start_to_first_frame_ms": ms(first_frame),
            "cold_start_to_desktop_drawn_ms": ms(desktop),
            "guest_boot_ms_keeper": rec.boot_ms,
            "screenshot_latency_ms_p50": percentile(&shots, 0.5, 2),
            "screenshot_latency_ms_max": shots.iter().cloned().fold(0.0, f64::max),
            "input_to_damage_ms_p50": percentile(&rtts, 0.5, 2),
            "input_to_damage_ms_max": rtts.iter().cloned().fold(0.0, f64::max),
            "channel_throughput_mb_s": (throughput * 10.0).round() / 10.0,
            "idle_rss_mib": rss / (1024 * 1024),
            "idle_sandboxes_fit_keeping_4gib_free": headroom.checked_div(rss).unwrap_or(0),
        }))
    })();
    store.destroy(&rec.id)?;
    result
}
