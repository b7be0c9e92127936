//! Report tests: the SVG is well-formed XML, has the series and marks, and maps values to
//! coordinates monotonically; the summary has the numbers.

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

fn ramp() -> Series {
    let samples = (1..=10)
        .map(|i| Sample { t: i as f64 * 0.1, dt: 0.1, bytes: i * 1_000_000, packets: i * 800 })
        .collect();
    Series { name: "gso <&> gro".into(), samples }
}

fn histogram() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for v in 1..=10_000u64 {
        h.record(v).unwrap();
    }
    h
}

#[test]
fn svg_is_well_formed_with_series_and_marks() {
    let h = histogram();
    let r = Report {
        title: "bench \"x\" <1>".into(),
        series: vec![ramp()],
        latency: Ok(&h),
        notes: vec!["sliced & measured".into()],
    };
    let doc = svg(&r);
    let tags = check_xml(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
    assert_eq!(tags[0].0, "svg");
    let line = tags.iter().find(|(_, a)| attr(a, "id") == Some("throughput-0")).unwrap();
    assert_eq!(attr(&line.1, "data-series"), Some("gso &lt;&amp;&gt; gro"));
    // Throughput rises every interval, so x grows and y (pixels, downwards) falls.
    let pts = points(&line.1);
    assert_eq!(pts.len(), 10);
    for w in pts.windows(2) {
        assert!(w[1].0 > w[0].0 && w[1].1 < w[0].1, "{w:?}");
    }
    let lat = tags.iter().find(|(_, a)| attr(a, "id") == Some("latency")).unwrap();
    let lp = points(&lat.1);
    for w in lp.windows(2) {
        assert!(w[1].0 > w[0].0 && w[1].1 <= w[0].1, "percentile curve: {w:?}");
    }
    let marks: Vec<&str> = tags
        .iter()
        .filter(|(n, a)| n == "circle" && attr(a, "class") == Some("mark"))
        .map(|(_, a)| attr(a, "data-label").unwrap())
        .collect();
    assert_eq!(marks, ["p50", "p90", "p99", "p99.9", "max"]);
    let mark_y: Vec<f64> = tags
        .iter()
        .filter(|(n, _)| n == "circle")
        .map(|(_, a)| attr(a, "cy").unwrap().parse().unwrap())
        .collect();
    for w in mark_y.windows(2) {
        assert!(w[1] <= w[0], "higher percentiles sit higher: {mark_y:?}");
    }
    assert!(doc.contains("p99 9900 us") || doc.contains("p99 99"), "{doc}");
    assert!(!doc.contains("<script"));
}

#[test]
fn missing_latency_is_said_and_html_wraps() {
    let r = Report {
        title: "t".into(),
        series: vec![ramp(), Series { name: "empty".into(), samples: vec![] }],
        latency: Err("datapath-bench measures throughput only".into()),
        notes: vec![],
    };
    let doc = svg(&r);
    check_xml(&doc).unwrap();
    assert!(doc.contains("not recorded: datapath-bench measures throughput only"));
    assert!(doc.contains("id=\"throughput-1\""));
    let page = html(&r);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg") && page.contains("</svg>") && page.contains("<pre>"));
}

#[test]
fn summary_numbers() {
    let h = histogram();
    let r = Report { title: "s".into(), series: vec![ramp()], latency: Ok(&h), notes: vec![] };
    let s = summary(&r);
    // 55 MB in 1 s = 0.44 Gbit/s; 44000 packets/s.
    assert!(s.contains("goodput 0.44 Gbit/s"), "{s}");
    assert!(s.contains("44000 packets/s"), "{s}");
    assert!(
        s.contains("p50 5000 us") || s.contains("p50 4999 us") || s.contains("p50 5003 us"),
        "{s}"
    );
    assert!(s.contains("max 10007 us") || s.contains("max 10000 us"), "{s}");
}

#[test]
fn scale_is_monotonic() {
    let s = svg::Scale::new(0.0, 10.0, 100.0, 0.0);
    assert_eq!(s.at(0.0), 100.0);
    assert_eq!(s.at(10.0), 0.0);
    assert!(s.at(3.0) > s.at(4.0));
    assert_eq!(svg::Scale::new(1.0, 1.0, 5.0, 9.0).at(7.0), 5.0);
}
