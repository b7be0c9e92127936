//! `scripts/interop/run_endpoint.sh` follows the quic-interop-runner contract: /setup.sh
//! first, the client waits for the simulator, SERVER_PARAMS / CLIENT_PARAMS are appended,
//! QLOGDIR gets a trace per connection, v2 and the other supported cases run and the rest
//! exit 127. Helper scripts and the binary are stubbed where the contract is checked, and
//! the real binary transfers a file over loopback.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod support;

use support::{lines, run_bounded, temp_dir, BIN};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/interop/run_endpoint.sh");

/// Runs the script with `env`; helpers and binary as given there.
fn script(env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(SCRIPT).env("SETUP", "/nonexistent").env("WAIT_FOR_IT", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, Duration::from_secs(60))
}

/// A shell script at `dir/name` that appends its arguments (one line per call) to `log`.
fn stub(dir: &Path, name: &str, log: &Path) -> PathBuf {
    let path = dir.join(name);
    let body = format!(
        "#!/bin/sh\n# --help probes: no optional flags\n[ \"$2\" = --help ] && exit 0\necho \"$0 $*\" >> '{}'\n",
        log.display()
    );
    std::fs::write(&path, body).unwrap();
    Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    path
}

#[test]
fn unsupported_cases_exit_127_and_bad_roles_1() {
    for role in ["client", "server"] {
        for case in ["zerortt", "http3", "resumption", "connectionmigration", "bogus", ""] {
            let out = script(&[("ROLE", role), ("TESTCASE", case), ("PEREGRINE", BIN)]);
            assert_eq!(out.status.code(), Some(127), "{role} {case}");
        }
    }
    for case in ["chacha20", "keyupdate"] {
        let out = script(&[("ROLE", "client"), ("TESTCASE", case), ("PEREGRINE", BIN)]);
        assert_eq!(out.status.code(), Some(127), "client {case}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not supported as client"));
    }
    let bad = script(&[("ROLE", "observer"), ("TESTCASE", "handshake")]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ROLE must be client or server"));
    let none = script(&[("ROLE", "client"), ("TESTCASE", "handshake"), ("PEREGRINE", BIN)]);
    assert_eq!(none.status.code(), Some(1), "no REQUESTS");
}

#[test]
fn the_contract_with_stubs() {
    let dir = temp_dir("stubs");
    let log = dir.join("calls.log");
    let pg = stub(&dir, "peregrine", &log);
    let setup = stub(&dir, "setup.sh", &log);
    let wait = stub(&dir, "wait-for-it.sh", &log);
    let qlog = dir.join("qlog");
    let common = |role: &'static str, case: &'static str| {
        vec![
            ("ROLE", role),
            ("TESTCASE", case),
            ("PEREGRINE", pg.to_str().unwrap()),
            ("SETUP", setup.to_str().unwrap()),
            ("WAIT_FOR_IT", wait.to_str().unwrap()),
            ("QLOGDIR", qlog.to_str().unwrap()),
            ("DOWNLOADS", dir.to_str().unwrap()),
        ]
    };
    let calls = || std::fs::read_to_string(&log).unwrap_or_default();
    for case in ["transfer", "v2", "chacha20", "keyupdate", "rebind-port", "ipv6"] {
        let _ = std::fs::remove_file(&log);
        let mut env = common("server", case);
        env.push(("SERVER_PARAMS", "--workers 2 --congestion newreno"));
        let out = script(&env);
        assert!(out.status.success(), "server {case}: {}", String::from_utf8_lossy(&out.stderr));
        let c = calls();
        let lines: Vec<&str> = c.lines().collect();
        assert!(lines[0].ends_with("setup.sh "), "/setup.sh first: {c}");
        let server = lines[1];
        assert!(
            server.contains(
                "server --listen [::]:443 --cert /certs/cert.pem --key /certs/priv.key --root /www"
            ),
            "{server}"
        );
        assert!(server.contains(&format!("--qlog-dir {}", qlog.display())), "{server}");
        assert!(server.ends_with("--workers 2 --congestion newreno"), "SERVER_PARAMS: {server}");
    }
    let _ = std::fs::remove_file(&log);
    let mut env = common("client", "multiconnect");
    env.push(("REQUESTS", "https://server4:443/a https://server4:443/b"));
    env.push(("CLIENT_PARAMS", "--congestion newreno"));
    let out = script(&env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = calls();
    let lines: Vec<&str> = c.lines().collect();
    assert!(lines[0].ends_with("setup.sh "), "{c}");
    assert!(lines[1].ends_with("wait-for-it.sh sim:57832 -s -t 30"), "{c}");
    assert_eq!(lines.len(), 4, "one client per request: {c}");
    for (l, url) in lines[2..].iter().zip(["/a", "/b"]) {
        assert!(l.contains("client --output") && l.contains("--insecure"), "{l}");
        assert!(l.contains("--qlog-dir") && l.contains("--congestion newreno"), "{l}");
        assert!(l.ends_with(&format!("https://server4:443{url}")), "{l}");
    }
}

#[test]
fn v2_client_needs_the_quic_version_flag() {
    let help = Command::new(BIN).args(["client", "--help"]).output().unwrap();
    let has = String::from_utf8_lossy(&help.stdout).contains("--quic-version");
    let out = script(&[
        ("ROLE", "client"),
        ("TESTCASE", "v2"),
        ("PEREGRINE", BIN),
        ("REQUESTS", "https://127.0.0.1:9/x"),
        ("DOWNLOADS", temp_dir("v2dl").to_str().unwrap()),
    ]);
    if has {
        assert_ne!(out.status.code(), Some(127), "v2 runs once the client offers it");
    } else {
        assert_eq!(out.status.code(), Some(127));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--quic-version"));
    }
}

#[test]
fn transfer_over_loopback_writes_qlogs() {
    let dir = temp_dir("endpoint");
    let (www, certs, downloads) = (dir.join("www"), dir.join("certs"), dir.join("downloads"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&certs).unwrap();
    let data = support::pattern(300_000, 7);
    std::fs::write(www.join("f300k"), &data).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["server".into()]).unwrap();
    std::fs::write(certs.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(certs.join("priv.key"), ck.key_pair.serialize_pem()).unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (sq, cq) = (dir.join("qlog-server"), dir.join("qlog-client"));
    let mut server = Command::new("bash")
        .arg(SCRIPT)
        .envs([
            ("ROLE", "server"),
            ("TESTCASE", "transfer"),
            ("PEREGRINE", BIN),
            ("SETUP", "/nonexistent"),
            ("LISTEN", &format!("127.0.0.1:{port}")),
            ("WWW", www.to_str().unwrap()),
            ("CERTS", certs.to_str().unwrap()),
            ("QLOGDIR", sq.to_str().unwrap()),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(server.stdout.take().unwrap());
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("the server started");
    assert!(first.starts_with("listening on"), "{first}");
    let out = script(&[
        ("ROLE", "client"),
        ("TESTCASE", "transfer"),
        ("PEREGRINE", BIN),
        ("REQUESTS", &format!("https://127.0.0.1:{port}/f300k")),
        ("DOWNLOADS", downloads.to_str().unwrap()),
        ("QLOGDIR", cq.to_str().unwrap()),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(downloads.join("f300k")).unwrap(), data);
    for (q, side) in [(&cq, "client"), (&sq, "server")] {
        let names: Vec<String> = std::fs::read_dir(q)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().any(|n| n.ends_with(&format!("_{side}.sqlog"))), "{side}: {names:?}");
    }
}
