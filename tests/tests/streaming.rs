//! Adaptive streaming end to end: a real gVisor desktop sandbox under `airlock serve`, viewed by
//! real headless Chromium pages of the console's stand-alone viewer (`/viewer`, ui/viewer.html;
//! WebRTC and WebSocket + WebCodecs), with operator input over the data channel, watchers,
//! handback, bad input and a client that never reads. Each test has its own serve, sandbox and
//! browser (`Fixture`), so one failure does not hide the others.

use std::time::Duration;

use airlock_agents::Gateway;
use airlock_browser::Browser;
use airlock_test_kit::e2e::serve::{computer, Serve};
use airlock_test_kit::e2e::{poll, poll_async, Env};
use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// How a page watches: its transport, whose token, whether it has the focus.
#[derive(Clone, Copy)]
enum Who {
    /// The operator serve started with.
    Operator,
    /// A second operator (role operator, not holding control), added with `airlock operator add`.
    Other,
}

/// One gVisor desktop sandbox under `airlock serve` with its terminal ready, and a Chromium.
struct Fixture {
    env: Env,
    serve: Serve,
    sb: String,
    b: Browser,
    other_token: Option<String>,
}

impl Fixture {
    async fn start(name: &str) -> Result<Fixture> {
        let env = Env::new(name);
        let serve = Serve::start(&env, &["--backend", "gvisor"])?;
        let sb = serve.only_sandbox().await?;
        serve.wait_terminal(&env, &sb, Duration::from_secs(60)).await?;
        let b = Browser::launch(&env.root.join("chromium.log"))?;
        Ok(Fixture {
            env,
            serve,
            sb,
            b,
            other_token: None,
        })
    }

    fn token(&mut self, who: Who) -> Result<String> {
        match who {
            Who::Operator => Ok(self.serve.operator_token.clone()),
            Who::Other => {
                if let Some(t) = &self.other_token {
                    return Ok(t.clone());
                }
                let out = self
                    .env
                    .airlock(&["operator", "add", "second", "--role", "operator"]);
                if !out.status.success() {
                    bail!("operator add: {}", String::from_utf8_lossy(&out.stderr));
                }
                let added: Value = serde_json::from_slice(&out.stdout)?;
                let t = added["token"]
                    .as_str()
                    .context("the second operator's token")?
                    .to_string();
                self.other_token = Some(t.clone());
                Ok(t)
            }
        }
    }

    /// Opens the viewer as page `page` at `/viewer?sandbox=…&transport=…&focus=…#token=…`.
    fn open(&mut self, page: &str, transport: &str, who: Who, focus: bool) -> Result<()> {
        let token = self.token(who)?;
        let url = format!(
            "{}/viewer?sandbox={}&transport={transport}&focus={}#token={token}",
            self.serve.base,
            self.sb,
            u8::from(focus)
        );
        self.b.open(page, &url)
    }

    fn wait(&mut self, page: &str, expr: &str, secs: u64) -> Result<Value> {
        self.b.wait(page, expr, Duration::from_secs(secs))
    }

    fn eval(&mut self, page: &str, expr: &str) -> Result<Value> {
        self.b.eval(page, expr)
    }

    /// Waits until a WebRTC page decodes the real 1280x800 screen; returns its receiver stats.
    fn wait_webrtc_video(&mut self, page: &str) -> Result<Value> {
        self.wait(
            page,
            "airlockViewer.rtcStats().then(s => s && s.framesDecoded > 0 && s.frameWidth === 1280 && s.frameHeight === 800 ? s : null)",
            60,
        )
    }

    /// Waits until a WebCodecs page decodes the real 1280x800 screen.
    fn wait_webcodecs_video(&mut self, page: &str, secs: u64) -> Result<()> {
        self.wait(
            page,
            "airlockViewer.framesDecoded > 0 && airlockViewer.frameWidth === 1280 && airlockViewer.frameHeight === 800",
            secs,
        )?;
        Ok(())
    }

    /// Takes control from `page` (over its data channel once open) and waits until it is told.
    fn take_control(&mut self, page: &str) -> Result<()> {
        self.eval(page, "airlockViewer.takeover()")?;
        self.wait(
            page,
            "airlockViewer.lease && airlockViewer.lease.you_control === true",
            10,
        )?;
        Ok(())
    }

    /// Hands control back from `page` with `note` and waits until the agent holds it again.
    fn hand_back(&mut self, page: &str, note: &str) -> Result<()> {
        self.eval(page, &format!("airlockViewer.handback({})", json!(note)))?;
        self.wait(
            page,
            "airlockViewer.lease && airlockViewer.lease.holder === 'agent'",
            10,
        )?;
        Ok(())
    }

    /// Runs `sh -c script` in the guest through the CLI; returns stdout (fails on a non-zero exit).
    fn guest_sh(&self, script: &str) -> Result<String> {
        self.env.guest_sh(&self.sb, script)
    }

    fn guest_file(&self, path: &str) -> Option<String> {
        self.guest_sh(&format!("cat {path}")).ok()
    }

    /// Waits for a file in the guest to exist; returns its contents.
    fn wait_guest_file(&self, path: &str, secs: u64) -> Result<String> {
        poll(path, Duration::from_secs(secs), || Ok(self.guest_file(path)))
    }

    async fn agent(&self) -> Result<Gateway> {
        self.serve.agent().await
    }

    /// The agent types `text` into the xterm.
    async fn agent_types(&self, agent: &Gateway, text: &str) -> Result<Value> {
        let r = agent
            .call(
                "computer",
                computer(&self.sb, json!({"action": "type", "text": text})),
            )
            .await?;
        Ok(json!(r.texts))
    }

    /// A barrier for "this input did nothing": the agent runs a command in the xterm and the test
    /// waits for the file it writes. Input that had got through before it would have run first.
    /// After a human stint the gate has not seen the line whole and asks: the operator approves.
    async fn agent_writes_marker(&self, name: &str) -> Result<()> {
        let path = format!("/tmp/{name}.txt");
        let mut events = self.serve.events().await?;
        let agent = self.agent().await?;
        let args = computer(
            &self.sb,
            json!({"action": "type", "text": format!("echo {name} > {path}\n")}),
        );
        let mut call = tokio::spawn(async move { agent.call("computer", args).await });
        let said = loop {
            tokio::select! {
                done = &mut call => break done??.texts,
                ask = events.next_of("approval_requested", Duration::from_secs(60)) => {
                    let id = ask?["approval"]["id"].as_u64().context("approval id")?;
                    self.serve
                        .decide(&self.sb, id, json!({"decision": "approve"}))
                        .await?;
                }
            }
        };
        self.wait_guest_file(&path, 30)
            .with_context(|| format!("the agent was told: {said:?}"))?;
        Ok(())
    }

    /// The average brightness of the first lines of the xterm as page `page` shows it (waiting for
    /// the page to show a picture: a decoded frame is on screen a moment after the stats count it).
    fn brightness(&mut self, page: &str) -> Result<f64> {
        let v = self
            .wait(page, "airlockViewer.probe(0, 0, 700, 60)", 20)
            .with_context(|| format!("page {page} shows nothing"))?;
        Ok(
            (v["r"].as_f64().unwrap_or(0.0)
                + v["g"].as_f64().unwrap_or(0.0)
                + v["b"].as_f64().unwrap_or(0.0))
                / 3.0,
        )
    }

    /// The agent types a row of `#` at the prompt; every page must show the first lines brighten.
    async fn agent_types_and_pages_show_it(&mut self, pages: &[&str], secs: u64) -> Result<()> {
        let mut before = Vec::new();
        for page in pages {
            before.push(self.brightness(page)?);
        }
        let agent = self.agent().await?;
        self.agent_types(&agent, "##########################################")
            .await?;
        for (page, before) in pages.iter().zip(before) {
            let after = self.wait(
                page,
                &format!(
                    "(() => {{ const v = airlockViewer.probe(0, 0, 700, 60); const n = v && (v.r + v.g + v.b) / 3; \
                     return n !== null && n > {before} + 2 ? n : null; }})()"
                ),
                secs,
            )?;
            eprintln!("page {page}: brightness {before:.1} -> {after}");
        }
        Ok(())
    }

    fn viewer_socket_url(&self) -> String {
        format!(
            "{}/api/sandboxes/{}/view?token={}",
            self.serve.base.replace("http://", "ws://"),
            self.sb,
            self.serve.operator_token
        )
    }

    /// The guest's screen now, handed to page `page` as reference `name`.
    fn reference(&mut self, page: &str, name: &str) -> Result<()> {
        use base64::Engine as _;
        let file = self.env.root.join(format!("{name}.png"));
        let path = file.to_string_lossy().into_owned();
        let out = self
            .env
            .airlock(&["sandbox", "screenshot", &self.sb, "--output", &path]);
        if !out.status.success() {
            bail!("screenshot: {}", String::from_utf8_lossy(&out.stderr));
        }
        let png = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&file)?);
        let ok = self.eval(page, &format!("airlockViewer.setReference({name:?}, {png:?})"))?;
        if ok != Value::Bool(true) {
            bail!("page {page} could not decode the screenshot");
        }
        Ok(())
    }

    /// Types a line at the prompt from `page` (whose operator holds control), lets the screen rest,
    /// and checks that the page then shows the guest's screen pixel for pixel.
    async fn typed_line_becomes_exact(&mut self, page: &str) -> Result<()> {
        self.eval(
            page,
            "airlockViewer.typeText('echo hello from the demo agent root@sandbox')",
        )?;
        // The guest's screen rests once the echo of the last key is drawn; the screenshot is then
        // exactly what the page must end up showing.
        let guest_rests = self.env.root.join("rest.png");
        let mut last = Vec::new();
        poll("the guest's screen to rest", Duration::from_secs(20), || {
            let path = guest_rests.to_string_lossy().into_owned();
            self.env
                .airlock(&["sandbox", "screenshot", &self.sb, "--output", &path]);
            let now = std::fs::read(&guest_rests).unwrap_or_default();
            let same = !now.is_empty() && now == last;
            last = now;
            Ok(same.then_some(()))
        })?;
        self.reference(page, "rest")?;
        let exact = self.wait(
            page,
            "(() => { const f = airlockViewer.fidelity('rest'); return f && f.differing === 0 ? f : null; })()",
            10,
        );
        let shown = self.eval(page, "airlockViewer.fidelity('rest')")?;
        let alone = self.eval(page, "airlockViewer.fidelity('rest', {layer: false})")?;
        exact.with_context(|| format!("page {page} shows {shown} (the picture alone: {alone})"))?;
        eprintln!(
            "page {page}: exact; the picture alone differs in {} pixels",
            alone["differing"]
        );
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/streaming");
        std::fs::create_dir_all(&dir)?;
        self.b.screenshot(page, &dir.join(format!("exact-{page}.png")))?;
        Ok(())
    }

    fn artifacts(&self) -> Result<std::path::PathBuf> {
        let dir = self.env.root.join("artifacts");
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_page_decodes_the_real_screen_as_h264() -> Result<()> {
    let mut fx = Fixture::start("stream-webrtc").await?;
    fx.open("rtc", "webrtc", Who::Operator, true)?;
    let stats = fx.wait_webrtc_video("rtc")?;
    assert_eq!(stats["codec"], "video/H264", "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webcodecs_page_decodes_the_real_screen() -> Result<()> {
    let mut fx = Fixture::start("stream-webcodecs").await?;
    fx.open("wc", "webcodecs", Who::Operator, true)?;
    fx.wait_webcodecs_video("wc", 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_agent_types_appears_in_webrtc_and_webcodecs_pages() -> Result<()> {
    let mut fx = Fixture::start("stream-agent-types").await?;
    fx.open("rtc", "webrtc", Who::Operator, true)?;
    fx.open("wc", "webcodecs", Who::Operator, true)?;
    fx.wait_webrtc_video("rtc")?;
    fx.wait_webcodecs_video("wc", 60)?;
    fx.agent_types_and_pages_show_it(&["rtc", "wc"], 20).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfocused_page_shows_the_command_view_with_the_agents_step_and_its_still() -> Result<()> {
    let mut fx = Fixture::start("stream-command-view").await?;
    fx.open("grid", "none", Who::Operator, false)?;
    fx.wait(
        "grid",
        "airlockViewer.mode && airlockViewer.mode.mode === 'command' && airlockViewer.stills[1] > 0",
        30,
    )?;
    let agent = fx.agent().await?;
    fx.agent_types(&agent, "##########################################")
        .await?;
    let step = fx.wait(
        "grid",
        "airlockViewer.steps.find(s => s.kind === 'executed' && /type/.test(s.title)) || null",
        20,
    )?;
    assert_eq!(step["actor"], "agent", "{step}");
    fx.wait("grid", "airlockViewer.stills[2] > 0", 20)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_operators_input_is_refused_and_does_nothing_while_the_agent_drives() -> Result<()> {
    let mut fx = Fixture::start("stream-watcher-agent").await?;
    fx.open("watch", "webcodecs", Who::Other, true)?;
    fx.wait(
        "watch",
        "airlockViewer.state === 'open' && airlockViewer.lease",
        30,
    )?;
    fx.eval(
        "watch",
        "airlockViewer.typeText('echo watcher > /tmp/watcher.txt\\n')",
    )?;
    fx.wait(
        "watch",
        "airlockViewer.inputReplies.some(r => r.accepted === false)",
        10,
    )?;
    fx.agent_writes_marker("after-watcher").await?;
    assert!(
        fx.guest_file("/tmp/watcher.txt").is_none(),
        "a watcher's input ran"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_takes_control_from_a_webrtc_page_and_other_operators_see_it() -> Result<()> {
    let mut fx = Fixture::start("stream-takeover").await?;
    fx.open("rtc", "webrtc", Who::Operator, true)?;
    fx.open("watch", "webcodecs", Who::Other, true)?;
    fx.wait("rtc", "airlockViewer.dataChannelOpen()", 60)?;
    fx.wait(
        "watch",
        "airlockViewer.state === 'open' && airlockViewer.lease",
        30,
    )?;
    fx.take_control("rtc")?;
    fx.wait(
        "watch",
        "airlockViewer.lease && airlockViewer.lease.holder === 'human' && airlockViewer.lease.you_control === false",
        10,
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_input_over_the_data_channel_moves_the_pointer_and_types_in_the_guest() -> Result<()> {
    let mut fx = Fixture::start("stream-operator-input").await?;
    fx.open("rtc", "webrtc", Who::Operator, true)?;
    fx.wait("rtc", "airlockViewer.dataChannelOpen()", 60)?;
    fx.take_control("rtc")?;
    fx.eval("rtc", "airlockViewer.sendMove(321, 123)")?;
    poll("the guest pointer to move", Duration::from_secs(10), || {
        let at = airlock_test_kit::e2e::parse_pointer(&fx.guest_sh(airlock_test_kit::e2e::POINTER_SCRIPT)?)?;
        Ok((at == (321, 123)).then_some(()))
    })?;
    fx.eval(
        "rtc",
        "airlockViewer.typeText('echo typed-by-operator > /tmp/op.txt\\n')",
    )?;
    let typed = fx.wait_guest_file("/tmp/op.txt", 20)?;
    assert_eq!(typed.trim(), "typed-by-operator");
    let shot = fx.artifacts()?.join("viewer-webrtc-in-control.png");
    fx.b.screenshot("rtc", &shot)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_screen_is_shown_pixel_exact_on_the_webrtc_path() -> Result<()> {
    let mut fx = Fixture::start("stream-exact-webrtc").await?;
    // WebRTC only: in control, a WebRTC page would otherwise take its video on the socket.
    let url = format!(
        "{}/viewer?sandbox={}&transport=webrtc&socketvideo=0&focus=1#token={}",
        fx.serve.base, fx.sb, fx.serve.operator_token
    );
    fx.b.open("rtc", &url)?;
    fx.wait_webrtc_video("rtc")?;
    fx.take_control("rtc")?;
    fx.typed_line_becomes_exact("rtc").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_screen_is_shown_pixel_exact_on_the_webcodecs_path() -> Result<()> {
    let mut fx = Fixture::start("stream-exact-webcodecs").await?;
    fx.open("wc", "webcodecs", Who::Operator, true)?;
    fx.wait_webcodecs_video("wc", 60)?;
    fx.take_control("wc")?;
    fx.typed_line_becomes_exact("wc").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_operators_input_does_nothing_while_the_first_controls() -> Result<()> {
    let mut fx = Fixture::start("stream-watcher-human").await?;
    fx.open("rtc", "webrtc", Who::Operator, true)?;
    fx.open("watch", "webcodecs", Who::Other, true)?;
    fx.wait("rtc", "airlockViewer.dataChannelOpen()", 60)?;
    fx.wait(
        "watch",
        "airlockViewer.state === 'open' && airlockViewer.lease",
        30,
    )?;
    fx.take_control("rtc")?;
    fx.wait(
        "watch",
        "airlockViewer.lease && airlockViewer.lease.holder === 'human'",
        10,
    )?;
    fx.eval(
        "watch",
        "airlockViewer.typeText('echo watcher2 > /tmp/watcher.txt\\n')",
    )?;
    // The controlling operator's own command is the barrier: the watcher's went first.
    fx.eval(
        "rtc",
        "airlockViewer.typeText('echo op-marker > /tmp/op-marker.txt\\n')",
    )?;
    fx.wait_guest_file("/tmp/op-marker.txt", 20)?;
    assert!(
        fx.guest_file("/tmp/watcher.txt").is_none(),
        "a watcher's input ran"
    );
    let shot = fx.artifacts()?.join("viewer-watcher.png");
    fx.b.screenshot("watch", &shot)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_control_a_webrtc_page_gets_its_video_on_the_socket_and_back_on_webrtc_after_handback(
) -> Result<()> {
    let mut fx = Fixture::start("stream-socket-video").await?;
    fx.open("rtc", "webrtc", Who::Operator, true)?;
    fx.wait_webrtc_video("rtc")?;
    fx.wait("rtc", "airlockViewer.dataChannelOpen()", 20)?;
    fx.take_control("rtc")?;
    // In control on a short, clean link, its video moves to the socket (WebCodecs), the
    // lower-latency path here.
    fx.wait("rtc", "airlockViewer.displayed === 'canvas'", 20)?;
    fx.hand_back("rtc", "")?;
    // A watcher again: its video is back on WebRTC (decoded by the browser's receiver).
    let rtc_frames = fx
        .eval("rtc", "airlockViewer.rtcStats().then(s => s.framesDecoded)")?
        .as_u64()
        .unwrap_or(0);
    // A change on screen makes frames to decode: the agent's first action after the handback
    // only brings it the summary, the second is performed.
    let agent = fx.agent().await?;
    fx.agent_types(&agent, "#########").await?;
    fx.agent_types(&agent, "#########").await?;
    fx.wait(
        "rtc",
        &format!(
            "airlockViewer.rtcStats().then(s => s.framesDecoded > {rtc_frames} && airlockViewer.displayed === 'video')"
        ),
        20,
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_binary_oversized_malformed_and_bad_signalling_messages_each_get_an_error_and_the_stream_goes_on(
) -> Result<()> {
    let mut fx = Fixture::start("stream-bad-input").await?;
    fx.open("wc", "webcodecs", Who::Operator, true)?;
    fx.wait_webcodecs_video("wc", 60)?;
    fx.eval("wc", "airlockViewer.sendRaw(new Uint8Array([0x99, 1, 2]))")?;
    fx.eval("wc", "airlockViewer.sendRaw(new Uint8Array(5000))")?;
    fx.eval("wc", "airlockViewer.sendText('{not json')")?;
    fx.eval(
        "wc",
        "airlockViewer.sendText(JSON.stringify({type: 'offer', sdp: 'v=0 garbage'}))",
    )?;
    let errors = fx.wait(
        "wc",
        "airlockViewer.errors.length >= 4 ? airlockViewer.errors : null",
        10,
    )?;
    let all = errors.to_string();
    assert!(all.contains("0x99"), "{all}");
    assert!(all.contains("bad_message"), "{all}");
    fx.agent_types_and_pages_show_it(&["wc"], 20).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_missing_fields_is_refused_by_name() -> Result<()> {
    let fx = Fixture::start("stream-bad-hello").await?;
    let (mut bad, _) = tokio_tungstenite::connect_async(&fx.viewer_socket_url()).await?;
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
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_viewers_keep_decoding_a_scrolling_terminal_beside_a_client_that_never_reads() -> Result<()> {
    let mut fx = Fixture::start("stream-stuck-client").await?;
    fx.open("rtc", "webrtc", Who::Operator, true)?;
    fx.open("wc", "webcodecs", Who::Operator, true)?;
    fx.wait_webcodecs_video("wc", 60)?;
    fx.wait("rtc", "airlockViewer.dataChannelOpen()", 60)?;
    // A client that never reads: it gets a hello in, then stops reading while the screen changes.
    let (mut stuck, _) = tokio_tungstenite::connect_async(&fx.viewer_socket_url()).await?;
    stuck
        .send(Message::Text(
            json!({"type": "hello", "transport": "webcodecs", "codecs": ["h264"], "focused": true})
                .to_string()
                .into(),
        ))
        .await?;
    fx.take_control("rtc")?;
    let wc_before = fx
        .eval("wc", "airlockViewer.framesDecoded")?
        .as_u64()
        .unwrap_or(0);
    let rtc_before = fx
        .eval("rtc", "airlockViewer.framesDecoded")?
        .as_u64()
        .unwrap_or(0);
    fx.eval("rtc", "airlockViewer.typeText('seq 1 300\\n')")?;
    fx.wait(
        "wc",
        &format!("airlockViewer.framesDecoded > {wc_before} + 1"),
        20,
    )?;
    fx.wait(
        "rtc",
        &format!("airlockViewer.framesDecoded > {rtc_before} + 1"),
        20,
    )?;
    drop(stuck);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_handback_the_agent_hears_the_operators_note_and_the_pages_input_is_refused() -> Result<()> {
    let mut fx = Fixture::start("stream-handback").await?;
    fx.open("rtc", "webrtc", Who::Operator, true)?;
    fx.wait("rtc", "airlockViewer.dataChannelOpen()", 60)?;
    fx.take_control("rtc")?;
    fx.hand_back("rtc", "done typing")?;
    // The agent's next action is not performed: it gets a fresh screen and the summary, with the
    // operator's note.
    let agent = fx.agent().await?;
    let first = agent
        .call(
            "computer",
            computer(&fx.sb, json!({"action": "key", "text": "ctrl+l"})),
        )
        .await?;
    let said: String = first.texts.join(" ");
    assert!(said.contains("their note: done typing"), "{said}");
    fx.eval("rtc", "airlockViewer.typeText('echo after > /tmp/after.txt\\n')")?;
    // The refusal is reported (notices come at most every 2 s per viewer, so this may be the one
    // an earlier refused message produced).
    fx.wait(
        "rtc",
        "airlockViewer.inputReplies.some(r => r.accepted === false)",
        10,
    )?;
    fx.agent_writes_marker("after-handback").await?;
    assert!(
        fx.guest_file("/tmp/after.txt").is_none(),
        "input after handback ran"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_keeps_operator_input_as_a_summary_without_the_typed_text() -> Result<()> {
    let mut fx = Fixture::start("stream-ledger").await?;
    fx.open("rtc", "webrtc", Who::Operator, true)?;
    fx.wait("rtc", "airlockViewer.dataChannelOpen()", 60)?;
    fx.take_control("rtc")?;
    fx.eval(
        "rtc",
        "airlockViewer.typeText('echo typed-by-operator > /tmp/op.txt\\n')",
    )?;
    fx.wait_guest_file("/tmp/op.txt", 20)?;
    fx.hand_back("rtc", "done typing")?;
    // The page hands back: the input summary is recorded first, then the lease change, which
    // carries the operator's note (once, as through `POST /api/sandboxes/ID/lease`).
    let noted = |e: &Value| e["body"]["kind"] == "lease_changed" && e.to_string().contains("done typing");
    let ledger = poll_async(
        "the hand-back with its note in the ledger",
        Duration::from_secs(20),
        || async {
            let ledger = fx.serve.ledger(Some(&fx.sb)).await?;
            Ok(ledger.iter().any(noted).then_some(ledger))
        },
    )
    .await?;
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
        .any(|e| e["body"]["actor"]["operator"] == fx.serve.operator.as_str()));
    assert_eq!(ledger.iter().filter(|e| noted(e)).count(), 1, "{ledger:?}");
    let all = serde_json::to_string(&ledger)?;
    assert!(
        !all.contains("typed-by-operator"),
        "typed text leaked into the ledger"
    );
    fx.env.ledger_verifies()?;
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
    let b = Browser::launch(&env.root.join("chromium.log"))?;
    let mut fx = Fixture {
        env,
        serve,
        sb,
        b,
        other_token: None,
    };
    fx.open("wc", "webcodecs", Who::Operator, true)?;
    fx.wait_webcodecs_video("wc", 120)?;
    fx.agent_types_and_pages_show_it(&["wc"], 60).await
}
