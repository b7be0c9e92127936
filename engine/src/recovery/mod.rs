//! Loss recovery (RFC 9002 §5-6, RFC 9000 §13): RTT estimation, receiver-side ACK tracking and
//! sender-side loss detection, PTO, persistent congestion and ECN validation.
//!
//! The pieces are self-contained and sans-IO; the connection drives them:
//! - [`RttEstimator`] (`rtt.rs`): latest, min, smoothed RTT and its variation (§5).
//! - [`AckTracker`] (`ack_tracker.rs`), one per packet number space on the receive side: which
//!   packet numbers arrived (a bounded [`RangeSet`], `ranges.rs`), duplicate detection, when an
//!   ACK is due, ECN counts, and the content of the next ACK frame ([`AckFrameData`]).
//! - [`LossDetector`] (`loss.rs`) on the send side, one per path, all three spaces: records sent
//!   packets ([`SentPacket`], `sent.rs`) with an opaque payload `T` the connection chooses,
//!   processes ACKs, declares losses by packet and time threshold, runs the loss/PTO timer,
//!   detects persistent congestion (`persistent.rs`), validates ECN ([`EcnValidator`],
//!   `ecn.rs`) and drives a [`crate::congestion::Controller`].

mod ack_tracker;
mod ecn;
mod loss;
mod persistent;
mod ranges;
mod rtt;
mod sent;
#[cfg(test)]
mod tests;

pub use ack_tracker::{AckFrameData, AckTracker, AckTrackerConfig, DEFAULT_MAX_ACK_RANGES};
pub use ecn::{EcnState, EcnValidator, ECN_TESTING_PACKETS};
pub use loss::{
    AckInfo, AckOutcome, LossConfig, LossDetector, Probe, TimeoutOutcome, PACKET_THRESHOLD,
};
pub use persistent::{persistent_congestion_in, SpanEvent, PERSISTENT_CONGESTION_THRESHOLD};
pub use ranges::RangeSet;
pub use rtt::{RttEstimator, GRANULARITY, INITIAL_RTT};
pub use sent::SentPacket;

/// The three packet number spaces (RFC 9000 §12.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpaceId {
    /// Initial packets.
    Initial = 0,
    /// Handshake packets.
    Handshake = 1,
    /// 0-RTT and 1-RTT packets (application data).
    Data = 2,
}

impl SpaceId {
    /// All spaces, in the order the RFC iterates them.
    pub const ALL: [SpaceId; 3] = [SpaceId::Initial, SpaceId::Handshake, SpaceId::Data];

    /// Index into per-space arrays (0, 1, 2).
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Converts a count to the frame layer's varint, saturating at 2^62 - 1.
pub(crate) fn varint_saturating(v: u64) -> crate::VarInt {
    crate::VarInt::new(v).unwrap_or(crate::VarInt::MAX)
}
