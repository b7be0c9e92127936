//! One direction of a simulated path: the impairment pipeline, its seeded randomness and counters.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{wire_len, LinkConfig};
use crate::Ecn;

/// What happened on one direction of a path since the network was created (monotonic counters).
///
/// Every datagram offered to the link ([`LinkStats::sent`]) ends in exactly one of: delivered to
/// a port, one of the drop counters, `undelivered`, or still in flight; a duplicate adds one
/// more datagram to that balance ([`LinkStats::accounted`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams offered to the link (each GSO segment counts once).
    pub sent: u64,
    /// Datagrams (duplicates included) handed to the receiving port.
    pub delivered: u64,
    /// Lost to independent random loss.
    pub lost_random: u64,
    /// Lost to the Gilbert-Elliott burst-loss model.
    pub lost_burst: u64,
    /// Picked by random or burst loss but delivered because the run of losses had reached
    /// [`LinkConfig::max_loss_burst`] (not a drop).
    pub loss_spared: u64,
    /// Tail-dropped because the bottleneck queue was full.
    pub dropped_queue_full: u64,
    /// Not-ECT datagrams dropped because the queue was over the ECN marking threshold.
    pub dropped_aqm: u64,
    /// Dropped because larger than the link MTU.
    pub dropped_mtu: u64,
    /// Dropped inside a blackhole window.
    pub dropped_blackhole: u64,
    /// Dropped because no port was bound to the destination when they were sent.
    pub unroutable: u64,
    /// Arrived at a port that was closed, or too large for its receive buffers.
    pub undelivered: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Datagrams with one bit flipped.
    pub corrupted: u64,
    /// Datagrams held back so that later ones could overtake them.
    pub reordered: u64,
    /// ECT datagrams marked CE by the queue.
    pub ce_marked: u64,
}

impl LinkStats {
    /// Datagrams that left the link's books: delivered, dropped or undelivered (in flight ones
    /// are not counted). Equals `sent + duplicated` once nothing is in flight.
    pub fn accounted(&self) -> u64 {
        self.delivered + self.dropped() + self.undelivered
    }

    /// Datagrams dropped by the link or for lack of a route, for any reason.
    pub fn dropped(&self) -> u64 {
        self.lost_random
            + self.lost_burst
            + self.dropped_queue_full
            + self.dropped_aqm
            + self.dropped_mtu
            + self.dropped_blackhole
            + self.unroutable
    }

    /// Adds another link's counters to these.
    pub fn add(&mut self, o: &LinkStats) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.lost_random += o.lost_random;
        self.lost_burst += o.lost_burst;
        self.loss_spared += o.loss_spared;
        self.dropped_queue_full += o.dropped_queue_full;
        self.dropped_aqm += o.dropped_aqm;
        self.dropped_mtu += o.dropped_mtu;
        self.dropped_blackhole += o.dropped_blackhole;
        self.unroutable += o.unroutable;
        self.undelivered += o.undelivered;
        self.duplicated += o.duplicated;
        self.corrupted += o.corrupted;
        self.reordered += o.reordered;
        self.ce_marked += o.ce_marked;
    }
}

/// Why the network dropped a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkDrop {
    /// Larger than the link MTU.
    Mtu,
    /// Sent inside a blackhole window.
    Blackhole,
    /// The bottleneck queue was full.
    QueueFull,
    /// Not-ECT while the queue was over the ECN marking threshold.
    Aqm,
    /// Independent random loss.
    RandomLoss,
    /// Gilbert-Elliott burst loss.
    BurstLoss,
    /// No port bound to the destination.
    Unroutable,
}

/// The fate of a datagram that survives the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// When it becomes receivable.
    pub at: Instant,
    /// Its ECN codepoint after the queue (CE when marked).
    pub ecn: Ecn,
    /// One bit was flipped.
    pub corrupted: bool,
    /// It was held back to be overtaken.
    pub reordered: bool,
    /// A copy arrives right after it.
    pub duplicated: bool,
}

/// The state of one direction of a path.
#[derive(Debug)]
pub(crate) struct Link {
    pub config: LinkConfig,
    /// The configuration was set for this link (not inherited from the network default).
    pub explicit: bool,
    pub stats: LinkStats,
    rng: ChaCha8Rng,
    /// Gilbert-Elliott state: true when bad.
    bad: bool,
    /// Datagrams lost in a row to random and burst loss (for `max_loss_burst`).
    loss_run: u32,
    /// Datagrams in the bottleneck: when each finishes serialisation, and its wire size.
    backlog: VecDeque<(Instant, usize)>,
    backlog_bytes: usize,
    busy_until: Option<Instant>,
    /// Latest arrival of a datagram that was not reordered (jitter preserves order).
    last_arrival: Option<Instant>,
}

impl Link {
    /// A link with its own random stream: `seed` is the network's, `stream` tells links apart.
    pub fn new(config: LinkConfig, explicit: bool, seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self {
            config,
            explicit,
            stats: LinkStats::default(),
            rng,
            bad: false,
            loss_run: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            busy_until: None,
            last_arrival: None,
        }
    }

    /// Wire bytes in the bottleneck at `now` (including the datagram being serialised).
    pub fn backlog_bytes(&mut self, now: Instant) -> usize {
        self.drain(now);
        self.backlog_bytes
    }

    fn drain(&mut self, now: Instant) {
        while let Some(&(done, size)) = self.backlog.front() {
            if done > now {
                break;
            }
            self.backlog.pop_front();
            self.backlog_bytes -= size;
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        // No draw for a disabled impairment, so enabling one does not shift the others' streams
        // more than necessary; p = 1 always fires.
        p > 0.0 && self.rng.gen::<f64>() < p
    }

    /// Sends `data` (a UDP payload, corrupted in place when the model says so) into the link at
    /// `now`, with ECN codepoint `ecn`, over IPv6 when `ipv6`. Updates the counters.
    pub fn transmit(
        &mut self,
        now: Instant,
        data: &mut [u8],
        ecn: Ecn,
        ipv6: bool,
    ) -> Result<Arrival, LinkDrop> {
        self.stats.sent += 1;
        let wire = wire_len(data.len(), ipv6);
        if self.config.mtu.is_some_and(|mtu| wire > mtu) {
            self.stats.dropped_mtu += 1;
            return Err(LinkDrop::Mtu);
        }
        if self.config.blackholes.iter().any(|b| b.contains(now)) {
            self.stats.dropped_blackhole += 1;
            return Err(LinkDrop::Blackhole);
        }
        let (depart, ecn) = self.enqueue(now, wire, ecn)?;
        if let Some(reason) = self.loss() {
            if self.config.max_loss_burst.is_some_and(|max| self.loss_run >= max) {
                self.stats.loss_spared += 1;
                self.loss_run = 0;
            } else {
                self.loss_run += 1;
                match reason {
                    LinkDrop::RandomLoss => self.stats.lost_random += 1,
                    _ => self.stats.lost_burst += 1,
                }
                return Err(reason);
            }
        } else {
            self.loss_run = 0;
        }
        let corrupted = !data.is_empty() && self.chance(self.config.corrupt);
        if corrupted {
            let byte = self.rng.gen_range(0..data.len());
            let bit = self.rng.gen_range(0..8u32);
            data[byte] ^= 1 << bit;
            self.stats.corrupted += 1;
        }
        let mut at = depart + self.config.delay;
        if !self.config.jitter.is_zero() {
            let max = u64::try_from(self.config.jitter.as_nanos()).unwrap_or(u64::MAX);
            at += Duration::from_nanos(self.rng.gen_range(0..=max));
        }
        if let Some(last) = self.last_arrival {
            at = at.max(last);
        }
        self.last_arrival = Some(at);
        let reordered = self.chance(self.config.reorder);
        if reordered {
            at += self.config.reorder_delay;
            self.stats.reordered += 1;
        }
        let duplicated = self.chance(self.config.duplicate);
        if duplicated {
            self.stats.duplicated += 1;
        }
        Ok(Arrival { at, ecn, corrupted, reordered, duplicated })
    }

    /// Random loss, then burst loss: which one takes the datagram, if any (draws made either
    /// way, as before the burst cap existed).
    fn loss(&mut self) -> Option<LinkDrop> {
        if self.chance(self.config.loss) {
            return Some(LinkDrop::RandomLoss);
        }
        if let Some(ge) = self.config.burst_loss {
            let flip = if self.bad { ge.p_bad_to_good } else { ge.p_good_to_bad };
            if self.chance(flip) {
                self.bad = !self.bad;
            }
            if self.chance(if self.bad { ge.loss_bad } else { ge.loss_good }) {
                return Some(LinkDrop::BurstLoss);
            }
        }
        None
    }

    /// The bottleneck: returns when the datagram leaves it and its ECN codepoint, or the drop.
    fn enqueue(&mut self, now: Instant, wire: usize, ecn: Ecn) -> Result<(Instant, Ecn), LinkDrop> {
        let Some(rate) = self.config.rate_bps else {
            return Ok((now, ecn));
        };
        self.drain(now);
        if self.backlog_bytes + wire > self.config.queue_bytes
            || self.config.queue_packets.is_some_and(|max| self.backlog.len() >= max)
        {
            self.stats.dropped_queue_full += 1;
            return Err(LinkDrop::QueueFull);
        }
        let mut ecn = ecn;
        if self.config.ce_threshold.is_some_and(|t| self.backlog_bytes > t) {
            match ecn {
                Ecn::Ect0 | Ecn::Ect1 => {
                    ecn = Ecn::Ce;
                    self.stats.ce_marked += 1;
                }
                Ecn::Ce => {}
                Ecn::NotEct => {
                    self.stats.dropped_aqm += 1;
                    return Err(LinkDrop::Aqm);
                }
            }
        }
        let start = self.busy_until.map_or(now, |b| b.max(now));
        let done = start + serialisation(wire, rate);
        self.busy_until = Some(done);
        self.backlog.push_back((done, wire));
        self.backlog_bytes += wire;
        Ok((done, ecn))
    }
}

/// Time to put `wire` bytes on a link of `rate` bits per second, rounded up to the nanosecond.
pub(crate) fn serialisation(wire: usize, rate: u64) -> Duration {
    let nanos = (wire as u128 * 8 * 1_000_000_000).div_ceil(u128::from(rate.max(1)));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}
