//! Shared helpers for the Peregrine benchmarks. (The loopback datapath driver they and the
//! `peregrine` CLI use is `peregrine_datapath::loopback`.)
//!
//! - [`quinn_perf`]: a perf-protocol (draft-banks-quic-performance) server and client on
//!   quinn, for interop tests and side-by-side benchmarks against `peregrine perf`.

#![forbid(unsafe_code)]

pub mod quinn_perf;
