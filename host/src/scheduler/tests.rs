//! The scheduler against a real on-disk queue: batching the recipients
//! of one message per destination, retries, bounces and delay warnings.
//! The delivery side is a recording stand-in: what is under test is
//! what the scheduler hands it and does with its answers.

use std::sync::Mutex;

use super::*;
use crate::envelope::DsnParams;
use crate::mailaddr::MailAddr;

#[derive(Default)]
struct Recorder {
    /// Each attempt: the recipients it carried.
    attempts: Mutex<Vec<Vec<String>>>,
    notices: Mutex<Vec<(String, Notice)>>,
    /// Recipients (by local part) that fail for now / for good.
    tempfail: Vec<&'static str>,
    permfail: Vec<&'static str>,
    /// Domains whose destination is held.
    held: Vec<&'static str>,
}

impl Deliver for Recorder {
    async fn deliver(&self, env: &Envelope) -> Outcome {
        self.deliver_batch(std::slice::from_ref(env))
            .await
            .remove(0)
    }

    fn held_until(&self, env: &Envelope) -> Option<i64> {
        self.held
            .contains(&env.dest.domain.as_str())
            .then(|| now() + 3600)
    }

    fn batch_key(&self, env: &Envelope) -> Option<String> {
        (env.kind == EnvelopeKind::Mta).then(|| env.dest.domain.clone())
    }

    async fn deliver_batch(&self, envs: &[Envelope]) -> Vec<Outcome> {
        self.attempts
            .lock()
            .unwrap()
            .push(envs.iter().map(|e| e.rcpt.to_string()).collect());
        envs.iter()
            .map(|e| {
                if self.tempfail.contains(&e.rcpt.local.as_str()) {
                    Outcome::TempFail("421 4.4.2 try later".into())
                } else if self.permfail.contains(&e.rcpt.local.as_str()) {
                    Outcome::PermFail("550 5.1.1 no such user".into())
                } else {
                    Outcome::Ok("250 ok".into())
                }
            })
            .collect()
    }

    async fn bounce(&self, failed: &[Envelope], notice: Notice) -> Result<Vec<Envelope>, String> {
        let rcpts: Vec<String> = failed.iter().map(|e| e.rcpt.to_string()).collect();
        self.notices.lock().unwrap().push((rcpts.join(","), notice));
        Ok(Vec::new())
    }

    fn method_name(&self, _env: &Envelope) -> String {
        "test".into()
    }
}

fn envelope(msgid: MsgId, rcpt: &str, kind: EnvelopeKind) -> Envelope {
    let (local, domain) = rcpt.split_once('@').unwrap();
    let created = now();
    Envelope {
        id: EvpId::new_in(msgid),
        kind,
        action: "out".into(),
        sender: Some(MailAddr::new("alice", "example.org")),
        rcpt: MailAddr::new(local, domain),
        dest: MailAddr::new(local, domain),
        target: None,
        dsn: DsnParams::default(),
        tag: None,
        helo: "client.example.org".into(),
        peer: None,
        peer_name: "localhost".into(),
        hostname: "mx.example.org".into(),
        auth_user: None,
        created,
        expire: created + 3600,
        tries: 0,
        last_try: 0,
        next_try: created,
        last_error: None,
        bounce_reason: None,
        junk: false,
        warnings: 0,
    }
}

async fn queued(dir: &std::path::Path, rcpts: &[(&str, EnvelopeKind)]) -> (Queue, Vec<Envelope>) {
    let q = Queue::open(dir, Default::default()).unwrap();
    let id = q.new_msgid();
    let envs: Vec<Envelope> = rcpts.iter().map(|(r, k)| envelope(id, r, *k)).collect();
    q.commit(id, b"Subject: t\r\n\r\nhi\r\n".to_vec(), envs.clone())
        .await
        .unwrap();
    (q, envs)
}

async fn wait_for(what: impl Fn() -> bool) {
    for _ in 0..200 {
        if what() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out");
}

#[tokio::test]
async fn recipients_of_one_message_share_an_attempt_per_destination() {
    let dir = tempfile::tempdir().unwrap();
    let (q, envs) = queued(
        dir.path(),
        &[
            ("a@one.test", EnvelopeKind::Mta),
            ("b@two.test", EnvelopeKind::Mta),
            ("c@one.test", EnvelopeKind::Mta),
            ("d@local.test", EnvelopeKind::Mda),
            ("e@local.test", EnvelopeKind::Mda),
        ],
    )
    .await;
    let rec = Arc::new(Recorder::default());
    let _h = start(q.clone(), rec.clone(), SchedulerOptions::default(), envs);
    wait_for(|| rec.attempts.lock().unwrap().len() == 4).await;
    let mut attempts: Vec<Vec<String>> = rec
        .attempts
        .lock()
        .unwrap()
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a.sort();
            a
        })
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        vec![
            vec!["a@one.test".to_string(), "c@one.test".to_string()],
            vec!["b@two.test".to_string()],
            vec!["d@local.test".to_string()],
            vec!["e@local.test".to_string()],
        ]
    );
    // Delivered: gone from the queue.
    wait_for(|| q.load_all().unwrap().envelopes.is_empty()).await;
}

#[tokio::test]
async fn batch_outcomes_are_settled_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let (q, envs) = queued(
        dir.path(),
        &[
            ("ok@one.test", EnvelopeKind::Mta),
            ("later@one.test", EnvelopeKind::Mta),
            ("never@one.test", EnvelopeKind::Mta),
        ],
    )
    .await;
    let rec = Arc::new(Recorder {
        tempfail: vec!["later"],
        permfail: vec!["never"],
        ..Default::default()
    });
    let _h = start(q.clone(), rec.clone(), SchedulerOptions::default(), envs);
    wait_for(|| q.load_all().unwrap().envelopes.len() == 1).await;
    let left = q.load_all().unwrap().envelopes;
    assert_eq!(left[0].rcpt.local, "later");
    assert_eq!(left[0].tries, 1);
    assert_eq!(left[0].last_error.as_deref(), Some("421 4.4.2 try later"));
    assert!(left[0].next_try > now());
    assert_eq!(
        *rec.notices.lock().unwrap(),
        vec![("never@one.test".to_string(), Notice::Failed)]
    );
}

#[tokio::test]
async fn a_delay_warning_goes_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (q, mut envs) = queued(dir.path(), &[("later@one.test", EnvelopeKind::Mta)]).await;
    // Queued two hours ago; warn after one, and after a day.
    envs[0].created -= 7200;
    let rec = Arc::new(Recorder {
        tempfail: vec!["later"],
        ..Default::default()
    });
    let opts = SchedulerOptions {
        backoff: Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(1),
        },
        warn_after: vec![Duration::from_secs(3600), Duration::from_secs(86400)],
        ..Default::default()
    };
    let _h = start(q.clone(), rec.clone(), opts, envs);
    wait_for(|| rec.attempts.lock().unwrap().len() >= 3).await;
    assert_eq!(
        *rec.notices.lock().unwrap(),
        vec![("later@one.test".to_string(), Notice::Delayed)]
    );
    wait_for(|| q.load_all().unwrap().envelopes[0].warnings == 1).await;
}

#[tokio::test]
async fn recipients_failing_together_get_one_bounce() {
    let dir = tempfile::tempdir().unwrap();
    let (q, envs) = queued(
        dir.path(),
        &[
            ("never@one.test", EnvelopeKind::Mta),
            ("nobody@one.test", EnvelopeKind::Mta),
            ("ok@one.test", EnvelopeKind::Mta),
        ],
    )
    .await;
    let rec = Arc::new(Recorder {
        permfail: vec!["never", "nobody"],
        ..Default::default()
    });
    let _h = start(q.clone(), rec.clone(), SchedulerOptions::default(), envs);
    wait_for(|| q.load_all().unwrap().envelopes.is_empty()).await;
    let notices = rec.notices.lock().unwrap().clone();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let mut rcpts: Vec<&str> = notices[0].0.split(',').collect();
    rcpts.sort();
    assert_eq!(rcpts, vec!["never@one.test", "nobody@one.test"]);
}

#[tokio::test]
async fn a_held_destination_waits_without_a_try() {
    let dir = tempfile::tempdir().unwrap();
    let (q, envs) = queued(
        dir.path(),
        &[
            ("a@held.test", EnvelopeKind::Mta),
            ("b@open.test", EnvelopeKind::Mta),
        ],
    )
    .await;
    let rec = Arc::new(Recorder {
        held: vec!["held.test"],
        ..Default::default()
    });
    let _h = start(q.clone(), rec.clone(), SchedulerOptions::default(), envs);
    wait_for(|| q.load_all().unwrap().envelopes.len() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *rec.attempts.lock().unwrap(),
        vec![vec!["b@open.test".to_string()]]
    );
    let left = q.load_all().unwrap().envelopes;
    assert_eq!((left[0].rcpt.local.as_str(), left[0].tries), ("a", 0));
}

#[tokio::test]
async fn paused_relaying_parks_relayed_mail_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (q, mut envs) = queued(
        dir.path(),
        &[
            ("far@one.test", EnvelopeKind::Mta),
            ("near@local.test", EnvelopeKind::Mda),
        ],
    )
    .await;
    // Not due yet, so the pause lands before any attempt.
    for env in &mut envs {
        env.next_try = now() + 3600;
    }
    let rec = Arc::new(Recorder::default());
    let h = start(q.clone(), rec.clone(), SchedulerOptions::default(), envs);
    let paused = h.pause(Class::Mta, true).await;
    assert_eq!(
        paused,
        Paused {
            mda: false,
            mta: true
        }
    );
    assert_eq!(h.schedule(Selector::All).await, 2);
    wait_for(|| rec.attempts.lock().unwrap().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *rec.attempts.lock().unwrap(),
        vec![vec!["near@local.test".to_string()]]
    );
    let listed = h.list().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].envelope.rcpt.local, "far");
    assert_eq!(listed[0].activity, Activity::Pending);

    assert_eq!(h.pause(Class::Mta, false).await, Paused::default());
    // (A read racing the removal may find a file gone: read again.)
    wait_for(|| q.load_all().is_ok_and(|r| r.envelopes.is_empty())).await;
    // The attempt reports back after the queue forgot the envelope.
    for _ in 0..200 {
        if h.list().await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the delivered envelope is still listed");
}

#[tokio::test]
async fn suspended_envelopes_wait_and_removed_ones_leave_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let (q, mut envs) = queued(
        dir.path(),
        &[
            ("a@one.test", EnvelopeKind::Mta),
            ("b@two.test", EnvelopeKind::Mta),
            ("c@three.test", EnvelopeKind::Mta),
        ],
    )
    .await;
    for env in &mut envs {
        env.next_try = now() + 3600;
    }
    let (a, b, c) = (envs[0].id, envs[1].id, envs[2].id);
    let rec = Arc::new(Recorder::default());
    let h = start(q.clone(), rec.clone(), SchedulerOptions::default(), envs);
    assert_eq!(h.suspend(Selector::Envelope(a), true).await, 1);
    assert_eq!(h.suspend(Selector::Envelope(a), true).await, 0);
    assert_eq!(h.remove(Selector::Envelope(b)).await, vec![b]);
    let states: Vec<(EvpId, Activity)> = h
        .list()
        .await
        .iter()
        .map(|l| (l.envelope.id, l.activity))
        .collect();
    let mut want = vec![(a, Activity::Suspended), (c, Activity::Pending)];
    want.sort();
    assert_eq!(states, want);

    // `schedule all` runs what may run; the suspended one stays.
    h.schedule(Selector::All).await;
    wait_for(|| rec.attempts.lock().unwrap().len() == 1).await;
    assert_eq!(
        *rec.attempts.lock().unwrap(),
        vec![vec!["c@three.test".to_string()]]
    );
    assert_eq!(h.suspend(Selector::Message(a.msgid()), false).await, 1);
    h.schedule(Selector::Envelope(a)).await;
    wait_for(|| rec.attempts.lock().unwrap().len() == 2).await;
}

#[tokio::test]
async fn outcomes_are_counted_for_show_stats() {
    use crate::stats::Value;
    let dir = tempfile::tempdir().unwrap();
    let (q, mut envs) = queued(
        dir.path(),
        &[
            ("ok@one.test", EnvelopeKind::Mta),
            ("later@one.test", EnvelopeKind::Mta),
            ("never@one.test", EnvelopeKind::Mta),
            ("late@two.test", EnvelopeKind::Mta),
        ],
    )
    .await;
    // Delivered 90 s after it was queued.
    envs[0].created -= 90;
    // Out of time: its temporary failure expires it.
    envs[3].expire = now() - 1;
    let rec = Arc::new(Recorder {
        tempfail: vec!["later", "late"],
        permfail: vec!["never"],
        ..Default::default()
    });
    let opts = SchedulerOptions::default();
    let stats = opts.stats.clone();
    let _h = start(q.clone(), rec.clone(), opts, envs);
    let counter = |k: &str| match stats.snapshot().get(k) {
        Some(Value::Counter(n)) => *n,
        _ => 0,
    };
    wait_for(|| counter("queue.envelope.dequeued") == 3).await;
    assert_eq!(counter("scheduler.delivery.ok"), 1);
    assert_eq!(counter("scheduler.delivery.tempfail"), 2);
    assert_eq!(counter("scheduler.delivery.permfail"), 1);
    assert_eq!(counter("scheduler.envelope.expired"), 1);
    assert_eq!(counter("scheduler.delivery.loop"), 0);
    assert_eq!(counter("scheduler.delivery.delay.count"), 1);
    match stats.snapshot().get("scheduler.delivery.delay.sum") {
        Some(Value::Sum(s)) => assert!((90.0..100.0).contains(s), "{s}"),
        other => panic!("{other:?}"),
    }
    wait_for(|| stats.snapshot().get("scheduler.envelope.inflight") == Some(&Value::Gauge(0)))
        .await;
}

#[test]
fn loops_are_told_by_their_status_or_words() {
    assert!(is_loop("554 5.4.6 Mail loop detected"));
    assert!(is_loop("550 Routing loop detected"));
    assert!(is_loop("554 Too many hops"));
    assert!(!is_loop("550 5.1.1 no such user"));
    assert!(!is_loop("connection refused by loopback.example"));
}

#[tokio::test]
async fn discover_schedules_only_envelopes_it_did_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let (q, envs) = queued(
        dir.path(),
        &[
            ("a@one.test", EnvelopeKind::Mta),
            ("b@one.test", EnvelopeKind::Mta),
        ],
    )
    .await;
    let rec = Arc::new(Recorder {
        held: vec!["one.test"],
        ..Default::default()
    });
    // The scheduler knows the first envelope only.
    let h = start(
        q.clone(),
        rec.clone(),
        SchedulerOptions::default(),
        envs[..1].to_vec(),
    );
    let on_disk = q.read_envelopes(envs[0].msgid()).await.unwrap();
    assert_eq!(on_disk.len(), 2);
    assert_eq!(h.discover(on_disk.clone()).await, 1);
    assert_eq!(h.discover(on_disk).await, 0);
    assert_eq!(h.list().await.len(), 2);
}
