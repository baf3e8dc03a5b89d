//! The relay service: takes a batch of envelopes of one message for one
//! destination, finds the hosts to try, carries the message over a new
//! or an idle connection, and turns each recipient's reply into an
//! [`Outcome`]. It remembers destinations that keep failing (held for a
//! while, so the queue does not hammer a dead host) and keeps a few idle
//! connections per host for the next message.

mod destinations;
mod pool;
mod report;
mod sender;
mod stats;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

pub use destinations::DestinationReport;
use destinations::Destinations;
pub use pool::IdleReport;
use pool::{ConnKey, Pool};
use report::{log, outcome_of, Via};
use sender::envelope_sender;
use stats::RelayStats;

use super::client::{
    ClientConfig, Credentials, FailureReason, Recipient, SessionFailure, Stage, TlsPolicy,
    Transaction,
};
use super::route::{self, Destination, Hop, RouteError};
use super::session::{local_failure, Connection, Target, Timeouts};
use super::tls::{self as client_tls, ClientTls};
use super::url::Scheme;
use crate::config::model::{Config, RelayOptions};
use crate::dns::Dns;
use crate::envelope::Envelope;
use crate::mda::Outcome;
use crate::table::Tables;

/// Connections open at once to one destination (Postfix's
/// default_destination_concurrency_limit); as many are kept idle per
/// host for the next messages.
const PER_DESTINATION: usize = 20;
/// The longest one attempt may take over all hosts of a destination.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(20 * 60);

pub struct RelayService {
    pub config: Arc<Config>,
    pub tables: Arc<Tables>,
    pub dns: Dns,
    /// Client TLS per relay action (built before privileges dropped).
    tls: HashMap<String, Arc<ClientTls>>,
    pub hostname: String,
    /// Port of MX hosts: 25, but tests run their MX hosts elsewhere.
    pub mx_port: u16,
    pub timeouts: Timeouts,
    destinations: Destinations,
    pool: Pool,
    stats: RelayStats,
}

/// How one host did.
enum HopResult {
    /// The transaction ran: each recipient's outcome.
    Delivered(Vec<Outcome>),
    /// No recipient got an answer from this host: try the next.
    Failed(SessionFailure),
}

/// Where a batch goes, worked out from the action and the domain.
struct Plan {
    /// Holds and limits are per destination: the smarthost or domain.
    destination: String,
    scheme: Scheme,
    label: Option<String>,
    hops: Result<Vec<Hop>, RouteError>,
}

impl RelayService {
    pub fn new(
        config: Arc<Config>,
        tables: Arc<Tables>,
        dns: Dns,
        tls: HashMap<String, Arc<ClientTls>>,
        hostname: String,
        mx_port: u16,
        hold_for: Duration,
    ) -> RelayService {
        RelayService {
            config,
            tables,
            dns,
            tls,
            hostname,
            mx_port,
            timeouts: Timeouts::default(),
            destinations: Destinations::new(hold_for, PER_DESTINATION),
            pool: Pool::new(PER_DESTINATION),
            stats: RelayStats::default(),
        }
    }

    /// Counts connections and messages (`mta.*`) in `stats`.
    pub fn with_stats(mut self, stats: &crate::stats::Stats) -> RelayService {
        self.stats = RelayStats::new(stats);
        self
    }

    /// One attempt for `envs` (one message, one destination domain):
    /// one outcome per envelope, in order, each logged as OpenSMTPD's
    /// `relay: Ok for …` line.
    pub async fn relay(
        &self,
        action: &str,
        opts: &RelayOptions,
        envs: &[Envelope],
        content: Arc<Vec<u8>>,
    ) -> Vec<Outcome> {
        let mut via = Via::default();
        let outcomes = self.attempt(action, opts, envs, content, &mut via).await;
        let sender = envelope_sender(envs.first().and_then(|e| e.sender.as_ref()), opts);
        for (env, outcome) in envs.iter().zip(&outcomes) {
            log(env, sender.as_ref(), &via, outcome);
        }
        outcomes
    }

    async fn attempt(
        &self,
        action: &str,
        opts: &RelayOptions,
        envs: &[Envelope],
        content: Arc<Vec<u8>>,
        via: &mut Via,
    ) -> Vec<Outcome> {
        let Some(first) = envs.first() else {
            return Vec::new();
        };
        let mut plan = match self.plan(opts, &first.dest.domain).await {
            Ok(plan) => plan,
            Err(outcome) => return vec![outcome; envs.len()],
        };
        if let Some(why) = self.destinations.held(&plan.destination) {
            return vec![Outcome::TempFail(why); envs.len()];
        }
        let hops = match std::mem::replace(&mut plan.hops, Ok(Vec::new())) {
            Ok(h) => h,
            Err(e) if e.permanent => return vec![Outcome::PermFail(e.to_string()); envs.len()],
            Err(e) => return vec![Outcome::TempFail(e.to_string()); envs.len()],
        };
        let Some(tls) = self.tls.get(action).cloned() else {
            return vec![
                Outcome::TempFail(format!("action \"{action}\" has no TLS settings"));
                envs.len()
            ];
        };
        let limit = self.destinations.limit(&plan.destination);
        let Ok(_permit) = limit.acquire().await else {
            return vec![Outcome::TempFail("relay is shutting down".into()); envs.len()];
        };
        // Another attempt may have found it dead while this one waited.
        if let Some(why) = self.destinations.held(&plan.destination) {
            return vec![Outcome::TempFail(why); envs.len()];
        }
        let sender = envelope_sender(first.sender.as_ref(), opts);
        let tx = Transaction {
            sender,
            rcpts: envs
                .iter()
                .map(|e| Recipient {
                    addr: e.dest.clone(),
                    notify: e.dsn.notify.clone(),
                    orcpt: e.dsn.orcpt.clone(),
                })
                .collect(),
            ret: first.dsn.ret.clone(),
            envid: first.dsn.envid.clone(),
            content,
        };
        let tries = async {
            let mut failures = Vec::new();
            for hop in &hops {
                match self.try_hop(action, opts, &plan, hop, &tls, &tx, via).await {
                    HopResult::Delivered(outcomes) => return Ok(outcomes),
                    HopResult::Failed(failure) => failures.push(failure),
                }
            }
            Err(failures)
        };
        let failures = match tokio::time::timeout(ATTEMPT_LIMIT, tries).await {
            Ok(Ok(outcomes)) => {
                self.destinations.clear(&plan.destination);
                return outcomes;
            }
            Ok(Err(failures)) => failures,
            Err(_) => vec![local_failure(
                Stage::Greeting,
                format!(
                    "Delivery attempt took longer than {}s",
                    ATTEMPT_LIMIT.as_secs()
                ),
            )],
        };
        let why = failures
            .last()
            .map(|f| f.to_string())
            .unwrap_or_else(|| "No host could be reached".into());
        // Only when every host refused for good is it permanent.
        if !failures.is_empty() && failures.iter().all(|f| f.permanent) {
            vec![Outcome::PermFail(why); envs.len()]
        } else {
            self.destinations.hold(&plan.destination, &why);
            vec![Outcome::TempFail(why); envs.len()]
        }
    }

    /// One host: an idle connection if there is one (a stale one is
    /// replaced by a new connection once), else a new one; under
    /// opportunistic TLS a failed handshake is retried in plain text, as
    /// OpenSMTPD and Postfix do.
    #[allow(clippy::too_many_arguments)]
    async fn try_hop(
        &self,
        action: &str,
        opts: &RelayOptions,
        plan: &Plan,
        hop: &Hop,
        tls: &Arc<ClientTls>,
        tx: &Transaction,
        via: &mut Via,
    ) -> HopResult {
        let source = self.source_address(opts, hop.addr);
        let helo = self.helo_for(opts, source);
        let key = ConnKey {
            addr: hop.addr,
            port: hop.port,
            name: hop.name.to_ascii_lowercase(),
            scheme: plan.scheme,
            helo: helo.clone(),
            label: plan.label.clone(),
            action: action.to_string(),
        };
        let mut config = match self.client_config(opts, plan, helo) {
            Ok(c) => c,
            Err(e) => return HopResult::Failed(local_failure(Stage::Greeting, e)),
        };
        let mut may_reuse = true;
        loop {
            let idle = if may_reuse {
                self.pool.take(&key)
            } else {
                None
            };
            let reused = idle.is_some();
            let mut conn = match idle {
                Some(c) => {
                    self.stats.reused.inc();
                    c
                }
                None => {
                    let target = Target {
                        hop,
                        scheme: plan.scheme,
                        source,
                        tls: tls.clone(),
                    };
                    match Connection::open(target, config.clone(), self.timeouts).await {
                        Ok(c) => {
                            self.stats.connect.inc();
                            c
                        }
                        Err(failure) => {
                            self.stats.connect_fail.inc();
                            info!(
                                "smtp-out: Failed to connect to {} ({}): {failure}",
                                hop.addr, hop.name
                            );
                            let downgrade = config.tls == TlsPolicy::Opportunistic
                                && config.auth.is_none()
                                && matches!(failure.stage, Stage::StartTls | Stage::TlsHandshake)
                                && matches!(failure.reason, FailureReason::Local(_));
                            if downgrade {
                                info!("smtp-out: Retrying {} ({}) without TLS", hop.addr, hop.name);
                                config.tls = TlsPolicy::Never;
                                may_reuse = false;
                                continue;
                            }
                            return HopResult::Failed(failure);
                        }
                    }
                }
            };
            *via = Via {
                session: Some(conn.session_id.clone()),
                source: conn.local.map(|a| a.ip()),
                relay: Some((hop.addr, hop.name.clone())),
            };
            let failure = match conn.send(tx.clone()).await {
                Ok(result) => {
                    let answered = result
                        .rcpts
                        .iter()
                        .any(|r| r.reply.is_positive() || r.reply.is_permanent());
                    if answered || conn.is_usable() {
                        if result.rcpts.iter().any(|r| r.reply.is_positive()) {
                            self.stats.sent.inc();
                        }
                        // The server spoke for each recipient (a 4xx to
                        // one of them is that recipient's, not the
                        // host's): this is the attempt's result.
                        if conn.is_usable() {
                            if let Some(extra) = self.pool.put(key, conn) {
                                extra.close().await;
                            }
                        } else {
                            conn.close().await;
                        }
                        return HopResult::Delivered(
                            result.rcpts.iter().map(|r| outcome_of(&r.reply)).collect(),
                        );
                    }
                    // The session broke before anyone was answered.
                    let first = result.rcpts.first();
                    local_failure(
                        first.map(|r| r.stage).unwrap_or(Stage::Mail),
                        first
                            .map(|r| r.reply.to_string())
                            .unwrap_or_else(|| "session failed".into()),
                    )
                }
                Err(failure) => failure,
            };
            info!(
                "smtp-out: Session {} with {} failed: {failure}",
                conn.session_id, hop.name
            );
            conn.close().await;
            if reused {
                // An idle connection the server had given up on.
                may_reuse = false;
                continue;
            }
            return HopResult::Failed(failure);
        }
    }

    /// Until when mail for `domain` through this action is held (unix
    /// seconds), if it is: the scheduler then waits without trying.
    /// The destinations the relay knows, and its idle connections.
    pub fn report(&self) -> (Vec<DestinationReport>, Vec<IdleReport>) {
        (self.destinations.report(), self.pool.report())
    }

    pub fn held_until(&self, opts: &RelayOptions, domain: &str) -> Option<i64> {
        let key = match self.destination(opts, domain).ok()? {
            Destination::Smarthost(url) => url.to_string(),
            Destination::Mx { .. } => domain.to_ascii_lowercase(),
        };
        let left = self.destinations.held_for(&key)?;
        Some(chrono::Utc::now().timestamp() + left.as_secs() as i64 + 1)
    }

    /// The smarthost or MX route of `domain` through this action.
    fn destination(&self, opts: &RelayOptions, domain: &str) -> Result<Destination, Outcome> {
        // `domain <t>`: the table names the host for each domain.
        Ok(match &opts.domain {
            Some(t) => {
                let table = self
                    .tables
                    .get(t)
                    .ok_or_else(|| Outcome::TempFail(format!("table {t} is not loaded")))?;
                match table.lookup(domain) {
                    Some(url) => Destination::Smarthost(url.parse().map_err(|e| {
                        Outcome::TempFail(format!("bad relay host {url:?} in <{t}>: {e}"))
                    })?),
                    None => Destination::from_options(opts)
                        .map_err(|e| Outcome::TempFail(format!("bad relay options: {e}")))?,
                }
            }
            None => Destination::from_options(opts)
                .map_err(|e| Outcome::TempFail(format!("bad relay options: {e}")))?,
        })
    }

    async fn plan(&self, opts: &RelayOptions, domain: &str) -> Result<Plan, Outcome> {
        let destination = self.destination(opts, domain)?;
        let hops = route::route(
            &self.dns,
            &destination,
            domain,
            &self.hostname,
            self.mx_port,
        )
        .await;
        Ok(match destination {
            Destination::Smarthost(url) => Plan {
                destination: url.to_string(),
                scheme: url.scheme,
                label: url.label.clone(),
                hops,
            },
            Destination::Mx { .. } => Plan {
                destination: domain.to_ascii_lowercase(),
                scheme: Scheme::Smtp,
                label: None,
                hops,
            },
        })
    }

    fn client_config(
        &self,
        opts: &RelayOptions,
        plan: &Plan,
        helo: String,
    ) -> Result<ClientConfig, String> {
        let tls = match (plan.scheme, opts.tls) {
            (Scheme::SmtpNoTls | Scheme::Lmtp, _) => TlsPolicy::Never,
            (Scheme::Smtps, _) => TlsPolicy::Never,
            (Scheme::SmtpTls, _) | (_, Some(_)) => TlsPolicy::Required,
            (Scheme::Smtp, None) => TlsPolicy::Opportunistic,
        };
        let auth = match (&opts.auth, &plan.label) {
            (Some(table), Some(label)) => {
                let c = client_tls::credentials(&self.tables, table, label)
                    .map_err(|e| e.to_string())?;
                Some(Credentials::new(c.user, c.password.as_str()))
            }
            (Some(table), None) => {
                return Err(format!(
                    "auth <{table}> needs a label in the relay host (smtp+tls://label@host)"
                ))
            }
            (None, _) => None,
        };
        Ok(ClientConfig {
            helo,
            lmtp: plan.scheme == Scheme::Lmtp,
            tls,
            tls_active: plan.scheme == Scheme::Smtps,
            auth,
        })
    }

    /// `src <t>|ADDR`: the source address to connect from, of the same
    /// family as the destination.
    fn source_address(&self, opts: &RelayOptions, dest: IpAddr) -> Option<IpAddr> {
        let src = opts.src.as_deref()?;
        let candidates: Vec<IpAddr> = match self.tables.get(src.trim_matches(['<', '>'])) {
            Some(table) if src.starts_with('<') => table
                .entries()
                .filter_map(|(k, _)| k.parse().ok())
                .collect(),
            _ => src.parse().ok().into_iter().collect(),
        };
        let fitting: Vec<IpAddr> = candidates
            .into_iter()
            .filter(|a| a.is_ipv4() == dest.is_ipv4())
            .collect();
        if fitting.is_empty() {
            return None;
        }
        Some(fitting[rand::random::<usize>() % fitting.len()])
    }

    /// The EHLO name: `helo-src <t>` by source address, else `helo`,
    /// else the hostname.
    fn helo_for(&self, opts: &RelayOptions, source: Option<IpAddr>) -> String {
        if let (Some(t), Some(src)) = (&opts.helo_src, source) {
            if let Some(name) = self
                .tables
                .get(t)
                .and_then(|table| table.lookup(&src.to_string()).map(str::to_string))
            {
                return name;
            }
        }
        opts.helo.clone().unwrap_or_else(|| self.hostname.clone())
    }

    /// Closes idle connections that have waited long enough and forgets
    /// expired holds and unused limits; run periodically.
    pub async fn reap_idle(&self) {
        self.destinations.prune();
        for conn in self.pool.expired() {
            conn.close().await;
        }
    }
}
