//! A real `airlock serve` process in a test's private state directory, with clients for its
//! operator API (HTTP + WebSocket events) and its MCP server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::e2e::{bin_dir, cache_dir, Env};

/// A running `airlock serve`.
pub struct Serve {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The agent bearer token.
    pub agent_token: String,
    /// The operator bearer token.
    pub operator_token: String,
    /// The operator id behind that token.
    pub operator: String,
    http: reqwest::Client,
    log: std::path::PathBuf,
}

impl Serve {
    /// Starts `airlock serve --listen 127.0.0.1:0 ARGS…` in `env`'s state dir and waits until it listens.
    pub fn start(env: &Env, args: &[&str]) -> Result<Serve> {
        Serve::start_at(env, "127.0.0.1:0", args)
    }

    /// Starts `airlock serve --listen LISTEN ARGS…` (a restart on the address of an earlier serve
    /// keeps a browser's origin) and waits until it listens.
    pub fn start_at(env: &Env, listen: &str, args: &[&str]) -> Result<Serve> {
        let mut child = Command::new(bin_dir().join("airlock"))
            .arg("serve")
            .args(["--listen", listen])
            .args(args)
            .env("AIRLOCK_STATE_DIR", &env.root)
            .env("AIRLOCK_CACHE_DIR", cache_dir())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(env.root.join("serve.log")).context("create serve.log")?,
            ))
            .spawn()
            .context("spawn airlock serve")?;
        let stdout = child.stdout.take().context("serve stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(env.root.join("serve.log")).unwrap_or_default();
                bail!("airlock serve did not start:\n{log}");
            }
        };
        let ready: Value = serde_json::from_str(&line).with_context(|| format!("serve printed {line:?}"))?;
        let tokens: Value = serde_json::from_slice(&std::fs::read(env.root.join("tokens.json"))?)?;
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Ok(Serve {
            child: Some(child),
            base: format!("http://{}", s(&ready["listen"])),
            agent_token: s(&tokens["agent_token"]),
            operator_token: s(&tokens["operator_token"]),
            operator: s(&tokens["operator"]),
            http: reqwest::Client::new(),
            log: env.root.join("serve.log"),
        })
    }

    /// Where the server's log goes.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// The MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// An MCP client with the agent token.
    pub async fn agent(&self) -> Result<airlock_agents::Gateway> {
        Ok(airlock_agents::Gateway::connect(&self.mcp_url(), &self.agent_token).await?)
    }

    /// GET an operator API path; returns (status, JSON body).
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = self
            .http
            .get(format!("{}/api{path}", self.base))
            .bearer_auth(&self.operator_token)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// POST JSON to an operator API path; returns (status, JSON body).
    pub async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}/api{path}", self.base))
            .bearer_auth(&self.operator_token)
            .json(&body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// The one sandbox serve started.
    pub async fn only_sandbox(&self) -> Result<String> {
        let (_, list) = self.get("/sandboxes").await?;
        match list.as_array().map(|a| a.as_slice()) {
            Some([one]) => Ok(one["id"].as_str().unwrap_or_default().to_string()),
            _ => bail!("expected one sandbox, got {list}"),
        }
    }

    /// The hash of the sandbox's current screen (the screenshot's ETag).
    pub async fn frame_hash(&self, sandbox: &str) -> Result<String> {
        let r = self
            .http
            .get(format!("{}/api/sandboxes/{sandbox}/screenshot", self.base))
            .bearer_auth(&self.operator_token)
            .send()
            .await?;
        let etag = r
            .headers()
            .get("etag")
            .context("no ETag on the screenshot")?
            .to_str()?;
        Ok(etag.trim_matches('"').to_string())
    }

    /// Waits up to `timeout` until the sandbox's terminal has the focus and a shell (the guest
    /// writes a file then).
    pub async fn wait_terminal(&self, env: &Env, sandbox: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = env.airlock(&[
                "sandbox",
                "exec",
                sandbox,
                "--",
                "cat",
                airlock_protocol::TERMINAL_READY_FILE,
            ]);
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the terminal of {sandbox} was not ready within {timeout:?}; last error: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every ledger entry (optionally of one sandbox), in order.
    pub async fn ledger(&self, sandbox: Option<&str>) -> Result<Vec<Value>> {
        let path = match sandbox {
            Some(s) => format!("/ledger?sandbox={s}&limit=10000"),
            None => "/ledger?limit=10000".into(),
        };
        let (status, v) = self.get(&path).await?;
        if status != 200 {
            bail!("ledger query failed: {status} {v}");
        }
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Subscribes to the operator event stream (the first message, a snapshot, is consumed).
    pub async fn events(&self) -> Result<Events> {
        let url = format!(
            "{}/api/events?token={}",
            self.base.replace("http://", "ws://"),
            self.operator_token
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        let first = ws.next().await.context("no snapshot")??;
        let v: Value = serde_json::from_str(first.to_text()?)?;
        if v["type"] != "snapshot" {
            bail!("the first event is not a snapshot: {v}");
        }
        Ok(Events { ws })
    }

    /// Approves/denies/edits approval `id` of `sandbox`.
    pub async fn decide(&self, sandbox: &str, id: u64, body: Value) -> Result<Value> {
        let (status, v) = self
            .post(&format!("/sandboxes/{sandbox}/approvals/{id}"), body)
            .await?;
        if status != 200 {
            bail!("decision refused: {status} {v}");
        }
        Ok(v)
    }

    /// Starts an agent call the policy will ask about (from a client of its own) and waits for
    /// its approval event; returns the pending call and the event.
    pub async fn ask(
        &self,
        events: &mut Events,
        tool: &'static str,
        args: Value,
    ) -> Result<(Pending, Value)> {
        let agent = self.agent().await?;
        let call = tokio::spawn(async move { agent.call(tool, args).await });
        let ask = events
            .next_of("approval_requested", Duration::from_secs(60))
            .await?;
        Ok((call, ask))
    }

    /// Kills the server with SIGKILL (no chance to clean up).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server with SIGTERM and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An agent call in flight.
pub type Pending = tokio::task::JoinHandle<Result<airlock_agents::ToolOutcome, airlock_agents::AgentError>>;

/// The operator event stream.
pub struct Events {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Events {
    /// The next event whose `type` is `ty`, within `timeout`.
    pub async fn next_of(&mut self, ty: &str, timeout: Duration) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .with_context(|| format!("no {ty} event within {timeout:?}"))?
                .context("the event stream closed")??;
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t)?;
                if v["event"]["type"] == ty {
                    return Ok(v["event"].clone());
                }
            }
        }
    }
}

/// Arguments for the `computer` tool with a sandbox.
pub fn computer(sandbox: &str, mut action: Value) -> Value {
    action["sandbox"] = json!(sandbox);
    action
}
