//! The commands through Tauri's real IPC layer on the mock runtime (no window, no WebKit), over a
//! real supervisor: a private state directory, the real SQLite ledger, no sandbox.

use std::sync::OnceLock;
use std::time::Duration;

use airlock_host::{Host, HostOptions};
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody, InvokeResponseBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::Listener as _;

use crate::{channel, forward_events, with_commands, Console};

struct Fixture {
    host: Host,
    _dir: tempfile::TempDir,
}

/// One supervisor for every test (the state directory is process-wide).
fn host() -> &'static Host {
    static HOST: OnceLock<Fixture> = OnceLock::new();
    &HOST
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("scratch state dir");
            std::env::set_var("AIRLOCK_STATE_DIR", dir.path());
            let policy =
                airlock_policy::Policy::new(airlock_policy::DEFAULT_POLICY, airlock_policy::Decision::Ask)
                    .expect("the shipped policy");
            let config = airlock_supervisor::Config::new(vec!["/bin/false".into()]);
            let host = tauri::async_runtime::block_on(Host::start(HostOptions {
                listen: "127.0.0.1:0".parse().expect("addr"),
                policy,
                config,
                ui_dir: None,
                mcp_origins: Default::default(),
            }))
            .expect("the host starts");
            Fixture { host, _dir: dir }
        })
        .host
}

fn app() -> (tauri::App<MockRuntime>, tauri::WebviewWindow<MockRuntime>) {
    let h = host();
    let console = Console::new(
        h.sup.clone(),
        h.tokens.operator.clone(),
        h.tokens.operator_token.clone(),
        h.addr,
    );
    let app = with_commands(mock_builder())
        .manage(console)
        .build(mock_context(noop_assets()))
        .expect("mock app");
    forward_events(app.handle().clone(), &h.sup);
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("mock window");
    (app, window)
}

fn call(window: &tauri::WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    let req = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().expect("url"),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(window, req).map(|body| match body {
        InvokeResponseBody::Json(s) => serde_json::from_str(&s).expect("JSON reply"),
        InvokeResponseBody::Raw(bytes) => json!({"raw_len": bytes.len()}),
    })
}

fn code(err: Value) -> String {
    err["code"].as_str().unwrap_or_default().to_string()
}

#[test]
fn reads_answer_from_the_supervisor() {
    let (_app, w) = app();
    let me = call(&w, "me", json!({})).expect("me");
    assert_eq!(me["operator"], host().tokens.operator.as_str());
    let policy = call(&w, "policy", json!({})).expect("policy");
    assert!(policy["text"]
        .as_str()
        .unwrap_or_default()
        .contains("@id(\"exec-allowlisted\")"));
    assert_eq!(policy["default"], "ask");
    let snap = call(&w, "snapshot", json!({})).expect("snapshot");
    assert_eq!(snap["sandboxes"], json!([]));
    assert_eq!(snap["pending"], json!([]));
    assert_eq!(call(&w, "pending", json!({})).expect("pending"), json!([]));
    assert_eq!(
        call(&w, "pending_egress", json!({})).expect("pending_egress"),
        json!([])
    );
    assert_eq!(call(&w, "list_sandboxes", json!({})).expect("list"), json!([]));
    let report = call(&w, "verify_ledger", json!({})).expect("verify");
    assert_eq!(report["first_broken"], Value::Null, "{report}");
    assert!(
        report["entries"].as_u64().unwrap_or(0) >= 1,
        "the supervisor's start is recorded"
    );
}

#[test]
fn shadow_mode_is_switched_recorded_and_forwarded() {
    let (app, w) = app();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    app.listen("airlock://policy", move |e| {
        let _ = tx.send(e.payload().to_string());
    });
    let reply = call(&w, "set_mode", json!({"mode": "shadow"})).expect("set_mode");
    assert_eq!(reply, json!({"mode": "shadow"}));
    let forwarded: Value = serde_json::from_str(
        &rx.recv_timeout(Duration::from_secs(10))
            .expect("the event is forwarded"),
    )
    .expect("JSON payload");
    assert_eq!(forwarded["topic"], "policy://mode");
    assert_eq!(forwarded["event"]["type"], "policy_mode");
    assert_eq!(forwarded["event"]["by"], host().tokens.operator.as_str());
    let entries = call(&w, "ledger", json!({"query": {"kind": ["policy_changed"]}})).expect("ledger");
    let last = entries
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("a policy_changed entry");
    assert_eq!(
        last["body"]["actor"]["operator"],
        host().tokens.operator.as_str(),
        "{last}"
    );
    call(&w, "set_mode", json!({"mode": "enforce"})).expect("back to enforce");
    assert_eq!(call(&w, "policy", json!({})).expect("policy")["mode"], "enforce");
    let export = call(&w, "export_ledger", json!({})).expect("export");
    let lines = export.as_str().unwrap_or_default().lines().count();
    let verified = call(&w, "verify_ledger", json!({})).expect("verify")["entries"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        lines as u64 >= verified && lines > 0,
        "{lines} exported, {verified} verified"
    );
}

#[test]
fn bad_requests_come_back_as_coded_errors() {
    let (_app, w) = app();
    let e = call(&w, "lease", json!({"id": "nope", "request": {"command": "take"}})).expect_err("no sandbox");
    assert_eq!(code(e.clone()), "unknown_sandbox", "{e}");
    assert!(e["message"].as_str().unwrap_or_default().contains("nope"), "{e}");
    let e = call(
        &w,
        "resolve",
        json!({"id": "nope", "approval": 1, "request": {"decision": "approve"}}),
    )
    .expect_err("no sandbox");
    assert_eq!(code(e), "unknown_sandbox");
    let e = call(
        &w,
        "resolve_egress",
        json!({"id": "nope", "ask": 1, "resolution": {"decision": "allow", "scope": {"kind": "once"}}}),
    )
    .expect_err("no sandbox");
    assert_eq!(code(e), "unknown_sandbox");
    let e = call(&w, "network", json!({"id": "nope"})).expect_err("no sandbox");
    assert_eq!(code(e), "unknown_sandbox");
    let e = call(&w, "view_url", json!({"id": "nope"})).expect_err("no sandbox");
    assert_eq!(code(e), "unknown_sandbox");
    let e = call(&w, "blob", json!({"hash": "not-hex"})).expect_err("bad hash");
    assert_eq!(code(e), "invalid_request");
    let e = call(&w, "blob", json!({"hash": "0".repeat(64)})).expect_err("unknown blob");
    assert_eq!(code(e), "unknown_blob");
    let e = call(&w, "create_sandbox", json!({"request": {"vcpus": 0}})).expect_err("zero vCPUs");
    assert_eq!(code(e.clone()), "invalid_request", "{e}");
    assert!(e["message"].as_str().unwrap_or_default().contains("vcpus"), "{e}");
    let e = call(&w, "destroy_sandbox", json!({"id": "nope"})).expect_err("no sandbox");
    assert_eq!(code(e), "unknown_sandbox");
    // Malformed arguments are refused by the IPC layer, naming the problem.
    let e = call(
        &w,
        "lease",
        json!({"id": "nope", "request": {"command": "steal"}}),
    )
    .expect_err("bad verb");
    assert!(e.to_string().contains("steal"), "{e}");
    assert!(call(&w, "set_mode", json!({"mode": "off"})).is_err());
    assert!(call(&w, "no_such_command", json!({})).is_err());
}

#[test]
fn events_go_to_channels_by_kind() {
    let msg = airlock_supervisor::api::EventMessage::from(airlock_supervisor::Event::PolicyMode {
        mode: airlock_policy::Mode::Shadow,
        by: "ada".into(),
        at_ms: 1,
    });
    assert_eq!(channel(&msg), "airlock://policy");
    let msg = airlock_supervisor::api::EventMessage::from(airlock_supervisor::Event::CreateProgress {
        job: "j".into(),
        step: "booting".into(),
        outcome: airlock_supervisor::CreateOutcome::Working,
        at_ms: 1,
    });
    assert_eq!(channel(&msg), "airlock://create");
    let msg = airlock_supervisor::api::EventMessage::from(airlock_supervisor::Event::Egress {
        sandbox: "sb".into(),
        record: airlock_domain::EgressRecord::DnsRefused {
            groups: vec![],
            unlisted: 0,
        },
    });
    assert_eq!(channel(&msg), "airlock://network");
}
