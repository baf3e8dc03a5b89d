//! Filter engine costs, printed as figures (not a pass/fail test): a new
//! instance (instantiate + `init` + drop), a reused one (restart for the
//! next session and its first phase call, where the filter starts
//! afresh, less one phase call), one phase call, and message
//! lines through `on-data-lines`, for each bundled filter and a do-nothing
//! baseline. Run: `cargo bench --bench filter_engine` (or
//! benches/filters.sh, which adds SMTP throughput).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtpd::config;
use wasmtpd::filter::instance::Instance;
use wasmtpd::filter::registry::LoadedFilter;
use wasmtpd::filter::{
    read_sources, EngineOptions, FilterEngine, FilterSession, Phase, Registry, SessionFilters,
};

const DIR: &str = env!("WASMTPD_FILTERS_DIR");

fn session() -> FilterSession {
    FilterSession {
        id: "0123456789abcdef".into(),
        tenant: None,
        local_address: "127.0.0.1:25".into(),
        remote_address: "192.0.2.7:4000".into(),
        rdns: Some("client.example".into()),
        fcrdns: true,
        helo: Some("client.example".into()),
        tls: None,
        auth_user: None,
        tag: None,
    }
}

/// Median of `runs` timings of `iters` iterations each, per iteration.
async fn median_per_iter<F, Fut>(runs: usize, iters: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..iters {
            f().await;
        }
        samples.push(t.elapsed() / iters as u32);
    }
    samples.sort();
    samples[runs / 2]
}

/// Step `step` (0 to 6) of an SMTP session through the filters:
/// connect, helo, mail, rcpt, data, the message's lines, commit.
async fn session_step(
    f: &mut SessionFilters,
    session: &FilterSession,
    message: &[u8],
    step: usize,
) {
    match step {
        0 => drop(f.phase(session, Phase::Connect, "192.0.2.7").await),
        1 => drop(f.phase(session, Phase::Ehlo, "client.example").await),
        2 => drop(f.phase(session, Phase::MailFrom, "alice@example.org").await),
        3 => drop(f.phase(session, Phase::RcptTo, "bob@example.org").await),
        4 => drop(f.phase(session, Phase::Data, "").await),
        5 => drop(f.data(session, message.to_vec(), 1 << 20).await),
        _ => drop(f.phase(session, Phase::Commit, "").await),
    }
}

/// [`median_per_iter`] for a body that borrows something mutably across
/// an await (an instance), which a closure returning a future cannot.
macro_rules! median_of_9 {
    ($iters:expr, $body:block) => {{
        let mut samples = Vec::with_capacity(9);
        for _ in 0..9 {
            let t = Instant::now();
            for _ in 0..$iters {
                $body
            }
            samples.push(t.elapsed() / $iters);
        }
        samples.sort();
        samples[4]
    }};
}

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let conf = format!(
        "filter \"baseline\" wasm \"{DIR}/hostile.wasm\" mode proceed\n\
         filter \"dnsbl\" dnsbl zone zen.example\n\
         filter \"regex\" regex mail-from \"^spammer@\" body \"(?i)buy cheap\" header \"^Subject: .*winner\"\n\
         filter \"spamscore\" spamscore rule \"4 header ^Subject:.*(?i)pills\" rule \"2 body (?i)cheap\" rule \"1 body (?i)click here\"\n\
         filter \"all\" chain {{ \"dnsbl\", \"regex\", \"spamscore\" }}\n"
    );
    let cfg = config::parse_str(&conf, Path::new("bench.conf")).expect("config");
    let engine = FilterEngine::new(EngineOptions {
        max_instances: 256,
        cache_dir: None,
    })
    .expect("engine");
    let registry = Registry::new(
        &cfg,
        read_sources(&cfg),
        engine,
        None,
        Arc::new(wasmtpd::table::Tables::load_all(&cfg).expect("tables")),
        wasmtpd::stats::Stats::new(std::time::Instant::now()),
    )
    .expect("registry");
    let session = session();
    let line =
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.".to_vec();
    let batch: Vec<u8> = std::iter::once(b"Subject: hello".to_vec())
        .chain(std::iter::once(Vec::new()))
        .chain(std::iter::repeat_n(line, 98))
        .flat_map(|l| [l, b"\r\n".to_vec()].concat())
        .collect();
    let batch_kib = batch.len() as f64 / 1024.0;

    // A whole session through the chain of all three: connect, helo,
    // mail, rcpt, data, 1 KiB of lines, commit.
    let message: Vec<u8> = b"Subject: hello\r\nFrom: a@example.org\r\n\r\n"
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'x', 1000))
        .chain(b"\r\n".iter().copied())
        .collect();
    let whole = median_per_iter(9, 50, || {
        let (chain, session, message) = (registry.chain("all"), &session, &message);
        async move {
            let mut f = SessionFilters::new(chain, "0123456789abcdef");
            for step in 0..7 {
                session_step(&mut f, session, message, step).await;
            }
        }
    })
    .await;
    println!(
        "one SMTP session through dnsbl+regex+spamscore (1 KiB message): {} µs",
        us(whole)
    );
    // The same, 20 sessions at once, each step of each session in turn,
    // as a busy daemon interleaves them: every call finds the caches
    // holding the other sessions' instances.
    const AT_ONCE: usize = 20;
    let interleaved = median_per_iter(9, 5, || {
        let (registry, session, message) = (&registry, &session, &message);
        async move {
            let mut all: Vec<SessionFilters> = (0..AT_ONCE)
                .map(|_| SessionFilters::new(registry.chain("all"), "0123456789abcdef"))
                .collect();
            for step in 0..7 {
                for f in &mut all {
                    session_step(f, session, message, step).await;
                }
            }
        }
    })
    .await;
    println!(
        "the same, {AT_ONCE} sessions interleaved, per session: {} µs",
        us(interleaved / AT_ONCE as u32)
    );
    // The same, one session at a time, with the caches emptied before
    // each step (32 MiB written), as between two commands of a session
    // in a busy daemon, where the network stack, the queue and the other
    // sessions run in between. Only the steps are timed.
    let mut evict = vec![0u8; 32 << 20];
    let mut cold = Vec::new();
    for run in 0..9u8 {
        let mut spent = Duration::ZERO;
        for _ in 0..20 {
            let mut f = SessionFilters::new(registry.chain("all"), "0123456789abcdef");
            for step in 0..7 {
                evict
                    .iter_mut()
                    .step_by(64)
                    .for_each(|b| *b = b.wrapping_add(run));
                std::hint::black_box(&evict);
                let t = Instant::now();
                session_step(&mut f, &session, &message, step).await;
                spent += t.elapsed();
            }
        }
        cold.push(spent / 20);
    }
    cold.sort();
    println!(
        "the same, one at a time, caches emptied before each step: {} µs",
        us(cold[4])
    );
    println!();
    println!("filter engine (median of 9 runs; µs)");
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>12} {:>14} {:>10}",
        "filter", "instantiate", "+init+drop", "reuse", "phase call", "100 lines", "per KiB"
    );
    for name in ["baseline", "dnsbl", "regex", "spamscore"] {
        let filter: Arc<LoadedFilter> = registry.get(name).expect("filter");
        // Instantiate + init + drop, as each session does.
        // The engine's part alone: a new instance from the pool, dropped.
        let bare = median_per_iter(9, 200, || {
            let filter = filter.clone();
            async move {
                let i = Instance::instantiate(&filter, "0123456789abcdef", None)
                    .await
                    .expect("instantiate");
                drop(i);
            }
        })
        .await;
        let inst = median_per_iter(9, 200, || {
            let filter = filter.clone();
            async move {
                let i = Instance::start(&filter, "0123456789abcdef")
                    .await
                    .expect("start");
                drop(i);
            }
        })
        .await;
        let mut instance = Instance::start(&filter, "0123456789abcdef")
            .await
            .expect("start");
        // What most sessions pay instead: a finished instance restarted
        // for the next session (fresh budgets, a new session serial),
        // whose first call finds the serial changed and starts the
        // filter's value afresh. Less one plain call, below.
        let reuse_and_call = median_of_9!(2000, {
            instance.restart("0123456789abcdef", None);
            let _ = instance
                .on_phase(&session, Phase::MailFrom, "alice@example.org")
                .await
                .expect("call");
        });
        let call = median_of_9!(2000, {
            let _ = instance
                .on_phase(&session, Phase::MailFrom, "alice@example.org")
                .await
                .expect("call");
        });
        let lines = {
            let mut samples = Vec::new();
            for _ in 0..9 {
                // A fresh instance per run: spamscore holds lines back
                // until `last`, and we do not want to measure its buffer.
                let mut inst = Instance::start(&filter, "0123456789abcdef")
                    .await
                    .expect("start");
                let t = Instant::now();
                for _ in 0..50 {
                    let _ = inst
                        .on_data_lines(&session, &batch, false)
                        .await
                        .expect("lines");
                }
                samples.push(t.elapsed() / 50);
            }
            samples.sort();
            samples[4]
        };
        println!(
            "{:<10} {:>12} {:>12} {:>12} {:>12} {:>14} {:>10}",
            name,
            us(bare),
            us(inst),
            us(reuse_and_call.saturating_sub(call)),
            us(call),
            us(lines),
            us(lines.div_f64(batch_kib))
        );
    }
}
