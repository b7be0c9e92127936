//! Delivery rate estimation (draft-cheng-iccrg-delivery-rate-estimation, as BBR uses it): a
//! snapshot of the connection's delivery counters is taken with every packet sent
//! ([`DeliveryState`], kept in the sent-packet ledger), and each ACK turns the snapshot of the
//! most recently sent packet it acknowledges into a [`RateSample`]: bytes delivered over the
//! longer of the send and the ACK interval the packet spanned.
//!
//! The sampler lives in the loss detector (which sees every send, acknowledgment and loss),
//! and its samples go to the controller through [`super::Controller::on_ack_event`]; NewReno
//! and CUBIC ignore them.

use std::time::{Duration, Instant};

/// What the sampler knew when a packet was sent (per-packet state P.* of the draft).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryState {
    /// Bytes delivered (acknowledged) on the connection before the packet was sent.
    pub delivered: u64,
    /// When `delivered` last grew before the send (`None` for a packet sent before anything was
    /// delivered and while idle).
    pub delivered_time: Option<Instant>,
    /// Send time of the first packet of the flight this packet belongs to.
    pub first_sent_time: Option<Instant>,
    /// The packet was sent in an application-limited period: its sample may underestimate.
    pub is_app_limited: bool,
    /// Bytes in flight just after the packet was sent (itself included).
    pub tx_in_flight: u64,
    /// Bytes declared lost on the connection before the packet was sent.
    pub lost: u64,
}

/// One delivery-rate sample, produced per ACK that newly acknowledges in-flight data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSample {
    /// Bytes per second: `delivered / interval`. Zero when the interval was too short to tell
    /// (shorter than the minimum RTT): such samples carry no rate.
    pub delivery_rate: u64,
    /// The sample's packet was sent in an application-limited period.
    pub is_app_limited: bool,
    /// The longer of the send and the ACK interval.
    pub interval: Duration,
    /// Bytes delivered over `interval`.
    pub delivered: u64,
    /// The connection's delivered count when the sample's packet was sent.
    pub prior_delivered: u64,
    /// Round-trip time of the sample's packet (ACK time minus send time, ACK delay included).
    pub rtt: Duration,
    /// Bytes in flight when the sample's packet was sent (itself included).
    pub tx_in_flight: u64,
    /// Bytes lost between the sample's packet's send and this ACK.
    pub lost: u64,
    /// Bytes newly acknowledged by this ACK.
    pub newly_acked: u64,
    /// Bytes newly declared lost while processing this ACK.
    pub newly_lost: u64,
    /// The connection's delivered count after this ACK.
    pub total_delivered: u64,
    /// Bytes in flight after this ACK.
    pub bytes_in_flight: u64,
}

/// The connection-wide counters (C.* of the draft) and the sample being assembled for the ACK
/// in progress.
#[derive(Clone, Debug, Default)]
pub struct DeliveryRate {
    delivered: u64,
    delivered_time: Option<Instant>,
    first_sent_time: Option<Instant>,
    /// `delivered` count at which the current application-limited period ends (0: none).
    app_limited: u64,
    lost: u64,
    /// Lost bytes at the start of the ACK in progress (newly lost is the difference).
    lost_at_ack_start: u64,
    /// Snapshot of the most recently sent packet acknowledged by the ACK in progress, with
    /// its send time.
    best: Option<(DeliveryState, Instant)>,
    newly_acked: u64,
}

impl DeliveryRate {
    /// A sampler with nothing sent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Bytes declared lost so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Whether the connection is in an application-limited period.
    pub fn is_app_limited(&self) -> bool {
        self.app_limited != 0
    }

    /// The sender had nothing to send with `bytes_in_flight` outstanding: samples of packets
    /// sent until that much more is delivered are application-limited.
    pub fn on_app_limited(&mut self, bytes_in_flight: u64) {
        self.app_limited = (self.delivered + bytes_in_flight).max(1);
    }

    /// A packet of `bytes` is sent at `now` with `bytes_in_flight` outstanding before it: its
    /// snapshot.
    pub fn on_packet_sent(
        &mut self,
        now: Instant,
        bytes: u64,
        bytes_in_flight: u64,
    ) -> DeliveryState {
        if bytes_in_flight == 0 {
            self.first_sent_time = Some(now);
            self.delivered_time = Some(now);
        }
        DeliveryState {
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            is_app_limited: self.app_limited != 0,
            tx_in_flight: bytes_in_flight + bytes,
            lost: self.lost,
        }
    }

    /// Starts processing an ACK.
    pub fn on_ack_start(&mut self) {
        self.best = None;
        self.newly_acked = 0;
        self.lost_at_ack_start = self.lost;
    }

    /// A packet of `bytes` sent at `time_sent` with snapshot `p` is acknowledged at `now`.
    pub fn on_packet_acked(
        &mut self,
        now: Instant,
        time_sent: Instant,
        bytes: u64,
        p: &DeliveryState,
    ) {
        self.delivered += bytes;
        self.delivered_time = Some(now);
        self.newly_acked += bytes;
        // The most recently sent packet (largest delivered, then latest send) gives the sample.
        let newer = self.best.as_ref().is_none_or(|(b, t)| {
            p.delivered > b.delivered || (p.delivered == b.delivered && time_sent > *t)
        });
        if newer {
            self.best = Some((*p, time_sent));
            // The next flight starts with the packet acknowledged now.
            self.first_sent_time = Some(time_sent);
        }
        if self.app_limited != 0 && self.delivered > self.app_limited {
            self.app_limited = 0;
        }
    }

    /// A packet of `bytes` was declared lost.
    pub fn on_packet_lost(&mut self, bytes: u64) {
        self.lost += bytes;
    }

    /// The sample of the ACK in progress, `None` when it acknowledged no in-flight packet.
    /// `min_rtt` guards against ACK compression: an interval shorter than it yields no rate.
    pub fn sample(
        &mut self,
        now: Instant,
        min_rtt: Duration,
        bytes_in_flight: u64,
    ) -> Option<RateSample> {
        let (p, time_sent) = self.best.take()?;
        let send_elapsed =
            p.first_sent_time.map_or(Duration::ZERO, |f| time_sent.saturating_duration_since(f));
        let ack_elapsed =
            p.delivered_time.map_or(Duration::ZERO, |d| now.saturating_duration_since(d));
        let interval = send_elapsed.max(ack_elapsed);
        let delivered = self.delivered - p.delivered;
        let rate = if interval.is_zero() || interval < min_rtt {
            0
        } else {
            let r = u128::from(delivered) * 1_000_000_000 / interval.as_nanos();
            u64::try_from(r).unwrap_or(u64::MAX)
        };
        Some(RateSample {
            delivery_rate: rate,
            is_app_limited: p.is_app_limited,
            interval,
            delivered,
            prior_delivered: p.delivered,
            rtt: now.saturating_duration_since(time_sent),
            tx_in_flight: p.tx_in_flight,
            lost: self.lost - p.lost,
            newly_acked: self.newly_acked,
            newly_lost: self.lost - self.lost_at_ack_start,
            total_delivered: self.delivered,
            bytes_in_flight,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_flight_samples_the_sending_rate() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut d = DeliveryRate::new();
        let ms = Duration::from_millis;
        // 10 packets of 1000 bytes, one per ms; each is acknowledged 50 ms after its send.
        let mut snaps = Vec::new();
        for i in 0..10u64 {
            snaps.push((t0 + ms(i), d.on_packet_sent(t0 + ms(i), 1000, i * 1000)));
        }
        assert_eq!(snaps[0].1.tx_in_flight, 1000);
        assert_eq!(snaps[9].1.tx_in_flight, 10_000);
        let mut last = None;
        for (i, (sent, snap)) in snaps.iter().enumerate() {
            let now = *sent + ms(50);
            d.on_ack_start();
            d.on_packet_acked(now, *sent, 1000, snap);
            last = d.sample(now, ms(40), (9 - i as u64) * 1000);
        }
        let s = last.unwrap();
        // The last packet's snapshot dates from before any ACK (delivered 0 at t0), so its
        // sample is 10 kB over the longer of its 9 ms send interval and its 59 ms ACK interval.
        assert_eq!(s.delivered, 9000 + 1000);
        assert_eq!(s.interval, ms(59));
        assert_eq!(s.delivery_rate, 10_000 * 1000 / 59);
        assert_eq!(s.rtt, ms(50));
        assert_eq!(s.total_delivered, 10_000);
        assert!(!s.is_app_limited);
        // Too short an interval gives no rate.
        let snap = d.on_packet_sent(t0 + ms(100), 1000, 0);
        d.on_ack_start();
        d.on_packet_acked(t0 + ms(101), t0 + ms(100), 1000, &snap);
        assert_eq!(d.sample(t0 + ms(101), ms(40), 0).unwrap().delivery_rate, 0);
    }

    #[test]
    fn app_limited_marks_until_delivered_and_losses_counted() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut d = DeliveryRate::new();
        d.on_app_limited(0);
        let a = d.on_packet_sent(t0, 1000, 0);
        assert!(a.is_app_limited);
        d.on_ack_start();
        d.on_packet_acked(t0 + Duration::from_millis(10), t0, 1000, &a);
        assert!(!d.is_app_limited(), "the period ends once its bytes are delivered");
        let b = d.on_packet_sent(t0, 1000, 0);
        assert!(!b.is_app_limited);
        d.on_ack_start();
        d.on_packet_lost(500);
        let none = d.sample(t0, Duration::ZERO, 0);
        assert!(none.is_none(), "no sample without an acknowledged packet");
        d.on_ack_start();
        d.on_packet_lost(700);
        d.on_packet_acked(t0 + Duration::from_millis(20), t0, 1000, &b);
        let s = d.sample(t0 + Duration::from_millis(20), Duration::ZERO, 0).unwrap();
        assert_eq!((s.lost, s.newly_lost), (1200, 700));
    }
}
