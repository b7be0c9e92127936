//! The QUIC commands end to end over loopback: `peregrine perf --json`, `peregrine server` +
//! `peregrine client` byte-exact, a missing file, bad flags, and SIGTERM shutdown.

// A command, not the sans-IO core: it reads the wall clock for deadlines and rates.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::{one_error_line, pattern, run_bounded, temp_dir, ServerProc, BIN};

fn start_server(tag: &str, files: &[(&str, Vec<u8>)]) -> ServerProc {
    support::start_server(tag, files, &[]).unwrap_or_else(|e| panic!("server refused: {e}"))
}

fn client(server: &ServerProc, paths: &[&str], out: &Path) -> std::process::Output {
    let port = server.port();
    let mut cmd = Command::new(BIN);
    cmd.arg("client");
    for p in paths {
        cmd.arg(format!("https://localhost:{port}/{p}"));
    }
    cmd.arg("--output").arg(out).arg("--ca").arg(server.dir.join("cert.pem"));
    run_bounded(cmd, Duration::from_secs(30))
}

#[test]
fn server_and_client_transfer_byte_exact() {
    let files = [
        ("small.bin", pattern(1000, 1)),
        ("medium.bin", pattern(1 << 20, 2)),
        ("large.bin", pattern(10 << 20, 3)),
    ];
    let server = start_server("xfer", &files);
    let out_dir = server.dir.join("out");
    let out = client(&server, &["small.bin", "medium.bin", "large.bin"], &out_dir);
    assert!(out.status.success(), "client failed: {}", String::from_utf8_lossy(&out.stderr));
    for (name, data) in &files {
        let got = std::fs::read(out_dir.join(name)).unwrap();
        assert!(got == *data, "{name}: {} bytes, differs", got.len());
    }
}

/// `--quic-version v2`, `--offer-version 0x1a2a3a4a` (the server answers with Version
/// Negotiation, the client starts again) and a server with `--prefer-version v2` (a v1 client
/// moved to v2): each fetch is byte-exact. Which version each ends in is proven by the engine's
/// tests (`engine/tests/versions.rs`); this proves the flags reach the connections and work.
#[test]
fn quic_version_flags_transfer_byte_exact() {
    let files = [("v.bin", pattern(200_000, 9))];
    for (server_extra, client_extra) in [
        (&[][..], &["--quic-version", "v2"][..]),
        (&[][..], &["--offer-version", "0x1a2a3a4a"][..]),
        (&["--prefer-version", "v2"][..], &[][..]),
        (&["--prefer-version", "v1"][..], &["--quic-version", "v2"][..]),
    ] {
        let server = support::start_server("versions", &files, server_extra)
            .unwrap_or_else(|e| panic!("server refused: {e}"));
        let out_dir = server.dir.join("out");
        let port = server.port();
        let mut cmd = Command::new(BIN);
        cmd.arg("client").arg(format!("https://localhost:{port}/v.bin")).args(client_extra);
        cmd.arg("--output").arg(&out_dir).arg("--ca").arg(server.dir.join("cert.pem"));
        let out = run_bounded(cmd, Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{server_extra:?} {client_extra:?}: {err}");
        assert!(std::fs::read(out_dir.join("v.bin")).unwrap() == files[0].1);
    }
    let v = perf_json(&["--download", "1M", "--quic-version", "v2"]);
    assert!(v.get("error").is_none(), "{v}");
}

#[test]
fn missing_file_and_traversal_fail_with_one_line() {
    let server = start_server("missing", &[("here.txt", b"hello".to_vec())]);
    let out_dir = server.dir.join("out");
    let out = client(&server, &["here.txt", "not-here.txt"], &out_dir);
    let err = one_error_line(&out);
    assert!(err.contains("not-here.txt") && err.contains("reset"), "{err}");
    let out = client(&server, &["../cert.pem"], &out_dir);
    one_error_line(&out);
}

#[test]
fn server_stops_on_sigterm() {
    let mut server = start_server("sigterm", &[]);
    let pid = server.child.id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_flags_and_urls_fail_with_one_line() {
    for args in [
        vec!["server", "--listen", "nowhere"],
        vec!["client", "http://x/y", "--output", "/tmp", "--insecure"],
        vec!["client", "https://127.0.0.1:1/x", "--output", "/tmp"],
        vec!["perf", "--download", "lots"],
        vec!["perf", "--server", "127.0.0.1"],
        vec!["perf", "--connections", "10001"],
        vec!["perf", "--connections", "1000", "--streams", "100"],
        vec!["perf", "--quic-version", "v3"],
        vec!["perf", "--offer-version", "0x00000001"],
        vec![
            "client",
            "https://127.0.0.1:1/x",
            "--insecure",
            "--output",
            "/tmp",
            "--quic-version",
            "2x",
        ],
        vec![
            "client",
            "https://127.0.0.1:1/x",
            "--insecure",
            "--output",
            "/tmp",
            "--offer-version",
            "nope",
        ],
        vec!["server", "--listen", "127.0.0.1:0", "--self-signed", "--prefer-version", "v9"],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(&args);
        one_error_line(&run_bounded(cmd, Duration::from_secs(10)));
    }
}

#[test]
fn refused_connection_fails_with_one_line() {
    // Nothing listens on this port: the handshake times out.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    drop(sock);
    let dir = temp_dir("refused");
    let mut cmd = Command::new(BIN);
    cmd.args(["client", &format!("https://127.0.0.1:{port}/x"), "--insecure", "--timeout", "1s"])
        .arg("--output")
        .arg(&dir);
    one_error_line(&run_bounded(cmd, Duration::from_secs(10)));
}

fn perf_json(args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(BIN);
    cmd.arg("perf").arg("--json").args(args);
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "perf failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The perf client and the in-process server serve streams on their workers: 128 streams on
/// 8 connections (in both directions at once) run on a handful of threads, not one each.
#[test]
fn perf_streams_cost_no_thread() {
    let v = perf_json(&[
        "--duration",
        "1s",
        "--bidir",
        "--connections",
        "8",
        "--streams",
        "8",
        "--workers",
        "2",
    ]);
    let threads = v["end"]["cpu"]["threads"].as_array().unwrap();
    let names: Vec<&str> = threads.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(v["end"]["streams"].as_array().unwrap().len(), 128);
    assert!(v["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0, "downloads moved");
    assert!(v["end"]["sum_sent"]["bytes"].as_u64().unwrap() > 0, "uploads moved");
    // Main thread, 2 client and 2 server workers, and a few helpers of the runtime.
    assert!(threads.len() <= 16, "{} threads for 128 streams: {names:?}", threads.len());
}

#[test]
fn perf_sizes_mode_json_is_consistent() {
    let v = perf_json(&["--download", "8M", "--upload", "1M", "--streams", "2"]);
    let sum = &v["end"]["sum"];
    assert_eq!(sum["bytes_received"].as_u64(), Some(2 * (8 << 20)));
    assert_eq!(sum["bytes_sent"].as_u64(), Some(2 * (1 << 20)));
    assert_eq!(sum["bytes"].as_u64(), Some(2 * (9 << 20)));
    assert!(sum["bits_per_second"].as_f64().unwrap() > 0.0);
    // Loopback lets DPLPMTUD grow packets up to the largest UDP payload.
    assert!(v["end"]["client"]["packets_received"].as_u64().unwrap() > (16 << 20) / 65_527);
}

#[test]
fn perf_duration_mode_json() {
    let v = perf_json(&["--duration", "1s", "--connections", "2"]);
    let sum = &v["end"]["sum"];
    let down = sum["bytes_received"].as_u64().unwrap();
    assert!(down > 0);
    assert_eq!(sum["bytes"].as_u64(), Some(down));
    let secs = sum["seconds"].as_f64().unwrap();
    let bps = sum["bits_per_second"].as_f64().unwrap();
    assert!(bps > 0.0);
    assert!((bps - down as f64 * 8.0 / secs).abs() < 1e-3);
}

#[test]
fn perf_rps_mode_reports_latency() {
    let v = perf_json(&["--rps", "--duration", "1s", "--streams", "2", "--response-size", "2K"]);
    let sum = &v["end"]["sum"];
    let requests = sum["requests"].as_u64().unwrap();
    assert!(requests > 0);
    assert_eq!(sum["bytes_received"].as_u64(), Some(requests * 2048));
    assert_eq!(sum["bytes_sent"].as_u64(), Some(requests * 64));
    let lat = &v["end"]["latency"];
    let p50 = lat["p50"].as_u64().unwrap();
    let p99 = lat["p99"].as_u64().unwrap();
    let max = lat["max"].as_u64().unwrap();
    assert!(p50 > 0 && p50 <= p99 && p99 <= max, "{v}");
    assert_eq!(lat["samples"].as_u64(), Some(requests));
}

#[test]
fn perf_handshakes_mode_json() {
    let v = perf_json(&["--handshakes", "--duration", "500ms", "--connections", "2"]);
    let n = v["end"]["sum"]["handshakes"].as_u64().unwrap();
    assert!(n >= 2, "{v}");
    let lat = &v["end"]["latency"];
    let p50 = lat["p50"].as_u64().unwrap();
    assert!(p50 > 0 && p50 <= lat["max"].as_u64().unwrap(), "{v}");
    assert_eq!(lat["samples"].as_u64(), Some(n));
}

/// `peregrine perf | head -n 1`: the reader leaves after the first line; the later output
/// meets a closed pipe, and the command ends quietly with status 0 instead of panicking.
#[test]
fn closed_stdout_ends_quietly() {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &format!("set -o pipefail; '{BIN}' perf --duration 1s | head -n 1")]);
    let out = run_bounded(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "status {:?}, stderr: {stderr}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

/// `RUST_LOG` turns on structured logs on stderr (here the PMTU search's debug events, named
/// by thread); without it a successful run prints nothing on stderr.
#[test]
fn rust_log_enables_structured_logs() {
    let mut cmd = Command::new(BIN);
    cmd.args(["perf", "--duration", "1s"]).env("RUST_LOG", "peregrine_engine=debug");
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().any(|l| l.contains("DEBUG") && l.contains("peregrine-")), "{stderr}");
    let mut cmd = Command::new(BIN);
    cmd.args(["perf", "--duration", "1s"]).env_remove("RUST_LOG");
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// On a terminal perf shows a live progress line (carriage-return updated Gbit/s); piped, it
/// does not (`rust_log_enables_structured_logs` checks stderr stays empty then). The terminal is
/// a pseudo-terminal from util-linux `script`.
#[test]
fn perf_progress_line_only_on_a_terminal() {
    peregrine_datapath::require!(
        peregrine_datapath::require::have("script"),
        "util-linux `script` is not installed (needed for a pseudo-terminal)"
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("'{BIN}' perf --duration 3s"), "/dev/null"]);
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("\r") && tty.contains("bit/s") && tty.contains(" received "), "{tty}");
    let mut cmd = Command::new(BIN);
    cmd.args(["perf", "--duration", "1s"]);
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(" received "));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\r"));
}

/// `client --alpn perf` used to make a perf server stream gigabytes for a `GET` line: the
/// client now refuses it with the command to use instead.
#[test]
fn client_refuses_the_perf_alpn() {
    let mut cmd = Command::new(BIN);
    cmd.args(["client", "https://127.0.0.1:1/f1k", "--insecure", "--alpn", "perf", "--output"])
        .arg(temp_dir("alpnperf"));
    let err = one_error_line(&run_bounded(cmd, Duration::from_secs(10)));
    assert!(err.contains("--alpn perf") && err.contains("peregrine perf"), "{err}");
}
