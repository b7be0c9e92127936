//! Request/response mode of `peregrine perf --rps`: each of `streams x connections` slots
//! runs requests back to back (a new stream each: upload `request` bytes, download `response`
//! bytes) until the deadline (driven by `super::handlers`), recording each request's latency
//! in an HDR histogram; here the histograms and their summaries.

use hdrhistogram::Histogram;

/// What one slot's requests did.
pub struct RpsResult {
    /// Latency of each completed request, microseconds.
    pub latency_us: Histogram<u64>,
}

/// An empty latency histogram (1 µs .. 100 s, 3 significant digits).
pub fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 100_000_000, 3).map_err(|e| e.to_string())
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
