//! The per-worker send scheduler: a ready list of connections with send interests, served
//! round-robin one GSO batch per turn, and the close flag that keeps the flush loop from ever
//! looping on a close it has already emitted (DESIGN.md "The send scheduler and the close
//! flag", invariant 1).
//!
//! Stream-level fairness and priorities live inside [`crate::streams`]; this level is fair
//! across connections: a connection that produced a batch goes to the back of the list, one
//! that has nothing to send (or is congestion-, pacing- or amplification-limited:
//! `poll_transmit` returned `None`) leaves the list until something new happens to it.

mod close;

pub use close::CloseFlag;

use std::collections::VecDeque;
use std::time::Instant;

use peregrine_datapath::{Queue, TxBatch, TxBuffer, TxMeta};

use crate::connection::Connection;
use crate::endpoint::ConnectionHandle;
use crate::recovery::SpaceId;

/// Default most datagrams in one GSO train (one transmit buffer per connection turn): the
/// kernel's limit (`UDP_MAX_SEGMENTS`). In practice the transmit buffer bounds the train
/// first (a 64 KB UDP payload: 44 datagrams of 1472 bytes), so one system call carries as
/// much as the kernel takes; 16 cut loopback trains to a third of that.
pub const DEFAULT_MAX_GSO_SEGMENTS: usize = 64;
/// Default most transmit buffers one flush puts in the batch before it is sent.
pub const DEFAULT_MAX_BATCH: usize = 64;

/// What the scheduler needs from the endpoint's connection table.
pub trait ConnectionSet {
    /// The connection `h` and its close flag, if it still exists.
    fn get(&mut self, h: ConnectionHandle) -> Option<(&mut Connection, &CloseFlag)>;
}

/// Counters of one worker's scheduler (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Flushes run.
    pub flushes: u64,
    /// Connection turns taken, over all flushes.
    pub turns: u64,
    /// Most turns any single flush took (bounded: see [`Scheduler::flush`]).
    pub max_turns_per_flush: u64,
    /// Transmit buffers produced.
    pub transmits: u64,
    /// Datagrams produced (each GSO segment counts once).
    pub datagrams: u64,
    /// CONNECTION_CLOSE packets written, per space (Initial, Handshake, Data).
    pub close_packets: [u64; 3],
    /// Turns skipped because the connection's close was already emitted everywhere.
    pub close_skips: u64,
    /// Turns that ended with `poll_transmit` returning `None` (nothing to send, or limited).
    pub limited: u64,
    /// Flushes cut short because the queue had no free transmit buffer.
    pub pool_exhausted: u64,
}

/// One worker's ready list and flush loop.
#[derive(Debug)]
pub struct Scheduler {
    ready: VecDeque<ConnectionHandle>,
    /// Connections on the ready list. Handles are assigned locally, so the fast unkeyed
    /// hasher is safe.
    queued: rustc_hash::FxHashSet<ConnectionHandle>,
    max_segments: usize,
    max_batch: usize,
    stats: SchedulerStats,
    /// A transmit buffer taken from the queue but not filled (the last connection polled had
    /// nothing to send), kept for the next turn: dropping it would free it, and the pool
    /// would allocate and zero a new one (a whole GSO train's worth) on the next flush.
    spare: Option<TxBuffer>,
}

impl Scheduler {
    /// A scheduler building GSO trains of up to `max_segments` datagrams and batches of up
    /// to `max_batch` transmit buffers (both at least 1).
    pub fn new(max_segments: usize, max_batch: usize) -> Self {
        Self {
            ready: VecDeque::new(),
            queued: rustc_hash::FxHashSet::default(),
            max_segments: max_segments.max(1),
            max_batch: max_batch.max(1),
            stats: SchedulerStats::default(),
            spare: None,
        }
    }

    /// Puts connection `h` on the ready list (once), because it reported a transmit interest
    /// ([`crate::connection::Interests::transmit`]).
    pub fn schedule(&mut self, h: ConnectionHandle) {
        if self.queued.insert(h) {
            self.ready.push_back(h);
        }
    }

    /// Takes `h` off the ready list (the connection is gone).
    pub fn remove(&mut self, h: ConnectionHandle) {
        if self.queued.remove(&h) {
            self.ready.retain(|k| *k != h);
        }
    }

    /// Gives back the transmit buffer kept for the next turn (a worker with no connection
    /// left holds no buffer while it sleeps).
    pub fn release_spare(&mut self) {
        self.spare = None;
    }

    /// Connections on the ready list.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Whether `h` is on the ready list.
    pub fn is_ready(&self, h: ConnectionHandle) -> bool {
        self.queued.contains(&h)
    }

    /// Counters.
    pub fn stats(&self) -> SchedulerStats {
        self.stats
    }

    /// Builds transmit buffers round-robin across ready connections into `batch`, until the
    /// ready list is empty, the batch holds `max_batch` buffers, or the queue has no free
    /// buffer. Keys of connections polled are pushed to `served` (their timers may
    /// have moved: a pacing delay, a loss timer). Returns the number of turns taken.
    ///
    /// Termination is structural: each turn either adds a buffer to the batch (at most
    /// `max_batch` of those) or takes a connection off the list, so one flush takes at most
    /// `ready_len + max_batch` turns; [`SchedulerStats::max_turns_per_flush`] records the most
    /// seen. A closing connection whose close is out everywhere is taken off without a call
    /// into it: the flush never loops on a close it already emitted.
    pub fn flush<Q: Queue + ?Sized, S: ConnectionSet>(
        &mut self,
        now: Instant,
        queue: &mut Q,
        batch: &mut TxBatch,
        conns: &mut S,
        served: &mut Vec<ConnectionHandle>,
    ) -> u64 {
        self.stats.flushes += 1;
        let bound = (self.ready.len() + self.max_batch) as u64;
        let mut turns = 0u64;
        let gso_ok = queue.capabilities().gso;
        let segments = if gso_ok {
            self.max_segments.min(queue.capabilities().max_gso_segments.max(1))
        } else {
            1
        };
        while let Some(key) = self.ready.pop_front() {
            if turns >= bound || batch.len() >= self.max_batch {
                self.ready.push_front(key);
                break;
            }
            turns += 1;
            let Some((conn, flag)) = conns.get(key) else {
                self.queued.remove(&key);
                continue;
            };
            let closing = conn.is_closed();
            let pending = conn.close_pending_spaces();
            if closing {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.1
                //# An endpoint SHOULD limit the rate at which it generates packets in
                //# the closing state.
                if !pending.iter().any(|p| *p) {
                    // Already written everywhere it was owed (maybe at a lower encryption level
                    // during the handshake): done, whatever the connection would build.
                    flag.mark_emitted();
                    self.stats.close_skips += 1;
                    self.queued.remove(&key);
                    continue;
                }
                // The connection re-armed its close for an incoming packet (rate-limited).
                //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.1
                //# An endpoint in the closing state sends a packet containing a
                //# CONNECTION_CLOSE frame in response to any incoming packet that it
                //# attributes to the connection.
                flag.rearm();
            }
            let Some(mut buf) = self.spare.take().or_else(|| queue.alloc_tx()) else {
                self.stats.pool_exhausted += 1;
                self.ready.push_front(key);
                break;
            };
            let keys = conn.spaces_with_keys();
            let polled = conn.poll_transmit(now, buf.spare(), segments);
            // Polled, with or without a datagram: its timers may have moved (a pacing delay
            // set when it declined to send must reach the worker's timer queue).
            if served.last() != Some(&key) {
                served.push(key);
            }
            let Some(t) = polled else {
                // Nothing was committed to the buffer (its length is still 0): keep it.
                self.spare = Some(buf);
                self.stats.limited += 1;
                self.queued.remove(&key);
                if closing {
                    // The connection wrote (or gave up on) every pending space without a
                    // datagram: it still counts as emitted and never comes back for it.
                    flag.mark_emitted();
                }
                continue;
            };
            buf.advance(t.len);
            // A server whose client moved to its preferred address answers from that address
            // (a socket bound to a wildcard address picks it per datagram).
            let src_ip = t.src.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
            buf.meta = TxMeta { dst: t.dst, src_ip, ecn: t.ecn, segment_size: t.segment_size };
            batch.push(buf);
            self.stats.transmits += 1;
            self.stats.datagrams += t.datagrams as u64;
            if closing {
                for space in SpaceId::ALL {
                    let i = space.index();
                    if pending[i] && keys[i] {
                        flag.mark_written(space);
                        self.stats.close_packets[i] += 1;
                    }
                }
                if !conn.close_pending_spaces().iter().any(|p| *p) {
                    flag.mark_emitted();
                    self.queued.remove(&key);
                    continue;
                }
            }
            // Fair: others get a turn before this connection's next batch.
            self.ready.push_back(key);
        }
        self.stats.turns += turns;
        self.stats.max_turns_per_flush = self.stats.max_turns_per_flush.max(turns);
        turns
    }
}
