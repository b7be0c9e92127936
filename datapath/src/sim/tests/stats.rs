//! Statistical tests of the impairment models with fixed seeds: each fails when a model is wrong.

use std::time::Duration;

use super::*;
use crate::sim::{GilbertElliott, LinkDrop};

/// Sends `n` datagrams of `len` bytes through a lone link, one per `spacing`, returning for each
/// its fate (arrival minus send time, or the drop).
fn run_link(
    cfg: LinkConfig,
    seed: u64,
    n: usize,
    len: usize,
    spacing: Duration,
) -> (Link, Vec<Result<Duration, LinkDrop>>) {
    let (mut link, start) = lone_link(cfg, seed);
    let mut buf = vec![0u8; len];
    let fates = (0..n)
        .map(|i| {
            let now = start + spacing * i as u32;
            link.transmit(now, &mut buf, Ecn::NotEct, false).map(|a| a.at - now)
        })
        .collect();
    (link, fates)
}

/// Lengths of the runs of consecutive losses.
fn loss_runs(fates: &[Result<Duration, LinkDrop>]) -> Vec<usize> {
    let mut runs = Vec::new();
    let mut run = 0;
    for f in fates {
        if f.is_err() {
            run += 1;
        } else if run > 0 {
            runs.push(run);
            run = 0;
        }
    }
    if run > 0 {
        runs.push(run);
    }
    runs
}

#[test]
fn random_loss_is_binomial_and_uncorrelated() {
    let n = 100_000;
    let p = 0.05;
    let cfg = LinkConfig { loss: p, ..LinkConfig::default() };
    let (link, fates) = run_link(cfg, 1, n, 100, Duration::from_micros(10));
    let lost = fates.iter().filter(|f| **f == Err(LinkDrop::RandomLoss)).count() as u64;
    assert_eq!(lost, link.stats.lost_random);
    assert_eq!(link.stats.sent, n as u64);
    assert_binomial("random loss", lost, n as u64, p);
    // Independent losses come in geometric runs of mean 1 / (1 - p); a correlated (bursty)
    // implementation has longer runs.
    let runs = loss_runs(&fates);
    let mean = runs.iter().sum::<usize>() as f64 / runs.len() as f64;
    let expected = 1.0 / (1.0 - p);
    let sigma = (p.sqrt() / (1.0 - p)) / (runs.len() as f64).sqrt();
    assert!((mean - expected).abs() < 4.0 * sigma, "mean loss run {mean}, expected {expected}");
}

#[test]
fn loss_probability_edges() {
    let (_, none) = run_link(LinkConfig::default(), 2, 1000, 10, Duration::ZERO);
    assert!(none.iter().all(Result::is_ok), "p = 0 never loses");
    let all = LinkConfig { loss: 1.0, ..LinkConfig::default() };
    let (link, fates) = run_link(all, 2, 1000, 10, Duration::ZERO);
    assert!(fates.iter().all(|f| *f == Err(LinkDrop::RandomLoss)), "p = 1 always loses");
    assert_eq!(link.stats.lost_random, 1000);
}

#[test]
fn gilbert_elliott_stationary_loss_and_burst_length() {
    let n = 200_000;
    let ge = GilbertElliott::bursty(0.01, 0.25);
    let cfg = LinkConfig { burst_loss: Some(ge), ..LinkConfig::default() };
    let (link, fates) = run_link(cfg, 3, n, 100, Duration::from_micros(10));
    let lost = link.stats.lost_burst;
    assert_eq!(link.stats.lost_random, 0);
    // The loss indicator is a two-state Markov chain with second eigenvalue
    // lambda = 1 - p_gb - p_bg; the variance of its mean is pi (1 - pi) (1 + lambda) / (1 - lambda) / n.
    let pi = ge.stationary_loss();
    assert!((pi - 0.01 / 0.26).abs() < 1e-12);
    let lambda = 1.0 - ge.p_good_to_bad - ge.p_bad_to_good;
    let sigma = (pi * (1.0 - pi) * (1.0 + lambda) / (1.0 - lambda) / n as f64).sqrt();
    let rate = lost as f64 / n as f64;
    assert!(
        (rate - pi).abs() < 4.0 * sigma,
        "burst loss rate {rate}, expected {pi} +- {}",
        4.0 * sigma
    );
    // Bursts last a geometric number of datagrams with mean 1 / p_bg = 4 (sd sqrt(1 - p) / p).
    let runs = loss_runs(&fates);
    let mean = runs.iter().sum::<usize>() as f64 / runs.len() as f64;
    let sd = (1.0 - ge.p_bad_to_good).sqrt() / ge.p_bad_to_good;
    let tol = 4.0 * sd / (runs.len() as f64).sqrt();
    assert!((mean - 4.0).abs() < tol, "mean burst {mean}, expected 4 +- {tol}");
    // ... and a quarter of them are single losses.
    let singles = runs.iter().filter(|r| **r == 1).count() as u64;
    assert_binomial("single-loss bursts", singles, runs.len() as u64, ge.p_bad_to_good);
}

#[test]
fn gilbert_elliott_with_partial_losses() {
    let n = 200_000;
    let ge =
        GilbertElliott { p_good_to_bad: 0.01, p_bad_to_good: 0.25, loss_good: 0.01, loss_bad: 0.5 };
    let cfg = LinkConfig { burst_loss: Some(ge), ..LinkConfig::default() };
    let (link, _) = run_link(cfg, 4, n, 100, Duration::from_micros(10));
    let expected = ge.stationary_loss();
    let pi = ge.stationary_bad();
    let lambda = 1.0 - ge.p_good_to_bad - ge.p_bad_to_good;
    // Variance: the state term (scaled by the loss difference) plus the Bernoulli term.
    let state =
        (ge.loss_bad - ge.loss_good).powi(2) * pi * (1.0 - pi) * (1.0 + lambda) / (1.0 - lambda);
    let bern =
        pi * ge.loss_bad * (1.0 - ge.loss_bad) + (1.0 - pi) * ge.loss_good * (1.0 - ge.loss_good);
    let sigma = ((state + bern) / n as f64).sqrt();
    let rate = link.stats.lost_burst as f64 / n as f64;
    assert!(
        (rate - expected).abs() < 4.0 * sigma,
        "loss {rate}, expected {expected} +- {}",
        4.0 * sigma
    );
}

#[test]
fn delay_without_jitter_is_exact() {
    let cfg = LinkConfig::with_delay(Duration::from_millis(25));
    let (_, fates) = run_link(cfg, 5, 1000, 100, Duration::from_micros(1));
    assert!(fates.iter().all(|f| *f == Ok(Duration::from_millis(25))));
}

#[test]
fn jitter_is_bounded_uniform_with_expected_mean() {
    let n = 20_000;
    let (delay, jitter) = (Duration::from_millis(20), Duration::from_millis(5));
    let cfg = LinkConfig { jitter, ..LinkConfig::with_delay(delay) };
    // Spaced wider than the jitter, so order preservation never clamps: the raw distribution.
    let (_, fates) = run_link(cfg, 6, n, 100, Duration::from_millis(10));
    let extra: Vec<f64> =
        fates.iter().map(|f| (f.expect("no loss") - delay).as_secs_f64()).collect();
    let (min, max) = extra.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let j = jitter.as_secs_f64();
    assert!(min >= 0.0, "never earlier than the delay");
    assert!(max <= j, "never later than delay + jitter");
    assert!(min < j * 1e-3 && max > j * (1.0 - 1e-3), "the whole range is used: {min} .. {max}");
    let mean = extra.iter().sum::<f64>() / n as f64;
    let tol = 4.0 * j / (12.0 * n as f64).sqrt();
    assert!((mean - j / 2.0).abs() < tol, "mean jitter {mean}, expected {} +- {tol}", j / 2.0);
    // Uniform: variance j^2 / 12, its estimate within 1% at this n (4 sigma).
    let var = extra.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let expected = j * j / 12.0;
    assert!((var / expected - 1.0).abs() < 0.01, "jitter variance {var}, expected {expected}");
}

#[test]
fn jitter_never_reorders_and_stays_bounded() {
    let (delay, jitter) = (Duration::from_millis(20), Duration::from_millis(5));
    let cfg = LinkConfig { jitter, ..LinkConfig::with_delay(delay) };
    let spacing = Duration::from_micros(100);
    let (_, fates) = run_link(cfg, 7, 5000, 100, spacing);
    let mut last = Duration::ZERO;
    for (i, f) in fates.iter().enumerate() {
        let d = f.expect("no loss");
        assert!(d >= delay && d <= delay + jitter, "datagram {i}: {d:?}");
        let arrival = spacing * i as u32 + d;
        assert!(arrival >= last, "datagram {i} overtook an earlier one");
        last = arrival;
    }
}

#[test]
fn reordering_rate_and_observed_order() {
    let n = 20_000u32;
    let p = 0.1;
    let delay = Duration::from_millis(10);
    let cfg = LinkConfig {
        reorder: p,
        reorder_delay: Duration::from_millis(5),
        ..LinkConfig::with_delay(delay)
    };
    let (net, mut a, mut b) = pair(8, cfg.clone());
    let spacing = Duration::from_micros(100);
    for i in 0..n + 100 {
        if i == n {
            // A tail that is never held back, so every held-back datagram gets overtaken; also
            // shows the model can be changed mid-run.
            net.set_link(addr(A), addr(B), LinkConfig { reorder: 0.0, ..cfg.clone() }).unwrap();
        }
        send(&mut a, addr(B), &numbered(i, 64), Ecn::NotEct);
        net.advance(spacing);
    }
    let got = drain(&net, &mut b);
    assert_eq!(got.len() as u32, n + 100, "reordering loses nothing");
    let stats = net.link_stats(addr(A), addr(B));
    assert_binomial("reordered", stats.reordered, u64::from(n), p);
    // A datagram is observed out of order when a later one arrived before it.
    let mut max_seen = None;
    let mut late = 0;
    for (_, data, _) in &got {
        let i = index_of(data);
        if max_seen.is_some_and(|m| i < m) {
            late += 1;
        }
        max_seen = max_seen.max(Some(i));
    }
    assert_eq!(late, stats.reordered, "every held-back datagram, and only those, arrives late");
    for e in net.take_trace() {
        if let Fate::Delivered { at, reordered, .. } = e.fate {
            let extra = if reordered { Duration::from_millis(5) } else { Duration::ZERO };
            assert_eq!(at - e.sent_at, delay + extra);
        }
    }
}

#[test]
fn duplication_rate_and_identical_copies() {
    let n = 20_000u32;
    let p = 0.05;
    let (net, mut a, mut b) =
        pair(9, LinkConfig { duplicate: p, ..LinkConfig::with_delay(Duration::from_millis(1)) });
    for i in 0..n {
        send(&mut a, addr(B), &numbered(i, 80), Ecn::NotEct);
        net.advance(Duration::from_micros(50));
    }
    let got = drain(&net, &mut b);
    let stats = net.link_stats(addr(A), addr(B));
    assert_binomial("duplicated", stats.duplicated, u64::from(n), p);
    assert_eq!(got.len() as u64, u64::from(n) + stats.duplicated);
    assert_eq!(stats.delivered, got.len() as u64);
    let mut copies = vec![0u32; n as usize];
    for (_, data, _) in &got {
        let i = index_of(data);
        assert_eq!(*data, numbered(i, 80), "copies are identical to the original");
        copies[i as usize] += 1;
    }
    assert!(copies.iter().all(|&c| c == 1 || c == 2));
    assert_eq!(copies.iter().filter(|&&c| c == 2).count() as u64, stats.duplicated);
}

#[test]
fn corruption_flips_exactly_one_bit_at_the_configured_rate() {
    let n = 20_000u32;
    let p = 0.05;
    let len = 100;
    let (net, mut a, mut b) = pair(10, LinkConfig { corrupt: p, ..LinkConfig::default() });
    for i in 0..n {
        send(&mut a, addr(B), &numbered(i, len), Ecn::NotEct);
    }
    let got = recv_now(&mut b);
    assert_eq!(got.len() as u32, n, "corruption drops nothing");
    let mut corrupted = 0u64;
    let mut first_half = 0u64;
    let mut positions = std::collections::BTreeSet::new();
    // Order is preserved (no reordering configured), so the i-th received is the i-th sent.
    for (i, (data, _)) in got.iter().enumerate() {
        let sent = numbered(i as u32, len);
        assert_eq!(data.len(), len);
        let flips: Vec<(usize, u32)> = sent
            .iter()
            .zip(data)
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .map(|(k, (x, y))| (k, (x ^ y).count_ones()))
            .collect();
        match flips.as_slice() {
            [] => {}
            [(k, 1)] => {
                corrupted += 1;
                positions.insert(*k);
                first_half += u64::from(*k < len / 2);
            }
            other => panic!("datagram {i}: expected one flipped bit, got {other:?}"),
        }
    }
    assert_eq!(corrupted, net.link_stats(addr(A), addr(B)).corrupted);
    assert_binomial("corrupted", corrupted, u64::from(n), p);
    // The flipped byte is uniform over the datagram.
    assert_binomial("flips in the first half", first_half, corrupted, 0.5);
    assert!(positions.len() > 90, "flips spread over the payload: {} positions", positions.len());
}

#[test]
fn loss_runs_are_capped_by_max_loss_burst() {
    // The relay of the interop runner's drop-rate scenario: 3% independent loss, runs of at
    // most 3 (a run that reached 3 spares the next datagram).
    let n = 200_000;
    let cfg = LinkConfig { loss: 0.03, max_loss_burst: Some(3), ..LinkConfig::default() };
    let (link, fates) = run_link(cfg, 21, n, 100, Duration::from_micros(10));
    let runs = loss_runs(&fates);
    assert!(runs.iter().all(|r| *r <= 3), "a run longer than 3: {:?}", runs.iter().max());
    assert!(runs.contains(&3), "runs of 3 happen at 3% loss over {n} datagrams");
    // The cap almost never fires at 3% (p^3 per run start), so the rate stays binomial.
    assert_binomial("capped random loss", link.stats.lost_random, n as u64, 0.03);
    // With certain loss, the cap alone shapes the stream: 3 lost, 1 spared, repeated.
    let cfg = LinkConfig { loss: 1.0, max_loss_burst: Some(3), ..LinkConfig::default() };
    let (link, fates) = run_link(cfg, 22, 40, 10, Duration::ZERO);
    for (i, f) in fates.iter().enumerate() {
        assert_eq!(f.is_ok(), i % 4 == 3, "datagram {i}: {f:?}");
    }
    assert_eq!((link.stats.lost_random, link.stats.loss_spared), (30, 10));
    // Burst loss is capped the same way.
    let ge = GilbertElliott::bursty(0.05, 0.1);
    let cfg = LinkConfig { burst_loss: Some(ge), max_loss_burst: Some(2), ..LinkConfig::default() };
    let (link, fates) = run_link(cfg, 23, 50_000, 10, Duration::ZERO);
    assert!(loss_runs(&fates).iter().all(|r| *r <= 2));
    assert!(link.stats.loss_spared > 0 && link.stats.lost_burst > 0);
}
