//! A token-bucket pacer spreading a congestion window over the RTT (RFC 9002 §7.7).

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::INITIAL_MAX_DATAGRAM_SIZE;

/// Pacing rate as a multiple of `window / smoothed_rtt` (numerator, denominator): 1.25, so
/// pacing alone never keeps a sender below its window (quinn and Linux use similar gains).
pub const PACING_GAIN: (u64, u64) = (5, 4);

/// Smallest bucket capacity in max-size datagrams (the initial window): at least this many
/// may leave back to back. The bucket grows past it only where 2 ms of the window is more
/// ([`PACING_BURST_INTERVAL`]), a deliberate departure from the SHOULD below on short, fast
/// paths, as quinn and Linux make.
//= https://www.rfc-editor.org/rfc/rfc9002#section-7.7
//# Senders SHOULD limit bursts to the initial congestion window; see
//# Section 7.2.
pub const PACING_BURST_PACKETS: u64 = 10;

/// Most Ethernet-size (1472-byte) datagrams' worth of bytes a bucket holds, however large the
/// window: [`MAX_PACING_BURST_BYTES`].
pub const MAX_PACING_BURST_PACKETS: u64 = 256;

/// Most bytes a bucket holds (unless the initial window is larger): 256 Ethernet-size
/// datagrams, ~368 KiB, whatever the datagram size. With jumbo or loopback-size datagrams a
/// bound in datagrams would let bursts grow 6 to 45 times larger than on Ethernet, past what a
/// receiver's socket buffer takes at once.
pub const MAX_PACING_BURST_BYTES: u64 = MAX_PACING_BURST_PACKETS * 1472;

/// The bucket holds the window's worth of this much of an RTT (quinn and Linux TCP's TSO
/// autosizing size bursts by time the same way): on a short, fast path (loopback, a LAN) a
/// burst of only [`PACING_BURST_PACKETS`] datagrams would cap every GSO train at that and cost
/// a pacing wakeup per train, with no queue to protect. On paths where 2 ms of the window is
/// less than the initial window (most WAN paths) the burst stays at the initial window.
pub const PACING_BURST_INTERVAL: Duration = Duration::from_millis(2);

/// Token bucket pacer. Tokens are kept as time credit: the bucket fills at wall-clock speed
/// up to the time it takes to send a burst ([`Pacer::burst_bytes`]: the window's worth of
/// [`PACING_BURST_INTERVAL`] of the RTT, between [`PACING_BURST_PACKETS`] and
/// [`MAX_PACING_BURST_PACKETS`] datagrams) at the pacing rate, and sending
/// `n` bytes spends `n / rate`. The rate follows the window and RTT passed with each call.
///
/// Sans-IO: the caller asks [`release_time`](Self::release_time) and arms a timer when it is
/// in the future. ACK-only packets should not be paced (RFC 9002 §7.7).
//= https://www.rfc-editor.org/rfc/rfc9002#section-7.7
//# A sender SHOULD pace sending of all in-flight packets based on input
//# from the congestion controller.
#[derive(Clone, Debug)]
pub struct Pacer {
    mds: u16,
    /// Time credit in nanoseconds, or `None` for a full bucket.
    credit: Option<u64>,
    last: Option<Instant>,
    /// The full bucket's time for the last `(window, srtt)` asked: it is needed for every
    /// packet and only changes when the window or the RTT estimate does.
    burst: Cell<Option<BurstCache>>,
}

/// [`Pacer::burst_time`] memoised for one `(window, srtt)` (and the current MDS).
#[derive(Clone, Copy, Debug)]
struct BurstCache {
    window: u64,
    srtt: Duration,
    /// Nanoseconds, `None`: pacing is off for this window and RTT.
    burst_ns: Option<u64>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new(INITIAL_MAX_DATAGRAM_SIZE)
    }
}

/// `a * b / c` rounded up (`c > 0`), saturating; plain `u64` arithmetic unless it overflows.
fn mul_div_ceil(a: u64, b: u64, c: u64) -> u64 {
    match a.checked_mul(b) {
        Some(p) => p.div_ceil(c),
        None => {
            let q = (u128::from(a) * u128::from(b)).div_ceil(u128::from(c));
            u64::try_from(q).unwrap_or(u64::MAX)
        }
    }
}

/// Nanoseconds of `d`, saturating at `u64::MAX` (584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Pacer {
    /// A pacer with a full bucket.
    pub fn new(max_datagram_size: u16) -> Self {
        Self { mds: max_datagram_size, credit: None, last: None, burst: Cell::new(None) }
    }

    /// Follows a max_datagram_size change (the burst is counted in datagrams).
    pub fn set_max_datagram_size(&mut self, max_datagram_size: u16) {
        self.mds = max_datagram_size;
        self.burst.set(None);
    }

    /// Nanoseconds to send `bytes` at the pacing rate for `window` and `srtt`, rounded up;
    /// `None` when pacing is off (zero window or RTT).
    fn cost(bytes: u64, window: u64, srtt: Duration) -> Option<u64> {
        let rtt = nanos(srtt);
        if window == 0 || rtt == 0 {
            return None;
        }
        // bytes / (gain * window / srtt) = bytes * srtt * den / (num * window)
        let den = PACING_GAIN.0.saturating_mul(window);
        Some(mul_div_ceil(bytes.saturating_mul(PACING_GAIN.1), rtt, den))
    }

    /// The window that paces at `rate` bytes per second over `srtt` (the rate is
    /// [`PACING_GAIN`] times window per RTT): how a controller that sets its own pacing rate
    /// (BBR, [`super::Controller::pacing_rate`]) drives this pacer. The burst then holds
    /// [`PACING_BURST_INTERVAL`] of the rate over the gain (1.6 ms), at least the initial
    /// window.
    pub fn window_for_rate(rate: u64, srtt: Duration) -> u64 {
        // rate = num / den * window / srtt  =>  window = rate * srtt * den / num.
        let w = u128::from(rate) * srtt.as_nanos() * u128::from(PACING_GAIN.1)
            / (u128::from(PACING_GAIN.0) * 1_000_000_000);
        u64::try_from(w).unwrap_or(u64::MAX)
    }

    /// Bytes the bucket holds when full: `window · PACING_BURST_INTERVAL / srtt`, at least
    /// the initial window of the datagram size (RFC 9002 §7.2: [`PACING_BURST_PACKETS`]
    /// datagrams, 2 of them when that exceeds 14720 bytes) and at most
    /// [`MAX_PACING_BURST_BYTES`] (or that initial window when larger).
    pub fn burst_bytes(&self, window: u64, srtt: Duration) -> u64 {
        let mds = u64::from(self.mds);
        //= https://www.rfc-editor.org/rfc/rfc9002#section-7.2
        //# Endpoints SHOULD use an initial congestion
        //# window of ten times the maximum datagram size (max_datagram_size),
        //# while limiting the window to the larger of 14,720 bytes or twice the
        //# maximum datagram size.
        let initial = (mds * PACING_BURST_PACKETS).min(14_720u64.max(2 * mds));
        let (lo, hi) = (initial, MAX_PACING_BURST_BYTES.max(initial));
        let rtt = nanos(srtt).max(1);
        let interval = nanos(PACING_BURST_INTERVAL);
        let by_time = match window.checked_mul(interval) {
            Some(p) => p / rtt,
            None => {
                let q = u128::from(window) * u128::from(interval) / u128::from(rtt);
                u64::try_from(q).unwrap_or(u64::MAX)
            }
        };
        by_time.clamp(lo, hi)
    }

    /// Nanoseconds a full bucket takes to fill, memoised per `(window, srtt)`.
    fn burst_time(&self, window: u64, srtt: Duration) -> Option<u64> {
        if let Some(c) = self.burst.get() {
            if c.window == window && c.srtt == srtt {
                return c.burst_ns;
            }
        }
        let burst_ns = Self::cost(self.burst_bytes(window, srtt), window, srtt);
        self.burst.set(Some(BurstCache { window, srtt, burst_ns }));
        burst_ns
    }

    fn credit_at(&self, now: Instant, burst: u64) -> u64 {
        match (self.credit, self.last) {
            // Packets of one train share `now`: no time has passed.
            (Some(c), Some(last)) if last == now => c.min(burst),
            (Some(c), Some(last)) => {
                c.saturating_add(nanos(now.saturating_duration_since(last))).min(burst)
            }
            _ => burst,
        }
    }

    /// `now` when `need` nanoseconds of credit are there, else when they will be.
    fn when(&self, now: Instant, need: u64, burst: u64) -> Instant {
        let credit = self.credit_at(now, burst);
        if credit >= need {
            now
        } else {
            now + Duration::from_nanos(need - credit)
        }
    }

    /// The earliest time a packet of `bytes` may leave: `now` when it may leave right away.
    pub fn release_time(&self, now: Instant, bytes: u64, window: u64, srtt: Duration) -> Instant {
        let (Some(cost), Some(burst)) =
            (Self::cost(bytes, window, srtt), self.burst_time(window, srtt))
        else {
            return now;
        };
        self.when(now, cost, burst)
    }

    /// When the bucket will hold credit for `bytes` (capped at a full bucket, the burst):
    /// `now` when it already does. A blocked sender arms its timer for this with a batch's
    /// worth of bytes, so each wakeup releases a batch (one GSO train) rather than a single
    /// datagram; the rate is unchanged, credit keeps accruing while it waits.
    pub fn batch_release_time(
        &self,
        now: Instant,
        bytes: u64,
        window: u64,
        srtt: Duration,
    ) -> Instant {
        let (Some(cost), Some(burst)) =
            (Self::cost(bytes, window, srtt), self.burst_time(window, srtt))
        else {
            return now;
        };
        self.when(now, cost.min(burst), burst)
    }

    /// Spends the credit of a paced packet of `bytes` sent at `now`.
    pub fn on_packet_sent(&mut self, now: Instant, bytes: u64, window: u64, srtt: Duration) {
        let (Some(cost), Some(burst)) =
            (Self::cost(bytes, window, srtt), self.burst_time(window, srtt))
        else {
            return;
        };
        self.credit = Some(self.credit_at(now, burst).saturating_sub(cost));
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MDS: u64 = 1200;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.7
    //= type=test
    //# Senders SHOULD limit bursts to the initial congestion window; see
    //# Section 7.2.
    #[test]
    fn burst_never_exceeds_bucket() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut p = Pacer::new(MDS as u16);
        // 2 ms of a 100 ms RTT: 10 datagrams up to a 600 kB window, then 2 % of the window,
        // at most 256 Ethernet-size datagrams' worth of bytes (314 of 1200 bytes, 42 jumbo
        // ones of 8972, 5 of 65507), never below the initial window (2 datagrams above 7360
        // bytes).
        let max = MAX_PACING_BURST_BYTES;
        for (mds, window, bytes) in [
            (MDS, 12_000, 10 * MDS),
            (MDS, 120_000, 10 * MDS),
            (MDS, 1_200_000, 20 * MDS),
            (MDS, 60_000_000, max),
            (8972, 120_000, 2 * 8972),
            (8972, 60_000_000, max),
            (65507, 120_000, 2 * 65507),
            (65507, 60_000_000, max),
        ] {
            let mut p2 = Pacer::new(mds as u16);
            assert_eq!(p2.burst_bytes(window, ms(100)), bytes, "{mds} window {window}");
            let mut sent = 0;
            while p2.release_time(t0, mds, window, ms(100)) <= t0 && sent < 1000 {
                p2.on_packet_sent(t0, mds, window, ms(100));
                sent += 1;
            }
            // Never more than the bucket; at most one datagram short of it (the cost of each
            // datagram is rounded up to whole nanoseconds).
            assert!(
                sent * mds <= bytes && (sent + 2) * mds > bytes,
                "{mds} window {window}: {sent}"
            );
            if mds == MDS {
                assert_eq!(sent, bytes / mds, "window {window}");
            }
        }
        // After a long pause the bucket is full again, but never more than full.
        let w = 120_000;
        for _ in 0..10 {
            p.on_packet_sent(t0, MDS, w, ms(100));
        }
        let later = t0 + Duration::from_secs(10);
        let mut sent = 0;
        while p.release_time(later, MDS, w, ms(100)) <= later && sent < 1000 {
            p.on_packet_sent(later, MDS, w, ms(100));
            sent += 1;
        }
        assert_eq!(sent, PACING_BURST_PACKETS);
    }

    #[test]
    fn release_time_spacing() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut p = Pacer::new(MDS as u16);
        // Rate = 1.25 * 120000 B / 100 ms = 1.5 MB/s: one 1200-byte packet per 800 us.
        let (w, rtt) = (120_000, ms(100));
        for _ in 0..PACING_BURST_PACKETS {
            p.on_packet_sent(t0, MDS, w, rtt);
        }
        assert_eq!(p.release_time(t0, MDS, w, rtt), t0 + Duration::from_micros(800));
        // A smaller packet costs proportionally less.
        assert_eq!(p.release_time(t0, 600, w, rtt), t0 + Duration::from_micros(400));
        // Credit accrues with time.
        assert_eq!(
            p.release_time(t0 + Duration::from_micros(300), MDS, w, rtt),
            t0 + Duration::from_micros(800)
        );
        // No pacing without a window or an RTT.
        assert_eq!(p.release_time(t0, MDS, 0, rtt), t0);
        assert_eq!(p.release_time(t0, MDS, w, Duration::ZERO), t0);
    }

    #[test]
    fn batch_release_waits_for_the_batch_capped_at_the_burst() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut p = Pacer::new(MDS as u16);
        // One 1200-byte packet per 800 us.
        let (w, rtt) = (120_000, ms(100));
        for _ in 0..PACING_BURST_PACKETS {
            p.on_packet_sent(t0, MDS, w, rtt);
        }
        assert_eq!(p.batch_release_time(t0, 4 * MDS, w, rtt), t0 + Duration::from_micros(3200));
        // More than a bucket: a full bucket is all it waits for.
        let full = t0 + Duration::from_micros(8000);
        assert_eq!(p.batch_release_time(t0, 100 * MDS, w, rtt), full);
        assert_eq!(p.release_time(full, PACING_BURST_PACKETS * MDS, w, rtt), full);
        assert_eq!(p.batch_release_time(full, 100 * MDS, w, rtt), full);
    }

    #[test]
    fn long_run_rate_matches() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut p = Pacer::new(MDS as u16);
        let (w, rtt) = (300_000u64, ms(40));
        let mut now = t0;
        let mut bytes = 0u64;
        let end = t0 + Duration::from_secs(10);
        // A sender with unlimited data that sends as soon as the pacer allows.
        for _ in 0..1_000_000 {
            let at = p.release_time(now, MDS, w, rtt);
            if at > end {
                break;
            }
            now = at;
            p.on_packet_sent(now, MDS, w, rtt);
            bytes += MDS;
        }
        // 1.25 * 300000 / 0.04 s = 9.375 MB/s over 10 s, plus the initial burst (15 kB:
        // 2 ms of 300 kB per 40 ms).
        assert_eq!(p.burst_bytes(w, rtt), 15_000);
        let expected = 9_375_000 * 10 + 15_000;
        let err = (bytes as f64 - expected as f64).abs() / expected as f64;
        assert!(err < 0.001, "sent {bytes}, expected {expected}");
        assert!(bytes <= expected + MDS, "never faster than the rate");
    }

    #[test]
    fn window_for_rate_paces_at_the_rate() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut p = Pacer::new(MDS as u16);
        // 12.5 MB/s (100 Mbit/s) over 20 ms: a 1200-byte packet every 96 us.
        let rtt = ms(20);
        let w = Pacer::window_for_rate(12_500_000, rtt);
        assert_eq!(w, 200_000);
        // Empty the bucket, then the packets leave 96 us apart.
        let mut now = t0;
        for _ in 0..1000 {
            now = p.release_time(now, MDS, w, rtt);
            if now > t0 {
                break;
            }
            p.on_packet_sent(now, MDS, w, rtt);
        }
        p.on_packet_sent(now, MDS, w, rtt);
        assert_eq!(p.release_time(now, MDS, w, rtt), now + Duration::from_micros(96));
    }

    /// The memoised burst follows the window, the RTT and the datagram size.
    #[test]
    fn burst_follows_window_rtt_and_mds() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let p = Pacer::new(MDS as u16);
        let full_burst = |p: &Pacer, w: u64, rtt: Duration| {
            let mut q = p.clone();
            let mut sent = 0;
            while q.release_time(t0, MDS, w, rtt) <= t0 && sent < 1000 {
                q.on_packet_sent(t0, MDS, w, rtt);
                sent += 1;
            }
            sent
        };
        assert_eq!(full_burst(&p, 1_200_000, ms(100)), 20);
        assert_eq!(full_burst(&p, 2_400_000, ms(100)), 40, "window doubled");
        assert_eq!(full_burst(&p, 2_400_000, ms(200)), 20, "RTT doubled");
        let mut p = p;
        p.set_max_datagram_size(600);
        // 10 datagrams of 600 bytes at least: 6000 bytes, 5 of 1200.
        assert_eq!(full_burst(&p, 120_000, ms(100)), 5, "smaller datagrams, smaller floor");
    }
}
