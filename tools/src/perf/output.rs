//! perf's results: one JSON object shaped like iperf3's `-J` output (`start`, `intervals`,
//! `end`), or the text summary. Both are built from the same [`Outcome`], whose totals are
//! the sums of its intervals.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use peregrine_engine::ConnectionStats;
use serde_json::{json, Value};

use super::cpu::{CpuTimes, ThreadCpu};
use super::live::{bytes, rate};
use super::rps;
use super::sample::{totals, ConnDelta, Moved, Tick};
use super::{Args, Direction, Mode};
use crate::config::Settings;

/// Everything a finished (or interrupted) run measured.
pub struct Outcome<'a> {
    /// The flags.
    pub args: &'a Args,
    /// The effective settings.
    pub settings: &'a Settings,
    /// What was measured.
    pub mode: Mode,
    /// Wall-clock time of the start.
    pub started: SystemTime,
    /// `host:port` as given, or the in-process server's address.
    pub target: String,
    /// The server's address.
    pub remote: std::net::SocketAddr,
    /// Whether the server is the in-process one (its counters and CPU are ours to report).
    pub in_process: bool,
    /// What the datapaths reported at start-up.
    pub notes: Vec<String>,
    /// Client and (in-process) server worker counts; workers pinned as asked.
    pub workers: (usize, Option<usize>, usize),
    /// `(connection, stream)` of each slot, in the order of the intervals' `streams`.
    pub slots: Vec<(usize, usize)>,
    /// Connections (handshake mode: handshake slots).
    pub connections: usize,
    /// The intervals.
    pub intervals: Vec<Tick>,
    /// The length asked of each interval.
    pub interval: Duration,
    /// Request or handshake latencies, microseconds.
    pub latency: Option<Histogram<u64>>,
    /// Each client connection's counters at the end (empty in handshake mode).
    pub client_conns: Vec<ConnectionStats>,
    /// The client connections' counters together (handshake mode: none).
    pub client: Option<ConnectionStats>,
    /// The in-process server's connections' counters together.
    pub server: Option<ConnectionStats>,
    /// CPU time of the client side over the run.
    pub client_cpu: CpuTimes,
    /// CPU time of the in-process server's threads over the run.
    pub server_cpu: Option<CpuTimes>,
    /// Live threads' CPU times at the end.
    pub threads: Vec<ThreadCpu>,
    /// Ended by Ctrl-C / SIGTERM.
    pub interrupted: bool,
    /// Why the run failed, when it did after measuring something.
    pub error: Option<String>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn bps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 * 8.0 / secs.max(1e-9)
}

/// RFC 3339 UTC time (`2024-05-01T12:00:00Z`) of `t`.
pub fn rfc3339(t: SystemTime) -> String {
    let s = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (s / 86_400, s % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

impl Outcome<'_> {
    /// Per-slot totals (sums of the intervals).
    pub fn slot_totals(&self) -> Vec<Moved> {
        totals(&self.intervals, self.slots.len())
    }

    /// Everything together.
    pub fn sum(&self) -> Moved {
        let mut m = Moved::default();
        for t in self.slot_totals() {
            m.add(t);
        }
        m
    }

    /// Seconds from the start to the end of the last interval.
    pub fn elapsed(&self) -> f64 {
        self.intervals.last().map_or(0.0, |t| t.end)
    }

    fn what(&self) -> Option<&'static str> {
        match self.mode {
            Mode::Rps => Some("requests"),
            Mode::Handshakes => Some("handshakes"),
            _ => None,
        }
    }

    fn start_json(&self) -> Value {
        let a = self.args;
        let (up, down) = match self.mode {
            Mode::Size => (a.upload.unwrap_or(0), a.download.unwrap_or(0)),
            Mode::Rps => (a.request_size, a.response_size),
            _ => (0, 0),
        };
        let direction = match self.mode {
            Mode::Duration(Direction::Down) => Some("down"),
            Mode::Duration(Direction::Up) => Some("up"),
            Mode::Duration(Direction::Both) => Some("both"),
            Mode::Size => None,
            _ => None,
        };
        let settings: Value = toml::from_str::<toml::Table>(&self.settings.to_toml())
            .ok()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(Value::Null);
        let connected: Vec<Value> = self
            .client_conns
            .iter()
            .enumerate()
            .map(|(i, c)| json!({"connection": i, "remote": self.remote.to_string(), "congestion": c.congestion}))
            .collect();
        json!({
            "version": format!("peregrine {}", env!("CARGO_PKG_VERSION")),
            "timestamp": {
                "time": rfc3339(self.started),
                "timesecs": self.started.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
            },
            "connecting_to": {
                "host": self.target,
                "address": self.remote.to_string(),
                "in_process_server": self.in_process,
            },
            "connected": connected,
            "test_start": {
                "protocol": "QUIC",
                "alpn": "perf",
                "mode": self.mode.name(),
                "direction": direction,
                "connections": a.connections,
                "streams_per_connection": if self.mode == Mode::Handshakes { 0 } else { a.streams },
                "duration_s": if self.mode == Mode::Size { None } else { Some(secs(a.duration)) },
                "upload_bytes_per_stream": if self.mode == Mode::Size { Some(up) } else { None },
                "download_bytes_per_stream": if self.mode == Mode::Size { Some(down) } else { None },
                "request_size": if self.mode == Mode::Rps { Some(up) } else { None },
                "response_size": if self.mode == Mode::Rps { Some(down) } else { None },
                "rate_bits_per_second": a.rate,
                "interval_s": secs(self.interval),
            },
            "settings": settings,
            "datapath": {
                "client_workers": self.workers.0,
                "server_workers": self.workers.1,
                "workers_pinned": self.workers.2,
                "notes": self.notes,
            },
        })
    }

    fn stream_json(&self, slot: usize, m: Moved, start: f64, end: f64) -> Value {
        let (conn, stream) = self.slots[slot];
        let s = (end - start).max(0.0);
        let mut v = json!({
            "connection": conn,
            "stream": stream,
            "start": start,
            "end": end,
            "seconds": s,
            "bytes_sent": m.sent,
            "bytes_received": m.received,
            "bytes": m.bytes(),
            "bits_per_second": bps(m.bytes(), s),
        });
        if let Some(w) = self.what() {
            v[w] = m.requests.into();
        }
        v
    }

    fn conn_moved(&self, streams: &[Moved], conn: usize) -> Moved {
        let mut m = Moved::default();
        for (s, x) in self.slots.iter().zip(streams) {
            if s.0 == conn {
                m.add(*x);
            }
        }
        m
    }

    fn sum_json(&self, m: Moved, start: f64, end: f64, c: Option<ConnDelta>) -> Value {
        let s = (end - start).max(0.0);
        let mut v = json!({
            "start": start,
            "end": end,
            "seconds": s,
            "bytes_sent": m.sent,
            "bytes_received": m.received,
            "bytes": m.bytes(),
            "bits_per_second": bps(m.bytes(), s),
            "sent_bits_per_second": bps(m.sent, s),
            "received_bits_per_second": bps(m.received, s),
        });
        if let Some(w) = self.what() {
            v[w] = m.requests.into();
            v[format!("{w}_per_second")] = (m.requests as f64 / s.max(1e-9)).into();
        }
        if let Some(c) = c {
            v["packets_sent"] = c.packets_sent.into();
            v["packets_received"] = c.packets_received.into();
            v["packets_lost"] = c.packets_lost.into();
            v["bytes_retransmitted"] = c.bytes_retransmitted.into();
            v["pto_count"] = c.pto_count.into();
        }
        v
    }

    fn interval_json(&self, iv: &Tick) -> Value {
        let streams: Vec<Value> = iv
            .streams
            .iter()
            .enumerate()
            .map(|(i, m)| self.stream_json(i, *m, iv.start, iv.end))
            .collect();
        let mut total = ConnDelta::default();
        let conns: Vec<Value> = iv
            .conns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total.add(c);
                let mut v =
                    self.sum_json(self.conn_moved(&iv.streams, i), iv.start, iv.end, Some(*c));
                v["connection"] = i.into();
                v["cwnd"] = c.cwnd.into();
                v["rtt_ms"] = c.rtt_ms.into();
                v
            })
            .collect();
        let has_conns = !iv.conns.is_empty();
        json!({
            "streams": streams,
            "connections": conns,
            "sum": self.sum_json(iv.sum(), iv.start, iv.end, has_conns.then_some(total)),
        })
    }

    fn side_json(s: &ConnectionStats, secs: f64) -> Value {
        json!({
            "congestion": s.congestion,
            "packets_sent": s.packets_sent,
            "packets_received": s.packets_received,
            "packets_lost": s.packets_lost,
            "bytes_retransmitted": s.stream_bytes_retransmitted,
            "pto_count": s.pto_count,
            "congestion_events": s.congestion_events,
            "key_updates": s.key_updates,
            "pmtu": s.pmtu,
            "acks_sent": s.acks_sent,
            "ack_eliciting_received": s.ack_eliciting_received,
            "ack_frequency_sent": s.ack_frequency_sent,
            "ack_frequency_received": s.ack_frequency_received,
            "tx_packets_per_second": s.packets_sent as f64 / secs.max(1e-9),
            "rx_packets_per_second": s.packets_received as f64 / secs.max(1e-9),
        })
    }

    fn cpu_json(c: &CpuTimes, wall: f64) -> Value {
        json!({
            "seconds": secs(c.total()),
            "user_seconds": secs(c.user),
            "system_seconds": secs(c.system),
            "percent_of_wall": secs(c.total()) / wall.max(1e-9) * 100.0,
        })
    }

    fn end_json(&self) -> Value {
        let elapsed = self.elapsed();
        let per_slot = self.slot_totals();
        let streams: Vec<Value> = per_slot
            .iter()
            .enumerate()
            .map(|(i, m)| self.stream_json(i, *m, 0.0, elapsed))
            .collect();
        let conns: Vec<Value> = (0..self.connections)
            .map(|c| {
                let mut v = self.sum_json(self.conn_moved(&per_slot, c), 0.0, elapsed, None);
                v["connection"] = c.into();
                if let Some(s) = self.client_conns.get(c) {
                    v["transport"] = Self::side_json(s, elapsed);
                }
                v
            })
            .collect();
        let sum = self.sum();
        let pct =
            |c: &CpuTimes, f: fn(&CpuTimes) -> Duration| secs(f(c)) / elapsed.max(1e-9) * 100.0;
        let threads: Vec<Value> = self
            .threads
            .iter()
            .map(|t| json!({"name": t.name, "cpu_seconds": secs(t.cpu)}))
            .collect();
        let mut v = json!({
            "streams": streams,
            "connections": conns,
            "sum": self.sum_json(sum, 0.0, elapsed, None),
            "sum_sent": {"bytes": sum.sent, "bits_per_second": bps(sum.sent, elapsed)},
            "sum_received": {"bytes": sum.received, "bits_per_second": bps(sum.received, elapsed)},
            "client": self.client.map(|c| Self::side_json(&c, elapsed)),
            "server": self.server.map(|s| Self::side_json(&s, elapsed)),
            "cpu_utilization_percent": {
                "host_total": pct(&self.client_cpu, CpuTimes::total),
                "host_user": pct(&self.client_cpu, |c| c.user),
                "host_system": pct(&self.client_cpu, |c| c.system),
                "remote_total": self.server_cpu.map(|c| pct(&c, CpuTimes::total)),
                "remote_user": self.server_cpu.map(|c| pct(&c, |c| c.user)),
                "remote_system": self.server_cpu.map(|c| pct(&c, |c| c.system)),
            },
            "cpu": {
                "client": Self::cpu_json(&self.client_cpu, elapsed),
                "server": self.server_cpu.map(|c| Self::cpu_json(&c, elapsed)),
                "server_note": if self.in_process {
                    "in-process server: the CPU time of its worker threads"
                } else {
                    "the server is another process: its CPU use is not known here"
                },
                "threads": threads,
            },
            "interrupted": self.interrupted,
        });
        if let Some(h) = &self.latency {
            v["latency"] = rps::latency_json(h);
        }
        v
    }

    /// The whole JSON object.
    pub fn json(&self) -> Value {
        let intervals: Vec<Value> = self.intervals.iter().map(|i| self.interval_json(i)).collect();
        let mut v = json!({
            "start": self.start_json(),
            "intervals": intervals,
            "end": self.end_json(),
        });
        if let Some(e) = &self.error {
            v["error"] = e.clone().into();
        }
        v
    }

    /// Result lines (text output and the report's summary).
    pub fn summary_lines(&self) -> Vec<String> {
        let elapsed = self.elapsed();
        let sum = self.sum();
        let mut out = vec![format!(
            "{} connection(s){}, {elapsed:.2} s{}",
            self.connections,
            if self.mode == Mode::Handshakes {
                " (handshake slots)".to_string()
            } else {
                format!(" x {} stream(s)", self.args.streams)
            },
            if self.interrupted { ", interrupted" } else { "" }
        )];
        if self.mode != Mode::Handshakes {
            out.push(format!(
                "moved     sent {} ({}), received {} ({}); goodput {}",
                bytes(sum.sent),
                rate(bps(sum.sent, elapsed)),
                bytes(sum.received),
                rate(bps(sum.received, elapsed)),
                rate(bps(sum.bytes(), elapsed))
            ));
        }
        if let (Some(w), Some(h)) = (self.what(), &self.latency) {
            let p: Vec<String> =
                rps::percentiles(h).iter().map(|(_, k, us)| format!("{k} {us} us")).collect();
            out.push(format!(
                "{w:<9} {} ({:.0}/s); latency {}",
                sum.requests,
                sum.requests as f64 / elapsed.max(1e-9),
                p.join(", ")
            ));
        }
        let side = |name: &str, s: &ConnectionStats| {
            format!(
                "{name:<9} sent {} pkts, received {}, lost {}, retransmitted {}, PTOs {}, congestion {}",
                s.packets_sent,
                s.packets_received,
                s.packets_lost,
                bytes(s.stream_bytes_retransmitted),
                s.pto_count,
                s.congestion
            )
        };
        if let Some(c) = &self.client {
            out.push(side("client", c));
        }
        if let Some(s) = &self.server {
            out.push(side("server", s));
        }
        let cpu = |c: &CpuTimes| {
            format!(
                "{:.2} s ({:.0}% of wall; user {:.2} s, system {:.2} s)",
                secs(c.total()),
                secs(c.total()) / elapsed.max(1e-9) * 100.0,
                secs(c.user),
                secs(c.system)
            )
        };
        out.push(format!("cpu       client {}", cpu(&self.client_cpu)));
        if let Some(s) = &self.server_cpu {
            out.push(format!("cpu       server {}", cpu(s)));
        }
        out
    }

    /// Prints the results: JSON with `--json`, else text.
    pub fn print(&self) {
        if self.args.json {
            outln!("{}", self.json());
            return;
        }
        let mut lines = self.summary_lines().into_iter();
        if let Some(first) = lines.next() {
            outln!("perf: {first}");
        }
        let s = self.settings;
        outln!(
            "  setup     datapath {}, congestion {}, pacing {}, client workers {}{}",
            super::datapath_name(s.datapath),
            s.congestion.name(),
            if s.pacing { "on" } else { "off" },
            self.workers.0,
            self.workers.1.map(|n| format!(", server workers {n}")).unwrap_or_default()
        );
        for l in lines {
            outln!("  {l}");
        }
        for t in self.threads.iter().filter(|t| t.cpu >= Duration::from_millis(10)).take(8) {
            outln!("    {:<16} {:.2} s", t.name, t.cpu.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_705_314_600);
        assert_eq!(rfc3339(t), "2024-01-15T10:30:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 86_399);
        assert_eq!(rfc3339(leap), "2000-02-29T23:59:59Z");
    }
}
