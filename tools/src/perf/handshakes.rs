//! Handshake mode of `peregrine perf --handshakes`: `--connections` threads each connect,
//! complete the handshake, and close, back to back until the run ends; each completed
//! handshake is counted in the thread's counters and its latency recorded.

// A command, not the sans-IO core: it reads the wall clock for latencies.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use peregrine_engine::api::Endpoint;
use peregrine_engine::VarInt;

use super::rps;
use super::sample::StreamCounters;

/// Connects, waits for the handshake and closes on `ep` against `addr` until `stop` says so;
/// the handshake latencies in microseconds.
pub fn worker(
    ep: &Endpoint,
    addr: SocketAddr,
    name: &str,
    stop: &dyn Fn() -> bool,
    counters: &StreamCounters,
) -> Result<Histogram<u64>, String> {
    let mut h = rps::histogram()?;
    while !stop() {
        let t0 = Instant::now();
        let conn = crate::client::connect(ep, addr, name, Duration::from_secs(5))?;
        let us = (t0.elapsed().as_micros() as u64).clamp(1, 100_000_000);
        h.record(us).map_err(|e| e.to_string())?;
        counters.add_request();
        conn.close(VarInt::from_u32(0), b"");
    }
    Ok(h)
}
