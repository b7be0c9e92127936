//! [`Driver`]: a worker stepped by hand instead of running on its own thread, so that whole
//! endpoints (routing, handshakes, Retry, CID rotation, shutdown, applications) run on
//! virtual time, deterministically, in tests and simulations.

use std::time::Instant;

use peregrine_datapath::Queue;

use super::{Worker, WorkerStats};

/// What a [`Driver`] needs from the worker it wraps, whatever its queue type.
trait Step {
    fn turn(&mut self, now: Instant);
    fn next_wakeup(&self, now: Instant) -> Option<Instant>;
    fn stats(&self) -> WorkerStats;
    fn stopped(&self) -> bool;
    fn stop_now(&mut self);
}

impl<Q: Queue> Step for Worker<Q> {
    fn turn(&mut self, now: Instant) {
        if !self.stop {
            Worker::turn(self, now);
        }
        if self.stop {
            self.stop_now();
        }
    }
    fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        Worker::next_wakeup(self, now)
    }
    fn stats(&self) -> WorkerStats {
        self.stats.clone()
    }
    fn stopped(&self) -> bool {
        self.stop
    }
    fn stop_now(&mut self) {
        self.stop = true;
        self.shutdown_now();
        self.publish();
    }
}

/// One worker of an endpoint made with `api::Endpoint::manual`: nothing happens until the
/// owner calls [`Driver::turn`] with the time, which does what one iteration of a worker
/// thread does (receive, commands, timers, applications, flush, transmit) without sleeping.
/// Handles (`api::Connection`, streams) work as with threads: their commands wait in the
/// worker's inbox for the next turn. Dropping the driver stops the worker (what it owned is
/// cancelled, as when an endpoint is dropped).
pub struct Driver {
    worker: Box<dyn Step>,
    index: usize,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("index", &self.index).finish_non_exhaustive()
    }
}

impl Driver {
    pub(crate) fn new<Q: Queue + 'static>(worker: Worker<Q>) -> Self {
        let index = worker.index;
        Self { worker: Box::new(worker), index }
    }

    /// The worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// One turn at `now` (never earlier than the previous turn's `now`).
    pub fn turn(&mut self, now: Instant) {
        self.worker.turn(now);
    }

    /// When the next turn is needed if nothing arrives: `now` when work is pending (commands,
    /// datagrams to send, events), else the earliest timer; `None`: nothing scheduled.
    /// Arrivals on the queue are the caller's to watch (the simulated network's
    /// `next_event`).
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        self.worker.next_wakeup(now)
    }

    /// The worker's counters as of its last turn.
    pub fn stats(&self) -> WorkerStats {
        self.worker.stats()
    }

    /// Whether the worker stopped (its endpoint was dropped).
    pub fn is_stopped(&self) -> bool {
        self.worker.stopped()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.worker.stopped() {
            self.worker.stop_now();
        }
    }
}
