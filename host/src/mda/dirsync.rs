//! Group commit for directory fsyncs: concurrent deliveries into one
//! maildir share the fsync of its `new/`.
//!
//! A delivery is durable once its link in `new/` is; fsyncing `new/` once
//! per delivery costs a disk flush each. Here a delivery that needs `new/`
//! synced registers after its link; whoever finds no fsync running starts
//! one covering every link registered so far, and the others wait for it
//! (or the next one) instead of issuing their own — the same idea as the
//! queue's committer, without a thread.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Shared by all deliveries of one process.
#[derive(Default)]
pub struct DirSyncer {
    dirs: Mutex<HashMap<PathBuf, Arc<DirState>>>,
}

#[derive(Default)]
struct DirState {
    gen: Mutex<Generations>,
    done: Condvar,
}

#[derive(Default)]
struct Generations {
    /// Syncs asked for so far (each after its caller's change).
    requested: u64,
    /// Every request up to this one is covered by a finished fsync.
    synced: u64,
    running: bool,
}

impl DirSyncer {
    pub fn new() -> DirSyncer {
        DirSyncer::default()
    }

    /// Returns once an fsync of `dir` that started after this call began
    /// has succeeded: every change made to `dir` before the call is durable.
    pub fn sync(&self, dir: &Path) -> io::Result<()> {
        let state = self.state(dir);
        let mut gen = lock(&state.gen);
        gen.requested += 1;
        let mine = gen.requested;
        loop {
            if gen.synced >= mine {
                return Ok(());
            }
            if gen.running {
                gen = state.done.wait(gen).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Lead: this fsync covers every request made until now.
            gen.running = true;
            let covers = gen.requested;
            drop(gen);
            let result = File::open(dir).and_then(|d| d.sync_all());
            gen = lock(&state.gen);
            gen.running = false;
            if result.is_ok() {
                gen.synced = gen.synced.max(covers);
            }
            state.done.notify_all();
            // On failure each waiter retries as a leader and sees the error
            // itself, so none is told its mail is safe when it is not.
            result?;
        }
    }

    fn state(&self, dir: &Path) -> Arc<DirState> {
        lock(&self.dirs)
            .entry(dir.to_path_buf())
            .or_default()
            .clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_syncs_all_return_ok_and_share_work() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Arc::new(DirSyncer::new());
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (s, d) = (syncer.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    std::fs::write(d.join(format!("f{i}")), b"x").unwrap();
                    s.sync(&d)
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
    }

    #[test]
    fn a_missing_directory_is_an_error_for_the_caller() {
        let syncer = DirSyncer::new();
        assert!(syncer.sync(Path::new("/nonexistent/wasmtpd-test")).is_err());
        // And the state is not wedged: a later sync of a real dir works.
        let dir = tempfile::tempdir().unwrap();
        syncer.sync(dir.path()).unwrap();
    }
}
