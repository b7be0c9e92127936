//! A locked cell the owner worker fills and handles wait on, with `std::task::Waker`s for
//! async callers (the blocking API parks a thread on the same wakers).
//!
//! The mutex inside a [`WakingCell`] guards the cell only — never connection state. The worker
//! holds it for a few instructions (push a chunk, set a result) and never across I/O; wakers
//! are called after it is released, so no lock is held across a call into application code.

use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

struct Inner<T> {
    value: T,
    wakers: Vec<Waker>,
}

/// A value shared between the owner worker and handles, with wake-ups on change.
pub(crate) struct WakingCell<T> {
    inner: Mutex<Inner<T>>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for WakingCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakingCell").field("value", &self.lock().value).finish()
    }
}

impl<T> WakingCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self { inner: Mutex::new(Inner { value, wakers: Vec::new() }) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic elsewhere while holding this lock left a plain value behind: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads or changes the value without waking anyone.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock().value)
    }

    /// Changes the value and wakes every waiter (after releasing the lock).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let (r, wakers) = {
            let mut g = self.lock();
            let r = f(&mut g.value);
            (r, std::mem::take(&mut g.wakers))
        };
        for w in wakers {
            w.wake();
        }
        r
    }

    /// Polls `f` against the value; when it yields nothing, registers the task's waker under
    /// the same lock (no lost wake-up) and returns `Pending`.
    pub(crate) fn poll<R>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut T) -> Option<R>,
    ) -> Poll<R> {
        let mut g = self.lock();
        if let Some(r) = f(&mut g.value) {
            return Poll::Ready(r);
        }
        if !g.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            g.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
