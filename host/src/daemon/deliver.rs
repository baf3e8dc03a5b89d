//! The daemon's [`Deliver`]: turns a due envelope into a local delivery
//! job (or, later, a relay attempt) and composes bounces.

use std::sync::Arc;

use tracing::{info, warn};

use crate::config::format::{self, FormatContext};
use crate::config::model::{Action, Config, Method};
use crate::envelope::{Envelope, EnvelopeKind, EvpId, LocalTarget};
use crate::lka::resolve::{Refusal, Resolver};
use crate::lka::rules::MatchContext;
use crate::mailaddr::MailAddr;
use crate::mda::{self, JobMethod, LocalJob, Outcome};
use crate::mta::relay::RelayService;
use crate::privsep::JobRunner;
use crate::queue::Queue;
use crate::scheduler::{bounce, Deliver, Notice};
use crate::table::Tables;

pub struct Delivery {
    pub config: Arc<Config>,
    pub tables: Arc<Tables>,
    pub queue: Queue,
    pub hostname: String,
    pub local_domains: Vec<String>,
    /// Runs local jobs: in process, or as their user via the broker.
    pub runner: JobRunner,
    /// Relays to other hosts; `None` when no resolver could be set up.
    pub relay: Option<Arc<RelayService>>,
}

impl Deliver for Delivery {
    async fn deliver(&self, env: &Envelope) -> Outcome {
        if env.kind == EnvelopeKind::Mta {
            let mut outcomes = self.relay(std::slice::from_ref(env)).await;
            return outcomes.pop().unwrap_or_else(|| {
                Outcome::TempFail("the relay gave no result for this recipient".into())
            });
        }
        let Some(action) = self.config.actions.get(&env.action) else {
            // A config edit may bring it back: never bounce for that.
            return Outcome::TempFail(format!("action \"{}\" no longer exists", env.action));
        };
        let content = match self.queue.read_message(env.msgid()).await {
            Ok(c) => Arc::new(c),
            Err(err) => return Outcome::TempFail(format!("cannot read message: {err}")),
        };
        if crate::loops::delivered_to(&content, &env.dest.to_string()) {
            return Outcome::PermFail("554 5.4.6 Mail loop detected".into());
        }
        match self.local_delivery(env, action, content).await {
            Ok(outcome) => outcome,
            Err(outcome) => outcome,
        }
    }

    /// Relayed recipients of one message for one domain through one
    /// action share a transaction.
    fn batch_key(&self, env: &Envelope) -> Option<String> {
        (env.kind == EnvelopeKind::Mta)
            .then(|| format!("{}/{}", env.action, env.dest.domain.to_ascii_lowercase()))
    }

    async fn deliver_batch(&self, envs: &[Envelope]) -> Vec<Outcome> {
        if envs.iter().all(|e| e.kind == EnvelopeKind::Mta) {
            return self.relay(envs).await;
        }
        let mut outcomes = Vec::with_capacity(envs.len());
        for env in envs {
            outcomes.push(self.deliver(env).await);
        }
        outcomes
    }

    fn held_until(&self, env: &Envelope) -> Option<i64> {
        if env.kind != EnvelopeKind::Mta {
            return None;
        }
        let relay = self.relay.as_ref()?;
        match &self.config.actions.get(&env.action)?.method {
            Method::Relay(opts) => relay.held_until(opts, &env.dest.domain),
            _ => None,
        }
    }

    fn logs_itself(&self, env: &Envelope) -> bool {
        env.kind == EnvelopeKind::Mta
    }

    async fn bounce(&self, failed: &[Envelope], notice: Notice) -> Result<Vec<Envelope>, String> {
        self.compose_bounce(failed, notice).await
    }

    fn method_name(&self, env: &Envelope) -> String {
        match (
            &env.target,
            self.config.actions.get(&env.action).map(|a| &a.method),
        ) {
            (Some(LocalTarget::File { .. }), _) => "file".into(),
            (Some(LocalTarget::Command { .. }), _) => "mda".into(),
            (_, Some(Method::Maildir { .. })) => "maildir".into(),
            (_, Some(Method::Mbox)) => "mbox".into(),
            (_, Some(Method::Lmtp { .. })) => "lmtp".into(),
            (_, Some(Method::Mda { .. })) => "mda".into(),
            (_, Some(Method::Relay(_))) => "relay".into(),
            _ => "unknown".into(),
        }
    }
}

impl Delivery {
    /// Envelopes of one message for one relay destination.
    async fn relay(&self, envs: &[Envelope]) -> Vec<Outcome> {
        let Some(first) = envs.first() else {
            return Vec::new();
        };
        let fail = |o: Outcome| vec![o; envs.len()];
        let Some(relay) = &self.relay else {
            return fail(Outcome::TempFail("no DNS resolver for relaying".into()));
        };
        let Some(action) = self.config.actions.get(&first.action) else {
            return fail(Outcome::TempFail(format!(
                "action \"{}\" no longer exists",
                first.action
            )));
        };
        let Method::Relay(opts) = &action.method else {
            return fail(Outcome::TempFail(format!(
                "action \"{}\" no longer relays",
                first.action
            )));
        };
        let content = match self.queue.read_message(first.msgid()).await {
            Ok(c) => Arc::new(c),
            Err(err) => return fail(Outcome::TempFail(format!("cannot read message: {err}"))),
        };
        relay.relay(&action.name, opts, envs, content).await
    }
}

fn sender_of(env: &Envelope) -> String {
    crate::mailaddr::display_sender(env.sender.as_ref())
}

impl Delivery {
    async fn local_delivery(
        &self,
        env: &Envelope,
        action: &Action,
        content: Arc<Vec<u8>>,
    ) -> Result<Outcome, Outcome> {
        let target = env
            .target
            .as_ref()
            .ok_or_else(|| Outcome::PermFail("envelope has no local target".into()))?;
        let (username, uid, gid, home) = match target {
            LocalTarget::User {
                username,
                uid,
                gid,
                home,
            }
            | LocalTarget::File {
                user: username,
                uid,
                gid,
                home,
                ..
            }
            | LocalTarget::Command {
                user: username,
                uid,
                gid,
                home,
                ..
            } => (username.clone(), *uid, *gid, home.clone()),
        };
        let ctx = FormatContext {
            sender: env.sender.clone(),
            rcpt: env.rcpt.clone(),
            dest: env.dest.clone(),
            user_username: username.clone(),
            user_directory: home.clone(),
            mda: String::new(),
            sub_addr_delim: self.config.smtp.sub_addr_delim,
        };
        let expand = |template: &str| {
            format::expand(template, &ctx).map_err(|e| {
                Outcome::PermFail(format!("bad format in action \"{}\": {e}", action.name))
            })
        };
        let method = match target {
            LocalTarget::File { path, .. } => JobMethod::Mbox { path: path.into() },
            LocalTarget::Command { command, .. } => JobMethod::Command {
                argv: self.command_argv(command, &expand)?,
                env: mda_environment(env, &username, &home),
                cwd: Some(home.clone().into()),
            },
            LocalTarget::User { .. } => match &action.method {
                Method::Maildir { path, junk } => {
                    let path = match path {
                        Some(p) => expand(p)?,
                        None => format!("{home}/Maildir"),
                    };
                    JobMethod::Maildir {
                        path: path.into(),
                        junk: *junk && env.junk,
                    }
                }
                Method::Mbox => JobMethod::Mbox {
                    path: format!("/var/mail/{username}").into(),
                },
                Method::Mda { command } => JobMethod::Command {
                    argv: self.command_argv(command, &expand)?,
                    env: mda_environment(env, &username, &home),
                    cwd: Some(home.clone().into()),
                },
                Method::Lmtp { dest, rcpt_to } => {
                    let rcpt = if *rcpt_to {
                        env.rcpt.clone()
                    } else {
                        env.dest.clone()
                    };
                    return Ok(self.lmtp(dest, env, rcpt, &content).await);
                }
                Method::ForwardOnly | Method::ExpandOnly | Method::Relay(_) => {
                    return Err(Outcome::PermFail("action cannot deliver locally".into()))
                }
            },
        };
        let job = LocalJob {
            method,
            uid,
            gid,
            sender: env.sender.clone(),
        };
        Ok(self.runner.run(job, content).await)
    }

    fn command_argv(
        &self,
        command: &str,
        expand: &impl Fn(&str) -> Result<String, Outcome>,
    ) -> Result<Vec<String>, Outcome> {
        // Split first, expand each word after: an envelope value can only
        // ever be (part of) one argument, never new syntax.
        let words = mda::split_command(command)
            .map_err(|e| Outcome::PermFail(format!("bad mda command: {e}")))?;
        words.iter().map(|w| expand(w)).collect()
    }

    async fn lmtp(&self, dest: &str, env: &Envelope, rcpt: MailAddr, content: &[u8]) -> Outcome {
        match mda::deliver_lmtp(dest, &self.hostname, env.sender.as_ref(), &[rcpt], content).await {
            Ok(mut outcomes) if !outcomes.is_empty() => outcomes.swap_remove(0),
            Ok(_) => Outcome::TempFail("LMTP server gave no reply for the recipient".into()),
            Err(err) if err.is_temporary() => Outcome::TempFail(err.to_string()),
            Err(err) => Outcome::PermFail(err.to_string()),
        }
    }

    async fn compose_bounce(
        &self,
        all: &[Envelope],
        notice: Notice,
    ) -> Result<Vec<Envelope>, String> {
        let Some(failed) = all.first() else {
            return Ok(Vec::new());
        };
        let Some(to) = failed.sender.clone() else {
            return Ok(Vec::new());
        };
        let original = match self.queue.read_message(failed.msgid()).await {
            Ok(m) => m,
            // Unreadable for good: the bounce goes without the copy.
            Err(crate::queue::QueueError::Corrupt { .. }) => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        let now = chrono::Utc::now();
        let content = bounce::compose(
            &self.hostname,
            notice,
            &all.iter().collect::<Vec<_>>(),
            &original,
            rand::random(),
            now,
        );
        let ctx = MatchContext {
            socket: true,
            rcpt: Some(&to),
            local_domains: &self.local_domains,
            ..Default::default()
        };
        let resolved = match (Resolver {
            config: &self.config,
            tables: &self.tables,
        })
        .resolve(&ctx)
        {
            Ok(r) => r,
            Err(refusal @ Refusal::Temporary(_)) => return Err(refusal.to_string()),
            Err(refusal) => {
                // Nowhere to send it, now or later: say so and let it go.
                warn!(
                    "bounce: no route for the bounce of {} to <{to}>: {refusal}",
                    failed.id
                );
                return Ok(Vec::new());
            }
        };
        let msgid = self.queue.new_msgid();
        let ts = now.timestamp();
        let expire = ts + failed.expire.saturating_sub(failed.created).max(0);
        let envs: Vec<Envelope> = resolved
            .into_iter()
            .map(|r| Envelope {
                id: EvpId::new_in(msgid),
                kind: r.kind,
                action: r.action,
                sender: None,
                rcpt: to.clone(),
                dest: r.dest,
                target: r.target,
                dsn: Default::default(),
                tag: None,
                helo: self.hostname.clone(),
                peer: None,
                peer_name: "localhost".into(),
                hostname: self.hostname.clone(),
                auth_user: None,
                created: ts,
                expire,
                tries: 0,
                last_try: 0,
                next_try: ts,
                last_error: None,
                bounce_reason: None,
                warnings: 0,
                junk: false,
            })
            .collect();
        self.queue
            .commit(msgid, content, envs.clone())
            .await
            .map_err(|e| e.to_string())?;
        let what = match notice {
            Notice::Failed => "bounce",
            Notice::Delayed => "delay warning",
        };
        let ids: Vec<String> = all.iter().map(|e| e.id.to_string()).collect();
        info!(
            "bounce: Queued {what} {} for <{}> about envelope{} {}",
            msgid,
            to,
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", ")
        );
        Ok(envs)
    }
}

/// The environment OpenSMTPD gives MDA commands (smtpd.conf(5)).
fn mda_environment(env: &Envelope, user: &str, home: &str) -> Vec<(String, String)> {
    let ext = env
        .dest
        .local
        .split_once('+')
        .map(|(_, e)| e.to_string())
        .unwrap_or_default();
    vec![
        ("DOMAIN".into(), env.dest.domain.clone()),
        ("EXTENSION".into(), ext),
        ("HOME".into(), home.to_string()),
        ("LOCAL".into(), env.dest.local.clone()),
        ("LOGNAME".into(), user.to_string()),
        ("ORIGINAL_RECIPIENT".into(), env.rcpt.to_string()),
        (
            "PATH".into(),
            "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin".into(),
        ),
        ("RECIPIENT".into(), env.dest.to_string()),
        ("SENDER".into(), sender_of(env)),
        ("SHELL".into(), "/bin/sh".into()),
        ("USER".into(), user.to_string()),
    ]
}
