//! In-process interop between Peregrine's sans-IO QUIC connection and quinn-proto, an
//! independent implementation, over Peregrine's simulated network (`peregrine_datapath::sim`)
//! on virtual time.
//!
//! Layout:
//! - [`driver`]: the [`driver::SansIo`] trait and the [`driver::Pair`] loop (timers, delivery,
//!   application logic, transmits, clock).
//! - [`tap`]: a wire tap (datagram counts, key-phase bits unmasked with the logged secrets).
//! - [`certs`]: rcgen CA + leaf, quinn-proto TLS configs (ALPN `hq-interop`).
//! - [`app`]: the [`app::Peer`] trait the scenarios use; [`quinn_peer`]: quinn-proto behind it.
//! - [`scenarios`]: handshake, multi-stream transfer, waiting for the end.
//! - [`setup`]: what a test varies (loss, ALPN, trust, idle timeout) and the pair builders.
//! - [`cases`], [`cases_more`], [`cases_path`], [`cases_streams`]: the test cases, generic
//!   over the pairing; `cases::interop_cases!` instantiates them for one pairing.
//! - [`peregrine_peer`]: Peregrine's `Connection` behind the same traits.
//! - [`quinn_self`]: quinn-proto against itself, the harness's self-check.
//! - [`peregrine_client`], [`peregrine_server`]: the interop suites, both directions.
//! - [`datagrams`]: DATAGRAM frames (RFC 9221) both ways with loss, both roles.
//! - [`migration`]: a Peregrine client migrating to a new address, and moving to a
//!   quinn-proto server's preferred address.
//! - [`ack_frequency`]: the ACK frequency extension (draft-ietf-quic-ack-frequency) with
//!   quinn-proto, each side asking the other.
//!
//! Every pairing runs the same cases, so a case that fails only where Peregrine is a side
//! points at Peregrine, and one that fails in [`quinn_self`] too points at the harness.
//! Cases that need a quinn-proto server (Retry, stateless reset, Version Negotiation, path
//! validation after NAT rebinding) are written out in the suites that have one.
//!
//! Run: `cargo test -p peregrine-engine --test interop --release` (about 20 s in debug).
//! `-- --nocapture` prints per-transfer counters (virtual time, datagrams, GSO trains, losses,
//! each side's own statistics). `PEREGRINE_INTEROP_SEEDS=N` makes `seed_sweep` try N loss
//! patterns instead of 24.

mod ack_frequency;
mod app;
mod cases;
mod cases_more;
mod cases_path;
mod cases_streams;
mod certs;
mod datagrams;
mod driver;
mod migration;
mod peregrine_client;
mod peregrine_peer;
mod peregrine_server;
mod quinn_peer;
mod quinn_self;
mod scenarios;
mod setup;
mod tap;
