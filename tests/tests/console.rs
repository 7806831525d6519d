//! The operator console end to end: `airlock serve` with a real gVisor desktop sandbox, the built
//! console (ui/dist) in real headless Chromium, driven only by accessible names the way an
//! operator drives it — approve, edit and deny asks, take control and type into the VM, hand
//! back with a note, read and verify the ledger, look at the policy, survive a server restart,
//! and see the server's refusal of a decision another operator already made. Every step is
//! checked again through the API, the ledger or the guest.
//!
//! Each test has its own serve, sandbox and browser ([`Console`]), sets up what it needs (through
//! the API where the set-up is not what it tests), and ends with an intact ledger, so one failure
//! does not hide the others.
//!
//! Screenshots of each view go to `target/test-artifacts/console/` (with each test's browser and
//! server logs, and the page of a failed test).

use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, Instant};

use airlock_browser::{Browser, Target};
use airlock_domain::{Action, ApprovalState, LeaseCommand};
use airlock_ledger::Entry;
use airlock_records::{ActionExecuted, HumanRequestRecord, LeaseChanged, Record};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::{computer, Events, Pending, Serve};
use airlock_test_kit::e2e::{poll, Env};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

/// The console page every test uses.
const PAGE: &str = "console";
/// A second console whose event socket can be held back (the late decision).
const GATED: &str = "gated";

const SERVE_ARGS: [&str; 4] = ["--backend", "gvisor", "--approval-timeout", "60"];

/// Where the screenshots and logs go: `target/test-artifacts/console/`.
fn artifacts_dir() -> Result<PathBuf> {
    static CLEARED: Once = Once::new();
    let target = airlock_test_kit::e2e::bin_dir()
        .parent()
        .context("the target directory")?
        .to_path_buf();
    let dir = target.join("test-artifacts/console");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    // Nothing from an earlier run may pass for this one's (cleared once: the tests run at once).
    CLEARED.call_once(|| {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "png" || x == "jsonl") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    });
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

/// One gVisor desktop sandbox under `airlock serve` with its terminal ready, and a Chromium
/// showing the console as page [`PAGE`], signed in through the token link, on the grid.
/// Fields drop in order: the browser, the server, its log is kept, then the state dir goes.
struct Console {
    b: Browser,
    serve: Serve,
    _keep: KeepLog,
    env: Env,
    /// The test's short name (state dir, logs, failure screenshots).
    name: &'static str,
    sb: String,
    /// `GET /sandboxes/{sb}`.
    info: Value,
    art: PathBuf,
    started: Instant,
}

impl Console {
    async fn start(name: &'static str) -> Result<Console> {
        let started = Instant::now();
        let env = Env::new(name);
        let art = artifacts_dir()?;
        let keep = KeepLog {
            from: env.root.join("serve.log"),
            to: art.join(format!("{name}-serve.log")),
        };
        let serve = Serve::start(&env, &SERVE_ARGS)?;
        let sb = serve.only_sandbox().await?;
        serve.wait_terminal(&env, &sb, Duration::from_secs(120)).await?;
        let index = reqwest::get(format!("{}/", serve.base)).await?;
        ensure!(
            index.status() == 200 && index.text().await?.contains("<div id=\"app\""),
            "airlock serve does not serve the console at / — build it: npm --prefix ui run build"
        );
        let (status, info) = serve.get(&format!("/sandboxes/{sb}")).await?;
        ensure!(status == 200, "sandbox info: {status} {info}");
        let mut b = Browser::launch(&art.join(format!("{name}-chromium.log")))?;
        b.open(PAGE, &format!("{}/#token={}", serve.base, serve.operator_token))?;
        b.wait_visible(PAGE, &card(&sb), Duration::from_secs(30))?;
        eprintln!(
            "[{name}] serve, the sandbox and the console are up in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Console {
            b,
            serve,
            _keep: keep,
            env,
            name,
            sb,
            info,
            art,
            started,
        })
    }

    /// Ends the test: on failure, what the operator saw; on success, the ledger must verify.
    fn finish(mut self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            for page in [PAGE, GATED] {
                let shot = self.art.join(format!("failure-{}-{page}.png", self.name));
                let _ = self.b.screenshot(page, &shot);
                if let Ok(tree) = self.b.aria_snapshot(page, &Target::css("body")) {
                    eprintln!("--- page {page} when {} failed ({e:#}):\n{tree}", self.name);
                }
            }
            return result;
        }
        // The session left an intact ledger.
        self.env.ledger_verifies()?;
        eprintln!(
            "[{}] done in {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn shot(&mut self, page: &str, file: &str) -> Result<()> {
        self.b.screenshot(page, &self.art.join(file))
    }

    /// The sandbox's card on the grid.
    fn card(&self) -> Target {
        card(&self.sb)
    }

    /// The card's thumbnail.
    fn thumb(&self) -> Target {
        Target::role("img", &format!("Thumbnail of {}", self.sb)).within(&self.card())
    }

    /// Polls the natural width of an image on [`PAGE`] until it has loaded; returns it.
    fn loaded_width(&mut self, img: &Target, timeout: Duration) -> Result<u64> {
        let b = &mut self.b;
        poll(&format!("{img} to load"), timeout, || {
            let w = b.eval_on(PAGE, img, "img => (img.complete ? img.naturalWidth : 0)")?;
            Ok(w.as_u64().filter(|w| *w > 0))
        })
    }

    /// Waits until the card's thumbnail has loaded; returns its width.
    fn thumbnail_loaded(&mut self) -> Result<u64> {
        let thumb = self.thumb();
        self.b.wait_visible(PAGE, &thumb, Duration::from_secs(60))?;
        self.loaded_width(&thumb, Duration::from_secs(30))
    }

    /// Waits until the session's control banner says `text`.
    fn banner(&mut self, text: &str) -> Result<()> {
        self.b.wait_visible(
            PAGE,
            &Target::any_role("status").has_text(text),
            Duration::from_secs(10),
        )
    }

    /// From the grid, opens the sandbox's session and waits for its live view.
    fn open_session(&mut self) -> Result<Target> {
        let card = self.card();
        self.b.click(PAGE, &Target::role("link", "Grid"))?;
        self.b.wait_visible(PAGE, &card, Duration::from_secs(10))?;
        self.b
            .click(PAGE, &Target::role("button", "Open").within(&card))?;
        let live = Target::label(&format!("Live screen of {}", self.sb));
        self.b.wait_visible(PAGE, &live, Duration::from_secs(30))?;
        Ok(live)
    }

    /// [`Console::open_session`], then waits until the live view shows frames and the agent
    /// drives.
    fn open_live_session(&mut self) -> Result<Target> {
        let live = self.open_session()?;
        let b = &mut self.b;
        poll("the live view to show frames", Duration::from_secs(30), || {
            let f = b.attr(PAGE, &live, "data-frames")?.unwrap_or_default();
            Ok((f.parse::<u64>().unwrap_or(0) > 0).then_some(()))
        })?;
        self.b.wait_visible(
            PAGE,
            &Target::any_role("status").has_text("Agent is driving"),
            Duration::from_secs(5),
        )?;
        Ok(live)
    }

    /// The agent asks to exec `argv` (outside the allowlist); returns the call and its approval id.
    async fn ask_exec(&self, events: &mut Events, argv: &[&str]) -> Result<(Pending, u64)> {
        let (call, ask) = self
            .serve
            .ask(events, "exec", json!({"sandbox": self.sb, "argv": argv}))
            .await?;
        Ok((call, approval_id(&ask)?))
    }

    /// The ledger entry of the sandbox whose record `pick` finds.
    async fn entry(&self, what: &str, pick: impl Fn(&Record) -> bool) -> Result<(Entry, Record)> {
        records(&self.serve.ledger(Some(&self.sb)).await?)?
            .into_iter()
            .find(|(_, r)| pick(r))
            .with_context(|| format!("no ledger entry for {what}"))
    }

    /// How many control changes the sandbox's ledger holds.
    async fn lease_changes(&self) -> Result<usize> {
        Ok(records(&self.serve.ledger(Some(&self.sb)).await?)?
            .iter()
            .filter(|(_, r)| matches!(r, Record::LeaseChanged(_)))
            .count())
    }

    /// Kills the server under the open console and starts it again on the same address; waits
    /// until the console says it is live again. Returns once the restarted serve adopted the
    /// sandbox.
    async fn restart_serve(&mut self) -> Result<()> {
        let listen = self.serve.base.trim_start_matches("http://").to_string();
        self.serve.kill9();
        let reconnecting = Target::any_role("status").has_text("Reconnecting");
        self.b
            .wait_visible(PAGE, &reconnecting, Duration::from_secs(15))?;
        self.serve = Serve::start_at(&self.env, &listen, &SERVE_ARGS)?;
        ensure!(
            self.serve.only_sandbox().await? == self.sb,
            "the restarted serve did not adopt {}",
            self.sb
        );
        self.b.wait_hidden(PAGE, &reconnecting, Duration::from_secs(30))?;
        self.b.wait_visible(
            PAGE,
            &Target::role("status", "Connection").has_text("Live"),
            Duration::from_secs(30),
        )?;
        Ok(())
    }
}

fn card(sb: &str) -> Target {
    Target::role("article", &format!("Sandbox {sb}"))
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

/// How `approval` ended, if `r` records that.
fn resolved(r: &Record, approval: u64) -> Option<&ApprovalState> {
    match r {
        Record::ApprovalResolved(x) if x.approval == approval => Some(&x.state),
        _ => None,
    }
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

/// The `Inbox` link of the top bar (its name carries the pending count).
fn inbox_link() -> Target {
    Target::role("link", "Inbox").inexact()
}

fn inbox_item(n: u64, sb: &str) -> Target {
    Target::role("listitem", &format!("Approval {n} in {sb}"))
        .within(&Target::role("list", "Pending approvals"))
}

/// Every row of the ledger view's table as (seq, text), once the row of `last` is shown.
fn ledger_rows(b: &mut Browser, table: &Target, last: u64) -> Result<Vec<(u64, String)>> {
    poll("the ledger rows", Duration::from_secs(20), || {
        let v = b.eval_on(
            PAGE,
            table,
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
    })
}

/// The seq of the first entry in `all` whose record `pick` finds.
fn seq_of(all: &[(Entry, Record)], what: &str, pick: impl Fn(&Record) -> bool) -> Result<u64> {
    all.iter()
        .find(|(_, r)| pick(r))
        .map(|(e, _)| e.seq)
        .with_context(|| format!("no {what} in the ledger"))
}

/// The seq of the sandbox's newest ledger entry.
async fn last_seq(c: &Console) -> Result<u64> {
    records(&c.serve.ledger(Some(&c.sb)).await?)?
        .last()
        .map(|(e, _)| e.seq)
        .context("the sandbox's ledger is empty")
}

/// An allowed agent action, so the ledger holds an executed step.
async fn agent_runs_echo(c: &Console) -> Result<()> {
    let agent = c.serve.agent().await?;
    let r = agent
        .call("exec", json!({"sandbox": c.sb, "argv": ["echo", "hello"]}))
        .await?;
    ensure!(!r.is_error, "the allowed echo failed: {}", text(&r));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_link_signs_the_operator_in_and_leaves_no_token_in_the_address_bar() -> Result<()> {
    let mut c = Console::start("c-signin").await?;
    let r: Result<()> = async {
        c.b.wait_visible(
            PAGE,
            &Target::text(&format!("Signed in as {}", c.serve.operator)),
            Duration::from_secs(10),
        )?;
        let token_left = c.b.eval(PAGE, "location.hash")?;
        ensure!(
            !token_left.as_str().unwrap_or_default().contains("token"),
            "the token stays in the address bar: {token_left}"
        );
        Ok(())
    }
    .await;
    c.finish(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_card_shows_a_live_thumbnail_the_backend_the_profile_and_who_drives() -> Result<()> {
    let mut c = Console::start("c-grid").await?;
    let r: Result<()> = async {
        let w = c.thumbnail_loaded()?;
        let card_text = c.b.text(PAGE, &c.card())?;
        for want in [
            c.info["backend"].as_str().unwrap_or("?"),
            c.info["profile"].as_str().unwrap_or("?"),
            "agent",
        ] {
            ensure!(card_text.contains(want), "the card lacks {want:?}: {card_text:?}");
        }
        c.shot(PAGE, "grid.png")?;
        eprintln!("grid: thumbnail {w} px wide");
        Ok(())
    }
    .await;
    c.finish(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_theme_toggle_changes_what_the_page_looks_like() -> Result<()> {
    let mut c = Console::start("c-theme").await?;
    let r: Result<()> = async {
        c.thumbnail_loaded()?;
        // Headless Chromium prefers light.
        let background = "getComputedStyle(document.body).backgroundColor";
        let light = c.b.eval(PAGE, background)?;
        c.b.click(PAGE, &Target::role("button", "Toggle theme"))?;
        let dark = c.b.eval(PAGE, background)?;
        ensure!(light != dark, "Toggle theme left the background {light}");
        c.shot(PAGE, "grid-dark.png")?;
        Ok(())
    }
    .await;
    c.finish(r)
}

/// An exec outside the allowlist waits in the inbox; the operator opens the session, sees the
/// frame and the command, approves; the agent gets df's output and the badges go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_ask_runs_and_leaves_the_inbox_and_the_card() -> Result<()> {
    let mut c = Console::start("c-approve").await?;
    let r: Result<()> = async {
        let (sb, card) = (c.sb.clone(), c.card());
        let screen_w = c.info["screen"]["width"].as_u64().context("screen width")?;
        let mut events = c.serve.events().await?;
        let (call, n) = c.ask_exec(&mut events, &["df", "-h", "/"]).await?;
        let b = &mut c.b;
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
        let fw = c.loaded_width(&frame, Duration::from_secs(20))?;
        ensure!(
            fw == screen_w,
            "the approval frame is {fw} px wide, the screen {screen_w}"
        );
        let command = c.b.text(PAGE, &Target::label("Command line").within(&approval))?;
        ensure!(
            command.trim() == "df -h /",
            "the card shows the command {command:?}"
        );
        c.shot(PAGE, "approval.png")?;
        let b = &mut c.b;
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
        let (approved, _) = c
            .entry("the approval", |r| {
                matches!(resolved(r, n), Some(ApprovalState::Approved { .. }))
            })
            .await?;
        ensure!(
            approved.body.actor.operator.as_deref() == Some(c.serve.operator.as_str()),
            "{approved:?}"
        );
        Ok(())
    }
    .await;
    c.finish(r)
}

/// A recursive delete typed into the terminal; the operator changes the text; what runs is the
/// edit, not the original, and the ledger records the operator's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_ask_runs_the_operators_text_instead_of_the_agents() -> Result<()> {
    let mut c = Console::start("c-edit").await?;
    let r: Result<()> = async {
        let sb = c.sb.clone();
        c.env
            .guest_sh(&sb, "mkdir -p /tmp/scratch-a && rm -f /tmp/edited.txt")?;
        c.open_session()?;
        let mut events = c.serve.events().await?;
        let (call, ask) = c
            .serve
            .ask(
                &mut events,
                "computer",
                computer(&sb, json!({"action": "type", "text": "rm -rf /tmp/scratch-a\n"})),
            )
            .await?;
        let m = approval_id(&ask)?;
        let card_m = Target::role("region", &format!("Approval {m}"));
        let b = &mut c.b;
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
        c.shot(PAGE, "edit.png")?;
        c.b.click(PAGE, &Target::role("button", "Approve edited").within(&card_m))?;
        let r = outcome(call, "edit").await?;
        ensure!(!r.is_error, "the edited typing failed: {}", text(&r));
        let env = &c.env;
        let edited = poll("/tmp/edited.txt in the guest", Duration::from_secs(20), || {
            Ok(env.guest_sh(&sb, "cat /tmp/edited.txt").ok())
        })?;
        ensure!(
            edited.trim() == "edited-by-operator",
            "/tmp/edited.txt holds {edited:?}"
        );
        env.guest_sh(&sb, "test -d /tmp/scratch-a")
            .context("the original rm -rf ran")?;
        let (_, r) = c
            .entry("the edit", |r| {
                matches!(resolved(r, m), Some(ApprovalState::Edited { .. }))
            })
            .await?;
        ensure!(
            matches!(resolved(&r, m), Some(ApprovalState::Edited { action: Action::Type { text }, .. })
                if text == edited_text),
            "the ledger's edit is not the operator's text: {r:?}"
        );
        c.b.wait_hidden(PAGE, &card_m, Duration::from_secs(10))?;
        Ok(())
    }
    .await;
    c.finish(r)
}

/// Deny from the inbox with the keyboard only: select, `d`, a reason, Enter; the agent and the
/// ledger get the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_is_denied_with_a_reason_from_the_inbox_with_the_keyboard_alone() -> Result<()> {
    let mut c = Console::start("c-deny").await?;
    let r: Result<()> = async {
        let sb = c.sb.clone();
        let mut events = c.serve.events().await?;
        let (call, k) = c.ask_exec(&mut events, &["df", "-i"]).await?;
        let b = &mut c.b;
        b.click(PAGE, &inbox_link())?;
        let item = inbox_item(k, &sb);
        b.wait_visible(PAGE, &item, Duration::from_secs(10))?;
        b.keyboard_press(PAGE, "End")?;
        b.keyboard_press(PAGE, "Home")?;
        ensure!(
            b.attr(PAGE, &item, "aria-selected")?.as_deref() == Some("true"),
            "the approval is not selected"
        );
        c.shot(PAGE, "inbox.png")?;
        let b = &mut c.b;
        b.keyboard_press(PAGE, "d")?;
        let reason_box = Target::label("Reason");
        b.wait_visible(PAGE, &reason_box, Duration::from_secs(5))?;
        poll("the Reason box to have the focus", Duration::from_secs(5), || {
            let v = b.eval_on(PAGE, &reason_box, "el => document.activeElement === el")?;
            Ok((v == json!(true)).then_some(()))
        })?;
        let reason = "inode counts are not needed for this task";
        b.keyboard_type(PAGE, reason)?;
        c.shot(PAGE, "deny.png")?;
        c.b.keyboard_press(PAGE, "Enter")?;
        let r = outcome(call, "deny").await?;
        ensure!(
            r.is_error && text(&r).contains(reason),
            "the denial did not reach the agent with the reason: {}",
            text(&r)
        );
        c.b.wait_hidden(PAGE, &item, Duration::from_secs(10))?;
        let (_, r) = c
            .entry("the denial", |r| {
                matches!(resolved(r, k), Some(ApprovalState::Denied { .. }))
            })
            .await?;
        ensure!(
            matches!(resolved(&r, k), Some(ApprovalState::Denied { reason: Some(why), .. }) if why == reason),
            "{r:?}"
        );
        Ok(())
    }
    .await;
    c.finish(r)
}

/// Take control: the agent is refused, and a real click and the real keyboard reach the VM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_in_control_the_operator_types_into_the_vm_and_the_agent_is_refused() -> Result<()> {
    let mut c = Console::start("c-takeover").await?;
    let r: Result<()> = async {
        let sb = c.sb.clone();
        let live = c.open_live_session()?;
        c.b.click(PAGE, &Target::role("button", "Take control"))?;
        c.banner("You are in control")?;
        let agent = c.serve.agent().await?;
        let refused = agent
            .call("exec", json!({"sandbox": sb, "argv": ["true"]}))
            .await?;
        ensure!(
            refused.is_error && text(&refused).contains("taken control"),
            "the agent was not refused while the operator is in control: {}",
            text(&refused)
        );
        // A real click on the middle of the live view focuses it (and clicks the terminal).
        let b = &mut c.b;
        click_middle(b, &live)?;
        b.keyboard_type(PAGE, "echo typed-by-console > /tmp/console.txt")?;
        b.keyboard_press(PAGE, "Enter")?;
        let env = &c.env;
        let typed = poll("/tmp/console.txt in the guest", Duration::from_secs(20), || {
            Ok(env.guest_sh(&sb, "cat /tmp/console.txt").ok())
        })?;
        ensure!(
            typed.trim() == "typed-by-console",
            "/tmp/console.txt holds {typed:?}"
        );
        c.shot(PAGE, "takeover.png")?;
        // The click took the pointer lock: the mouse cannot reach the buttons until Esc.
        let b = &mut c.b;
        release_pointer_lock(b)?;
        // With the pointer free, the buttons are reachable: hand back.
        b.click(PAGE, &Target::role("button", "Hand back"))?;
        b.click(PAGE, &Target::role("button", "Hand back to agent"))?;
        c.banner("Agent is driving")?;
        Ok(())
    }
    .await;
    c.finish(r)
}

/// A real click in the middle of `target` (the live view: it focuses it and clicks the terminal).
fn click_middle(b: &mut Browser, target: &Target) -> Result<()> {
    let rect = b.eval_on(
        PAGE,
        target,
        "el => { const r = el.getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; }",
    )?;
    b.mouse_click(
        PAGE,
        rect["x"].as_f64().context("x")?,
        rect["y"].as_f64().context("y")?,
    )
}

/// A click on the live view takes the pointer lock (the footer says so): the mouse cannot reach
/// the buttons until Esc releases it, as for a person.
fn release_pointer_lock(b: &mut Browser) -> Result<()> {
    if b.eval(PAGE, "document.pointerLockElement !== null")? == json!(true) {
        b.keyboard_press(PAGE, "Escape")?;
        let released = poll(
            "Esc to release the pointer lock",
            Duration::from_millis(1500),
            || Ok((b.eval(PAGE, "document.pointerLockElement === null")? == json!(true)).then_some(())),
        );
        if released.is_err() {
            // Headless Chromium leaves the lock on a synthetic Esc (a real browser releases it
            // itself, before the page sees the key): do what the browser would.
            eprintln!("Esc did not release the pointer lock in headless Chromium; releasing it");
            b.eval(PAGE, "document.exitPointerLock()")?;
        }
    }
    Ok(())
}

/// An agent asks for a human (`request_human`): the card in the inbox shows its reason and kind;
/// Take control on the card opens the session in control; the operator types into the VM and
/// hands back with an answer; the agent's waiting call returns that note and a fresh screen, and
/// the ledger has the request and its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_request_for_a_human_is_answered_from_its_card_and_the_agent_gets_the_note() -> Result<()> {
    let mut c = Console::start("c-human").await?;
    let r: Result<()> = async {
        let sb = c.sb.clone();
        c.open_live_session()?;
        let agent = c.serve.agent().await?;
        let reason = "The sign-in page wants a password I must not guess";
        let args = json!({"sandbox": sb, "reason": reason, "kind": "login", "wait_s": 600});
        let call = tokio::spawn(async move { agent.call("request_human", args).await });
        c.b.click(PAGE, &inbox_link())?;
        let card = Target::css(".human-card");
        c.b.wait_visible(PAGE, &Target::text(reason).within(&card), Duration::from_secs(30))?;
        let kind = c.b.text(PAGE, &Target::css(".help-kind").within(&card))?;
        ensure!(kind.to_lowercase().contains("log in"), "the card's kind reads {kind:?}");
        c.shot(PAGE, "human-card.png")?;
        c.b.click(PAGE, &Target::role("button", "Take control").within(&card))?;
        c.banner("You are in control")?;
        let live = Target::label(&format!("Live screen of {sb}"));
        let b = &mut c.b;
        click_middle(b, &live)?;
        b.keyboard_type(PAGE, "echo signed-in-by-a-human > /tmp/human.txt")?;
        b.keyboard_press(PAGE, "Enter")?;
        let env = &c.env;
        let typed = poll("/tmp/human.txt in the guest", Duration::from_secs(20), || {
            Ok(env.guest_sh(&sb, "cat /tmp/human.txt").ok().filter(|t| !t.trim().is_empty()))
        })?;
        ensure!(typed.trim() == "signed-in-by-a-human", "/tmp/human.txt holds {typed:?}");
        let b = &mut c.b;
        release_pointer_lock(b)?;
        b.click(PAGE, &Target::role("button", "Hand back with a note"))?;
        let note = "Signed in; the session is yours";
        b.fill(PAGE, &Target::label("Your answer — the agent will get this note"), note)?;
        b.click(PAGE, &Target::role("button", "Hand back to agent"))?;
        let answer = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .context("the agent's request did not return after the hand-back")???;
        ensure!(!answer.is_error, "request_human failed: {}", text(&answer));
        let got = answer.json().context("the answer's JSON")?;
        ensure!(got["note"] == note, "the agent got {got}");
        ensure!(got["answered_by"] == c.serve.operator.as_str(), "answered by {got}");
        ensure!(answer.images.len() == 1, "no fresh screenshot with the answer");
        c.b.wait_hidden(PAGE, &card, Duration::from_secs(10))?;
        let (_, r) = c
            .entry("the answered request", |r| {
                matches!(r, Record::HumanRequest(HumanRequestRecord::Answered { .. }))
            })
            .await?;
        ensure!(
            matches!(&r, Record::HumanRequest(HumanRequestRecord::Answered { note: Some(n), .. }) if n == note),
            "{r:?}"
        );
        Ok(())
    }
    .await;
    c.finish(r)
}

/// Hand back with a note: the agent's next action gets the fresh screen and the note instead of
/// running, and the ledger's hand-back carries the note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handing_back_with_a_note_gives_the_agent_the_note_and_a_fresh_screen() -> Result<()> {
    let mut c = Console::start("c-handback").await?;
    let r: Result<()> = async {
        let sb = c.sb.clone();
        c.open_live_session()?;
        c.b.click(PAGE, &Target::role("button", "Take control"))?;
        c.banner("You are in control")?;
        let agent = c.serve.agent().await?;
        c.b.click(PAGE, &Target::role("button", "Hand back"))?;
        let note = "I ran the echo myself; carry on";
        c.b.fill(PAGE, &Target::label("Note to the agent"), note)?;
        c.b.click(PAGE, &Target::role("button", "Hand back to agent"))?;
        c.banner("Agent is driving")?;
        let after = agent_presses_ctrl_l(&agent, &sb).await?;
        ensure!(
            text(&after).contains(&format!("their note: {note}")) && after.images.len() == 1,
            "the agent's first action after the handback: {}",
            text(&after)
        );
        // The live view's note travels with the hand-back itself.
        let (_, r) = c
            .entry("the hand-back", |r| {
                matches!(r, Record::LeaseChanged(LeaseChanged { command: LeaseCommand::HandBack { .. }, .. }))
            })
            .await?;
        ensure!(
            matches!(&r, Record::LeaseChanged(LeaseChanged { command: LeaseCommand::HandBack { note: Some(left), .. }, .. })
                if left == note),
            "the hand-back does not carry the note: {r:?}"
        );
        let leases = c.lease_changes().await?;
        ensure!(leases == 2, "{leases} lease changes in the ledger, not 2");
        Ok(())
    }
    .await;
    c.finish(r)
}

/// Ctrl+Alt+Enter toggles control from the keyboard, both ways; a second press made while the
/// take request is still in flight is queued and applied when it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_alt_enter_takes_control_and_hands_it_back() -> Result<()> {
    let mut c = Console::start("c-shortcut").await?;
    let r: Result<()> = async {
        let sb = c.sb.clone();
        c.open_live_session()?;
        let agent = c.serve.agent().await?;
        c.b.keyboard_press(PAGE, "Control+Alt+Enter")?;
        c.banner("You are in control")?;
        // No wait is needed in between: a press during the take is queued.
        c.b.keyboard_press(PAGE, "Control+Alt+Enter")?;
        c.banner("Agent is driving")?;
        let after = agent_presses_ctrl_l(&agent, &sb).await?;
        ensure!(
            after.is_error && text(&after).contains("not performed"),
            "the agent's first action after the handback: {}",
            text(&after)
        );
        let leases = c.lease_changes().await?;
        ensure!(leases == 2, "{leases} lease changes in the ledger, not 2");
        Ok(())
    }
    .await;
    c.finish(r)
}

/// The ledger view shows the decisions (made through the API here), the executed step, the
/// takeover and the hand-back with its note, in seq order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_view_lists_decisions_and_control_changes_in_seq_order() -> Result<()> {
    let mut c = Console::start("c-ledger").await?;
    let r: Result<()> = async {
        let sb = c.sb.clone();
        let mut events = c.serve.events().await?;
        let (call, n) = c.ask_exec(&mut events, &["df", "-h", "/"]).await?;
        c.serve
            .decide(&sb, n, json!({"decision": "approve"}))
            .await?;
        ensure!(!outcome(call, "approve").await?.is_error);
        let (call, m) = c.ask_exec(&mut events, &["df", "-a"]).await?;
        c.serve
            .decide(
                &sb,
                m,
                json!({"decision": "edit", "argv": ["echo", "edited-by-operator"]}),
            )
            .await?;
        outcome(call, "edit").await?;
        let reason = "inode counts are not needed for this task";
        let (call, k) = c.ask_exec(&mut events, &["df", "-i"]).await?;
        c.serve
            .decide(&sb, k, json!({"decision": "deny", "reason": reason}))
            .await?;
        outcome(call, "deny").await?;
        let note = "I ran the echo myself; carry on";
        for body in [
            json!({"command": "take"}),
            json!({"command": "hand_back", "note": note}),
        ] {
            let (status, v) = c.serve.post(&format!("/sandboxes/{sb}/lease"), body).await?;
            ensure!(status == 200, "lease: {status} {v}");
        }

        let all = records(&c.serve.ledger(Some(&sb)).await?)?;
        let milestones: Vec<(u64, Vec<String>)> = vec![
            (
                seq_of(&all, "approval", |r| {
                    matches!(resolved(r, n), Some(ApprovalState::Approved { .. }))
                })?,
                vec![format!("approval {n}"), "approved".into()],
            ),
            (
                seq_of(&all, "executed df", |r| {
                    matches!(r, Record::ActionExecuted(ActionExecuted { action: Action::Exec { argv, .. }, .. })
                        if argv == &["df", "-h", "/"])
                })?,
                vec!["df -h /".into()],
            ),
            (
                seq_of(&all, "edit", |r| {
                    matches!(resolved(r, m), Some(ApprovalState::Edited { .. }))
                })?,
                vec![format!("approval {m}"), "edited".into()],
            ),
            (
                seq_of(&all, "denial", |r| {
                    matches!(resolved(r, k), Some(ApprovalState::Denied { .. }))
                })?,
                vec![format!("approval {k}"), "denied".into(), reason.into()],
            ),
            (
                seq_of(&all, "lease_changed take", |r| {
                    matches!(r, Record::LeaseChanged(LeaseChanged { command: LeaseCommand::Take { .. }, .. }))
                })?,
                vec!["take".into()],
            ),
            (
                seq_of(&all, "lease_changed hand_back", |r| {
                    matches!(r, Record::LeaseChanged(LeaseChanged { command: LeaseCommand::HandBack { .. }, .. }))
                })?,
                vec!["hand back".into(), note.into()],
            ),
        ];
        c.open_session()?;
        c.b.click(PAGE, &Target::role("button", "Ledger"))?;
        let table = Target::role("table", "Ledger entries");
        c.b.wait_visible(PAGE, &table, Duration::from_secs(10))?;
        let last = milestones.last().map(|m| m.0).unwrap_or(0);
        let rows = ledger_rows(&mut c.b, &table, last)?;
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
        c.shot(PAGE, "ledger.png")?;
        eprintln!("ledger: {} rows", rows.len());
        Ok(())
    }
    .await;
    c.finish(r)
}

/// Verify in the ledger view says the chain is intact and counts what the API counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_in_the_ledger_view_says_the_chain_is_intact_and_counts_its_entries() -> Result<()> {
    let mut c = Console::start("c-verify").await?;
    let r: Result<()> = async {
        agent_runs_echo(&c).await?;
        c.open_session()?;
        c.b.click(PAGE, &Target::role("button", "Ledger"))?;
        c.b.wait_visible(
            PAGE,
            &Target::role("table", "Ledger entries"),
            Duration::from_secs(10),
        )?;
        let (_, before) = c.serve.get("/ledger/verify").await?;
        c.b.click(PAGE, &Target::role("button", "Verify"))?;
        let verdict = Target::any_role("status").has_text("Chain");
        c.b.wait_visible(PAGE, &verdict, Duration::from_secs(30))?;
        let said = c.b.text(PAGE, &verdict)?;
        let (_, after_v) = c.serve.get("/ledger/verify").await?;
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
        eprintln!("verify: {said}");
        Ok(())
    }
    .await;
    c.finish(r)
}

/// Export in the ledger view downloads the ledger as JSON Lines of ledger entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_in_the_ledger_view_downloads_the_ledger_as_json_lines() -> Result<()> {
    let mut c = Console::start("c-export").await?;
    let r: Result<()> = async {
        agent_runs_echo(&c).await?;
        let last = last_seq(&c).await?;
        c.open_session()?;
        c.b.click(PAGE, &Target::role("button", "Ledger"))?;
        let table = Target::role("table", "Ledger entries");
        c.b.wait_visible(PAGE, &table, Duration::from_secs(10))?;
        ledger_rows(&mut c.b, &table, last)?;
        let (_, before) = c.serve.get("/ledger/verify").await?;
        let export = c.art.join("airlock-ledger.jsonl");
        let name = c.b.download(PAGE, &Target::role("button", "Export"), &export)?;
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
        Ok(())
    }
    .await;
    c.finish(r)
}

/// The policy view shows the Cedar text: the rules about actions, then the network rules under
/// their own heading, together exactly the policy, and its version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_view_shows_the_policy_with_network_rules_under_their_own_heading() -> Result<()> {
    let mut c = Console::start("c-policy").await?;
    let r: Result<()> = async {
        let (_, policy) = c.serve.get("/policy").await?;
        let b = &mut c.b;
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
        c.shot(PAGE, "policy.png")?;
        Ok(())
    }
    .await;
    c.finish(r)
}

/// The shadow-mode switch asks first, and Cancel keeps enforce (on the page and on the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_mode_switch_asks_first_and_cancel_keeps_enforce() -> Result<()> {
    let mut c = Console::start("c-shadow").await?;
    let r: Result<()> = async {
        let b = &mut c.b;
        b.click(PAGE, &Target::role("link", "Policy"))?;
        let switch = Target::role("switch", "Shadow mode");
        b.wait_visible(PAGE, &switch, Duration::from_secs(10))?;
        ensure!(b.attr(PAGE, &switch, "aria-checked")?.as_deref() == Some("false"));
        b.click(PAGE, &switch)?;
        let dialog = Target::role("dialog", "Switch to shadow mode?");
        b.wait_visible(PAGE, &dialog, Duration::from_secs(5))?;
        b.wait_visible(
            PAGE,
            &Target::role("button", "Switch to shadow mode").within(&dialog),
            Duration::from_secs(5),
        )?;
        c.shot(PAGE, "policy-confirm.png")?;
        let b = &mut c.b;
        b.click(PAGE, &Target::role("button", "Cancel").within(&dialog))?;
        b.wait_hidden(PAGE, &dialog, Duration::from_secs(5))?;
        ensure!(b.attr(PAGE, &switch, "aria-checked")?.as_deref() == Some("false"));
        let (_, policy) = c.serve.get("/policy").await?;
        ensure!(policy["mode"] == "enforce", "{policy}");
        Ok(())
    }
    .await;
    c.finish(r)
}

/// The server dies under the open console: the console says it is reconnecting and keeps the
/// card's last thumbnail; when the server is back on the same address the console and the card's
/// viewer reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_reconnects_after_a_server_restart_and_keeps_the_thumbnail_meanwhile() -> Result<()> {
    let mut c = Console::start("c-restart").await?;
    let r: Result<()> = async {
        let (card, thumb) = (c.card(), c.thumb());
        c.thumbnail_loaded()?;
        let listen = c.serve.base.trim_start_matches("http://").to_string();
        c.serve.kill9();
        let reconnecting = Target::any_role("status").has_text("Reconnecting");
        c.b.wait_visible(PAGE, &reconnecting, Duration::from_secs(15))?;
        c.shot(PAGE, "reconnecting.png")?;
        ensure!(
            c.b.count(PAGE, &thumb)? == 1,
            "the card dropped its last thumbnail while the server is away"
        );
        c.serve = Serve::start_at(&c.env, &listen, &SERVE_ARGS)?;
        ensure!(
            c.serve.only_sandbox().await? == c.sb,
            "the restarted serve did not adopt {}",
            c.sb
        );
        c.b.wait_hidden(PAGE, &reconnecting, Duration::from_secs(30))?;
        c.b.wait_visible(PAGE, &card, Duration::from_secs(10))?;
        // The card's viewer reconnects too: its placeholder goes and a thumbnail is shown.
        c.b.wait_hidden(
            PAGE,
            &Target::text("Viewer disconnected").within(&card),
            Duration::from_secs(30),
        )?;
        c.loaded_width(&thumb, Duration::from_secs(30))?;
        c.b.wait_visible(
            PAGE,
            &Target::role("status", "Connection").has_text("Live"),
            Duration::from_secs(5),
        )?;
        Ok(())
    }
    .await;
    c.finish(r)
}

/// After a reconnect, a new ask shows in the inbox exactly once (not from both the reconnect's
/// snapshot and its event) and can be approved with `a`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_after_a_reconnect_is_listed_once_and_approved_with_a() -> Result<()> {
    let mut c = Console::start("c-relisted").await?;
    let r: Result<()> = async {
        let sb = c.sb.clone();
        c.restart_serve().await?;
        let mut events = c.serve.events().await?;
        let (call, p) = c.ask_exec(&mut events, &["df", "-h", "/tmp"]).await?;
        c.b.click(PAGE, &inbox_link())?;
        let item = inbox_item(p, &sb);
        c.b.wait_visible(PAGE, &item, Duration::from_secs(10))?;
        // A marker after it on the same event stream: shadow mode on (the top bar shows a pill)
        // and off again. Once the pill is gone the console has handled every event sent before,
        // so a duplicate of approval p (from the reconnect's snapshot and its event both) would
        // be showing now. (A second ask cannot be the marker: the sandbox asks one at a time.)
        let pill = Target::role("link", "Shadow mode");
        for (mode, shown) in [("shadow", true), ("enforce", false)] {
            let (status, v) = c.serve.post("/policy/mode", json!({"mode": mode})).await?;
            ensure!(status == 200, "policy mode {mode}: {status} {v}");
            if shown {
                c.b.wait_visible(PAGE, &pill, Duration::from_secs(10))?;
            } else {
                c.b.wait_hidden(PAGE, &pill, Duration::from_secs(10))?;
            }
        }
        ensure!(
            c.b.count(PAGE, &item)? == 1,
            "approval {p} is not listed exactly once"
        );
        let listed = c.b.count(
            PAGE,
            &Target::any_role("listitem").within(&Target::role("list", "Pending approvals")),
        )?;
        let (_, pending) = c.serve.get("/approvals").await?;
        ensure!(
            listed == 1 && pending.as_array().map(Vec::len) == Some(1),
            "the inbox lists {listed} approvals, the server has {pending}"
        );
        c.b.keyboard_press(PAGE, "a")?;
        let r = outcome(call, "approve after the restart").await?;
        ensure!(!r.is_error, "{}", text(&r));
        c.b.wait_hidden(PAGE, &item, Duration::from_secs(10))?;
        Ok(())
    }
    .await;
    c.finish(r)
}

/// Another operator (the API) denies an ask while this console's event socket is held back, so
/// the console still shows it; its Approve shows the server's refusal (who decided, what), and the
/// card goes when the held event arrives. Deterministic: the gate holds every server-to-page
/// message from the moment it closes. A console without the gate drops the ask at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_another_operator_already_made_is_refused_and_the_console_says_by_whom() -> Result<()> {
    let mut c = Console::start("c-late").await?;
    let r: Result<()> = async {
        let sb = c.sb.clone();
        let b = &mut c.b;
        b.open_gated(
            GATED,
            &format!("{}/#/inbox?token={}", c.serve.base, c.serve.operator_token),
            "/api/events",
        )?;
        b.wait_visible(
            GATED,
            &Target::role("status", "Connection").has_text("Live"),
            Duration::from_secs(20),
        )?;
        let mut events = c.serve.events().await?;
        let (call, q) = c.ask_exec(&mut events, &["df", "-k"]).await?;
        let gated_card = Target::role("region", &format!("Approval {q}"));
        let b = &mut c.b;
        b.wait_visible(GATED, &inbox_item(q, &sb), Duration::from_secs(10))?;
        b.wait_visible(GATED, &gated_card, Duration::from_secs(10))?;
        b.click(PAGE, &inbox_link())?;
        b.wait_visible(PAGE, &inbox_item(q, &sb), Duration::from_secs(10))?;
        b.hold_ws(GATED, true)?;
        c.serve
            .decide(
                &sb,
                q,
                json!({"decision": "deny", "reason": "decided by another operator"}),
            )
            .await?;
        let r = outcome(call, "deny through the API").await?;
        ensure!(r.is_error, "{}", text(&r));
        // The ungated console drops it at once.
        let b = &mut c.b;
        b.wait_hidden(PAGE, &inbox_item(q, &sb), Duration::from_secs(10))?;
        b.click(GATED, &Target::role("button", "Approve").within(&gated_card))?;
        let alert = Target::any_role("alert").within(&gated_card);
        b.wait_visible(GATED, &alert, Duration::from_secs(10))?;
        let shown = b.text(GATED, &alert)?;
        let (status, refusal) = c
            .serve
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
                && message.contains(&format!("denied by {}", c.serve.operator)),
            "the refusal says what happened and who decided: {refusal}"
        );
        ensure!(
            shown.contains(message),
            "the console shows {shown:?}; the server says {status} {refusal}"
        );
        eprintln!("the late decision: {status} {refusal}");
        c.shot(GATED, "late-decision.png")?;
        let b = &mut c.b;
        let held = b.hold_ws(GATED, false)?;
        ensure!(
            held >= 1,
            "the gate held nothing back: the resolution event was not held"
        );
        b.wait_hidden(GATED, &gated_card, Duration::from_secs(10))?;
        b.close(GATED)?;
        Ok(())
    }
    .await;
    c.finish(r)
}
