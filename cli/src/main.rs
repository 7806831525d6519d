//! `airlock`: build guest images, create and drive sandboxes, benchmark them.

mod files;
mod serve;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use airlock_guest_image::{Image, Profile};
use airlock_host::BuildEvent;
use airlock_protocol::{Button, ExecRequest, Input};
use airlock_sandbox::{BackendChoice, CreateOptions, GuestClient, Liveness, SandboxRecord, Store};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "Supervise computer-use agents in empty, isolated sandboxes."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Guest images.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Sandboxes.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// Build the minimal image, boot a sandbox, take a screenshot, print its path.
    Demo {
        #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
        backend: BackendArg,
        /// Leave the sandbox running (destroy it later with `airlock sandbox destroy ID`).
        #[arg(long)]
        keep: bool,
    },
    /// Run the supervisor: MCP server for agents, operator API, policy gate, audit ledger, and a
    /// sandbox to supervise (an embedded SQLite ledger in the state directory).
    Serve(serve::ServeArgs),
    /// The audit ledger: verify the hash chain and blobs, export JSON Lines.
    Ledger {
        #[command(subcommand)]
        command: serve::LedgerCommand,
    },
    /// Operators: `airlock operator add NAME` prints a new operator's token.
    Operator {
        #[command(subcommand)]
        command: serve::OperatorCommand,
    },
    /// Drive a sandbox through Airlock's MCP API: a scripted plan, or an Anthropic/OpenAI loop.
    Agent(airlock_agents::AgentCommand),
    /// Benchmarks; each prints one JSON object of named figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Internal: the per-sandbox keeper process.
    #[command(name = airlock_host::KEEPER_ARG, hide = true)]
    Keeper { dir: PathBuf, boot_timeout_s: u64 },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build (or find in the cache) a guest image.
    Build {
        #[arg(long, value_enum, default_value_t = ProfileArg::Minimal)]
        profile: ProfileArg,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Cold start, screenshot latency, input-to-damage, channel throughput, idle RSS, per backend.
    Boot {
        /// Backends to measure (default: every one this host can run).
        #[arg(long, value_enum)]
        backend: Vec<BackendArg>,
        /// Screenshots / round trips per figure.
        #[arg(long, default_value_t = 10)]
        samples: usize,
    },
    /// Ledger appends/s (batched, durable), single-append latency, verify time.
    Ledger {
        /// Entries in the database that is verified.
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
    },
    /// Gateway overhead per allowed action (guest excluded) and proposed → approval event latency.
    Gateway {
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
    /// Egress: download throughput through the gateway against the channel's raw throughput,
    /// tunnel-open latency, ask → card at an operator's WebSocket, and an allowed action's latency
    /// while a download saturates the channel (per backend; local upstream only).
    Egress {
        /// Samples per latency figure.
        #[arg(long, default_value_t = 20)]
        samples: usize,
    },
    /// Streaming: operator input → pixels in Chromium (WebRTC), takeover latency, idle command-view
    /// bandwidth, typing/scrolling video bitrate, serve CPU (gVisor desktop sandbox; needs
    /// scripts/setup for Chromium and playwright-core).
    Stream {
        /// Key presses timed (each typed and erased: two samples).
        #[arg(long, default_value_t = 20)]
        samples: usize,
    },
    /// File transfer into and out of a real sandbox: upload and download MB/s over the raw guest
    /// channel and through the served HTTP API (with its ledger), their ratios, and a folder as
    /// tar; each the median of 3 rounds, every transfer checked by SHA-256.
    Files {
        /// Where the sandbox runs.
        #[arg(long, value_enum, default_value_t = BackendArg::Gvisor)]
        backend: BackendArg,
        /// MiB per file (default: 64 on gVisor, 8 on a microVM, which is slow under TCG).
        #[arg(long)]
        mib: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ProfileArg {
    Minimal,
    Desktop,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Profile {
        match p {
            ProfileArg::Minimal => Profile::Minimal,
            ProfileArg::Desktop => Profile::Desktop,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendArg {
    Auto,
    Microvm,
    Gvisor,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> BackendChoice {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Microvm => BackendChoice::Microvm,
            BackendArg::Gvisor => BackendChoice::Gvisor,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ButtonArg {
    Left,
    Middle,
    Right,
}

impl From<ButtonArg> for Button {
    fn from(b: ButtonArg) -> Button {
        match b {
            ButtonArg::Left => Button::Left,
            ButtonArg::Middle => Button::Middle,
            ButtonArg::Right => Button::Right,
        }
    }
}

#[derive(clap::Args, Clone)]
struct CreateArgs {
    /// auto: microVM+KVM where usable, else gVisor, else microVM+TCG.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    #[arg(long, value_enum, default_value_t = ProfileArg::Minimal)]
    profile: ProfileArg,
    /// vCPU limit.
    #[arg(long, default_value_t = 1)]
    vcpus: u8,
    /// Memory limit, MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u32,
    /// Give up if the guest agent has not answered after this many seconds.
    #[arg(long, default_value_t = 300)]
    boot_timeout: u64,
    /// Share a host folder: HOST:GUEST, read-only unless it ends in :rw (repeatable). Never `/`,
    /// a home directory itself, ~/.ssh or Airlock's state.
    #[arg(long = "share", value_name = "HOST:GUEST[:rw]")]
    shares: Vec<airlock_sandbox::Share>,
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Create and boot a sandbox (builds the image first if needed). Prints its id.
    Create(CreateArgs),
    /// Id, backend, state, uptime and memory of every sandbox.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Save a PNG of the screen; prints the file's path.
    Screenshot {
        id: String,
        /// Output file (default: ./airlock-ID-TIMESTAMP.png).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Click at X Y.
    Click {
        id: String,
        x: u16,
        y: u16,
        #[arg(long, value_enum, default_value_t = ButtonArg::Left)]
        button: ButtonArg,
        #[arg(long, default_value_t = 1)]
        count: u8,
    },
    /// Move the pointer to X Y.
    Move { id: String, x: u16, y: u16 },
    /// Drag from X1 Y1 to X2 Y2 with the left button.
    Drag {
        id: String,
        x1: u16,
        y1: u16,
        x2: u16,
        y2: u16,
    },
    /// Scroll at X Y (positive DY scrolls down).
    Scroll {
        id: String,
        x: u16,
        y: u16,
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        dx: i16,
        #[arg(long, default_value_t = 3, allow_hyphen_values = true)]
        dy: i16,
    },
    /// Print the pointer position.
    Pointer { id: String },
    /// Type text.
    Type { id: String, text: String },
    /// Press a key combo, xdotool-style (`Return`, `ctrl+s`, `ctrl+alt+Delete`).
    Key { id: String, combo: String },
    /// Run a program; prints its output and exits with its exit code.
    Exec {
        id: String,
        /// Kill it after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u32,
        /// Keep at most this many bytes of stdout and of stderr.
        #[arg(long, default_value_t = 1024 * 1024)]
        output_cap: u32,
        /// Print the result as JSON instead.
        #[arg(long)]
        json: bool,
        #[arg(required = true, last = true)]
        argv: Vec<String>,
    },
    /// Print the damage-region frame stream, one JSON line per update.
    Frames {
        id: String,
        /// Stop after this many updates.
        #[arg(long, default_value_t = 10)]
        count: u64,
        /// Most updates per second.
        #[arg(long, default_value_t = 30)]
        max_fps: u16,
    },
    /// Upload FILE into the sandbox at DEST (default /root/NAME; a DEST ending in / keeps the
    /// name), through the running `airlock serve`, on the record.
    Put {
        id: String,
        file: PathBuf,
        dest: Option<String>,
        /// Permission bits, octal.
        #[arg(long, default_value = "644")]
        mode: String,
        /// The running `airlock serve`.
        #[arg(long, default_value = "http://127.0.0.1:7878")]
        server: String,
    },
    /// Download PATH from the sandbox (a folder comes as a tar archive), through the running
    /// `airlock serve`, on the record.
    Get {
        id: String,
        path: String,
        /// Where to write it (default: the path's name here; NAME.tar for a folder you name).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The running `airlock serve`.
        #[arg(long, default_value = "http://127.0.0.1:7878")]
        server: String,
    },
    /// Destroy sandboxes: every process and file goes.
    Destroy {
        ids: Vec<String>,
        /// Destroy every sandbox.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let keeper = matches!(cli.command, Command::Keeper { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if keeper { "info" } else { "warn" })),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Keeper { dir, boot_timeout_s } => {
            airlock_sandbox::keeper::run(&dir, Duration::from_secs(boot_timeout_s))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Image {
            command: ImageCommand::Build { profile },
        } => {
            let img = build_image(profile.into())?;
            println!("{}", img.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox { command } => sandbox(command),
        Command::Serve(a) => serve::serve(a),
        Command::Ledger { command } => serve::ledger(command),
        Command::Agent(a) => serve::agent(a),
        Command::Operator { command } => serve::operator(command),
        Command::Bench {
            command: BenchCommand::Ledger { entries },
        } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&serve::bench_ledger(entries)?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command: BenchCommand::Gateway { samples },
        } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&serve::bench_gateway(samples)?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command: BenchCommand::Stream { samples },
        } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&airlock_bench::stream::run(samples)?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command: BenchCommand::Egress { samples },
        } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&airlock_bench::egress::run(samples)?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command: BenchCommand::Files { backend, mib },
        } => {
            let mib = mib.unwrap_or(match backend {
                BackendArg::Microvm => 8,
                BackendArg::Auto | BackendArg::Gvisor => 64,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&airlock_bench::files::run(backend.into(), mib)?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { backend, keep } => demo(backend, keep),
        Command::Bench {
            command: BenchCommand::Boot { backend, samples },
        } => {
            let image = build_image(Profile::Minimal)?;
            let report = airlock_bench::boot::run(
                &open_store()?,
                &image,
                &keeper_command()?,
                &backend.into_iter().map(Into::into).collect::<Vec<_>>(),
                samples,
            )?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The image for `profile`, built (with progress on stderr) when it is not cached.
pub(crate) fn build_image(profile: Profile) -> Result<Image> {
    let mut last_len: usize = 0;
    Ok(airlock_host::build_image(profile, &mut |ev| match ev {
        BuildEvent::Step(s) => {
            if last_len > 0 {
                eprintln!();
                last_len = 0;
            }
            eprintln!("==> {s}");
        }
        BuildEvent::Log(l) => {
            // One updating status line, so minutes of apt output stay readable.
            let l: String = l.chars().take(100).collect();
            eprint!("\r    {l}{}", " ".repeat(last_len.saturating_sub(l.len())));
            last_len = l.len();
            let _ = std::io::stderr().flush();
        }
        BuildEvent::Done(secs) => eprintln!("\nImage ready in {secs:.0} s."),
        BuildEvent::Pruned(n) => eprintln!("Removed {n} superseded {profile} image layer(s) from the cache."),
        BuildEvent::PruneFailed(e) => eprintln!("warning: could not prune old images: {e}"),
    })?)
}

pub(crate) fn open_store() -> Result<Store> {
    let (store, cleaned) = airlock_host::open_store()?;
    report_cleaned(&cleaned);
    Ok(store)
}

/// Tells the user about sandboxes removed on opening the store.
pub(crate) fn report_cleaned(ids: &[String]) {
    for id in ids {
        eprintln!("Cleaned up sandbox {id}: its keeper had died (crash or kill), so its processes and files were removed.");
    }
}

pub(crate) fn keeper_command() -> Result<Vec<String>> {
    Ok(airlock_host::keeper_command()?)
}

fn create(store: &Store, a: &CreateArgs) -> Result<SandboxRecord> {
    let image = build_image(a.profile.into())?;
    let opts = CreateOptions {
        backend: a.backend.into(),
        image,
        vcpus: a.vcpus,
        memory_mib: a.memory,
        keeper_command: keeper_command()?,
        boot_timeout: Duration::from_secs(a.boot_timeout),
    };
    let shares = airlock_sandbox::Shares::validate(&a.shares, &store.share_rules())?;
    let (rec, placement) = store.create_with_shares(&opts, &shares)?;
    eprintln!(
        "Backend: {}{} — {}",
        placement.backend,
        placement.accel.map(|a| format!(" ({a})")).unwrap_or_default(),
        placement.reason
    );
    eprintln!(
        "Sandbox {} is running (guest agent answered after {} ms).",
        rec.id,
        rec.boot_ms.unwrap_or(0)
    );
    Ok(rec)
}

fn connect(store: &Store, id: &str) -> Result<GuestClient> {
    Ok(store.connect(id)?)
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn screenshot_to(client: &GuestClient, id: &str, output: Option<PathBuf>) -> Result<PathBuf> {
    let shot = client.screenshot()?;
    let path =
        output.unwrap_or_else(|| PathBuf::from(format!("airlock-{id}-{}.png", airlock_sandbox::now_ms())));
    std::fs::write(&path, shot.png()?).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

fn sandbox(cmd: SandboxCommand) -> Result<ExitCode> {
    match cmd {
        SandboxCommand::Put {
            id,
            file,
            dest,
            mode,
            server,
        } => {
            let mode = airlock_supervisor::files::parse_mode(&mode)
                .with_context(|| format!("--mode {mode:?} is not octal permission bits"))?;
            let dest = files::put_dest(&file, dest.as_deref())?;
            let api = files::Api::new(&server)?;
            let written = serve::runtime()?.block_on(api.put(&id, &file, &dest, mode))?;
            println!("{}", serde_json::to_string(&written)?);
            return Ok(ExitCode::SUCCESS);
        }
        SandboxCommand::Get {
            id,
            path,
            output,
            server,
        } => {
            let out = files::get_out(&path, output)?;
            let api = files::Api::new(&server)?;
            let n = serve::runtime()?.block_on(api.get(&id, &path, &out))?;
            eprintln!("{n} bytes written to {}", out.display());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let store = open_store()?;
    match cmd {
        // Through the server, above.
        SandboxCommand::Put { .. } | SandboxCommand::Get { .. } => {}
        SandboxCommand::Create(a) => {
            let rec = create(&store, &a)?;
            println!("{}", rec.id);
        }
        SandboxCommand::List { json } => {
            let all = store.list()?;
            if json {
                let v: Vec<_> = all
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "id": s.record.id,
                            "backend": s.record.backend,
                            "accel": s.record.accel,
                            "state": state_label(s),
                            "reason": s.record.reason,
                            "uptime_s": s.uptime.as_secs(),
                            "rss_bytes": s.rss_bytes,
                            "vcpus": s.record.vcpus,
                            "memory_mib": s.record.memory_mib,
                            "profile": s.record.profile,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<10} {:<13} {:<9} {:>8} {:>9}  PROFILE",
                    "ID", "BACKEND", "STATE", "UPTIME", "MEMORY"
                );
                for s in &all {
                    let backend = format!(
                        "{}{}",
                        s.record.backend,
                        s.record.accel.map(|a| format!("/{a}")).unwrap_or_default()
                    );
                    println!(
                        "{:<10} {:<13} {:<9} {:>8} {:>6} MiB  {}",
                        s.record.id,
                        backend,
                        state_label(s),
                        fmt_duration(s.uptime),
                        s.rss_bytes / (1024 * 1024),
                        s.record.profile
                    );
                    if let Some(r) = &s.record.reason {
                        println!("           {}", r.lines().next().unwrap_or(""));
                    }
                }
            }
        }
        SandboxCommand::Screenshot { id, output } => {
            let c = connect(&store, &id)?;
            println!("{}", screenshot_to(&c, &id, output)?.display());
        }
        SandboxCommand::Click {
            id,
            x,
            y,
            button,
            count,
        } => {
            connect(&store, &id)?.input(Input::Click {
                x,
                y,
                button: button.into(),
                count,
            })?;
        }
        SandboxCommand::Move { id, x, y } => connect(&store, &id)?.input(Input::MouseMove { x, y })?,
        SandboxCommand::Drag { id, x1, y1, x2, y2 } => connect(&store, &id)?.input(Input::Drag {
            path: vec![(x1, y1), (x2, y2)],
            button: Button::Left,
        })?,
        SandboxCommand::Scroll { id, x, y, dx, dy } => {
            connect(&store, &id)?.input(Input::Scroll { x, y, dx, dy })?
        }
        SandboxCommand::Pointer { id } => {
            let (x, y) = connect(&store, &id)?.pointer()?;
            println!("{x} {y}");
        }
        SandboxCommand::Type { id, text } => connect(&store, &id)?.input(Input::Type { text })?,
        SandboxCommand::Key { id, combo } => connect(&store, &id)?.input(Input::Key { combo })?,
        SandboxCommand::Exec {
            id,
            timeout,
            output_cap,
            json,
            argv,
        } => {
            let r = connect(&store, &id)?.exec(ExecRequest {
                argv,
                stdin: vec![],
                timeout_ms: timeout.saturating_mul(1000),
                output_cap,
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "exit_code": r.exit_code, "signal": r.signal, "timed_out": r.timed_out,
                        "stdout": String::from_utf8_lossy(&r.stdout), "stderr": String::from_utf8_lossy(&r.stderr),
                        "stdout_truncated": r.stdout_truncated, "stderr_truncated": r.stderr_truncated,
                        "duration_ms": r.duration_ms,
                    })
                );
            } else {
                std::io::stdout().write_all(&r.stdout)?;
                std::io::stderr().write_all(&r.stderr)?;
                if r.stdout_truncated || r.stderr_truncated {
                    eprintln!("airlock: output was cut at {output_cap} bytes");
                }
                if r.timed_out {
                    eprintln!("airlock: the program was killed after {timeout} s");
                }
            }
            let code = r.exit_code.unwrap_or(128 + r.signal.unwrap_or(0));
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        SandboxCommand::Frames { id, count, max_fps } => {
            let c = connect(&store, &id)?;
            let stream = c.frames(max_fps)?;
            let mut n = 0;
            while n < count {
                match stream.next(Duration::from_secs(60))? {
                    Some(airlock_protocol::Reply::Frame(f)) => {
                        let regions: Vec<_> =
                            f.regions.iter().map(|r| [r.x, r.y, r.width, r.height]).collect();
                        let bytes: usize = f.regions.iter().map(|r| r.lz4.len()).sum();
                        println!(
                            "{}",
                            serde_json::json!({"seq": f.seq, "captured_us": f.captured_us, "regions": regions, "lz4_bytes": bytes})
                        );
                        n += 1;
                    }
                    Some(other) => bail!("the frame stream ended: {other:?}"),
                    None => bail!("no update for 60 s"),
                }
            }
        }
        SandboxCommand::Destroy { ids, all } => {
            let ids = if all {
                store.list()?.into_iter().map(|s| s.record.id).collect()
            } else {
                ids
            };
            if ids.is_empty() {
                bail!("name the sandboxes to destroy, or pass --all");
            }
            for id in ids {
                store.destroy(&id)?;
                eprintln!("Destroyed {id}.");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn state_label(s: &airlock_sandbox::SandboxStatus) -> &'static str {
    if s.liveness == Liveness::Gone && !s.record.state.is_final() {
        "dead"
    } else {
        s.record.state.name()
    }
}

fn demo(backend: BackendArg, keep: bool) -> Result<ExitCode> {
    let store = open_store()?;
    let rec = create(
        &store,
        &CreateArgs {
            backend,
            profile: ProfileArg::Minimal,
            vcpus: 1,
            memory: 1024,
            boot_timeout: 300,
            shares: Vec::new(),
        },
    )?;
    let result = (|| -> Result<PathBuf> {
        let c = connect(&store, &rec.id)?;
        let ifaces = c.exec(ExecRequest {
            argv: vec!["cat".into(), "/proc/net/dev".into()],
            stdin: vec![],
            timeout_ms: 10_000,
            output_cap: 65536,
        })?;
        let names: Vec<String> = String::from_utf8_lossy(&ifaces.stdout)
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
            .collect();
        eprintln!("Network interfaces inside the sandbox: {}", names.join(" "));
        c.wait_terminal_ready(Duration::from_secs(120))?;
        c.input(Input::Type {
            text: "echo hello from airlock; uname -r".into(),
        })?;
        c.input(Input::Key {
            combo: "Return".into(),
        })?;
        std::thread::sleep(Duration::from_millis(500));
        let dir = Store::default_root().join("screenshots");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        screenshot_to(&c, &rec.id, Some(dir.join(format!("demo-{}.png", rec.id))))
    })();
    if !keep {
        store.destroy(&rec.id)?;
    }
    let path = result?;
    println!("{}", path.display());
    if keep {
        eprintln!(
            "Sandbox {} keeps running: `airlock sandbox destroy {}` removes it.",
            rec.id, rec.id
        );
    }
    Ok(ExitCode::SUCCESS)
}
