//! Whole endpoints on the simulated network, on virtual time: [`SimRuntime`] binds endpoints
//! to [`SimNetwork`] ports, steps their workers ([`Driver`]s) and moves the network's clock
//! straight to the next thing that happens (a datagram arriving, a timer). Routing, Retry,
//! connection ID rotation, stateless resets, migration, shutdown and applications — handles
//! and handlers alike — run deterministically for a seed, in milliseconds of wall time, with
//! no thread and no sleep.
//!
//! ```
//! use std::time::Duration;
//! use peregrine_engine::sim::SimRuntime;
//!
//! let mut rt = SimRuntime::new(7);
//! let t0 = rt.now();
//! rt.run_for(Duration::from_secs(2)); // nothing bound: time just moves
//! assert_eq!(rt.now() - t0, Duration::from_secs(2));
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use peregrine_datapath::sim::SimNetwork;

use crate::api::{Endpoint, EndpointConfig};
use crate::worker::Driver;

/// Turns taken at one instant before the clock is nudged forward by a microsecond (a worker
/// that keeps asking for another turn at once, e.g. with its transmit pool exhausted, must not
/// stall virtual time).
const MAX_TURNS_AT_ONE_INSTANT: u32 = 256;

/// Endpoints on one simulated network, stepped on its virtual time. See the module
/// documentation.
pub struct SimRuntime {
    net: SimNetwork,
    drivers: Vec<Driver>,
    same_instant: u32,
}

impl std::fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRuntime")
            .field("elapsed", &self.net.elapsed())
            .field("workers", &self.drivers.len())
            .finish()
    }
}

impl SimRuntime {
    /// A runtime on a new simulated network seeded with `seed` (links are ideal until
    /// configured through [`SimRuntime::network`]).
    pub fn new(seed: u64) -> Self {
        Self::with_network(SimNetwork::new(seed))
    }

    /// A runtime on `net`.
    pub fn with_network(net: SimNetwork) -> Self {
        Self { net, drivers: Vec::new(), same_instant: 0 }
    }

    /// The network (links, faults, rebinding, traces).
    pub fn network(&self) -> &SimNetwork {
        &self.net
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// An endpoint with one worker per address in `addrs` (ports of the simulated network),
    /// stepped by this runtime. Its seed defaults to one derived from the network's, so runs
    /// repeat.
    pub fn endpoint(
        &mut self,
        addrs: &[SocketAddr],
        mut config: EndpointConfig,
    ) -> std::io::Result<Endpoint> {
        let queues = addrs
            .iter()
            .map(|a| self.net.bind(*a).map_err(std::io::Error::other))
            .collect::<Result<Vec<_>, _>>()?;
        if config.seed.is_none() {
            config.seed = Some(self.net.seed() ^ (self.drivers.len() as u64).wrapping_mul(0x9e37));
        }
        let clock = Arc::new(self.net.clone());
        let (ep, drivers) = Endpoint::manual(queues, config, clock)?;
        self.drivers.extend(drivers);
        Ok(ep)
    }

    /// Counters of every worker of every endpoint, in creation order.
    pub fn worker_stats(&self) -> Vec<crate::worker::WorkerStats> {
        self.drivers.iter().map(Driver::stats).collect()
    }

    /// One step: every worker takes a turn at the current virtual time, then the clock moves
    /// to the next thing due (a worker's timer or wish for another turn, a datagram's
    /// arrival). Returns false when nothing at all is scheduled (the clock did not move).
    pub fn step(&mut self) -> bool {
        self.step_before(None)
    }

    /// [`Self::step`], moving the clock no further than `limit`.
    fn step_before(&mut self, limit: Option<Instant>) -> bool {
        let now = self.net.now();
        for d in &mut self.drivers {
            d.turn(now);
        }
        self.drivers.retain(|d| !d.is_stopped());
        let mut next = self.net.next_event();
        for d in &self.drivers {
            if let Some(t) = d.next_wakeup(now) {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        }
        let Some(mut next) = next else {
            if let Some(l) = limit {
                self.net.advance_to(l);
            }
            return false;
        };
        if next <= now {
            self.same_instant += 1;
            if self.same_instant < MAX_TURNS_AT_ONE_INSTANT {
                return true;
            }
            next = now + Duration::from_micros(1);
        }
        self.same_instant = 0;
        self.net.advance_to(limit.map_or(next, |l| l.min(next)));
        true
    }

    /// Steps until virtual time passed `d`: the clock ends exactly `d` later.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.net.now() + d;
        while self.net.now() < end {
            self.step_before(Some(end));
        }
    }

    /// Steps until `fut` resolves (polling it between steps) or `limit` of virtual time
    /// passed (`None`). The future may use the async handle API of the runtime's endpoints.
    pub fn run_until<F: Future>(&mut self, fut: F, limit: Duration) -> Option<F::Output> {
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        let end = self.net.now() + limit;
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return Some(v);
            }
            if self.net.now() >= end {
                return None;
            }
            self.step_before(Some(end));
        }
    }

    /// Steps until `f` returns true (checked between steps) or `limit` of virtual time
    /// passed; whether it did.
    pub fn wait_for(&mut self, limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = self.net.now() + limit;
        loop {
            if f() {
                return true;
            }
            if self.net.now() >= end {
                return false;
            }
            self.step_before(Some(end));
        }
    }
}
