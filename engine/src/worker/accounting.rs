//! Idempotent connection accounting for graceful shutdown (DESIGN.md invariant 3): the live
//! connection count and the "shutting down" bit share one atomic word, so "drained" is
//! signalled exactly once, no connection can be added after it, and no decrement underflows.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::handoff::WakingCell;

/// The "shutting down" bit; the low bits count live connections.
const SHUTDOWN: u64 = 1 << 63;

/// Live connections and the drained signal of one endpoint.
#[derive(Debug)]
pub(crate) struct Accounting {
    word: AtomicU64,
    /// Times "drained" was signalled (must end at exactly 1 after a shutdown).
    pub drained_signals: AtomicU64,
    /// Decrements that found the count at zero (must stay 0).
    pub underflows: AtomicU64,
    /// Connections ever added.
    pub opened_total: AtomicU64,
    /// Connections ever removed.
    pub closed_total: AtomicU64,
    /// Set once drained; waiters watch it.
    pub drained: WakingCell<bool>,
}

impl Default for Accounting {
    fn default() -> Self {
        Self {
            word: AtomicU64::new(0),
            drained_signals: AtomicU64::new(0),
            underflows: AtomicU64::new(0),
            opened_total: AtomicU64::new(0),
            closed_total: AtomicU64::new(0),
            drained: WakingCell::new(false),
        }
    }
}

impl Accounting {
    /// Counts a new connection; false (and nothing counted) once shutdown began.
    pub(crate) fn open(&self) -> bool {
        let r = self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            (w & SHUTDOWN == 0).then_some(w + 1)
        });
        if r.is_ok() {
            self.opened_total.fetch_add(1, Ordering::Relaxed);
        }
        r.is_ok()
    }

    /// Counts a connection gone (call once per connection, when its state is dropped).
    pub(crate) fn close(&self) {
        let r = self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            (w & !SHUTDOWN > 0).then_some(w - 1)
        });
        match r {
            Ok(prev) => {
                self.closed_total.fetch_add(1, Ordering::Relaxed);
                if prev == SHUTDOWN | 1 {
                    self.signal();
                }
            }
            Err(_) => {
                self.underflows.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Begins shutdown (idempotent): no connection is added afterwards; "drained" is signalled
    /// now if none is live, else when the last one goes.
    pub(crate) fn begin_shutdown(&self) {
        let prev = self.word.fetch_or(SHUTDOWN, Ordering::AcqRel);
        if prev == 0 {
            self.signal();
        }
    }

    /// Whether shutdown began.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.word.load(Ordering::Acquire) & SHUTDOWN != 0
    }

    /// Live connections.
    pub(crate) fn live(&self) -> u64 {
        self.word.load(Ordering::Acquire) & !SHUTDOWN
    }

    fn signal(&self) {
        // Reached only by the one transition to "shut down with zero live": exactly once.
        self.drained_signals.fetch_add(1, Ordering::AcqRel);
        self.drained.update(|d| *d = true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn drained_once_under_concurrent_close() {
        let a = Arc::new(Accounting::default());
        for _ in 0..4000 {
            assert!(a.open());
        }
        a.begin_shutdown();
        a.begin_shutdown();
        assert!(!a.open());
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        a.close();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        a.close();
        assert_eq!(a.drained_signals.load(Ordering::Relaxed), 1);
        assert_eq!(a.underflows.load(Ordering::Relaxed), 1);
        assert_eq!(a.live(), 0);
        assert!(a.drained.with(|d| *d));
    }

    #[test]
    fn shutdown_with_none_live_signals_at_once() {
        let a = Accounting::default();
        a.begin_shutdown();
        assert_eq!(a.drained_signals.load(Ordering::Relaxed), 1);
    }
}
