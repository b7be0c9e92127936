//! `peregrine perf --datagrams`: unreliable datagrams (RFC 9221) at a target rate, echoed by
//! the server; the report counts what was sent, what came back and what was lost, with the
//! goodput and the interarrival jitter.
//!
//! Each datagram carries, big-endian: its sequence number (8 bytes), the client's send time
//! in nanoseconds since the start of the run (8 bytes), 8 bytes the server overwrites with
//! the number of datagrams it has received on the connection, then padding to the size. The
//! server (a `peregrine server` or `perf`'s in-process one, with `datagrams` on) echoes each
//! datagram back with its count filled in (`crate::server::perf`).
//!
//! Loss is counted on the round trip (`lost = sent - received`: lost on the way out, on the
//! way back, or dropped by a full queue at either end); the server's count in the last echo
//! says how many reached it. Jitter is RFC 3550's interarrival jitter (§6.4.1) of the echoes'
//! transit times (arrival minus the send time both taken on the client's clock, so no clock
//! synchronisation is needed: it is the jitter of the round trip).

// A command, not the sans-IO core: it reads the wall clock for rates and timestamps.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use peregrine_engine::api::{ConnError, Connection, DatagramError, Endpoint};
use serde_json::{json, Value};

use super::drive::Ended;
use super::live::rate;
use super::output::rfc3339;
use super::stop::Stop;
use super::{Args, Target};
use crate::config::Settings;

/// Bytes of the header every perf datagram starts with.
pub const HEADER: usize = 24;
/// Default datagram size (payload bytes).
pub const DEFAULT_SIZE: usize = 1200;
/// Default send rate in datagram mode, bits per second.
pub const DEFAULT_RATE: u64 = 10_000_000;
/// Most datagrams one run sends (the receive bitmap's size: 8 MiB).
const MAX_SEQ: u64 = 1 << 26;
/// Longest wait for the last echoes after the sending stopped.
const DRAIN: Duration = Duration::from_secs(1);
/// `datagram-queue` of `perf --datagrams` unless set.
pub const PERF_QUEUE: u32 = 1024;
/// Most datagrams sent in one burst before the sender looks at the clock again.
const BURST: u32 = 64;

/// Writes the header of datagram `seq` sent `sent_ns` after the start into a `size`-byte
/// payload (`size` at least [`HEADER`]).
pub fn encode(seq: u64, sent_ns: u64, size: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.put_u64(seq);
    b.put_u64(sent_ns);
    b.put_u64(0);
    b.resize(size.max(HEADER), 0x5a);
    b.freeze()
}

/// The server's side: `d` echoed with the server's receive count in bytes 16..24 (a datagram
/// shorter than the header goes back unchanged).
pub fn echo(d: &[u8], received: u64) -> Bytes {
    let mut b = BytesMut::from(d);
    if b.len() >= HEADER {
        b[16..24].copy_from_slice(&received.to_be_bytes());
    }
    b.freeze()
}

/// What the echoes told, in arrival order.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Distinct echoes of datagrams we sent.
    pub received: u64,
    /// Their payload bytes.
    pub bytes_received: u64,
    /// Echoes of a sequence number already seen (QUIC should make this 0).
    pub duplicates: u64,
    /// Echoes that arrived after one of a later sequence number.
    pub reordered: u64,
    /// Echoes too short, or with a sequence number never sent.
    pub malformed: u64,
    /// The largest receive count the server wrote into an echo.
    pub server_received: u64,
    /// RFC 3550 interarrival jitter, seconds.
    pub jitter: f64,
    /// Round-trip times: sum, smallest, largest (seconds).
    pub rtt_sum: f64,
    pub rtt_min: f64,
    pub rtt_max: f64,
    seen: Vec<u64>,
    last_transit: Option<f64>,
    highest: Option<u64>,
}

impl Tally {
    /// One echo arrived `at_ns` after the start; `sent` datagrams had been sent by then.
    pub fn on_echo(&mut self, d: &[u8], at_ns: u64, sent: u64) {
        if d.len() < HEADER {
            self.malformed += 1;
            return;
        }
        let word = |i: usize| u64::from_be_bytes(d[i..i + 8].try_into().unwrap_or([0; 8]));
        let (seq, sent_ns, server) = (word(0), word(8), word(16));
        if seq >= sent.min(MAX_SEQ) || sent_ns > at_ns {
            self.malformed += 1;
            return;
        }
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen.len() <= w {
            self.seen.resize(w + 1, 0);
        }
        if self.seen[w] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[w] |= bit;
        self.received += 1;
        self.bytes_received += d.len() as u64;
        self.server_received = self.server_received.max(server);
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        let transit = (at_ns - sent_ns) as f64 / 1e9;
        // RFC 3550 §6.4.1: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1))/16.
        if let Some(prev) = self.last_transit {
            self.jitter += ((transit - prev).abs() - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        self.rtt_sum += transit;
        self.rtt_min = if self.received == 1 { transit } else { self.rtt_min.min(transit) };
        self.rtt_max = self.rtt_max.max(transit);
    }
}

/// A finished run's figures.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Datagrams sent (accepted by the connection).
    pub sent: u64,
    /// Their payload bytes.
    pub bytes_sent: u64,
    /// Payload bytes of each datagram.
    pub size: usize,
    /// Sending time, seconds.
    pub seconds: f64,
    /// Dropped by the client's own queues (counted in `lost` when they were sends).
    pub dropped_locally: u64,
    /// The echoes.
    pub tally: Tally,
}

impl Summary {
    /// Sent and never echoed back.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.tally.received)
    }

    /// `lost` in percent of `sent`.
    pub fn lost_percent(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost() as f64 * 100.0 / self.sent as f64
        }
    }

    /// Echoed payload bits per second of sending time.
    pub fn goodput(&self) -> f64 {
        self.tally.bytes_received as f64 * 8.0 / self.seconds.max(1e-9)
    }

    /// The `end.datagrams` object of the JSON output.
    pub fn json(&self) -> Value {
        let t = &self.tally;
        let mean = if t.received > 0 { t.rtt_sum / t.received as f64 } else { 0.0 };
        json!({
            "size": self.size,
            "seconds": self.seconds,
            "sent": self.sent,
            "received": t.received,
            "lost": self.lost(),
            "lost_percent": self.lost_percent(),
            "server_received": t.server_received,
            "duplicates": t.duplicates,
            "reordered": t.reordered,
            "malformed": t.malformed,
            "dropped_locally": self.dropped_locally,
            "bytes_sent": self.bytes_sent,
            "bytes_received": t.bytes_received,
            "sent_bits_per_second": self.bytes_sent as f64 * 8.0 / self.seconds.max(1e-9),
            "goodput_bits_per_second": self.goodput(),
            "jitter_ms": t.jitter * 1e3,
            "rtt_min_ms": t.rtt_min * 1e3,
            "rtt_mean_ms": mean * 1e3,
            "rtt_max_ms": t.rtt_max * 1e3,
        })
    }

    /// The text summary.
    pub fn text(&self) -> Vec<String> {
        let t = &self.tally;
        let mean = if t.received > 0 { t.rtt_sum / t.received as f64 } else { 0.0 };
        vec![
            format!(
                "datagrams: {} sent ({} B each, {}), {} received, {} lost ({:.2}%); \
                 the server received at least {}",
                self.sent,
                self.size,
                rate(self.bytes_sent as f64 * 8.0 / self.seconds.max(1e-9)),
                t.received,
                self.lost(),
                self.lost_percent(),
                t.server_received
            ),
            format!(
                "goodput {} over {:.2} s; jitter {:.3} ms; round trip min/mean/max \
                 {:.3}/{:.3}/{:.3} ms; {} reordered, {} duplicated, {} dropped by local queues",
                rate(self.goodput()),
                self.seconds,
                t.jitter * 1e3,
                t.rtt_min * 1e3,
                mean * 1e3,
                t.rtt_max * 1e3,
                t.reordered,
                t.duplicates,
                self.dropped_locally
            ),
        ]
    }
}

/// Why a datagram could not be sent, for the one-line error.
fn refused(e: DatagramError) -> String {
    match e {
        DatagramError::UnsupportedByPeer => {
            "the server does not accept DATAGRAM frames (RFC 9221): start it with --datagrams on"
                .into()
        }
        other => format!("sending a datagram: {other}"),
    }
}

/// What the sender sends: `size`-byte datagrams at `bits_per_sec` for `duration` from `t0`.
struct Plan {
    size: usize,
    bits_per_sec: u64,
    duration: Duration,
    t0: Instant,
}

/// Sends for the run's duration at the run's rate, then waits for the last echoes.
fn send_loop(
    conn: &Connection,
    plan: &Plan,
    sent: &AtomicU64,
    received: &AtomicU64,
    stop: &Stop,
) -> Result<(u64, f64), String> {
    let Plan { size, bits_per_sec, duration, t0 } = *plan;
    let per_datagram = Duration::from_secs_f64(size as f64 * 8.0 / bits_per_sec as f64);
    let end = t0 + duration;
    let mut n = 0u64;
    loop {
        let now = Instant::now();
        if now >= end || stop.interrupted() || n >= MAX_SEQ {
            break;
        }
        let mut burst = 0;
        while t0 + per_datagram.mul_f64(n as f64) <= now && burst < BURST && n < MAX_SEQ {
            let ns = u64::try_from(Instant::now().duration_since(t0).as_nanos()).unwrap_or(0);
            // Counted before it leaves: its echo may come back before this thread runs again.
            sent.store(n + 1, Ordering::Release);
            match conn.send_datagram(encode(n, ns, size)) {
                Ok(()) => {}
                Err(e) => {
                    sent.store(n, Ordering::Release);
                    return Err(match e {
                        DatagramError::Closed => closed(conn),
                        e => refused(e),
                    });
                }
            }
            n += 1;
            burst += 1;
        }
        let next = t0 + per_datagram.mul_f64(n as f64);
        let wait = next.saturating_duration_since(Instant::now()).min(end - now.min(end));
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let drain_until = Instant::now() + DRAIN;
    while received.load(Ordering::Acquire) < n && Instant::now() < drain_until {
        if stop.interrupted() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((n, seconds))
}

fn closed(conn: &Connection) -> String {
    match conn.close_reason() {
        Some(e) => format!("connection closed: {e}"),
        None => "connection closed".into(),
    }
}

/// Runs `perf --datagrams` against `target` on `ep` and prints the results.
pub fn run(
    args: &Args,
    settings: &Settings,
    ep: &Arc<Endpoint>,
    target: &Target,
    notes: &[String],
    stop: &Stop,
) -> Result<Ended, String> {
    let started = SystemTime::now();
    let conn = ep
        .connect(target.addr, &target.name)
        .map_err(|e| format!("connecting to {}: {e}", target.addr))?
        .wait(Duration::from_secs(10))
        .map_err(|e| format!("connecting to {}: {e}", target.addr))?;
    let Some(max) = conn.max_datagram_size() else {
        let probe = conn.send_datagram(encode(0, 0, HEADER));
        return Err(refused(probe.err().unwrap_or(DatagramError::UnsupportedByPeer)));
    };
    let asked = args.datagram_size.map_or(DEFAULT_SIZE, usize::from);
    let size = asked.min(max);
    if size < HEADER {
        return Err(format!("the connection carries datagrams of at most {max} bytes"));
    }
    let bits_per_sec = args.rate.unwrap_or(DEFAULT_RATE);
    let t0 = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (conn, sent, received, done) =
            (conn.clone(), sent.clone(), received.clone(), done.clone());
        std::thread::Builder::new()
            .name("perf-datagrams".into())
            .spawn(move || {
                let mut tally = Tally::default();
                while !done.load(Ordering::Acquire) {
                    match conn.read_datagram_blocking(Duration::from_millis(20)) {
                        Ok(d) => {
                            let at = t0.elapsed().as_nanos();
                            let at = u64::try_from(at).unwrap_or(u64::MAX);
                            tally.on_echo(&d, at, sent.load(Ordering::Acquire));
                            received.store(tally.received, Ordering::Release);
                        }
                        Err(ConnError::TimedOut) => {}
                        Err(_) => break,
                    }
                }
                tally
            })
            .map_err(|e| format!("cannot start the datagram reader: {e}"))?
    };
    let plan = Plan { size, bits_per_sec, duration: args.duration, t0 };
    let result = send_loop(&conn, &plan, &sent, &received, stop);
    done.store(true, Ordering::Release);
    let tally = reader.join().map_err(|_| "the datagram reader panicked".to_string())?;
    let stats = conn.stats();
    conn.close(peregrine_engine::VarInt::from_u32(0), b"");
    let (n, seconds, error) = match result {
        Ok((n, s)) => (n, s, None),
        Err(e) if sent.load(Ordering::Acquire) == 0 => return Err(e),
        Err(e) => (sent.load(Ordering::Acquire), t0.elapsed().as_secs_f64(), Some(e)),
    };
    let summary = Summary {
        sent: n,
        bytes_sent: n * size as u64,
        size,
        seconds,
        dropped_locally: stats.datagram_frames_dropped,
        tally,
    };
    if args.json {
        let settings_json: Value = toml::from_str::<toml::Table>(&settings.to_toml())
            .ok()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(Value::Null);
        let mut out = json!({
            "start": {
                "version": format!("peregrine {}", env!("CARGO_PKG_VERSION")),
                "timestamp": { "time": rfc3339(started) },
                "connecting_to": {
                    "host": target.name,
                    "address": target.addr.to_string(),
                    "in_process_server": target.in_process,
                },
                "test_start": {
                    "protocol": "QUIC",
                    "alpn": "perf",
                    "mode": "datagrams",
                    "duration": args.duration.as_secs_f64(),
                    "target_bits_per_second": bits_per_sec,
                    "datagram_size": size,
                },
                "settings": settings_json,
                "notes": notes,
            },
            "end": { "datagrams": summary.json() },
        });
        if let Some(e) = &error {
            out["error"] = json!(e);
        }
        outln!("{out}");
    } else {
        if asked > size {
            outln!("datagram size {asked} is above what the connection carries: {size} bytes");
        }
        for line in summary.text() {
            outln!("{line}");
        }
    }
    Ok(Ended { interrupted: stop.interrupted(), error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_counted_once_with_jitter_and_reordering() {
        let mut t = Tally::default();
        // Sent 10 ms apart; transits 20, 22, 20, 26 ms; seq 2 before seq 1.
        let at = |seq: u64, transit_ms: u64| (seq * 10 + transit_ms) * 1_000_000;
        for (seq, transit) in [(0, 20), (2, 22), (1, 20), (3, 26)] {
            let d = echo(&encode(seq, seq * 10_000_000, 100), seq + 1);
            t.on_echo(&d, at(seq, transit), 4);
        }
        assert_eq!((t.received, t.reordered, t.duplicates, t.malformed), (4, 1, 0, 0));
        assert_eq!(t.server_received, 4);
        // |D| = 2, 2, 6 ms: J = 0.125, 0.242..., 0.602... ms.
        let mut j = 0.0;
        for d in [0.002, 0.002, 0.006] {
            j += (d - j) / 16.0;
        }
        assert!((t.jitter - j).abs() < 1e-12, "{} vs {j}", t.jitter);
        assert!((t.rtt_min - 0.020).abs() < 1e-9 && (t.rtt_max - 0.026).abs() < 1e-9);
        // A duplicate, a short one and one never sent are not counted as received.
        t.on_echo(&encode(3, 30_000_000, 100), at(3, 30), 4);
        t.on_echo(&[1, 2, 3], at(3, 30), 4);
        t.on_echo(&encode(9, 0, 100), at(3, 30), 4);
        assert_eq!((t.received, t.duplicates, t.malformed), (4, 1, 2));
        let s = Summary {
            sent: 5,
            bytes_sent: 500,
            size: 100,
            seconds: 1.0,
            dropped_locally: 0,
            tally: t,
        };
        assert_eq!((s.lost(), s.lost_percent()), (1, 20.0));
        assert_eq!(s.json()["received"].as_u64().unwrap() + s.json()["lost"].as_u64().unwrap(), 5);
    }
}
