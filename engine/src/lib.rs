//! Peregrine's QUIC v1 engine.
//!
//! Layers, bottom up:
//! - [`varint`], [`coding`]: variable-length integers and bounds-checked readers/writers.
//! - [`cid`], [`version`]: connection IDs, reset tokens and version numbers.
//! - [`error`]: transport error codes and the internal protocol error.
//! - [`packet`]: long and short headers, packet numbers, coalesced datagrams, Retry and Version
//!   Negotiation.
//! - [`frame`]: every RFC 9000 frame type plus DATAGRAM (RFC 9221).
//! - [`transport_params`]: transport parameters (RFC 9000 §18).
//! - [`crypto`]: packet protection (AEAD and header protection on aws-lc-rs), Initial secrets,
//!   key update, and TLS 1.3 through rustls's QUIC API.
//! - [`streams`]: stream state machines, reassembly, flow control with window auto-tuning,
//!   stream limits and the send scheduler (RFC 9000 §2-§4).
//! - [`recovery`], [`congestion`]: RTT estimation, ACK tracking, loss detection, PTO and ECN
//!   validation (RFC 9002 §5-6); NewReno, CUBIC with HyStart++, and pacing (RFC 9002 §7).
//! - [`connection`]: the connection state machine (RFC 9000/9001/9002) tying them together,
//!   sans-IO and quinn-proto shaped: `handle_datagram`, `poll_transmit`, timers, events.
//! - [`endpoint`]: one worker's sans-IO `Endpoint`, owning its connections (one identity each,
//!   the `ConnectionHandle`), their timers and interests, and the packet router inside it:
//!   QUIC-LB connection IDs, Version Negotiation, Retry and address validation tokens,
//!   stateless resets.
//! - [`scheduler`]: the per-worker send scheduler (fair round-robin GSO batches) and the
//!   atomic close flag.
//! - [`worker`]: pinned worker threads (or [`worker::Driver`]s stepped on virtual time) owning a
//!   datapath queue and an `Endpoint`, running their connections' applications; the only
//!   module that reads the clock.
//! - [`app`]: applications that run on the worker owning their connection: a `Service` per
//!   worker hands out a `ConnectionHandler` per connection, called with a `ConnCtx`.
//! - [`api`]: `Endpoint`, `Connection`, `SendStream`, `RecvStream` handles for applications
//!   with their own threads, async and blocking, layered on the same workers.
//! - [`sim`]: whole endpoints on the simulated network, stepped on virtual time.
//!
//! The core is sans-IO: it never reads the clock or touches a socket; time comes in as an argument.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod cid;
pub mod coding;
pub mod congestion;
pub mod connection;
pub mod crypto;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod fuzz;
pub(crate) mod handoff;
pub mod packet;
pub mod qlog;
pub mod recovery;
pub mod scheduler;
pub mod sim;
pub mod streams;
pub mod transport_params;
pub mod varint;
pub mod version;
pub mod worker;

pub use cid::{ConnectionId, ResetToken};
pub use error::{Error, TransportErrorCode};
pub use varint::VarInt;
