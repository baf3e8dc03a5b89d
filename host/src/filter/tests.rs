//! The sandbox with real components (the test filter `hostile` and the
//! bundled ones, built from `filters/`): each way a filter can misbehave
//! is stopped, named, and answered with the filter's policy.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config;
use crate::filter::bindings::Decision;

fn filters_dir() -> &'static str {
    env!("WASMTPD_FILTERS_DIR")
}

fn registry(conf: &str) -> Registry {
    registry_with(conf, crate::stats::Stats::new(Instant::now()))
}

fn registry_with(conf: &str, stats: crate::stats::Stats) -> Registry {
    registry_full(conf, stats, None)
}

fn registry_full(
    conf: &str,
    stats: crate::stats::Stats,
    dns: Option<Arc<crate::dns::Dns>>,
) -> Registry {
    let conf = conf.replace("@DIR@", filters_dir());
    let cfg = config::parse_str(&conf, Path::new("t.conf")).unwrap();
    let engine = FilterEngine::new(EngineOptions {
        max_instances: 64,
        cache_dir: None,
    })
    .unwrap();
    let sources = read_sources(&cfg);
    Registry::new(
        &cfg,
        sources,
        engine,
        dns,
        Arc::new(crate::table::Tables::load_all(&cfg).unwrap()),
        stats,
    )
    .unwrap()
}

fn session() -> FilterSession {
    FilterSession {
        id: "0123456789abcdef".into(),
        tenant: None,
        local_address: "127.0.0.1:25".into(),
        remote_address: "192.0.2.7:4000".into(),
        rdns: None,
        fcrdns: false,
        helo: Some("client.example".into()),
        tls: None,
        auth_user: None,
        tag: None,
    }
}

fn hostile(mode: &str, extra: &str) -> String {
    format!("filter h wasm \"@DIR@/hostile.wasm\" mode {mode} {extra}\n")
}

async fn mail_from(reg: &Registry) -> Verdict {
    mail_from_why(reg).await.0
}

/// The verdict and, when the filter failed, why.
async fn mail_from_why(reg: &Registry) -> (Verdict, Option<instance::Failure>) {
    let mut f = SessionFilters::new(reg.chain("h"), "0123456789abcdef");
    let v = f
        .phase(&session(), Phase::MailFrom, "joe@example.org")
        .await;
    (v, f.failures().first().map(|(_, why)| (*why).clone()))
}

fn is_tempfail(v: &Verdict) -> bool {
    matches!(v, Verdict::Disconnect(r) if r.code == 421)
}

#[tokio::test]
async fn a_well_behaved_filter_answers() {
    let reg = registry(&hostile("proceed", ""));
    assert_eq!(mail_from(&reg).await, Verdict::PROCEED);
    let reg = registry(&hostile("reject", ""));
    match mail_from(&reg).await {
        Verdict::Reject(r) => assert_eq!((r.code, r.text.as_str()), (550, "hostile says no")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_infinite_loop_runs_out_of_fuel() {
    let reg = registry(&hostile("loop", ""));
    let t = Instant::now();
    let (v, why) = mail_from_why(&reg).await;
    assert!(is_tempfail(&v));
    assert_eq!(why, Some(instance::Failure::Fuel));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn an_infinite_loop_meets_the_deadline_when_fuel_is_plenty() {
    let reg = registry(&hostile(
        "loop",
        "fuel 100000000000 session-fuel 100000000000 timeout 200ms",
    ));
    let t = Instant::now();
    let (v, why) = mail_from_why(&reg).await;
    assert!(is_tempfail(&v));
    assert_eq!(why, Some(instance::Failure::Deadline));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn hostile_filters_are_stopped_with_the_policy_reply() {
    use instance::Failure;
    for (mode, expected) in [
        ("memory", "memory limit reached"),
        ("recurse", "stack overflow"),
        ("trap", "trap: wasm `unreachable` instruction executed"),
        ("huge", "memory limit reached"),
    ] {
        let reg = registry(&hostile(mode, "memory 16M"));
        let (v, why) = mail_from_why(&reg).await;
        assert!(is_tempfail(&v), "{mode}: {v:?}");
        let why = why.map(|w| w.to_string()).unwrap_or_default();
        assert!(why.starts_with(expected), "{mode}: {why}");
        let _ = Failure::Fuel;
    }
}

/// Files and sockets: built without WASI, std says "unsupported"; built
/// against WASI, the empty WASI has nothing to open or connect to.
#[tokio::test]
async fn filters_cannot_open_files_or_sockets() {
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let addr = target.local_addr().unwrap();
    for file in ["hostile.wasm", "hostile-wasip2.wasm"] {
        for mode in ["file", "socket"] {
            let conf = format!("filter h wasm \"@DIR@/{file}\" mode {mode} target \"{addr}\"\n");
            let (v, why) = mail_from_why(&registry(&conf)).await;
            assert_eq!(why, None, "{file} {mode}");
            match v {
                Verdict::Reject(r) => {
                    assert!(
                        r.text.starts_with(&format!("{mode}: ERR")),
                        "{file}: {}",
                        r.text
                    )
                }
                other => panic!("{file} {mode}: {other:?}"),
            }
        }
    }
    assert!(target.accept().is_err(), "a filter reached the socket");
}

#[tokio::test]
async fn a_wasi_built_filter_runs_in_the_empty_wasi() {
    let reg = registry("filter h wasm \"@DIR@/hostile-wasip2.wasm\" mode reject\n");
    assert!(matches!(mail_from(&reg).await, Verdict::Reject(r) if r.text == "hostile says no"));
    let reg = registry("filter h wasm \"@DIR@/hostile-wasip2.wasm\" mode loop\n");
    assert!(is_tempfail(&mail_from(&reg).await));
}

#[tokio::test]
async fn policies_reject_or_proceed() {
    let reg = registry(&hostile("trap", "on-error reject"));
    match mail_from(&reg).await {
        Verdict::Reject(r) => assert_eq!(r.code, 554),
        other => panic!("{other:?}"),
    }
    let reg = registry(&hostile("trap", "on-error proceed"));
    assert_eq!(mail_from(&reg).await, Verdict::PROCEED);
}

#[tokio::test]
async fn dns_is_refused_without_the_grant_and_budgeted_with_it() {
    // Not granted: every lookup fails, the filter carries on.
    let reg = registry(&hostile("dns-flood", ""));
    assert_eq!(mail_from(&reg).await, Verdict::PROCEED);
}

#[tokio::test]
async fn a_filter_failing_again_and_again_is_quarantined() {
    let reg = registry(&hostile("trap", ""));
    for _ in 0..quarantine::THRESHOLD {
        assert!(is_tempfail(&mail_from(&reg).await));
    }
    let filter = reg.get("h").unwrap();
    assert!(filter.quarantine.is_quarantined(Instant::now()));
    assert_eq!(
        filter.quarantine.counts(),
        (quarantine::THRESHOLD as u64, 1)
    );
    // Quarantined: the policy answers without running it.
    assert!(is_tempfail(&mail_from(&reg).await));
    assert_eq!(filter.quarantine.counts().0, quarantine::THRESHOLD as u64);
}

#[tokio::test]
async fn data_lines_pass_through_filters_in_batches() {
    let reg =
        registry("filter s spamscore rule \"3 header ^Subject:.*viagra\" rule \"3 body cheap\"\n");
    let mut f = SessionFilters::new(reg.chain("s"), "0123456789abcdef");
    let mut msg = b"Subject: viagra\r\nFrom: a@b\r\n\r\n".to_vec();
    for i in 0..5000 {
        msg.extend_from_slice(format!("line {i} cheap stuff\r\n").as_bytes());
    }
    let out = f.data(&session(), msg.clone(), 1 << 30).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("X-Spam-Score: 6"), "{}", &text[..200]);
    assert!(text.contains("X-Spam-Status: Yes"));
    assert!(text.ends_with("line 4999 cheap stuff\r\n"));
    let commit = f.phase(&session(), Phase::Commit, "").await;
    assert_eq!(
        commit,
        Verdict::Proceed {
            rewrite: None,
            junk: true
        }
    );
}

#[tokio::test]
async fn huge_data_output_is_a_failure() {
    let reg = registry(&hostile("huge", "phase data-lines memory 256M"));
    let mut f = SessionFilters::new(reg.chain("h"), "0123456789abcdef");
    let r = f
        .data(&session(), b"Subject: x\r\n\r\nhi\r\n".to_vec(), 10 << 20)
        .await;
    assert!(
        matches!(r, Err(Verdict::Disconnect(ref r)) if r.code == 421),
        "{r:?}"
    );
}

#[tokio::test]
async fn reload_keeps_sessions_on_their_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.wasm");
    std::fs::copy(format!("{}/hostile.wasm", filters_dir()), &path).unwrap();
    let conf = format!("filter h wasm \"{}\" mode reject\n", path.display());
    let reg = registry(&conf);
    let mut before = SessionFilters::new(reg.chain("h"), "1");
    // A broken file: the running version stays.
    std::fs::write(&path, b"not wasm").unwrap();
    let (replaced, failures) = reg.reload();
    assert_eq!((replaced, failures.len()), (0, 1));
    assert!(matches!(mail_from(&reg).await, Verdict::Reject(_)));
    // A different component under the same name.
    std::fs::copy(format!("{}/dnsbl.wasm", filters_dir()), &path).unwrap();
    assert_eq!(reg.reload().0, 1);
    assert_eq!(mail_from(&reg).await, Verdict::PROCEED);
    let v = before
        .phase(&session(), Phase::MailFrom, "a@b.example")
        .await;
    assert!(matches!(v, Verdict::Reject(_)), "{v:?}");
    let _ = Arc::clone(&reg.current());
}

#[tokio::test]
async fn calls_fuel_rejects_and_traps_are_counted_per_filter_and_tenant() {
    use crate::stats::{Stats, Value};
    let counter = |stats: &Stats, k: &str| match stats.snapshot().get(k) {
        Some(Value::Counter(n)) => *n,
        _ => 0,
    };
    let stats = Stats::new(Instant::now());
    let reg = registry_with(&hostile("reject", ""), stats.clone());
    let mut f = SessionFilters::new(reg.chain("h"), "1")
        .with_tenant("acme.example", reg.tenant_stats("acme.example"));
    let v = f
        .phase(&session(), Phase::MailFrom, "joe@example.org")
        .await;
    assert!(matches!(v, Verdict::Reject(_)), "{v:?}");
    // init and mail-from.
    assert_eq!(counter(&stats, "filter.h.calls"), 2);
    assert_eq!(counter(&stats, "tenant.acme.example.filter.calls"), 2);
    assert!(counter(&stats, "filter.h.fuel") > 0);
    assert_eq!(
        counter(&stats, "filter.h.fuel"),
        counter(&stats, "tenant.acme.example.filter.fuel")
    );
    assert_eq!(counter(&stats, "filter.h.rejects"), 1);
    assert_eq!(counter(&stats, "filter.h.traps"), 0);

    let stats = Stats::new(Instant::now());
    let reg = registry_with(
        &hostile(
            "loop",
            "fuel 100000000000 session-fuel 100000000000 timeout 200ms",
        ),
        stats.clone(),
    );
    let mut f = SessionFilters::new(reg.chain("h"), "1").with_tenant("t", reg.tenant_stats("t"));
    f.phase(&session(), Phase::MailFrom, "joe@example.org")
        .await;
    assert_eq!(counter(&stats, "filter.h.errors"), 1);
    assert_eq!(counter(&stats, "filter.h.traps"), 1);
    assert_eq!(counter(&stats, "filter.h.timeouts"), 1);
    assert_eq!(counter(&stats, "tenant.t.filter.traps"), 1);
    let prom = stats.render_prometheus();
    assert!(
        prom.contains("wasmtpd_filter_traps_total{filter=\"h\"} 1"),
        "{prom}"
    );
}

/// A session of tenant `tag` (none: the untagged listeners) through the
/// regex filter "r": mail-from, then the message when given, then
/// commit unless `commit` is false (the client went away before).
async fn regex_session(
    reg: &Registry,
    tag: Option<&str>,
    message: Option<&[u8]>,
    commit: bool,
) -> Verdict {
    let mut f = SessionFilters::new(reg.chain("r"), "1");
    if let Some(tag) = tag {
        f = f.with_tenant(tag, reg.tenant_stats(tag));
    }
    f.phase(&session(), Phase::MailFrom, "joe@example.org")
        .await;
    if let Some(m) = message {
        f.data(&session(), m.to_vec(), 1 << 20).await.unwrap();
    }
    if commit {
        f.phase(&session(), Phase::Commit, "").await
    } else {
        Verdict::PROCEED
    }
}

const REGEX_FILTER: &str = "filter r regex body \"EICAR\"\n";

#[tokio::test]
async fn finished_instances_serve_the_same_tenants_next_sessions_afresh() {
    let reg = registry(REGEX_FILTER);
    let filter = reg.get("r").unwrap();
    let spam = b"Subject: x\r\n\r\nEICAR here\r\n";
    // The first session's message matches, and the session goes away
    // before its commit.
    regex_session(&reg, Some("a"), Some(spam), false).await;
    assert_eq!(filter.idle.len(), 1);
    // The next session of the tenant gets that instance, started afresh:
    // no message, no match.
    assert_eq!(
        regex_session(&reg, Some("a"), None, true).await,
        Verdict::PROCEED
    );
    assert_eq!(filter.stats.reuses.get(), 1);
    assert_eq!(filter.idle.len(), 1);
    // Another tenant never gets it.
    regex_session(&reg, Some("b"), None, true).await;
    regex_session(&reg, None, None, true).await;
    assert_eq!(filter.stats.reuses.get(), 1);
    assert_eq!(filter.idle.len(), 3);
    // A reused instance still decides.
    assert!(matches!(
        regex_session(&reg, Some("a"), Some(spam), true).await,
        Verdict::Reject(_)
    ));
    assert_eq!(filter.stats.reuses.get(), 2);
}

#[tokio::test]
async fn a_connect_only_filter_frees_its_instance_after_the_connect_phase() {
    let reg = registry(&hostile("proceed", "phase connect"));
    let filter = reg.get("h").unwrap();
    let mut first = SessionFilters::new(reg.chain("h"), "1");
    assert_eq!(
        first.phase(&session(), Phase::Connect, "192.0.2.7").await,
        Verdict::PROCEED
    );
    // The first session goes on, but its instance is already idle: the
    // next session starts on it.
    assert_eq!(filter.idle.len(), 1);
    let mut second = SessionFilters::new(reg.chain("h"), "2");
    second.phase(&session(), Phase::Connect, "192.0.2.8").await;
    assert_eq!(filter.stats.reuses.get(), 1);
    // The rest of the first session calls nothing, and its end parks
    // nothing twice.
    assert_eq!(
        first
            .phase(&session(), Phase::MailFrom, "joe@example.org")
            .await,
        Verdict::PROCEED
    );
    drop(first);
    drop(second);
    assert_eq!(filter.idle.len(), 1);
    assert_eq!(filter.stats.calls.get(), 3, "init once, connect twice");
}

#[tokio::test]
async fn a_reused_instance_starts_afresh_even_mid_message() {
    let reg = registry(REGEX_FILTER);
    let filter = reg.get("r").unwrap();
    let spam: &[u8] = b"Subject: x\r\n\r\nEICAR here\r\n";
    let mut instance = instance::Instance::start(&filter, "1").await.unwrap();
    // Within a session the filter keeps what it saw...
    instance
        .on_data_lines(&session(), spam, false)
        .await
        .unwrap();
    let commit = instance.on_phase(&session(), Phase::Commit, "").await;
    assert!(matches!(commit, Ok(Decision::Reject(_))), "{commit:?}");
    // ...but a session cut off half way through its message leaves
    // nothing to the next one: init is not called again, the new
    // session serial is what resets the filter.
    instance
        .on_data_lines(&session(), spam, false)
        .await
        .unwrap();
    instance.restart("2", None);
    let commit = instance.on_phase(&session(), Phase::Commit, "").await;
    assert!(matches!(commit, Ok(Decision::Proceed)), "{commit:?}");
}

#[tokio::test]
async fn a_content_filter_answers_commit_with_the_last_lines() {
    let reg = registry(REGEX_FILTER);
    let filter = reg.get("r").unwrap();
    let mut f = SessionFilters::new(reg.chain("r"), "1");
    for (message, rejected) in [
        (&b"Subject: x\r\n\r\nEICAR here\r\n"[..], true),
        // The message guard lets it through (it matches the pattern in
        // a header field); the filter looks at body lines only.
        (&b"Subject: EICAR\r\n\r\nclean\r\n"[..], false),
    ] {
        f.data(&session(), message.to_vec(), 1 << 20).await.unwrap();
        let calls = filter.stats.calls.get();
        let verdict = f.phase(&session(), Phase::Commit, "").await;
        assert_eq!(
            matches!(verdict, Verdict::Reject(_)),
            rejected,
            "{verdict:?}"
        );
        assert_eq!(filter.stats.calls.get(), calls, "no call at commit");
    }
    // init, then one call per message.
    assert_eq!(filter.stats.calls.get(), 3);
}

#[tokio::test]
async fn a_per_message_filter_hands_its_instance_back_once_the_message_is_decided() {
    let reg = registry("filter s spamscore rule \"6 body spam\"\n");
    let filter = reg.get("s").unwrap();
    let message = |body: &str| format!("Subject: x\r\n\r\n{body}\r\n").into_bytes();
    let mut a = SessionFilters::new(reg.chain("s"), "a");
    a.phase(&session(), Phase::MailFrom, "x@example.org").await;
    a.data(&session(), message("spam"), 1 << 20).await.unwrap();
    let verdict = a.phase(&session(), Phase::Commit, "").await;
    assert!(
        matches!(verdict, Verdict::Proceed { junk: true, .. }),
        "{verdict:?}"
    );
    // Session a is still open, but its instance is free again...
    assert_eq!(filter.idle.len(), 1);
    // ...for another session's message, which starts afresh on it.
    let mut b = SessionFilters::new(reg.chain("s"), "b");
    let out = b.data(&session(), message("clean"), 1 << 20).await.unwrap();
    assert!(String::from_utf8_lossy(&out).contains("X-Spam-Status: No"));
    assert_eq!(
        b.phase(&session(), Phase::Commit, "").await,
        Verdict::PROCEED
    );
    assert_eq!(filter.stats.reuses.get(), 1);
    // a's next message takes it back: nothing of the first message stays.
    let out = a.data(&session(), message("clean"), 1 << 20).await.unwrap();
    assert!(String::from_utf8_lossy(&out).contains("X-Spam-Status: No"));
    assert_eq!(
        a.phase(&session(), Phase::Commit, "").await,
        Verdict::PROCEED
    );
    assert_eq!((filter.stats.reuses.get(), filter.idle.len()), (2, 1));
}

#[tokio::test]
async fn a_dropped_transaction_frees_a_per_message_instance() {
    let reg = registry("filter r regex mail-from \"^spammer@\"\n");
    let filter = reg.get("r").unwrap();
    let mut f = SessionFilters::new(reg.chain("r"), "1");
    let verdict = f
        .phase(&session(), Phase::MailFrom, "spammer@example.org")
        .await;
    assert!(matches!(verdict, Verdict::Reject(_)), "{verdict:?}");
    assert_eq!(filter.idle.len(), 0);
    // RSET, or the next MAIL FROM: the next message starts afresh.
    f.end_message();
    assert_eq!(filter.idle.len(), 1);
}

#[tokio::test]
async fn the_clients_address_cannot_be_rewritten_for_the_next_filters() {
    let reg = registry(
        "filter a phase connect match !rdns rewrite \"127.0.0.1\"\n\
         filter b phase mail-from match !rdns rewrite \"x@example.org\"\n\
         filter c chain { a, b }\n",
    );
    let mut f = SessionFilters::new(reg.chain("c"), "1");
    assert_eq!(
        f.phase(&session(), Phase::Connect, "192.0.2.7").await,
        Verdict::PROCEED
    );
    let verdict = f.phase(&session(), Phase::MailFrom, "y@example.org").await;
    assert_eq!(
        verdict,
        Verdict::Proceed {
            rewrite: Some("x@example.org".into()),
            junk: false
        }
    );
}

#[tokio::test]
async fn a_guarded_filter_is_not_called_for_what_matches_none_of_its_patterns() {
    let reg = registry("filter r regex mail-from \"^spammer@\" body \"EICAR\"\n");
    let filter = reg.get("r").unwrap();
    // The first session starts an instance, which tells what it wants.
    regex_session(&reg, None, None, false).await;
    let (calls, reuses) = (filter.stats.calls.get(), filter.stats.reuses.get());
    // Clean sender, clean message: nothing to ask, no instance taken.
    let clean: &[u8] = b"Subject: hello\r\n\r\nnothing to see\r\n";
    assert_eq!(
        regex_session(&reg, None, Some(clean), true).await,
        Verdict::PROCEED
    );
    assert_eq!(filter.stats.calls.get(), calls);
    assert_eq!(filter.stats.reuses.get(), reuses);
    // A match in the message: it is called, and decides.
    let spam: &[u8] = b"Subject: hello\r\n\r\nEICAR\r\n";
    let verdict = regex_session(&reg, None, Some(spam), true).await;
    assert!(matches!(verdict, Verdict::Reject(_)), "{verdict:?}");
    assert_eq!(filter.stats.calls.get(), calls + 1);
    // A matching sender is refused at MAIL FROM as before.
    let mut f = SessionFilters::new(reg.chain("r"), "4");
    let verdict = f
        .phase(&session(), Phase::MailFrom, "spammer@example.org")
        .await;
    assert!(matches!(verdict, Verdict::Reject(_)), "{verdict:?}");
}

#[tokio::test]
async fn an_instance_is_taken_only_at_the_first_event_its_filter_asked_for() {
    // Content only: message lines and commit.
    let reg = registry(REGEX_FILTER);
    let filter = reg.get("r").unwrap();
    // The first session starts an instance, which tells what it wants.
    regex_session(&reg, None, None, true).await;
    let (calls, idle) = (filter.stats.calls.get(), filter.idle.len());
    // A session that never gets to a message leaves the filter alone.
    let mut f = SessionFilters::new(reg.chain("r"), "2");
    assert!(!f.wants_reports());
    f.report(&session(), Report::LinkConnect).await;
    for phase in [Phase::Connect, Phase::Ehlo, Phase::MailFrom, Phase::RcptTo] {
        assert_eq!(f.phase(&session(), phase, "x").await, Verdict::PROCEED);
    }
    drop(f);
    assert_eq!(filter.stats.calls.get(), calls);
    assert_eq!((filter.stats.reuses.get(), filter.idle.len()), (0, idle));
}

#[tokio::test]
async fn lines_put_on_top_reach_the_next_filter_and_the_message() {
    let reg = registry(
        "filter \"s\" spamscore rule \"6 body spam\"\n\
         filter \"r\" regex header \"^X-Spam-Status: Yes\"\n\
         filter \"both\" chain { \"s\", \"r\" }\n",
    );
    let mut f = SessionFilters::new(reg.chain("both"), "1");
    let message = b"Subject: x\r\n\r\nspam\r\n";
    let out = f.data(&session(), message.to_vec(), 1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("X-Spam-Score: 6.0\r\nX-Spam-Status: Yes, score=6.0"),
        "{text}"
    );
    assert!(out.ends_with(message), "{text}");
    // The regex filter, next in the chain, saw the status field.
    let verdict = f.phase(&session(), Phase::Commit, "").await;
    assert!(matches!(verdict, Verdict::Reject(_)), "{verdict:?}");
}

#[tokio::test]
async fn max_use_bounds_the_sessions_of_one_instance() {
    let reg = registry("filter r regex body \"EICAR\" max-use 2\n");
    let filter = reg.get("r").unwrap();
    for _ in 0..5 {
        regex_session(&reg, None, None, true).await;
    }
    // Sessions 1-2 on the first instance, 3-4 on the second, 5 on a
    // third.
    assert_eq!(filter.stats.reuses.get(), 2);
    let reg = registry("filter r regex body \"EICAR\" max-use 1\n");
    for _ in 0..3 {
        regex_session(&reg, None, None, true).await;
    }
    let filter = reg.get("r").unwrap();
    assert_eq!((filter.stats.reuses.get(), filter.idle.len()), (0, 0));
}

#[tokio::test]
async fn failed_or_interrupted_instances_are_not_kept() {
    let reg = registry(&hostile("trap", ""));
    mail_from(&reg).await;
    assert_eq!(reg.get("h").unwrap().idle.len(), 0);

    // A session dropped while its filter computes (the client went away
    // mid-call): the guest stopped half way, so its instance goes.
    let reg = registry(&hostile(
        "loop",
        "fuel 100000000000 session-fuel 100000000000 timeout 10s",
    ));
    let cut_off = tokio::time::timeout(Duration::from_millis(100), mail_from(&reg)).await;
    assert!(cut_off.is_err());
    assert_eq!(reg.get("h").unwrap().idle.len(), 0);
}

#[tokio::test]
async fn a_reload_starts_over_with_new_instances() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.wasm");
    std::fs::copy(format!("{}/hostile.wasm", filters_dir()), &path).unwrap();
    let conf = format!("filter h wasm \"{}\" mode proceed\n", path.display());
    let reg = registry(&conf);
    mail_from(&reg).await;
    let old = reg.get("h").unwrap();
    assert_eq!(old.idle.len(), 1);
    assert_eq!(reg.reload().0, 1);
    mail_from(&reg).await;
    let new = reg.get("h").unwrap();
    assert!(!Arc::ptr_eq(&old, &new));
    assert_eq!(
        new.stats.reuses.get(),
        0,
        "the old version's idle instance is not used"
    );
    assert_eq!(new.idle.len(), 1);
}

#[tokio::test]
async fn a_dns_answer_that_never_comes_ends_the_call_at_its_deadline() {
    // A name server that reads queries and never answers: the resolver
    // alone would wait 5 s and retry.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = crate::dns::Dns::new(Some(silent.local_addr().unwrap())).unwrap();
    let reg = registry_full(
        &hostile("dns-flood", "allow dns timeout 300ms"),
        crate::stats::Stats::new(Instant::now()),
        Some(Arc::new(dns)),
    );
    let started = Instant::now();
    let (v, why) = mail_from_why(&reg).await;
    assert!(is_tempfail(&v), "{v:?}");
    assert_eq!(why, Some(instance::Failure::Deadline));
    assert!(
        started.elapsed() < crate::dns::QUERY_TIMEOUT / 2,
        "{:?}",
        started.elapsed()
    );
}
