//! A thread cache for blocking per-stream work: a job goes to an idle thread at once, or to a
//! new thread when none is idle, so a long job (a perf download) never delays another, and a
//! request/response workload stops paying a thread spawn per stream.

// Idle threads wait for work with a wall-clock timeout.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};

/// A unit of work.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long an idle thread waits for a job before it exits.
pub const IDLE_EXIT: Duration = Duration::from_secs(2);

/// See the module documentation. Cloning shares the cache.
#[derive(Clone)]
pub struct ThreadCache {
    /// A rendezvous channel: `try_send` succeeds only when a thread is waiting in `recv`.
    tx: Sender<Job>,
    rx: Receiver<Job>,
    name: &'static str,
    live: Arc<AtomicUsize>,
    idle: Arc<AtomicUsize>,
}

impl ThreadCache {
    /// An empty cache; threads are named `name`.
    pub fn new(name: &'static str) -> Self {
        let (tx, rx) = bounded(0);
        let (live, idle) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        Self { tx, rx, name, live, idle }
    }

    /// Runs `job` on an idle thread, or on a new one. Errors only when no thread could be
    /// started (the job is dropped).
    pub fn spawn(&self, job: Job) -> std::io::Result<()> {
        let job = match self.tx.try_send(job) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => j,
        };
        let rx = self.rx.clone();
        let (live, idle) = (self.live.clone(), self.idle.clone());
        live.fetch_add(1, Ordering::Relaxed);
        let started = std::thread::Builder::new().name(self.name.into()).spawn(move || {
            job();
            loop {
                idle.fetch_add(1, Ordering::Relaxed);
                let next = rx.recv_timeout(IDLE_EXIT);
                idle.fetch_sub(1, Ordering::Relaxed);
                match next {
                    Ok(job) => job(),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            live.fetch_sub(1, Ordering::Relaxed);
        });
        started.map(drop).inspect_err(|_| {
            self.live.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Threads alive now (busy or idle).
    pub fn threads(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Threads waiting for a job now.
    pub fn idle(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    fn wait_idle(cache: &ThreadCache, n: usize) {
        let end = Instant::now() + Duration::from_secs(5);
        while cache.idle() < n {
            assert!(Instant::now() < end, "no thread went idle");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn idle_threads_are_reused_and_long_jobs_do_not_block_others() {
        let cache = ThreadCache::new("test-cache");
        let (tx, rx) = mpsc::channel();
        // A job that blocks until released must not hold up the next ones.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let t = tx.clone();
        cache
            .spawn(Box::new(move || {
                let _ = release_rx.recv();
                t.send("long").unwrap();
            }))
            .unwrap();
        for _ in 0..50 {
            let t = tx.clone();
            cache.spawn(Box::new(move || t.send("short").unwrap())).unwrap();
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "short");
            wait_idle(&cache, 1);
        }
        // The blocked job's thread plus one thread reused for all 50 short jobs.
        assert_eq!(cache.threads(), 2);
        release_tx.send(()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "long");
        wait_idle(&cache, 2);
        // With two idle threads, two blocking jobs at once both run.
        let (go_tx, go_rx) = crossbeam::channel::unbounded::<()>();
        for _ in 0..3 {
            let (t, g) = (tx.clone(), go_rx.clone());
            cache
                .spawn(Box::new(move || {
                    t.send("started").unwrap();
                    let _ = g.recv();
                }))
                .unwrap();
        }
        for _ in 0..3 {
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "started");
        }
        assert_eq!(cache.threads(), 3, "two reused, one new");
        drop(go_tx);
    }
}
