//! Who may do what, end to end: `airlock serve` with real gVisor sandboxes and a real SQLite
//! ledger, operators added with `airlock operator add NAME --role …`, and view links, driven over
//! the operator API, the events socket and the viewer socket (and one view link in real headless
//! Chromium). Every refusal is checked three ways: the 403 and its reason, that nothing of the
//! request happened, and its `access` record on the ledger.
//!
//! Each test has its own serve and sandbox, so one failure does not hide the others.

use std::time::Duration;

use airlock_browser::Browser;
use airlock_domain::{Forbidden, Permission, Role};
use airlock_ledger::Entry;
use airlock_records::{AccessRecord, Record};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::Serve;
use airlock_test_kit::e2e::{poll_async, Env};
use anyhow::{bail, ensure, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A minimal gVisor sandbox is enough to see, drive and link; asks wait long enough for a test.
const SERVE_ARGS: [&str; 6] = [
    "--backend",
    "gvisor",
    "--profile",
    "minimal",
    "--approval-timeout",
    "600",
];

/// The operator API as one bearer token sees it.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(serve: &Serve, token: &str) -> Api {
        Api {
            base: serve.base.clone(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let r = req.bearer_auth(&self.token).send().await?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.base)
    }

    async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    async fn post_bytes(&self, path: &str, bytes: &'static [u8]) -> Result<(u16, Value)> {
        self.send(self.http.post(self.url(path)).body(bytes)).await
    }

    async fn delete(&self, path: &str) -> Result<(u16, Value)> {
        self.send(self.http.delete(self.url(path))).await
    }

    /// A GET that must answer 200; returns the body.
    async fn ok(&self, path: &str) -> Result<Value> {
        let (status, v) = self.get(path).await?;
        ensure!(status == 200, "GET {path}: {status} {v}");
        Ok(v)
    }

    /// A GET of raw bytes; returns the status and the body.
    async fn get_bytes(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.bytes().await?.to_vec()))
    }
}

/// Asserts a 403 `{code: "forbidden", message}` whose message says `reason`.
fn forbidden(what: &str, (status, body): (u16, Value), reason: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(body["code"], "forbidden", "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(reason), "{what}: {message:?} lacks {reason:?}");
}

/// `airlock operator add NAME --role ROLE`; checks what it prints and returns the token.
fn add_operator(env: &Env, name: &str, role: &str) -> Result<String> {
    let out = env.airlock(&["operator", "add", name, "--role", role]);
    ensure!(
        out.status.success(),
        "operator add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(added["operator"], name, "{added}");
    assert_eq!(added["role"], role, "{added}");
    Ok(added["token"].as_str().context("token")?.to_string())
}

/// A serve with its sandbox, and an operator called `name` added with `role`.
async fn serve_with(name: &str, who: &str, role: &str) -> Result<(Env, Serve, String, Api)> {
    let env = Env::new(name);
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let sb = serve.only_sandbox().await?;
    let token = add_operator(&env, who, role)?;
    let api = Api::new(&serve, &token);
    Ok((env, serve, sb, api))
}

/// The admin's API (the operator serve started with).
fn admin(serve: &Serve) -> Api {
    Api::new(serve, &serve.operator_token)
}

/// Who holds control of `sb`, and the lease epoch, as the admin sees it.
async fn holder(serve: &Serve, sb: &str) -> Result<(Value, u64)> {
    let info = admin(serve).ok(&format!("/sandboxes/{sb}")).await?;
    Ok((
        info["session"]["holder"].clone(),
        info["session"]["epoch"].as_u64().context("epoch")?,
    ))
}

/// Every ledger entry, read as records.
async fn ledger(serve: &Serve) -> Result<Vec<(Entry, Record)>> {
    records(&serve.ledger(None).await?)
}

/// The access records on the ledger, with the operator (or link) each is by.
async fn access_records(serve: &Serve) -> Result<Vec<(Entry, AccessRecord)>> {
    Ok(ledger(serve)
        .await?
        .into_iter()
        .filter_map(|(e, r)| match r {
            Record::Access(a) => Some((e, a)),
            _ => None,
        })
        .collect())
}

/// The refusals on the ledger by `who`: (request, sandbox, why).
async fn refusals_of(serve: &Serve, who: &str) -> Result<Vec<(String, Option<String>, Forbidden)>> {
    Ok(access_records(serve)
        .await?
        .into_iter()
        .filter(|(e, _)| e.body.actor.operator.as_deref() == Some(who))
        .filter_map(|(e, a)| match a {
            AccessRecord::Refused { request, forbidden } => Some((request, e.body.sandbox, forbidden)),
            _ => None,
        })
        .collect())
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A viewer socket (`/api/sandboxes/ID/view?token=…`).
struct Viewer {
    ws: Socket,
}

impl Viewer {
    /// Connects with `token` and says hello (`transport` `none` or `webcodecs`); waits for the
    /// welcome and returns it.
    async fn open(serve: &Serve, sb: &str, token: &str, transport: &str) -> Result<(Viewer, Value)> {
        let url = format!(
            "{}/api/sandboxes/{sb}/view?token={token}",
            serve.base.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        let mut v = Viewer { ws };
        let codecs: &[&str] = if transport == "none" { &[] } else { &["h264"] };
        v.send(json!({"type": "hello", "transport": transport, "codecs": codecs, "focused": true}))
            .await?;
        let welcome = v.next_text("welcome", Duration::from_secs(30)).await?;
        Ok((v, welcome))
    }

    async fn send(&mut self, msg: Value) -> Result<()> {
        self.ws.send(Message::Text(msg.to_string().into())).await?;
        Ok(())
    }

    /// The next text message of `type` `ty` (others are skipped).
    async fn next_text(&mut self, ty: &str, timeout: Duration) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .with_context(|| format!("no {ty} message within {timeout:?}"))?
                .context("the viewer socket closed")??;
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t)?;
                if v["type"] == ty {
                    return Ok(v);
                }
            }
        }
    }

    /// The next binary message whose first byte is `tag`.
    async fn next_binary(&mut self, tag: u8, timeout: Duration) -> Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .with_context(|| format!("no binary message {tag} within {timeout:?}"))?
                .context("the viewer socket closed")??;
            if let Message::Binary(b) = msg {
                if b.first() == Some(&tag) {
                    return Ok(b.to_vec());
                }
            }
        }
    }
}

/// Waits until the server ends `ws` (a close frame, the end of the stream or a broken
/// connection), reading and dropping whatever comes before.
async fn closes(ws: &mut Socket, what: &str, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => bail!("{what} was still open {timeout:?} later"),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return Ok(()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Opens the events socket with `token`; returns it and its first message (the snapshot).
async fn events_socket(serve: &Serve, token: &str) -> Result<(Socket, Value)> {
    let url = format!(
        "{}/api/events?token={token}",
        serve.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .context("no snapshot on the events socket")?
        .context("the events socket closed")??;
    let v: Value = serde_json::from_str(first.to_text()?)?;
    ensure!(v["type"] == "snapshot", "the first event is not a snapshot: {v}");
    Ok((ws, v))
}

/// The ids of the sandboxes in a list of sandbox infos.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A view link made by the admin for `sb`: (link id, token, the whole answer).
async fn make_link(serve: &Serve, sb: &str, body: Value) -> Result<(String, String, Value)> {
    let (status, created) = admin(serve).post(&format!("/sandboxes/{sb}/links"), body).await?;
    ensure!(status == 201, "link: {status} {created}");
    Ok((
        created["link"]["id"].as_str().context("link id")?.to_string(),
        created["token"].as_str().context("link token")?.to_string(),
        created,
    ))
}

/// A watcher sees everything an operator sees: the sandbox, its screen, the snapshot, the ledger,
/// the policy, the events and the live video — and none of it is a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_the_sandbox_the_ledger_the_events_and_the_live_view() -> Result<()> {
    let (env, serve, sb, wendy) = serve_with("acc-watch-sees", "wendy", "watcher").await?;
    let me = wendy.ok("/me").await?;
    assert_eq!(
        me,
        json!({"operator": "wendy", "role": "watcher", "scope": {"kind": "all"}})
    );
    assert_eq!(ids(&wendy.ok("/sandboxes").await?), [sb.as_str()]);
    assert_eq!(ids(&wendy.ok("/snapshot").await?["sandboxes"]), [sb.as_str()]);
    assert_eq!(wendy.ok(&format!("/sandboxes/{sb}")).await?["id"], sb.as_str());
    let (status, png) = wendy.get_bytes(&format!("/sandboxes/{sb}/screenshot")).await?;
    assert_eq!(status, 200);
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    assert!(wendy.ok("/ledger").await?.is_array());
    assert_eq!(wendy.ok("/policy").await?["mode"], "enforce");
    assert!(wendy.ok("/approvals").await?.is_array());
    wendy.ok(&format!("/sandboxes/{sb}/network")).await?;
    let (_events, snapshot) = events_socket(&serve, &wendy.token).await?;
    assert_eq!(ids(&snapshot["sandboxes"]), [sb.as_str()]);
    // The live view: welcomed as wendy, and video arrives.
    let (mut viewer, welcome) = Viewer::open(&serve, &sb, &wendy.token, "webcodecs").await?;
    assert_eq!(welcome["operator"], "wendy", "{welcome}");
    assert_eq!(welcome["sandbox"], sb.as_str(), "{welcome}");
    let unit = viewer.next_binary(1, Duration::from_secs(30)).await?;
    assert!(unit.len() > 16, "a video access unit arrives");
    assert!(
        refusals_of(&serve, "wendy").await?.is_empty(),
        "looking is never a refusal"
    );
    env.ledger_verifies()
}

/// Every change a watcher asks for over the API answers 403 with the reason, does nothing (the
/// agent keeps control, the ask stays pending, no file, no sandbox, no link, no mode change) and
/// is on the ledger as a refusal naming the request and the permission it lacked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_a_watcher_asks_for_is_refused_recorded_and_not_done() -> Result<()> {
    let (env, serve, sb, wendy) = serve_with("acc-watch-refused", "wendy", "watcher").await?;
    let mut events = serve.events().await?;
    let (call, ask) = serve
        .ask(
            &mut events,
            "exec",
            json!({"sandbox": sb, "argv": ["touch", "/tmp/asked"]}),
        )
        .await?;
    let approval = ask["approval"]["id"].as_u64().context("approval id")?;
    let before = holder(&serve, &sb).await?;

    let may_not = |p: Permission| format!("wendy is a watcher and may not {}", p.describe());
    let s = |p: &str| format!("/sandboxes/{sb}{p}");
    let tries: Vec<(&str, String, Permission, (u16, Value))> = vec![
        (
            "POST",
            s("/lease"),
            Permission::Drive,
            wendy.post(&s("/lease"), json!({"command": "take"})).await?,
        ),
        (
            "POST",
            s("/input"),
            Permission::Drive,
            wendy
                .post(
                    &s("/input"),
                    json!({"action": {"action": "type", "text": "from-wendy"}}),
                )
                .await?,
        ),
        (
            "POST",
            s(&format!("/approvals/{approval}")),
            Permission::Decide,
            wendy
                .post(
                    &s(&format!("/approvals/{approval}")),
                    json!({"decision": "approve"}),
                )
                .await?,
        ),
        (
            "POST",
            s("/egress/1"),
            Permission::Decide,
            wendy.post(&s("/egress/1"), json!({})).await?,
        ),
        (
            "GET",
            s("/files/list"),
            Permission::Files,
            wendy.get(&s("/files/list?path=/root")).await?,
        ),
        (
            "POST",
            s("/files"),
            Permission::Files,
            wendy
                .post_bytes(&s("/files?path=/tmp/from-wendy"), b"not for you")
                .await?,
        ),
        (
            "GET",
            s("/files"),
            Permission::Files,
            wendy.get(&s("/files?path=/etc/hostname")).await?,
        ),
        (
            "POST",
            "/sandboxes".into(),
            Permission::Manage,
            wendy
                .post("/sandboxes", json!({"backend": "gvisor", "profile": "minimal"}))
                .await?,
        ),
        ("DELETE", s(""), Permission::Manage, wendy.delete(&s("")).await?),
        (
            "POST",
            s("/links"),
            Permission::Links,
            wendy.post(&s("/links"), json!({})).await?,
        ),
        (
            "GET",
            "/links".into(),
            Permission::Links,
            wendy.get("/links").await?,
        ),
        (
            "DELETE",
            "/links/0123456789ab".into(),
            Permission::Links,
            wendy.delete("/links/0123456789ab").await?,
        ),
        (
            "POST",
            "/policy/mode".into(),
            Permission::Policy,
            wendy.post("/policy/mode", json!({"mode": "shadow"})).await?,
        ),
    ];
    for (method, path, permission, answer) in &tries {
        forbidden(&format!("{method} {path}"), answer.clone(), &may_not(*permission));
    }

    // Nothing of it happened.
    assert_eq!(holder(&serve, &sb).await?, before, "the agent still has control");
    let pending = admin(&serve).ok("/approvals").await?;
    let still = pending
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == approval))
        .with_context(|| format!("approval {approval} is no longer pending: {pending}"))?;
    assert_eq!(still["state"]["state"], "pending", "{still}");
    env.guest_sh(&sb, "test ! -e /tmp/from-wendy")
        .context("the upload was not written")?;
    assert_eq!(ids(&admin(&serve).ok("/sandboxes").await?), [sb.as_str()]);
    assert_eq!(env.store.list()?.len(), 1, "no sandbox was created or destroyed");
    assert_eq!(admin(&serve).ok("/links").await?, json!([]));
    assert_eq!(admin(&serve).ok("/policy").await?["mode"], "enforce");
    let all = ledger(&serve).await?;
    assert!(
        !all.iter().any(|(_, r)| matches!(
            r,
            Record::HumanInput(_)
                | Record::LeaseChanged(_)
                | Record::ApprovalResolved(_)
                | Record::FileTransfer(_)
        )),
        "no input, lease change, decision or transfer reached the ledger"
    );

    // Each refusal is on the ledger, in order, with the request, its sandbox and the reason.
    let recorded = refusals_of(&serve, "wendy").await?;
    let expected: Vec<(String, Option<String>, Forbidden)> = tries
        .iter()
        .map(|(method, path, permission, _)| {
            (
                format!("{method} /api{path}"),
                path.starts_with("/sandboxes/").then(|| sb.clone()),
                Forbidden::Role {
                    who: "wendy".into(),
                    role: Role::Watcher,
                    permission: *permission,
                },
            )
        })
        .collect();
    assert_eq!(recorded, expected);

    // The ask is still the admin's to decide.
    serve
        .decide(&sb, approval, json!({"decision": "deny", "reason": "test over"}))
        .await?;
    let outcome = tokio::time::timeout(Duration::from_secs(60), call).await???;
    assert!(outcome.is_error, "the denied exec did not run");
    env.ledger_verifies()
}

/// A watcher's viewer socket sees the screen but cannot take control, hand back or send input:
/// each is refused once with a `forbidden` error, recorded once, and the lease never moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchers_viewer_socket_cannot_take_control_or_send_input() -> Result<()> {
    let (env, serve, sb, wendy) = serve_with("acc-watch-viewer", "wendy", "watcher").await?;
    let before = holder(&serve, &sb).await?;
    let (mut viewer, _) = Viewer::open(&serve, &sb, &wendy.token, "none").await?;
    let why = "wendy is a watcher and may not take control or send input";

    viewer.send(json!({"type": "takeover"})).await?;
    let refused = viewer.next_text("error", Duration::from_secs(10)).await?;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(
        refused["message"],
        format!("takeover refused: {why}"),
        "{refused}"
    );
    // Told once: a second takeover is dropped silently; the next thing said is about the
    // hand-back, then the key press (messages are handled in order).
    viewer.send(json!({"type": "takeover"})).await?;
    viewer
        .send(json!({"type": "handback", "note": "not mine to give"}))
        .await?;
    let refused = viewer.next_text("error", Duration::from_secs(10)).await?;
    assert_eq!(
        refused["message"],
        format!("handback refused: {why}"),
        "{refused}"
    );
    // A key press ('a' down): tag 0x13, down, keysym (little-endian).
    viewer
        .ws
        .send(Message::Binary(vec![0x13, 1, b'a', 0, 0, 0].into()))
        .await?;
    let refused = viewer.next_text("error", Duration::from_secs(10)).await?;
    assert_eq!(refused["message"], format!("input refused: {why}"), "{refused}");

    assert_eq!(holder(&serve, &sb).await?, before, "the lease never moved");
    let expected: Vec<(String, Option<String>, Forbidden)> = ["takeover", "handback", "input"]
        .iter()
        .map(|r| {
            (
                format!("viewer {r}"),
                Some(sb.clone()),
                Forbidden::Role {
                    who: "wendy".into(),
                    role: Role::Watcher,
                    permission: Permission::Drive,
                },
            )
        })
        .collect();
    // The refusal is recorded after the client is told: wait for the last one.
    let recorded = poll_async(
        "the three viewer refusals on the ledger",
        Duration::from_secs(10),
        || async {
            let r = refusals_of(&serve, "wendy").await?;
            Ok((r.len() >= expected.len()).then_some(r))
        },
    )
    .await?;
    assert_eq!(recorded, expected, "each refusal recorded once");
    assert!(
        !ledger(&serve)
            .await?
            .iter()
            .any(|(_, r)| matches!(r, Record::HumanInput(_) | Record::LeaseChanged(_))),
        "no input or lease change reached the ledger"
    );
    env.ledger_verifies()
}

/// A view link is a watcher of one sandbox: it sees that sandbox (its info, screen, snapshot,
/// events, live view) and nothing else — another sandbox, the ledger, the approvals, blobs, the
/// policy and files are refused for its scope, and what it may list is filtered to its sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_link_shows_its_sandbox_and_nothing_else() -> Result<()> {
    let env = Env::new("acc-link-scope");
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let a = serve.only_sandbox().await?;
    let (status, created) = serve
        .post("/sandboxes", json!({"backend": "gvisor", "profile": "minimal"}))
        .await?;
    ensure!(status == 201, "create a second sandbox: {status} {created}");
    let b = created["id"].as_str().context("second sandbox id")?.to_string();
    // An ask on the linked sandbox: operators see it, the link must not.
    let mut events = serve.events().await?;
    let (call, ask) = serve
        .ask(
            &mut events,
            "exec",
            json!({"sandbox": a, "argv": ["touch", "/tmp/asked"]}),
        )
        .await?;
    let (id, token, created) = make_link(&serve, &a, json!({"ttl_s": 600})).await?;
    assert_eq!(created["link"]["sandbox"], a.as_str());
    assert_eq!(created["link"]["created_by"], serve.operator.as_str());
    assert!(
        created["path"].as_str().is_some_and(|p| p.contains(&token)),
        "{created}"
    );
    let link = Api::new(&serve, &token);
    let who = format!("link:{id}");

    assert_eq!(
        link.ok("/me").await?,
        json!({"operator": who, "role": "watcher", "scope": {"kind": "sandbox", "sandbox": a}})
    );
    assert_eq!(ids(&link.ok("/sandboxes").await?), [a.as_str()]);
    let snapshot = link.ok("/snapshot").await?;
    assert_eq!(ids(&snapshot["sandboxes"]), [a.as_str()]);
    assert_eq!(snapshot["pending"], json!([]), "no approvals for a link");
    assert_eq!(link.ok(&format!("/sandboxes/{a}")).await?["id"], a.as_str());
    let (status, png) = link.get_bytes(&format!("/sandboxes/{a}/screenshot")).await?;
    assert!(status == 200 && png.starts_with(b"\x89PNG"), "{status}");
    let (_ws, snapshot) = events_socket(&serve, &token).await?;
    assert_eq!(ids(&snapshot["sandboxes"]), [a.as_str()]);
    assert_eq!(snapshot["pending"], json!([]));
    let (_viewer, welcome) = Viewer::open(&serve, &a, &token, "none").await?;
    assert_eq!(welcome["operator"], who.as_str());

    // Beyond its sandbox: refused for the scope.
    let scope = |asked: Option<&str>| Forbidden::Scope {
        who: who.clone(),
        allowed: a.clone(),
        asked: asked.map(str::to_string),
    };
    let role = |permission| Forbidden::Role {
        who: who.clone(),
        role: Role::Watcher,
        permission,
    };
    let frame = ask["approval"]["frame_png"].as_str().context("frame_png")?;
    let tries: Vec<(String, Option<&str>, Forbidden)> = vec![
        (format!("GET /api/sandboxes/{b}"), Some(&b), scope(Some(&b))),
        (
            format!("GET /api/sandboxes/{b}/screenshot"),
            Some(&b),
            scope(Some(&b)),
        ),
        (format!("GET /api/sandboxes/{b}/view"), Some(&b), scope(Some(&b))),
        ("GET /api/ledger".into(), None, scope(None)),
        ("GET /api/approvals".into(), None, scope(None)),
        ("GET /api/egress".into(), None, scope(None)),
        ("GET /api/policy".into(), None, scope(None)),
        (format!("GET /api/blobs/{frame}"), None, scope(None)),
        (
            format!("GET /api/sandboxes/{a}/files/list"),
            Some(&a),
            role(Permission::Files),
        ),
        (
            format!("POST /api/sandboxes/{a}/lease"),
            Some(&a),
            role(Permission::Drive),
        ),
        (
            format!("POST /api/sandboxes/{a}/links"),
            Some(&a),
            role(Permission::Links),
        ),
    ];
    for (request, _, why) in &tries {
        let path = request.split_once(" /api").context("request")?.1;
        let answer = if request.starts_with("POST") {
            let body = if path.ends_with("/lease") {
                json!({"command": "take"})
            } else {
                json!({})
            };
            link.post(path, body).await?
        } else if path.ends_with("/files/list") {
            link.get(&format!("{path}?path=/root")).await?
        } else {
            link.get(path).await?
        };
        forbidden(request, answer, &why.to_string());
    }
    // Each on the ledger, on the sandbox asked for or, naming none, on the link's own.
    let recorded = refusals_of(&serve, &who).await?;
    let expected: Vec<(String, Option<String>, Forbidden)> = tries
        .iter()
        .map(|(request, on, why)| {
            (
                request.clone(),
                Some(on.map_or_else(|| a.clone(), str::to_string)),
                why.clone(),
            )
        })
        .collect();
    assert_eq!(recorded, expected);
    // The operators' view is untouched: both sandboxes, the ask pending.
    assert_eq!(ids(&serve.get("/sandboxes").await?.1).len(), 2);
    serve
        .decide(
            &a,
            ask["approval"]["id"].as_u64().context("id")?,
            json!({"decision": "deny", "reason": "test over"}),
        )
        .await?;
    tokio::time::timeout(Duration::from_secs(60), call).await???;
    env.ledger_verifies()
}

/// A view link's snapshot carries nothing of another sandbox: an agent asking for a human in
/// sandbox B is not shown to a link for sandbox A (its events socket already filters the
/// `human_requested` event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_links_snapshot_shows_no_other_sandboxs_request_for_a_human() -> Result<()> {
    let env = Env::new("acc-link-human");
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let a = serve.only_sandbox().await?;
    let (status, created) = serve
        .post("/sandboxes", json!({"backend": "gvisor", "profile": "minimal"}))
        .await?;
    ensure!(status == 201, "create a second sandbox: {status} {created}");
    let b = created["id"].as_str().context("second sandbox id")?.to_string();
    let (_, token, _) = make_link(&serve, &a, json!({})).await?;
    let mut events = serve.events().await?;
    let agent = serve.agent().await?;
    let args = json!({"sandbox": b, "reason": "the bank wants a one-time code", "wait_s": 120});
    let call = tokio::spawn(async move { agent.call("request_human", args).await });
    events.next_of("human_requested", Duration::from_secs(60)).await?;
    let operators = serve.get("/snapshot").await?.1;
    assert_eq!(
        operators["human_requests"].as_array().map(Vec::len),
        Some(1),
        "operators see the request: {operators}"
    );
    let link = Api::new(&serve, &token);
    let snapshot = link.ok("/snapshot").await?;
    let (_ws, on_socket) = events_socket(&serve, &token).await?;
    call.abort();
    assert_eq!(
        snapshot["human_requests"],
        json!([]),
        "a link for {a} is shown a request of {b}: {snapshot}"
    );
    assert_eq!(on_socket["human_requests"], json!([]), "{on_socket}");
    Ok(())
}

/// A view link is shown no approvals anywhere: not in the snapshot's list, and not inside its
/// sandbox's info (the session's pending asks carry the agent's command and the screen), whether
/// read from `/api/sandboxes`, `/api/sandboxes/ID`, `/api/snapshot` or the events socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_link_is_shown_no_approvals_not_even_inside_its_sandboxs_info() -> Result<()> {
    let env = Env::new("acc-link-asks");
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let sb = serve.only_sandbox().await?;
    let mut events = serve.events().await?;
    let (call, ask) = serve
        .ask(
            &mut events,
            "exec",
            json!({"sandbox": sb, "argv": ["touch", "/tmp/secret-plan"]}),
        )
        .await?;
    let (_, token, _) = make_link(&serve, &sb, json!({})).await?;
    let link = Api::new(&serve, &token);
    let operators = serve.get(&format!("/sandboxes/{sb}")).await?.1;
    assert_eq!(
        operators["session"]["pending"].as_array().map(Vec::len),
        Some(1),
        "operators see the ask in the session: {operators}"
    );
    let info = link.ok(&format!("/sandboxes/{sb}")).await?;
    let list = link.ok("/sandboxes").await?;
    let snapshot = link.ok("/snapshot").await?;
    let (_ws, on_socket) = events_socket(&serve, &token).await?;
    serve
        .decide(
            &sb,
            ask["approval"]["id"].as_u64().context("id")?,
            json!({"decision": "deny", "reason": "test over"}),
        )
        .await?;
    tokio::time::timeout(Duration::from_secs(60), call).await???;
    for (what, seen) in [
        ("GET /api/sandboxes/ID", &info),
        ("GET /api/sandboxes", &list[0]),
        ("GET /api/snapshot", &snapshot["sandboxes"][0]),
        ("the events socket's snapshot", &on_socket["sandboxes"][0]),
    ] {
        assert_eq!(
            seen["session"]["pending"],
            json!([]),
            "{what} shows a view link the pending ask: {seen}"
        );
    }
    env.ledger_verifies()
}

/// A link made to last three seconds is refused after it: 401 `link_ended` with the reason, its
/// viewer socket closes at the expiry, it is no longer listed, and the refusal is recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_view_link_is_refused_with_link_ended() -> Result<()> {
    let env = Env::new("acc-link-expired");
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let sb = serve.only_sandbox().await?;
    let (id, token, created) = make_link(&serve, &sb, json!({"ttl_s": 3})).await?;
    let expires = created["link"]["expires_ms"].as_u64().context("expires_ms")?;
    let made = created["link"]["created_ms"].as_u64().context("created_ms")?;
    assert_eq!(expires - made, 3000);
    let link = Api::new(&serve, &token);
    // Open while it lasts; the socket ends with the link.
    let (mut viewer, _) = Viewer::open(&serve, &sb, &token, "none").await?;
    closes(
        &mut viewer.ws,
        "the viewer socket of an expired link",
        Duration::from_secs(15),
    )
    .await?;
    let ended = poll_async("the link to be refused", Duration::from_secs(10), || async {
        let (status, body) = link.get("/me").await?;
        Ok((status != 200).then_some((status, body)))
    })
    .await?;
    assert_eq!(ended.0, 401, "{}", ended.1);
    assert_eq!(ended.1["code"], "link_ended");
    assert_eq!(ended.1["message"], format!("view link {id} expired"));
    let (status, again) = link.get(&format!("/sandboxes/{sb}")).await?;
    assert_eq!((status, &again["code"]), (401, &json!("link_ended")));
    let url = format!(
        "{}/api/sandboxes/{sb}/view?token={token}",
        serve.base.replace("http://", "ws://")
    );
    assert!(
        tokio_tungstenite::connect_async(url).await.is_err(),
        "an expired link cannot open the viewer"
    );
    assert_eq!(serve.get("/links").await?.1, json!([]), "no longer listed");
    let refused: Vec<String> = access_records(&serve)
        .await?
        .into_iter()
        .filter_map(|(_, a)| match a {
            AccessRecord::LinkRefused { link, reason } => Some(format!("{link}: {reason}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [format!("{id}: view link {id} expired")],
        "recorded once"
    );
    env.ledger_verifies()
}

/// Revoking a link ends it at once: its open viewer and events sockets close, and its next
/// request is refused with who revoked it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_view_link_is_refused_and_its_open_sockets_close() -> Result<()> {
    let env = Env::new("acc-link-revoked");
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let sb = serve.only_sandbox().await?;
    let (id, token, _) = make_link(&serve, &sb, json!({})).await?;
    let (mut viewer, _) = Viewer::open(&serve, &sb, &token, "webcodecs").await?;
    viewer.next_binary(1, Duration::from_secs(30)).await?;
    let (mut events, _) = events_socket(&serve, &token).await?;
    let listed = serve.get("/links").await?.1;
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");

    let (status, revoked) = admin(&serve).delete(&format!("/links/{id}")).await?;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["revoked_by"], serve.operator.as_str());
    closes(
        &mut viewer.ws,
        "the revoked link's viewer socket",
        Duration::from_secs(10),
    )
    .await?;
    closes(
        &mut events,
        "the revoked link's events socket",
        Duration::from_secs(10),
    )
    .await?;
    let (status, body) = Api::new(&serve, &token).get("/me").await?;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "link_ended");
    assert_eq!(
        body["message"],
        format!("view link {id} was revoked by {}", serve.operator)
    );
    assert_eq!(serve.get("/links").await?.1, json!([]));
    let (status, again) = admin(&serve).delete(&format!("/links/{id}")).await?;
    assert_eq!(status, 409, "revoking twice: {again}");
    env.ledger_verifies()
}

/// The ledger tells a link's whole life: who created it (never its token), its first use of the
/// live view (once, however many times it is opened), who revoked it, and its refusal afterwards
/// (once, however often it is tried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_using_revoking_and_refusing_a_link_is_on_the_ledger() -> Result<()> {
    let env = Env::new("acc-link-ledger");
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let sb = serve.only_sandbox().await?;
    let (id, token, created) = make_link(&serve, &sb, json!({"ttl_s": 3600})).await?;
    for _ in 0..2 {
        let (viewer, _) = Viewer::open(&serve, &sb, &token, "none").await?;
        drop(viewer);
    }
    let (status, _) = admin(&serve).delete(&format!("/links/{id}")).await?;
    assert_eq!(status, 200);
    let link = Api::new(&serve, &token);
    for _ in 0..2 {
        assert_eq!(link.get("/me").await?.0, 401);
    }

    let entries = serve.ledger(None).await?;
    assert!(
        !serde_json::to_string(&entries)?.contains(&token),
        "the link's token is not on the ledger"
    );
    let life: Vec<(Option<String>, Option<String>, AccessRecord)> = access_records(&serve)
        .await?
        .into_iter()
        .map(|(e, a)| (e.body.sandbox, e.body.actor.operator, a))
        .collect();
    let view_link: airlock_domain::ViewLink = serde_json::from_value(created["link"].clone())?;
    let who = format!("link:{id}");
    let admin_name = Some(serve.operator.clone());
    let on = Some(sb.clone());
    assert_eq!(
        life,
        [
            (
                on.clone(),
                admin_name.clone(),
                AccessRecord::LinkCreated {
                    link: view_link.clone()
                }
            ),
            (
                on.clone(),
                Some(who.clone()),
                AccessRecord::LinkUsed { link: id.clone() }
            ),
            (
                on.clone(),
                admin_name.clone(),
                AccessRecord::LinkRevoked {
                    link: airlock_domain::ViewLink {
                        revoked_by: admin_name.clone(),
                        ..view_link
                    }
                }
            ),
            (
                on.clone(),
                Some(who.clone()),
                AccessRecord::LinkRefused {
                    link: id.clone(),
                    reason: format!("view link {id} was revoked by {}", serve.operator)
                }
            ),
        ]
    );
    env.ledger_verifies()
}

/// An operator (not an admin) hands out and revokes view links, and the ledger names them; the
/// policy mode stays the admin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_may_create_links_but_not_change_the_policy_mode() -> Result<()> {
    let (env, serve, sb, olga) = serve_with("acc-operator", "olga", "operator").await?;
    assert_eq!(olga.ok("/me").await?["role"], "operator");
    let (status, created) = olga.post(&format!("/sandboxes/{sb}/links"), json!({})).await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["link"]["created_by"], "olga");
    let id = created["link"]["id"].as_str().context("id")?.to_string();
    assert_eq!(olga.ok("/links").await?[0]["id"], id.as_str());
    let (status, revoked) = olga.delete(&format!("/links/{id}")).await?;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["revoked_by"], "olga");

    forbidden(
        "POST /policy/mode",
        olga.post("/policy/mode", json!({"mode": "shadow"})).await?,
        "olga is an operator and may not change the policy",
    );
    assert_eq!(olga.ok("/policy").await?["mode"], "enforce");
    // The admin may.
    let (status, v) = serve.post("/policy/mode", json!({"mode": "shadow"})).await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(olga.ok("/policy").await?["mode"], "shadow");

    let recorded = refusals_of(&serve, "olga").await?;
    assert_eq!(
        recorded,
        [(
            "POST /api/policy/mode".to_string(),
            None,
            Forbidden::Role {
                who: "olga".into(),
                role: Role::Operator,
                permission: Permission::Policy,
            }
        )]
    );
    let by_olga: Vec<&str> = access_records(&serve)
        .await?
        .iter()
        .filter(|(e, _)| e.body.actor.operator.as_deref() == Some("olga"))
        .map(|(_, a)| match a {
            AccessRecord::LinkCreated { .. } => "created",
            AccessRecord::LinkRevoked { .. } => "revoked",
            AccessRecord::Refused { .. } => "refused",
            AccessRecord::LinkUsed { .. } | AccessRecord::LinkRefused { .. } => "other",
        })
        .collect();
    assert_eq!(by_olga, ["created", "revoked", "refused"]);
    env.ledger_verifies()
}

/// Sharing host folders is an admin's: an operator's create request with a share is refused 403
/// naming why, recorded, and no sandbox is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_may_not_share_host_folders() -> Result<()> {
    let (env, serve, _sb, olga) = serve_with("acc-share", "olga", "operator").await?;
    let body = json!({"profile": "minimal", "shares": [{"host": "/tmp", "guest": "/data"}]});
    forbidden(
        "POST /sandboxes with shares",
        olga.post("/sandboxes", body).await?,
        "olga is an operator and may not share host folders into a sandbox",
    );
    assert_eq!(env.store.list()?.len(), 1, "no sandbox was made");
    assert_eq!(
        refusals_of(&serve, "olga").await?,
        [(
            "POST /api/sandboxes (with shares)".to_string(),
            None,
            Forbidden::Role {
                who: "olga".into(),
                role: Role::Operator,
                permission: Permission::Share,
            }
        )]
    );
    env.ledger_verifies()
}

/// Giving an operator another role while serve runs (`airlock operator add` again) takes effect
/// at the next request, without a restart: their old token is no one's and the new one may only
/// watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_made_a_watcher_while_serve_runs_is_one_at_the_next_request() -> Result<()> {
    let (env, serve, sb, olga) = serve_with("acc-demote", "olga", "operator").await?;
    let (status, created) = olga.post(&format!("/sandboxes/{sb}/links"), json!({})).await?;
    assert_eq!(status, 201, "{created}");

    let token = add_operator(&env, "olga", "watcher")?;
    let (status, v) = olga.get("/me").await?;
    assert_eq!(status, 401, "the old token is no one's any more: {v}");
    let watcher = Api::new(&serve, &token);
    assert_eq!(watcher.ok("/me").await?["role"], "watcher");
    forbidden(
        "POST /sandboxes/ID/links",
        watcher.post(&format!("/sandboxes/{sb}/links"), json!({})).await?,
        "olga is a watcher and may not create or revoke view links",
    );
    assert_eq!(
        admin(&serve).ok("/links").await?.as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        refusals_of(&serve, "olga").await?,
        [(
            format!("POST /api/sandboxes/{sb}/links"),
            Some(sb.clone()),
            Forbidden::Role {
                who: "olga".into(),
                role: Role::Watcher,
                permission: Permission::Links,
            }
        )]
    );
    env.ledger_verifies()
}

/// The stand-alone viewer page opened with a view link's token, in real headless Chromium,
/// decodes the sandbox's live 1280x800 video — and opening it is no refusal on the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_link_opens_the_live_video_in_chromium() -> Result<()> {
    let env = Env::new("acc-link-chromium");
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let sb = serve.only_sandbox().await?;
    let page = reqwest::get(format!("{}/viewer", serve.base)).await?;
    ensure!(
        page.status() == 200,
        "airlock serve does not serve the viewer — build the console: npm --prefix ui run build"
    );
    let (id, token, _) = make_link(&serve, &sb, json!({})).await?;
    let mut b = Browser::launch(&env.root.join("chromium.log"))?;
    b.open(
        "link",
        &format!(
            "{}/viewer?sandbox={sb}&transport=webcodecs&focus=1#token={token}",
            serve.base
        ),
    )?;
    b.wait(
        "link",
        "airlockViewer.framesDecoded > 0 && airlockViewer.frameWidth === 1280 && airlockViewer.frameHeight === 800",
        Duration::from_secs(60),
    )?;
    let who = format!("link:{id}");
    assert!(
        refusals_of(&serve, &who).await?.is_empty(),
        "the viewer page asks for nothing a link may not have"
    );
    let used = access_records(&serve)
        .await?
        .into_iter()
        .filter(|(_, a)| matches!(a, AccessRecord::LinkUsed { link } if *link == id))
        .count();
    assert_eq!(used, 1, "the link's first use is on the ledger");
    env.ledger_verifies()
}
