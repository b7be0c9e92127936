//! `peregrine server` for a person setting it up: the `--self-signed` quick start (with its
//! fingerprint) that `perf --server` uses, one info log line per connection, and errors that
//! say what is wrong (CA, name, key mismatch, non-PEM key, missing file, flag typos).

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::{lines, one_error_line, run_bounded, start_server, temp_dir, BIN};

const LIMIT: Duration = Duration::from_secs(60);

fn run(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_bounded(cmd, LIMIT)
}

/// A `peregrine server --self-signed` child; killed on drop.
struct SelfSigned {
    child: std::process::Child,
    port: String,
    note: String,
    /// Keeps draining its stdout, so the server never writes into a closed pipe.
    _rx: std::sync::mpsc::Receiver<String>,
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn self_signed(listen: &str, extra: &[&str], env: &[(&str, &str)]) -> SelfSigned {
    let mut child = Command::new(BIN)
        .args(["server", "--listen", listen, "--self-signed"])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(child.stdout.take().unwrap());
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("listening line");
    let port = first.rsplit(':').next().unwrap().trim().to_owned();
    let note = rx.recv_timeout(Duration::from_secs(5)).expect("certificate line");
    SelfSigned { child, port, note, _rx: rx }
}

#[test]
fn self_signed_quick_start_serves_perf_and_prints_the_fingerprint() {
    let dir = temp_dir("selfsigned");
    let ca = dir.join("ca.pem");
    let s = self_signed("127.0.0.1:0", &["--cert-out", ca.to_str().unwrap()], &[]);
    // The printed fingerprint is the certificate's SHA-256 (as openssl x509 -fingerprint).
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let der = CertificateDer::from_pem_file(&ca).expect("the written PEM certificate");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    assert!(s.note.contains(&format!("sha256 {}", hex.join(":"))), "{}", s.note);
    assert!(s.note.contains("localhost") && s.note.contains(ca.to_str().unwrap()), "{}", s.note);
    // No --root: the server serves perf.
    let out = run(&[
        "perf",
        "--server",
        &format!("localhost:{}", s.port),
        "--ca",
        ca.to_str().unwrap(),
        "--download",
        "1M",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["end"]["sum"]["bytes_received"], 1 << 20);
    assert!(v["end"]["server"].is_null(), "another process's counters are not ours to show");
    drop(s);
}

#[test]
fn one_info_line_per_connection() {
    let dir = temp_dir("infolog");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/a.txt"), b"hello").unwrap();
    let mut s = self_signed(
        "127.0.0.1:0",
        &["--root", dir.join("www").to_str().unwrap()],
        &[("RUST_LOG", "peregrine=info")],
    );
    for _ in 0..3 {
        let out = run(&[
            "client",
            &format!("https://127.0.0.1:{}/a.txt", s.port),
            "--insecure",
            "--output",
            dir.join("out").to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    std::thread::sleep(Duration::from_millis(500));
    let kill = Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status();
    assert!(kill.unwrap().success());
    let mut stderr = String::new();
    use std::io::Read;
    s.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let conn_lines: Vec<&str> =
        stderr.lines().filter(|l| l.contains("INFO") && l.contains("connection")).collect();
    assert_eq!(conn_lines.len(), 3, "one line per connection: {stderr}");
    for l in conn_lines {
        assert!(l.contains("peer=127.0.0.1:") && l.contains("alpn=\"hq-interop\""), "{l}");
        assert!(l.contains("bytes_sent=") && l.contains("end="), "{l}");
    }
}

#[test]
fn certificate_errors_name_the_ca_and_the_name() {
    let server = start_server("certerr", &[("a.txt", b"x".to_vec())], &[]).unwrap();
    // A CA that did not issue the server's certificate.
    let other = temp_dir("otherca").join("other.pem");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&other, ck.cert.pem()).unwrap();
    let out_dir = temp_dir("certerr-out");
    let url = format!("https://localhost:{}/a.txt", server.port());
    let err = one_error_line(&run(&[
        "client",
        &url,
        "--ca",
        other.to_str().unwrap(),
        "--output",
        out_dir.to_str().unwrap(),
    ]));
    assert!(err.contains("not issued by a CA in") && err.contains("other.pem"), "{err}");
    // The right CA, the wrong name: the certificate is for localhost only.
    let url = format!("https://127.0.0.1:{}/a.txt", server.port());
    let err = one_error_line(&run(&[
        "client",
        &url,
        "--ca",
        server.cert().to_str().unwrap(),
        "--output",
        out_dir.to_str().unwrap(),
    ]));
    assert!(err.contains("not valid for name") && err.contains("127.0.0.1"), "{err}");
    assert!(err.contains("localhost"), "the names it is valid for: {err}");
    // A file the server does not have.
    let url = format!("https://localhost:{}/nope.txt", server.port());
    let err = one_error_line(&run(&[
        "client",
        &url,
        "--ca",
        server.cert().to_str().unwrap(),
        "--output",
        out_dir.to_str().unwrap(),
    ]));
    assert!(
        err.contains("not found: the server has no such file") && err.contains("nope.txt"),
        "{err}"
    );
}

#[test]
fn key_and_certificate_file_errors_say_what_is_wrong() {
    let dir = temp_dir("keyerr");
    let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("a.pem"), a.cert.pem()).unwrap();
    std::fs::write(dir.join("b.key"), b.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.join("a.der"), a.key_pair.serialize_der()).unwrap();
    let server = |cert: &str, key: &str| {
        let (c, k) = (dir.join(cert), dir.join(key));
        one_error_line(&run(&[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            c.to_str().unwrap(),
            "--key",
            k.to_str().unwrap(),
        ]))
    };
    let err = server("a.pem", "b.key");
    assert!(
        err.contains("does not match") && err.contains("b.key") && err.contains("a.pem"),
        "{err}"
    );
    let err = server("a.pem", "a.der");
    assert!(err.contains("no private key in PEM form") && err.contains("looks like DER"), "{err}");
    let err = server("missing.pem", "b.key");
    assert!(
        err.contains("--cert") && err.contains("missing.pem") && err.contains("No such file"),
        "{err}"
    );
    let err = server("b.key", "b.key");
    assert!(err.contains("--cert") && err.contains("no -----BEGIN CERTIFICATE-----"), "{err}");
}

#[test]
fn flag_typos_get_a_suggestion() {
    let err = one_error_line(&run(&["perf", "--donwload", "1M"]));
    assert!(err.contains("a similar argument exists: '--download'"), "{err}");
    let err = one_error_line(&run(&["sever", "--listen", "127.0.0.1:0"]));
    assert!(err.contains("'server'"), "{err}");
}
