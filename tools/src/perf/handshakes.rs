//! Handshake mode of `peregrine perf --handshakes`: `--connections` threads each connect,
//! complete the handshake, and close, back to back until `--duration` passes; reports
//! handshakes per second and handshake latency percentiles.

// A command, not the sans-IO core: it reads the wall clock for latencies.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::api::Endpoint;
use peregrine_engine::VarInt;

use super::rps;

/// Runs the handshake loop on `ep` against `addr` and prints the results.
pub fn run(
    ep: &Arc<Endpoint>,
    addr: SocketAddr,
    name: &str,
    threads: u32,
    duration: Duration,
    json: bool,
) -> Result<(), String> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut jobs = Vec::new();
    for _ in 0..threads {
        let (ep, name) = (ep.clone(), name.to_owned());
        jobs.push(std::thread::spawn(move || -> Result<_, String> {
            let mut h = rps::histogram()?;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let conn = crate::client::connect(&ep, addr, &name, Duration::from_secs(5))?;
                let us = (t0.elapsed().as_micros() as u64).clamp(1, 100_000_000);
                h.record(us).map_err(|e| e.to_string())?;
                conn.close(VarInt::from_u32(0), b"");
            }
            Ok(h)
        }));
    }
    let mut all = rps::histogram()?;
    for j in jobs {
        let h = j.join().map_err(|_| "a handshake thread failed".to_string())??;
        all.add(&h).map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let n = all.len();
    let p = rps::percentiles(&all);
    if json {
        let mut v = serde_json::json!({
            "mode": "handshakes",
            "connections": threads,
            "elapsed_s": secs,
            "handshakes": n,
            "handshakes_per_s": n as f64 / secs,
        });
        for (k, us) in p {
            v[format!("latency_{k}_us")] = us.into();
        }
        outln!("{v}");
    } else {
        let p: Vec<String> = p.iter().map(|(k, us)| format!("{k} {us} us")).collect();
        outln!("perf: handshakes, {threads} in parallel, {secs:.2} s");
        outln!("  handshakes {n} ({:.0}/s)  {}", n as f64 / secs, p.join(", "));
    }
    Ok(())
}
