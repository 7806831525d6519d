//! Headless Chromium (Debian's, driven by playwright-core through `js/browser.mjs`) as a
//! remote-controlled browser for end-to-end tests and benchmarks: named pages, JavaScript evaluated
//! in them, screenshots.

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
        )?;
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
