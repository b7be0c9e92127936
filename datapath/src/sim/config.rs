//! Link and port configuration of the simulated network, with validation and its typed errors.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Default bottleneck buffer of a rate-limited link: 64 KiB (about 52 ms at 10 Mbit/s).
pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024;
/// Default extra delay given to a datagram picked for reordering: 10 ms.
pub const DEFAULT_REORDER_DELAY: Duration = Duration::from_millis(10);
/// Smallest link MTU accepted: 68 bytes, the IPv4 minimum (RFC 791).
pub const MIN_MTU: usize = 68;
/// Bytes an IPv4 + UDP header adds to a UDP payload on the wire (20 + 8).
pub const IPV4_UDP_OVERHEAD: usize = 28;
/// Bytes an IPv6 + UDP header adds to a UDP payload on the wire (40 + 8).
pub const IPV6_UDP_OVERHEAD: usize = 48;
/// Largest UDP payload (65 535 minus the 8-byte UDP header).
pub const MAX_UDP_PAYLOAD: usize = 65_527;
/// Default number of segments one GSO transmit may carry (Linux `UDP_MAX_SEGMENTS`).
pub const DEFAULT_MAX_GSO_SEGMENTS: usize = 64;
/// Default number of transmit (and, separately, receive) buffers of a port.
pub const DEFAULT_POOL_BUFFERS: usize = 256;

/// Bytes a datagram of `payload` bytes occupies on the wire (IP and UDP headers included), which
/// is what rate limits, queue limits and the MTU count.
pub fn wire_len(payload: usize, ipv6: bool) -> usize {
    payload + if ipv6 { IPV6_UDP_OVERHEAD } else { IPV4_UDP_OVERHEAD }
}

/// Gilbert-Elliott burst-loss model: a two-state Markov chain stepped once per datagram, losing
/// datagrams with `loss_good` in the good state and `loss_bad` in the bad state.
///
/// With `loss_good = 0` and `loss_bad = 1` (see [`GilbertElliott::bursty`]) the loss rate is
/// the stationary probability of the bad state, `p_good_to_bad / (p_good_to_bad +
/// p_bad_to_good)`, and bursts of consecutive losses are geometric with mean `1 /
/// p_bad_to_good`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state before a datagram.
    pub p_good_to_bad: f64,
    /// Probability of moving from the bad to the good state before a datagram.
    pub p_bad_to_good: f64,
    /// Loss probability in the good state (often 0).
    pub loss_good: f64,
    /// Loss probability in the bad state (often 1).
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// The classic Gilbert model: every datagram in the bad state is lost, none in the good one.
    pub fn bursty(p_good_to_bad: f64, p_bad_to_good: f64) -> Self {
        Self { p_good_to_bad, p_bad_to_good, loss_good: 0.0, loss_bad: 1.0 }
    }

    /// Long-run fraction of datagrams in the bad state.
    pub fn stationary_bad(&self) -> f64 {
        let sum = self.p_good_to_bad + self.p_bad_to_good;
        if sum == 0.0 {
            0.0
        } else {
            self.p_good_to_bad / sum
        }
    }

    /// Long-run loss rate of the model.
    pub fn stationary_loss(&self) -> f64 {
        let bad = self.stationary_bad();
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }

    fn validate(&self) -> Result<(), SimError> {
        probability("burst_loss.p_good_to_bad", self.p_good_to_bad)?;
        probability("burst_loss.p_bad_to_good", self.p_bad_to_good)?;
        probability("burst_loss.loss_good", self.loss_good)?;
        probability("burst_loss.loss_bad", self.loss_bad)
    }
}

/// A window of virtual time, `[start, end)`, in which a link drops every datagram sent into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blackhole {
    /// First instant of the outage.
    pub start: Instant,
    /// First instant after the outage.
    pub end: Instant,
}

impl Blackhole {
    /// True when a datagram entering the link at `t` is dropped.
    pub fn contains(&self, t: Instant) -> bool {
        self.start <= t && t < self.end
    }
}

/// The model of one direction of a path. [`LinkConfig::default`] is a perfect link: no delay,
/// no rate limit, no impairment.
///
/// Each datagram entering the link goes through, in order: the MTU check, the blackholes, the
/// bottleneck queue (rate limit, tail drop, ECN marking), random loss, burst loss, corruption,
/// then delay + jitter (order-preserving), reordering and duplication. A datagram lost after the
/// queue has used bottleneck capacity, like a loss on the wire behind a router.
///
/// A configuration can be replaced at any virtual time ([`super::SimNetwork::set_link`]):
/// datagrams already in flight keep their delivery time, the bottleneck keeps its backlog.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay added to every datagram. Default 0.
    pub delay: Duration,
    /// Extra delay drawn uniformly in `[0, jitter]` per datagram. Jitter never reorders: a
    /// datagram never arrives before one sent earlier on the same link (reordering is
    /// [`LinkConfig::reorder`]'s job). Default 0.
    pub jitter: Duration,
    /// Bottleneck rate in bits per second of wire bytes ([`wire_len`]); `None` is unlimited.
    /// Default `None`.
    pub rate_bps: Option<u64>,
    /// Bottleneck buffer in wire bytes, including the datagram being serialised; a datagram that
    /// does not fit is tail-dropped. Only used with a rate. Default [`DEFAULT_QUEUE_BYTES`].
    pub queue_bytes: usize,
    /// Bottleneck buffer in datagrams, including the one being serialised, as routers and
    /// `netem limit` count it: a datagram arriving to this many queued is tail-dropped (on top
    /// of [`LinkConfig::queue_bytes`]). Only used with a rate. Default `None` (bytes only).
    pub queue_packets: Option<usize>,
    /// ECN marking threshold in wire bytes (needs a rate): a datagram arriving while more than
    /// this many bytes are queued is marked CE when it is ECT(0)/ECT(1) and dropped when it is
    /// Not-ECT (counted as [`super::LinkStats::dropped_aqm`]), as an AQM does. `None` disables.
    /// Default `None`.
    pub ce_threshold: Option<usize>,
    /// Independent (Bernoulli) loss probability per datagram. Default 0.
    pub loss: f64,
    /// Burst loss model, applied after random loss. Default `None`.
    pub burst_loss: Option<GilbertElliott>,
    /// Longest run of consecutive datagrams random and burst loss may take: once this many
    /// in a row were lost to them, the next one is spared (counted as
    /// [`super::LinkStats::loss_spared`]). This is the drop-rate model of the QUIC interop
    /// runner's network simulator ("drop N% in bursts of up to B"). The random draws are made
    /// either way, so the cap does not shift the other impairments' streams. Must be at least
    /// 1. Default `None` (no cap).
    pub max_loss_burst: Option<u32>,
    /// Probability that a datagram is held back by [`LinkConfig::reorder_delay`] so that later
    /// ones overtake it. Default 0.
    pub reorder: f64,
    /// Extra delay of a reordered datagram. Default [`DEFAULT_REORDER_DELAY`].
    pub reorder_delay: Duration,
    /// Probability that a datagram is delivered twice (the copy arrives right after it).
    /// Default 0.
    pub duplicate: f64,
    /// Probability that one uniformly chosen bit of a (non-empty) datagram is flipped. Default 0.
    pub corrupt: f64,
    /// Path MTU in wire bytes ([`wire_len`]); larger datagrams are dropped. `None` is unlimited.
    /// Default `None`.
    pub mtu: Option<usize>,
    /// Outage windows of this direction. Default none.
    pub blackholes: Vec<Blackhole>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_bps: None,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            queue_packets: None,
            ce_threshold: None,
            loss: 0.0,
            burst_loss: None,
            max_loss_burst: None,
            reorder: 0.0,
            reorder_delay: DEFAULT_REORDER_DELAY,
            duplicate: 0.0,
            corrupt: 0.0,
            mtu: None,
            blackholes: Vec::new(),
        }
    }
}

impl LinkConfig {
    /// A perfect link with a one-way `delay`.
    pub fn with_delay(delay: Duration) -> Self {
        Self { delay, ..Self::default() }
    }

    /// A relay as the QUIC interop runner's `drop-rate` scenario builds one: one-way `delay`,
    /// a bottleneck of `rate_bps` with a tail-drop queue of `queue_packets` datagrams, and
    /// independent loss of probability `loss` in runs of at most `max_burst` datagrams.
    /// For example 10 ms, 100 Mbit/s, 200 datagrams, 3% in bursts of up to 3.
    pub fn relay(
        delay: Duration,
        rate_bps: u64,
        queue_packets: usize,
        loss: f64,
        max_burst: u32,
    ) -> Self {
        Self {
            rate_bps: Some(rate_bps),
            queue_bytes: queue_packets.saturating_mul(wire_len(MAX_UDP_PAYLOAD, true)),
            queue_packets: Some(queue_packets),
            loss,
            max_loss_burst: Some(max_burst),
            ..Self::with_delay(delay)
        }
    }

    /// Checks every field, returning the first problem found.
    pub fn validate(&self) -> Result<(), SimError> {
        probability("loss", self.loss)?;
        probability("reorder", self.reorder)?;
        probability("duplicate", self.duplicate)?;
        probability("corrupt", self.corrupt)?;
        if let Some(ge) = &self.burst_loss {
            ge.validate()?;
        }
        if self.rate_bps == Some(0) {
            return Err(SimError::ZeroRate);
        }
        if self.queue_bytes == 0 || self.queue_packets == Some(0) {
            return Err(SimError::ZeroQueue);
        }
        if self.max_loss_burst == Some(0) {
            return Err(SimError::ZeroLossBurst);
        }
        if let Some(threshold) = self.ce_threshold {
            if self.rate_bps.is_none() {
                return Err(SimError::CeThresholdWithoutRate);
            }
            if threshold >= self.queue_bytes {
                return Err(SimError::CeThresholdTooLarge {
                    threshold,
                    queue_bytes: self.queue_bytes,
                });
            }
        }
        if self.reorder > 0.0 && self.reorder_delay.is_zero() {
            return Err(SimError::ZeroReorderDelay);
        }
        if let Some(mtu) = self.mtu {
            if mtu < MIN_MTU {
                return Err(SimError::MtuTooSmall { mtu });
            }
        }
        if let Some(b) = self.blackholes.iter().find(|b| b.end <= b.start) {
            return Err(SimError::EmptyBlackhole { start: b.start, end: b.end });
        }
        Ok(())
    }
}

/// Settings of one port ([`super::SimQueue`]) of the simulated network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimQueueConfig {
    /// Largest UDP payload the port sends or receives (receive buffers have this size; larger
    /// datagrams are dropped on receive and counted in `rx_dropped`). Default
    /// [`MAX_UDP_PAYLOAD`].
    pub max_udp_payload: usize,
    /// Report and accept GSO transmits. Default true (so the engine exercises its GSO path).
    pub gso: bool,
    /// Most segments in one GSO transmit. Default [`DEFAULT_MAX_GSO_SEGMENTS`].
    pub max_gso_segments: usize,
    /// Transmit buffers in the pool (back-pressure bound). Default [`DEFAULT_POOL_BUFFERS`].
    pub tx_buffers: usize,
    /// Receive buffers in the pool. Default [`DEFAULT_POOL_BUFFERS`].
    pub rx_buffers: usize,
}

impl Default for SimQueueConfig {
    fn default() -> Self {
        Self {
            max_udp_payload: MAX_UDP_PAYLOAD,
            gso: true,
            max_gso_segments: DEFAULT_MAX_GSO_SEGMENTS,
            tx_buffers: DEFAULT_POOL_BUFFERS,
            rx_buffers: DEFAULT_POOL_BUFFERS,
        }
    }
}

impl SimQueueConfig {
    /// Checks every field, returning the first problem found.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.max_udp_payload == 0 || self.max_udp_payload > MAX_UDP_PAYLOAD {
            return Err(SimError::InvalidPort("max_udp_payload must be in 1..=65527"));
        }
        if self.max_gso_segments == 0 {
            return Err(SimError::InvalidPort("max_gso_segments must be at least 1"));
        }
        if self.tx_buffers == 0 || self.rx_buffers == 0 {
            return Err(SimError::InvalidPort("tx_buffers and rx_buffers must be at least 1"));
        }
        Ok(())
    }
}

/// Why a simulated-network configuration or operation was refused.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SimError {
    /// A probability outside `[0, 1]` (or NaN).
    Probability {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// `rate_bps` is `Some(0)`.
    ZeroRate,
    /// `queue_bytes` or `queue_packets` is 0.
    ZeroQueue,
    /// `max_loss_burst` is `Some(0)` (use a loss probability of 0 instead).
    ZeroLossBurst,
    /// `ce_threshold` is set on a link without a rate limit (no queue ever builds).
    CeThresholdWithoutRate,
    /// `ce_threshold` is not below `queue_bytes` (it could never trigger).
    CeThresholdTooLarge {
        /// The threshold given.
        threshold: usize,
        /// The queue size.
        queue_bytes: usize,
    },
    /// `reorder` is positive but `reorder_delay` is zero.
    ZeroReorderDelay,
    /// `mtu` is below [`MIN_MTU`].
    MtuTooSmall {
        /// The MTU given.
        mtu: usize,
    },
    /// A blackhole whose end is not after its start.
    EmptyBlackhole {
        /// Its start.
        start: Instant,
        /// Its end.
        end: Instant,
    },
    /// A port setting is out of range.
    InvalidPort(&'static str),
    /// The address is already bound (or used by a rebinding).
    AddrInUse(SocketAddr),
    /// Ports must be bound to a specific IP address.
    UnspecifiedAddr(SocketAddr),
    /// No ephemeral port is free on this IP address.
    PortsExhausted(IpAddr),
    /// No port is bound to this address.
    UnknownEndpoint(SocketAddr),
    /// A rebinding to an address of the other IP family.
    FamilyMismatch {
        /// The port's address.
        local: SocketAddr,
        /// The other address.
        other: SocketAddr,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Probability { field, value } => {
                write!(f, "{field} = {value} is not a probability in [0, 1]")
            }
            SimError::ZeroRate => f.write_str("rate_bps must be positive (None for unlimited)"),
            SimError::ZeroQueue => f.write_str("queue_bytes and queue_packets must be positive"),
            SimError::ZeroLossBurst => f.write_str("max_loss_burst must be at least 1"),
            SimError::CeThresholdWithoutRate => {
                f.write_str("ce_threshold needs a rate limit (no queue builds without one)")
            }
            SimError::CeThresholdTooLarge { threshold, queue_bytes } => {
                write!(f, "ce_threshold {threshold} must be below queue_bytes {queue_bytes}")
            }
            SimError::ZeroReorderDelay => f.write_str("reorder needs a positive reorder_delay"),
            SimError::MtuTooSmall { mtu } => write!(f, "mtu {mtu} is below the minimum {MIN_MTU}"),
            SimError::EmptyBlackhole { start, end } => {
                write!(f, "blackhole ends ({end:?}) before it starts ({start:?})")
            }
            SimError::InvalidPort(why) => write!(f, "invalid port configuration: {why}"),
            SimError::AddrInUse(a) => write!(f, "address {a} is already in use"),
            SimError::UnspecifiedAddr(a) => write!(f, "cannot bind the unspecified address {a}"),
            SimError::PortsExhausted(ip) => write!(f, "no free ephemeral port on {ip}"),
            SimError::UnknownEndpoint(a) => write!(f, "no port is bound to {a}"),
            SimError::FamilyMismatch { local, other } => {
                write!(f, "{other} is not of the same IP family as {local}")
            }
        }
    }
}

impl std::error::Error for SimError {}

fn probability(field: &'static str, value: f64) -> Result<(), SimError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(SimError::Probability { field, value })
    }
}
