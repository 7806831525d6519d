//! Fidelity of the live view (part of `airlock bench stream`): what a viewer page shows, read back
//! from the page (`airlockViewer.fidelity`: the picture with the refinement layer over it, or the
//! picture alone), against the guest's own screenshot of the same screen.
//!
//! Each figure repeats a change whose end state is known: the screen is brought to a state once and
//! screenshotted at rest (the reference), then brought back and changed again while the page
//! watches every animation frame until what it shows equals the reference.
//! - **typing**: a line typed at once into the terminal (and erased with Ctrl+U);
//! - **scroll**: `clear; seq 1 400` scrolls the terminal, then it rests;
//! - **while typing**: while the line is typed at about 8 keys a second, how often the rest of the
//!   screen (outside the line's rows) is shown exactly (sampled every 100 ms).
//!
//! While it waits, the page reads back only the line's rows (for the scroll: first the bottom 64
//! rows, where the last numbers and the prompt end up, then the whole screen): reading
//! 4 MB back on every frame slowed the page enough to delay its acknowledgements, which the server
//! took for a slow link.
//!
//! `exact_ms` counts from the last key sent (typing) or the Enter (scroll);
//! `exact_after_last_frame_ms` from the last video frame the page showed before the picture became
//! exact. PSNR is over RGB; `null` means identical.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use airlock_browser::Browser;
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

/// The line typed (not run: Ctrl+U erases it).
const LINE: &str = "echo hello from the demo agent root@sandbox:~# 0123456789";
/// The start of it, typed slowly while the rest of the screen is watched.
const SLOW: &str = "echo hello from the demo";
/// How long a changed screen is given to settle before its reference screenshot.
const SETTLE: Duration = Duration::from_millis(1_200);
/// How long the page may wait for an exact picture.
const EXACT_TIMEOUT_MS: u64 = 5_000;

/// Saves the sandbox's screen and returns it as base64 PNG.
fn screenshot(exe: &Path, state: &Path, sandbox: &str) -> Result<String> {
    let file = state.join("fidelity-reference.png");
    let out = Command::new(exe)
        .args(["sandbox", "screenshot", sandbox, "--output"])
        .arg(&file)
        .env("AIRLOCK_STATE_DIR", state)
        .output()
        .context("run airlock sandbox screenshot")?;
    if !out.status.success() {
        bail!("the screenshot failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(std::fs::read(&file)?))
}

/// Screenshots the sandbox and hands it to the page as reference `name`.
fn reference(b: &mut Browser, page: &str, exe: &Path, state: &Path, sandbox: &str, name: &str) -> Result<()> {
    let png = screenshot(exe, state, sandbox)?;
    let ok = b.eval(page, &format!("airlockViewer.setReference({name:?}, {png:?})"))?;
    if ok != Value::Bool(true) {
        bail!("the page could not decode the reference screenshot");
    }
    Ok(())
}

/// Ctrl+U: erases the typed line.
fn erase_line(b: &mut Browser, page: &str) -> Result<()> {
    b.eval(
        page,
        "airlockViewer.sendKey(0xffe3, true); airlockViewer.sendKey(0x75, true); \
         airlockViewer.sendKey(0x75, false); airlockViewer.sendKey(0xffe3, false)",
    )?;
    Ok(())
}

/// Waits until the page shows reference `name` exactly in `area` (null: the whole screen); the
/// page's answer, or null on timeout.
fn until_exact(b: &mut Browser, page: &str, name: &str, area: &Value) -> Result<Value> {
    b.eval(
        page,
        &format!("airlockViewer.untilExact({name:?}, {EXACT_TIMEOUT_MS}, {area})"),
    )
}

/// The shown picture against reference `name`: with the refinement layer and without, over the
/// screen and over `area`.
fn psnr(b: &mut Browser, page: &str, name: &str, area: &Value) -> Result<Value> {
    let f = |b: &mut Browser, layer: bool, area: &Value| {
        b.eval(
            page,
            &format!("airlockViewer.fidelity({name:?}, {{layer: {layer}, area: {area}}})"),
        )
    };
    let shown = f(b, true, &Value::Null)?;
    let shown_text = f(b, true, area)?;
    let video = f(b, false, &Value::Null)?;
    let video_text = f(b, false, area)?;
    Ok(json!({
        "shown_psnr_db": {"screen": shown["psnrDb"], "text": shown_text["psnrDb"]},
        "shown_differing_pixels": shown["differing"],
        "shown_differing_area": shown["where"],
        "picture_alone_psnr_db": {"screen": video["psnrDb"], "text": video_text["psnrDb"]},
        "picture_alone_differing_pixels": video["differing"],
    }))
}

/// The fidelity figures of one viewer page whose operator holds control.
pub(crate) async fn measure(
    b: &mut Browser,
    page: &str,
    exe: &Path,
    state: &Path,
    sandbox: &str,
) -> Result<Value> {
    let settle = || tokio::time::sleep(SETTLE);
    // The terminal cleared and at rest with an empty command line, then with the line typed.
    erase_line(b, page)?;
    b.eval(page, "airlockViewer.typeText('clear\\n')")?;
    settle().await;
    reference(b, page, exe, state, sandbox, "before")?;
    b.eval(page, &format!("airlockViewer.typeText({LINE:?})"))?;
    settle().await;
    reference(b, page, exe, state, sandbox, "typed")?;
    let text = b.eval(page, "airlockViewer.referenceArea('before', 'typed')")?;
    if text.is_null() {
        bail!("typing a line did not change the sandbox's screen");
    }
    // The line's rows, where typing changes the screen.
    let rows = json!({"x": 0, "y": text["y"], "width": 1280, "height": text["height"]});
    erase_line(b, page)?;
    let erased = until_exact(b, page, "before", &rows)?;

    // Typing: the whole line at once, then until it is shown exactly.
    b.eval(page, &format!("airlockViewer.typeText({LINE:?})"))?;
    let typed = until_exact(b, page, "typed", &rows)?;
    let typed_psnr = psnr(b, page, "typed", &text)?;

    // While typing slowly, the rest of the screen (outside the line's rows).
    erase_line(b, page)?;
    until_exact(b, page, "before", &rows)?;
    b.eval(
        page,
        &format!(
            "(async () => {{ for (const c of {SLOW:?}) {{ airlockViewer.typeText(c); \
             await new Promise(r => setTimeout(r, 125)); }} }})(); true"
        ),
    )?;
    let slow_ms = SLOW.len() as u64 * 125;
    let watched = b.eval(
        page,
        &format!("airlockViewer.watchFidelity('before', {slow_ms}, {{skip: {rows}}})"),
    )?;
    erase_line(b, page)?;
    until_exact(b, page, "before", &rows)?;

    // Scrolling: run the same command twice from a cleared terminal; the second run ends on the
    // first run's screen.
    let scroll = "clear; seq 1 400\\n";
    b.eval(page, &format!("airlockViewer.typeText(\"{scroll}\")"))?;
    settle().await;
    reference(b, page, exe, state, sandbox, "scrolled")?;
    b.eval(page, "airlockViewer.typeText('clear\\n')")?;
    until_exact(b, page, "before", &rows)?;
    b.eval(page, &format!("airlockViewer.typeText(\"{scroll}\")"))?;
    // The bottom rows end the scroll (the last numbers and the prompt); the whole screen is
    // compared once it is exact there.
    let bottom = json!({"x": 0, "y": 736, "width": 1280, "height": 64});
    let band = until_exact(b, page, "scrolled", &bottom)?;
    let mut scrolled = until_exact(b, page, "scrolled", &Value::Null)?;
    // Counted from the Enter: the wait for the bottom rows, then for the rest.
    if let (Some(a), Some(b)) = (band["ms"].as_f64(), scrolled["ms"].as_f64()) {
        scrolled["ms"] = json!(((a + b) * 10.0).round() / 10.0);
    }
    let scrolled_psnr = psnr(b, page, "scrolled", &Value::Null)?;
    // Leave the terminal as it was found: cleared, the prompt on the first row.
    b.eval(page, "airlockViewer.typeText('clear\\n')")?;
    until_exact(b, page, "before", &rows)?;

    let exact = |v: &Value| json!({"exact_ms": v["ms"], "exact_after_last_frame_ms": v["afterLastFrameMs"]});
    Ok(json!({
        "typing": {"text_area": text, "after_erase": exact(&erased), "after_typing": exact(&typed), "at_rest": typed_psnr},
        "scroll": {"after_scroll": exact(&scrolled), "at_rest": scrolled_psnr},
        "while_typing": {"rest_of_screen_samples": watched["frames"], "rest_of_screen_exact_samples": watched["exactFrames"],
                         "rest_of_screen_worst_psnr_db": watched["worstPsnrDb"]},
        "goal_exact_after_last_change_ms": 300,
    }))
}
