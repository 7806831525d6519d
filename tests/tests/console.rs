//! The operator console end to end: `airlock serve` with a real gVisor desktop sandbox, the built
//! console (ui/dist) in real headless Chromium, driven only by accessible names the way an
//! operator drives it — approve, edit and deny asks, take control and type into the VM, hand
//! back with a note, read and verify the ledger, look at the policy, survive a server restart,
//! and see the server's refusal of a decision another operator already made. Every step is
//! checked again through the API, the ledger or the guest.
//!
//! Screenshots of each view go to `target/test-artifacts/console/` (with the browser's and the
//! server's logs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock_browser::{Browser, Target};
use airlock_domain::{Action, ApprovalState, LeaseCommand};
use airlock_ledger::Entry;
use airlock_records::{ActionExecuted, LeaseChanged, Record};
use airlock_tests::records::records;
use airlock_tests::serve::{computer, Pending, Serve};
use airlock_tests::{poll, Env};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

/// The console page every step but the last uses.
const PAGE: &str = "console";
/// A second console whose event socket can be held back (the last step).
const GATED: &str = "gated";

const SERVE_ARGS: [&str; 4] = ["--backend", "gvisor", "--approval-timeout", "60"];

/// Where the screenshots and logs go: `target/test-artifacts/console/`.
fn artifacts_dir() -> Result<PathBuf> {
    let target = airlock_tests::bin_dir()
        .parent()
        .context("the target directory")?
        .to_path_buf();
    let dir = target.join("test-artifacts/console");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    // Nothing from an earlier run may pass for this one's.
    for e in std::fs::read_dir(&dir)?.flatten() {
        if e.path().extension().is_some_and(|x| x == "png" || x == "jsonl") {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(dir)
}

/// Copies the server's log next to the screenshots when the test ends, passed or failed (the
/// state directory is removed).
struct KeepLog {
    from: PathBuf,
    to: PathBuf,
}

impl Drop for KeepLog {
    fn drop(&mut self) {
        let _ = std::fs::copy(&self.from, &self.to);
    }
}

fn text(o: &airlock_agents::ToolOutcome) -> String {
    o.texts.join("\n")
}

/// Waits for an agent call started by `Serve::ask` to come back.
async fn outcome(call: Pending, what: &str) -> Result<airlock_agents::ToolOutcome> {
    Ok(tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .with_context(|| format!("{what}: the agent's call did not come back within 60 s"))?
        .context("the agent task")??)
}

fn approval_id(ask: &Value) -> Result<u64> {
    ask["approval"]["id"]
        .as_u64()
        .with_context(|| format!("no approval id in {ask}"))
}

/// The ledger entry of `sandbox` whose record `pick` finds.
async fn entry(
    serve: &Serve,
    sb: &str,
    what: &str,
    pick: impl Fn(&Record) -> bool,
) -> Result<(Entry, Record)> {
    records(&serve.ledger(Some(sb)).await?)?
        .into_iter()
        .find(|(_, r)| pick(r))
        .with_context(|| format!("no ledger entry for {what}"))
}

/// How `approval` ended, if `r` records that.
fn resolved(r: &Record, approval: u64) -> Option<&ApprovalState> {
    match r {
        Record::ApprovalResolved(x) if x.approval == approval => Some(&x.state),
        _ => None,
    }
}

/// Polls the natural width of an image until it has loaded; returns it.
fn loaded_width(b: &mut Browser, img: &Target, timeout: Duration) -> Result<u64> {
    poll(&format!("{img} to load"), timeout, || {
        let w = b.eval_on(PAGE, img, "img => (img.complete ? img.naturalWidth : 0)")?;
        Ok(w.as_u64().filter(|w| *w > 0))
    })
}

/// Waits until the session's control banner says `text`.
fn banner(b: &mut Browser, text: &str) -> Result<()> {
    b.wait_visible(
        PAGE,
        &Target::any_role("status").has_text(text),
        Duration::from_secs(10),
    )
}

/// The agent's next action (a harmless ctrl+l), to see how it is answered after a control change.
async fn agent_presses_ctrl_l(
    agent: &airlock_agents::Gateway,
    sb: &str,
) -> Result<airlock_agents::ToolOutcome> {
    Ok(agent
        .call(
            "computer",
            computer(sb, json!({"action": "key", "text": "ctrl+l"})),
        )
        .await?)
}

fn shot(b: &mut Browser, page: &str, dir: &Path, name: &str) -> Result<()> {
    b.screenshot(page, &dir.join(name))
}

/// The `Inbox` link of the top bar (its name carries the pending count).
fn inbox_link() -> Target {
    Target::role("link", "Inbox").inexact()
}

fn inbox_item(n: u64, sb: &str) -> Target {
    Target::role("listitem", &format!("Approval {n} in {sb}"))
        .within(&Target::role("list", "Pending approvals"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_console_in_a_browser() -> Result<()> {
    let started = Instant::now();
    let env = Env::new("console");
    let art = artifacts_dir()?;
    let _keep = KeepLog {
        from: env.root.join("serve.log"),
        to: art.join("serve.log"),
    };
    let serve = Serve::start(&env, &SERVE_ARGS)?;
    let sb = serve.only_sandbox().await?;
    serve.wait_terminal(&env, &sb, Duration::from_secs(120)).await?;
    let index = reqwest::get(format!("{}/", serve.base)).await?;
    ensure!(
        index.status() == 200 && index.text().await?.contains("<div id=\"app\""),
        "airlock serve does not serve the console at / — build it: npm --prefix ui run build"
    );
    eprintln!(
        "[{:>5.1} s] serve and the sandbox are up",
        started.elapsed().as_secs_f64()
    );
    let b = Browser::launch(&art.join("chromium.log"))?;
    let mut t = Scenario {
        env: &env,
        serve,
        b,
        sb,
        art,
        started,
    };
    let result = t.run().await;
    if let Err(e) = &result {
        // What the operator would have seen when it failed.
        for page in [PAGE, GATED] {
            let _ = t.b.screenshot(page, &t.art.join(format!("failure-{page}.png")));
            if let Ok(tree) = t.b.aria_snapshot(page, &Target::css("body")) {
                eprintln!("--- page {page} when the test failed ({e:#}):\n{tree}");
            }
        }
    }
    result?;
    eprintln!(
        "console test done in {:.1} s; screenshots in {}",
        t.started.elapsed().as_secs_f64(),
        t.art.display()
    );
    Ok(())
}

/// The running pieces the steps share.
struct Scenario<'a> {
    env: &'a Env,
    serve: Serve,
    b: Browser,
    sb: String,
    art: PathBuf,
    started: Instant,
}

impl Scenario<'_> {
    async fn run(&mut self) -> Result<()> {
        let (env, sb, art) = (self.env, self.sb.clone(), self.art.clone());
        let started = self.started;
        let b = &mut self.b;
        let serve = &mut self.serve;
        let (status, info) = serve.get(&format!("/sandboxes/{sb}")).await?;
        ensure!(status == 200, "sandbox info: {status} {info}");
        let mut events = serve.events().await?;
        b.open(PAGE, &format!("{}/#token={}", serve.base, serve.operator_token))?;

        // 1. Grid: the sandbox's card with a live thumbnail, its backend, profile and controller.
        let card = Target::role("article", &format!("Sandbox {sb}"));
        b.wait_visible(PAGE, &card, Duration::from_secs(30))?;
        b.wait_visible(
            PAGE,
            &Target::text(&format!("Signed in as {}", serve.operator)),
            Duration::from_secs(10),
        )?;
        let token_left = b.eval(PAGE, "location.hash")?;
        ensure!(
            !token_left.as_str().unwrap_or_default().contains("token"),
            "the token stays in the address bar: {token_left}"
        );
        let thumb = Target::role("img", &format!("Thumbnail of {sb}")).within(&card);
        b.wait_visible(PAGE, &thumb, Duration::from_secs(60))?;
        let w = loaded_width(b, &thumb, Duration::from_secs(30))?;
        let card_text = b.text(PAGE, &card)?;
        for want in [
            info["backend"].as_str().unwrap_or("?"),
            info["profile"].as_str().unwrap_or("?"),
            "agent",
        ] {
            ensure!(card_text.contains(want), "the card lacks {want:?}: {card_text:?}");
        }
        shot(b, PAGE, &art, "grid.png")?;
        // The theme toggle changes what the page looks like (headless Chromium prefers light).
        let background = "getComputedStyle(document.body).backgroundColor";
        let light = b.eval(PAGE, background)?;
        b.click(PAGE, &Target::role("button", "Toggle theme"))?;
        let dark = b.eval(PAGE, background)?;
        ensure!(light != dark, "Toggle theme left the background {light}");
        shot(b, PAGE, &art, "grid-dark.png")?;
        eprintln!(
            "[{:>5.1} s] 1. grid: thumbnail {w} px wide",
            started.elapsed().as_secs_f64()
        );

        // 2. Ask → approve: an exec outside the allowlist waits in the inbox; the operator opens the
        //    session, sees the frame and the command, approves; the agent gets df's output.
        let screen_w = info["screen"]["width"].as_u64().context("screen width")?;
        let (call, ask) = serve
            .ask(
                &mut events,
                "exec",
                json!({"sandbox": sb, "argv": ["df", "-h", "/"]}),
            )
            .await?;
        let n = approval_id(&ask)?;
        b.wait_visible(
            PAGE,
            &Target::text("1 pending").within(&card),
            Duration::from_secs(10),
        )?;
        // (Its accessible name is the link text with the count: "Inbox (1 pending)".)
        b.wait_visible(
            PAGE,
            &inbox_link().has_text("(1 pending)"),
            Duration::from_secs(5),
        )?;
        b.click(PAGE, &inbox_link())?;
        b.wait_visible(PAGE, &inbox_item(n, &sb), Duration::from_secs(10))?;
        b.click(PAGE, &Target::role("button", &format!("Open {sb}")))?;
        let approval = Target::role("region", &format!("Approval {n}"));
        b.wait_visible(PAGE, &approval, Duration::from_secs(10))?;
        let frame = Target::role("img", &format!("Frame the agent saw for approval {n}")).within(&approval);
        let fw = loaded_width(b, &frame, Duration::from_secs(20))?;
        ensure!(
            fw == screen_w,
            "the approval frame is {fw} px wide, the screen {screen_w}"
        );
        let command = b.text(PAGE, &Target::label("Command line").within(&approval))?;
        ensure!(
            command.trim() == "df -h /",
            "the card shows the command {command:?}"
        );
        shot(b, PAGE, &art, "approval.png")?;
        b.click(PAGE, &Target::role("button", "Approve").within(&approval))?;
        let r = outcome(call, "approve").await?;
        ensure!(!r.is_error, "the approved df failed: {}", text(&r));
        ensure!(
            text(&r).contains("\"exit_code\":0") && text(&r).contains("Filesystem"),
            "df did not run: {}",
            text(&r)
        );
        b.wait_hidden(PAGE, &approval, Duration::from_secs(10))?;
        b.wait_visible(
            PAGE,
            &inbox_link().has_text("(0 pending)"),
            Duration::from_secs(10),
        )?;
        b.click(PAGE, &Target::role("link", "Grid"))?;
        b.wait_visible(PAGE, &card, Duration::from_secs(10))?;
        ensure!(
            b.count(PAGE, &Target::text("pending").within(&card))? == 0,
            "the card still shows a pending badge: {}",
            b.text(PAGE, &card)?
        );
        let (approved, _) = entry(serve, &sb, "the approval", |r| {
            matches!(resolved(r, n), Some(ApprovalState::Approved { .. }))
        })
        .await?;
        ensure!(
            approved.body.actor.operator.as_deref() == Some(serve.operator.as_str()),
            "{approved:?}"
        );
        eprintln!("[{:>5.1} s] 2. approved {n}", started.elapsed().as_secs_f64());

        // 3. Ask → edit: a recursive delete typed into the terminal; the operator changes the text;
        //    what runs is the edit, not the original.
        env.guest_sh(&sb, "mkdir -p /tmp/scratch-a && rm -f /tmp/edited.txt")?;
        b.click(PAGE, &Target::role("button", "Open").within(&card))?;
        let (call, ask) = serve
            .ask(
                &mut events,
                "computer",
                computer(&sb, json!({"action": "type", "text": "rm -rf /tmp/scratch-a\n"})),
            )
            .await?;
        let m = approval_id(&ask)?;
        let card_m = Target::role("region", &format!("Approval {m}"));
        b.wait_visible(PAGE, &card_m, Duration::from_secs(10))?;
        let typed = b.text(PAGE, &Target::label("Text to type").within(&card_m))?;
        ensure!(
            typed.contains("rm -rf /tmp/scratch-a"),
            "the card shows the text {typed:?}"
        );
        // Typed into the terminal, the line is a command: the card shows the command line the
        // policy judged.
        let command = b.text(PAGE, &Target::label("Command line").within(&card_m))?;
        ensure!(
            command.trim() == "rm -rf /tmp/scratch-a",
            "the card shows the command line {command:?}"
        );
        b.click(PAGE, &Target::role("button", "Edit").within(&card_m))?;
        let edited_text = "echo edited-by-operator > /tmp/edited.txt\n";
        b.fill(PAGE, &Target::label("Text").within(&card_m), edited_text)?;
        shot(b, PAGE, &art, "edit.png")?;
        b.click(PAGE, &Target::role("button", "Approve edited").within(&card_m))?;
        let r = outcome(call, "edit").await?;
        ensure!(!r.is_error, "the edited typing failed: {}", text(&r));
        let edited = poll("/tmp/edited.txt in the guest", Duration::from_secs(20), || {
            Ok(env.guest_sh(&sb, "cat /tmp/edited.txt").ok())
        })?;
        ensure!(
            edited.trim() == "edited-by-operator",
            "/tmp/edited.txt holds {edited:?}"
        );
        env.guest_sh(&sb, "test -d /tmp/scratch-a")
            .context("the original rm -rf ran")?;
        let (_, r) = entry(serve, &sb, "the edit", |r| {
            matches!(resolved(r, m), Some(ApprovalState::Edited { .. }))
        })
        .await?;
        ensure!(
            matches!(resolved(&r, m), Some(ApprovalState::Edited { action: Action::Type { text }, .. })
                if text == edited_text),
            "the ledger's edit is not the operator's text: {r:?}"
        );
        b.wait_hidden(PAGE, &card_m, Duration::from_secs(10))?;
        eprintln!("[{:>5.1} s] 3. edited {m}", started.elapsed().as_secs_f64());

        // 4. Ask → deny from the inbox with the keyboard only: select, `d`, a reason, Enter.
        let (call, ask) = serve
            .ask(&mut events, "exec", json!({"sandbox": sb, "argv": ["df", "-i"]}))
            .await?;
        let k = approval_id(&ask)?;
        b.click(PAGE, &inbox_link())?;
        let item = inbox_item(k, &sb);
        b.wait_visible(PAGE, &item, Duration::from_secs(10))?;
        b.keyboard_press(PAGE, "End")?;
        b.keyboard_press(PAGE, "Home")?;
        ensure!(
            b.attr(PAGE, &item, "aria-selected")?.as_deref() == Some("true"),
            "the approval is not selected"
        );
        shot(b, PAGE, &art, "inbox.png")?;
        b.keyboard_press(PAGE, "d")?;
        let reason_box = Target::label("Reason");
        b.wait_visible(PAGE, &reason_box, Duration::from_secs(5))?;
        poll("the Reason box to have the focus", Duration::from_secs(5), || {
            let v = b.eval_on(PAGE, &reason_box, "el => document.activeElement === el")?;
            Ok((v == json!(true)).then_some(()))
        })?;
        let reason = "inode counts are not needed for this task";
        b.keyboard_type(PAGE, reason)?;
        shot(b, PAGE, &art, "deny.png")?;
        b.keyboard_press(PAGE, "Enter")?;
        let r = outcome(call, "deny").await?;
        ensure!(
            r.is_error && text(&r).contains(reason),
            "the denial did not reach the agent with the reason: {}",
            text(&r)
        );
        b.wait_hidden(PAGE, &item, Duration::from_secs(10))?;
        let (_, r) = entry(serve, &sb, "the denial", |r| {
            matches!(resolved(r, k), Some(ApprovalState::Denied { .. }))
        })
        .await?;
        ensure!(
            matches!(resolved(&r, k), Some(ApprovalState::Denied { reason: Some(why), .. }) if why == reason),
            "{r:?}"
        );
        eprintln!("[{:>5.1} s] 4. denied {k}", started.elapsed().as_secs_f64());

        // 5. Takeover: take control, type into the VM with the real keyboard, hand back with a note;
        //    the agent's next action gets the fresh screen and the note instead of running.
        b.click(PAGE, &Target::role("link", "Grid"))?;
        b.click(PAGE, &Target::role("button", "Open").within(&card))?;
        let live = Target::label(&format!("Live screen of {sb}"));
        b.wait_visible(PAGE, &live, Duration::from_secs(30))?;
        poll("the live view to show frames", Duration::from_secs(30), || {
            let f = b.attr(PAGE, &live, "data-frames")?.unwrap_or_default();
            Ok((f.parse::<u64>().unwrap_or(0) > 0).then_some(()))
        })?;
        b.wait_visible(
            PAGE,
            &Target::any_role("status").has_text("Agent is driving"),
            Duration::from_secs(5),
        )?;
        b.click(PAGE, &Target::role("button", "Take control"))?;
        banner(b, "You are in control")?;
        let agent = serve.agent().await?;
        let refused = agent
            .call("exec", json!({"sandbox": sb, "argv": ["true"]}))
            .await?;
        ensure!(
            refused.is_error && text(&refused).contains("taken control"),
            "the agent was not refused while the operator is in control: {}",
            text(&refused)
        );
        // A real click on the middle of the live view focuses it (and clicks the terminal).
        let rect = b.eval_on(
            PAGE,
            &live,
            "el => { const r = el.getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; }",
        )?;
        b.mouse_click(
            PAGE,
            rect["x"].as_f64().context("x")?,
            rect["y"].as_f64().context("y")?,
        )?;
        b.keyboard_type(PAGE, "echo typed-by-console > /tmp/console.txt")?;
        b.keyboard_press(PAGE, "Enter")?;
        let typed = poll("/tmp/console.txt in the guest", Duration::from_secs(20), || {
            Ok(env.guest_sh(&sb, "cat /tmp/console.txt").ok())
        })?;
        ensure!(
            typed.trim() == "typed-by-console",
            "/tmp/console.txt holds {typed:?}"
        );
        shot(b, PAGE, &art, "takeover.png")?;
        // The click took the pointer lock (the footer says so): the mouse cannot reach the
        // buttons until Esc releases it, as for a person.
        if b.eval(PAGE, "document.pointerLockElement !== null")? == json!(true) {
            b.keyboard_press(PAGE, "Escape")?;
            let released = poll(
                "Esc to release the pointer lock",
                Duration::from_millis(1500),
                || Ok((b.eval(PAGE, "document.pointerLockElement === null")? == json!(true)).then_some(())),
            );
            if released.is_err() {
                // Headless Chromium leaves the lock on a synthetic Esc (a real browser releases
                // it itself, before the page sees the key): do what the browser would.
                eprintln!("Esc did not release the pointer lock in headless Chromium; releasing it");
                b.eval(PAGE, "document.exitPointerLock()")?;
            }
        }
        b.click(PAGE, &Target::role("button", "Hand back"))?;
        let note = "I ran the echo myself; carry on";
        b.fill(PAGE, &Target::label("Note to the agent"), note)?;
        b.click(PAGE, &Target::role("button", "Hand back to agent"))?;
        banner(b, "Agent is driving")?;
        let after = agent_presses_ctrl_l(&agent, &sb).await?;
        ensure!(
            text(&after).contains(&format!("their note: {note}")) && after.images.len() == 1,
            "the agent's first action after the handback: {}",
            text(&after)
        );
        // Ctrl+Alt+Enter toggles control from the keyboard, both ways.
        b.keyboard_press(PAGE, "Control+Alt+Enter")?;
        banner(b, "You are in control")?;
        // A second press hands back; one made while the take request is still in flight is
        // queued and applied when it lands, so no wait is needed in between.
        b.keyboard_press(PAGE, "Control+Alt+Enter")?;
        banner(b, "Agent is driving")?;
        let after = agent_presses_ctrl_l(&agent, &sb).await?;
        ensure!(
            after.is_error && text(&after).contains("not performed"),
            "the agent's first action after the second handback: {}",
            text(&after)
        );
        let leases = records(&serve.ledger(Some(&sb)).await?)?
            .iter()
            .filter(|(_, r)| matches!(r, Record::LeaseChanged(_)))
            .count();
        ensure!(leases == 4, "{leases} lease changes in the ledger, not 4");
        eprintln!(
            "[{:>5.1} s] 5. takeover and handback",
            started.elapsed().as_secs_f64()
        );

        // 6. Ledger view: the decisions, the takeover and the handback in seq order; verify; export.
        let all = records(&serve.ledger(Some(&sb)).await?)?;
        let lease = |what: &str, pick: fn(&LeaseCommand) -> bool| {
            all.iter()
                .find_map(|(e, r)| match r {
                    Record::LeaseChanged(LeaseChanged { command, .. }) if pick(command) => Some((e, command)),
                    _ => None,
                })
                .with_context(|| format!("no lease_changed {what} in the ledger"))
        };
        let ran_df = all
            .iter()
            .find(|(_, r)| {
                matches!(r, Record::ActionExecuted(ActionExecuted { action: Action::Exec { argv, .. }, .. })
                    if argv == &["df", "-h", "/"])
            })
            .map(|(e, _)| e)
            .context("no executed df in the ledger")?;
        let (took, _) = lease("take", |c| matches!(c, LeaseCommand::Take { .. }))?;
        let (handed_back, hand_back) = lease("hand_back", |c| matches!(c, LeaseCommand::HandBack { .. }))?;
        // The live view's note travels with the hand-back itself.
        ensure!(
            matches!(hand_back, LeaseCommand::HandBack { note: Some(left), .. } if left == note),
            "the hand-back does not carry the note: {hand_back:?}"
        );
        let edit_seq = entry(serve, &sb, "edit", |r| {
            matches!(resolved(r, m), Some(ApprovalState::Edited { .. }))
        })
        .await?
        .0
        .seq;
        let deny_seq = entry(serve, &sb, "deny", |r| {
            matches!(resolved(r, k), Some(ApprovalState::Denied { .. }))
        })
        .await?
        .0
        .seq;
        let milestones: Vec<(u64, Vec<String>)> = vec![
            (approved.seq, vec![format!("approval {n}"), "approved".into()]),
            (ran_df.seq, vec!["df -h /".into()]),
            (edit_seq, vec![format!("approval {m}"), "edited".into()]),
            (
                deny_seq,
                vec![format!("approval {k}"), "denied".into(), reason.into()],
            ),
            (took.seq, vec!["take".into()]),
            (handed_back.seq, vec!["hand back".into(), note.into()]),
        ];
        b.click(PAGE, &Target::role("button", "Ledger"))?;
        let table = Target::role("table", "Ledger entries");
        b.wait_visible(PAGE, &table, Duration::from_secs(10))?;
        let last = milestones.last().map(|m| m.0).unwrap_or(0);
        let rows: Vec<(u64, String)> = poll("the ledger rows", Duration::from_secs(20), || {
            let v = b.eval_on(
                PAGE,
                &table,
                "t => [...t.tBodies].flatMap(b => [...b.rows]).map(r => [r.cells[0].innerText, r.innerText])",
            )?;
            let rows: Vec<(u64, String)> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r[0].as_str().unwrap_or_default().trim().parse().unwrap_or(0),
                        r[1].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            Ok(rows.iter().any(|(s, _)| *s == last).then_some(rows))
        })?;
        ensure!(
            rows.windows(2).all(|w| w[0].0 < w[1].0),
            "the ledger rows are not in seq order: {:?}",
            rows.iter().map(|r| r.0).collect::<Vec<_>>()
        );
        let mut at = None;
        for (s, words) in &milestones {
            let i = rows
                .iter()
                .position(|(rs, _)| rs == s)
                .with_context(|| format!("entry {s} is not in the ledger view"))?;
            for w in words {
                ensure!(
                    rows[i].1.contains(w.as_str()),
                    "entry {s} does not say {w:?}: {:?}",
                    rows[i].1
                );
            }
            ensure!(at.is_none_or(|a| a < i), "entry {s} is out of order");
            at = Some(i);
        }
        let (_, before) = serve.get("/ledger/verify").await?;
        b.click(PAGE, &Target::role("button", "Verify"))?;
        let verdict = Target::any_role("status").has_text("Chain");
        b.wait_visible(PAGE, &verdict, Duration::from_secs(30))?;
        let said = b.text(PAGE, &verdict)?;
        let (_, after_v) = serve.get("/ledger/verify").await?;
        ensure!(said.contains("intact"), "Verify says {said:?}");
        ensure!(after_v["first_broken"].is_null(), "{after_v}");
        let counted: u64 = said
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .with_context(|| format!("no entry count in {said:?}"))?;
        ensure!(
            before["entries"].as_u64() <= Some(counted) && Some(counted) <= after_v["entries"].as_u64(),
            "Verify counted {counted} entries; the API {} then {}",
            before["entries"],
            after_v["entries"]
        );
        shot(b, PAGE, &art, "ledger.png")?;
        let export = art.join("airlock-ledger.jsonl");
        let name = b.download(PAGE, &Target::role("button", "Export"), &export)?;
        ensure!(name == "airlock-ledger.jsonl", "the export is named {name:?}");
        let lines: Vec<Value> = std::fs::read_to_string(&export)?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .context("the export is not JSON Lines")?;
        let lines = records(&lines).context("the export's lines are not ledger entries")?;
        ensure!(
            before["entries"]
                .as_u64()
                .is_some_and(|n| lines.len() as u64 >= n)
                && lines.iter().any(|(e, _)| e.seq == last),
            "the export has {} lines",
            lines.len()
        );
        eprintln!(
            "[{:>5.1} s] 6. ledger: {} rows, {said}",
            started.elapsed().as_secs_f64(),
            rows.len()
        );

        // 7. Policy view: the Cedar text (the rules about actions, then the network rules under
        // their own heading, together exactly the policy); the shadow-mode switch asks first, and
        // Cancel keeps enforce.
        let (_, policy) = serve.get("/policy").await?;
        b.click(PAGE, &Target::role("link", "Policy"))?;
        let policy_text = Target::role("region", "Policy text");
        b.wait_visible(
            PAGE,
            &policy_text.clone().has_text("@id"),
            Duration::from_secs(10),
        )?;
        let actions = b.text(PAGE, &Target::label("Action rules"))?;
        let network = b.text(PAGE, &Target::label("Network rules"))?;
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        ensure!(
            squash(&format!("{actions} {network}")) == squash(policy["text"].as_str().unwrap_or_default()),
            "the policy view does not show the policy text"
        );
        ensure!(
            network.contains("@id(\"new-destination\")") && !actions.contains("Action::\"connect\""),
            "the network rules are not under their own heading"
        );
        let version = policy["version"].as_str().unwrap_or_default();
        b.wait_visible(
            PAGE,
            &Target::text(&version[..version.len().min(16)]),
            Duration::from_secs(5),
        )?;
        let switch = Target::role("switch", "Shadow mode");
        ensure!(b.attr(PAGE, &switch, "aria-checked")?.as_deref() == Some("false"));
        shot(b, PAGE, &art, "policy.png")?;
        b.click(PAGE, &switch)?;
        let dialog = Target::role("dialog", "Switch to shadow mode?");
        b.wait_visible(PAGE, &dialog, Duration::from_secs(5))?;
        b.wait_visible(
            PAGE,
            &Target::role("button", "Switch to shadow mode").within(&dialog),
            Duration::from_secs(5),
        )?;
        shot(b, PAGE, &art, "policy-confirm.png")?;
        b.click(PAGE, &Target::role("button", "Cancel").within(&dialog))?;
        b.wait_hidden(PAGE, &dialog, Duration::from_secs(5))?;
        ensure!(b.attr(PAGE, &switch, "aria-checked")?.as_deref() == Some("false"));
        let (_, policy) = serve.get("/policy").await?;
        ensure!(policy["mode"] == "enforce", "{policy}");
        eprintln!("[{:>5.1} s] 7. policy", started.elapsed().as_secs_f64());

        // 8. Resilience: the server dies under the open console and comes back on the same address;
        //    the console reconnects and a new ask shows exactly once.
        b.click(PAGE, &Target::role("link", "Grid"))?;
        b.wait_visible(PAGE, &card, Duration::from_secs(10))?;
        loaded_width(b, &thumb, Duration::from_secs(30))?;
        let listen = serve.base.trim_start_matches("http://").to_string();
        drop(events);
        drop(agent);
        serve.kill9();
        let reconnecting = Target::any_role("status").has_text("Reconnecting");
        b.wait_visible(PAGE, &reconnecting, Duration::from_secs(15))?;
        shot(b, PAGE, &art, "reconnecting.png")?;
        ensure!(
            b.count(PAGE, &thumb)? == 1,
            "the card dropped its last thumbnail while the server is away"
        );
        *serve = Serve::start_at(env, &listen, &SERVE_ARGS)?;
        ensure!(
            serve.only_sandbox().await? == sb,
            "the restarted serve did not adopt {sb}"
        );
        b.wait_hidden(PAGE, &reconnecting, Duration::from_secs(30))?;
        b.wait_visible(PAGE, &card, Duration::from_secs(10))?;
        // The card's viewer reconnects too: its placeholder goes and a thumbnail is shown.
        b.wait_hidden(
            PAGE,
            &Target::text("Viewer disconnected").within(&card),
            Duration::from_secs(30),
        )?;
        loaded_width(b, &thumb, Duration::from_secs(30))?;
        b.wait_visible(
            PAGE,
            &Target::role("status", "Connection").has_text("Live"),
            Duration::from_secs(5),
        )?;
        let mut events = serve.events().await?;
        let (call, ask) = serve
            .ask(
                &mut events,
                "exec",
                json!({"sandbox": sb, "argv": ["df", "-h", "/tmp"]}),
            )
            .await?;
        let p = approval_id(&ask)?;
        b.click(PAGE, &inbox_link())?;
        let item = inbox_item(p, &sb);
        b.wait_visible(PAGE, &item, Duration::from_secs(10))?;
        // Give a duplicate (from the reconnect snapshot and the event both) time to show.
        std::thread::sleep(Duration::from_secs(2));
        ensure!(
            b.count(PAGE, &item)? == 1,
            "approval {p} is listed more than once"
        );
        let listed = b.count(
            PAGE,
            &Target::any_role("listitem").within(&Target::role("list", "Pending approvals")),
        )?;
        let (_, pending) = serve.get("/approvals").await?;
        ensure!(
            listed == 1 && pending.as_array().map(Vec::len) == Some(1),
            "the inbox lists {listed} approvals, the server has {pending}"
        );
        b.keyboard_press(PAGE, "a")?;
        let r = outcome(call, "approve after the restart").await?;
        ensure!(!r.is_error, "{}", text(&r));
        b.wait_hidden(PAGE, &item, Duration::from_secs(10))?;
        eprintln!(
            "[{:>5.1} s] 8. reconnected, approved {p}",
            started.elapsed().as_secs_f64()
        );

        // 9. A decision that comes too late: another operator (the API) denies the ask while this
        //    console's event socket is held back, so the console still shows it; its Approve must
        //    show the server's refusal, and the card goes when the held event arrives.
        //    Deterministic: the gate holds every server-to-page message from the moment it closes.
        b.open_gated(
            GATED,
            &format!("{}/#/inbox?token={}", serve.base, serve.operator_token),
            "/api/events",
        )?;
        b.wait_visible(
            GATED,
            &Target::role("status", "Connection").has_text("Live"),
            Duration::from_secs(20),
        )?;
        let (call, ask) = serve
            .ask(&mut events, "exec", json!({"sandbox": sb, "argv": ["df", "-k"]}))
            .await?;
        let q = approval_id(&ask)?;
        let gated_card = Target::role("region", &format!("Approval {q}"));
        b.wait_visible(GATED, &inbox_item(q, &sb), Duration::from_secs(10))?;
        b.wait_visible(GATED, &gated_card, Duration::from_secs(10))?;
        b.hold_ws(GATED, true)?;
        serve
            .decide(
                &sb,
                q,
                json!({"decision": "deny", "reason": "decided by another operator"}),
            )
            .await?;
        let r = outcome(call, "deny through the API").await?;
        ensure!(r.is_error, "{}", text(&r));
        // The ungated console drops it at once.
        b.click(PAGE, &inbox_link())?;
        b.wait_hidden(PAGE, &inbox_item(q, &sb), Duration::from_secs(10))?;
        b.click(GATED, &Target::role("button", "Approve").within(&gated_card))?;
        let alert = Target::any_role("alert").within(&gated_card);
        b.wait_visible(GATED, &alert, Duration::from_secs(10))?;
        let shown = b.text(GATED, &alert)?;
        let (status, refusal) = serve
            .post(
                &format!("/sandboxes/{sb}/approvals/{q}"),
                json!({"decision": "approve"}),
            )
            .await?;
        let message = refusal["message"].as_str().unwrap_or_default();
        ensure!(
            status == 409 && refusal["code"] == "approval",
            "a late decision is a conflict: {status} {refusal}"
        );
        ensure!(
            message.contains("no longer pending")
                && message.contains(&format!("denied by {}", serve.operator)),
            "the refusal says what happened and who decided: {refusal}"
        );
        ensure!(
            shown.contains(message),
            "the console shows {shown:?}; the server says {status} {refusal}"
        );
        eprintln!("the late decision: {status} {refusal}");
        shot(b, GATED, &art, "late-decision.png")?;
        let held = b.hold_ws(GATED, false)?;
        ensure!(
            held >= 1,
            "the gate held nothing back: the resolution event was not held"
        );
        b.wait_hidden(GATED, &gated_card, Duration::from_secs(10))?;
        b.close(GATED)?;
        eprintln!(
            "[{:>5.1} s] 9. late decision refused",
            started.elapsed().as_secs_f64()
        );

        // The whole session left an intact ledger.
        env.ledger_verifies()?;
        Ok(())
    }
}
