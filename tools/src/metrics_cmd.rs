//! `peregrine metrics`: serve this process's statistics in the Prometheus format for a while.
//!
//! Process statistics only; `server --metrics` and `perf --metrics` add the endpoint, worker,
//! scheduler and datapath counters.

use crate::config::parse_duration_in;
use crate::metrics::{process_metrics, Exposition, MetricsServer, Source};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `peregrine metrics`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to serve `GET /metrics` on (port 0 picks one; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: String,
    /// How long to serve, e.g. 30s or 500ms (1ms..=24h).
    #[arg(long, default_value = "60s")]
    duration: String,
}

/// Serves until `--duration` has passed.
pub fn run(args: &Args) -> Result<(), String> {
    let addr: SocketAddr = args
        .listen
        .parse()
        .map_err(|_| format!("--listen: '{}' is not an address with a port", args.listen))?;
    let d =
        parse_duration_in(&args.duration, Duration::from_millis(1), Duration::from_secs(86_400))
            .map_err(|e| format!("--duration: {e}"))?;
    let source: Source = Arc::new(|| {
        let mut e = Exposition::new();
        e.gauge("peregrine_up", "1 while the peregrine process serves metrics.", &[], 1.0);
        process_metrics(&mut e);
        e.render()
    });
    let server = MetricsServer::start(addr, source).map_err(|e| format!("--listen {addr}: {e}"))?;
    outln!("serving http://{}/metrics for {}", server.local_addr(), args.duration);
    let _ = std::io::stdout().flush();
    std::thread::sleep(d);
    server.stop();
    Ok(())
}
