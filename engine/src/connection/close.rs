//! Close as explicit state (DESIGN.md "The send scheduler and the close flag"): which spaces
//! still owe a CONNECTION_CLOSE, the closing-state resend rate limit, and draining.

use std::time::Instant;

use crate::error::TransportErrorCode;
use crate::frame::ConnectionClose;
use crate::recovery::SpaceId;
use crate::varint::VarInt;

/// Longest reason phrase we keep (and send) in a CONNECTION_CLOSE.
pub const MAX_REASON_LEN: usize = 256;

/// The CONNECTION_CLOSE we send: a transport error (0x1c) or an application close (0x1d).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseFrame {
    /// 0x1c.
    Transport {
        /// The error code.
        code: TransportErrorCode,
        /// The frame type that triggered it.
        frame_type: Option<u64>,
        /// The reason phrase.
        reason: Vec<u8>,
    },
    /// 0x1d.
    Application {
        /// The application's code.
        code: VarInt,
        /// The reason phrase.
        reason: Vec<u8>,
    },
}

impl CloseFrame {
    /// The wire frame to write in a packet of `space`: an application close becomes a
    /// transport APPLICATION_ERROR in Initial and Handshake packets.
    pub fn frame(&self, space: SpaceId) -> ConnectionClose<'_> {
        let f = match self {
            CloseFrame::Transport { code, frame_type, reason } => {
                ConnectionClose::transport(*code, *frame_type, reason)
            }
            CloseFrame::Application { code, reason } => ConnectionClose::application(*code, reason),
        };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
        //# A CONNECTION_CLOSE of type 0x1d MUST be replaced by a
        //# CONNECTION_CLOSE of type 0x1c when sending the frame in Initial or
        //# Handshake packets.
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
        //# Endpoints MUST clear the value of the Reason Phrase field and SHOULD
        //# use the APPLICATION_ERROR code when converting to a CONNECTION_CLOSE
        //# of type 0x1c.
        if space == SpaceId::Data {
            f
        } else {
            f.for_handshake_packets()
        }
    }
}

/// Where the connection stands in its shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseState {
    /// Not closing.
    Open,
    /// Closing (RFC 9000 §10.2.1): our CONNECTION_CLOSE must be written in the spaces still
    /// marked `pending`; afterwards it is resent only in answer to incoming packets.
    Closing {
        /// The frame.
        frame: CloseFrame,
        /// Per space (Initial, Handshake, Data): the frame still needs to be written there.
        pending: [bool; 3],
        /// Spaces the close goes to (those with send keys when the close started).
        spaces: [bool; 3],
        /// Packets received while closing.
        received: u64,
        /// Resend when `received` reaches this (doubles after each resend).
        next_resend_at: u64,
        /// End of the closing period.
        deadline: Instant,
    },
    /// Draining (RFC 9000 §10.2.2): the peer closed or reset; nothing is sent.
    Draining {
        /// End of the draining period.
        deadline: Instant,
    },
    /// Closed for good: nothing is sent or processed.
    Drained,
}

impl CloseState {
    /// Starts closing with `frame`, to be written in every space of `spaces`.
    pub fn closing(frame: CloseFrame, spaces: [bool; 3], deadline: Instant) -> Self {
        CloseState::Closing {
            frame,
            pending: spaces,
            spaces,
            received: 0,
            next_resend_at: 1,
            deadline,
        }
    }

    /// Whether the connection is open (not closing, draining or drained).
    pub fn is_open(&self) -> bool {
        matches!(self, CloseState::Open)
    }

    /// Spaces that still owe the CONNECTION_CLOSE frame.
    pub fn pending_spaces(&self) -> [bool; 3] {
        match self {
            CloseState::Closing { pending, .. } => *pending,
            _ => [false; 3],
        }
    }

    /// Records that the close was written in `space`.
    pub fn mark_written(&mut self, space: SpaceId) {
        if let CloseState::Closing { pending, .. } = self {
            pending[space.index()] = false;
        }
    }

    /// A packet arrived while closing: re-arm the close for the spaces it went to, on the
    /// 1st, 2nd, 4th, 8th, ... packet (an exponential rate limit).
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.1
    //# An endpoint in the closing state sends a packet containing a
    //# CONNECTION_CLOSE frame in response to any incoming packet that it
    //# attributes to the connection.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.1
    //# An endpoint SHOULD limit the rate at which it generates packets in
    //# the closing state.
    pub fn on_packet_received(&mut self) {
        if let CloseState::Closing { pending, spaces, received, next_resend_at, .. } = self {
            *received += 1;
            if *received >= *next_resend_at {
                *next_resend_at = next_resend_at.saturating_mul(2);
                *pending = *spaces;
            }
        }
    }

    /// Forgets `space` (its keys were discarded): the close is no longer owed there.
    pub fn drop_space(&mut self, space: SpaceId) {
        if let CloseState::Closing { pending, spaces, .. } = self {
            pending[space.index()] = false;
            spaces[space.index()] = false;
        }
    }

    /// End of the closing or draining period.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            CloseState::Closing { deadline, .. } | CloseState::Draining { deadline } => {
                Some(*deadline)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn now() -> Instant {
        Instant::now()
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.1
    //= type=test
    //# An endpoint SHOULD limit the rate at which it generates packets in
    //# the closing state.
    #[test]
    fn resend_is_rate_limited_and_written_once_per_space() {
        let frame = CloseFrame::Application { code: VarInt::from_u32(7), reason: b"bye".to_vec() };
        let mut s = CloseState::closing(frame, [true, true, false], now());
        assert_eq!(s.pending_spaces(), [true, true, false]);
        s.mark_written(SpaceId::Initial);
        s.mark_written(SpaceId::Handshake);
        assert_eq!(s.pending_spaces(), [false; 3]);
        let mut resends = 0;
        for _ in 0..64 {
            s.on_packet_received();
            if s.pending_spaces() != [false; 3] {
                resends += 1;
                s.mark_written(SpaceId::Initial);
                s.mark_written(SpaceId::Handshake);
            }
        }
        // Packets 1, 2, 4, 8, 16, 32, 64.
        assert_eq!(resends, 7);
        s.drop_space(SpaceId::Initial);
        for _ in 0..64 {
            s.on_packet_received();
        }
        assert_eq!(s.pending_spaces(), [false, true, false]);
    }

    #[test]
    fn application_close_in_handshake_packets() {
        let frame = CloseFrame::Application { code: VarInt::from_u32(7), reason: b"x".to_vec() };
        let f = frame.frame(SpaceId::Handshake);
        assert_eq!(f.transport_error(), Some(TransportErrorCode::APPLICATION_ERROR));
        assert!(f.reason.is_empty());
        assert_eq!(frame.frame(SpaceId::Data).error_code, VarInt::from_u32(7));
    }
}
