//! `peregrine config` and the commands agree: they run the same validation, so a value
//! `config` accepts is accepted by `server`, `client` and `perf`, and each setting they refuse
//! `config` refuses with the same message; what `config --print` writes, `server` reads.

use std::time::Duration;

mod support;

use support::{peregrine, temp_dir};

const LIMIT: Duration = Duration::from_secs(30);

/// `(succeeded, stderr)` of `peregrine ARGS`.
fn outcome(args: &[&str]) -> (bool, String) {
    let out = peregrine(args, LIMIT);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).trim().to_owned())
}

const SERVER: [&str; 2] = ["server", "--print-config"];

#[test]
fn what_the_server_refuses_config_refuses_with_the_same_line() {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    assert!(!online.trim().split([',', '-']).any(|c| c == "99"), "core 99 is offline here");
    for flags in [
        &["--datapath", "xdp"][..],
        &["--cores", "99"],
        &["--queues", "0-3"],
        &["--datapath", "uring", "--queues", "0-3"],
        &["--workers", "2", "--cores", "0"],
        &["--mtu", "65528"],
        &["--datapath", "xdp", "--interface", "lo"],
        &["--ring-size", "128"],
        &["--mtu", "1400", "--initial-window", "2500"],
        &["--retry", "sometimes"],
        &["--max-handshakes", "0"],
        &["--handshake-timeout", "11m"],
        &["--token-key-file", "/nonexistent/peregrine-token-key"],
        &["--token-key-file", "/dev/null"],
    ] {
        let (ok, config_err) = outcome(&[&["config"], flags].concat());
        assert!(!ok, "config accepted {flags:?}");
        let (ok, server_err) = outcome(&[&SERVER[..], flags].concat());
        assert!(!ok, "server accepted {flags:?}");
        assert_eq!(config_err, server_err, "{flags:?}: the same check, the same line");
        assert_eq!(config_err.lines().count(), 1, "{config_err}");
    }
    // Client-only refusals: config says so when asked for the client.
    let (ok, err) = outcome(&["config", "--for", "client", "--metrics-addr", "127.0.0.1:1"]);
    assert!(!ok && err.contains("--metrics-addr"), "{err}");
    let (ok, _) = outcome(&["config", "--metrics-addr", "127.0.0.1:1"]);
    assert!(ok, "the server serves metrics");
    // Server-only admission keys: the client refuses them (it used to drop them silently),
    // with the line config gives.
    let out = temp_dir("clientonly");
    for flags in [&["--retry", "always"][..], &["--max-handshakes", "8"]] {
        let (ok, config_err) = outcome(&[&["config", "--for", "client"], flags].concat());
        assert!(!ok && config_err.contains(flags[0]), "{flags:?}: {config_err}");
        let client = ["client", "https://127.0.0.1:9/x", "--insecure", "--output"];
        let (ok, client_err) = outcome(&[&client[..], &[out.to_str().unwrap()], flags].concat());
        assert!(!ok, "client accepted {flags:?}");
        assert_eq!(config_err, client_err, "{flags:?}");
        let (ok, err) = outcome(&[&["config"], flags].concat());
        assert!(ok, "{flags:?} applies to the server: {err}");
    }
}

/// `perf --server HOST` runs no local server: the server-only admission keys used to be
/// ignored silently there (`--retry always` changed nothing); now each is refused in one line,
/// before anything is opened, as `client` refuses it. Without `--server` they configure the
/// in-process server and are accepted.
#[test]
fn perf_against_a_remote_server_refuses_server_only_keys() {
    let dir = temp_dir("perfremote");
    let key = dir.join("key");
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    let key = key.to_str().unwrap();
    let remote = ["perf", "--server", "127.0.0.1:9", "--insecure", "--duration", "10ms"];
    for (flags, name) in [
        (&["--retry", "always"][..], "--retry"),
        (&["--retry", "never"], "--retry"),
        (&["--max-handshakes", "8"], "--max-handshakes"),
        (&["--token-key-file", key], "--token-key-file"),
    ] {
        let out = peregrine(&[&remote[..], flags].concat(), LIMIT);
        let err = support::one_error_line(&out);
        assert!(
            err.contains(name) && err.contains("perf --server runs no local server"),
            "{flags:?}: {err}"
        );
        // The client refuses the same keys for its own reason.
        let (ok, err) = outcome(&[&["config", "--for", "client"], flags].concat());
        assert!(!ok && err.contains(name), "{flags:?}: {err}");
    }
    // Against the in-process server the keys apply, and the run succeeds.
    let (ok, err) = outcome(&["perf", "--duration", "200ms", "--retry", "always"]);
    assert!(ok, "perf --retry always (in-process server): {err}");
}

#[test]
fn what_config_accepts_the_server_accepts() {
    let dir = temp_dir("agree");
    for flags in [
        &[][..],
        &["--workers", "2", "--cores", "0-1"],
        &["--idle-timeout", "1h", "--congestion", "newreno", "--pacing", "off"],
        &["--datapath", "uring", "--ring-size", "256"],
        &["--mtu", "1200", "--initial-window", "2400", "--gso", "off"],
        &["--retry", "always", "--handshake-timeout", "2s", "--max-handshakes", "8"],
        &["--retry", "never"],
        &["--stream-window", "1G", "--connection-window", "16G", "--max-bidi-streams", "0"],
    ] {
        let out = peregrine(&[&["config", "--print"], flags].concat(), LIMIT);
        assert!(out.status.success(), "{flags:?}: {}", String::from_utf8_lossy(&out.stderr));
        let file = dir.join("m.toml");
        std::fs::write(&file, &out.stdout).unwrap();
        let (ok, err) = outcome(&[&SERVER[..], &["--config", file.to_str().unwrap()]].concat());
        assert!(ok, "{flags:?}: config printed a file the server refuses: {err}");
        let (ok, err) = outcome(&[&SERVER[..], flags].concat());
        assert!(ok, "{flags:?}: {err}");
    }
}

/// `server --datapath xdp --interface lo` used to start and serve nothing; now it is refused
/// before anything is opened, as perf refuses it.
#[test]
fn xdp_on_loopback_is_refused_by_server_and_perf() {
    let dir = temp_dir("xdplo");
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let (ok, err) = outcome(&[
        "server",
        "--datapath",
        "xdp",
        "--interface",
        "lo",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--root",
        dir.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("loopback") && err.lines().count() == 1, "{err}");
    let (ok, err) = outcome(&["perf", "--datapath", "xdp", "--interface", "lo"]);
    assert!(!ok && err.contains("loopback"), "{err}");
}

/// `config --for perf` runs perf's checks: what perf refuses it refuses with the same line
/// (AF_XDP on a real interface included: perf's in-process server listens on 127.0.0.1,
/// which `config --for perf` used to call valid), and what it accepts perf runs.
#[test]
fn config_for_perf_agrees_with_perf() {
    let nic = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| {
            std::fs::read_to_string(format!("/sys/class/net/{n}/type"))
                .is_ok_and(|t| t.trim() != "772")
        });
    let mut refused: Vec<Vec<&str>> = vec![
        vec!["--cores", "99"],
        vec!["--workers", "2", "--cores", "0"],
        vec!["--mtu", "65528"],
        vec!["--queues", "0-3"],
        vec!["--datapath", "xdp", "--interface", "lo"],
    ];
    match &nic {
        Some(n) => refused.push(vec!["--datapath", "xdp", "--interface", n]),
        None => println!("SKIP (xdp part): no non-loopback interface in /sys/class/net"),
    }
    for flags in &refused {
        let (ok, config_err) = outcome(&[&["config", "--for", "perf"], &flags[..]].concat());
        assert!(!ok, "config --for perf accepted {flags:?}");
        let (ok, perf_err) = outcome(&[&["perf", "--duration", "100ms"], &flags[..]].concat());
        assert!(!ok, "perf accepted {flags:?}");
        assert_eq!(config_err, perf_err, "{flags:?}: the same check, the same line");
    }
    for flags in [&["--workers", "2", "--cores", "0-1"][..], &["--mtu", "1200", "--gso", "off"]] {
        let (ok, err) = outcome(&[&["config", "--for", "perf"], flags].concat());
        assert!(ok, "{flags:?}: {err}");
        let (ok, err) = outcome(&[&["perf", "--duration", "200ms"], flags].concat());
        assert!(ok, "{flags:?}: perf refused what config --for perf accepts: {err}");
    }
}
