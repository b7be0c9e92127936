//! A perf peer on quinn 0.11 (tokio, rustls with aws-lc-rs): the other side of
//! `peregrine perf` and `peregrine server` for interop tests and side-by-side benchmarks.
//!
//! The protocol is draft-banks-quic-performance (ALPN `perf`): on each bidirectional stream
//! the client sends the response size it wants as 8 bytes (big-endian), then its upload, then
//! FIN; the server drains the upload and answers with that many bytes, then FIN.
//!
//! - [`server::PerfServer`]: a quinn perf server on its own tokio runtime, counting every
//!   byte it receives and sends per stream ([`server::ServerStats`]).
//! - [`client::run`]: a quinn perf client with the modes of `peregrine perf` (sizes, duration,
//!   requests/s, handshakes/s), checking every response's length, and a [`client::Summary`]
//!   whose JSON has the keys of `peregrine perf --json`.
//! - [`tls`]: certificates and rustls configurations.
//!
//! The quinn endpoints run with quinn's default transport configuration (out of the box).

// A benchmark peer measures wall-clock time: it reads the clock itself.
#![allow(clippy::disallowed_methods)]

pub mod client;
pub mod server;
pub mod tls;

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;

/// Size of each write of payload.
pub const CHUNK: usize = 256 * 1024;
/// Longest wait for one read or one write before a stream fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The response size a duration-mode client asks for: more than it will ever read.
pub const UNBOUNDED: u64 = 1 << 50;

/// A shared buffer of [`CHUNK`] bytes that every write slices (no copy per write).
pub fn payload() -> Bytes {
    static P: OnceLock<Bytes> = OnceLock::new();
    P.get_or_init(|| Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>())).clone()
}

/// Parses `123`, `64K`, `10M`, `1G` (powers of 1024), like `peregrine perf`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("'{s}' is not a size (e.g. 1048576, 64K, 10M, 1G)"))
}

/// Parses `5s`, `500ms`, `2` (seconds), like `peregrine perf`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("'{s}' is not a duration (e.g. 5s, 500ms)");
    let d = if let Some(ms) = t.strip_suffix("ms") {
        Duration::from_millis(ms.parse().map_err(|_| bad())?)
    } else {
        let secs: f64 = t.strip_suffix('s').unwrap_or(t).parse().map_err(|_| bad())?;
        if !(secs.is_finite() && secs > 0.0 && secs < 86_400.0) {
            return Err(bad());
        }
        Duration::from_secs_f64(secs)
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

/// A multi-threaded tokio runtime with `threads` workers (at least one).
fn runtime(threads: usize, name: &str) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_like_peregrine_perf() {
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
