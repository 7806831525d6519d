//! `airlock bench stream`: streaming figures measured end to end on this host — an `airlock serve`
//! child with a gVisor desktop sandbox, real headless Chromium pages of the console's stand-alone
//! viewer (`/viewer`, ui/viewer.html: the same `ViewerConnection` the console ships), a WebSocket
//! client that counts bytes.
//!
//! - operator input → changed pixels shown in a Chromium WebRTC viewer: a key goes over the data
//!   channel; `requestVideoFrameCallback` plus a pixel probe of the region it changes time its
//!   arrival on screen (p50/p95);
//! - takeover request → control granted to the viewer, and → the first input's pixels on screen;
//! - idle command-view bandwidth (an unfocused viewer of an idle screen);
//! - video bitrate at 1280x800, High tier (30 fps cap), while the operator types and while the
//!   terminal scrolls;
//! - host CPU of the serve process (mirror, encoders, transports) per streamed sandbox, idle,
//!   typing and scrolling;
//! - fidelity on both paths ([`crate::fidelity`]): how soon a resting screen is shown exactly, and
//!   how far the picture alone (without the refinement layer) is from the source.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_browser::Browser;
use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::percentile;

struct ServeChild(Child);

impl Drop for ServeChild {
    fn drop(&mut self) {
        // Sandboxes outlive serve: the bench destroys its own after this.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).context("odd /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) counted from 1 with the pid and comm; after `)` they are
    // the 12th and 13th.
    let ticks: f64 =
        fields.get(11).context("utime")?.parse::<f64>()? + fields.get(12).context("stime")?.parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz.max(1.0))
}

/// A WebSocket viewer that counts what it receives (acknowledging video at once, like a fast
/// WebCodecs client).
async fn ws_viewer(url: &str, hello: Value, run_for: Duration) -> Result<(u64, u64, u64)> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .context("connect the viewer socket")?;
    ws.send(Message::Text(hello.to_string().into())).await?;
    let (mut bytes, mut video_bytes, mut frames) = (0u64, 0u64, 0u64);
    let deadline = tokio::time::Instant::now() + run_for;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        let Some(Ok(msg)) = msg else { break };
        match msg {
            Message::Binary(b) => {
                bytes += b.len() as u64;
                if let Some((frame, payload)) = video_unit(&b) {
                    video_bytes += payload as u64;
                    frames += 1;
                    ws.send(Message::Text(
                        json!({"type": "ack", "frame": frame}).to_string().into(),
                    ))
                    .await?;
                }
            }
            Message::Text(t) => bytes += t.len() as u64,
            _ => {}
        }
    }
    Ok((bytes, video_bytes, frames))
}

/// A video message: its mirror frame number and payload length (anything else: `None`).
fn video_unit(b: &[u8]) -> Option<(u64, usize)> {
    airlock_streaming::wire::parse_video(b)
        .ok()
        .map(|(header, payload)| (header.frame, payload.len()))
}

/// Takes control (`true`) or hands it back from a page, and waits until the page is told.
fn set_control(b: &mut Browser, page: &str, take: bool) -> Result<()> {
    let (call, until) = if take {
        (
            "airlockViewer.takeover()",
            "airlockViewer.lease && airlockViewer.lease.you_control",
        )
    } else {
        (
            "airlockViewer.handback('')",
            "airlockViewer.lease && !airlockViewer.lease.you_control",
        )
    };
    b.eval(page, call)?;
    b.wait(page, until, Duration::from_secs(10))?;
    Ok(())
}

/// `n` timed takeovers from `page` (which holds control on entry and does not on return):
/// (ms until control was granted, ms until the first key's pixels were shown).
async fn takeovers(b: &mut Browser, page: &str, rect: &Value, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    set_control(b, page, false)?;
    let (mut granted, mut shown) = (Vec::new(), Vec::new());
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = b.eval(page, &format!("benchTakeover({rect})"))?;
        granted.extend(t["granted"].as_f64());
        shown.extend(t["first_input_shown"].as_f64());
        set_control(b, page, false)?;
    }
    Ok((granted, shown))
}

/// Runs `activity` in the viewer page while a focused WebSocket viewer counts video for `window`:
/// (video bytes, frames, serve CPU % of one core).
async fn video_window(
    b: &mut Browser,
    ws_url: &str,
    pid: u32,
    window: Duration,
    activity: &str,
) -> Result<(u64, u64, f64)> {
    let hello = json!({"type": "hello", "transport": "webcodecs", "codecs": ["h264"], "focused": true});
    let cpu0 = cpu_seconds(pid)?;
    let counter = tokio::spawn({
        let url = ws_url.to_string();
        async move { ws_viewer(&url, hello, window).await }
    });
    b.eval("v", activity)?;
    let (_, bytes, frames) = counter.await??;
    let cpu = (cpu_seconds(pid)? - cpu0) / window.as_secs_f64() * 100.0;
    Ok((bytes, frames, cpu))
}

const PAGE_HELPERS: &str = r#"
window.benchGrab = (x, y, w, h) => {
  // What the page shows: the WebRTC <video>, or the canvas WebCodecs frames are drawn on.
  const src = airlockViewer.displayed === 'video' ? document.getElementById('video') : document.getElementById('canvas');
  const c = window.__benchCanvas || (window.__benchCanvas = new OffscreenCanvas(1280, 800));
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(src, 0, 0, 1280, 800);
  return ctx.getImageData(x, y, w, h).data;
};
window.benchDiff = (a, b) => { let d = 0; for (let i = 0; i < a.length; i += 4) d += Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]); return d; };
// Resolves with the time the next picture was shown: rVFC for video; for the canvas, the first
// animation frame after the decoder drew a new frame.
window.benchNextFrame = () => {
  if (airlockViewer.displayed === 'video') {
    return new Promise((r) => document.getElementById('video').requestVideoFrameCallback((now) => r(now)));
  }
  const n0 = airlockViewer.framesDecoded;
  return new Promise((r) => { const tick = (now) => airlockViewer.framesDecoded > n0 ? r(now) : requestAnimationFrame(tick); requestAnimationFrame(tick); });
};
window.benchWaitChange = async (rect, base, timeout) => {
  const t0 = performance.now();
  while (performance.now() - t0 < timeout) {
    const now = await Promise.race([benchNextFrame(), new Promise((r) => setTimeout(() => r(null), 200))]);
    if (now === null) continue;
    if (benchDiff(benchGrab(...rect), base) > 3000) return now;
  }
  return null;
};
window.benchKey = (keysym) => { airlockViewer.sendKey(keysym, true); airlockViewer.sendKey(keysym, false); };
// Types 'x' and finds the region it changed (full-frame diff), then erases it.
window.benchCalibrate = async () => {
  const base = benchGrab(0, 0, 1280, 800);
  benchKey(0x78);
  if (await benchWaitChange([0, 0, 1280, 800], base, 5000) === null) return null;
  await new Promise((r) => setTimeout(r, 300));
  const now = benchGrab(0, 0, 1280, 800);
  let x0 = 1280, y0 = 800, x1 = -1, y1 = -1;
  for (let y = 0; y < 800; y++) for (let x = 0; x < 1280; x++) {
    const i = (y * 1280 + x) * 4;
    if (Math.abs(now[i] - base[i]) + Math.abs(now[i + 1] - base[i + 1]) + Math.abs(now[i + 2] - base[i + 2]) > 60) {
      if (x < x0) x0 = x; if (y < y0) y0 = y; if (x > x1) x1 = x; if (y > y1) y1 = y;
    }
  }
  benchKey(0xff08);
  await new Promise((r) => setTimeout(r, 500));
  if (x1 < 0) return null;
  return [Math.max(0, x0 - 4), Math.max(0, y0 - 4), Math.min(1280 - x0, x1 - x0 + 9), Math.min(800 - y0, y1 - y0 + 9)];
};
// Timed: a key down/up over the data channel until the region changes on screen; alternately 'x'
// and BackSpace so the screen returns to where it started.
window.benchInputLatency = async (rect, n) => {
  const out = [];
  for (let i = 0; i < n; i++) {
    for (const key of [0x78, 0xff08]) {
      await new Promise((r) => setTimeout(r, 150));
      const base = benchGrab(...rect);
      const t = performance.now();
      benchKey(key);
      const shown = await benchWaitChange(rect, base, 3000);
      if (shown !== null) out.push(shown - t);
    }
  }
  return out;
};
window.benchTakeover = async (rect) => {
  const t0 = performance.now();
  airlockViewer.takeover();
  const ok = await airlockViewer.waitFor(() => airlockViewer.lease && airlockViewer.lease.you_control, 5000);
  const t1 = performance.now();
  if (!ok) return null;
  const base = benchGrab(...rect);
  benchKey(0x78);
  const shown = await benchWaitChange(rect, base, 3000);
  benchKey(0xff08);
  return { granted: t1 - t0, first_input_shown: shown === null ? null : shown - t0 };
};
true
"#;

/// Runs the benchmark; `samples` key presses (each typed and erased) for the latency figure.
/// It starts the running executable as `airlock serve`, so only the `airlock` binary can call it.
pub fn run(samples: usize) -> Result<Value> {
    let state = tempfile::Builder::new()
        .prefix("airlock-bench-stream-")
        .tempdir()?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(&exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--backend", "gvisor"])
        .env("AIRLOCK_STATE_DIR", state.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(
            state.path().join("serve.log"),
        )?))
        .spawn()
        .context("start airlock serve")?;
    let stdout = child.stdout.take().context("serve stdout")?;
    let serve = ServeChild(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let ready: Value = serde_json::from_str(&line).with_context(|| {
        let log = std::fs::read_to_string(state.path().join("serve.log")).unwrap_or_default();
        format!("airlock serve did not start: {log}")
    })?;
    let base = format!("http://{}", ready["listen"].as_str().unwrap_or_default());
    let tokens: Value = serde_json::from_slice(&std::fs::read(state.path().join("tokens.json"))?)?;
    let token = tokens["operator_token"].as_str().unwrap_or_default().to_string();
    let pid = serve.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(measure(&base, &token, pid, samples, state.path()));
    // Destroy the sandbox (it outlives serve otherwise).
    let sandboxes: Vec<String> = std::fs::read_dir(state.path().join("sandboxes"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    drop(serve);
    for id in sandboxes {
        let _ = Command::new(&exe)
            .args(["sandbox", "destroy", &id])
            .env("AIRLOCK_STATE_DIR", state.path())
            .output();
    }
    result
}

async fn measure(base: &str, token: &str, pid: u32, samples: usize, state: &Path) -> Result<Value> {
    let http = reqwest::Client::new();
    let list: Value = http
        .get(format!("{base}/api/sandboxes"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let sb = list[0]["id"].as_str().context("no sandbox")?.to_string();
    // The terminal is ready when the guest says so.
    let exe = std::env::current_exe()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new(&exe)
            .args([
                "sandbox",
                "exec",
                &sb,
                "--",
                "cat",
                airlock_protocol::TERMINAL_READY_FILE,
            ])
            .env("AIRLOCK_STATE_DIR", state)
            .output()?;
        if out.status.success() {
            break;
        }
        if Instant::now() > deadline {
            bail!("the sandbox's terminal did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ws_url = format!(
        "{}/api/sandboxes/{sb}/view?token={token}",
        base.replace("http://", "ws://")
    );

    // Idle command view: an unfocused viewer of an idle screen (after its first thumbnail).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hello_none = json!({"type": "hello", "transport": "none", "codecs": [], "focused": false});
    let idle_window = Duration::from_secs(10);
    let (warm, _, _) = ws_viewer(&ws_url, hello_none.clone(), Duration::from_secs(1)).await?;
    let cpu0 = cpu_seconds(pid)?;
    let (idle_bytes, _, _) = ws_viewer(&ws_url, hello_none, idle_window).await?;
    let idle_cpu = (cpu_seconds(pid)? - cpu0) / idle_window.as_secs_f64() * 100.0;
    let idle_kbps = idle_bytes as f64 * 8.0 / idle_window.as_secs_f64() / 1000.0;

    // Chromium over WebRTC, focused.
    let log = state.join("chromium.log");
    let mut b = Browser::launch(&log)?;
    b.open(
        "v",
        // WebRTC only: a controlling WebRTC viewer would otherwise get its video on the socket
        // (the lower-latency path here), which the WebCodecs page measures below.
        &format!("{base}/viewer?sandbox={sb}&transport=webrtc&socketvideo=0&focus=1#token={token}"),
    )?;
    b.wait(
        "v",
        "airlockViewer.rtcStats().then(s => s && s.framesDecoded > 0 && airlockViewer.dataChannelOpen())",
        Duration::from_secs(60),
    )?;
    b.eval("v", PAGE_HELPERS)?;
    // Calibrate while the operator holds control (the key must land).
    set_control(&mut b, "v", true)?;
    let rect = b.eval("v", "benchCalibrate()")?;
    if rect.is_null() {
        bail!("typing a key never changed the picture in Chromium");
    }
    let lat = b.eval("v", &format!("benchInputLatency({rect}, {samples})"))?;
    let lat: Vec<f64> = lat
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    // The same on the WebSocket + WebCodecs path (the Tauri webview's), from a second page of the
    // same operator.
    b.open(
        "w",
        &format!("{base}/viewer?sandbox={sb}&transport=webcodecs&focus=1#token={token}"),
    )?;
    b.wait("w", "airlockViewer.framesDecoded > 0", Duration::from_secs(60))?;
    b.eval("w", PAGE_HELPERS)?;
    let wc_lat = b.eval("w", &format!("benchInputLatency({rect}, {samples})"))?;
    let wc_lat: Vec<f64> = wc_lat
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    // Takeover → control granted → the first key's pixels on the page, on both paths.
    let (wc_granted, wc_first_shown) = takeovers(&mut b, "w", &rect, 5).await?;
    // Fidelity last on each page: it clears and scrolls the terminal the figures above calibrated on.
    set_control(&mut b, "w", true)?;
    let webcodecs_fidelity = crate::fidelity::measure(&mut b, "w", &exe, state, &sb).await?;
    set_control(&mut b, "w", false)?;
    b.close("w")?;
    let (granted, first_shown) = takeovers(&mut b, "v", &rect, 5).await?;
    set_control(&mut b, "v", true)?;
    let webrtc_fidelity = crate::fidelity::measure(&mut b, "v", &exe, state, &sb).await?;

    // Typing (about 8 keys a second) and scrolling (the terminal prints as fast as it can): a
    // focused WebSocket viewer counts the video bytes for 10 s of each.
    let window = Duration::from_secs(10);
    let typing =
        "(async () => { for (let i = 0; i < 78; i++) { airlockViewer.typeText('abcdefghij'[i % 10]); \
                  await new Promise(r => setTimeout(r, 125)); } return true; })()";
    let (typing_bytes, typing_frames, typing_cpu) =
        video_window(&mut b, &ws_url, pid, window, typing).await?;
    // Ctrl+U clears the typed line.
    b.eval(
        "v",
        "airlockViewer.sendKey(0xffe3, true); benchKey(0x75); airlockViewer.sendKey(0xffe3, false); true",
    )?;
    let scrolling =
        "airlockViewer.typeText('timeout 12 yes the quick brown fox jumps over the lazy dog 0123456789\\n')";
    let (scroll_bytes, scroll_frames, scroll_cpu) =
        video_window(&mut b, &ws_url, pid, window, scrolling).await?;
    let stats = b.eval("v", "airlockViewer.rtcStats()")?;
    b.eval("v", "airlockViewer.handback('')")?;

    let secs = window.as_secs_f64();
    let n = lat.len();
    Ok(json!({
        "sandbox_backend": "gvisor",
        "screen": "1280x800",
        "input_to_pixels_ms": {"samples": n, "p50": percentile(&lat, 0.5, 1), "p95": percentile(&lat, 0.95, 1),
                                "goal_p95": 50, "path": "key over the WebRTC data channel -> guest -> damage -> H.264 -> Chromium rVFC + pixel probe"},
        "input_to_pixels_webcodecs_ms": {"samples": wc_lat.len(), "p50": percentile(&wc_lat, 0.5, 1), "p95": percentile(&wc_lat, 0.95, 1),
                                          "path": "key over the viewer WebSocket -> guest -> damage -> H.264 -> WebCodecs VideoDecoder -> canvas, next animation frame"},
        "takeover_ms": {"granted_p50": percentile(&granted, 0.5, 1), "granted_max": percentile(&granted, 1.0, 1),
                        "first_input_shown_webrtc_p50": percentile(&first_shown, 0.5, 1),
                        "webcodecs_granted_p50": percentile(&wc_granted, 0.5, 1),
                        "first_input_shown_webcodecs_p50": percentile(&wc_first_shown, 0.5, 1),
                        "first_input_shown_webcodecs_max": percentile(&wc_first_shown, 1.0, 1),
                        "goal_first_input_applied": 150},
        "idle_command_view_kbps": (idle_kbps * 100.0).round() / 100.0,
        "idle_command_view_first_second_bytes": warm,
        "typing_video_kbps": (typing_bytes as f64 * 8.0 / secs / 1000.0).round(),
        "typing_video_fps": (typing_frames as f64 / secs * 10.0).round() / 10.0,
        "scrolling_video_kbps": (scroll_bytes as f64 * 8.0 / secs / 1000.0).round(),
        "scrolling_video_fps": (scroll_frames as f64 / secs * 10.0).round() / 10.0,
        "video_goal_kbps": 2000,
        "serve_cpu_percent_of_one_core": {"idle_command_view": (idle_cpu * 10.0).round() / 10.0,
                                           "typing_two_viewers": (typing_cpu * 10.0).round() / 10.0,
                                           "scrolling_two_viewers": (scroll_cpu * 10.0).round() / 10.0},
        "chromium_webrtc": stats,
        "fidelity": {"webrtc": webrtc_fidelity, "webcodecs": webcodecs_fidelity},
    }))
}
