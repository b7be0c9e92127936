//! Benchmark reports: a self-contained SVG (throughput over time, latency percentiles), an HTML
//! page embedding it, and a text summary.
//!
//! Input is one or more throughput [`Series`] of per-interval [`Sample`]s and, optionally, an
//! `hdrhistogram` of latencies in microseconds. Nothing is fetched at view time: the SVG has no
//! scripts, fonts or external references.

mod svg;

pub use svg::svg;

use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// What was transferred in one interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// End of the interval, in seconds since the start of the run.
    pub t: f64,
    /// Length of the interval in seconds (> 0).
    pub dt: f64,
    /// Payload bytes delivered in the interval.
    pub bytes: u64,
    /// Packets (datagrams) delivered in the interval.
    pub packets: u64,
}

impl Sample {
    /// Goodput of the interval in Gbit/s (10^9 bits).
    pub fn gbit_per_sec(&self) -> f64 {
        if self.dt > 0.0 {
            self.bytes as f64 * 8.0 / self.dt / 1e9
        } else {
            0.0
        }
    }
}

/// A named throughput time series (one line in the chart).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text, e.g. the case name.
    pub name: String,
    /// Intervals in time order.
    pub samples: Vec<Sample>,
}

/// Everything a report shows.
pub struct Report<'a> {
    /// Title line.
    pub title: String,
    /// Throughput series.
    pub series: Vec<Series>,
    /// Latencies in microseconds, or the reason there are none.
    pub latency: Result<&'a Histogram<u64>, String>,
    /// Free-text notes printed under the charts (how the data was measured).
    pub notes: Vec<String>,
}

/// The percentiles marked on the latency plot and printed in the summary.
pub const MARKED_PERCENTILES: [(f64, &str); 4] =
    [(50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9")];

/// Escapes text for XML character data and attribute values.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// An HTML page that embeds the SVG inline, with the text summary below it.
pub fn html(report: &Report<'_>) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n</head>\n<body style=\"font-family:sans-serif\">\n{svg}\n\
         <pre>{summary}</pre>\n</body>\n</html>\n",
        title = xml_escape(&report.title),
        svg = svg(report),
        summary = xml_escape(&summary(report)),
    )
}

/// Text summary: per series total goodput and packet rate, then latency percentiles.
pub fn summary(report: &Report<'_>) -> String {
    let mut out = format!("{}\n", report.title);
    for s in &report.series {
        let bytes: u64 = s.samples.iter().map(|x| x.bytes).sum();
        let packets: u64 = s.samples.iter().map(|x| x.packets).sum();
        let secs: f64 = s.samples.iter().map(|x| x.dt).sum();
        let (gbps, pps) = if secs > 0.0 {
            (bytes as f64 * 8.0 / secs / 1e9, packets as f64 / secs)
        } else {
            (0.0, 0.0)
        };
        let peak = s.samples.iter().map(Sample::gbit_per_sec).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "  {}: goodput {gbps:.2} Gbit/s (peak interval {peak:.2}), {pps:.0} packets/s, \
             {bytes} bytes in {secs:.3} s over {} intervals",
            s.name,
            s.samples.len()
        );
    }
    match &report.latency {
        Ok(h) if !h.is_empty() => {
            let mut parts: Vec<String> = MARKED_PERCENTILES
                .iter()
                .map(|(p, name)| format!("{name} {} us", h.value_at_percentile(*p)))
                .collect();
            parts.push(format!("max {} us", h.max()));
            let _ = writeln!(out, "  latency ({} samples): {}", h.len(), parts.join(", "));
        }
        Ok(_) => out.push_str("  latency: no samples\n"),
        Err(why) => {
            let _ = writeln!(out, "  latency: not recorded ({why})");
        }
    }
    for n in &report.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}

/// Writes the report to `path`: HTML when it ends in `.html`/`.htm`, SVG when `.svg`.
pub fn write_file(path: &std::path::Path, report: &Report<'_>) -> Result<(), String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let text = match ext.as_str() {
        "svg" => svg(report),
        "html" | "htm" => html(report),
        _ => return Err(format!("--report: '{}' must end in .svg or .html", path.display())),
    };
    std::fs::write(path, text).map_err(|e| format!("--report {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
