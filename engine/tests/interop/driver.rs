//! The driver: moves datagrams between two sans-IO QUIC peers over a `SimNetwork` on virtual time.
//!
//! Each [`Pair::step`] (1) fires the timers that are due, (2) hands every datagram that has
//! arrived to its peer, (3) lets the test's application logic run, (4) polls each peer for
//! transmits (written straight into the port's `TxBuffer`, GSO trains as `meta.segment_size`) and
//! sends them, and (5) moves the clock to the earliest of both peers' timers and the network's
//! next delivery. Loops are bounded by a step budget and a virtual-time budget.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peregrine_datapath::sim::{LinkConfig, SimNetwork, SimQueue};
use peregrine_datapath::{Ecn, Queue, RxBatch, TxBatch, TxBuffer};

use crate::tap::Tap;

/// Most transmits one peer may produce in one step (a runaway guard, far above what a window
/// allows in one go).
const MAX_TRANSMITS_PER_STEP: usize = 4096;

/// One endpoint with a single connection, driven without I/O.
pub trait SansIo {
    /// The local address this peer is bound to (its port on the simulated network).
    fn local_addr(&self) -> SocketAddr;

    /// Processes one received UDP datagram (decrypted in place where the peer can).
    fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, ecn: Ecn, data: &mut [u8]);

    /// Writes the next transmit (one datagram, or a GSO train of at most `max_datagrams`
    /// equal-sized segments) into `buf` and sets `buf.meta`; false when there is nothing to send
    /// now.
    fn poll_transmit(&mut self, now: Instant, max_datagrams: usize, buf: &mut TxBuffer) -> bool;

    /// The next instant at which [`SansIo::handle_timeout`] must be called.
    fn poll_timeout(&mut self) -> Option<Instant>;

    /// Fires the timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
}

/// Why a bounded run stopped before its condition held.
#[derive(Debug)]
pub enum RunError {
    /// No timer armed and nothing in flight: nothing will ever happen again.
    Stalled {
        /// Virtual time elapsed at the stall.
        at: Duration,
    },
    /// The step budget ran out.
    Steps(usize),
    /// The virtual-time budget ran out.
    Time(Duration),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Stalled { at } => write!(f, "stalled at {at:?}: no timer, nothing in flight"),
            RunError::Steps(n) => write!(f, "step budget of {n} exhausted"),
            RunError::Time(d) => write!(f, "virtual-time budget of {d:?} exhausted"),
        }
    }
}

/// Budgets of one bounded run.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most steps.
    pub steps: usize,
    /// Most virtual time, from the start of the run.
    pub time: Duration,
}

impl Budget {
    /// A budget of `steps` steps and `secs` seconds of virtual time.
    pub fn new(steps: usize, secs: u64) -> Self {
        Self { steps, time: Duration::from_secs(secs) }
    }
}

/// A client and a server on one simulated network, with a wire tap between them.
pub struct Pair<C, S> {
    /// The network (clock, links, counters).
    pub net: SimNetwork,
    /// The client peer.
    pub client: C,
    /// The server peer.
    pub server: S,
    /// What went over the wire, for checks that do not trust either peer.
    pub tap: Tap,
    client_port: Port,
    server_port: Port,
    rx: RxBatch,
    /// Steps taken so far.
    pub steps: usize,
}

impl<C: SansIo, S: SansIo> Pair<C, S> {
    /// A pair over `net`, with both peers' ports bound and both directions set to `link`.
    pub fn new(net: SimNetwork, client: C, server: S, link: LinkConfig) -> Self {
        let client_port =
            Port { queue: net.bind(client.local_addr()).expect("bind"), spare: None, dead: None };
        let server_port =
            Port { queue: net.bind(server.local_addr()).expect("bind"), spare: None, dead: None };
        net.set_path(client.local_addr(), server.local_addr(), link).expect("valid link");
        let tap = Tap::new(client.local_addr(), server.local_addr());
        Self { net, client, server, tap, client_port, server_port, rx: RxBatch::new(64), steps: 0 }
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// NAT rebinding of the client: from now on its datagrams come from `new_src`, and the
    /// server's datagrams to the client's old address are lost (the old mapping expired).
    pub fn rebind_client(&mut self, new_src: SocketAddr) {
        let (client, now) = (self.client.local_addr(), self.now());
        self.net.rebind(client, new_src, now).expect("rebind");
        self.server_port.dead = Some(client);
    }

    /// Runs steps until `done` returns true, `done` being called once per step after the
    /// received datagrams were handled (it is where the test's application logic runs).
    pub fn run_until(
        &mut self,
        budget: Budget,
        mut done: impl FnMut(&mut C, &mut S, Instant) -> bool,
    ) -> Result<(), RunError> {
        let deadline = self.now() + budget.time;
        for _ in 0..budget.steps {
            let now = self.now();
            self.steps += 1;
            fire_timer(&mut self.client, now);
            fire_timer(&mut self.server, now);
            receive(&mut self.client_port.queue, &mut self.rx, &mut self.client, now);
            receive(&mut self.server_port.queue, &mut self.rx, &mut self.server, now);
            if done(&mut self.client, &mut self.server, now) {
                return Ok(());
            }
            self.client_port.transmit(&mut self.client, &mut self.tap, now);
            self.server_port.transmit(&mut self.server, &mut self.tap, now);
            let next =
                [self.client.poll_timeout(), self.server.poll_timeout(), self.net.next_event()]
                    .into_iter()
                    .flatten()
                    .min();
            match next {
                None => return Err(RunError::Stalled { at: self.net.elapsed() }),
                Some(t) if t > deadline => {
                    self.net.advance_to(deadline);
                    return Err(RunError::Time(budget.time));
                }
                Some(t) => self.net.advance_to(t),
            }
        }
        Err(RunError::Steps(budget.steps))
    }

    /// Runs until neither peer has a timer armed and nothing is in flight (both connections
    /// gone), or the budget runs out; `each` runs once per step like in [`Pair::run_until`].
    pub fn run_to_quiescence(
        &mut self,
        budget: Budget,
        mut each: impl FnMut(&mut C, &mut S, Instant),
    ) -> Result<(), RunError> {
        match self.run_until(budget, |c, s, now| {
            each(c, s, now);
            false
        }) {
            Err(RunError::Stalled { .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(()) => unreachable!("the condition never holds"),
        }
    }
}

fn fire_timer(peer: &mut impl SansIo, now: Instant) {
    if peer.poll_timeout().is_some_and(|t| t <= now) {
        peer.handle_timeout(now);
    }
}

fn receive(port: &mut SimQueue, rx: &mut RxBatch, peer: &mut impl SansIo, now: Instant) {
    // Bounded: each call drains at most the batch, and the inbox only holds what was sent.
    for _ in 0..1024 {
        let n = port.recv(rx).expect("sim recv");
        if n == 0 {
            return;
        }
        for d in rx.iter_mut() {
            let (src, ecn) = (d.meta.src, d.meta.ecn);
            for segment in d.segments_mut() {
                peer.handle_datagram(now, src, ecn, segment);
            }
        }
    }
}

/// A port with the transmit buffer it allocated but did not fill (kept for the next transmit:
/// the queue's pool only takes buffers back through `send`).
struct Port {
    queue: SimQueue,
    spare: Option<TxBuffer>,
    /// A destination that no longer exists (an expired NAT mapping): what is sent there is
    /// redirected to [`DEAD_END`] and counted unroutable by the network.
    dead: Option<SocketAddr>,
}

/// Where datagrams to a dead address go: bound by nobody.
const DEAD_END: &str = "192.0.2.1:9";

impl Port {
    fn transmit(&mut self, peer: &mut impl SansIo, tap: &mut Tap, now: Instant) {
        let max_datagrams = self.queue.capabilities().max_gso_segments.max(1);
        let mut batch = TxBatch::new();
        for _ in 0..MAX_TRANSMITS_PER_STEP {
            let Some(mut buf) = self.spare.take().or_else(|| self.queue.alloc_tx()) else {
                // Pool exhausted: send what is batched, which returns the buffers.
                self.queue.send(&mut batch).expect("sim send");
                continue;
            };
            buf.set_len(0);
            buf.meta.segment_size = None;
            if !peer.poll_transmit(now, max_datagrams, &mut buf) {
                self.spare = Some(buf);
                break;
            }
            tap.record(self.queue.local_addr(), &buf);
            if Some(buf.meta.dst) == self.dead {
                buf.meta.dst = DEAD_END.parse().expect("dead-end address");
            }
            batch.push(buf);
        }
        self.queue.send(&mut batch).expect("sim send");
    }
}
