//! draft-banks-quic-performance: the pieces both sides share (the payload, the client's send
//! pacer, what a request moved). The client's side is a handler (`super::handlers`), the
//! server's too (`crate::server::perf`).
//!
//! On each bidirectional stream the client sends the response size it wants as 8 bytes
//! (big-endian), then its upload, then FIN; the server drains the upload and answers with
//! that many bytes, then FIN.

// A command, not the sans-IO core: it reads the wall clock for deadlines and rates.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peregrine_engine::api::{block_on, RecvStream};

/// Size of each write.
pub const CHUNK: usize = 256 * 1024;
/// Longest time without progress (a read, an acknowledged write) before a stream fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A shared buffer of [`CHUNK`] bytes that every perf write slices (zero-copy).
pub fn payload() -> Bytes {
    static P: OnceLock<Bytes> = OnceLock::new();
    P.get_or_init(|| Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>())).clone()
}

/// Spreads the client's sends over time: at most `rate` bits per second in total, shared by
/// every stream that sends through it (a token bucket without burst allowance: the n-th byte
/// leaves no earlier than n / rate after the start).
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    bytes_per_sec: f64,
    granted: AtomicU64,
}

impl Pacer {
    /// A pacer for `bits_per_sec` (> 0) starting now.
    pub fn new(bits_per_sec: u64) -> Self {
        Pacer {
            start: Instant::now(),
            bytes_per_sec: (bits_per_sec as f64 / 8.0).max(1.0),
            granted: AtomicU64::new(0),
        }
    }

    /// The write size that keeps each burst to about 10 ms of the rate (1200..=[`CHUNK`]).
    pub fn chunk(&self) -> usize {
        ((self.bytes_per_sec / 100.0) as usize).clamp(1200, CHUNK)
    }

    /// Grants `n` more bytes: the time they may leave.
    pub fn reserve(&self, n: u64) -> Instant {
        let total = self.granted.fetch_add(n, Ordering::Relaxed) + n;
        self.start + Duration::from_secs_f64(total as f64 / self.bytes_per_sec)
    }
}

/// The next piece of `recv`; `None` at FIN.
pub fn read_chunk(recv: &mut RecvStream, timeout: Duration) -> Result<Option<Bytes>, String> {
    match block_on(recv.read_chunk(usize::MAX), Some(timeout)) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("read timed out".into()),
    }
}

/// What one client request moved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moved {
    /// Bytes uploaded (acknowledged by the server).
    pub up: u64,
    /// Bytes downloaded.
    pub down: u64,
    /// Whether the whole response (FIN) arrived.
    pub complete: bool,
}
