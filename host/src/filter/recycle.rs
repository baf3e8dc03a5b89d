//! Finished instances waiting for the next session of the same tenant.
//!
//! Starting an instance and tearing it down is most of what a filter
//! costs a short session (measured in the daemon: ~50 µs of CPU each,
//! against ~1 µs per phase call). A filter that declares itself
//! `reusable` promises to start afresh when `host-session.serial` moves
//! on, so once a session is done with its instance, cleanly, the next
//! session of the same tenant may take it over (Postfix's `max_use` for
//! its long-lived processes).
//! Instances never cross tenants: an instance belongs to the tenant it
//! first served. They never serve two sessions at once, and an instance
//! that failed, was cut off in a call, grew its memory past
//! [`MAX_RECYCLED_MEMORY`] or served `max-use` sessions is dropped
//! instead.

use std::sync::Mutex;

use super::instance::Instance;

/// Idle instances one filter keeps, over all tenants: enough for the
/// sessions ending while others start under a steady load. The engine's
/// pool has room for them on top of one instance per session and filter.
pub const IDLE_PER_FILTER: usize = 16;

/// An instance whose memory grew past this is not kept: an idle instance
/// holds its memory, and a filter leaking from session to session would
/// otherwise carry the leak on until its memory cap.
pub const MAX_RECYCLED_MEMORY: usize = 8 << 20;

/// One filter version's idle instances, with the tenant (listener tag)
/// each belongs to.
#[derive(Default)]
pub struct IdleInstances {
    idle: Mutex<Vec<(Option<String>, Box<Instance>)>>,
}

impl IdleInstances {
    /// The most recently parked instance of `tenant` (its memory is the
    /// likeliest to still be in the caches), if any.
    pub fn take(&self, tenant: Option<&str>) -> Option<Box<Instance>> {
        let mut idle = self.lock();
        let i = idle.iter().rposition(|(t, _)| t.as_deref() == tenant)?;
        Some(idle.remove(i).1)
    }

    /// Parks an instance for the next session of `tenant`; when the list
    /// is full the oldest goes. Instances are dropped outside the lock:
    /// tearing one down takes a while.
    pub fn park(&self, tenant: Option<String>, instance: Box<Instance>) {
        let evicted = {
            let mut idle = self.lock();
            let evicted = (idle.len() >= IDLE_PER_FILTER).then(|| idle.remove(0));
            idle.push((tenant, instance));
            evicted
        };
        drop(evicted);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Option<String>, Box<Instance>)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
