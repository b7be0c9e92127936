//! Request/response mode of `peregrine perf --rps`: each of `streams x connections` workers
//! runs requests back to back (a new stream each: upload `request` bytes, download `response`
//! bytes) until the deadline, recording each request's latency in an HDR histogram.

// A command, not the sans-IO core: it reads the wall clock for latencies.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use hdrhistogram::Histogram;
use peregrine_engine::api::Connection;

use super::protocol::{self, Moved, Pacer, RequestIo};
use super::sample::StreamCounters;

/// What one worker did.
pub struct RpsResult {
    /// Bytes moved by completed requests.
    pub moved: Moved,
    /// Completed requests.
    pub requests: u64,
    /// Latency of each completed request, microseconds.
    pub latency_us: Histogram<u64>,
}

/// An empty latency histogram (1 µs .. 100 s, 3 significant digits).
pub fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 100_000_000, 3).map_err(|e| e.to_string())
}

/// Runs requests on `conn` until `stop` says so, counting bytes and completed requests in
/// `counters`.
pub fn worker(
    conn: &Connection,
    request: u64,
    response: u64,
    stop: &dyn Fn() -> bool,
    counters: &StreamCounters,
    pacer: Option<&Pacer>,
) -> Result<RpsResult, String> {
    let mut r = RpsResult { moved: Moved::default(), requests: 0, latency_us: histogram()? };
    let sent = |n| counters.add_sent(n);
    let received = |n| counters.add_received(n);
    // A request in flight when the run ends is finished (its latency is real), not cut.
    let never = || false;
    let io = RequestIo { stop: &never, sent: &sent, received: &received, pacer };
    while !stop() {
        let t0 = Instant::now();
        let (send, mut recv) =
            conn.open_bi_blocking(protocol::IO_TIMEOUT).map_err(|e| e.to_string())?;
        let m = protocol::request(&send, &mut recv, request, response, &io)?;
        if !m.complete || m.down != response {
            return Err(format!("response of {} bytes, expected {response}", m.down));
        }
        let us = (t0.elapsed().as_micros() as u64).clamp(1, 100_000_000);
        r.latency_us.record(us).map_err(|e| e.to_string())?;
        r.requests += 1;
        counters.add_request();
        r.moved.up += m.up;
        r.moved.down += m.down;
    }
    Ok(r)
}

/// Latency percentiles as (JSON key, text label, microseconds).
pub fn percentiles(h: &Histogram<u64>) -> Vec<(&'static str, &'static str, u64)> {
    vec![
        ("p50", "p50", h.value_at_quantile(0.50)),
        ("p90", "p90", h.value_at_quantile(0.90)),
        ("p99", "p99", h.value_at_quantile(0.99)),
        ("p99_9", "p99.9", h.value_at_quantile(0.999)),
        ("max", "max", h.max()),
    ]
}

/// The latency distribution as a JSON object: sample count, mean, min and the percentiles,
/// in microseconds (keys without dots: `p99_9` is the 99.9th percentile).
pub fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "unit": "us",
        "samples": h.len(),
        "min": if h.is_empty() { 0 } else { h.min() },
        "mean": h.mean(),
    });
    for (k, _, us) in percentiles(h) {
        v[k] = us.into();
    }
    v
}
