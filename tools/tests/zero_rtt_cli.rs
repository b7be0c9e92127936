//! 0-RTT over real UDP on loopback with the `peregrine` binaries: `peregrine client --repeat`
//! reuses its session cache; with `--early-data on` on both sides the later connections'
//! requests go in 0-RTT and are accepted, and every file arrives whole.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

mod support;

use support::{pattern, peregrine, start_server, temp_dir};

const LIMIT: Duration = Duration::from_secs(60);

fn fetch(port: &str, ca: &str, out: &str, extra: &[&str]) -> (bool, String) {
    let url = format!("https://localhost:{port}/f.bin");
    let args =
        [&["client", url.as_str(), "--ca", ca, "--output", out, "--repeat", "3"], extra].concat();
    let o = peregrine(&args, LIMIT);
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn repeated_fetches_use_zero_rtt_when_both_sides_enable_it() {
    let data = pattern(300_000, 7);
    let server =
        start_server("zerortt", &[("f.bin", data.clone())], &["--early-data", "on"]).unwrap();
    let out = temp_dir("zerortt-out");
    let (ca, o) = (server.cert(), out.to_str().unwrap().to_owned());
    let (ok, err) = fetch(server.port(), ca.to_str().unwrap(), &o, &["--early-data", "on"]);
    assert!(ok, "client failed: {err}");
    assert_eq!(std::fs::read(out.join("f.bin")).unwrap(), data);
    assert!(err.contains("connection 1: no 0-RTT"), "{err}");
    assert!(err.contains("connection 2: 0-RTT accepted"), "{err}");
    assert!(err.contains("connection 3: 0-RTT accepted"), "{err}");

    // Without --early-data on the client: resumption only, no 0-RTT.
    let (ok, err) = fetch(server.port(), ca.to_str().unwrap(), &o, &[]);
    assert!(ok, "client failed: {err}");
    assert!(err.contains("connection 3: no 0-RTT"), "{err}");
}
