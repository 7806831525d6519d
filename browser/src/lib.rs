//! Headless Chromium (Debian's, driven by playwright-core through `js/browser.mjs`) as a
//! remote-controlled browser for end-to-end tests and benchmarks: named pages, JavaScript evaluated
//! in them, screenshots, and Playwright locators found by accessible names ([`Target`]) to click,
//! fill and read, plus real keyboard and mouse events.
//!
//! ```no_run
//! use airlock_browser::{Browser, Target};
//! # fn main() -> anyhow::Result<()> {
//! let mut b = Browser::launch(std::path::Path::new("/tmp/chromium.log"))?;
//! b.open("a", "http://127.0.0.1:7878/")?;
//! let card = Target::role("region", "Approval 3");
//! b.click("a", &Target::role("button", "Approve").within(&card))?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The directory with `browser.mjs` and its `node_modules` (installed by `scripts/setup`);
/// `AIRLOCK_BROWSER_JS` overrides it.
pub fn web_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_BROWSER_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("js"))
}

/// Something on a page, found the way a user finds it: by role and accessible name, by its label,
/// by its text, or (last resort) by a CSS selector; optionally inside another target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    spec: Value,
}

impl Target {
    /// The element with ARIA `role` whose accessible name is exactly `name`.
    pub fn role(role: &str, name: &str) -> Target {
        Target {
            spec: json!({"role": role, "name": name}),
        }
    }

    /// Every element with ARIA `role`, whatever its name.
    pub fn any_role(role: &str) -> Target {
        Target {
            spec: json!({"role": role}),
        }
    }

    /// The form control labelled exactly `label`.
    pub fn label(label: &str) -> Target {
        Target {
            spec: json!({"label": label}),
        }
    }

    /// The element whose text contains `text`.
    pub fn text(text: &str) -> Target {
        Target {
            spec: json!({"text": text}),
        }
    }

    /// Elements matching a CSS selector.
    pub fn css(selector: &str) -> Target {
        Target {
            spec: json!({"css": selector}),
        }
    }

    /// The element with `data-testid` `id`.
    pub fn test_id(id: &str) -> Target {
        Target {
            spec: json!({"testid": id}),
        }
    }

    /// The same, looked for only inside `parent`.
    pub fn within(mut self, parent: &Target) -> Target {
        self.spec["within"] = parent.spec.clone();
        self
    }

    /// Only those whose text contains `text`.
    pub fn has_text(mut self, text: &str) -> Target {
        self.spec["has_text"] = json!(text);
        self
    }

    /// The `n`th match (from 0).
    pub fn nth(mut self, n: usize) -> Target {
        self.spec["nth"] = json!(n);
        self
    }

    /// Names and labels match as substrings (case-insensitive) instead of exactly.
    pub fn inexact(mut self) -> Target {
        self.spec["exact"] = json!(false);
        self
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        let str_of = |k: &str| s[k].as_str().unwrap_or_default().to_string();
        if let Some(role) = s["role"].as_str() {
            write!(f, "{role}")?;
            if let Some(name) = s["name"].as_str() {
                write!(f, " {name:?}")?;
            }
        } else if s["label"].is_string() {
            write!(f, "the field labelled {:?}", str_of("label"))?;
        } else if s["text"].is_string() {
            write!(f, "the text {:?}", str_of("text"))?;
        } else if s["css"].is_string() {
            write!(f, "`{}`", str_of("css"))?;
        } else {
            write!(f, "test id {:?}", str_of("testid"))?;
        }
        if let Some(t) = s["has_text"].as_str() {
            write!(f, " with text {t:?}")?;
        }
        if let Some(n) = s["nth"].as_u64() {
            write!(f, " (match {n})")?;
        }
        if s["within"].is_object() {
            let parent = Target {
                spec: s["within"].clone(),
            };
            write!(f, " in {parent}")?;
        }
        Ok(())
    }
}

/// How long locator actions wait for their target unless told otherwise.
const ACT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Chromium with named pages.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    next_id: u64,
}

impl Browser {
    /// Launches Chromium; its console output goes to `log`.
    pub fn launch(log: &Path) -> Result<Browser> {
        let dir = web_dir();
        if !dir.join("node_modules/playwright-core").exists() {
            bail!("{} has no node_modules: run scripts/setup", dir.display());
        }
        let mut child = Command::new("node")
            .arg(dir.join("browser.mjs"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(log).context("create the browser log")?,
            ))
            .spawn()
            .context("start node browser/js/browser.mjs")?;
        let stdin = child.stdin.take().context("browser stdin")?;
        let stdout = child.stdout.take().context("browser stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut b = Browser {
            child,
            stdin,
            lines,
            next_id: 1,
        };
        b.reply(0, Duration::from_secs(60))
            .context("Chromium did not start")?;
        Ok(b)
    }

    fn reply(&mut self, id: u64, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("the browser did not answer request {id} in {timeout:?}")
                }
                Err(RecvTimeoutError::Disconnected) => bail!("the browser exited"),
            };
            let v: Value = serde_json::from_str(&line).with_context(|| format!("browser said {line:?}"))?;
            if v["id"].as_u64() != Some(id) {
                continue;
            }
            if v["ok"].as_bool() == Some(true) {
                return Ok(v["value"].clone());
            }
            bail!("browser request {id} failed: {}", v["error"]);
        }
    }

    fn call(&mut self, mut req: Value, timeout: Duration) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        req["id"] = json!(id);
        writeln!(self.stdin, "{req}").context("write to the browser")?;
        self.stdin.flush()?;
        self.reply(id, timeout)
    }

    /// Opens `url` in a new page called `page`.
    pub fn open(&mut self, page: &str, url: &str) -> Result<()> {
        self.call(
            json!({"op": "open", "page": page, "url": url}),
            Duration::from_secs(60),
        )?;
        Ok(())
    }

    /// Opens `url` in a new page whose WebSockets with `ws_url_part` in their URL go through a gate
    /// that [`Browser::hold_ws`] can close (server-to-page messages wait, in order).
    pub fn open_gated(&mut self, page: &str, url: &str, ws_url_part: &str) -> Result<()> {
        self.call(
            json!({"op": "open", "page": page, "url": url, "ws_gate": ws_url_part}),
            Duration::from_secs(60),
        )?;
        Ok(())
    }

    /// Holds back (`true`) or delivers and lets through again (`false`) what the server sends on
    /// the gated WebSockets of a page opened with [`Browser::open_gated`]; returns how many
    /// messages were held (when holding: so far; when releasing: delivered now).
    pub fn hold_ws(&mut self, page: &str, hold: bool) -> Result<u64> {
        let v = self
            .call(
                json!({"op": "ws_gate", "page": page, "hold": hold}),
                Duration::from_secs(30),
            )
            .with_context(|| format!("gate the WebSockets of page {page}"))?;
        Ok(v.as_u64().unwrap_or(0))
    }

    /// Runs a locator action on `target` (see `js/browser.mjs`).
    fn act(
        &mut self,
        page: &str,
        target: &Target,
        action: &str,
        value: Option<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let mut req = json!({
            "op": "act", "page": page, "target": target.spec, "action": action,
            "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(v) = value {
            req["value"] = v;
        }
        self.call(req, timeout + Duration::from_secs(30))
            .with_context(|| format!("{action} {target} in page {page}"))
    }

    /// Clicks `target` (waiting up to 10 s for it to be visible, enabled and still).
    pub fn click(&mut self, page: &str, target: &Target) -> Result<()> {
        self.act(page, target, "click", None, ACT_TIMEOUT)?;
        Ok(())
    }

    /// Replaces the value of the text field `target` with `value`.
    pub fn fill(&mut self, page: &str, target: &Target, value: &str) -> Result<()> {
        self.act(page, target, "fill", Some(json!(value)), ACT_TIMEOUT)?;
        Ok(())
    }

    /// Focuses `target` and presses `key` (Playwright key names: `Enter`, `Control+a`…).
    pub fn press(&mut self, page: &str, target: &Target, key: &str) -> Result<()> {
        self.act(page, target, "press", Some(json!(key)), ACT_TIMEOUT)?;
        Ok(())
    }

    /// Waits up to `timeout` until `target` is visible.
    pub fn wait_visible(&mut self, page: &str, target: &Target, timeout: Duration) -> Result<()> {
        self.act(page, target, "wait", Some(json!("visible")), timeout)?;
        Ok(())
    }

    /// Waits up to `timeout` until `target` is hidden or gone.
    pub fn wait_hidden(&mut self, page: &str, target: &Target, timeout: Duration) -> Result<()> {
        self.act(page, target, "wait", Some(json!("hidden")), timeout)?;
        Ok(())
    }

    /// How many elements match `target` now.
    pub fn count(&mut self, page: &str, target: &Target) -> Result<u64> {
        let v = self.act(page, target, "count", None, ACT_TIMEOUT)?;
        v.as_u64()
            .with_context(|| format!("count of {target} in page {page} is {v}"))
    }

    /// The rendered text of `target` (which must match one element).
    pub fn text(&mut self, page: &str, target: &Target) -> Result<String> {
        let v = self.act(page, target, "text", None, ACT_TIMEOUT)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The rendered text of every element matching `target`, in document order.
    pub fn texts(&mut self, page: &str, target: &Target) -> Result<Vec<String>> {
        let v = self.act(page, target, "texts", None, ACT_TIMEOUT)?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The ARIA snapshot of `target` (Playwright's YAML of roles and accessible names), for
    /// diagnostics.
    pub fn aria_snapshot(&mut self, page: &str, target: &Target) -> Result<String> {
        let v = self.act(page, target, "aria", None, ACT_TIMEOUT)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The attribute `name` of `target`, if it has one.
    pub fn attr(&mut self, page: &str, target: &Target, name: &str) -> Result<Option<String>> {
        let v = self.act(page, target, "attr", Some(json!(name)), ACT_TIMEOUT)?;
        Ok(v.as_str().map(str::to_string))
    }

    /// Calls the JavaScript function expression `function` (e.g. `el => el.naturalWidth`) with
    /// the element `target` and returns what it returns.
    pub fn eval_on(&mut self, page: &str, target: &Target, function: &str) -> Result<Value> {
        self.act(page, target, "eval", Some(json!(function)), ACT_TIMEOUT)
    }

    /// Clicks `target`, waits for the download it starts and saves it to `to`; returns the file
    /// name the page suggested.
    pub fn download(&mut self, page: &str, target: &Target, to: &Path) -> Result<String> {
        let v = self.act(page, target, "download", Some(json!(to)), Duration::from_secs(30))?;
        Ok(v["name"].as_str().unwrap_or_default().to_string())
    }

    /// Presses a key or combination (`Control+Alt+Enter`) on the page, as real key events to
    /// whatever has the focus.
    pub fn keyboard_press(&mut self, page: &str, keys: &str) -> Result<()> {
        self.call(
            json!({"op": "keyboard", "page": page, "press": keys}),
            Duration::from_secs(30),
        )
        .with_context(|| format!("press {keys} in page {page}"))?;
        Ok(())
    }

    /// Types `text` as real key events to whatever has the focus, the way a person on a US
    /// keyboard does: one key press per character, with Shift held for capitals and shifted
    /// symbols (`>` is Shift+Period), so consoles that forward physical keys see the Shift.
    pub fn keyboard_type(&mut self, page: &str, text: &str) -> Result<()> {
        let timeout = Duration::from_secs(30) + Duration::from_millis(50) * text.len() as u32;
        self.call(json!({"op": "keyboard", "page": page, "type": text}), timeout)
            .with_context(|| format!("type {text:?} in page {page}"))?;
        Ok(())
    }

    /// Clicks the mouse at `(x, y)` CSS pixels of the page's viewport.
    pub fn mouse_click(&mut self, page: &str, x: f64, y: f64) -> Result<()> {
        self.call(
            json!({"op": "mouse", "page": page, "action": "click", "x": x, "y": y}),
            Duration::from_secs(30),
        )
        .with_context(|| format!("click at ({x}, {y}) in page {page}"))?;
        Ok(())
    }

    /// Evaluates a JavaScript expression in a page (a Promise is awaited).
    pub fn eval(&mut self, page: &str, expr: &str) -> Result<Value> {
        self.call(
            json!({"op": "eval", "page": page, "expr": expr}),
            Duration::from_secs(120),
        )
    }

    /// Polls an expression until it is truthy; returns its last value.
    pub fn wait(&mut self, page: &str, expr: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(page, expr)?;
            let truthy = !matches!(&v, Value::Null | Value::Bool(false))
                && v.as_f64() != Some(0.0)
                && v.as_str() != Some("");
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let state = self
                    .eval(
                        page,
                        "typeof airlockViewer === 'undefined' ? null : JSON.stringify({state: airlockViewer.state, \
                         mode: airlockViewer.mode, lease: airlockViewer.lease, stills: airlockViewer.stills, \
                         messages: airlockViewer.messages, errors: airlockViewer.errors, \
                         clientErrors: airlockViewer.clientErrors, frames: airlockViewer.framesDecoded})",
                    )
                    .unwrap_or(Value::Null);
                bail!("`{expr}` stayed falsy for {timeout:?} in page {page}; viewer state: {state}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a screenshot of a page.
    pub fn screenshot(&mut self, page: &str, path: &Path) -> Result<()> {
        self.call(
            json!({"op": "screenshot", "page": page, "path": path}),
            Duration::from_secs(60),
        )
        .with_context(|| format!("screenshot of page {page}"))?;
        Ok(())
    }

    /// Closes a page.
    pub fn close(&mut self, page: &str) -> Result<()> {
        self.call(json!({"op": "close", "page": page}), Duration::from_secs(30))?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
