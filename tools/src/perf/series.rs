//! perf's `--report` file (checked and created before the run, written after it, also on
//! Ctrl-C) with the charts built from the run's ticks, and perf's `--metrics-addr` server.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hdrhistogram::Histogram;
use peregrine_engine::api::Endpoint;

use super::sample::{Slot, Tick};
use crate::metrics::endpoint::endpoint_metrics;
use crate::metrics::{process_metrics, Exposition, MetricsServer, Source};
use crate::report::{self, Chart, Distribution, Line, Report};

/// The `--report` file, opened before the run so that a bad path or directory fails at once;
/// removed again if the run ends without writing it.
pub struct ReportFile {
    path: PathBuf,
    file: Option<File>,
}

impl ReportFile {
    /// Checks the extension and creates (truncates) the file.
    pub fn create(path: &Path) -> Result<Self, String> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if !matches!(ext.as_str(), "svg" | "html" | "htm") {
            return Err(format!("--report: '{}' must end in .svg or .html", path.display()));
        }
        let file = File::create(path).map_err(|e| format!("--report {}: {e}", path.display()))?;
        Ok(ReportFile { path: path.to_owned(), file: Some(file) })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renders `report` in the file's format and writes it.
    pub fn write(mut self, report: &Report<'_>) -> Result<(), String> {
        let text = report::render_for(&self.path, report)?;
        let mut f = self.file.take().ok_or("--report: already written")?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.flush())
            .map_err(|e| format!("--report {}: {e}", self.path.display()))
    }
}

impl Drop for ReportFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What the perf charts are about.
pub enum Kind {
    /// Bulk transfer: throughput per connection.
    Bulk,
    /// Requests: throughput per connection, requests/s, request latency.
    Rps,
    /// Handshakes: handshakes/s, handshake latency.
    Handshakes,
}

/// The charts of a perf run.
pub fn charts(kind: &Kind, slots: &[Slot], ticks: &[Tick], connections: usize) -> Vec<Chart> {
    let per_conn = |value: &dyn Fn(&Tick, usize) -> f64| -> Vec<Line> {
        let mut lines: Vec<Line> = (0..connections)
            .map(|c| Line {
                name: format!("connection {c}"),
                steps: ticks.iter().map(|t| (t.start, t.end, value(t, c))).collect(),
            })
            .collect();
        if connections > 1 {
            lines.push(Line {
                name: "all connections".into(),
                steps: ticks
                    .iter()
                    .map(|t| (t.start, t.end, (0..connections).map(|c| value(t, c)).sum()))
                    .collect(),
            });
        }
        lines
    };
    let conn_sum = |t: &Tick, c: usize, f: &dyn Fn(&super::sample::Moved) -> u64| -> u64 {
        slots.iter().zip(&t.streams).filter(|(s, _)| s.conn == c).map(|(_, m)| f(m)).sum()
    };
    let bits =
        |t: &Tick, c: usize| conn_sum(t, c, &|m| m.bytes()) as f64 * 8.0 / t.seconds().max(1e-9);
    // The unit that keeps the figures readable: Gbit/s, else Mbit/s, else kbit/s.
    let peak =
        ticks.iter().map(|t| (0..connections).map(|c| bits(t, c)).sum::<f64>()).fold(0.0, f64::max);
    let (div, unit) = match peak {
        p if p >= 1e9 => (1e9, "Gbit/s"),
        p if p >= 1e6 => (1e6, "Mbit/s"),
        _ => (1e3, "kbit/s"),
    };
    let scaled = |t: &Tick, c: usize| bits(t, c) / div;
    let per_sec =
        |t: &Tick, c: usize| conn_sum(t, c, &|m| m.requests) as f64 / t.seconds().max(1e-9);
    let throughput = Chart {
        title: "goodput over time (stream payload sent and acknowledged + received)".into(),
        y_label: format!("throughput ({unit})"),
        lines: per_conn(&scaled),
    };
    match kind {
        Kind::Bulk => vec![throughput],
        Kind::Rps => vec![
            Chart {
                title: "completed requests per second".into(),
                y_label: "requests/s".into(),
                lines: per_conn(&per_sec),
            },
            throughput,
        ],
        Kind::Handshakes => {
            let lines = per_conn(&per_sec)
                .into_iter()
                .map(|mut l| {
                    // Each slot connects and closes back to back (no thread of its own).
                    l.name = l.name.replace("connection", "slot");
                    l
                })
                .collect();
            vec![Chart {
                title: "completed handshakes per second".into(),
                y_label: "handshakes/s".into(),
                lines,
            }]
        }
    }
}

/// The whole perf report.
pub fn report<'a>(
    kind: &Kind,
    charts: Vec<Chart>,
    latency: Option<&'a Histogram<u64>>,
    summary: Vec<String>,
    notes: Vec<String>,
) -> Report<'a> {
    let latency = match kind {
        Kind::Bulk => None,
        Kind::Rps => Some(Distribution {
            title: "request latency".into(),
            histogram: latency.ok_or_else(|| "no requests completed".to_string()),
        }),
        Kind::Handshakes => Some(Distribution {
            title: "handshake latency".into(),
            histogram: latency.ok_or_else(|| "no handshakes completed".to_string()),
        }),
    };
    Report { title: "peregrine perf".into(), charts, latency, summary, notes }
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
