//! The real desktop app: `airlock-app` (Tauri on WebKitGTK) under Xvfb, driven through
//! tauri-driver + WebKitWebDriver (`browser/js/tauri-app.mjs`). It starts its own gVisor desktop
//! sandbox and the demo agent; the operator sees the grid with a thumbnail, approves the agent's
//! first ask from the inbox with the keyboard, and the session's canvas draws video frames. The
//! ledger then holds that approval, decided by the app's operator, and verifies.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_domain::ApprovalState;
use airlock_records::{ApprovalResolved, Record};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::{bin_dir, cache_dir, Env};
use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A private Xvfb display, stopped on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Result<Xvfb> {
        for n in 140..240 {
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if socket.exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists() {
                continue;
            }
            let child = Command::new("Xvfb")
                .args([
                    &format!(":{n}"),
                    "-screen",
                    "0",
                    "1440x900x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("run Xvfb (apt xvfb; scripts/setup installs it)")?;
            let mut x = Xvfb {
                child,
                display: format!(":{n}"),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if socket.exists() {
                    return Ok(x);
                }
                if let Ok(Some(status)) = x.child.try_wait() {
                    bail!("Xvfb :{n} exited at once ({status})");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = x.child.kill();
            bail!("Xvfb :{n} did not open its socket");
        }
        bail!("no free X display number between 140 and 240")
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn tauri_driver() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
    home.join("bin/tauri-driver")
}

#[test]
fn the_desktop_app_shows_the_grid_approves_an_ask_and_draws_video() -> Result<()> {
    let env = Env::new("app");
    let x = Xvfb::start()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let artifacts = root.join("target/test-artifacts/desktop-app");
    let app = bin_dir().join("airlock-app");
    if !app.exists() {
        bail!("{} is missing: cargo build --workspace --bins", app.display());
    }
    let started = Instant::now();
    let out = Command::new("node")
        .arg(root.join("browser/js/tauri-app.mjs"))
        .env("DISPLAY", &x.display)
        .env("APP", &app)
        .env(
            "APP_ARGS",
            r#"["--listen","127.0.0.1:0","--backend","gvisor","--approval-timeout","600"]"#,
        )
        .env("TAURI_DRIVER", tauri_driver())
        .env("WD_PORT", free_port()?.to_string())
        .env("WD_NATIVE_PORT", free_port()?.to_string())
        .env("ARTIFACTS", &artifacts)
        .env("AIRLOCK_STATE_DIR", &env.root)
        .env("AIRLOCK_CACHE_DIR", cache_dir())
        .env("RUST_LOG", "warn,airlock=info")
        .stderr(Stdio::inherit())
        .output()
        .context("run node browser/js/tauri-app.mjs")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let result: Value =
        serde_json::from_str(line).with_context(|| format!("tauri-app.mjs printed {stdout:?}"))?;
    eprintln!("desktop app scenario in {:?}: {result}", started.elapsed());
    if result["ok"] != Value::Bool(true) {
        bail!("the desktop app scenario failed: {}", result["error"]);
    }
    let frames = result["frames"].as_u64().unwrap_or(0);
    assert!(frames >= 2, "the canvas drew {frames} frames");
    assert_eq!(result["canvas"]["width"], 1280, "{result}");
    // WebKitGTK decodes H.264 with GStreamer's avdec_h264 (gstreamer1.0-libav, installed by setup):
    // the app gets the sharper, shared H.264 stream rather than VP8.
    let mode = result["mode"].as_str().unwrap_or_default();
    assert!(mode.contains("h264"), "the live view shows {mode:?}");
    // The screen rested: most of it is covered by exact pixels on the refinement layer.
    assert!(
        result["refined"].as_u64().unwrap_or(0) > 1280 * 800 / 2,
        "{result}"
    );
    let approved = result["approved"].as_u64().context("approved id")?;

    // The ledger (read while the sandbox still runs): the approval, by the app's operator.
    let export = env.airlock(&["ledger", "export"]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let operator = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    let lines: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let resolved: Vec<_> = records(&lines)?
        .into_iter()
        .filter(|(_, r)| matches!(r, Record::ApprovalResolved(x) if x.approval == approved))
        .collect();
    assert_eq!(resolved.len(), 1, "one resolution of approval {approved}");
    let (entry, record) = &resolved[0];
    assert!(
        matches!(
            record,
            Record::ApprovalResolved(ApprovalResolved {
                state: ApprovalState::Approved { .. },
                ..
            })
        ),
        "{record:?}"
    );
    assert_eq!(
        entry.body.actor.operator.as_deref(),
        Some(operator.as_str()),
        "{entry:?}"
    );
    env.ledger_verifies()?;
    Ok(())
}
