//! The `peregrine` command: serve, fetch, benchmark and tune.
//!
//! Today it runs the raw datapath benchmark (`datapath-bench`); QUIC `perf`, `server` and
//! `client` arrive with the runtime. Every user error ends in a one-line message on stderr and
//! a non-zero exit code, never a panic.

#![forbid(unsafe_code)]

mod certs;
mod client;
mod config;
mod config_cmd;
mod datapath_bench;
mod metrics;
mod metrics_cmd;
mod perf;
mod report;
mod server;
mod stress;
mod tune;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Peregrine: a kernel-bypass, high-throughput QUIC endpoint.
#[derive(Parser, Debug)]
#[command(name = "peregrine", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Raw UDP datapath throughput over loopback, with and without GSO/GRO (no QUIC).
    DatapathBench(datapath_bench::Args),
    /// Validate settings from --config FILE and flags; --print shows the effective TOML.
    Config(Box<config_cmd::Args>),
    /// Serve process statistics in the Prometheus text format on GET /metrics for a while.
    Metrics(metrics_cmd::Args),
    /// Inspect a NIC (driver, queues, RSS, offloads, IRQs, NUMA, XDP) and recommend a
    /// worker/core/queue map with the server command line.
    Tune(tune::Args),
    /// Serve files (ALPN hq-interop) and the perf protocol (ALPN perf) until SIGINT/SIGTERM.
    Server(server::Args),
    /// Fetch https:// URLs over one QUIC connection into a directory.
    Client(client::Args),
    /// QUIC throughput benchmark (perf protocol), in-process or against --server.
    Perf(perf::Args),
    /// Random API calls from several threads against an in-process server over a faulty
    /// loopback link, then the invariant, handle and buffer checks.
    Stress(stress::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return report_clap_error(e),
    };
    let result = match cli.command {
        Command::DatapathBench(args) => datapath_bench::run(&args),
        Command::Config(args) => config_cmd::run(&args),
        Command::Metrics(args) => metrics_cmd::run(&args),
        Command::Tune(args) => tune::run(&args),
        Command::Server(args) => server::run(&args),
        Command::Client(args) => client::run(&args),
        Command::Perf(args) => perf::run(&args),
        Command::Stress(args) => stress::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("peregrine: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Prints help and version as clap renders them; every other parse error as one line.
fn report_clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = e.render().to_string();
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("peregrine: {line} (see --help)");
            ExitCode::from(2)
        }
    }
}
