//! The quinn perf peer as a command, the counterpart of `peregrine perf` / `peregrine server`
//! for side-by-side runs (scripts/compare_quinn.sh):
//!
//! ```sh
//! quinn_perf gen-cert --cert C.pem --key K.pem
//! quinn_perf server --listen 127.0.0.1:4433 [--cert C.pem --key K.pem | --cert-out C.pem]
//! quinn_perf client --server 127.0.0.1:4433 (--ca C.pem | --insecure)
//!     [--download N] [--upload N] [--duration 5s] [--streams N] [--connections N]
//!     [--rps [--request-size N] [--response-size N]] [--handshakes] [--hold] [--json]
//! ```
//!
//! The server prints `listening on ADDR`, serves until SIGINT/SIGTERM, then prints its
//! counters as one JSON line. The client's `--json` prints one object with the keys of
//! `peregrine perf --json`.

// A command: it reads the wall clock for its shutdown poll.
#![allow(clippy::disallowed_methods)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use peregrine_benches::quinn_perf::client::{self, ClientConfig, Mode};
use peregrine_benches::quinn_perf::server::PerfServer;
use peregrine_benches::quinn_perf::tls::{ClientTrust, ServerCert};
use peregrine_units::{parse_duration, parse_size};

/// A draft-banks-quic-performance peer on quinn.
#[derive(Parser, Debug)]
#[command(name = "quinn_perf")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write a self-signed certificate for "localhost" and 127.0.0.1 and its key, as PEM.
    GenCert {
        /// Certificate output file.
        #[arg(long)]
        cert: PathBuf,
        /// Private key output file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Serve the perf protocol until SIGINT/SIGTERM.
    Server {
        /// Address to listen on (port 0 picks one; printed on stdout).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Certificate chain, PEM (with --key); otherwise one is generated.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// Private key, PEM.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// Write the generated certificate here as PEM (for a client's --ca).
        #[arg(long, conflicts_with = "cert")]
        cert_out: Option<PathBuf>,
        /// tokio worker threads.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
    },
    /// Measure against a perf server.
    Client {
        /// Perf server HOST:PORT.
        #[arg(long)]
        server: String,
        /// CA certificate, PEM.
        #[arg(long, conflicts_with = "insecure")]
        ca: Option<PathBuf>,
        /// Do not authenticate the server.
        #[arg(long)]
        insecure: bool,
        /// Bytes each stream downloads (K, M, G suffixes: powers of 1024).
        #[arg(long, value_parser = parse_size)]
        download: Option<u64>,
        /// Bytes each stream uploads.
        #[arg(long, value_parser = parse_size)]
        upload: Option<u64>,
        /// Download for this long per stream when no sizes are given.
        #[arg(long, value_parser = parse_duration, default_value = "5s")]
        duration: Duration,
        /// Concurrent streams per connection.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
        streams: u32,
        /// Connections (up to 1024 with streams; up to 20000 with --hold).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20_000))]
        connections: u32,
        /// Request/response mode for --duration.
        #[arg(long, conflicts_with_all = ["download", "upload"])]
        rps: bool,
        /// --rps: bytes uploaded per request.
        #[arg(long, value_parser = parse_size, default_value = "64")]
        request_size: u64,
        /// --rps: bytes downloaded per request.
        #[arg(long, value_parser = parse_size, default_value = "1K")]
        response_size: u64,
        /// Handshake mode for --duration: --connections tasks connect and close back to back.
        #[arg(long, conflicts_with_all = ["download", "upload", "rps"])]
        handshakes: bool,
        /// Hold mode: open --connections idle connections (the line `holding N connections`
        /// on stderr once they are up), keep them for --duration, then report how many were
        /// still open; fails if a handshake fails.
        #[arg(long, conflicts_with_all = ["download", "upload", "rps", "handshakes"])]
        hold: bool,
        /// tokio worker threads.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("quinn_perf: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::GenCert { cert, key } => {
            let ck =
                rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                    .map_err(|e| format!("generating a certificate: {e}"))?;
            std::fs::write(&cert, ck.cert.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
            std::fs::write(&key, ck.key_pair.serialize_pem())
                .map_err(|e| format!("{}: {e}", key.display()))
        }
        Cmd::Server { listen, cert, key, cert_out, threads } => {
            let c = match (cert, key) {
                (Some(c), Some(k)) => ServerCert::from_pem_files(&c, &k)?,
                _ => ServerCert::generate()?,
            };
            if let Some(p) = cert_out {
                std::fs::write(&p, &c.chain_pem).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
            }
            let server = PerfServer::start(listen, c, usize::from(threads))?;
            println!("listening on {}", server.local_addr());
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            println!("{}", server.stop(Duration::from_secs(2)).to_json());
            Ok(())
        }
        Cmd::Client {
            server,
            ca,
            insecure,
            download,
            upload,
            duration,
            streams,
            connections,
            rps,
            request_size,
            response_size,
            handshakes,
            hold,
            threads,
            json,
        } => {
            if !hold && connections > 1024 {
                return Err(format!("--connections {connections}: at most 1024 without --hold"));
            }
            let (host, port) = server
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("--server '{server}': expected HOST:PORT"))?;
            let addrs: Vec<SocketAddr> = (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("resolving {host}: {e}"))?
                .collect();
            let addr = addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| format!("resolving {host}: no address"))?;
            let trust = match (ca, insecure) {
                (Some(p), _) => ClientTrust::CaFile(p),
                (None, true) => ClientTrust::Insecure,
                (None, false) => return Err("--server needs --ca PEM or --insecure".into()),
            };
            let mode = match (hold, handshakes, rps, upload, download) {
                (true, ..) => Mode::Hold,
                (_, true, ..) => Mode::Handshakes,
                (_, _, true, ..) => Mode::Rps { request: request_size, response: response_size },
                (_, _, _, None, None) => Mode::Duration,
                (_, _, _, u, d) => Mode::Sizes { upload: u.unwrap_or(0), download: d.unwrap_or(0) },
            };
            let cfg = ClientConfig {
                server: addr,
                server_name: host.to_owned(),
                trust,
                mode,
                duration,
                connections,
                streams,
                threads: usize::from(threads),
            };
            let s = client::run(&cfg)?;
            if json {
                println!("{}", s.to_json());
            } else {
                println!("{}", s.text());
            }
            Ok(())
        }
    }
}
