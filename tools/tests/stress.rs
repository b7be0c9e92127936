//! The short CI run of `peregrine stress`: random API calls from several threads with every
//! fault on; exit 0 means every invariant held, and the JSON shows the run was not trivial.

use std::process::Command;

use serde_json::Value;

fn stress(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .arg("stress")
        .args(args)
        .output()
        .expect("run peregrine stress")
}

fn num(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64().unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

#[test]
fn stress_with_faults_holds_every_invariant() {
    let out = stress(&[
        "--duration",
        "4s",
        "--threads",
        "4",
        "--connections",
        "6",
        "--seed",
        "7",
        "--loss",
        "0.03",
        "--reorder",
        "0.03",
        "--duplicate",
        "0.02",
        "--corrupt",
        "0.01",
        "--delay",
        "2ms",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}\nstdout: {stdout}");
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(v["ok"], Value::Bool(true), "{v}");
    assert_eq!(v["violations"].as_array().map(Vec::len), Some(0), "{v}");

    // Not trivial: thousands of operations of every kind that matters.
    assert!(num(&v, &["ops_before_shutdown"]) >= 1000, "{v}");
    for op in ["connect.ok", "open_bi.ok", "open_uni.ok", "accept_bi.ok", "read.data", "reset"] {
        assert!(num(&v, &["ops", op]) > 0, "no {op}: {v}");
    }
    // Completions of several kinds, and every write accounted for.
    let c = &v["completions"];
    assert!(num(&v, &["completions", "delivered"]) > 0, "{c}");
    assert!(num(&v, &["completions", "cancelled.connection_closed"]) > 0, "{c}");
    let kinds = c.as_object().map_or(0, |m| m.values().filter(|x| x.as_u64() > Some(0)).count());
    assert!(kinds >= 3, "completions of at least three kinds: {c}");
    let seen: u64 = c.as_object().unwrap().values().filter_map(Value::as_u64).sum();
    assert_eq!(seen, num(&v, &["writes", "issued"]), "{v}");
    assert_eq!(num(&v, &["writes", "unresolved"]), 0);
    for ep in ["client", "server"] {
        let e = &v["endpoints"][ep];
        assert_eq!(num(e, &["completions"]), num(e, &["writes"]), "{ep}: {e}");
        assert_eq!(num(e, &["duplicate_completions"]), 0, "{ep}: {e}");
        assert_eq!(num(e, &["drained_signals"]), 1, "{ep}: {e}");
        assert_eq!(num(e, &["live_connections"]), 0, "{ep}: {e}");
        assert!(num(e, &["opened"]) > 0, "{ep}: {e}");
    }
    // Faults were really injected.
    for f in ["lost", "duplicated", "corrupted", "reordered"] {
        assert!(num(&v, &["faults", f]) > 0, "no {f}: {}", v["faults"]);
    }
}

#[test]
fn shutdowns_return_while_the_client_transmit_is_stalled() {
    let out = stress(&[
        "--duration",
        "2s",
        "--seed",
        "3",
        "--loss",
        "0.02",
        "--stall-at-shutdown",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}\nstdout: {stdout}");
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(v["ok"], Value::Bool(true), "{v}");
    assert!(num(&v, &["faults", "stalled_sends"]) > 0, "the stall really blocked sends: {v}");
    assert!(num(&v, &["endpoints", "client", "opened"]) > 0, "{v}");
}

#[test]
fn stress_rejects_bad_fault_flags_in_one_line() {
    let out = stress(&["--loss", "1.5", "--duration", "1s"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("loss") && stderr.contains("probability"), "{stderr}");
}
