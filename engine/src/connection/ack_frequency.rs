//! The QUIC Acknowledgment Frequency extension (draft-ietf-quic-ack-frequency) at the
//! connection, both ways:
//!
//! - As a data receiver we advertise min_ack_delay and honour the peer's ACK_FREQUENCY
//!   (Ack-Eliciting Threshold, Requested Max Ack Delay, Reordering Threshold; the newest
//!   Sequence Number wins) and IMMEDIATE_ACK frames.
//! - As a data sender, once the peer advertised min_ack_delay and our congestion window holds
//!   many packets, we ask for one ACK per [`WINDOW_FRACTION`] of the window (at most one per
//!   [`MAX_REQUESTED_THRESHOLD`] + 1 packets), within a quarter of the smoothed RTT, with the
//!   loss detector's packet threshold as Reordering Threshold; PTO probes carry IMMEDIATE_ACK.
//!
//! An ACK per two packets costs a datagram per two received: at 10 Gbit/s of 1452-byte
//! packets, ~430k ACK datagrams per second to build, send and process. Between endpoints that
//! both speak the extension the ACK rate follows the window instead.

use std::time::{Duration, Instant};

use super::Connection;
use crate::error::Error;
use crate::frame::AckFrequency;
use crate::recovery::{SpaceId, PACKET_THRESHOLD};
use crate::transport_params::MAX_ACK_DELAY_LIMIT_MS;
use crate::varint::VarInt;

/// The min_ack_delay we advertise: 1 ms, the granularity of the worker's timers.
pub const DEFAULT_MIN_ACK_DELAY: Duration = Duration::from_millis(1);
/// ACKs asked for per congestion window: the Ack-Eliciting Threshold is the window in packets
/// divided by this.
pub const WINDOW_FRACTION: u64 = 8;
/// The largest Ack-Eliciting Threshold we ask for.
pub const MAX_REQUESTED_THRESHOLD: u64 = 127;

/// What one side of the extension remembers.
#[derive(Debug, Default)]
pub(super) struct AckFrequencyState {
    /// Receiver: the largest Sequence Number processed.
    peer_sequence: Option<u64>,
    /// Sender: the next Sequence Number.
    next_sequence: u64,
    /// Sender: the request in force (Sequence Number, threshold, delay in us, reordering).
    sent: Option<(u64, u64, u64, u64)>,
    /// Sender: when the last request was sent.
    sent_at: Option<Instant>,
    /// Sender: the last request was lost and nothing newer was sent.
    resend: bool,
    /// ACK_FREQUENCY frames sent.
    pub frames_sent: u64,
    /// IMMEDIATE_ACK frames sent.
    pub immediate_acks_sent: u64,
    /// ACK_FREQUENCY frames received and applied.
    pub frames_applied: u64,
    /// IMMEDIATE_ACK frames received.
    pub immediate_acks_received: u64,
}

impl Connection {
    /// Whether the peer accepts ACK_FREQUENCY and IMMEDIATE_ACK frames (it advertised
    /// min_ack_delay) and we are configured to use them.
    pub(super) fn peer_supports_ack_frequency(&self) -> bool {
        self.config.ack_frequency && self.peer_min_ack_delay().is_some()
    }

    fn peer_min_ack_delay(&self) -> Option<u64> {
        self.peer_params.as_ref()?.min_ack_delay.map(VarInt::into_inner)
    }

    /// An ACK_FREQUENCY frame from the peer.
    pub(super) fn on_ack_frequency(&mut self, f: &AckFrequency) -> Result<(), Error> {
        if !self.config.ack_frequency {
            return Err(Error::protocol_violation("ACK_FREQUENCY without min_ack_delay"));
        }
        let delay_us = f.request_max_ack_delay.into_inner();
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-4
        //# Note that values
        //# of 2^14 milliseconds or greater are invalid for max_ack_delay, as specified in
        //# Section 18.2 of [QUIC-TRANSPORT]. A value smaller than the min_ack_delay
        //# advertised by the peer is also invalid. Receipt of an invalid value MUST be
        //# treated as a connection error of type PROTOCOL_VIOLATION.
        if delay_us >= MAX_ACK_DELAY_LIMIT_MS * 1000 || delay_us < self.local_min_ack_delay_us() {
            return Err(Error::protocol_violation("ACK_FREQUENCY max_ack_delay out of range"));
        }
        let seq = f.sequence.into_inner();
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-4
        //# A receiving endpoint MUST ignore a received ACK_FREQUENCY frame unless the
        //# Sequence Number value in the frame is greater than the largest processed
        //# value.
        if self.ack_frequency.peer_sequence.is_some_and(|s| seq <= s) {
            return Ok(());
        }
        self.ack_frequency.peer_sequence = Some(seq);
        self.ack_frequency.frames_applied += 1;
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-4
        //# On receipt of a valid value, the endpoint SHOULD update
        //# its max_ack_delay to the value provided by the peer.
        self.spaces[SpaceId::Data.index()].acks.set_ack_frequency(
            f.ack_eliciting_threshold.into_inner(),
            Duration::from_micros(delay_us),
            f.reordering_threshold.into_inner(),
        );
        Ok(())
    }

    /// The min_ack_delay we advertise, in microseconds (never above our max_ack_delay).
    pub(super) fn local_min_ack_delay_us(&self) -> u64 {
        DEFAULT_MIN_ACK_DELAY.min(self.config.max_ack_delay).as_micros() as u64
    }

    /// An IMMEDIATE_ACK frame from the peer.
    pub(super) fn on_immediate_ack(&mut self, now: Instant) -> Result<(), Error> {
        if !self.config.ack_frequency {
            return Err(Error::protocol_violation("IMMEDIATE_ACK without min_ack_delay"));
        }
        self.ack_frequency.immediate_acks_received += 1;
        self.spaces[SpaceId::Data.index()].acks.on_immediate_ack(now);
        Ok(())
    }

    /// The ACK_FREQUENCY request to send now, if one is due: the window grew or shrank by
    /// half or more since the last request (at most once per smoothed RTT), or the last
    /// request was lost. Returns (threshold, delay in microseconds, reordering threshold).
    fn ack_frequency_due(&self, now: Instant) -> Option<(u64, u64, u64)> {
        if !self.handshake_confirmed || !self.peer_supports_ack_frequency() {
            return None;
        }
        let srtt = self.loss.rtt().smoothed();
        let st = &self.ack_frequency;
        if !st.resend && st.sent_at.is_some_and(|t| now < t + srtt) {
            return None;
        }
        let mds = self.max_datagram_size().max(1) as u64;
        let packets = self.cc.window() / mds;
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-9.1
        //# The sender can also improve feedback and robustness to
        //# variation in the path RTT by setting the Ack-Eliciting Threshold
        //# to a value no larger than number of maximum-sized packets that fit
        //# into the current congestion window.
        let threshold = (packets / WINDOW_FRACTION).clamp(1, MAX_REQUESTED_THRESHOLD);
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-9.1
        //# A data sender can set the Requested Max Ack Delay value
        //# to no more than the estimated round trip time.
        // Bounded by the peer's own max_ack_delay too, which our PTO keeps using: the PTO
        // never assumes a shorter delay than the peer may take.
        let peer_max = self.loss.peer_max_ack_delay().as_micros() as u64;
        let min = self.peer_min_ack_delay().unwrap_or(0).max(1);
        let delay = ((srtt.as_micros() as u64) / 4).clamp(min, peer_max.max(min));
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-8
        //# To ensure timely loss detection, a data sender can send a Reordering Threshold
        //# value that is the same as the loss detection packet threshold.
        let reorder = PACKET_THRESHOLD;
        match st.sent {
            // Nothing asked yet: the RFC 9000 default (every other packet) is what we want
            // until the window holds several ACKs' worth of packets.
            None if threshold <= 1 => None,
            Some((_, t, d, _)) if !st.resend && !changed(t, threshold) && !changed(d, delay) => {
                None
            }
            _ => Some((threshold, delay, reorder)),
        }
    }

    /// Writes an ACK_FREQUENCY frame into `w` when one is due; returns its Sequence Number.
    pub(super) fn write_ack_frequency(
        &mut self,
        now: Instant,
        w: &mut crate::coding::Writer<'_>,
    ) -> Option<u64> {
        let (threshold, delay, reorder) = self.ack_frequency_due(now)?;
        let seq = self.ack_frequency.next_sequence;
        let v = |x: u64| VarInt::new(x).unwrap_or(VarInt::MAX);
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-4
        //# A sending endpoint MUST send monotonically increasing values in
        //# the Sequence Number field to allow obsolete ACK_FREQUENCY frames to be
        //# ignored when packets are processed out of order.
        let f = AckFrequency {
            sequence: v(seq),
            ack_eliciting_threshold: v(threshold),
            request_max_ack_delay: v(delay),
            reordering_threshold: v(reorder),
        };
        f.encode(w).ok()?;
        let st = &mut self.ack_frequency;
        st.next_sequence += 1;
        st.sent = Some((seq, threshold, delay, reorder));
        st.sent_at = Some(now);
        st.resend = false;
        st.frames_sent += 1;
        Some(seq)
    }

    /// The packet carrying ACK_FREQUENCY `seq` was lost: send a fresh request unless a newer
    /// one went out since.
    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-4
    //# When an
    //# ACK_FREQUENCY frame is lost, the sender is encouraged to send another
    //# ACK_FREQUENCY frame, unless an ACK_FREQUENCY frame with a larger Sequence Number
    //# value has already been sent.
    pub(super) fn on_ack_frequency_lost(&mut self, seq: u64) {
        if self.ack_frequency.sent.is_some_and(|(s, ..)| s == seq) {
            self.ack_frequency.resend = true;
        }
    }

    /// The ACK_FREQUENCY request in force at the peer as we sent it: (threshold, max ack
    /// delay, reordering threshold).
    pub fn ack_frequency_requested(&self) -> Option<(u64, Duration, u64)> {
        self.ack_frequency.sent.map(|(_, t, d, r)| (t, Duration::from_micros(d), r))
    }
}

/// Whether `new` differs from `old` by a factor of 1.5 or more either way.
fn changed(old: u64, new: u64) -> bool {
    new * 2 >= old * 3 || new * 3 <= old * 2
}
