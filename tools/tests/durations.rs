//! One duration syntax (`500ms`, `5s`, `1m`, `1h`) on every command: each flag that takes a
//! duration accepts the four units, refuses a bare number with the same message, and its
//! range in `--help` is the one it enforces.

use std::time::Duration;

mod support;

use support::{one_error_line, peregrine};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `args`, which must fail, and returns its one error line.
fn error_of(args: &[&str]) -> String {
    one_error_line(&peregrine(args, LIMIT))
}

#[test]
fn every_unit_is_accepted_where_a_duration_is_taken() {
    // A later check fails on purpose, so that the duration was parsed and nothing runs.
    let bad_report = "/nonexistent-dir-peregrine/r.html";
    for d in ["500ms", "5s", "1m", "1h"] {
        let err = error_of(&["perf", "--duration", d, "--report", bad_report]);
        assert!(err.contains("--report") && !err.contains("--duration"), "{d}: {err}");
        let err = error_of(&[
            "client",
            "https://h:1/x",
            "--insecure",
            "--output",
            "/tmp",
            "--timeout",
            d,
            "--mtu",
            "1",
        ]);
        assert!(err.contains("--mtu") && !err.contains("--timeout"), "{d}: {err}");
        let err = error_of(&["config", "--idle-timeout", d, "--mtu", "1"]);
        assert!(err.contains("--mtu"), "{d}: {err}");
        let out = peregrine(&["config", "--idle-timeout", d, "--print"], LIMIT);
        assert!(out.status.success(), "{d}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for d in ["500ms", "5s", "1m"] {
        let err = error_of(&["datapath-bench", "--duration", d, "--mode", "bogus"]);
        assert!(err.contains("--mode"), "{d}: {err}");
    }
    let err = error_of(&["stress", "--duration", "1m", "--threads", "0"]);
    assert!(err.contains("--threads"), "{err}");
}

#[test]
fn bare_numbers_and_out_of_range_values_are_refused_with_the_range() {
    for (args, needle) in [
        (&["perf", "--duration", "5"][..], "has no unit"),
        (&["perf", "--duration", "25h"], "outside 10ms..=24h"),
        (&["datapath-bench", "--duration", "5"], "has no unit"),
        (&["datapath-bench", "--duration", "11m"], "outside 100ms..=10m"),
        (
            &["client", "https://h/x", "--insecure", "--output", "/tmp", "--timeout", "1"],
            "has no unit",
        ),
        (
            &["client", "https://h/x", "--insecure", "--output", "/tmp", "--timeout", "0ms"],
            "outside 1ms..=1h",
        ),
        (&["config", "--idle-timeout", "61m"], "outside 1ms..=1h"),
        (&["config", "--idle-timeout", "1.5s"], "has an unknown unit"),
        (&["metrics", "--duration", "5"], "has no unit"),
        (&["metrics", "--duration", "25h"], "outside 1ms..=24h"),
        (&["stress", "--duration", "25h"], "outside 10ms..=24h"),
        (&["perf", "--interval", "50ms"], "outside 100ms..=1h"),
        (&["config", "--handshake-timeout", "11m"], "outside 1ms..=10m"),
    ] {
        let err = error_of(args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn help_ranges_are_the_enforced_ones() {
    for (cmd, flag, range) in [
        ("perf", "--duration", "10ms..=24h"),
        ("datapath-bench", "--duration", "100ms..=10m"),
        ("client", "--timeout", "1ms..=1h"),
        ("config", "--idle-timeout", "1ms..=1h"),
        ("config", "--handshake-timeout", "1ms..=10m"),
        ("perf", "--interval", "100ms..=1h"),
        ("metrics", "--duration", "1ms..=24h"),
        ("stress", "--duration", "10ms..=24h"),
    ] {
        let out = peregrine(&[cmd, "--help"], LIMIT);
        let help = String::from_utf8_lossy(&out.stdout);
        let line = help.lines().skip_while(|l| !l.contains(flag)).take(3).collect::<String>();
        assert!(line.contains(range), "{cmd} {flag}: help says {line:?}");
    }
}
