//! Shared helpers for the Peregrine benchmarks, also used by the `peregrine` CLI.
//!
//! - [`udp_loopback`]: UDP datapath throughput over loopback with a sender and a receiver
//!   thread ([`udp_loopback_throughput`]).

pub mod udp_loopback;

pub use udp_loopback::{udp_loopback_throughput, LoopbackBenchConfig, LoopbackBenchResult};
