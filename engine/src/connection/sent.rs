//! What each sent packet carried, kept with it in the loss detector so an acknowledgment can
//! release it and a loss can queue it again. The item vectors are recycled through a pool, so
//! steady-state sending allocates nothing per packet.

use crate::recovery::SpaceId;
use crate::streams::{ControlFrame, StreamId};

/// One retransmittable thing a packet carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retx {
    /// STREAM data `offset..offset+len` (and the FIN) of `id`: the bytes stay in the stream.
    Stream {
        /// The stream.
        id: StreamId,
        /// First byte.
        offset: u64,
        /// Bytes.
        len: u64,
        /// FIN bit.
        fin: bool,
    },
    /// CRYPTO data of the packet's space.
    Crypto {
        /// Offset.
        offset: u64,
        /// Bytes.
        len: u64,
    },
    /// A control frame produced by the stream manager.
    Control(ControlFrame),
    /// HANDSHAKE_DONE.
    HandshakeDone,
    /// NEW_TOKEN (the connection keeps the token until it is acknowledged).
    NewToken,
    /// NEW_CONNECTION_ID with this sequence number.
    NewCid(u64),
    /// RETIRE_CONNECTION_ID with this sequence number.
    RetireCid(u64),
    /// PATH_CHALLENGE with this data.
    PathChallenge([u8; 8]),
    /// ACK_FREQUENCY with this Sequence Number.
    AckFrequency(u64),
}

/// The payload the loss detector keeps per sent packet.
#[derive(Debug)]
pub struct SentFrames {
    /// The packet number space the packet was sent in.
    pub space: SpaceId,
    /// Retransmittable items.
    pub items: Vec<Retx>,
    /// Largest Acknowledged of the ACK frame this packet carried.
    pub ack_largest: Option<u64>,
    /// The packet is a PMTU probe (PING + PADDING; its loss is no congestion signal).
    pub mtu_probe: bool,
}

/// Recycled item vectors.
#[derive(Debug, Default)]
pub struct RetxPool {
    free: Vec<Vec<Retx>>,
}

/// Vectors kept for reuse at most.
const POOL_LIMIT: usize = 4096;

impl RetxPool {
    /// An empty vector, reused when possible.
    pub fn take(&mut self) -> Vec<Retx> {
        self.free.pop().unwrap_or_default()
    }

    /// Returns a vector for reuse.
    pub fn put(&mut self, mut v: Vec<Retx>) {
        if self.free.len() < POOL_LIMIT && v.capacity() > 0 {
            v.clear();
            self.free.push(v);
        }
    }
}
