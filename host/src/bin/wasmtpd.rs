//! `wasmtpd`: the daemon's command line (smtpd(8)'s flags).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use wasmtpd::config;
use wasmtpd::daemon::{self, DaemonOptions};
use wasmtpd::privsep::{self, BrokerClient, JobRunner, Role};

#[derive(Parser, Debug)]
#[command(
    name = "wasmtpd",
    version,
    about = "Mail transfer agent with WebAssembly filters",
    after_help = "Also: `wasmtpd encrypt [PASSWORD]` prints a password hash for a credentials table."
)]
struct Cli {
    /// Configuration file (smtpd.conf grammar). Without it, the embedded
    /// default runs: 127.0.0.1:2525, maildirs under ./var/mail/.
    #[arg(short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Stay in the foreground and log to stderr.
    #[arg(short = 'd')]
    debug: bool,
    /// Verbose logging.
    #[arg(short = 'v')]
    verbose: bool,
    /// Check the configuration and exit.
    #[arg(short = 'n')]
    check: bool,
    /// Where the queue and state live.
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Internal: deliver one job as the recipient's user (spawned by the daemon).
    #[arg(long = "mda-deliver", hide = true)]
    mda_deliver: bool,
    /// Shortest retry delay in seconds (testing and small sites).
    #[arg(long, hide = true, value_name = "SECS")]
    retry_min: Option<u64>,
    /// The name server to use instead of /etc/resolv.conf's (testing).
    #[arg(long, hide = true, value_name = "IP:PORT")]
    nameserver: Option<std::net::SocketAddr>,
    /// The control socket for wasmtpctl and sendmail (default:
    /// /run/wasmtpd.sock for the system spool, else run/wasmtpd.sock
    /// beside the spool).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// The port MX hosts listen on (testing: MX hosts on 127.0.0.x).
    #[arg(long, hide = true, value_name = "PORT", default_value_t = 25)]
    mx_port: u16,
    /// Serve Prometheus metrics on this address (GET /metrics).
    #[arg(long, value_name = "IP:PORT")]
    metrics: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("mda-deliver") => return exit_code(wasmtpd::mda::child_main()),
        Some("mda-worker") => return exit_code(wasmtpd::mda::worker_main()),
        Some("encrypt") => return encrypt(std::env::args().nth(2)),
        _ => {}
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("wasmtpd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `wasmtpd encrypt [PASSWORD]`, like `smtpctl encrypt`: prints a hash
/// for a credentials table; without an argument, one hash per line read
/// from standard input.
fn encrypt(password: Option<String>) -> ExitCode {
    let input = std::io::stdin().lock();
    match wasmtpd::auth::encrypt_command(password, input, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wasmtpd: {err}");
            ExitCode::FAILURE
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let loaded = match &cli.file {
        Some(path) => config::load(path),
        None => config::parse_str(&embedded_default(&cwd), Path::new("<embedded default>")),
    };
    let mut cfg = match loaded {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if cli.check {
        println!("configuration OK");
        return Ok(ExitCode::SUCCESS);
    }
    if cfg.queue.encryption == Some(None) {
        // `queue encryption` without a key: read it as OpenSMTPD does.
        cfg.queue.encryption = Some(Some(read_queue_key()?));
    }
    wasmtpd::log::init(cli.debug || cli.file.is_none(), cli.verbose);
    if cli.file.is_none() {
        tracing::info!("wasmtpd: no -f given: running the embedded default configuration");
    }
    let spool = cli.spool.unwrap_or_else(|| default_spool(&cwd));
    let mut sched = wasmtpd::scheduler::SchedulerOptions::default();
    if let Some(secs) = cli.retry_min {
        sched.backoff.min = std::time::Duration::from_secs(secs.max(1));
        sched.backoff.max = sched.backoff.max.max(sched.backoff.min);
    }
    let max_message = broker_message_limit(cfg.smtp.max_message_size);
    // Everything below up to the runtime runs single-threaded: a root
    // start forks in the middle of it.
    let control = cli
        .control
        .clone()
        .unwrap_or_else(|| wasmtpd::control::socket::daemon_default(&spool));
    let prepared = daemon::prepare(cfg, Some(&control))?;
    let mut broker_socket = None;
    let mut spool = spool;
    if nix::unistd::geteuid().is_root() {
        let user = privsep::unprivileged_user()?;
        privsep::prepare_spool(&spool, &user)?;
        match privsep::split(&user, &spool)? {
            Role::Broker(broker) => {
                // The broker needs none of the daemon's state.
                drop(prepared);
                let code = broker.run(max_message);
                return Ok(ExitCode::from(code.clamp(0, 255) as u8));
            }
            Role::Daemon(socket) => {
                // `split` left us in the spool.
                spool = PathBuf::from(".");
                broker_socket = Some(socket);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wasmtpd")
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let runner = match broker_socket {
            Some(socket) => JobRunner::Broker(
                BrokerClient::start(socket).context("cannot talk to the delivery broker")?,
            ),
            None => JobRunner::InProcess,
        };
        daemon::run(
            prepared,
            DaemonOptions {
                spool,
                scheduler: sched,
                runner,
                nameserver: cli.nameserver,
                mx_port: cli.mx_port,
                metrics: cli.metrics,
            },
        )
        .await
        .map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The queue key from standard input (prompted for on a terminal).
fn read_queue_key() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if std::io::stdin().is_terminal() {
        eprint!("queue key: ");
        let _ = std::io::stderr().flush();
    }
    let mut key = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut key)
        .context("cannot read the queue key")?;
    let key = key.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(
        !key.is_empty(),
        "queue encryption is on but no key was given on stdin"
    );
    Ok(key)
}

/// Largest message the broker accepts for delivery: a bounce carries the
/// original plus its report, so allow twice the SMTP limit and some room.
/// No SMTP limit (0) still leaves the broker a bound.
fn broker_message_limit(max_message_size: u64) -> u64 {
    const ROOM: u64 = 1 << 20;
    match max_message_size {
        0 => 4 << 30,
        n => n.saturating_mul(2).saturating_add(ROOM),
    }
}

/// `/var/spool/wasmtpd` for a system install run as root with a config
/// file; a folder under the working directory otherwise, so the embedded
/// default never needs root and never touches system paths.
fn default_spool(cwd: &Path) -> PathBuf {
    let root = nix::unistd::geteuid().is_root();
    if root && std::env::args().any(|a| a == "-f") {
        PathBuf::from(wasmtpd::control::socket::SYSTEM_SPOOL)
    } else {
        cwd.join("var/spool")
    }
}

/// The configuration `wasmtpd` runs with no arguments: loopback only,
/// every local recipient delivered to `./var/mail/USER/Maildir`.
fn embedded_default(cwd: &Path) -> String {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".to_string());
    let mail = cwd.join("var/mail");
    format!(
        "# wasmtpd embedded default\n\
         # The bundled filters: dnsbl (local clients are never looked up),\n\
         # regex and spamscore, chained on the listener.\n\
         filter \"rbl\" dnsbl zone \"zen.spamhaus.org\" allow dns\n\
         filter \"rules\" regex body \"EICAR-STANDARD-ANTIVIRUS-TEST-FILE\" message \"Virus test file rejected\"\n\
         filter \"spam\" spamscore rule \"GTUBE 1000 body {GTUBE}\" rule \"ALLCAPS_SUBJECT 2 header ^Subject: [A-Z !]{{12,}}$\" threshold 5\n\
         filter \"default\" chain {{ \"rbl\", \"rules\", \"spam\" }}\n\
         listen on 127.0.0.1 port 2525 filter \"default\"\n\
         table everyone {{ \"@\" = \"{me}\" }}\n\
         action \"local\" maildir \"{}/%{{dest.user:lowercase}}/Maildir\" junk virtual <everyone>\n\
         match from any for local action \"local\"\n",
        mail.display()
    )
}

/// SpamAssassin's GTUBE test string as a regex without backslashes.
const GTUBE: &str =
    "XJS[*]C4JDBQADN1[.]NSBN3[*]2IDNEN[*]GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL[*]C[.]34X";
