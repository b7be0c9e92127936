//! What the CLI tests share: the binary, fresh temporary directories, runs bounded in time,
//! the one-line error check, test payloads, and a `peregrine server` process.
//!
//! Each test crate (`tools/tests/*.rs`) includes this with `mod support;` and uses a subset;
//! the benches crate's quinn interop test (`benches/tests/perf_quinn.rs`) includes it by path.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods, dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `peregrine` binary under test: Cargo's for the CLI's own tests; for the benches crate's
/// tests, the `peregrine` of the same target directory and profile that its build script names
/// (built by `cargo test --workspace`; alone, `cargo build -p peregrine` with the same profile
/// first).
pub const BIN: &str = match option_env!("CARGO_BIN_EXE_peregrine") {
    Some(bin) => bin,
    None => match option_env!("PEREGRINE_BIN") {
        Some(bin) => bin,
        None => panic!("neither CARGO_BIN_EXE_peregrine nor PEREGRINE_BIN is set"),
    },
};

/// A fresh, empty directory for `tag`, unique per test crate and process.
pub fn temp_dir(tag: &str) -> PathBuf {
    let crate_name = env!("CARGO_CRATE_NAME");
    let d =
        std::env::temp_dir().join(format!("peregrine-{crate_name}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `cmd` with piped output; kills it and fails the test if it runs longer than `limit`.
/// Both pipes are drained while it runs (a child that writes more than a pipe holds would
/// otherwise block on its write and look hung).
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// `peregrine ARGS`, bounded by `limit`.
pub fn peregrine(args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_bounded(cmd, limit)
}

/// Checks that `out` is a failure with exactly one `peregrine: ` line on stderr and no panic;
/// returns that line.
pub fn one_error_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "must fail; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line, got {err:?}");
    assert!(err.starts_with("peregrine: ") && !err.contains("panicked"), "{err}");
    err
}

/// `n` bytes of a pattern that differs by `seed` and does not repeat every 256 bytes.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed ^ (i >> 9) as u8)).collect()
}

/// A running `peregrine server`; killed on drop.
pub struct ServerProc {
    pub child: Child,
    /// The address it printed (`listening on ADDR`).
    pub addr: String,
    /// The metrics endpoint (host:port) when started with `--metrics`.
    pub metrics: Option<String>,
    /// Its directory: `cert.pem`, `key.pem`, and the served root `www/`.
    pub dir: PathBuf,
    /// Its stdout lines after the start-up ones (the reader keeps draining, so the server
    /// never writes into a closed pipe).
    pub lines: mpsc::Receiver<String>,
}

impl ServerProc {
    /// The port it listens on.
    pub fn port(&self) -> &str {
        self.addr.rsplit(':').next().unwrap()
    }

    /// Its certificate (self-signed for `localhost`): the client's `--ca`.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a child's `stdout`, read by a thread until EOF or until the receiver is
/// dropped (the child never blocks on a full pipe while the receiver lives).
pub fn lines(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `peregrine server` on 127.0.0.1 serving `files` with a fresh self-signed
/// certificate and `extra` flags; `Err` with its stderr when it refuses to start.
pub fn start_server(
    tag: &str,
    files: &[(&str, Vec<u8>)],
    extra: &[&str],
) -> Result<ServerProc, String> {
    let dir = temp_dir(tag);
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    for (name, data) in files {
        std::fs::write(root.join(name), data).unwrap();
    }
    let mut child = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--cert"])
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .arg("--root")
        .arg(&root)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(child.stdout.take().unwrap());
    // stderr is drained too (a server that logs a lot must never block on a full pipe); all
    // of it arrives when the server exits.
    let mut stderr = child.stderr.take().unwrap();
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        let _ = etx.send(err);
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(erx.recv_timeout(Duration::from_secs(5)).unwrap_or_default());
    };
    let addr = line.strip_prefix("listening on ").expect("listening line").trim().to_owned();
    let metrics = if extra.contains(&"--metrics") {
        let l = rx.recv_timeout(Duration::from_secs(5)).expect("metrics line");
        Some(l.split("http://").nth(1).unwrap().trim_end_matches("/metrics").to_owned())
    } else {
        None
    };
    Ok(ServerProc { child, addr, metrics, dir, lines: rx })
}
