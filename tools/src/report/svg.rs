//! The SVG chart: throughput over time (top) and the latency percentile curve (bottom).

use super::{xml_escape, Report, MARKED_PERCENTILES};
use std::fmt::Write as _;

const W: f64 = 820.0;
const H: f64 = 640.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 790.0;
/// Top and bottom of the throughput panel's plot area.
const TP: (f64, f64) = (50.0, 260.0);
/// Top and bottom of the latency panel's plot area.
const LP: (f64, f64) = (340.0, 550.0);
/// The latency x axis spans percentiles 0 ..= 99.99 as log10(1 / (1 - p)), i.e. 0 ..= 4.
const NINES: f64 = 4.0;
const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

/// A linear map from data `[d0, d1]` to pixels `[p0, p1]`.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    d0: f64,
    d1: f64,
    p0: f64,
    p1: f64,
}

impl Scale {
    /// Maps `[d0, d1]` onto `[p0, p1]` (a zero-width domain maps everything to `p0`).
    pub fn new(d0: f64, d1: f64, p0: f64, p1: f64) -> Self {
        Scale { d0, d1, p0, p1 }
    }

    /// The pixel of `v`.
    pub fn at(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if span.abs() < f64::EPSILON {
            return self.p0;
        }
        self.p0 + (v - self.d0) / span * (self.p1 - self.p0)
    }
}

/// A "nice" upper bound ≥ `v` (1, 2 or 5 times a power of ten).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|&c| c >= v).unwrap_or(10.0 * p)
}

fn axes(out: &mut String, y: Scale, ymax: f64, xlabel: &str, ylabel: &str) {
    let (yb, yt) = (y.at(0.0), y.at(ymax));
    let _ = writeln!(
        out,
        "<g class=\"axes\" stroke=\"#444\" fill=\"none\"><line x1=\"{LEFT}\" y1=\"{yb}\" x2=\"{RIGHT}\" \
         y2=\"{yb}\"/><line x1=\"{LEFT}\" y1=\"{yb}\" x2=\"{LEFT}\" y2=\"{yt}\"/></g>"
    );
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let py = y.at(v);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{RIGHT}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            LEFT - 6.0,
            py + 4.0,
            fmt_tick(v)
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text>\n\
         <text x=\"16\" y=\"{:.1}\" font-size=\"12\" transform=\"rotate(-90 16 {:.1})\" \
         text-anchor=\"middle\">{}</text>\n",
        (LEFT + RIGHT) / 2.0,
        yb + 34.0,
        xml_escape(xlabel),
        (yb + yt) / 2.0,
        (yb + yt) / 2.0,
        xml_escape(ylabel)
    );
}

fn fmt_tick(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the report as a standalone SVG document.
pub fn svg(report: &Report<'_>) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"15\">{}</text>\n",
        xml_escape(&report.title)
    );
    throughput(&mut out, report);
    latency(&mut out, report);
    for (i, n) in report.notes.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text class=\"note\" x=\"{LEFT}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
            H - 40.0 + 12.0 * i as f64,
            xml_escape(n)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn throughput(out: &mut String, report: &Report<'_>) {
    let tmax = report.series.iter().flat_map(|s| s.samples.iter().map(|x| x.t)).fold(0.0, f64::max);
    let gmax = report
        .series
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.gbit_per_sec()))
        .fold(0.0, f64::max);
    let (tmax, gmax) = (nice_max(tmax), nice_max(gmax));
    let x = Scale::new(0.0, tmax, LEFT, RIGHT);
    let y = Scale::new(0.0, gmax, TP.1, TP.0);
    out.push_str("<g id=\"throughput-panel\">\n");
    axes(out, y, gmax, &format!("time (s, 0..{})", fmt_tick(tmax)), "Gbit/s");
    for i in 0..=5 {
        let t = tmax * i as f64 / 5.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
            x.at(t),
            TP.1 + 16.0,
            fmt_tick(t)
        );
    }
    for (i, s) in report.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = s
            .samples
            .iter()
            .map(|p| format!("{:.2},{:.2}", x.at(p.t), y.at(p.gbit_per_sec())))
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"throughput\" id=\"throughput-{i}\" data-series=\"{}\" fill=\"none\" \
             stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            xml_escape(&s.name),
            pts.join(" ")
        );
        let _ = writeln!(
            out,
            "<text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"{color}\">{}</text>",
            RIGHT - 150.0,
            TP.0 + 14.0 * (i as f64 + 1.0),
            xml_escape(&s.name)
        );
    }
    out.push_str("</g>\n");
}

fn latency(out: &mut String, report: &Report<'_>) {
    out.push_str("<g id=\"latency-panel\">\n");
    let h = match &report.latency {
        Ok(h) if !h.is_empty() => *h,
        other => {
            let why = match other {
                Err(why) => why.clone(),
                _ => "no samples".into(),
            };
            let _ = writeln!(
                out,
                "<text class=\"no-latency\" x=\"{LEFT}\" y=\"{:.1}\" font-size=\"13\">latency \
                 distribution not recorded: {}</text>\n</g>",
                (LP.0 + LP.1) / 2.0,
                xml_escape(&why)
            );
            return;
        }
    };
    let vmax = nice_max(h.max() as f64);
    let x = Scale::new(0.0, NINES, LEFT, RIGHT);
    let y = Scale::new(0.0, vmax, LP.1, LP.0);
    axes(out, y, vmax, "percentile", "latency (us)");
    for (nines, label) in [(0.0, "p0"), (1.0, "p90"), (2.0, "p99"), (3.0, "p99.9"), (4.0, "p99.99")]
    {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{label}</text>",
            x.at(nines),
            LP.1 + 16.0
        );
    }
    let pts: Vec<String> = (0..=200)
        .map(|k| {
            let nines = NINES * k as f64 / 200.0;
            let p = 100.0 * (1.0 - 10f64.powf(-nines));
            format!("{:.2},{:.2}", x.at(nines), y.at(h.value_at_percentile(p) as f64))
        })
        .collect();
    let _ = writeln!(
        out,
        "<polyline id=\"latency\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>",
        pts.join(" ")
    );
    let marks = MARKED_PERCENTILES
        .iter()
        .map(|&(p, name)| (-(1.0 - p / 100.0f64).log10(), name, h.value_at_percentile(p)))
        .chain(std::iter::once((NINES, "max", h.max())));
    for (nines, name, v) in marks {
        let (px, py) = (x.at(nines), y.at(v as f64));
        let _ = writeln!(
            out,
            "<circle class=\"mark\" data-label=\"{name}\" cx=\"{px:.2}\" cy=\"{py:.2}\" r=\"4\" \
             fill=\"#d62728\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{name} {v} us</text>",
            px - 20.0,
            py - 8.0
        );
    }
    out.push_str("</g>\n");
}
