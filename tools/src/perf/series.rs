//! Per-interval throughput series of a perf run, its `--report` file, and perf's
//! `--metrics-addr` server.

// A command, not the sans-IO core: it reads the wall clock to cut intervals.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::api::{Connection, Endpoint};

use crate::metrics::endpoint::endpoint_metrics;
use crate::metrics::{process_metrics, Exposition, MetricsServer, Source};
use crate::report::{self, Sample, Series};

/// Length of one interval of the series.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Cuts the received byte count and the client's received datagrams into intervals.
pub struct Recorder {
    start: Instant,
    last_t: Instant,
    last_bytes: u64,
    last_packets: u64,
    /// Intervals so far.
    pub samples: Vec<Sample>,
}

impl Recorder {
    /// A recorder whose time 0 is `start`.
    pub fn new(start: Instant) -> Self {
        Self { start, last_t: start, last_bytes: 0, last_packets: 0, samples: Vec::new() }
    }

    /// Closes an interval if [`INTERVAL`] has passed since the last one.
    pub fn poll(&mut self, received: &AtomicU64, conns: &[Connection]) {
        if self.last_t.elapsed() >= INTERVAL {
            self.cut(received, conns);
        }
    }

    /// Closes the last (possibly short) interval.
    pub fn finish(&mut self, received: &AtomicU64, conns: &[Connection]) {
        if self.last_t.elapsed() > Duration::ZERO {
            self.cut(received, conns);
        }
    }

    fn cut(&mut self, received: &AtomicU64, conns: &[Connection]) {
        let now = Instant::now();
        let bytes = received.load(Ordering::Relaxed);
        let packets: u64 = conns.iter().map(|c| c.stats().packets_received).sum();
        self.samples.push(Sample {
            t: now.duration_since(self.start).as_secs_f64(),
            dt: now.duration_since(self.last_t).as_secs_f64(),
            bytes: bytes.saturating_sub(self.last_bytes),
            packets: packets.saturating_sub(self.last_packets),
        });
        (self.last_t, self.last_bytes, self.last_packets) = (now, bytes, packets);
    }
}

/// Refuses a `--report` path that is neither `.svg` nor `.html` before the run starts.
pub fn check_report_path(path: &Path) -> Result<(), String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "svg" | "html" | "htm" => Ok(()),
        _ => Err(format!("--report: '{}' must end in .svg or .html", path.display())),
    }
}

/// Writes the throughput series and (for `--rps`) the latency histogram to `path`.
pub fn write_report(
    path: &Path,
    rec: &Recorder,
    latency: Option<&hdrhistogram::Histogram<u64>>,
    setup: &str,
) -> Result<(), String> {
    let r = report::Report {
        title: "peregrine perf".into(),
        series: vec![Series { name: "client received".into(), samples: rec.samples.clone() }],
        latency: latency.ok_or_else(|| {
            "bulk transfer has no request latencies; run perf --rps for them".to_string()
        }),
        notes: vec![
            setup.to_owned(),
            format!(
                "throughput: stream payload bytes the client received per {} ms interval; \
                 packets: QUIC packets the client received",
                INTERVAL.as_millis()
            ),
        ],
    };
    report::write_file(path, &r)
}

/// Serves the client endpoint's counters, the in-process server's (if any) and the
/// process's on `addr`.
pub fn serve_metrics(
    addr: SocketAddr,
    client: &Arc<Endpoint>,
    server: Option<&Arc<Endpoint>>,
) -> Result<MetricsServer, String> {
    let (client, server) = (client.clone(), server.cloned());
    let source: Source = Arc::new(move || {
        let mut e = Exposition::new();
        endpoint_metrics(&mut e, "client", &client.stats());
        if let Some(s) = &server {
            endpoint_metrics(&mut e, "server", &s.stats());
        }
        process_metrics(&mut e);
        e.render()
    });
    MetricsServer::start(addr, source).map_err(|e| format!("--metrics-addr {addr}: {e}"))
}
