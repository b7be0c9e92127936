//! Interop of the perf protocol (draft-banks-quic-performance, ALPN `perf`) with quinn, both
//! roles, over loopback: the real `peregrine perf` binary against the quinn perf server of
//! `peregrine_benches::quinn_perf` (sizes, duration, --rps, --handshakes; `--ca` and
//! `--insecure`), every byte count checked on the quinn side; and the quinn perf client
//! against the real `peregrine server` (download, upload, many streams, requests/s,
//! handshakes), every stream's byte count checked by the client.
//!
//! Every process and every client run is bounded in time; runs last at most a second of load.
//!
//! It lives in the benches crate so that the `peregrine` crate has no quinn or tokio among its
//! dependencies, dev-dependencies included; it runs the `peregrine` binary of the same target
//! directory and profile (`cargo test --workspace` builds it; alone, build it first:
//! `cargo build --release -p peregrine`).

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peregrine_benches::quinn_perf::client::{self, ClientConfig, Mode, RawAnswer, Summary};
use peregrine_benches::quinn_perf::server::{Outcome, PerfServer, ServerStats};
use peregrine_benches::quinn_perf::tls::{ClientTrust, ServerCert};

#[path = "../../tools/tests/support/mod.rs"]
mod support;

use support::{temp_dir, ServerProc, BIN};

/// Bound on any one process or client run.
const LIMIT: Duration = Duration::from_secs(60);

fn run_bounded(cmd: Command) -> std::process::Output {
    assert_binary_built();
    support::run_bounded(cmd, LIMIT)
}

/// Fails with what to do when the `peregrine` binary is not built.
fn assert_binary_built() {
    assert!(
        std::path::Path::new(BIN).is_file(),
        "{BIN} is not built: run `cargo build -p peregrine` with this test's profile first"
    );
}

// ---------------------------------------------------------------------------------------
// `peregrine perf` → quinn perf server

/// A quinn perf server on 127.0.0.1 and the PEM file of its self-signed certificate.
fn quinn_server(tag: &str) -> (PerfServer, PathBuf) {
    let dir = temp_dir(tag);
    let cert = ServerCert::generate().unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &cert.chain_pem).unwrap();
    let server = PerfServer::start("127.0.0.1:0".parse().unwrap(), cert, 2).unwrap();
    (server, ca)
}

/// Runs `peregrine perf --server localhost:PORT --json ARGS`; the JSON object it printed.
fn peregrine_perf(server: &PerfServer, trust: &[&str], args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(BIN);
    cmd.args(["perf", "--json", "--server"])
        .arg(format!("localhost:{}", server.local_addr().port()))
        .args(trust)
        .args(args);
    let out = run_bounded(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "peregrine perf {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `end.sum.K` of `peregrine perf --json`.
fn u(v: &serde_json::Value, k: &str) -> u64 {
    v["end"]["sum"][k].as_u64().unwrap_or_else(|| panic!("no end.sum.{k} in {v}"))
}

/// `start.test_start.mode` of `peregrine perf --json`.
fn mode(v: &serde_json::Value) -> &str {
    v["start"]["test_start"]["mode"].as_str().unwrap_or_default()
}

/// Checks that the quinn server answered `n` streams in full, each asked for `down` bytes
/// after uploading `up` bytes.
fn assert_all_completed(s: &ServerStats, n: u64, up: u64, down: u64) {
    assert_eq!(s.streams_failed, 0, "first error: {:?}", s.first_error);
    assert_eq!((s.streams, s.streams_completed, s.streams_stopped), (n, n, 0), "{s:?}");
    assert_eq!(s.bytes_requested, n * down);
    assert_eq!(s.bytes_received, n * up);
    assert_eq!(s.bytes_sent, n * down);
    for r in &s.log {
        assert_eq!((r.requested, r.received, r.sent), (down, up, down), "{r:?}");
        assert_eq!(r.outcome, Outcome::Completed);
    }
}

#[test]
fn peregrine_perf_sizes_against_quinn_server() {
    // (upload, download, streams, connections)
    let cases: [(u64, u64, u64, u64); 4] = [
        (0, 16 << 20, 1, 1),
        (16 << 20, 0, 1, 1),
        (1 << 20, 4 << 20, 4, 2),
        (1000, 256 << 10, 32, 1),
    ];
    for (up, down, streams, conns) in cases {
        let (server, ca) = quinn_server("sizes");
        let ca = ca.to_str().unwrap();
        let v = peregrine_perf(
            &server,
            &["--ca", ca],
            &[
                "--upload",
                &up.to_string(),
                "--download",
                &down.to_string(),
                "--streams",
                &streams.to_string(),
                "--connections",
                &conns.to_string(),
            ],
        );
        let n = streams * conns;
        assert_eq!(mode(&v), "size");
        assert_eq!(u(&v, "bytes_sent"), n * up, "{v}");
        assert_eq!(u(&v, "bytes_received"), n * down, "{v}");
        let s = server.stop(Duration::from_secs(5));
        assert_eq!(s.handshakes, conns);
        assert_all_completed(&s, n, up, down);
    }
}

#[test]
fn peregrine_perf_duration_insecure_against_quinn_server() {
    let (server, _) = quinn_server("duration");
    let v = peregrine_perf(&server, &["--insecure"], &["--duration", "1s", "--streams", "2"]);
    assert_eq!(mode(&v), "duration");
    let got = u(&v, "bytes_received");
    assert!(got > 0, "{v}");
    let s = server.stop(Duration::from_secs(5));
    assert_eq!(s.streams_failed, 0, "first error: {:?}", s.first_error);
    // Each stream asks for far more than it reads, then stops the stream at the deadline.
    assert_eq!((s.handshakes, s.streams, s.streams_stopped), (1, 2, 2), "{s:?}");
    assert_eq!(s.bytes_requested, 2 << 50);
    assert!(s.bytes_sent >= got, "server wrote {} < client read {got}", s.bytes_sent);
}

#[test]
fn peregrine_perf_rps_against_quinn_server() {
    let (server, ca) = quinn_server("rps");
    let v = peregrine_perf(
        &server,
        &["--ca", ca.to_str().unwrap()],
        &[
            "--rps",
            "--duration",
            "1s",
            "--streams",
            "4",
            "--request-size",
            "100",
            "--response-size",
            "2K",
        ],
    );
    assert_eq!(mode(&v), "rps");
    let requests = u(&v, "requests");
    assert!(requests > 0, "{v}");
    assert_eq!(u(&v, "bytes_sent"), requests * 100);
    assert_eq!(u(&v, "bytes_received"), requests * 2048);
    let s = server.stop(Duration::from_secs(5));
    assert_eq!(s.handshakes, 1);
    assert_all_completed(&s, requests, 100, 2048);
}

#[test]
fn peregrine_perf_handshakes_against_quinn_server() {
    let (server, ca) = quinn_server("handshakes");
    let v = peregrine_perf(
        &server,
        &["--ca", ca.to_str().unwrap()],
        &["--handshakes", "--duration", "1s", "--connections", "2"],
    );
    assert_eq!(mode(&v), "handshakes");
    let n = u(&v, "handshakes");
    assert!(n > 0, "{v}");
    // The client may exit before the server has processed its last Finished.
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.stats().handshakes < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = server.stop(Duration::from_secs(5));
    assert_eq!((s.handshakes, s.handshakes_failed, s.streams), (n, 0, 0), "{s:?}");
}

#[test]
fn peregrine_perf_fails_with_one_line_when_quinn_answers_short() {
    let (server, ca) = quinn_server("short");
    server.set_response_shortfall(100);
    for args in [
        &["--download", "1M", "--streams", "2"][..],
        &["--rps", "--duration", "300ms", "--response-size", "1K"][..],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["perf", "--server"])
            .arg(format!("localhost:{}", server.local_addr().port()))
            .arg("--ca")
            .arg(&ca)
            .args(args);
        let out = run_bounded(cmd);
        assert!(!out.status.success(), "{args:?} succeeded against a short server");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("peregrine: ") && err.contains("expected"), "{args:?}: {err}");
    }
    let s = server.stop(Duration::from_secs(5));
    assert_eq!(s.streams_failed, 0, "first error: {:?}", s.first_error);
    assert!(s.log.iter().all(|r| r.sent + 100 == r.requested), "{:?}", s.log);
}

// ---------------------------------------------------------------------------------------
// quinn perf client → `peregrine server`

fn peregrine_server(tag: &str) -> ServerProc {
    assert_binary_built();
    support::start_server(tag, &[], &[]).unwrap_or_else(|e| panic!("server refused: {e}"))
}

/// The server's address as a socket address.
fn addr(server: &ServerProc) -> SocketAddr {
    server.addr.parse().unwrap()
}

/// Runs the quinn client against `server` in a thread, bounded by [`LIMIT`].
fn quinn_client(
    server: &ServerProc,
    trust: ClientTrust,
    mode: Mode,
    connections: u32,
    streams: u32,
) -> Summary {
    let cfg = ClientConfig {
        server: addr(server),
        server_name: "localhost".into(),
        trust,
        mode,
        duration: Duration::from_secs(1),
        connections,
        streams,
        threads: 2,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(client::run(&cfg));
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => panic!("quinn client {mode:?}: {e}"),
        Err(_) => panic!("quinn client {mode:?} did not finish within {LIMIT:?}"),
    }
}

#[test]
fn quinn_client_sizes_against_peregrine_server() {
    let server = peregrine_server("qsizes");
    // (upload, download, streams, connections): one big download, one big upload, more
    // streams than the server's concurrent-stream limit, and both directions at once.
    let cases: [(u64, u64, u32, u32); 4] = [
        (0, 32 << 20, 1, 1),
        (32 << 20, 0, 1, 1),
        (0, 64 << 10, 300, 1),
        (256 << 10, 1 << 20, 8, 2),
    ];
    for (up, down, streams, conns) in cases {
        let trust = ClientTrust::CaFile(server.cert());
        let s = quinn_client(
            &server,
            trust,
            Mode::Sizes { upload: up, download: down },
            conns,
            streams,
        );
        let n = u64::from(streams * conns);
        assert_eq!(s.per_stream.len() as u64, n);
        for r in &s.per_stream {
            assert_eq!((r.up, r.down, r.complete), (up, down, true), "{r:?}");
        }
        assert_eq!((s.bytes_uploaded, s.bytes_downloaded), (n * up, n * down));
        assert_eq!(s.to_json()["bytes_total"], n * (up + down));
    }
}

#[test]
fn quinn_client_duration_rps_and_handshakes_against_peregrine_server() {
    let server = peregrine_server("qmodes");
    let s = quinn_client(&server, ClientTrust::Insecure, Mode::Duration, 1, 2);
    assert_eq!(s.per_stream.len(), 2);
    assert!(s.per_stream.iter().all(|r| r.down > 0 && !r.complete), "{:?}", s.per_stream);
    assert_eq!(s.bytes_downloaded, s.per_stream.iter().map(|r| r.down).sum::<u64>());

    let trust = ClientTrust::CaFile(server.cert());
    let rps = Mode::Rps { request: 300, response: 5000 };
    let s = quinn_client(&server, trust.clone(), rps, 1, 4);
    assert!(s.requests > 0);
    assert_eq!((s.bytes_uploaded, s.bytes_downloaded), (s.requests * 300, s.requests * 5000));
    assert_eq!(s.latency_us.len(), s.requests);

    let s = quinn_client(&server, trust, Mode::Handshakes, 2, 1);
    assert!(s.handshakes > 0);
    let v = s.to_json();
    assert_eq!(v["mode"], "handshakes");
    assert_eq!(v["handshakes"], s.handshakes);
}

#[test]
fn peregrine_server_resets_a_request_without_its_size() {
    let server = peregrine_server("qbad");
    let cfg = ClientConfig {
        server: addr(&server),
        server_name: "localhost".into(),
        trust: ClientTrust::CaFile(server.cert()),
        mode: Mode::Sizes { upload: 0, download: 0 },
        duration: Duration::from_secs(1),
        connections: 1,
        streams: 1,
        threads: 1,
    };
    // CODE_BAD_REQUEST of `peregrine server`.
    assert_eq!(client::raw_request(&cfg, b"abc").unwrap(), RawAnswer::Reset(0x3));
    // An empty request is as malformed; a size with no upload is answered in full.
    assert_eq!(client::raw_request(&cfg, b"").unwrap(), RawAnswer::Reset(0x3));
    let ok = client::raw_request(&cfg, &777u64.to_be_bytes()).unwrap();
    assert_eq!(ok, RawAnswer::Data(777));
    // An hq-interop request on a perf connection (`peregrine client --alpn perf` used to
    // download for ever): "GET /f1k" reads as ~5 * 10^18 bytes, more than a stream can carry.
    let t0 = Instant::now();
    assert_eq!(client::raw_request(&cfg, b"GET /f1k\r\n").unwrap(), RawAnswer::Reset(0x3));
    assert!(t0.elapsed() < Duration::from_secs(10), "refused at once, not downloaded");
}
