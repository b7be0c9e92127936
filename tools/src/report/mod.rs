//! Benchmark reports: charts drawn with `plotters` into one self-contained SVG (time series
//! with units and legends, and a latency distribution), an HTML page that embeds it above a
//! text summary, and the summary alone.
//!
//! Nothing is fetched at view time: the SVG has no scripts, fonts or external references.

mod plot;

use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// What was transferred in one interval (datapath-bench's slices).
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

/// A named throughput time series of [`Sample`]s.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text, e.g. the case name.
    pub name: String,
    /// Intervals in time order.
    pub samples: Vec<Sample>,
}

/// One line of a time chart: a step function, constant over each interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Legend text.
    pub name: String,
    /// `(start s, end s, value)` per interval, in time order.
    pub steps: Vec<(f64, f64, f64)>,
}

/// A time chart: x is seconds since the start, y is [`Chart::y_label`] (with its unit).
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Caption.
    pub title: String,
    /// y axis label with the unit, e.g. `throughput (Gbit/s)`.
    pub y_label: String,
    /// The lines.
    pub lines: Vec<Line>,
}

impl Chart {
    /// Goodput over time of datapath-bench style series.
    pub fn throughput(series: &[Series]) -> Chart {
        let lines = series
            .iter()
            .map(|s| Line {
                name: s.name.clone(),
                steps: s.samples.iter().map(|x| (x.t - x.dt, x.t, x.gbit_per_sec())).collect(),
            })
            .collect();
        Chart { title: "throughput over time".into(), y_label: "throughput (Gbit/s)".into(), lines }
    }
}

/// A latency distribution panel: the histogram, or why there is none.
pub struct Distribution<'a> {
    /// Caption, e.g. `request latency`.
    pub title: String,
    /// Latencies in microseconds, or the reason there are none.
    pub histogram: Result<&'a Histogram<u64>, String>,
}

/// Everything a report shows.
pub struct Report<'a> {
    /// Title line.
    pub title: String,
    /// Time charts, top to bottom.
    pub charts: Vec<Chart>,
    /// The latency panel under them, if any.
    pub latency: Option<Distribution<'a>>,
    /// Result lines (printed under the title in the summary).
    pub summary: Vec<String>,
    /// How the data was measured (printed under the charts).
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

/// The report as a standalone SVG document.
pub fn svg(report: &Report<'_>) -> Result<String, String> {
    plot::svg(report)
}

/// An HTML page that embeds the SVG inline, with the text summary below it (wrapped at the
/// window's width: its note lines are longer than the charts are wide).
pub fn html(report: &Report<'_>) -> Result<String, String> {
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n</head>\n<body style=\"font-family:sans-serif;margin:16px\">\n\
         {svg}\n<pre style=\"white-space:pre-wrap;overflow-wrap:anywhere\">{summary}</pre>\n\
         </body>\n</html>\n",
        title = xml_escape(&report.title),
        svg = svg(report)?,
        summary = xml_escape(&summary(report)),
    ))
}

/// Per series of [`Sample`]s: goodput, packet rate, bytes, time and the peak interval, with
/// units.
pub fn series_summary(series: &[Series]) -> Vec<String> {
    series
        .iter()
        .map(|s| {
            let bytes: u64 = s.samples.iter().map(|x| x.bytes).sum();
            let packets: u64 = s.samples.iter().map(|x| x.packets).sum();
            let secs: f64 = s.samples.iter().map(|x| x.dt).sum();
            let (gbps, pps) = if secs > 0.0 {
                (bytes as f64 * 8.0 / secs / 1e9, packets as f64 / secs)
            } else {
                (0.0, 0.0)
            };
            let peak = s.samples.iter().map(Sample::gbit_per_sec).fold(0.0, f64::max);
            format!(
                "{}: goodput {gbps:.2} Gbit/s (peak interval {peak:.2} Gbit/s), {pps:.0} \
                 packets/s, {bytes} bytes in {secs:.3} s over {} intervals",
                s.name,
                s.samples.len()
            )
        })
        .collect()
}

/// Text summary: the title, the result lines, latency percentiles, notes.
pub fn summary(report: &Report<'_>) -> String {
    let mut out = format!("{}\n", report.title);
    for l in &report.summary {
        let _ = writeln!(out, "  {l}");
    }
    if let Some(d) = &report.latency {
        match &d.histogram {
            Ok(h) if !h.is_empty() => {
                let mut parts: Vec<String> = MARKED_PERCENTILES
                    .iter()
                    .map(|(p, name)| format!("{name} {} us", h.value_at_percentile(*p)))
                    .collect();
                parts.push(format!("max {} us", h.max()));
                let _ = writeln!(out, "  {} ({} samples): {}", d.title, h.len(), parts.join(", "));
            }
            Ok(_) => {
                let _ = writeln!(out, "  {}: no samples", d.title);
            }
            Err(why) => {
                let _ = writeln!(out, "  {}: not recorded ({why})", d.title);
            }
        }
    }
    for n in &report.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}

/// The report as the file type `path` names: HTML for `.html`/`.htm`, SVG for `.svg`.
pub fn render_for(path: &std::path::Path, report: &Report<'_>) -> Result<String, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "svg" => svg(report),
        "html" | "htm" => html(report),
        _ => Err(format!("--report: '{}' must end in .svg or .html", path.display())),
    }
}

/// Writes the report to `path`: HTML when it ends in `.html`/`.htm`, SVG when `.svg`.
pub fn write_file(path: &std::path::Path, report: &Report<'_>) -> Result<(), String> {
    let text = render_for(path, report)?;
    std::fs::write(path, text).map_err(|e| format!("--report {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
