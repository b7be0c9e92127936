//! Runs the `peregrine` binary: the default job works, bad input gives one line and exit != 0.

use std::process::Command;

fn peregrine(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine")).args(args).output().expect("run peregrine")
}

#[test]
fn datapath_bench_json_reports_every_case() {
    let out = peregrine(&["datapath-bench", "--datagrams", "5000", "--duration", "2s", "--json"]);
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
        return peregrine_datapath::require::unavailable(stderr);
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

fn assert_one_line_error(args: &[&str]) -> String {
    let out = peregrine(args);
    assert!(!out.status.success(), "{args:?} must fail");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line, got {stderr:?}");
    assert!(stderr.starts_with("peregrine: "), "{args:?}: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr:?}");
    stderr
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("peregrine-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_config_flags_name_the_key_on_one_line() {
    for (flag, value) in [
        ("--workers", "0"),
        ("--workers", "-3"),
        ("--workers", "100000"),
        ("--stream-window", "0"),
        ("--stream-window", "-1"),
        ("--stream-window", "5G"),
        ("--stream-window", "99999999999999999999"),
        ("--connection-window", "1T"),
        ("--connection-window", "100G"),
        ("--initial-window", "10"),
        ("--idle-timeout", "30"),
        ("--idle-timeout", "-1s"),
        ("--idle-timeout", "1.5s"),
        ("--idle-timeout", "2h"),
        ("--idle-timeout", "0ms"),
        ("--cores", "3-1"),
        ("--cores", "a"),
        ("--cores", "0-99999"),
        ("--queues", "1,,2"),
        ("--congestion", "vegas"),
        ("--datapath", "dpdk"),
        ("--xdp-mode", "offload"),
        ("--mtu", "1199"),
        ("--mtu", "65528"),
        ("--rx-batch", "0"),
        ("--tx-batch", "2048"),
        ("--busy-poll-us", "2000000"),
        ("--ring-size", "1000"),
        ("--pacing", "maybe"),
        ("--max-bidi-streams", "-1"),
        ("--metrics-addr", "localhost"),
    ] {
        let err = assert_one_line_error(&["config", flag, value]);
        assert!(err.contains(flag), "{flag} {value}: error names the key: {err}");
        assert!(err.contains(value) || err.contains("outside"), "{flag} {value}: {err}");
    }
}

#[test]
fn bad_config_files_give_one_line() {
    let missing = std::env::temp_dir().join("peregrine-no-such-config.toml");
    let err = assert_one_line_error(&["config", "--config", missing.to_str().unwrap()]);
    assert!(err.contains("cannot read config file"), "{err}");
    for (name, text, needle) in [
        ("unknown.toml", "workers = 2\nwrokers = 3\n", "unknown key 'wrokers'"),
        ("syntax.toml", "workers = \n", "invalid TOML"),
        ("syntax2.toml", "[unclosed\n", "invalid TOML"),
        ("range.toml", "mtu = 70000\n", "mtu: 70000 is outside 1200..=65527"),
        ("neg.toml", "stream-window = -1\n", "stream-window"),
        ("type.toml", "idle-timeout = 1.5\n", "idle-timeout: expected"),
        ("cc.toml", "congestion = \"vegas\"\n", "congestion"),
    ] {
        let path = temp_file(name, text);
        let err = assert_one_line_error(&["config", "--config", path.to_str().unwrap(), "--print"]);
        assert!(err.contains(needle), "{name}: {err}");
        assert!(err.contains(name), "{name}: the file is named: {err}");
    }
}

#[test]
fn config_print_round_trips_and_flags_override_the_file() {
    let first = peregrine(&[
        "config",
        "--print",
        "--workers",
        "2",
        "--cores",
        "0-1",
        "--idle-timeout",
        "500ms",
        "--stream-window",
        "4M",
        "--congestion",
        "reno",
        "--gso",
        "off",
        "--metrics-addr",
        "127.0.0.1:9100",
        "--keylog-file",
        "/tmp/k.log",
    ]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let text = String::from_utf8(first.stdout).unwrap();
    // Only cores that exist are printed (config checks what the server would): this
    // machine has at least two.
    assert!(text.contains("cores = \"0-1\"") && text.contains("congestion = \"newreno\""));
    let path = temp_file("round.toml", &text);
    let second = peregrine(&["config", "--config", path.to_str().unwrap(), "--print"]);
    assert!(second.status.success());
    assert_eq!(String::from_utf8(second.stdout).unwrap(), text, "print → load → print");
    let over =
        peregrine(&["config", "--config", path.to_str().unwrap(), "--print", "--workers", "1"]);
    let over = String::from_utf8(over.stdout).unwrap();
    assert!(over.contains("workers = 1\n") && over.contains("cores = \"0-1\""), "{over}");
}

#[test]
fn tune_on_loopback_and_unknown_interface() {
    let out = peregrine(&["tune", "--interface", "lo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("recommended map") && text.contains("peregrine server "), "{text}");
    assert!(text.contains("could not read:"), "lo has no device, so something is missing");
    let out = peregrine(&["tune", "--interface", "lo", "--json"]);
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["interface"], "lo");
    assert_eq!(j["driver"], serde_json::Value::Null);
    assert!(!j["plan"].as_array().unwrap().is_empty(), "{j}");
    assert!(j["command"].as_str().unwrap().contains("--workers"));
    assert!(j["irqs"].as_array().unwrap().iter().all(|i| i.is_object()), "{j}");
    let advice = j["advice"].as_array().unwrap();
    for key in ["net.core.rmem_max", "net.core.wmem_max", "net.core.busy_poll"] {
        let a = advice.iter().find(|a| a["setting"] == key).unwrap_or_else(|| panic!("{key}: {j}"));
        assert!(a["reason"].as_str().is_some_and(|r| r.len() > 20) && a["current"].is_string());
    }
    assert!(j["mtu_reason"].as_str().unwrap().contains("IPv6 40 + UDP 8"), "{j}");
    let v4 = peregrine(&["tune", "--interface", "lo", "--json", "--listen", "0.0.0.0:443"]);
    let v4: serde_json::Value = serde_json::from_slice(&v4.stdout).unwrap();
    assert!(v4["mtu_reason"].as_str().unwrap().contains("IPv4 20 + UDP 8"), "{v4}");
    assert!(v4["command"].as_str().unwrap().contains("--listen 0.0.0.0:443"));
    // The recommended command line's settings are valid for the server.
    let cmd = j["command"].as_str().unwrap().to_owned();
    let words: Vec<&str> = cmd.split_whitespace().collect();
    assert!(words.starts_with(&["peregrine", "server"]), "{cmd}");
    let mut cfg = vec!["server", "--print-config"];
    let mut i = 0;
    while i < words.len() {
        if ["--datapath", "--workers", "--cores", "--queues", "--mtu", "--gso", "--gro"]
            .contains(&words[i])
        {
            cfg.extend_from_slice(&words[i..i + 2]);
        }
        i += 1;
    }
    let out = peregrine(&cfg);
    assert!(out.status.success(), "{cfg:?}: {}", String::from_utf8_lossy(&out.stderr));
    for bad in ["no-such-if0", "", "../etc"] {
        let err = assert_one_line_error(&["tune", "--interface", bad]);
        assert!(err.contains("--interface"), "{err}");
    }
}

#[test]
fn metrics_command_serves_prometheus_text() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["metrics", "--listen", "127.0.0.1:0", "--duration", "10s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).and_then(|r| r.split('/').next()).unwrap().to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.contains("# TYPE peregrine_up gauge\nperegrine_up 1\n"), "{resp}");
    for bad in [&["metrics", "--listen", "nowhere"][..], &["metrics", "--duration", "5"]] {
        assert_one_line_error(bad);
    }
}

#[test]
fn datapath_bench_writes_a_report() {
    let path = std::env::temp_dir().join(format!("peregrine-report-{}.svg", std::process::id()));
    let out = peregrine(&[
        "datapath-bench",
        "--mode",
        "none",
        "--datagrams",
        "4000",
        "--duration",
        "1s",
        "--slices",
        "4",
        "--report",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let flat = svg.replace('\n', " ");
    assert!(flat.contains("> none </text>") && svg.contains("throughput (Gbit/s)"), "{svg}");
    assert!(svg.contains("datagram latency: not recorded"), "{svg}");
    let line = svg
        .split("<polyline")
        .find(|p| p.contains("stroke=\"#0072B2\""))
        .and_then(|p| p.split("points=\"").nth(1))
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(line.split_whitespace().count(), 8, "one step (two points) per slice");
    for bad in
        [&["datapath-bench", "--report", "/tmp/x.png"][..], &["datapath-bench", "--slices", "1"]]
    {
        assert_one_line_error(bad);
    }
}
