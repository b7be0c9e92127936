//! Shared helpers for the Peregrine benchmarks, also used by the `peregrine` CLI.
//!
//! - [`udp_loopback`]: datapath throughput over loopback with a sender and a receiver
//!   thread ([`udp_loopback_throughput`]), each side on the UDP or the io_uring backend
//!   ([`Backend`]).

#![forbid(unsafe_code)]

pub mod udp_loopback;

pub use udp_loopback::{
    udp_loopback_throughput, Backend, LoopbackBenchConfig, LoopbackBenchResult,
};
