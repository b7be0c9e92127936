//! Congestion control (RFC 9002 §7, RFC 9438, draft-cardwell-ccwg-bbr): the [`Controller`]
//! trait, NewReno, CUBIC, BBRv3, a factory selecting one by name, delivery-rate sampling
//! ([`DeliveryRate`]) and a [`Pacer`].
//!
//! Division of labour: bytes in flight are counted by the sender's packet ledger
//! ([`crate::recovery::LossDetector::bytes_in_flight`]), not by the controller — the ledger is
//! the only place that sees every send, acknowledgment, loss and key discard, so the count
//! cannot drift. The controller owns the window and the slow start threshold; it is told about
//! sends (with the bytes in flight before the send, to detect idle restarts), acknowledged
//! packets, congestion events and persistent congestion. The connection may send while
//! `bytes_in_flight < window()` (PTO probes excepted, RFC 9002 §7.5), paced by a [`Pacer`].
//!
//! Application-limited periods are the connection's call: it passes `app_limited = true` with
//! acknowledgments when it did not fill the window because it had nothing (or no flow-control
//! credit) to send, and controllers then leave the window alone (RFC 9002 §7.8).

mod bbr;
mod cubic;
mod delivery;
mod hystart;
mod new_reno;
mod pacer;

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

pub use bbr::Bbr;
pub use cubic::{Cubic, CUBIC_BETA, CUBIC_C};
pub use delivery::{DeliveryRate, DeliveryState, RateSample};
pub use new_reno::{NewReno, LOSS_REDUCTION_FACTOR};
pub use pacer::{
    Pacer, MAX_PACING_BURST_PACKETS, PACING_BURST_INTERVAL, PACING_BURST_PACKETS, PACING_GAIN,
};

use crate::recovery::RttEstimator;

/// The smallest max_datagram_size QUIC allows (RFC 9000 §14), and the size assumed until a
/// larger path MTU is confirmed.
pub const INITIAL_MAX_DATAGRAM_SIZE: u16 = 1200;

/// Initial window in datagrams (RFC 9002 §7.2).
pub const INITIAL_WINDOW_PACKETS: u64 = 10;

/// Byte cap of the initial window (RFC 9002 §7.2), unless two datagrams are larger.
pub const INITIAL_WINDOW_CAP: u64 = 14720;

/// Minimum window in datagrams (kMinimumWindow = 2 * max_datagram_size).
pub const MINIMUM_WINDOW_PACKETS: u64 = 2;

/// The initial congestion window for `max_datagram_size`:
/// `min(10 * max_datagram_size, max(14720, 2 * max_datagram_size))`.
//= https://www.rfc-editor.org/rfc/rfc9002#section-7.2
//# Endpoints SHOULD use an initial congestion
//# window of ten times the maximum datagram size (max_datagram_size),
//# while limiting the window to the larger of 14,720 bytes or twice the
//# maximum datagram size.
pub const fn initial_window(max_datagram_size: u16) -> u64 {
    let mds = max_datagram_size as u64;
    let cap = if INITIAL_WINDOW_CAP > MINIMUM_WINDOW_PACKETS * mds {
        INITIAL_WINDOW_CAP
    } else {
        MINIMUM_WINDOW_PACKETS * mds
    };
    if INITIAL_WINDOW_PACKETS * mds < cap {
        INITIAL_WINDOW_PACKETS * mds
    } else {
        cap
    }
}

/// The minimum congestion window for `max_datagram_size` (kMinimumWindow).
//= https://www.rfc-editor.org/rfc/rfc9002#section-7.2
//# The RECOMMENDED
//# value is 2 * max_datagram_size.
pub const fn minimum_window(max_datagram_size: u16) -> u64 {
    MINIMUM_WINDOW_PACKETS * max_datagram_size as u64
}

/// A congestion controller. One per path; every method takes `now` (sans-IO).
pub trait Controller: Send + fmt::Debug {
    /// The algorithm's name, as accepted by [`Algorithm::from_str`].
    fn name(&self) -> &'static str;

    /// The congestion window in bytes.
    fn window(&self) -> u64;

    /// The slow start threshold in bytes (`u64::MAX` until the first congestion event).
    fn ssthresh(&self) -> u64;

    /// Whether the controller is in slow start.
    fn in_slow_start(&self) -> bool {
        self.window() < self.ssthresh()
    }

    /// An in-flight packet of `bytes` was sent; `bytes_in_flight` is the count *before* it
    /// (zero means the sender was idle).
    fn on_packet_sent(&mut self, now: Instant, bytes: u64, bytes_in_flight: u64);

    /// An in-flight packet of `bytes` sent at `time_sent` was acknowledged. `app_limited`: the
    /// sender was not using the whole window. `rtt` already includes this ACK's sample.
    fn on_ack(
        &mut self,
        now: Instant,
        time_sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    );

    /// A packet sent at `time_sent` was lost, or the peer reported a CE-count increase for it.
    /// At most one reduction happens per recovery period.
    fn on_congestion_event(&mut self, now: Instant, time_sent: Instant);

    /// Persistent congestion was established (RFC 9002 §7.6): collapse to the minimum window.
    /// Called right after the [`on_congestion_event`](Self::on_congestion_event) for the same
    /// losses.
    fn on_persistent_congestion(&mut self, now: Instant);

    /// The path's max_datagram_size changed (a PMTU probe succeeded, or the size had to
    /// shrink): the minimum and initial windows follow it.
    fn set_max_datagram_size(&mut self, max_datagram_size: u16);

    /// The current max_datagram_size.
    fn max_datagram_size(&self) -> u16;

    /// After one ACK's [`on_ack`](Self::on_ack) calls (and the losses it revealed): the
    /// ACK's delivery-rate sample ([`RateSample`]). Model-based controllers (BBR) act here;
    /// the default ignores it.
    fn on_ack_event(&mut self, now: Instant, sample: &RateSample) {
        let _ = (now, sample);
    }

    /// An in-flight packet of `bytes`, sent with the delivery state `sent`, was declared lost;
    /// `lost_total` counts the bytes lost on the path so far, this packet included. Called
    /// before [`on_congestion_event`](Self::on_congestion_event) for the same losses. The
    /// default ignores it.
    fn on_packet_lost(&mut self, now: Instant, bytes: u64, sent: &DeliveryState, lost_total: u64) {
        let _ = (now, bytes, sent, lost_total);
    }

    /// The pacing rate the controller sets, in bytes per second, or `None` (the default) to
    /// pace at [`PACING_GAIN`] times the window per smoothed RTT.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }

    /// The controller's estimate of the path's bottleneck bandwidth in bytes per second, for
    /// controllers that keep one (BBR); `None` (the default) for window-based ones.
    fn bandwidth_estimate(&self) -> Option<u64> {
        None
    }
}

/// Invalid congestion configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CongestionConfigError {
    /// max_datagram_size below the 1200 bytes QUIC requires.
    #[error("max_datagram_size {0} is below the QUIC minimum of 1200")]
    DatagramTooSmall(u16),
    /// Initial window below the minimum window.
    #[error("initial window {window} is below the minimum window {minimum}")]
    WindowTooSmall {
        /// The requested initial window.
        window: u64,
        /// The minimum window for the configured max_datagram_size.
        minimum: u64,
    },
}

/// Configuration shared by the controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    max_datagram_size: u16,
    initial_window: Option<u64>,
    hystart: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self { max_datagram_size: INITIAL_MAX_DATAGRAM_SIZE, initial_window: None, hystart: true }
    }
}

impl Config {
    /// The starting max_datagram_size, in bytes. Default 1200 (the QUIC minimum); must be
    /// at least 1200. Larger values give a larger initial window.
    pub fn with_max_datagram_size(mut self, size: u16) -> Result<Self, CongestionConfigError> {
        if size < INITIAL_MAX_DATAGRAM_SIZE {
            return Err(CongestionConfigError::DatagramTooSmall(size));
        }
        self.max_datagram_size = size;
        self.check()?;
        Ok(self)
    }

    /// Overrides the initial window, in bytes. Default (`None`): RFC 9002's
    /// `min(10 * mds, max(14720, 2 * mds))`. Must be at least the minimum window. Larger values
    /// start faster on clean paths at the price of bigger initial bursts.
    pub fn with_initial_window(
        mut self,
        window: Option<u64>,
    ) -> Result<Self, CongestionConfigError> {
        self.initial_window = window;
        self.check()?;
        Ok(self)
    }

    /// Enables HyStart++ (RFC 9406) in CUBIC's slow start. Default on: slow start exits on a
    /// sustained RTT rise instead of overflowing the bottleneck's buffer.
    pub fn with_hystart(mut self, enabled: bool) -> Self {
        self.hystart = enabled;
        self
    }

    fn check(&self) -> Result<(), CongestionConfigError> {
        let minimum = minimum_window(self.max_datagram_size);
        match self.initial_window {
            Some(window) if window < minimum => {
                Err(CongestionConfigError::WindowTooSmall { window, minimum })
            }
            _ => Ok(()),
        }
    }

    /// The configured max_datagram_size.
    pub fn max_datagram_size(&self) -> u16 {
        self.max_datagram_size
    }

    /// The initial window in bytes for the configured max_datagram_size.
    pub fn initial_window(&self) -> u64 {
        self.initial_window.unwrap_or_else(|| initial_window(self.max_datagram_size))
    }

    /// Whether an initial window override is set.
    pub(crate) fn initial_window_override(&self) -> Option<u64> {
        self.initial_window
    }

    /// Whether HyStart++ is enabled.
    pub fn hystart(&self) -> bool {
        self.hystart
    }
}

/// The congestion control algorithms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// NewReno (RFC 9002 §7, Appendix B).
    NewReno,
    /// CUBIC (RFC 9438).
    Cubic,
    /// BBR version 3 (draft-cardwell-ccwg-bbr): model-based, paced at its bandwidth estimate.
    /// The default: under random loss it keeps the path full where loss-based CUBIC shrinks
    /// its window (README, "Congestion control").
    #[default]
    Bbr,
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Algorithm; 3] = [Algorithm::NewReno, Algorithm::Cubic, Algorithm::Bbr];

    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::NewReno => "newreno",
            Algorithm::Cubic => "cubic",
            Algorithm::Bbr => "bbr",
        }
    }

    /// A controller of this algorithm.
    pub fn build(self, config: &Config) -> Box<dyn Controller> {
        match self {
            Algorithm::NewReno => Box::new(NewReno::new(config)),
            Algorithm::Cubic => Box::new(Cubic::new(config)),
            Algorithm::Bbr => Box::new(Bbr::new(config)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name that is not known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown congestion controller {name:?} (known: newreno, cubic, bbr)")]
pub struct UnknownAlgorithm {
    /// The name that was asked for.
    pub name: String,
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Case-insensitive: `newreno` (also `reno`, `new_reno`), `cubic` or `bbr` (also `bbr3`,
    /// `bbrv3`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "newreno" | "new_reno" | "new-reno" | "reno" => Ok(Algorithm::NewReno),
            "cubic" => Ok(Algorithm::Cubic),
            "bbr" | "bbr3" | "bbrv3" => Ok(Algorithm::Bbr),
            _ => Err(UnknownAlgorithm { name: s.to_owned() }),
        }
    }
}

/// A controller selected by name (see [`Algorithm::from_str`]).
pub fn controller_by_name(
    name: &str,
    config: &Config,
) -> Result<Box<dyn Controller>, UnknownAlgorithm> {
    Ok(name.parse::<Algorithm>()?.build(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.2
    //= type=test
    //# Endpoints SHOULD use an initial congestion
    //# window of ten times the maximum datagram size (max_datagram_size),
    //# while limiting the window to the larger of 14,720 bytes or twice the
    //# maximum datagram size.
    #[test]
    fn initial_and_minimum_windows() {
        assert_eq!(initial_window(1200), 12000);
        assert_eq!(initial_window(1472), 14720);
        assert_eq!(initial_window(1500), 14720);
        assert_eq!(initial_window(9000), 18000);
        assert_eq!(minimum_window(1200), 2400);
        assert_eq!(minimum_window(1500), 3000);
    }

    #[test]
    fn factory_by_name() {
        let cfg = Config::default();
        for alg in Algorithm::ALL {
            let c = controller_by_name(alg.name(), &cfg).unwrap();
            assert_eq!(c.name(), alg.name());
            assert_eq!(c.window(), 12000);
            assert_eq!(c.ssthresh(), u64::MAX);
        }
        assert_eq!("NewReno".parse::<Algorithm>(), Ok(Algorithm::NewReno));
        assert_eq!("CUBIC".parse::<Algorithm>(), Ok(Algorithm::Cubic));
        assert_eq!("BBR".parse::<Algorithm>(), Ok(Algorithm::Bbr));
        let err = controller_by_name("vegas", &cfg).unwrap_err();
        assert_eq!(err, UnknownAlgorithm { name: "vegas".into() });
        assert_eq!(
            err.to_string(),
            "unknown congestion controller \"vegas\" (known: newreno, cubic, bbr)"
        );
    }

    #[test]
    fn config_validation() {
        assert_eq!(
            Config::default().with_max_datagram_size(1199),
            Err(CongestionConfigError::DatagramTooSmall(1199))
        );
        assert_eq!(
            Config::default().with_initial_window(Some(2399)),
            Err(CongestionConfigError::WindowTooSmall { window: 2399, minimum: 2400 })
        );
        let c = Config::default().with_initial_window(Some(2400)).unwrap();
        assert_eq!(c.initial_window(), 2400);
        // Raising the datagram size re-validates the override.
        assert!(c.with_max_datagram_size(1500).is_err());
        let c = Config::default().with_max_datagram_size(1500).unwrap();
        assert_eq!(c.initial_window(), 14720);
        let r = NewReno::new(&c);
        assert_eq!(r.window(), 14720);
    }
}
