//! Adaptive streaming end to end: a real gVisor desktop sandbox under `airlock serve`, viewed by
//! real headless Chromium pages (WebRTC and WebSocket + WebCodecs), with operator input over the
//! data channel, watchers, handback, bad input and a client that never reads.

use std::time::{Duration, Instant};

use airlock_browser::Browser;
use airlock_tests::serve::{computer, Serve};
use airlock_tests::Env;
use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Runs `sh -c script` in the guest through the CLI; returns stdout (fails on a non-zero exit).
fn guest_sh(env: &Env, sb: &str, script: &str) -> Result<String> {
    let out = env.airlock(&["sandbox", "exec", sb, "--", "sh", "-c", script]);
    if !out.status.success() {
        bail!("`{script}` failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn guest_pointer(env: &Env, sb: &str) -> Result<(u16, u16)> {
    airlock_tests::parse_pointer(&guest_sh(env, sb, airlock_tests::POINTER_SCRIPT)?)
}

fn guest_file(env: &Env, sb: &str, path: &str) -> Option<String> {
    guest_sh(env, sb, &format!("cat {path}")).ok()
}

fn viewer_url(serve: &Serve, sb: &str, transport: &str, token: &str, focus: bool) -> String {
    format!(
        "{}/viewer?sandbox={sb}&transport={transport}&focus={}#token={token}",
        serve.base,
        u8::from(focus)
    )
}

/// Average brightness of the region where the first lines of the xterm are, as the page shows it.
fn brightness(b: &mut Browser, page: &str) -> Result<f64> {
    let v = b.eval(page, "airlockViewer.probe(0, 0, 700, 60)")?;
    if v.is_null() {
        bail!("page {page} shows nothing yet");
    }
    Ok(
        (v["r"].as_f64().unwrap_or(0.0) + v["g"].as_f64().unwrap_or(0.0) + v["b"].as_f64().unwrap_or(0.0))
            / 3.0,
    )
}

fn wait_brighter(b: &mut Browser, page: &str, than: f64, timeout: Duration) -> Result<f64> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = brightness(b, page)?;
        if now > than + 2.0 {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!("page {page} never showed the change (brightness {now:.2}, before {than:.2})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The agent types a row of `#` at the prompt; every page must show the first lines brighten.
async fn agent_types_and_pages_show_it(
    agent: &airlock_agents::Gateway,
    sb: &str,
    b: &mut Browser,
    pages: &[&str],
    timeout: Duration,
) -> Result<()> {
    let mut before = Vec::new();
    for page in pages {
        before.push(brightness(b, page)?);
    }
    agent
        .call(
            "computer",
            computer(
                sb,
                json!({"action": "type", "text": "##########################################"}),
            ),
        )
        .await?;
    for (page, before) in pages.iter().zip(before) {
        let after = wait_brighter(b, page, before, timeout)?;
        eprintln!("page {page}: brightness {before:.1} -> {after:.1}");
    }
    Ok(())
}

fn poll_guest<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_watch_over_webrtc_and_webcodecs_and_the_operator_drives() -> Result<()> {
    let env = Env::new("stream-e2e");
    let serve = Serve::start(&env, &["--backend", "gvisor"])?;
    let sb = serve.only_sandbox().await?;
    serve.wait_terminal(&env, &sb, Duration::from_secs(60)).await?;
    let out = env.airlock(&["operator", "add", "watcher"]);
    assert!(
        out.status.success(),
        "operator add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout)?;
    let watcher_token = added["token"].as_str().context("watcher token")?.to_string();
    let op = serve.operator_token.clone();

    let artifacts = env.root.join("artifacts");
    std::fs::create_dir_all(&artifacts)?;
    let mut b = Browser::launch(&env.root.join("chromium.log"))?;
    b.open("rtc", &viewer_url(&serve, &sb, "webrtc", &op, true))?;
    b.open("wc", &viewer_url(&serve, &sb, "webcodecs", &op, true))?;
    b.open(
        "watch",
        &viewer_url(&serve, &sb, "webcodecs", &watcher_token, true),
    )?;
    b.open("grid", &viewer_url(&serve, &sb, "none", &op, false))?;

    // Both transports decode the real 1280x800 screen.
    let stats = b.wait(
        "rtc",
        "airlockViewer.rtcStats().then(s => s && s.framesDecoded > 0 && s.frameWidth === 1280 && s.frameHeight === 800 ? s : null)",
        Duration::from_secs(60),
    )?;
    assert_eq!(stats["codec"], "video/H264", "{stats}");
    b.wait(
        "wc",
        "airlockViewer.framesDecoded > 0 && airlockViewer.frameWidth === 1280 && airlockViewer.frameHeight === 800",
        Duration::from_secs(60),
    )?;
    // The unfocused grid viewer is in command view with a thumbnail.
    b.wait(
        "grid",
        "airlockViewer.mode && airlockViewer.mode.mode === 'command' && airlockViewer.stills[1] > 0",
        Duration::from_secs(30),
    )?;

    // A change made in the guest (the agent types) appears in both browsers.
    let agent = serve.agent().await?;
    agent_types_and_pages_show_it(&agent, &sb, &mut b, &["rtc", "wc"], Duration::from_secs(20)).await?;
    // The command view got the agent's step with its still.
    let step = b.wait(
        "grid",
        "airlockViewer.steps.find(s => s.kind === 'executed' && /type/.test(s.title)) || null",
        Duration::from_secs(20),
    )?;
    assert_eq!(step["actor"], "agent", "{step}");
    b.wait("grid", "airlockViewer.stills[2] > 0", Duration::from_secs(20))?;
    agent
        .call(
            "computer",
            computer(&sb, json!({"action": "key", "text": "ctrl+u"})),
        )
        .await?;

    // A watcher's input does nothing while the agent drives, and is reported.
    b.eval(
        "watch",
        "airlockViewer.typeText('echo watcher > /tmp/watcher.txt\\n')",
    )?;
    b.wait(
        "watch",
        "airlockViewer.inputReplies.some(r => r.accepted === false)",
        Duration::from_secs(10),
    )?;

    // The operator takes control from the WebRTC page; input goes over the data channel.
    b.wait("rtc", "airlockViewer.dataChannelOpen()", Duration::from_secs(20))?;
    b.eval("rtc", "airlockViewer.takeover()")?;
    b.wait(
        "rtc",
        "airlockViewer.lease && airlockViewer.lease.you_control === true",
        Duration::from_secs(10),
    )?;
    b.wait(
        "watch",
        "airlockViewer.lease && airlockViewer.lease.holder === 'human' && airlockViewer.lease.you_control === false",
        Duration::from_secs(10),
    )?;
    // In control on a short, clean link, its video moves to the socket (WebCodecs), the
    // lower-latency path here; it goes back to WebRTC after the handback.
    b.wait(
        "rtc",
        "airlockViewer.displayed === 'canvas'",
        Duration::from_secs(20),
    )?;
    b.eval("rtc", "airlockViewer.sendMove(321, 123)")?;
    poll_guest("the guest pointer to move", Duration::from_secs(10), || {
        (guest_pointer(&env, &sb).ok() == Some((321, 123))).then_some(())
    })?;
    b.eval(
        "rtc",
        "airlockViewer.typeText('echo typed-by-operator > /tmp/op.txt\\n')",
    )?;
    let typed = poll_guest(
        "the operator's typing to run in the xterm",
        Duration::from_secs(20),
        || guest_file(&env, &sb, "/tmp/op.txt"),
    )?;
    assert_eq!(typed.trim(), "typed-by-operator");
    // The other operator is still a watcher: their input is ignored.
    b.eval(
        "watch",
        "airlockViewer.typeText('echo watcher2 > /tmp/watcher.txt\\n')",
    )?;
    b.screenshot("rtc", &artifacts.join("viewer-webrtc-in-control.png"))?;
    b.screenshot("watch", &artifacts.join("viewer-watcher.png"))?;

    // Bad input: garbage binary, an oversized message, malformed JSON, and bad signalling each get
    // a clear error; the stream goes on.
    b.eval("wc", "airlockViewer.sendRaw(new Uint8Array([0x99, 1, 2]))")?;
    b.eval("wc", "airlockViewer.sendRaw(new Uint8Array(5000))")?;
    b.eval("wc", "airlockViewer.sendText('{not json')")?;
    b.eval(
        "wc",
        "airlockViewer.sendText(JSON.stringify({type: 'offer', sdp: 'v=0 garbage'}))",
    )?;
    let errors = b.wait(
        "wc",
        "airlockViewer.errors.length >= 4 ? airlockViewer.errors : null",
        Duration::from_secs(10),
    )?;
    let all = errors.to_string();
    assert!(all.contains("0x99"), "{all}");
    assert!(all.contains("bad_message"), "{all}");

    // A client that never reads: it gets a hello in, then stops reading while the screen changes.
    let ws_url = format!(
        "{}/api/sandboxes/{sb}/view?token={op}",
        serve.base.replace("http://", "ws://")
    );
    let (mut stuck, _) = tokio_tungstenite::connect_async(&ws_url).await?;
    stuck
        .send(Message::Text(
            json!({"type": "hello", "transport": "webcodecs", "codecs": ["h264"], "focused": true})
                .to_string()
                .into(),
        ))
        .await?;
    // Malformed signalling on a socket of its own: a hello missing fields is refused by name.
    let (mut bad, _) = tokio_tungstenite::connect_async(&ws_url).await?;
    bad.send(Message::Text(
        json!({"type": "hello", "transport": "webrtc"}).to_string().into(),
    ))
    .await?;
    let mut refused = String::new();
    while let Some(Ok(m)) = bad.next().await {
        if let Message::Text(t) = m {
            refused = t.to_string();
            break;
        }
    }
    assert!(refused.contains("codecs"), "{refused}");

    // The operator scrolls the terminal full of output; both viewers keep decoding.
    let wc_before = b.eval("wc", "airlockViewer.framesDecoded")?.as_u64().unwrap_or(0);
    let rtc_before = b
        .eval("rtc", "airlockViewer.framesDecoded")?
        .as_u64()
        .unwrap_or(0);
    b.eval("rtc", "airlockViewer.typeText('seq 1 300\\n')")?;
    b.wait(
        "wc",
        &format!("airlockViewer.framesDecoded > {wc_before} + 1"),
        Duration::from_secs(20),
    )?;
    b.wait(
        "rtc",
        &format!("airlockViewer.framesDecoded > {rtc_before} + 1"),
        Duration::from_secs(20),
    )?;

    // Handback: after it, the page's input is refused and does nothing.
    b.eval("rtc", "airlockViewer.handback('done typing')")?;
    b.wait(
        "rtc",
        "airlockViewer.lease && airlockViewer.lease.holder === 'agent'",
        Duration::from_secs(10),
    )?;
    // A watcher again: its video is back on WebRTC (decoded by the browser's receiver).
    let rtc_frames = b
        .eval("rtc", "airlockViewer.rtcStats().then(s => s.framesDecoded)")?
        .as_u64()
        .unwrap_or(0);
    // The agent's next action is not performed: it gets a fresh screen and the summary, with the
    // operator's note.
    let first = agent
        .call(
            "computer",
            computer(&sb, json!({"action": "key", "text": "ctrl+l"})),
        )
        .await?;
    let said: String = first.texts.join(" ");
    assert!(said.contains("their note: done typing"), "{said}");
    b.wait(
        "rtc",
        &format!(
            "airlockViewer.rtcStats().then(s => s.framesDecoded > {rtc_frames} && airlockViewer.displayed === 'video')"
        ),
        Duration::from_secs(20),
    )?;
    b.eval("rtc", "airlockViewer.typeText('echo after > /tmp/after.txt\\n')")?;
    // The refusal is reported (notices come at most every 2 s per viewer, so this may be the one
    // an earlier refused message produced).
    b.wait(
        "rtc",
        "airlockViewer.inputReplies.some(r => r.accepted === false)",
        Duration::from_secs(10),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        guest_file(&env, &sb, "/tmp/after.txt").is_none(),
        "input after handback ran"
    );
    assert!(
        guest_file(&env, &sb, "/tmp/watcher.txt").is_none(),
        "a watcher's input ran"
    );
    drop(stuck);

    // The ledger has the operator's input as a summary: counts, and typed keys only as a hash.
    let ledger = serve.ledger(Some(&sb)).await?;
    let summaries: Vec<&Value> = ledger
        .iter()
        .filter(|e| e["body"]["kind"] == "human_input" && e["body"]["what"]["summary"].is_object())
        .collect();
    assert!(!summaries.is_empty(), "no input summary in the ledger");
    let key_presses: u64 = summaries
        .iter()
        .map(|e| e["body"]["what"]["summary"]["key_presses"].as_u64().unwrap_or(0))
        .sum();
    assert!(key_presses >= 30, "{summaries:?}");
    assert!(summaries
        .iter()
        .any(|e| e["body"]["actor"]["operator"] == serve.operator.as_str()));
    assert!(summaries
        .iter()
        .any(|e| e["body"]["what"]["handback_note"] == "done typing"));
    let all = serde_json::to_string(&ledger)?;
    assert!(
        !all.contains("typed-by-operator"),
        "typed text leaked into the ledger"
    );
    env.ledger_verifies()?;
    Ok(())
}

/// The same pipeline from a QEMU microVM (TCG here): a WebCodecs viewer decodes its screen and
/// sees a change the agent makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microvm_screen_streams_to_a_webcodecs_viewer() -> Result<()> {
    let env = Env::new("stream-microvm");
    let serve = Serve::start(&env, &["--backend", "microvm"])?;
    let sb = serve.only_sandbox().await?;
    serve.wait_terminal(&env, &sb, Duration::from_secs(180)).await?;
    let mut b = Browser::launch(&env.root.join("chromium.log"))?;
    b.open(
        "wc",
        &viewer_url(&serve, &sb, "webcodecs", &serve.operator_token, true),
    )?;
    b.wait(
        "wc",
        "airlockViewer.framesDecoded > 0 && airlockViewer.frameWidth === 1280 && airlockViewer.frameHeight === 800",
        Duration::from_secs(120),
    )?;
    let agent = serve.agent().await?;
    agent_types_and_pages_show_it(&agent, &sb, &mut b, &["wc"], Duration::from_secs(60)).await?;
    Ok(())
}
