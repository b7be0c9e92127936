//! CUBIC tests against RFC 9438's closed forms.

use super::*;

const MDS: u64 = 1200;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn rtt_of(v: Duration, t0: Instant) -> RttEstimator {
    let mut r = RttEstimator::default();
    r.update(t0, v, Duration::ZERO, Duration::ZERO, true);
    r
}

/// A CUBIC without HyStart++, grown in slow start to `segments` and then reduced by a loss
/// detected at t0 + 1 ms.
fn reduced_from(segments: u64, t0: Instant) -> Cubic {
    let cfg = Config::default().with_hystart(false);
    let mut c = Cubic::new(&cfg);
    let rtt = RttEstimator::default();
    c.on_ack(t0, t0, segments * MDS - c.window(), false, &rtt);
    assert_eq!(c.window(), segments * MDS);
    c.on_congestion_event(t0 + ms(1), t0);
    c
}

/// W_cubic(t) in bytes, straight from RFC 9438 Figures 1 and 2 (windows in segments).
fn closed_form(t: f64, w_max_segments: f64, cwnd_epoch_segments: f64) -> f64 {
    let k = ((w_max_segments - cwnd_epoch_segments) / 0.4).cbrt();
    (0.4 * (t - k).powi(3) + w_max_segments) * MDS as f64
}

fn assert_near(got: u64, want: f64, what: &str) {
    assert!((got as f64 - want).abs() <= 1.0, "{what}: window {got}, expected {want:.1}");
}

//= https://www.rfc-editor.org/rfc/rfc9438#section-4.6
//= type=test
//# The parameter β_cubic SHOULD be set to 0.7.
#[test]
fn beta_reduction_and_fast_convergence() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut c = reduced_from(100, t0);
    assert_eq!(c.window(), 70 * MDS);
    assert_eq!(c.ssthresh(), 70 * MDS);
    assert_eq!(c.w_max(), 100.0 * MDS as f64);
    // Losses of packets sent before the recovery period: no further reduction.
    c.on_congestion_event(t0 + ms(2), t0 + ms(1));
    assert_eq!(c.window(), 70 * MDS);
    //= https://www.rfc-editor.org/rfc/rfc9438#section-4.7
    //= type=test
    //# To speed up this
    //# bandwidth release by existing flows, the following fast convergence
    //# mechanism SHOULD be implemented.
    // A new event below W_max: W_max = cwnd * (1 + 0.7) / 2.
    c.on_congestion_event(t0 + ms(10), t0 + ms(5));
    assert_eq!(c.w_max(), 70.0 * 0.85 * MDS as f64);
    assert_eq!(c.window(), 49 * MDS);
    // Never below the minimum window.
    for i in 0..10 {
        c.on_congestion_event(t0 + ms(100 + 10 * i), t0 + ms(99 + 10 * i));
    }
    assert_eq!(c.window(), 2 * MDS);
}

//= https://www.rfc-editor.org/rfc/rfc9438#section-4.4
//= type=test
//# In this region, _cwnd_ MUST be incremented by (target - cwnd)/cwnd
//# for each received new ACK, where _target_ is calculated as described
//# in Section 4.2.
#[test]
fn growth_follows_w_cubic() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut c = reduced_from(100, t0);
    let rtt = rtt_of(ms(100), t0);
    // W_max = 100 segments, cwnd_epoch = 70: K = cbrt(30 / 0.4) = cbrt(75) s.
    let te = t0 + ms(1000);
    c.on_ack(te, te - ms(100), 1, false, &rtt);
    assert!((c.k() - 75f64.cbrt()).abs() < 1e-9, "K = {}", c.k());
    // An ACK for a whole window moves cwnd by (target - cwnd) / cwnd per byte-scaled ACK,
    // i.e. to target = W_cubic(t + RTT), as long as the clamps do not apply.
    for t in [1.0, 75f64.cbrt(), 6.0] {
        let now = te + Duration::from_secs_f64(t);
        c.on_ack(now, now - ms(100), c.window(), false, &rtt);
        assert_near(c.window(), closed_form(t + 0.1, 100.0, 70.0), &format!("t = {t}"));
    }
    // Far in the convex region the target is capped at 1.5 * cwnd.
    let before = c.window();
    let now = te + Duration::from_secs(10);
    c.on_ack(now, now - ms(100), c.window(), false, &rtt);
    assert!(closed_form(10.1, 100.0, 70.0) > 1.5 * before as f64);
    assert_near(c.window(), 1.5 * before as f64, "t = 10 (clamped)");
}

//= https://www.rfc-editor.org/rfc/rfc9438#section-4.3
//= type=test
//# If so, CUBIC is in the
//# Reno-friendly region and _cwnd_ SHOULD be set to _W_est_ at each
//# reception of a new ACK.
#[test]
fn reno_friendly_region_on_short_rtt() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    // W_max = 20 segments, RTT 10 ms: Reno's 1 segment per RTT beats the cubic curve.
    let mut c = reduced_from(20, t0);
    assert_eq!(c.window(), 14 * MDS);
    let rtt = rtt_of(ms(10), t0);
    let te = t0 + ms(100);
    // Model of Figure 4 for whole-window ACKs: W_est grows by α_cubic segments per ACK, and
    // α_cubic becomes 1 once W_est reaches cwnd_prior (20 segments).
    let mut w_est = 14.0 * MDS as f64;
    let mut alpha_switch = None;
    for n in 0..100u64 {
        let now = te + ms(10 * n);
        let alpha = if w_est >= 20.0 * MDS as f64 { 1.0 } else { CUBIC_ALPHA };
        if alpha == 1.0 && alpha_switch.is_none() {
            alpha_switch = Some(n);
        }
        w_est += alpha * MDS as f64;
        c.on_ack(now, now - ms(10), c.window(), false, &rtt);
        assert_near(c.window(), w_est.floor(), &format!("ACK {n}"));
        let t = (10 * n) as f64 / 1000.0;
        assert!(closed_form(t, 20.0, 14.0) < w_est, "Reno-friendly at ACK {n}");
    }
    // 0.529 segments per RTT until cwnd_prior, then exactly one.
    assert_eq!(alpha_switch, Some(12));
    assert!(c.window() > 100 * MDS);
}

//= https://www.rfc-editor.org/rfc/rfc9438#section-4.2
//= type=test
//# The elapsed time _t_ in Figure 1 MUST NOT include periods during
//# which _cwnd_ has not been updated due to application-limited behavior
//# (see Section 5.8).
#[test]
fn app_limited_and_idle_periods_excluded_from_t() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut c = reduced_from(100, t0);
    let rtt = rtt_of(ms(100), t0);
    let te = t0 + ms(1000);
    c.on_ack(te, te - ms(100), 1, false, &rtt);
    let t1 = te + ms(1000);
    c.on_ack(t1, t1 - ms(100), c.window(), false, &rtt);
    let w1 = c.window();
    // Five seconds of application-limited ACKs: no growth, and t stands still.
    for s in 1..=5 {
        let now = t1 + Duration::from_secs(s);
        c.on_ack(now, now - ms(100), c.window(), true, &rtt);
        assert_eq!(c.window(), w1);
    }
    let now = t1 + ms(5010);
    c.on_ack(now, now - ms(100), c.window(), false, &rtt);
    assert_near(c.window(), closed_form(1.11, 100.0, 70.0), "t = 1.01 s after the pause");
    // Idle for 3 s (nothing in flight), then sending again: t resumes where it was.
    let w2 = c.window();
    let resume = now + Duration::from_secs(3);
    c.on_packet_sent(resume, 1200, 0);
    let later = resume + ms(10);
    c.on_ack(later, resume, c.window(), false, &rtt);
    assert_near(c.window(), closed_form(1.12, 100.0, 70.0), "t = 1.02 s after idle");
    assert!(c.window() > w2);
}

#[test]
fn persistent_congestion_restarts_with_k_zero() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut c = reduced_from(100, t0);
    c.on_persistent_congestion(t0 + ms(2));
    assert_eq!(c.window(), 2 * MDS);
    assert!(c.in_slow_start());
    let rtt = rtt_of(ms(100), t0);
    // Slow start back to ssthresh (70 segments), then the first CA stage: K = 0,
    // W_max = cwnd_epoch.
    let t = t0 + ms(500);
    c.on_ack(t, t0 + ms(400), 68 * MDS, false, &rtt);
    assert_eq!(c.window(), 70 * MDS);
    assert!(!c.in_slow_start());
    let te = t0 + ms(600);
    c.on_ack(te, te - ms(100), 1, false, &rtt);
    assert_eq!(c.k(), 0.0);
    assert_eq!(c.w_max(), 70.0 * MDS as f64);
    // At t = 3 s the curve (W_cubic(3) = 70 + 0.4 * 27 segments) is above W_est.
    let now = te + ms(3000);
    c.on_ack(now, now - ms(100), c.window(), false, &rtt);
    assert_near(c.window(), closed_form(3.1, 70.0, 70.0), "convex from the start");
}

/// HyStart++ inside CUBIC: doubling per round until the RTT rises by the threshold, then a
/// quarter of the growth (CSS) for CSS_ROUNDS rounds, then congestion avoidance.
#[test]
fn hystart_plus_plus_exits_slow_start_before_loss() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut c = Cubic::new(&Config::default());
    let mut rtt = RttEstimator::default();
    let mut model = c.window();
    let mut exited_in_round = None;
    for round in 0..12u64 {
        let start = t0 + ms(100 * (round + 1));
        let sample = if round < 3 { ms(100) } else { ms(150) };
        let acks = c.window() / MDS;
        for i in 0..acks {
            let now = start + Duration::from_micros(i);
            rtt.update(now, sample, Duration::ZERO, Duration::ZERO, true);
            c.on_ack(now, start - ms(50), MDS, false, &rtt);
            if !c.in_slow_start() {
                exited_in_round.get_or_insert(round);
                break;
            }
            // Model: +1 MDS per packet in slow start; +MDS/4 from the 8th sample of the round
            // where the RTT rose (round 3) onwards.
            model += if round < 3 || (round == 3 && i < 7) { MDS } else { MDS / 4 };
            assert_eq!(c.window(), model, "round {round} ack {i}");
        }
        if exited_in_round.is_some() {
            break;
        }
        assert_eq!(c.in_conservative_slow_start(), round >= 3, "round {round}");
    }
    // CSS entered in round 3 (counted), then rounds 4..=7; the first ACK of round 8 exits.
    assert_eq!(exited_in_round, Some(8));
    assert_eq!(c.ssthresh(), c.window());
    assert_eq!(c.window(), model);
}
