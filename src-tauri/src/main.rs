//! `airlock-app`: the Airlock desktop app. Starts the supervisor in-process (state in
//! `$AIRLOCK_STATE_DIR`, like `airlock serve`), a sandbox if none is running, and the demo agent,
//! then opens the operator console window.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use airlock_host::{Host, HostOptions, KEEPER_ARG};
use airlock_supervisor::api::CreateRequest;
use anyhow::Context as _;
use clap::Parser;

/// The Airlock desktop app.
#[derive(Parser)]
#[command(name = "airlock-app", version)]
struct Args {
    /// Loopback address of the MCP server agents use (and the console's video socket).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Do not run the scripted demo agent.
    #[arg(long)]
    no_demo: bool,
    /// Do not start a sandbox when none is running.
    #[arg(long)]
    no_sandbox: bool,
    /// The backend of that sandbox: auto, microvm or gvisor.
    #[arg(long, default_value = "auto")]
    backend: airlock_sandbox::BackendChoice,
    /// Seconds an ask waits for an operator before it counts as deny.
    #[arg(long, default_value_t = 120)]
    approval_timeout: u64,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(KEEPER_ARG) {
        return keeper(&argv[2..]);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,airlock=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A sandbox keeper (the app starts sandboxes the way `airlock` does: as a copy of itself).
fn keeper(args: &[String]) -> ExitCode {
    let (Some(dir), Some(timeout)) = (args.first(), args.get(1).and_then(|s| s.parse::<u64>().ok())) else {
        eprintln!("usage: airlock-app {KEEPER_ARG} DIR BOOT_TIMEOUT_S");
        return ExitCode::FAILURE;
    };
    match airlock_sandbox::keeper::run(std::path::Path::new(dir), Duration::from_secs(timeout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", airlock_supervisor::chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config = airlock_supervisor::Config::new(airlock_host::keeper_command()?);
    config.approval_timeout = Duration::from_secs(args.approval_timeout.max(1));
    let policy = airlock_policy::Policy::new(airlock_policy::DEFAULT_POLICY, airlock_policy::Decision::Ask)?;
    let host = tauri::async_runtime::block_on(Host::start(HostOptions {
        listen: args.listen,
        policy,
        config,
        ui_dir: airlock_host::default_ui_dir(),
        mcp_origins: Default::default(),
    }))
    .context("cannot start the supervisor")?;
    eprintln!(
        "Airlock is serving agents at {} (agent token in {}).",
        host.mcp_url(),
        airlock_host::token_path().display()
    );
    let console = airlock_app::Console::new(
        host.sup.clone(),
        host.tokens.operator.clone(),
        host.tokens.operator_token.clone(),
        host.addr,
    );
    let sup = host.sup.clone();
    let host = std::sync::Arc::new(host);
    let starter = host.clone();
    let (start_sandbox, demo) = (!args.no_sandbox, !args.no_demo);
    let backend = args.backend;
    let app = airlock_app::with_commands(tauri::Builder::default())
        .manage(console)
        .setup(move |app| {
            airlock_app::forward_events(app.handle().clone(), &sup);
            tauri::async_runtime::spawn(async move {
                if !start_sandbox {
                    return;
                }
                let req = CreateRequest {
                    backend: Some(backend),
                    job: Some("startup".into()),
                    ..CreateRequest::default()
                };
                match starter.ensure_sandbox(&req).await {
                    Ok(info) if demo => starter.start_demo(&info.id),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %airlock_supervisor::chain(&e), "cannot start the demo sandbox"),
                }
            });
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("cannot open the console window")?;
    // run_return: the event loop ends when the window closes, and the host is shut down then
    // (the ledger records the stop and is closed; sandboxes keep running for the next start).
    let code = app.run_return(|_, _| {});
    tauri::async_runtime::block_on(host.shutdown());
    if code != 0 {
        anyhow::bail!("the window's event loop ended with code {code}");
    }
    Ok(())
}
