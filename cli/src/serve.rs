//! `airlock serve` and `airlock ledger …`.

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use airlock_guest_image::Profile;
use airlock_host::{Host, HostOptions};
use airlock_ledger::{Ledger, VerifyReport};
use airlock_policy::{Decision, Policy};
use airlock_server::tokens::Tokens;
use airlock_supervisor::api::CreateRequest;
use airlock_supervisor::Config;
use anyhow::{bail, Context, Result};

use crate::{keeper_command, BackendArg, ProfileArg};

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Loopback address for the MCP server (/mcp) and the operator API (/api).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// A Cedar policy file (default: the shipped policy; see `airlock policy show`).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The decision when no rule matches.
    #[arg(long, default_value = "ask")]
    default_decision: String,
    /// Seconds an ask waits for an operator before it counts as deny (and pauses the agent).
    #[arg(long, default_value_t = 120)]
    approval_timeout: u64,
    /// Start one sandbox with this backend unless one is already running.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Image profile for that sandbox.
    #[arg(long, value_enum, default_value_t = ProfileArg::Desktop)]
    profile: ProfileArg,
    /// Do not start a sandbox (agents or operators create them).
    #[arg(long)]
    no_sandbox: bool,
    /// Milliseconds to let the screen settle after an input before the after-frame is taken.
    #[arg(long, default_value_t = 50)]
    settle_ms: u64,
    /// Local address WebRTC viewers' media flows on (UDP; port 0 = any). Loopback by default, like
    /// the API: a remote operator needs an address their browser can reach.
    #[arg(long, default_value = "127.0.0.1:0")]
    rtc_udp: SocketAddr,
    /// A web origin (`https://host[:port]`) besides loopback ones whose pages may call the MCP
    /// endpoint; repeatable. Requests with any other `Origin` get 403 (DNS-rebinding defence).
    #[arg(long = "mcp-allow-origin", value_name = "ORIGIN")]
    mcp_allow_origin: Vec<String>,
    /// For tests: the egress gateway resolves NAME to ADDR (`web.test=127.0.0.1`); repeatable.
    /// With any mapping given, names not listed do not resolve at all, so a test's traffic never
    /// leaves the machine.
    #[arg(long = "egress-map", value_name = "NAME=ADDR")]
    egress_map: Vec<String>,
    /// The DNS server (`ADDR:PORT`, UDP) the egress gateway asks about names it has allowed and
    /// `--egress-map` does not list (default: the host's resolver).
    #[arg(long = "egress-dns", value_name = "ADDR:PORT")]
    egress_dns: Option<SocketAddr>,
    /// Run the scripted demo agent in the first sandbox (allowed, asked and denied actions, round
    /// after round).
    #[arg(long)]
    demo: bool,
    /// The built operator console to serve at `/` (default: $AIRLOCK_UI_DIR, else ui/dist of the
    /// source tree when built).
    #[arg(long)]
    ui: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub(crate) enum OperatorCommand {
    /// Add an operator (or give an existing one a new token and role) and print their token.
    Add {
        /// The name the ledger records for their decisions and takeovers.
        name: String,
        /// admin (policy, operators, everything), operator (decide, drive, create, destroy, files,
        /// view links) or watcher (see only).
        #[arg(long, default_value = "operator")]
        role: airlock_domain::Role,
    },
}

/// What `airlock operator add` prints.
#[derive(serde::Serialize)]
struct AddedOperator<'a> {
    operator: &'a str,
    role: airlock_domain::Role,
    token: &'a str,
}

/// `airlock operator …`.
pub(crate) fn operator(cmd: OperatorCommand) -> Result<ExitCode> {
    match cmd {
        OperatorCommand::Add { name, role } => {
            let path = airlock_host::token_path();
            let token = Tokens::add_operator(&path, &name, role)?;
            println!(
                "{}",
                serde_json::to_string(&AddedOperator {
                    operator: &name,
                    role,
                    token: &token
                })?
            );
            eprintln!(
                "{name} ({role}) can sign in with that token (kept in {}).",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(clap::Subcommand)]
pub(crate) enum LedgerCommand {
    /// Walk the chain and the blobs; report the first broken entry (exit 1 if any).
    Verify {
        /// Verify an exported JSON Lines file instead of the database.
        #[arg(long)]
        jsonl: Option<PathBuf>,
        /// With --jsonl: also check the blobs in this directory.
        #[arg(long)]
        blobs: Option<PathBuf>,
    },
    /// Write every entry as JSON Lines (verifiable offline with `verify --jsonl`).
    Export {
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn serve(a: ServeArgs) -> Result<ExitCode> {
    let default: Decision = a.default_decision.parse()?;
    let policy = match &a.policy {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the policy {}", p.display()))?;
            Policy::new(&text, default).with_context(|| format!("the policy {} was refused", p.display()))?
        }
        None => Policy::new(airlock_policy::DEFAULT_POLICY, default)?,
    };
    let mut config = Config::new(keeper_command()?);
    config.approval_timeout = Duration::from_secs(a.approval_timeout.max(1));
    config.settle = Duration::from_millis(a.settle_ms);
    config.rtc_udp = a.rtc_udp;
    for m in &a.egress_map {
        let (name, addr) = m
            .split_once('=')
            .with_context(|| format!("--egress-map {m:?} is not NAME=ADDR"))?;
        let host = airlock_egress::parse_host(name).with_context(|| format!("--egress-map {m:?}"))?;
        let addr: std::net::IpAddr = addr
            .parse()
            .with_context(|| format!("--egress-map {m:?}: {addr:?} is not an IP address"))?;
        config.egress_resolver.map.insert(host.to_string(), addr);
    }
    config.egress_resolver.server = a.egress_dns;
    if let Some(dir) = &a.ui {
        if !dir.join("index.html").exists() {
            bail!(
                "{} has no index.html (build the console: npm --prefix ui run build)",
                dir.display()
            );
        }
    }
    let ui_dir = a.ui.clone().or_else(airlock_host::default_ui_dir);
    runtime()?.block_on(async move {
        let host = Host::start(HostOptions {
            listen: a.listen,
            policy,
            config,
            ui_dir: ui_dir.clone(),
            mcp_origins: airlock_server::origin::Origins::new(a.mcp_allow_origin.clone()),
        })
        .await?;
        crate::report_cleaned(&host.cleaned);
        let addr = host.addr;
        if !a.no_sandbox && host.adopted.is_empty() {
            let profile = Profile::from(a.profile).name();
            eprintln!("Starting a {profile} sandbox…");
            let info = host
                .ensure_sandbox(&CreateRequest {
                    backend: Some(a.backend.into()),
                    profile: Some(Profile::from(a.profile)),
                    ..CreateRequest::default()
                })
                .await?;
            eprintln!("Sandbox {} is running ({}).", info.id, info.backend);
        }
        for id in &host.adopted {
            eprintln!("Supervising running sandbox {id}.");
        }
        if a.demo {
            match host.sup.list().await.first() {
                Some(first) => {
                    host.start_demo(&first.id);
                    eprintln!("The demo agent is running in sandbox {}.", first.id);
                }
                None => eprintln!("No sandbox to run the demo agent in (--no-sandbox)."),
            }
        }
        let tokens = &host.tokens;
        let token_path = airlock_host::token_path();
        if host.tokens_created {
            eprintln!(
                "Generated API tokens (kept in {}, mode 0600):",
                token_path.display()
            );
            eprintln!("  agent token:    {}", tokens.agent_token);
            eprintln!("  operator token: {}", tokens.operator_token);
        }
        eprintln!("MCP server:   http://{addr}/mcp   (Authorization: Bearer <agent token>)");
        eprintln!("Operator API: http://{addr}/api   (Authorization: Bearer <operator token>)");
        match &ui_dir {
            Some(_) => eprintln!("Console:      http://{addr}/#token=<operator token>"),
            None => eprintln!("Console:      not built (npm --prefix ui ci && npm --prefix ui run build)"),
        }
        eprintln!("Viewer:       http://{addr}/viewer?sandbox=<id>#token=<operator token>");
        eprintln!("Tokens:       {}", token_path.display());
        println!(
            "{}",
            serde_json::json!({"listen": addr.to_string(), "mcp": host.mcp_url(),
                               "api": format!("http://{addr}/api"), "tokens": token_path,
                               "ledger": host.ledger.dir(), "policy_version": host.sup.policy().version(),
                               "console": ui_dir.is_some()})
        );
        let _ = std::io::stdout().flush();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("Stopping (sandboxes keep running; `airlock serve` adopts them next time).");
        host.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn print_report(r: &VerifyReport) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(r)?);
    match &r.first_broken {
        None => {
            eprintln!(
                "The ledger verifies: {} entries, {} blobs checked.",
                r.entries, r.blobs_checked
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            eprintln!("The ledger is broken at entry {}: {}", b.seq, b.reason);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(crate) fn ledger(cmd: LedgerCommand) -> Result<ExitCode> {
    match cmd {
        LedgerCommand::Verify {
            jsonl: Some(file),
            blobs,
        } => {
            let f = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
            let r = airlock_ledger::verify_jsonl(BufReader::new(f), blobs.as_deref())?;
            print_report(&r)
        }
        LedgerCommand::Verify {
            jsonl: None,
            blobs: Some(_),
        } => bail!("--blobs goes with --jsonl"),
        LedgerCommand::Verify {
            jsonl: None,
            blobs: None,
        } => runtime()?.block_on(async {
            let ledger = open_existing(&airlock_host::ledger_dir()).await?;
            let r = ledger.verify().await?;
            ledger.close().await;
            print_report(&r)
        }),
        LedgerCommand::Export { output } => runtime()?.block_on(async {
            let ledger = open_existing(&airlock_host::ledger_dir()).await?;
            let n = match &output {
                Some(p) => {
                    let mut f = std::io::BufWriter::new(
                        std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
                    );
                    let n = ledger.export(&mut f).await?;
                    f.flush()?;
                    n
                }
                None => {
                    let mut out = std::io::stdout();
                    ledger.export(&mut out).await?
                }
            };
            ledger.close().await;
            eprintln!("Exported {n} entries.");
            Ok(ExitCode::SUCCESS)
        }),
    }
}

async fn open_existing(dir: &Path) -> Result<Ledger> {
    if !dir.join(airlock_ledger::DB_FILE).exists() {
        bail!(
            "there is no ledger at {} (run `airlock serve` first, or set AIRLOCK_STATE_DIR)",
            dir.display()
        );
    }
    Ledger::open_readonly(dir)
        .await
        .with_context(|| format!("cannot open the ledger at {}", dir.display()))
}

pub(crate) fn bench_ledger(entries: u64) -> Result<serde_json::Value> {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).context("cannot create a scratch directory")?;
    runtime()?.block_on(airlock_bench::ledger::run(dir.path(), entries))
}

pub(crate) fn bench_gateway(samples: usize) -> Result<serde_json::Value> {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).context("cannot create a scratch directory")?;
    runtime()?.block_on(airlock_bench::gateway::run(dir.path(), samples))
}

pub(crate) fn agent(cmd: airlock_agents::AgentCommand) -> Result<ExitCode> {
    // Without a token given, use the agent token `airlock serve` generated in the state dir.
    if cmd.token.is_none()
        && cmd.token_file.is_none()
        && std::env::var_os(airlock_agents::TOKEN_ENV).is_none()
    {
        let path = airlock_host::token_path();
        if let Ok(bytes) = std::fs::read(&path) {
            let tokens: Tokens = serde_json::from_slice(&bytes)
                .with_context(|| format!("the token file {} is not valid", path.display()))?;
            std::env::set_var(airlock_agents::TOKEN_ENV, tokens.agent_token);
        }
    }
    runtime()?.block_on(airlock_agents::run_command(cmd))?;
    Ok(ExitCode::SUCCESS)
}
