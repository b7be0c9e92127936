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

/// A multi-threaded tokio runtime with `threads` workers (at least one).
fn runtime(threads: usize, name: &str) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}
