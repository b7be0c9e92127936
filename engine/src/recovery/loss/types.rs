//! What the loss detector takes in and gives back: settings, decoded ACKs, outcomes.

use std::time::Duration;

use super::PACKET_THRESHOLD;
use crate::frame::{Ack, AckRanges, EcnCounts};
use crate::recovery::rtt::INITIAL_RTT;
use crate::recovery::{SentPacket, SpaceId};

/// Loss detection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossConfig {
    /// Whether this endpoint is the server (servers never arm the anti-deadlock PTO).
    pub is_server: bool,
    /// The peer's max_ack_delay transport parameter. Default 25 ms until known.
    pub max_ack_delay: Duration,
    /// RTT assumed before the first sample. Default 333 ms ([`INITIAL_RTT`]).
    pub initial_rtt: Duration,
    /// kPacketThreshold; values below 3 are raised to 3. Default 3.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.1
    //# In order to remain similar to TCP,
    //# implementations SHOULD NOT use a packet threshold less than 3; see
    //# [RFC5681].
    pub packet_threshold: u64,
    /// Whether to attempt ECN on this path. Default true.
    pub ecn: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            is_server: false,
            max_ack_delay: Duration::from_millis(25),
            initial_rtt: INITIAL_RTT,
            packet_threshold: PACKET_THRESHOLD,
            ecn: true,
        }
    }
}

/// A received ACK frame, decoded: `ranges` are `smallest..=largest`, largest first.
#[derive(Clone, Debug)]
pub struct AckInfo<R> {
    /// Largest Acknowledged.
    pub largest: u64,
    /// ACK Delay, decoded with the peer's ack_delay_exponent.
    pub ack_delay: Duration,
    /// The acknowledged ranges.
    pub ranges: R,
    /// ECN counts (frame type 0x03).
    pub ecn: Option<EcnCounts>,
}

impl<'a> AckInfo<AckRanges<'a>> {
    /// From a decoded frame; `ack_delay_exponent` is the peer's transport parameter.
    pub fn from_frame(ack: &Ack<'a>, ack_delay_exponent: u8) -> Self {
        Self {
            largest: ack.largest(),
            ack_delay: Duration::from_micros(ack.ack_delay_micros(ack_delay_exponent)),
            ranges: ack.ranges(),
            ecn: ack.ecn(),
        }
    }
}

/// What processing an ACK found. The new timer is [`LossDetector::timer`].
#[derive(Debug)]
pub struct AckOutcome<T> {
    /// Newly acknowledged packets, by packet number.
    pub acked: Vec<SentPacket<T>>,
    /// Packets declared lost, by packet number: retransmit what they carried.
    pub lost: Vec<SentPacket<T>>,
    /// Whether persistent congestion was established (the controller was collapsed).
    pub persistent_congestion: bool,
    /// Whether the ACK produced an RTT sample.
    pub rtt_sample: bool,
    /// Increase of the peer's CE count treated as a congestion signal.
    pub ce_increase: u64,
}

impl<T> Default for AckOutcome<T> {
    fn default() -> Self {
        Self {
            acked: Vec::new(),
            lost: Vec::new(),
            persistent_congestion: false,
            rtt_sample: false,
            ce_increase: 0,
        }
    }
}

/// Probe packets to send after a PTO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The space to probe.
    pub space: SpaceId,
    /// How many ack-eliciting packets to send, bypassing the congestion window (RFC 9002
    /// §7.5): new data if possible, else retransmitted data, else a PING.
    pub packets: u8,
    /// The client's anti-deadlock probe (RFC 9002 §6.2.2.1): a Handshake packet, or an Initial
    /// in a datagram padded to at least 1200 bytes.
    pub anti_deadlock: bool,
}

/// What a loss detection timeout did.
#[derive(Debug)]
pub struct TimeoutOutcome<T> {
    /// Packets declared lost by the time threshold.
    pub lost: Vec<SentPacket<T>>,
    /// Whether persistent congestion was established.
    pub persistent_congestion: bool,
    /// Probes to send, when the PTO fired.
    pub probe: Option<Probe>,
}

impl<T> Default for TimeoutOutcome<T> {
    fn default() -> Self {
        Self { lost: Vec::new(), persistent_congestion: false, probe: None }
    }
}
