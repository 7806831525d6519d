//! The desktop inside real sandboxes, on both backends: screenshots, typing, clicks and drags,
//! exec, and the absence of any network.

use std::time::Duration;

use airlock_protocol::{Button, ErrorKind, ExecRequest, Input};
use airlock_sandbox::{BackendChoice, ChannelError};
use airlock_test_kit::e2e::{guest_pointer, Env, Sandbox};
use anyhow::{ensure, Result};

fn screen_is_drawn(sb: &Sandbox<'_>) -> Result<()> {
    // The terminal comes up after the agent; it announces when it has the focus and a shell.
    sb.client.wait_terminal_ready(Duration::from_secs(120))?;
    let shot = sb.wait_for("a non-blank screen", Duration::from_secs(60), || {
        let s = sb.client.screenshot()?;
        Ok((s.distinct_colors(8) > 1).then_some(s))
    })?;
    ensure!(
        (shot.width, shot.height) == (1280, 800),
        "screenshot is {}x{}",
        shot.width,
        shot.height
    );
    ensure!(shot.rgba.len() == 1280 * 800 * 4);
    let png = shot.png()?;
    ensure!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    Ok(())
}

fn boot_screenshot(backend: BackendChoice, name: &str) -> Result<()> {
    let env = Env::new(name);
    let sb = env.create(backend)?;
    ensure!((sb.client.info.screen_w, sb.client.info.screen_h) == (1280, 800));
    screen_is_drawn(&sb)
}

#[test]
fn gvisor_boots_to_a_1280x800_desktop() -> Result<()> {
    boot_screenshot(BackendChoice::Gvisor, "boot-gv")
}

#[test]
fn microvm_boots_to_a_1280x800_desktop() -> Result<()> {
    boot_screenshot(BackendChoice::Microvm, "boot-vm")
}

fn type_then_exec(backend: BackendChoice, name: &str) -> Result<()> {
    let env = Env::new(name);
    let sb = env.create(backend)?;
    screen_is_drawn(&sb)?;
    sb.client.input(Input::Type {
        text: "echo typed-by-airlock $((6*7)) > /tmp/typed.txt".into(),
    })?;
    sb.client.input(Input::Key {
        combo: "Return".into(),
    })?;
    let content = sb.wait_for(
        "the typed command to write its file",
        Duration::from_secs(30),
        || {
            let r = sb.client.exec(ExecRequest {
                argv: vec!["cat".into(), "/tmp/typed.txt".into()],
                stdin: vec![],
                timeout_ms: 10_000,
                output_cap: 1024,
            })?;
            Ok((r.exit_code == Some(0)).then(|| String::from_utf8_lossy(&r.stdout).into_owned()))
        },
    )?;
    // The shell evaluated the arithmetic, so this went through the terminal, not around it.
    ensure!(content == "typed-by-airlock 42\n", "file holds {content:?}");
    Ok(())
}

#[test]
fn gvisor_typing_into_the_terminal_runs_the_command() -> Result<()> {
    type_then_exec(BackendChoice::Gvisor, "type-gv")
}

#[test]
fn microvm_typing_into_the_terminal_runs_the_command() -> Result<()> {
    type_then_exec(BackendChoice::Microvm, "type-vm")
}

/// Mean brightness of a rectangle of a screenshot.
fn brightness(s: &airlock_sandbox::Screenshot, x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
    let mut sum = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            let i = (y * usize::from(s.width) + x) * 4;
            sum += u64::from(s.rgba[i]) + u64::from(s.rgba[i + 1]) + u64::from(s.rgba[i + 2]);
        }
    }
    sum as f64 / ((x1 - x0) * (y1 - y0) * 3) as f64
}

fn click_and_drag(backend: BackendChoice, name: &str) -> Result<()> {
    let env = Env::new(name);
    let sb = env.create(backend)?;
    screen_is_drawn(&sb)?;
    sb.client.input(Input::Click {
        x: 321,
        y: 234,
        button: Button::Left,
        count: 1,
    })?;
    ensure!(guest_pointer(&sb)? == (321, 234), "click landed elsewhere");
    ensure!(sb.client.pointer()? == (321, 234));

    // A drag across a line of text selects it: xterm paints the selection in reverse video.
    sb.client.input(Input::Type {
        text: "clear; echo MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM".into(),
    })?;
    sb.client.input(Input::Key {
        combo: "Return".into(),
    })?;
    // The echoed line (second text row) shows up as grey text on black.
    sb.wait_for("the echoed line", Duration::from_secs(30), || {
        Ok((brightness(&sb.client.screenshot()?, 6, 16, 200, 24) > 20.0).then_some(()))
    })?;
    let before = brightness(&sb.client.screenshot()?, 10, 14, 200, 25);
    sb.client.input(Input::Drag {
        path: vec![(2, 19), (100, 19), (230, 19)],
        button: Button::Left,
    })?;
    ensure!(guest_pointer(&sb)? == (230, 19), "drag ended elsewhere");
    let after = sb.wait_for("the selection highlight", Duration::from_secs(20), || {
        let b = brightness(&sb.client.screenshot()?, 10, 14, 200, 25);
        Ok((b > before + 60.0).then_some(b))
    })?;
    ensure!(
        after > before,
        "selection did not brighten the dragged line ({before} -> {after})"
    );
    Ok(())
}

#[test]
fn gvisor_click_and_drag_land_where_asked() -> Result<()> {
    click_and_drag(BackendChoice::Gvisor, "drag-gv")
}

#[test]
fn microvm_click_and_drag_land_where_asked() -> Result<()> {
    click_and_drag(BackendChoice::Microvm, "drag-vm")
}

fn exec_semantics(backend: BackendChoice, name: &str) -> Result<()> {
    let env = Env::new(name);
    let sb = env.create(backend)?;
    let req = |argv: &[&str], timeout_ms: u32, output_cap: u32| ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        stdin: vec![],
        timeout_ms,
        output_cap,
    };
    let r = sb
        .client
        .exec(req(&["sh", "-c", "echo out; echo err >&2; exit 7"], 30_000, 1024))?;
    ensure!(r.exit_code == Some(7), "exit code {:?}", r.exit_code);
    ensure!(r.stdout == b"out\n" && r.stderr == b"err\n", "{r:?}");

    let r = sb.client.exec(ExecRequest {
        stdin: b"from stdin".to_vec(),
        ..req(&["cat"], 30_000, 1024)
    })?;
    ensure!(r.stdout == b"from stdin");

    let r = sb
        .client
        .exec(req(&["sh", "-c", "sleep 60 & sleep 60"], 1_500, 1024))?;
    ensure!(
        r.timed_out && r.exit_code.is_none() && r.signal == Some(9),
        "{r:?}"
    );
    ensure!(r.duration_ms < 20_000, "the timeout took {} ms", r.duration_ms);
    // The background sleep died with its group.
    let left = sb.sh("ps -eo comm | grep -c '^sleep$' || true")?;
    ensure!(left.trim() == "0", "{left} sleep processes survived the timeout");

    let r = sb
        .client
        .exec(req(&["head", "-c", "300000", "/dev/zero"], 30_000, 4096))?;
    ensure!(
        r.stdout.len() == 4096 && r.stdout_truncated && r.exit_code == Some(0),
        "{:?}",
        (r.stdout.len(), r.stdout_truncated)
    );

    match sb.client.exec(req(&["/usr/lib/os-release"], 30_000, 1024)) {
        Err(ChannelError::Guest {
            kind: ErrorKind::NotAllowed,
            message,
        }) => {
            ensure!(message.contains("allowlist"), "{message}")
        }
        other => anyhow::bail!("exec outside the allowlist gave {other:?}"),
    }
    match sb.client.exec(req(&[], 30_000, 1024)) {
        Err(ChannelError::Guest {
            kind: ErrorKind::InvalidRequest,
            ..
        }) => {}
        other => anyhow::bail!("empty argv gave {other:?}"),
    }
    Ok(())
}

#[test]
fn gvisor_exec_exit_codes_timeouts_and_caps() -> Result<()> {
    exec_semantics(BackendChoice::Gvisor, "exec-gv")
}

#[test]
fn microvm_exec_exit_codes_timeouts_and_caps() -> Result<()> {
    exec_semantics(BackendChoice::Microvm, "exec-vm")
}

fn no_network(backend: BackendChoice, name: &str) -> Result<()> {
    let env = Env::new(name);
    let sb = env.create(backend)?;
    let dev = sb.sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")?;
    ensure!(
        dev.split_whitespace().collect::<Vec<_>>() == ["lo"],
        "interfaces: {dev:?}"
    );
    let dns = sb.sh("getent hosts deb.debian.org; echo $?")?;
    ensure!(dns.trim() != "0", "a DNS lookup succeeded: {dns}");
    for target in ["1.1.1.1/80", "10.0.2.2/22", "127.0.0.1/1"] {
        let tcp = sb.sh(&format!(
            "timeout 10 bash -c 'echo > /dev/tcp/{target}' 2>/dev/null; echo $?"
        ))?;
        ensure!(tcp.trim() != "0", "a TCP connect to {target} succeeded");
    }
    Ok(())
}

#[test]
fn gvisor_has_no_network() -> Result<()> {
    no_network(BackendChoice::Gvisor, "net-gv")
}

#[test]
fn microvm_has_no_network() -> Result<()> {
    no_network(BackendChoice::Microvm, "net-vm")
}

#[test]
fn bad_input_is_refused_with_a_reason() -> Result<()> {
    let env = Env::new("badinput");
    let sb = env.create(BackendChoice::Gvisor)?;
    for (input, needle) in [
        (Input::MouseMove { x: 5000, y: 1 }, "outside the 1280x800 screen"),
        (
            Input::Key {
                combo: "ctrl+;rm".into(),
            },
            "not a key name",
        ),
        (
            Input::Type {
                text: "x".repeat(70_000),
            },
            "over the 65536-byte limit",
        ),
    ] {
        match sb.client.input(input) {
            Err(ChannelError::Guest {
                kind: ErrorKind::InvalidRequest,
                message,
            }) => {
                ensure!(message.contains(needle), "{message:?} lacks {needle:?}")
            }
            other => anyhow::bail!("expected a refusal mentioning {needle:?}, got {other:?}"),
        }
    }
    // The sandbox is still fine.
    sb.client.ping()?;
    Ok(())
}

/// The desktop profile: a browser that starts and draws, with no network behind it.
#[test]
fn gvisor_desktop_profile_runs_a_browser() -> Result<()> {
    let env = Env::new("desktop-profile");
    let sb = env.create_from(BackendChoice::Gvisor, airlock_guest_image::Profile::Desktop)?;
    sb.sh("test -x /usr/lib/firefox-esr/firefox-esr && test -x /usr/bin/mousepad")?;
    // exec kills what the command leaves in its process group: a GUI app is started in its own.
    sb.sh("DISPLAY=:0 setsid -f firefox-esr --new-instance about:blank > /tmp/ff.log 2>&1; sleep 2")?;
    sb.wait_for("the browser window", Duration::from_secs(120), || {
        let running = sb.sh("ps -eo comm | grep -c '^firefox-esr' || true")?;
        let shot = sb.client.screenshot()?;
        // Browser chrome: many colours where the terminal had a handful.
        Ok((running.trim() != "0" && shot.distinct_colors(64) >= 64).then_some(()))
    })?;
    Ok(())
}
