//! `peregrine datapath-bench`: raw UDP loopback throughput through the datapath, GSO/GRO on/off.

use crate::report::{
    series_summary, summary, write_file, Chart, Distribution, Report, Sample, Series,
};
use peregrine_datapath::loopback::{
    udp_loopback_throughput, Backend, LoopbackBenchConfig, LoopbackBenchResult,
};
use std::time::Duration;

/// Arguments of `peregrine datapath-bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Payload size of each datagram in bytes (1..=65507).
    #[arg(long, default_value_t = 1200)]
    payload: usize,
    /// Datagrams per case (the case also stops after --duration).
    #[arg(long, default_value_t = 400_000)]
    datagrams: u64,
    /// Longest time per case: 100ms..=10m, e.g. 3s or 500ms.
    #[arg(long, default_value = "3s", value_parser = parse_case_duration)]
    duration: Duration,
    /// Which cases to run: all, gso-gro, gso, none.
    #[arg(long, default_value = "all")]
    mode: String,
    /// Datapath on both sides: udp (sendmmsg/recvmmsg), uring (io_uring), uring-zc (io_uring
    /// with zero-copy transmit).
    #[arg(long, default_value = "udp")]
    backend: String,
    /// Use ::1 instead of 127.0.0.1.
    #[arg(long)]
    ipv6: bool,
    /// Print one JSON object per case instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a throughput-over-time report to FILE.svg or FILE.html. Each case is then run
    /// a second time, in --slices back-to-back short runs (fresh sockets each), and each slice's
    /// goodput is one point; setup time between slices is not on the time axis. No latency
    /// histogram is recorded (the report says so).
    #[arg(long, value_name = "FILE")]
    report: Option<std::path::PathBuf>,
    /// Slices per case for --report (2..=100); each gets datagrams/slices and duration/slices.
    #[arg(long, default_value_t = 10)]
    slices: u32,
}

/// Parses `--duration`: the one duration syntax, 100ms..=10m.
fn parse_case_duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration_in(s, Duration::from_millis(100), Duration::from_secs(600))
}

/// Runs the selected cases and prints one line (or JSON object) per case.
pub fn run(args: &Args) -> Result<(), String> {
    if args.payload == 0 || args.payload > peregrine_datapath::udp::MAX_UDP_PAYLOAD {
        return Err(format!(
            "--payload must be 1..={} bytes, got {}",
            peregrine_datapath::udp::MAX_UDP_PAYLOAD,
            args.payload
        ));
    }
    if args.datagrams == 0 {
        return Err("--datagrams must be at least 1".into());
    }
    let cases: &[(&str, bool, bool)] = match args.mode.as_str() {
        "all" => &[("gso-gro", true, true), ("gso", true, false), ("none", false, false)],
        "gso-gro" => &[("gso-gro", true, true)],
        "gso" => &[("gso", true, false)],
        "none" => &[("none", false, false)],
        other => return Err(format!("--mode must be all, gso-gro, gso or none, got '{other}'")),
    };
    if !(2..=100).contains(&args.slices) {
        return Err(format!("--slices must be 2..=100, got {}", args.slices));
    }
    if let Some(path) = &args.report {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !["svg", "html", "htm"].contains(&ext.to_ascii_lowercase().as_str()) {
            return Err(format!("--report: '{}' must end in .svg or .html", path.display()));
        }
    }
    let backend: Backend = args
        .backend
        .parse()
        .map_err(|_| format!("--backend must be udp, uring or uring-zc, got '{}'", args.backend))?;
    if !args.json {
        outln!(
            "peregrine datapath-bench: {} backend, {} B UDP payloads over {}, up to {} datagrams or {:.1} s per case",
            backend.name(),
            args.payload,
            if args.ipv6 { "::1" } else { "127.0.0.1" },
            args.datagrams,
            args.duration.as_secs_f64()
        );
    }
    let mut results = Vec::new();
    for &(name, gso, gro) in cases {
        let cfg = LoopbackBenchConfig {
            payload: args.payload,
            gso,
            gro,
            datagrams: args.datagrams,
            duration: args.duration,
            ipv6: args.ipv6,
            tx_backend: backend,
            rx_backend: backend,
            ..LoopbackBenchConfig::default()
        };
        let r = udp_loopback_throughput(&cfg).map_err(|e| format!("case {name}: {e}"))?;
        if args.json {
            outln!("{}", to_json(name, &r));
        } else {
            print_case(name, &r);
        }
        results.push((name, r));
    }
    if !args.json && results.len() > 1 {
        let base = results.last().map(|(_, r)| r.gbit_per_sec).unwrap_or(0.0);
        if base > 0.0 {
            for (name, r) in &results[..results.len() - 1] {
                outln!("  {name:>8} / none: {:.2}x", r.gbit_per_sec / base);
            }
        }
    }
    if let Some((name, r)) = results.iter().find(|(_, r)| r.received == 0) {
        return Err(format!("case {name}: nothing was received ({} sent)", r.sent));
    }
    if let Some(path) = &args.report {
        write_report(args, backend, &results, path)?;
    }
    Ok(())
}

/// Re-runs every case in `--slices` short runs and writes the time series as a report.
fn write_report(
    args: &Args,
    backend: Backend,
    results: &[(&str, LoopbackBenchResult)],
    path: &std::path::Path,
) -> Result<(), String> {
    let mut series = Vec::new();
    for (name, full) in results {
        let mut cfg = full.config.clone();
        cfg.datagrams = (args.datagrams / u64::from(args.slices)).max(1);
        cfg.duration = args.duration / args.slices;
        let mut t = 0.0;
        let mut samples = Vec::new();
        for i in 0..args.slices {
            let r =
                udp_loopback_throughput(&cfg).map_err(|e| format!("case {name} slice {i}: {e}"))?;
            let dt = r.elapsed.as_secs_f64().max(1e-9);
            t += dt;
            samples.push(Sample { t, dt, bytes: r.bytes_received, packets: r.received });
        }
        series.push(Series { name: (*name).to_owned(), samples });
    }
    let report = Report {
        title: format!(
            "peregrine datapath-bench: {} backend, {} B payloads, {} slices per case",
            backend.name(),
            args.payload,
            args.slices
        ),
        charts: vec![Chart::throughput(&series)],
        summary: series_summary(&series),
        latency: Some(Distribution {
            title: "datagram latency".into(),
            histogram: Err(
                "datapath-bench measures throughput only, no per-datagram latency".into()
            ),
        }),
        notes: vec![format!(
            "each point is one separate run of {} datagrams (or {:.2} s) with fresh sockets; \
             setup between runs is not on the time axis",
            (args.datagrams / u64::from(args.slices)).max(1),
            (args.duration / args.slices).as_secs_f64()
        )],
    };
    write_file(path, &report)?;
    if !args.json {
        out!("{}", summary(&report));
        outln!("report written to {}", path.display());
    }
    Ok(())
}

fn print_case(name: &str, r: &LoopbackBenchResult) {
    outln!(
        "  {name:>8}: {:>6.2} Gbit/s  {:>9.0} datagrams/s  sent {} received {} lost {} corrupt {}  \
         {:.1} datagrams per rx buffer  syscalls tx {} rx {}",
        r.gbit_per_sec,
        r.packets_per_sec,
        r.sent,
        r.received,
        r.lost,
        r.corrupt,
        r.received as f64 / r.rx_buffers.max(1) as f64,
        r.tx_syscalls,
        r.rx_syscalls,
    );
    for (side, caps) in [("tx", &r.tx_caps), ("rx", &r.rx_caps)] {
        for m in &caps.missing {
            outln!("            {side} capability missing: {m}");
        }
    }
}

fn to_json(name: &str, r: &LoopbackBenchResult) -> serde_json::Value {
    serde_json::json!({
        "case": name,
        "backend": r.config.tx_backend.name(),
        "payload": r.config.payload,
        "gso": r.tx_caps.gso,
        "gro": r.rx_caps.gro,
        "elapsed_s": r.elapsed.as_secs_f64(),
        "sent": r.sent,
        "received": r.received,
        "lost": r.lost,
        "corrupt": r.corrupt,
        "reordered": r.reordered,
        "bytes_received": r.bytes_received,
        "packets_per_sec": r.packets_per_sec,
        "gbit_per_sec": r.gbit_per_sec,
        "tx_syscalls": r.tx_syscalls,
        "rx_syscalls": r.rx_syscalls,
        "missing": r.tx_caps.missing.iter().chain(&r.rx_caps.missing).collect::<Vec<_>>(),
    })
}
