//! Shared helpers for the Peregrine benchmarks, also used by the `peregrine` CLI.
//!
//! - [`udp_loopback`]: datapath throughput over loopback with a sender and a receiver
//!   thread ([`udp_loopback_throughput`]), each side on the UDP or the io_uring backend
//!   ([`Backend`]).
//! - [`quinn_perf`]: a perf-protocol (draft-banks-quic-performance) server and client on
//!   quinn, for interop tests and side-by-side benchmarks against `peregrine perf`.

#![forbid(unsafe_code)]

pub mod quinn_perf;
pub mod udp_loopback;

pub use udp_loopback::{
    udp_loopback_throughput, Backend, LoopbackBenchConfig, LoopbackBenchResult,
};
