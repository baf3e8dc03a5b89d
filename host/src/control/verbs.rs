//! What each control verb does in the running daemon. Every verb answers
//! with data ([`super::views`], [`super::format`] types); the client
//! decides how to print it.

use base64::Engine as _;
use tracing::{info, warn};

use super::format::{queue_entry, RunState};
use super::protocol::{Request, Response, Subject};
use super::server::Controller;
use super::views::{Done, FilterView, MessageView, Status};
use crate::envelope::EvpId;
use crate::scheduler::{now, Activity, Class, Selector};

impl Controller {
    pub async fn handle(&self, req: Request) -> Response {
        match self.answer(req).await {
            Ok(r) => r,
            Err(why) => Response::error(why),
        }
    }

    async fn answer(&self, req: Request) -> Result<Response, String> {
        let sched = &self.services.scheduler;
        Ok(match req {
            Request::ShowQueue => {
                let now = now();
                let entries: Vec<_> = sched
                    .list()
                    .await
                    .iter()
                    .map(|l| queue_entry(&l.envelope, run_state(l.activity), now))
                    .collect();
                Response::ok(entries)
            }
            Request::ShowEnvelope { id } => {
                let id = EvpId::parse(&id).ok_or_else(|| format!("invalid envelope id: {id}"))?;
                let listed = sched.list().await;
                match listed.into_iter().find(|l| l.envelope.id == id) {
                    Some(l) => Response::ok(l.envelope),
                    None => Response::ok(
                        self.services
                            .queue
                            .read_envelope(id)
                            .await
                            .map_err(|_| format!("no such envelope: {id}"))?,
                    ),
                }
            }
            Request::ShowMessage { id } => {
                let msgid = match Selector::parse(&id) {
                    Some(Selector::Message(m)) => m,
                    Some(Selector::Envelope(e)) => e.msgid(),
                    _ => return Err(format!("invalid message id: {id}")),
                };
                let content = self
                    .services
                    .queue
                    .read_message(msgid)
                    .await
                    .map_err(|_| format!("no such message: {msgid}"))?;
                Response::ok(MessageView {
                    msgid: msgid.to_string(),
                    content_b64: base64::engine::general_purpose::STANDARD.encode(content),
                })
            }
            Request::ShowStats => Response::ok(self.services.stats.snapshot()),
            Request::ShowStatus => Response::ok(self.status().await),
            Request::ShowFilters => Response::ok(self.filters()),
            Request::ShowRelays => Response::ok(
                self.relay
                    .as_ref()
                    .map(|r| r.report().0)
                    .unwrap_or_default(),
            ),
            Request::ShowHosts | Request::ShowRoutes => Response::ok(
                self.relay
                    .as_ref()
                    .map(|r| r.report().1)
                    .unwrap_or_default(),
            ),
            Request::Trace { subsystem } => {
                log_control()?
                    .trace(&subsystem, true)
                    .map_err(|e| e.to_string())?;
                Response::ok(Done::new(format!("tracing {subsystem}")))
            }
            Request::Untrace { subsystem } => {
                log_control()?
                    .trace(&subsystem, false)
                    .map_err(|e| e.to_string())?;
                Response::ok(Done::new(format!("no longer tracing {subsystem}")))
            }
            Request::LogVerbose | Request::LogBrief => {
                let verbose = req == Request::LogVerbose;
                log_control()?
                    .set_verbose(verbose)
                    .map_err(|e| e.to_string())?;
                Response::ok(Done::new(if verbose {
                    "logging verbosely"
                } else {
                    "logging briefly"
                }))
            }
            Request::Pause { what } => self.pause(what, true).await?,
            Request::Resume { what } => self.pause(what, false).await?,
            Request::Schedule { id } => {
                let sel = selector(&id)?;
                let n = sched.schedule(sel).await;
                if n == 0 && sel != Selector::All {
                    return Err(format!("no such envelope or message: {id}"));
                }
                Response::ok(Done::counted(n, format!("{n} envelope(s) scheduled")))
            }
            Request::Remove { id } => self.remove(&id).await?,
            Request::Discover { id } => {
                let (msgid, only) = match selector(&id)? {
                    Selector::Message(m) => (m, None),
                    Selector::Envelope(e) => (e.msgid(), Some(e)),
                    Selector::All => return Err("discover takes a message or envelope id".into()),
                };
                let envs: Vec<_> = self
                    .services
                    .queue
                    .read_envelopes(msgid)
                    .await
                    .map_err(|_| format!("no such message in the queue: {msgid}"))?
                    .into_iter()
                    .filter(|e| only.is_none_or(|id| e.id == id))
                    .collect();
                let n = sched.discover(envs).await;
                Response::ok(Done::counted(n, format!("{n} envelope(s) discovered")))
            }
            Request::UpdateTable { name } => {
                let tables = self.services.tables.clone();
                let n = name.clone();
                tokio::task::spawn_blocking(move || tables.reload(&n))
                    .await
                    .map_err(|e| format!("table update crashed: {e}"))?
                    .map_err(|e| e.to_string())?;
                info!("control: table \"{name}\" updated");
                Response::ok(Done::new(format!("table \"{name}\" updated")))
            }
            Request::ReloadFilter { name } => self.reload_filter(name).await?,
            // Handled by the connection before it gets here.
            Request::Enqueue => return Err("enqueue must be the first request".into()),
        })
    }

    async fn status(&self) -> Status {
        let paused = self.services.scheduler.status().await;
        let (verbose, traces) = crate::log::control()
            .map(|c| c.status())
            .unwrap_or_default();
        Status {
            mda: !paused.mda,
            mta: !paused.mta,
            smtp: !self.services.intake.is_paused(),
            verbose,
            traces,
        }
    }

    fn filters(&self) -> Vec<FilterView> {
        let Some(registry) = &self.services.filters else {
            return Vec::new();
        };
        let snapshot = serde_json::to_value(self.services.stats.snapshot()).unwrap_or_default();
        let now = std::time::Instant::now();
        registry
            .current()
            .filters
            .values()
            .map(|f| {
                let prefix = format!("filter.{}.", f.name);
                let stats = snapshot
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| {
                                k.strip_prefix(&prefix).map(|s| (s.to_string(), v.clone()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                FilterView {
                    name: f.name.clone(),
                    quarantined: f.quarantine.is_quarantined(now),
                    stats,
                }
            })
            .collect()
    }

    async fn pause(&self, what: Subject, on: bool) -> Result<Response, String> {
        let word = if on { "paused" } else { "resumed" };
        let class = match what {
            Subject::Mda => Class::Mda,
            Subject::Mta => Class::Mta,
            Subject::Smtp => {
                self.services.intake.pause(on);
                info!("control: smtp {word}");
                return Ok(Response::ok(Done::new(format!("smtp {word}"))));
            }
            Subject::Envelope(id) => {
                let sel = selector(&id)?;
                let n = self.services.scheduler.suspend(sel, on).await;
                return Ok(Response::ok(Done::counted(
                    n,
                    format!("{n} envelope(s) {word}"),
                )));
            }
        };
        self.services.scheduler.pause(class, on).await;
        let name = if class == Class::Mda { "mda" } else { "mta" };
        info!("control: {name} {word}");
        Ok(Response::ok(Done::new(format!("{name} {word}"))))
    }

    async fn remove(&self, id: &str) -> Result<Response, String> {
        let sel = selector(id)?;
        let ids = self.services.scheduler.remove(sel).await;
        if ids.is_empty() && sel != Selector::All {
            return Err(format!("no such envelope or message: {id}"));
        }
        let mut removed = 0;
        for evpid in &ids {
            match self.services.queue.remove_envelope(*evpid).await {
                Ok(()) | Err(crate::queue::QueueError::NotFound(_)) => {
                    removed += 1;
                    info!("control: envelope {evpid} removed");
                }
                Err(e) => {
                    // Still on disk: put it back in the schedule rather
                    // than leave it untried until a restart.
                    warn!("control: cannot remove envelope {evpid}: {e}");
                    if let Ok(env) = self.services.queue.read_envelope(*evpid).await {
                        self.services.scheduler.insert(vec![env]);
                    }
                }
            }
        }
        let keys = (
            super::format::monitor::keys::ENVELOPE_REMOVED,
            super::format::monitor::keys::ENVELOPE_DEQUEUED,
        );
        self.services.stats.counter(keys.0).add(removed as u64);
        self.services.stats.counter(keys.1).add(removed as u64);
        Ok(Response::ok(Done::counted(
            removed,
            format!("{removed} envelope(s) removed"),
        )))
    }

    async fn reload_filter(&self, name: String) -> Result<Response, String> {
        let Some(registry) = self.services.filters.clone() else {
            return Err("no filters are configured".into());
        };
        let only = (name != "all").then_some(name.clone());
        if let Some(n) = &only {
            if registry.get(n).is_none() {
                return Err(format!("no such filter: {n}"));
            }
        }
        let (replaced, failures) =
            tokio::task::spawn_blocking(move || registry.reload_only(only.as_deref()))
                .await
                .map_err(|e| format!("reload crashed: {e}"))?;
        if let Some(first) = failures.first() {
            return Err(format!(
                "{} filter(s) failed to reload and keep running their old code: {first}",
                failures.len()
            ));
        }
        Ok(Response::ok(Done::counted(
            replaced,
            format!("{replaced} filter(s) reloaded"),
        )))
    }
}

fn run_state(a: Activity) -> RunState {
    match a {
        Activity::Pending => RunState::Pending,
        Activity::Inflight => RunState::Inflight,
        Activity::Suspended => RunState::Suspended,
        Activity::Held => RunState::Held,
    }
}

fn selector(id: &str) -> Result<Selector, String> {
    Selector::parse(id)
        .ok_or_else(|| format!("invalid id: {id} (want all, a message id or an envelope id)"))
}

fn log_control() -> Result<&'static crate::log::LogControl, String> {
    crate::log::control().ok_or_else(|| "logging is not under the daemon's control".to_string())
}
