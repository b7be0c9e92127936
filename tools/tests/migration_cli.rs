//! Client-initiated migration over real UDP on loopback with the `peregrine` binaries:
//! `peregrine client --migrate-after` moves its socket to a new port mid-download, the new
//! path is validated, and the file arrives byte-exact.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

mod support;

use support::{one_error_line, pattern, peregrine, start_server, temp_dir};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn client_migrates_mid_download_and_the_file_is_exact() {
    let data = pattern(8_000_000, 3);
    let server = start_server("migrate", &[("big.bin", data.clone())], &[]).unwrap();
    let out = temp_dir("migrate-out");
    let url = format!("https://localhost:{}/big.bin", server.port());
    let ca = server.cert();
    let o = peregrine(
        &[
            "client",
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--migrate-after",
            "256K",
        ],
        LIMIT,
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "client failed: {err}");
    assert!(err.contains("migrated to local port"), "{err}");
    assert!(
        err.contains("migration: 1 started, 1 path(s) validated, 0 validation(s) failed"),
        "{err}"
    );
    let got = std::fs::read(out.join("big.bin")).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the file differs");
}

#[test]
fn migrate_after_is_refused_on_a_server() {
    let o = peregrine(
        &["server", "--self-signed", "--listen", "127.0.0.1:0", "--migrate-after", "1s"],
        LIMIT,
    );
    let err = one_error_line(&o);
    assert!(err.contains("--migrate-after"), "{err}");
}

#[test]
fn preferred_address_the_server_cannot_receive_on_is_refused() {
    let o = peregrine(
        &[
            "server",
            "--self-signed",
            "--listen",
            "127.0.0.1:0",
            "--preferred-address",
            "127.0.0.2:4433",
        ],
        LIMIT,
    );
    let err = one_error_line(&o);
    assert!(err.contains("--preferred-address") && err.contains("same port"), "{err}");
}
