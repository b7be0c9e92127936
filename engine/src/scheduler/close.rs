//! The atomic close flag of one connection (DESIGN.md "The send scheduler and the close flag"):
//! close requested (by the application, from any thread) and, per packet number space, close
//! written (by the owner worker).

use std::sync::atomic::{AtomicU8, Ordering};

use crate::recovery::SpaceId;

/// The application (or the endpoint's shutdown) asked for the connection to close.
const REQUESTED: u8 = 1 << 0;
/// The CONNECTION_CLOSE was written in the Initial space.
const WRITTEN_INITIAL: u8 = 1 << 1;
/// The CONNECTION_CLOSE was written in the Handshake space.
const WRITTEN_HANDSHAKE: u8 = 1 << 2;
/// The CONNECTION_CLOSE was written in the application (1-RTT) space.
const WRITTEN_DATA: u8 = 1 << 3;
/// The close is emitted everywhere it was owed: the flush loop never calls into the connection
/// for it again (only an incoming packet re-arms a rate-limited resend, RFC 9000 §10.2.1).
const EMITTED: u8 = 1 << 4;
/// The connection ended (closed by either side, timed out, reset) — set by the worker.
const ENDED: u8 = 1 << 5;

fn written_bit(space: SpaceId) -> u8 {
    match space {
        SpaceId::Initial => WRITTEN_INITIAL,
        SpaceId::Handshake => WRITTEN_HANDSHAKE,
        SpaceId::Data => WRITTEN_DATA,
    }
}

/// A connection's close state as one atomic byte, shared by its handles and its owner worker.
///
/// Any thread may [`request`](Self::request) a close; only the owner worker marks spaces
/// written, the close emitted, or the connection ended. Reads are lock-free.
#[derive(Debug, Default)]
pub struct CloseFlag(AtomicU8);

impl CloseFlag {
    /// A flag with nothing set.
    pub const fn new() -> Self {
        Self(AtomicU8::new(0))
    }

    /// Records a close request. Returns true for the first request (later ones are no-ops).
    pub fn request(&self) -> bool {
        self.0.fetch_or(REQUESTED, Ordering::AcqRel) & REQUESTED == 0
    }

    /// Whether a close was requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Acquire) & REQUESTED != 0
    }

    /// Records that the CONNECTION_CLOSE went out in `space`. Returns true the first time.
    pub fn mark_written(&self, space: SpaceId) -> bool {
        let bit = written_bit(space);
        self.0.fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// Whether the CONNECTION_CLOSE was written in `space`.
    pub fn is_written(&self, space: SpaceId) -> bool {
        self.0.load(Ordering::Acquire) & written_bit(space) != 0
    }

    /// Per space (Initial, Handshake, Data): whether the close was written there.
    pub fn written(&self) -> [bool; 3] {
        let v = self.0.load(Ordering::Acquire);
        [v & WRITTEN_INITIAL != 0, v & WRITTEN_HANDSHAKE != 0, v & WRITTEN_DATA != 0]
    }

    /// Records that the close is out in every space that needed it.
    pub fn mark_emitted(&self) {
        self.0.fetch_or(EMITTED, Ordering::AcqRel);
    }

    /// Clears "emitted" so that one rate-limited resend may go out (an incoming packet while
    /// closing re-armed the close in the connection).
    pub fn rearm(&self) {
        self.0.fetch_and(!EMITTED, Ordering::AcqRel);
    }

    /// Whether the close is out in every space that needed it.
    pub fn is_emitted(&self) -> bool {
        self.0.load(Ordering::Acquire) & EMITTED != 0
    }

    /// Records that the connection ended (closing, draining or drained).
    pub fn mark_ended(&self) {
        self.0.fetch_or(ENDED, Ordering::AcqRel);
    }

    /// Whether the connection ended.
    pub fn is_ended(&self) -> bool {
        self.0.load(Ordering::Acquire) & ENDED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_independent_and_first_wins() {
        let f = CloseFlag::new();
        assert!(!f.is_requested());
        assert!(f.request());
        assert!(!f.request());
        assert!(f.mark_written(SpaceId::Handshake));
        assert!(!f.mark_written(SpaceId::Handshake));
        assert_eq!(f.written(), [false, true, false]);
        assert!(!f.is_emitted());
        f.mark_emitted();
        assert!(f.is_emitted());
        f.rearm();
        assert!(!f.is_emitted() && f.is_requested() && f.is_written(SpaceId::Handshake));
        f.mark_ended();
        assert!(f.is_ended());
    }
}
