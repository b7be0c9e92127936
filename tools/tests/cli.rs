//! Runs the `peregrine` binary: the default job works, bad input gives one line and exit != 0.

use std::process::Command;

fn peregrine(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine")).args(args).output().expect("run peregrine")
}

#[test]
fn datapath_bench_json_reports_every_case() {
    let out = peregrine(&["datapath-bench", "--datagrams", "5000", "--duration", "2", "--json"]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let cases: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let names: Vec<&str> = cases.iter().map(|c| c["case"].as_str().unwrap()).collect();
    assert_eq!(names, ["gso-gro", "gso", "none"]);
    for c in &cases {
        let sent = c["sent"].as_u64().unwrap();
        let received = c["received"].as_u64().unwrap();
        assert!(sent > 0 && received > 0, "{c}");
        assert_eq!(c["corrupt"].as_u64(), Some(0), "{c}");
        assert!(received + c["lost"].as_u64().unwrap() == sent, "every datagram accounted: {c}");
        assert_eq!(c["payload"].as_u64(), Some(1200));
    }
}

#[test]
fn datapath_bench_uring_backend() {
    let out = peregrine(&[
        "datapath-bench",
        "--backend",
        "uring",
        "--mode",
        "gso-gro",
        "--datagrams",
        "3000",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("io_uring unavailable") {
        println!("skipping: {stderr}");
        return;
    }
    assert!(out.status.success(), "stderr: {stderr}");
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(c["backend"], "uring");
    let (sent, received) = (c["sent"].as_u64().unwrap(), c["received"].as_u64().unwrap());
    assert!(received > 0 && received + c["lost"].as_u64().unwrap() == sent, "{c}");
    assert_eq!(c["corrupt"].as_u64(), Some(0), "{c}");
}

#[test]
fn bad_arguments_give_one_line_and_nonzero_exit() {
    for args in [
        &["datapath-bench", "--mode", "fast"][..],
        &["datapath-bench", "--payload", "0"],
        &["datapath-bench", "--payload", "70000"],
        &["datapath-bench", "--duration", "0"],
        &["datapath-bench", "--datagrams", "0"],
        &["datapath-bench", "--datagrams", "many"],
        &["datapath-bench", "--bogus"],
        &["datapath-bench", "--backend", "dpdk"],
        &["no-such-command"],
    ] {
        let out = peregrine(args);
        assert!(!out.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line, got {stderr:?}");
        assert!(stderr.starts_with("peregrine: "), "{args:?}: {stderr:?}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr:?}");
    }
}
