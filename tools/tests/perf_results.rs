//! `peregrine perf` results that users can rely on: the iperf3-like JSON (schema, interval
//! sums equal to the totals, `{"error": ...}` on failure), uploads that show up in the
//! progress line and the plots, results kept on Ctrl-C, report paths checked before the run,
//! `-i/--interval` lines, `--rate`, and the iperf3 aliases.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::{one_error_line, run_bounded, temp_dir, BIN};

const LIMIT: Duration = Duration::from_secs(60);

fn perf(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("perf").args(args);
    run_bounded(cmd, LIMIT)
}

fn perf_json(args: &[&str]) -> Value {
    let out = perf(&[&["--json"], args].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?}: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// No object key anywhere contains a dot (`latency_p99.9_us` broke jq and pandas users).
fn assert_no_dotted_keys(v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                assert!(!k.contains('.'), "key {path}.{k}");
                assert_no_dotted_keys(x, &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| assert_no_dotted_keys(x, path)),
        _ => {}
    }
}

/// The schema, and every count of the intervals adding up to the totals, per stream, per
/// connection and in the sum.
fn assert_schema_and_sums(v: &Value, counted: &[&str]) {
    let start = &v["start"];
    assert!(start["version"].as_str().unwrap().starts_with("peregrine "), "{start}");
    let time = start["timestamp"]["time"].as_str().unwrap();
    assert!(time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    assert!(u(&start["timestamp"]["timesecs"]) > 1_600_000_000);
    assert_eq!(start["test_start"]["protocol"], "QUIC");
    assert!(start["settings"]["congestion"].is_string(), "the effective settings: {start}");
    let intervals = v["intervals"].as_array().unwrap();
    assert!(!intervals.is_empty());
    let end = &v["end"];
    let mut prev_end = 0.0;
    for iv in intervals {
        let s = &iv["sum"];
        assert!((s["start"].as_f64().unwrap() - prev_end).abs() < 1e-9, "contiguous: {s}");
        prev_end = s["end"].as_f64().unwrap();
        assert!(s["seconds"].as_f64().unwrap() > 0.0 && s["bits_per_second"].is_number());
        for k in counted {
            let streams: u64 = iv["streams"].as_array().unwrap().iter().map(|x| u(&x[k])).sum();
            assert_eq!(streams, u(&s[k]), "{k}: the streams add up to the interval's sum");
        }
    }
    assert!((end["sum"]["end"].as_f64().unwrap() - prev_end).abs() < 1e-9);
    for k in counted {
        let total: u64 = intervals.iter().map(|iv| u(&iv["sum"][k])).sum();
        assert_eq!(total, u(&end["sum"][k]), "{k}: the intervals add up to the total");
        for (i, st) in end["streams"].as_array().unwrap().iter().enumerate() {
            let per: u64 = intervals.iter().map(|iv| u(&iv["streams"][i][k])).sum();
            assert_eq!(per, u(&st[k]), "{k}: stream {i}'s intervals add up to its total");
        }
    }
    let cpu = &end["cpu_utilization_percent"];
    assert!(cpu["host_total"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(end["cpu"]["client"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(end["client"]["pto_count"].is_u64() || end["client"].is_null());
    assert_eq!(end["interrupted"], false);
    assert_no_dotted_keys(v, "");
}

#[test]
fn json_is_iperf3_like_and_intervals_add_up_to_the_totals() {
    let v = perf_json(&["--duration", "2s", "--connections", "2", "--streams", "2", "-i", "500ms"]);
    assert_schema_and_sums(&v, &["bytes_sent", "bytes_received", "bytes"]);
    assert_eq!(v["start"]["test_start"]["mode"], "duration");
    assert_eq!(v["start"]["test_start"]["direction"], "down");
    let n = v["intervals"].as_array().unwrap().len();
    assert!((4..=5).contains(&n), "2 s in 500 ms intervals: {n}");
    for iv in v["intervals"].as_array().unwrap() {
        assert_eq!(iv["streams"].as_array().unwrap().len(), 4);
        let conns = iv["connections"].as_array().unwrap();
        assert_eq!(conns.len(), 2);
        assert!(conns.iter().all(|c| c["packets_lost"].is_u64() && c["rtt_ms"].is_number()));
    }
    // The in-process server is ours: its counters and CPU use are reported.
    let end = &v["end"];
    assert!(u(&end["server"]["packets_sent"]) > 0 && end["server"]["pto_count"].is_u64());
    assert!(end["cpu"]["server"]["seconds"].as_f64().unwrap() > 0.0, "{}", end["cpu"]);
    assert!(end["cpu_utilization_percent"]["remote_total"].as_f64().unwrap() > 0.0);
    assert!(u(&end["sum"]["bytes_received"]) > 0);
}

#[test]
fn rps_and_handshake_json_count_per_interval() {
    let v = perf_json(&["--rps", "--duration", "1s", "--streams", "2"]);
    assert_schema_and_sums(&v, &["bytes_sent", "bytes_received", "requests"]);
    let lat = &v["end"]["latency"];
    assert_eq!(u(&lat["samples"]), u(&v["end"]["sum"]["requests"]));
    assert!(u(&lat["p99_9"]) >= u(&lat["p99"]) && u(&lat["max"]) >= u(&lat["p99_9"]));
    let h = perf_json(&["--handshakes", "--duration", "1s", "--connections", "2"]);
    assert_schema_and_sums(&h, &["handshakes"]);
    assert_eq!(u(&h["end"]["latency"]["samples"]), u(&h["end"]["sum"]["handshakes"]));
    assert!(h["end"]["sum"]["handshakes_per_second"].as_f64().unwrap() > 0.0);
    assert!(h["end"]["server"]["packets_received"].is_u64(), "server counters: {}", h["end"]);
}

#[test]
fn failures_print_an_error_object_with_json() {
    for args in [
        &["perf", "--json", "--mtu", "1"][..],
        &["perf", "-J", "--bogus-flag"],
        &["perf", "--json", "--server", "nonsense"],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        let out = run_bounded(cmd, LIMIT);
        one_error_line(&out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: {e}: {:?}", String::from_utf8_lossy(&out.stdout))
        });
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{args:?}: {v}");
    }
}

#[test]
fn uploads_count_what_was_sent() {
    // iperf3-style flags: -t, -i, -J; the upload capped so that it lasts a few intervals.
    let v = perf_json(&["--upload", "8M", "--rate", "40M", "-i", "500ms"]);
    assert_schema_and_sums(&v, &["bytes_sent", "bytes_received"]);
    let ivs = v["intervals"].as_array().unwrap();
    assert!(ivs.len() >= 3, "8 MiB at 40 Mbit/s takes about 1.7 s: {}", ivs.len());
    for iv in &ivs[..ivs.len() - 1] {
        assert!(u(&iv["sum"]["bytes_sent"]) > 0, "every full interval sent something: {iv}");
        assert!(iv["sum"]["bits_per_second"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(u(&v["end"]["sum"]["bytes_sent"]), 8 << 20);
    let d = perf_json(&["--direction", "up", "--duration", "1s"]);
    assert!(u(&d["end"]["sum"]["bytes_sent"]) > 0 && u(&d["end"]["sum"]["bytes_received"]) == 0);
}

#[test]
fn rate_caps_what_the_client_sends() {
    let v = perf_json(&["-t", "2s", "--direction", "up", "-b", "20M"]);
    let s = &v["end"]["sum"];
    let secs = s["seconds"].as_f64().unwrap();
    // The pacer lets the n-th byte leave no earlier than n / rate: at most one 25 KB write
    // ahead of the cap (acknowledged bytes lag behind it, never ahead).
    let cap = 20e6 / 8.0 * secs + 25_000.0;
    assert!((u(&s["bytes_sent"]) as f64) <= cap, "{} > {cap}", s["bytes_sent"]);
    assert!(u(&s["bytes_sent"]) > 0);
    assert_eq!(v["start"]["test_start"]["rate_bits_per_second"], 20_000_000);
    for bad in [&["--rate", "fast"][..], &["--rate", "10"], &["-b", "1T"]] {
        one_error_line(&perf(bad));
    }
}

#[test]
fn reverse_and_bidir_aliases() {
    let r = perf_json(&["-R", "--duration", "500ms"]);
    assert_eq!(r["start"]["test_start"]["direction"], "down");
    assert!(u(&r["end"]["sum"]["bytes_received"]) > 0);
    let b = perf_json(&["--bidir", "--duration", "1s", "-P", "2"]);
    assert_eq!(b["start"]["test_start"]["direction"], "both");
    assert_eq!(b["start"]["test_start"]["streams_per_connection"], 2);
    let s = &b["end"]["sum"];
    assert!(u(&s["bytes_sent"]) > 0 && u(&s["bytes_received"]) > 0, "{s}");
    one_error_line(&perf(&["-R", "--bidir"]));
}

#[test]
fn interval_lines_in_text_output() {
    let out = perf(&["--duration", "2s", "-i", "500ms", "--connections", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let sums: Vec<&str> = text.lines().filter(|l| l.starts_with("[SUM]")).collect();
    assert!((4..=5).contains(&sums.len()), "{text}");
    // "[SUM]   0.00-0.50 ...": the first interval ends at the first sample at or after 0.5 s
    // (later only when the machine is too busy to sample on time).
    let span = sums[0].split_whitespace().nth(1).unwrap();
    let end: f64 = span.split('-').nth(1).unwrap().parse().unwrap();
    assert!(span.starts_with("0.00-") && (0.5..0.75).contains(&end), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("[  1]")).count(), sums.len(), "{text}");
    assert!(text.contains("rate (both directions)"), "{text}");
}

#[test]
fn a_bad_report_path_fails_before_the_run() {
    let t0 = Instant::now();
    let out = perf(&["--duration", "10s", "--report", "/nonexistent-peregrine-dir/r.html"]);
    let err = one_error_line(&out);
    assert!(err.contains("--report") && err.contains("/nonexistent-peregrine-dir"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(8), "refused before the 10 s run");
    assert!(out.stdout.is_empty(), "nothing ran: {}", String::from_utf8_lossy(&out.stdout));
}

/// Starts `perf ARGS`, sends SIGINT after `after`, and returns its output.
fn interrupted(args: &[&str], after: Duration) -> std::process::Output {
    let child = Command::new(BIN)
        .arg("perf")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let t0 = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20), "perf ended soon after Ctrl-C");
    out
}

#[test]
fn ctrl_c_keeps_the_summary_the_json_and_the_report() {
    let dir = temp_dir("ctrlc");
    let report = dir.join("r.html");
    let out = interrupted(
        &["--duration", "60s", "--json", "--report", report.to_str().unwrap()],
        Duration::from_millis(2500),
    );
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("the JSON results");
    assert_eq!(v["end"]["interrupted"], true);
    assert!(u(&v["end"]["sum"]["bytes_received"]) > 0);
    let secs = v["end"]["sum"]["seconds"].as_f64().unwrap();
    assert!(secs > 0.5 && secs < 30.0, "the run until Ctrl-C: {secs}");
    assert_schema_interrupted(&v);
    let page = std::fs::read_to_string(&report).expect("the report was written");
    assert!(page.contains("<svg") && page.contains("interrupted"), "{page}");
    let out = interrupted(&["--duration", "60s"], Duration::from_millis(2500));
    assert_eq!(out.status.code(), Some(130));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interrupted") && text.contains("received"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted") && !err.contains("panicked"), "{err}");
}

fn assert_schema_interrupted(v: &Value) {
    let total: u64 =
        v["intervals"].as_array().unwrap().iter().map(|i| u(&i["sum"]["bytes_received"])).sum();
    assert_eq!(total, u(&v["end"]["sum"]["bytes_received"]));
}

/// On a terminal (a pseudo-terminal from util-linux `script`), the progress line of an upload
/// shows the bytes sent and their rate, not `0 received`.
#[test]
fn upload_progress_on_a_terminal_shows_what_was_sent() {
    peregrine_datapath::require!(
        peregrine_datapath::require::have("script"),
        "util-linux `script` is not installed (needed for a pseudo-terminal)"
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("'{BIN}' perf --upload 12M --rate 40M"), "/dev/null"]);
    let out = run_bounded(cmd, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let tty = String::from_utf8_lossy(&out.stdout);
    // Progress lines: "\r\x1b[K  <t> s  sent <bytes> (<rate>)  received ...".
    let progress: Vec<&str> = tty.split('\r').filter(|l| l.contains(" s  sent ")).collect();
    assert!(!progress.is_empty(), "a progress line: {tty:?}");
    for l in &progress {
        let sent = l.split(" sent ").nth(1).unwrap().split("received").next().unwrap().trim();
        assert!(!sent.starts_with("0 B") && !sent.contains("(0 bit/s)"), "{l:?}");
        assert!(sent.contains("Mbit/s"), "{l:?}");
    }
}

/// How far connection 0's line in the first chart of `doc` runs above that chart's zero
/// line, in pixels (its mean y against the y of the axis' `0` label).
fn first_line_above_zero(doc: &str) -> f64 {
    let line = doc
        .split("<polyline")
        .filter(|p| p.contains("stroke=\"#0072B2\""))
        .map(|p| p.split("points=\"").nth(1).unwrap().split('"').next().unwrap().to_owned())
        .next()
        .expect("connection 0's line");
    let ys: Vec<f64> =
        line.split_whitespace().map(|p| p.split_once(',').unwrap().1.parse().unwrap()).collect();
    // The y axis' "0" label (right-anchored) sits at the zero line of the first chart.
    let flat = doc.replace('\n', " ");
    let zero_y: f64 = flat
        .split("<text ")
        .find(|t| {
            t.contains("text-anchor=\"end\"")
                && t.split('>')
                    .nth(1)
                    .is_some_and(|b| b.trim().starts_with("0 <") || b.trim() == "0")
        })
        .and_then(|t| t.split("y=\"").nth(1)?.split('"').next()?.parse().ok())
        .expect("the zero label of the y axis");
    zero_y - ys.iter().sum::<f64>() / ys.len() as f64
}

/// The texts of the SVG's `<text>` elements.
fn svg_texts(doc: &str) -> Vec<String> {
    doc.split("<text")
        .skip(1)
        .filter_map(|t| Some(t.split_once('>')?.1.split("</text>").next()?.trim().to_owned()))
        .collect()
}

/// The plot of an upload draws the upload: the line is not flat at zero.
#[test]
fn upload_report_plots_the_upload() {
    let dir = temp_dir("upplot");
    let svg = dir.join("up.svg");
    perf_json(&["--upload", "6M", "--rate", "40M", "--report", svg.to_str().unwrap()]);
    let doc = std::fs::read_to_string(&svg).unwrap();
    let above = first_line_above_zero(&doc);
    assert!(above > 50.0, "the line runs well above the axis: {above} px");
    assert!(doc.contains("(Mbit/s)"), "a 40 Mbit/s upload is plotted in Mbit/s");
}

/// `--rps` plots requests/s (not only Gbit/s) and `--handshakes` handshakes/s, each as the
/// first chart with its axis label and a line above zero, next to the latency distribution.
#[test]
fn rps_and_handshake_reports_plot_their_rates() {
    let dir = temp_dir("rateplots");
    for (mode, axis, title, legend, latency) in [
        ("--rps", "requests/s", "completed requests per second", "connection 0", "request latency"),
        (
            "--handshakes",
            "handshakes/s",
            "completed handshakes per second",
            "slot 0",
            "handshake latency",
        ),
    ] {
        let svg = dir.join(format!("{}.svg", &mode[2..]));
        perf_json(&[mode, "--duration", "1s", "--report", svg.to_str().unwrap()]);
        let doc = std::fs::read_to_string(&svg).unwrap();
        let texts = svg_texts(&doc);
        for needed in [axis, title, legend, "time (s)", "percentile"] {
            assert!(texts.iter().any(|t| t == needed), "{mode}: no {needed:?} in {texts:?}");
        }
        assert!(texts.iter().any(|t| t.starts_with(latency)), "{mode}: {texts:?}");
        let first_axis = texts.iter().position(|t| t == axis).unwrap();
        let throughput = texts.iter().position(|t| t.starts_with("throughput ("));
        assert!(throughput.is_none_or(|p| p > first_axis), "{mode}: {axis} is the first chart");
        let above = first_line_above_zero(&doc);
        assert!(above > 20.0, "{mode}: the {axis} line runs above zero: {above} px");
    }
}

/// Ctrl-C while the handshake is still pending (a server that never answers) ends perf at
/// once with exit 130 and says so, instead of being ignored until the connect timeout and
/// then reported as a handshake failure.
#[test]
fn ctrl_c_while_connecting_ends_the_run() {
    // A UDP socket that reads nothing and answers nothing (no ICMP either).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let out = interrupted(
        &["--server", &server, "--insecure", "--json", "--duration", "2s"],
        Duration::from_millis(1000),
    );
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let err = one_line_of(&out.stderr);
    assert!(err.contains("interrupted while connecting") && err.contains(&server), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("the JSON error object");
    assert!(v["error"].as_str().unwrap().contains("interrupted"), "{v}");
    drop(silent);
}

/// The single line of `stderr`.
fn one_line_of(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}
