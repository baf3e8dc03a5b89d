//! `wasmtpctl`: watch and steer a running wasmtpd, with smtpctl(8)'s
//! verbs and output formats.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use wasmtpd::control::client::Client;
use wasmtpd::control::format::{MonitorPrinter, MonitorRow};
use wasmtpd::control::render::{render, stats_numbers};
use wasmtpd::control::{socket, Request, Subject};

#[derive(Parser, Debug)]
#[command(
    name = "wasmtpctl",
    version,
    about = "Control a running wasmtpd (smtpctl's verbs)"
)]
struct Cli {
    /// The daemon's control socket (default: $WASMTPD_CONTROL, else
    /// ./var/run/wasmtpd.sock if it exists, else /run/wasmtpd.sock).
    #[arg(short = 's', long = "socket", value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
    /// Print answers as JSON (one object per line for lists).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the queue, an envelope, a message, statistics, status, filters or relay state.
    #[command(subcommand)]
    Show(Show),
    /// Print statistics changes every second (as `show monitor`).
    Monitor(MonitorArgs),
    /// Log a subsystem's protocol traces (smtp, mta, filters, lookup, … or all).
    Trace { subsystem: String },
    /// Stop tracing a subsystem.
    Untrace { subsystem: String },
    /// `log verbose` (debug lines) or `log brief`.
    Log {
        #[arg(value_parser = ["verbose", "brief"])]
        level: String,
    },
    /// Pause local delivery (mda), relaying (mta), new SMTP sessions (smtp) or envelopes.
    #[command(subcommand)]
    Pause(Target),
    /// Resume what `pause` paused.
    #[command(subcommand)]
    Resume(Target),
    /// Try an envelope, a message's envelopes or all now.
    Schedule { id: String },
    /// Remove an envelope, a message's envelopes or all from the queue.
    Remove { id: String },
    /// Pick up envelopes placed in the queue by hand.
    Discover { id: String },
    /// Re-read a table's file.
    Update {
        #[arg(value_parser = ["table"])]
        what: String,
        name: String,
    },
    /// Reload a filter's component (or all), keeping sessions.
    Reload {
        #[arg(value_parser = ["filter"])]
        what: String,
        name: String,
    },
    /// Print a password hash for a credentials table (no daemon needed).
    Encrypt { password: Option<String> },
}

#[derive(Subcommand, Debug)]
enum Show {
    Queue,
    Envelope { id: String },
    Message { id: String },
    Stats,
    Status,
    Filters,
    Hosts,
    Routes,
    Relays,
    Monitor(MonitorArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct MonitorArgs {
    /// Stop after this many lines.
    #[arg(short = 'c', long, value_name = "N")]
    count: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Target {
    Mda,
    Mta,
    Smtp,
    /// ID: an envelope id, a message id, or all.
    Envelope {
        id: String,
    },
}

impl Target {
    fn subject(self) -> Subject {
        match self {
            Target::Mda => Subject::Mda,
            Target::Mta => Subject::Mta,
            Target::Smtp => Subject::Smtp,
            Target::Envelope { id } => Subject::Envelope(id),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wasmtpctl: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let path = cli.socket.unwrap_or_else(socket::client_default);
    let request = match cli.command {
        Command::Encrypt { password } => return encrypt(password),
        Command::Monitor(args) => return monitor(&path, cli.json, args),
        Command::Show(show) => match show {
            Show::Queue => Request::ShowQueue,
            Show::Envelope { id } => Request::ShowEnvelope { id },
            Show::Message { id } => Request::ShowMessage { id },
            Show::Stats => Request::ShowStats,
            Show::Status => Request::ShowStatus,
            Show::Filters => Request::ShowFilters,
            Show::Hosts => Request::ShowHosts,
            Show::Routes => Request::ShowRoutes,
            Show::Relays => Request::ShowRelays,
            Show::Monitor(args) => return monitor(&path, cli.json, args),
        },
        Command::Trace { subsystem } => Request::Trace { subsystem },
        Command::Untrace { subsystem } => Request::Untrace { subsystem },
        Command::Log { level } if level == "verbose" => Request::LogVerbose,
        Command::Log { .. } => Request::LogBrief,
        Command::Pause(t) => Request::Pause { what: t.subject() },
        Command::Resume(t) => Request::Resume { what: t.subject() },
        Command::Schedule { id } => Request::Schedule { id },
        Command::Remove { id } => Request::Remove { id },
        Command::Discover { id } => Request::Discover { id },
        Command::Update { name, .. } => Request::UpdateTable { name },
        Command::Reload { name, .. } => Request::ReloadFilter { name },
    };
    let mut client = Client::connect(&path)?;
    let data = client.request(&request)?;
    let out = render(&request, data, cli.json)?;
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// smtpctl's `monitor`: a line of changes every second, the header
/// again every 25 lines.
fn monitor(path: &std::path::Path, json: bool, args: MonitorArgs) -> anyhow::Result<()> {
    let mut client = Client::connect(path)?;
    let mut printer = MonitorPrinter::new();
    let mut prev = Default::default();
    let mut printed = 0u64;
    loop {
        let cur = stats_numbers(&client.request(&Request::ShowStats)?);
        let row = MonitorRow::from_snapshots(&prev, &cur);
        let text = if json {
            format!("{}\n", serde_json::to_string(&row)?)
        } else {
            printer.render(&row)
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        printed += 1;
        if args.count.is_some_and(|c| printed >= c) {
            return Ok(());
        }
        prev = cur;
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn encrypt(password: Option<String>) -> anyhow::Result<()> {
    let input = std::io::stdin().lock();
    wasmtpd::auth::encrypt_command(password, input, &mut std::io::stdout().lock())?;
    Ok(())
}
