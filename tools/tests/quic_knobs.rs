//! The settings knobs of `server`, `client` and `perf` end to end over loopback: refused where
//! they cannot apply, visibly in effect where they do, `--print-config`, the io_uring datapath,
//! `--keylog`, `--metrics` and `--report`.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

use support::{pattern, run_bounded, start_server, temp_dir, BIN};

fn peregrine(args: &[&str]) -> Output {
    support::peregrine(args, Duration::from_secs(30))
}

/// `peregrine ARGS` must fail with one line; that line.
fn one_error_line(args: &[&str]) -> String {
    support::one_error_line(&peregrine(args))
}

/// Runs `perf --json` with `args`; the JSON object and stderr.
fn perf_json(args: &[&str]) -> (serde_json::Value, String) {
    let mut full = vec!["perf", "--json"];
    full.extend_from_slice(args);
    let out = peregrine(&full);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{args:?}: {stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    (serde_json::from_str(&text).unwrap(), stderr)
}

#[test]
fn settings_that_cannot_apply_fail_with_one_line_naming_the_key() {
    let server = ["server", "--listen", "127.0.0.1:0", "--cert", "c", "--key", "k", "--root", "."];
    let client = ["client", "https://localhost:1/x", "--output", "/tmp", "--insecure"];
    let cases: &[(&[&str], &str)] = &[
        (&["--datapath", "xdp"], "--interface"),
        (&["--interface", "lo"], "--interface"),
        (&["--queues", "0"], "--queues"),
        (&["--xdp-mode", "generic"], "--xdp-mode"),
        (&["--ring-size", "256"], "--ring-size"),
        (&["--mtu", "1199"], "--mtu"),
        (&["--initial-window", "2500"], "--initial-window"),
        (&["--qlog-dir", "/dev/null/q"], "--qlog-dir"),
        (&["--datapath", "xdp", "--interface", "lo", "--queues", "0-1"], "--queues"),
        (&["--workers", "0"], "--workers"),
        (&["--congestion", "vegas"], "--congestion"),
        (&["--stream-window", "5G"], "--stream-window"),
        (&["--quic-lb-server-id", "zz"], "--quic-lb-server-id"),
        (&["--quic-lb-config-rotation", "1"], "--quic-lb-config-rotation"),
    ];
    for (extra, key) in cases {
        for base in [&server[..], &client[..], &["perf", "--duration", "1s"][..]] {
            let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
            let err = one_error_line(&args);
            assert!(err.contains(key), "{args:?}: {err}");
        }
    }
    // Pinning: more workers than cores, and a core this machine does not have.
    for base in [&server[..], &["perf", "--duration", "1s"][..]] {
        let mut args = base.to_vec();
        args.extend(["--workers", "2", "--cores", "0"]);
        assert!(one_error_line(&args).contains("--cores"));
        let mut args = base.to_vec();
        args.extend(["--cores", "4095"]);
        assert!(one_error_line(&args).contains("core 4095 does not exist"));
    }
    // A server ID leaves too little room in the length; a client issues no routable IDs.
    let err =
        one_error_line(&[&server[..], &["--quic-lb-server-id", "01", "--cid-len", "6"]].concat());
    assert!(err.contains("--cid-len") && err.contains("outside 7..=20"), "{err}");
    let err = one_error_line(&[&client[..], &["--cid-len", "10"]].concat());
    assert!(err.contains("--cid-len: applies to servers only"), "{err}");
    assert!(one_error_line(&[&client[..], &["--metrics-addr", "127.0.0.1:0"]].concat())
        .contains("--metrics-addr"));
    assert!(one_error_line(&["perf", "--report", "/tmp/x.png"]).contains("--report"));
    assert!(one_error_line(&["server", "--cert", "c"]).contains("--listen"));
    let bad = temp_dir("badcfg").join("bad.toml");
    std::fs::write(&bad, "workers = 2\nbogus = 1\n").unwrap();
    let err = one_error_line(&["perf", "--config", bad.to_str().unwrap()]);
    assert!(err.contains("unknown key 'bogus'"), "{err}");
}

#[test]
fn server_print_config_round_trips_through_config() {
    let flags =
        ["--workers", "2", "--congestion", "newreno", "--stream-window", "64K", "--pacing", "off"];
    let out = peregrine(&[&["server", "--print-config"][..], &flags].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let toml = String::from_utf8(out.stdout).unwrap();
    for line in
        ["workers = 2", "congestion = \"newreno\"", "stream-window = \"64K\"", "pacing = false"]
    {
        assert!(toml.lines().any(|l| l == line), "{line} in {toml}");
    }
    let path = temp_dir("printcfg").join("server.toml");
    std::fs::write(&path, &toml).unwrap();
    let p = path.to_str().unwrap();
    let again = peregrine(&["server", "--print-config", "--config", p]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).unwrap(), toml, "print -> load -> print");
    // A flag overrides the file.
    let over = peregrine(&["server", "--print-config", "--config", p, "--workers", "3"]);
    assert!(String::from_utf8(over.stdout).unwrap().lines().any(|l| l == "workers = 3"));
}

#[test]
fn perf_knobs_are_in_effect_and_bytes_move() {
    let (v, stderr) = perf_json(&[
        "--duration",
        "1s",
        "--congestion",
        "newreno",
        "--pacing",
        "off",
        "--workers",
        "2",
        "--stream-window",
        "64K",
        "--gso",
        "off",
        "--gro",
        "off",
        "--tx-batch",
        "16",
    ]);
    assert!(v["end"]["sum"]["bytes_received"].as_u64().unwrap() > 0, "{v}");
    // Reported by the connections' controllers and the endpoints, not echoed from the flags.
    assert_eq!(v["end"]["client"]["congestion"], "newreno", "{v}");
    assert_eq!(v["end"]["server"]["congestion"], "newreno", "{v}");
    assert_eq!(v["start"]["connected"][0]["congestion"], "newreno", "{v}");
    assert_eq!(v["start"]["datapath"]["server_workers"], 2, "{v}");
    assert_eq!(v["start"]["datapath"]["client_workers"], 1, "{v}");
    assert_eq!(v["start"]["settings"]["pacing"], false, "{v}");
    assert!(stderr.is_empty(), "{stderr}");
    let notes = v["start"]["datapath"]["notes"].as_array().unwrap();
    let server_note = notes.iter().filter_map(|n| n.as_str()).find(|n| n.starts_with("server: "));
    let note = server_note.unwrap_or_else(|| panic!("a server datapath note: {v}"));
    assert!(note.contains("datapath udp") && note.contains("2 queue(s)"), "{note}");
    assert!(note.contains("gso off") && note.contains("gro off"), "{note}");
    assert_eq!(v["start"]["datapath"]["workers_pinned"], 0, "no --cores, no pinning: {v}");
    let (d, _) = perf_json(&["--download", "2M", "--cores", "0", "--busy-poll-us", "200"]);
    assert_eq!(d["end"]["client"]["congestion"], "bbr", "the default controller: {d}");
    assert_eq!(d["start"]["datapath"]["workers_pinned"], 1, "the server's worker on core 0: {d}");
    assert_eq!(d["end"]["sum"]["bytes_received"].as_u64(), Some(2 << 20));
    // --mtu up to what its help says: path MTU discovery climbs to it over loopback (1472,
    // 8972, then the 9000 asked for); by default to the largest IPv4 UDP payload.
    let (j, _) = perf_json(&["--download", "32M", "--mtu", "9000"]);
    assert_eq!(j["end"]["server"]["pmtu"], 9000, "{j}");
    assert_eq!(j["end"]["client"]["pmtu"], 9000, "{j}");
    let (j, _) = perf_json(&["--download", "64M"]);
    assert_eq!(j["end"]["server"]["pmtu"], 65507, "{j}");
}

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// Sum of the samples of `family` whose labels contain `label`.
fn metric_sum(text: &str, family: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn server_and_client_over_uring_byte_exact() {
    let files = [("a.bin", pattern(3 << 20, 7)), ("b.bin", pattern(1000, 9))];
    let server_keys =
        std::env::temp_dir().join(format!("peregrine-knobs-server-{}.keys", std::process::id()));
    let _ = std::fs::remove_file(&server_keys);
    let extra = [
        "--datapath",
        "uring",
        "--workers",
        "2",
        "--ring-size",
        "256",
        "--metrics",
        "127.0.0.1:0",
        "--keylog",
        server_keys.to_str().unwrap(),
    ];
    let server = match start_server("uring", &files, &extra) {
        Ok(s) => s,
        Err(e) if e.contains("io_uring unavailable") => {
            return peregrine_datapath::require::unavailable(e);
        }
        Err(e) => panic!("server failed: {e}"),
    };
    let out_dir = server.dir.join("out");
    let port = server.port();
    let keys = server.dir.join("client-keys.log");
    let mut cmd = Command::new(BIN);
    cmd.args(["client", "--datapath", "uring", "--keylog"])
        .arg(&keys)
        .arg("--ca")
        .arg(server.dir.join("cert.pem"))
        .arg("--output")
        .arg(&out_dir)
        .arg(format!("https://localhost:{port}/a.bin"))
        .arg(format!("https://localhost:{port}/b.bin"));
    let out = run_bounded(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("client: datapath uring"), "{stdout}");
    for (name, data) in &files {
        assert!(std::fs::read(out_dir.join(name)).unwrap() == *data, "{name} differs");
    }
    // One connection: the client logged its four traffic secrets under one client random.
    let text = std::fs::read_to_string(&keys).unwrap();
    let randoms: std::collections::BTreeSet<&str> =
        text.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(randoms.len(), 1, "{text}");
    assert!(text.lines().any(|l| l.starts_with("SERVER_TRAFFIC_SECRET_0 ")), "{text}");
    // The server logged the same connection's secrets.
    let server_text = std::fs::read_to_string(&server_keys).unwrap();
    let random = randoms.iter().next().unwrap();
    assert!(
        server_text
            .lines()
            .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ") && l.contains(random)),
        "{server_text}"
    );
    let text = scrape(server.metrics.as_deref().unwrap());
    assert!(metric_sum(&text, "peregrine_datapath_rx_datagrams_total", "server") > 0.0, "{text}");
    assert!(text.contains("worker=\"1\""), "two workers: {text}");
    // The file requests were answered by the handlers on the workers, and counted.
    let requests = text
        .lines()
        .find_map(|l| l.strip_prefix("peregrine_server_requests_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(requests.is_some_and(|n| n > 0.0), "{text}");
}

#[test]
fn keylog_file_and_env_have_secrets_for_each_connection() {
    let dir = temp_dir("keylog");
    let path = dir.join("keys.log");
    let p = path.to_str().unwrap();
    perf_json(&["--download", "256K", "--connections", "3", "--keylog", p]);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut randoms = std::collections::BTreeMap::<&str, Vec<&str>>::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 3, "{line}");
        assert_eq!(f[1].len(), 64, "32-byte client random: {line}");
        assert!(f[2].len() >= 64 && f[2].bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        randoms.entry(f[1]).or_default().push(f[0]);
    }
    assert_eq!(randoms.len(), 3, "one client random per connection: {text}");
    for labels in randoms.values() {
        for want in [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
        ] {
            // Both the client and the in-process server log each secret.
            assert_eq!(labels.iter().filter(|l| **l == want).count(), 2, "{want}: {labels:?}");
        }
    }
    // SSLKEYLOGFILE when no flag is given.
    let env_path = dir.join("env.log");
    let mut cmd = Command::new(BIN);
    cmd.args(["perf", "--json", "--download", "64K"]).env("SSLKEYLOGFILE", &env_path);
    assert!(run_bounded(cmd, Duration::from_secs(30)).status.success());
    let text = std::fs::read_to_string(&env_path).unwrap();
    assert!(text.lines().any(|l| l.starts_with("CLIENT_HANDSHAKE_TRAFFIC_SECRET ")), "{text}");
}

#[test]
fn metrics_scraped_during_perf_show_datagrams() {
    let mut child = Command::new(BIN)
        .args(["perf", "--json", "--duration", "3s", "--metrics", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("metrics on http://").nth(1) {
                let _ = tx.send(rest.trim_end_matches("/metrics").to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).expect("perf printed its metrics address");
    let deadline = Instant::now() + Duration::from_millis(2500);
    let (mut client_rx, mut server_tx) = (0.0, 0.0);
    while Instant::now() < deadline && (client_rx == 0.0 || server_tx == 0.0) {
        std::thread::sleep(Duration::from_millis(300));
        let text = scrape(&addr);
        client_rx = metric_sum(&text, "peregrine_datapath_rx_datagrams_total", "\"client\"");
        server_tx = metric_sum(&text, "peregrine_datapath_tx_datagrams_total", "\"server\"");
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(client_rx > 0.0 && server_tx > 0.0, "client rx {client_rx}, server tx {server_tx}");
}

fn points(svg: &str) -> usize {
    svg.split("<polyline")
        .skip(1)
        .map(|p| {
            let pts = p.split("points=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
            pts.split_whitespace().count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn perf_report_writes_svg_and_html_with_the_series() {
    let dir = temp_dir("report");
    let svg = dir.join("run.svg");
    perf_json(&["--duration", "1s", "--report", svg.to_str().unwrap()]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{text}");
    assert!(text.contains("connection 0"), "legend");
    assert!(text.contains("time (s)") && text.contains("throughput ("), "axes with units");
    // 100 ms ticks over one second, two points per step.
    assert!(points(&text) >= 16, "a step per tick: {text}");
    let html = dir.join("run.html");
    perf_json(&["--rps", "--duration", "1s", "--report", html.to_str().unwrap()]);
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>") && text.contains("<svg"), "{text}");
    assert!(text.contains("requests/s") && text.contains("request latency"), "{text}");
    assert!(text.contains("latency (") && text.contains("p99"), "latency summary: {text}");
    check_well_formed(&std::fs::read_to_string(&svg).unwrap());
}

/// Every tag opened is closed, in order (the SVG has no comments, CDATA or scripts).
fn check_well_formed(xml: &str) {
    let mut stack: Vec<String> = Vec::new();
    let body = xml.split_once("?>").map_or(xml, |(_, b)| b);
    for tag in body.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap();
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "closing {name}");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_owned());
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}
