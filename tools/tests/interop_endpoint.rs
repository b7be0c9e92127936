//! `scripts/interop/run_endpoint.sh` follows the quic-interop-runner contract: /setup.sh
//! first, the client waits for the simulator, SERVER_PARAMS / CLIENT_PARAMS are appended,
//! QLOGDIR gets a trace per connection, the supported cases run and the rest exit 127.
//! Helper scripts and the binary are stubbed where the contract is checked, and the real
//! binary transfers a file over loopback: plain, with a Retry, and in the `v2` case (the
//! server started with `--prefer-version v2`, compatible version negotiation).

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
        for case in ["zerortt", "http3", "connectionmigration", "bogus", ""] {
            let out = script(&[("ROLE", role), ("TESTCASE", case), ("PEREGRINE", BIN)]);
            assert_eq!(out.status.code(), Some(127), "{role} {case}");
        }
    }
    for case in ["chacha20", "keyupdate", "resumption"] {
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
    for case in ["transfer", "chacha20", "keyupdate", "rebind-port", "ipv6"] {
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

/// The real binary, both roles over loopback: `transfer`, `retry` and `v2` move a file byte-exact
/// and leave a qlog trace per side in QLOGDIR; under `retry` the server's transport
/// parameters carry `retry_source_connection_id` (a Retry happened), under `transfer` not.
#[test]
fn transfer_and_retry_over_loopback_write_qlogs() {
    for case in ["transfer", "retry", "v2"] {
        let dir = temp_dir(&format!("endpoint-{case}"));
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
                ("TESTCASE", case),
                ("PEREGRINE", BIN),
                ("SETUP", "/nonexistent"),
                ("LISTEN", &format!("127.0.0.1:{port}")),
                ("WWW", www.to_str().unwrap()),
                ("CERTS", certs.to_str().unwrap()),
                ("QLOGDIR", sq.to_str().unwrap()),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let rx = lines(server.stdout.take().unwrap());
        let Ok(first) = rx.recv_timeout(Duration::from_secs(10)) else {
            let _ = server.kill();
            let out = server.wait_with_output().unwrap();
            panic!("{case}: the server did not start: {}", String::from_utf8_lossy(&out.stderr));
        };
        assert!(first.starts_with("listening on"), "{case}: {first}");
        let out = script(&[
            ("ROLE", "client"),
            ("TESTCASE", case),
            ("PEREGRINE", BIN),
            ("REQUESTS", &format!("https://127.0.0.1:{port}/f300k")),
            ("DOWNLOADS", downloads.to_str().unwrap()),
            ("QLOGDIR", cq.to_str().unwrap()),
        ]);
        std::thread::sleep(Duration::from_millis(300));
        let _ = server.kill();
        let _ = server.wait();
        assert!(out.status.success(), "{case}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(downloads.join("f300k")).unwrap(), data, "{case}");
        for (q, side) in [(&cq, "client"), (&sq, "server")] {
            let names: Vec<String> = std::fs::read_dir(q)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let trace = names
                .iter()
                .find(|n| n.ends_with(&format!("_{side}.sqlog")))
                .unwrap_or_else(|| panic!("{case} {side}: {names:?}"));
            if side == "client" {
                let text = std::fs::read_to_string(q.join(trace)).unwrap();
                let retried = text.contains("\"retry_source_connection_id\"");
                assert_eq!(retried, case == "retry", "{case}: Retry seen by the client");
            }
        }
    }
}

/// The image the runner starts: built from the repository (no docker daemon is needed for
/// this check, and none runs in CI, so the image itself is not built here). It builds the
/// `peregrine` package, starts from the runner's endpoint image (which provides /setup.sh and
/// /wait-for-it.sh) and runs this script as /run_endpoint.sh.
#[test]
fn dockerfile_builds_the_endpoint_the_runner_expects() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/interop/Dockerfile");
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and the endpoint stage: {froms:?}");
    assert!(froms[1].starts_with("FROM martenseemann/quic-network-simulator-endpoint"));
    assert!(lines.iter().any(|l| l.starts_with("RUN ") && l.contains("-p peregrine")));
    assert!(lines.contains(&"COPY scripts/interop/run_endpoint.sh /run_endpoint.sh"));
    let entry = lines.last().unwrap();
    assert!(entry.starts_with("ENTRYPOINT") && entry.contains("/run_endpoint.sh"), "{entry}");
    // The script's default binary is found on the image's PATH.
    assert!(lines.iter().any(|l| l.contains("/usr/local/bin/peregrine")));
    let script = std::fs::read_to_string(SCRIPT).unwrap();
    assert!(script.contains("PEREGRINE=\"${PEREGRINE:-peregrine}\""));
}
