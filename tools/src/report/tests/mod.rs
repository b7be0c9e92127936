//! Report tests: the SVG (drawn by plotters) is well-formed XML with axes that carry units,
//! a legend naming every series, the marked percentiles, and no text outside the picture;
//! the summary has the numbers with their units.

use super::*;

/// A minimal well-formedness check: balanced, properly nested tags, quoted attributes, no
/// stray `<` or `&` in text. Returns the start tags with their attribute text.
fn check_xml(doc: &str) -> Result<Vec<(String, String)>, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut tags = Vec::new();
    let mut rest = doc;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if let Some(amp) = text.find('&') {
            let ent = &text[amp..];
            if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| ent.starts_with(e)) {
                return Err(format!("bad entity in {text:?}"));
            }
        }
        let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
        let inner = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if inner.starts_with('?') || inner.starts_with('!') {
            continue;
        }
        if inner.contains('<') {
            return Err(format!("'<' inside tag {inner:?}"));
        }
        if let Some(name) = inner.strip_prefix('/') {
            let open = stack.pop().ok_or_else(|| format!("stray </{name}>"))?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
            continue;
        }
        let self_closing = inner.ends_with('/');
        let body = inner.trim_end_matches('/');
        let (name, attrs) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
        if attrs.matches('"').count() % 2 != 0 {
            return Err(format!("unbalanced quotes in <{name}>"));
        }
        tags.push((name.to_owned(), attrs.to_owned()));
        if !self_closing {
            stack.push(name.to_owned());
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    Ok(tags)
}

fn attr<'a>(attrs: &'a str, key: &str) -> Option<&'a str> {
    let start = attrs.find(&format!("{key}=\""))? + key.len() + 2;
    Some(&attrs[start..start + attrs[start..].find('"')?])
}

fn points(attrs: &str) -> Vec<(f64, f64)> {
    attr(attrs, "points")
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

/// Every `<text>` element: its attributes and its (unescaped, trimmed) content.
fn texts(doc: &str) -> Vec<(String, String)> {
    let flat = doc.replace('\n', " ");
    flat.split("<text ")
        .skip(1)
        .map(|t| {
            let (attrs, rest) = t.split_once('>').unwrap();
            let body = rest.split("</text>").next().unwrap().trim();
            (attrs.to_owned(), body.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        })
        .collect()
}

/// Fails when a text element (width estimated generously at 0.62 em per character) reaches
/// past the picture's edges.
fn assert_nothing_clipped(doc: &str) {
    for (a, body) in texts(doc) {
        if attr(&a, "transform").is_some() {
            continue; // rotated axis titles: centred on a short vertical axis
        }
        let x: f64 = attr(&a, "x").unwrap().parse().unwrap();
        let size: f64 = attr(&a, "font-size").unwrap().parse().unwrap();
        let w = body.chars().count() as f64 * size * 0.62;
        let (left, right) = match attr(&a, "text-anchor") {
            Some("end") => (x - w, x),
            Some("middle") => (x - w / 2.0, x + w / 2.0),
            _ => (x, x + w),
        };
        let width = f64::from(super::plot::WIDTH);
        assert!(left >= 0.0 && right <= width, "{body:?} spans {left:.0}..{right:.0} of {width}");
    }
}

fn ramp() -> Series {
    let samples = (1..=10)
        .map(|i| Sample { t: i as f64 * 0.1, dt: 0.1, bytes: i * 1_000_000, packets: i * 800 })
        .collect();
    Series { name: "gso <&> gro".into(), samples }
}

fn histogram() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for v in 1..=10_000u64 {
        h.record(v * 1000).unwrap();
    }
    h
}

fn report<'a>(h: &'a Histogram<u64>, series: &[Series]) -> Report<'a> {
    Report {
        title: "bench \"x\" <1>".into(),
        charts: vec![Chart::throughput(series)],
        latency: Some(Distribution { title: "request latency".into(), histogram: Ok(h) }),
        summary: series_summary(series),
        notes: vec!["sliced & measured".into()],
    }
}

#[test]
fn svg_is_well_formed_with_units_legend_and_marks() {
    let h = histogram();
    let doc = svg(&report(&h, &[ramp()])).unwrap();
    let tags = check_xml(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
    assert_eq!(tags[0].0, "svg");
    let words: Vec<String> = texts(&doc).into_iter().map(|(_, b)| b).collect();
    for needed in ["time (s)", "throughput (Gbit/s)", "percentile", "latency (µs)", "gso <&> gro"]
    {
        assert!(words.iter().any(|w| w == needed), "no {needed:?} in {words:?}");
    }
    for mark in ["p50 ", "p90 ", "p99 ", "p99.9 ", "max "] {
        assert!(
            words.iter().any(|w| w.starts_with(mark) && w.ends_with(" µs")),
            "{mark}: {words:?}"
        );
    }
    assert!(words.iter().any(|w| w == "note: sliced & measured"));
    assert!(!doc.contains("<script"));
    assert_nothing_clipped(&doc);
}

#[test]
fn time_axis_ends_at_the_last_interval_and_lines_are_steps() {
    let h = histogram();
    let two_seconds: Vec<Sample> = (1..=20)
        .map(|i| Sample { t: i as f64 * 0.1, dt: 0.1, bytes: 1_000_000, packets: 1 })
        .collect();
    let doc = svg(&report(&h, &[Series { name: "flat".into(), samples: two_seconds }])).unwrap();
    let ticks: Vec<f64> = texts(&doc)
        .iter()
        .filter(|(a, _)| attr(a, "text-anchor") == Some("middle"))
        .filter_map(|(_, b)| b.parse::<f64>().ok())
        .collect();
    let last = ticks.iter().copied().fold(0.0, f64::max);
    assert!(
        (1.8..=2.0).contains(&last),
        "a 2 s run has a 2 s axis, not a rounded-up one: {ticks:?}"
    );
    // The constant series is one horizontal line: every point has the same y, no drop to 0.
    let tags = check_xml(&doc).unwrap();
    let flat = tags
        .iter()
        .filter(|(n, a)| n == "polyline" && attr(a, "stroke") == Some("#0072B2"))
        .map(|(_, a)| points(a))
        .find(|p| p.len() < 401) // the latency curve has 401 points in the same colour
        .unwrap();
    assert_eq!(flat.len(), 40, "two points per interval");
    assert!(flat.iter().all(|p| (p.1 - flat[0].1).abs() < 1e-9), "{flat:?}");
}

#[test]
fn missing_latency_is_said_and_html_wraps() {
    let r = Report {
        title: "t".into(),
        charts: vec![Chart::throughput(&[
            ramp(),
            Series { name: "empty".into(), samples: vec![] },
        ])],
        latency: Some(Distribution {
            title: "datagram latency".into(),
            histogram: Err("datapath-bench measures throughput only".into()),
        }),
        summary: vec![],
        notes: vec![],
    };
    let doc = svg(&r).unwrap();
    check_xml(&doc).unwrap();
    assert!(
        doc.contains("datagram latency: not recorded (datapath-bench measures throughput only)")
    );
    assert!(doc.contains("empty"), "the empty series is in the legend");
    let page = html(&r).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg") && page.contains("</svg>") && page.contains("<pre "));
}

#[test]
fn summary_numbers_have_units() {
    let h = histogram();
    let s = summary(&report(&h, &[ramp()]));
    // 55 MB in 1 s = 0.44 Gbit/s; 44000 packets/s; peak interval 10 MB in 0.1 s = 0.8 Gbit/s.
    assert!(s.contains("goodput 0.44 Gbit/s (peak interval 0.80 Gbit/s)"), "{s}");
    assert!(s.contains("44000 packets/s"), "{s}");
    assert!(s.contains("request latency (10000 samples): p50 "), "{s}");
    assert!(s.contains(" us, max 100"), "{s}");
}
