//! The `peregrine` command: serve, fetch, benchmark and tune.
//!
//! `server`, `client` and `perf` run QUIC endpoints built from the settings (`config/`) by
//! `endpoint.rs`; `tune`, `config`, `metrics` and `datapath-bench` inspect and measure. Every
//! user error ends in a one-line message on stderr and a non-zero exit code, never a panic.

#![forbid(unsafe_code)]

/// `println!` for command output: a closed stdout (`peregrine perf | head`) ends the process
/// quietly instead of panicking, as `println!` would.
macro_rules! outln {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// A best-effort line on stdout for long-running commands: a closed stdout is ignored, so a
/// server keeps serving when whoever read its `listening on` line went away.
macro_rules! noteln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($t)*).and_then(|()| out.flush());
    }};
}

/// `print!` with the same closed-stdout rule as `outln!`.
macro_rules! out {
    ($($t:tt)*) => { $crate::write_stdout(format_args!($($t)*)) };
}

mod certs;
mod client;
mod config;
mod config_cmd;
mod datapath_bench;
mod endpoint;
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

/// Writes command output to stdout. When the reader went away (EPIPE: `| head` has what it
/// wanted) the process exits with status 0 at once; any other write error is a one-line
/// message and status 1.
fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("peregrine: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// Structured logs on stderr, filtered by `RUST_LOG` (e.g. `RUST_LOG=peregrine_engine=debug`);
/// nothing is logged without it, so a command's one-line error stays one line.
fn init_logging() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else { return };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_thread_names(true)
        .try_init();
}

fn main() -> ExitCode {
    init_logging();
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
            // clap's "did you mean" for a typo: "  tip: a similar argument exists: '--download'".
            let tip = rendered
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("tip: a similar"))
                .map(|l| format!("; {}", l.trim_start_matches("tip: ")))
                .unwrap_or_default();
            let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
            let mut line = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_owned();
            // "the following required arguments were not provided:" lists them indented below.
            if line.ends_with(':') {
                let items: Vec<&str> =
                    lines.take_while(|l| l.starts_with(' ')).map(str::trim).collect();
                line = format!("{} {}", line, items.join(", "));
            }
            let line = format!("{line}{tip}");
            eprintln!("peregrine: {line} (see --help)");
            // `perf --json` promises one JSON object on stdout, failures included.
            let args: Vec<String> = std::env::args().skip(1).collect();
            if args.first().is_some_and(|c| c == "perf")
                && args.iter().any(|a| a == "--json" || a == "-J")
            {
                outln!("{}", serde_json::json!({ "error": format!("{line} (see --help)") }));
            }
            ExitCode::from(2)
        }
    }
}
