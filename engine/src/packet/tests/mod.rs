//! Packet-layer tests: RFC vectors, error cases, round-trip and never-panic properties.

mod coalescing;
mod errors;
mod props;
mod vectors;
mod with_crypto;

use crate::cid::ConnectionId;

/// Decodes a hex string (test vectors).
pub(super) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A connection ID from hex.
pub(super) fn cid(s: &str) -> ConnectionId {
    ConnectionId::new(&hex(s)).unwrap()
}
