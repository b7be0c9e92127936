//! The optional per-datagram trace of the simulated network (what happened to each datagram).

use std::net::SocketAddr;
use std::time::Duration;

use super::link::LinkDrop;
use crate::Ecn;

/// What the network did with one datagram (one GSO segment), recorded when it was sent.
///
/// Times are virtual durations since the network started, so traces of two networks compare
/// equal when they did the same thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Network-wide number of the datagram, in send order from 0.
    pub id: u64,
    /// When it was sent.
    pub sent_at: Duration,
    /// The sending port's bound address.
    pub from: SocketAddr,
    /// The source address the receiver sees (differs from `from` after a rebinding).
    pub src: SocketAddr,
    /// The destination it was addressed to.
    pub dst: SocketAddr,
    /// UDP payload length.
    pub len: usize,
    /// Dropped, or when and how it arrives.
    pub fate: Fate,
}

/// The outcome of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The network dropped it.
    Dropped(LinkDrop),
    /// It becomes receivable at `at` (a duplicate, if any, right after it).
    Delivered {
        /// Arrival, as virtual time since the start.
        at: Duration,
        /// ECN codepoint on arrival.
        ecn: Ecn,
        /// One bit was flipped.
        corrupted: bool,
        /// It was held back so that later datagrams overtake it.
        reordered: bool,
        /// It arrives twice.
        duplicated: bool,
        /// FNV-1a hash of the payload as delivered (after any corruption).
        digest: u64,
    },
}

/// 64-bit FNV-1a: a stable (version-independent) hash for digests and per-link random streams.
pub(crate) fn fnv1a(chunks: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in chunks {
        for &b in *chunk {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
