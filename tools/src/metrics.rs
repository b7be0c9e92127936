//! Prometheus text exposition (format 0.0.4) and a tiny blocking HTTP/1.1 server for it.
//!
//! [`Exposition`] collects counters and gauges into families (one `# HELP` and `# TYPE` line
//! each, label values escaped per the spec); [`MetricsServer`] answers `GET /metrics` with a
//! fresh rendering from a callback, `404` for other paths, on one thread that serves many
//! connections at once (non-blocking sockets), each bounded in request size and time, until
//! [`MetricsServer::stop`]: idle connections cannot hold it.

use std::fmt::Write as _;

/// Whether a family counts up (counter) or goes up and down (gauge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonically increasing; the name should end in `_total`.
    Counter,
    /// Any value.
    Gauge,
}

struct Family {
    name: String,
    help: String,
    kind: Kind,
    samples: Vec<(String, f64)>,
}

/// A set of metric families rendered in the Prometheus text format.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
}

/// Whether `name` is a valid metric or label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`; labels may not
/// use `:` but we only check the common rule).
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a counter sample.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add(Kind::Counter, name, help, labels, value);
    }

    /// Adds a gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add(Kind::Gauge, name, help, labels, value);
    }

    /// Adds a sample to the family `name` (created on first use with this help and kind).
    /// Invalid metric or label names are a programming error and are skipped in release builds.
    pub fn add(&mut self, kind: Kind, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        debug_assert!(valid_name(name), "metric name {name:?}");
        if !valid_name(name) || labels.iter().any(|(k, _)| !valid_name(k) || k.contains(':')) {
            return;
        }
        let mut series = String::new();
        if !labels.is_empty() {
            series.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                let sep = if i > 0 { "," } else { "" };
                let _ = write!(series, "{sep}{k}=\"{}\"", escape_label_value(v));
            }
            series.push('}');
        }
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push((series, value)),
            None => self.families.push(Family {
                name: name.to_owned(),
                help: help.to_owned(),
                kind,
                samples: vec![(series, value)],
            }),
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            for (series, v) in &f.samples {
                let _ = writeln!(out, "{}{series} {}", f.name, format_value(*v));
            }
        }
        out
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// Statistics of this process from procfs: CPU seconds, resident memory, threads. Missing
/// files (non-Linux) leave the corresponding metric out.
pub fn process_metrics(exp: &mut Exposition) {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let mut it = line.split_whitespace();
            match (it.next(), it.next().and_then(|v| v.parse::<f64>().ok())) {
                (Some("VmRSS:"), Some(kib)) => exp.gauge(
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    &[],
                    kib * 1024.0,
                ),
                (Some("Threads:"), Some(n)) => {
                    exp.gauge("process_threads", "Number of OS threads.", &[], n)
                }
                _ => {}
            }
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            if let (Some(u), Some(s)) = (ticks(11), ticks(12)) {
                // USER_HZ is 100 on every Linux architecture we run on.
                exp.counter(
                    "process_cpu_seconds_total",
                    "User and system CPU time in seconds.",
                    &[],
                    (u + s) / 100.0,
                );
            }
        }
    }
}

mod http;

pub use http::{MetricsServer, Source};

pub mod endpoint;

#[cfg(test)]
mod tests;
