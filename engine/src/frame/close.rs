//! CONNECTION_CLOSE frames (RFC 9000 §19.19): type 0x1c for transport errors, 0x1d for
//! application errors.

use super::codec::{len_prefix_size, FrameReader};
use super::FrameType;
use crate::coding::{BufferFull, Writer};
use crate::error::{Error, TransportErrorCode};
use crate::varint::VarInt;

/// Which error space a CONNECTION_CLOSE frame's code belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseKind {
    /// Type 0x1c: a QUIC transport error (RFC 9000 §20.1), with the type of the frame that
    /// triggered it (0 when unknown).
    Transport {
        /// The frame type that triggered the error, 0 when unknown.
        frame_type: VarInt,
    },
    /// Type 0x1d: an application protocol error (RFC 9000 §20.2).
    Application,
}

/// A CONNECTION_CLOSE frame, borrowing its reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionClose<'a> {
    /// Transport (0x1c) or application (0x1d) close.
    pub kind: CloseKind,
    /// The error code, in the space given by `kind`.
    pub error_code: VarInt,
    /// Diagnostic text; SHOULD be UTF-8, may be empty.
    pub reason: &'a [u8],
}

impl<'a> ConnectionClose<'a> {
    /// A transport close (0x1c) for `code`, triggered by `frame_type` if known.
    pub fn transport(code: TransportErrorCode, frame_type: Option<u64>, reason: &'a [u8]) -> Self {
        Self {
            kind: CloseKind::Transport {
                frame_type: frame_type.and_then(|t| VarInt::new(t).ok()).unwrap_or(VarInt::ZERO),
            },
            // Codes above 2^62-1 cannot be sent; report them as INTERNAL_ERROR (0x1).
            error_code: VarInt::new(code.0).unwrap_or(VarInt::from_u32(0x1)),
            reason,
        }
    }

    /// An application close (0x1d) with the application's `code`.
    pub fn application(code: VarInt, reason: &'a [u8]) -> Self {
        Self { kind: CloseKind::Application, error_code: code, reason }
    }

    /// The transport close that reports a protocol error detected in peer input, with the
    /// error's static reason as the reason phrase.
    pub fn from_error(err: &Error) -> ConnectionClose<'static> {
        ConnectionClose::transport(err.code, err.frame_type, err.reason.as_bytes())
    }

    /// The transport error code, for a 0x1c close.
    pub fn transport_error(&self) -> Option<TransportErrorCode> {
        match self.kind {
            CloseKind::Transport { .. } => Some(TransportErrorCode(self.error_code.into_inner())),
            CloseKind::Application => None,
        }
    }

    /// The form to send in an Initial or Handshake packet: a 0x1d close becomes a 0x1c close
    /// with APPLICATION_ERROR and no reason phrase; a 0x1c close is unchanged.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
    //# A CONNECTION_CLOSE of type 0x1d MUST be replaced by a
    //# CONNECTION_CLOSE of type 0x1c when sending the frame in Initial or
    //# Handshake packets.
    //
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
    //# Endpoints MUST clear the value of the
    //# Reason Phrase field and SHOULD use the APPLICATION_ERROR code when
    //# converting to a CONNECTION_CLOSE of type 0x1c.
    pub fn for_handshake_packets(&self) -> ConnectionClose<'a> {
        match self.kind {
            CloseKind::Transport { .. } => *self,
            CloseKind::Application => {
                ConnectionClose::transport(TransportErrorCode::APPLICATION_ERROR, None, &[])
            }
        }
    }

    /// This frame with its reason phrase shortened so the frame fits in `capacity` bytes (cut
    /// at a character boundary when the phrase is UTF-8), or `None` when not even an empty
    /// phrase fits. A CONNECTION_CLOSE frame cannot be split between packets.
    pub fn truncated_to(&self, capacity: usize) -> Option<ConnectionClose<'a>> {
        let fixed = self.encoded_len() - self.reason.len() - len_prefix_size(self.reason.len());
        let avail = capacity.checked_sub(fixed)?;
        let mut n = super::codec::max_prefixed_len(avail)?.min(self.reason.len());
        if let Ok(text) = std::str::from_utf8(self.reason) {
            while n > 0 && !text.is_char_boundary(n) {
                n -= 1;
            }
        }
        Some(ConnectionClose { reason: &self.reason[..n], ..*self })
    }

    /// The frame type: 0x1c (transport) or 0x1d (application).
    pub const fn frame_type(&self) -> FrameType {
        match self.kind {
            CloseKind::Transport { .. } => FrameType::CONNECTION_CLOSE,
            CloseKind::Application => FrameType::APPLICATION_CLOSE,
        }
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let ft = match self.kind {
            CloseKind::Transport { frame_type } => frame_type.size(),
            CloseKind::Application => 0,
        };
        1 + self.error_code.size() + ft + len_prefix_size(self.reason.len()) + self.reason.len()
    }

    /// Writes the frame; on [`BufferFull`] nothing is written.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        w.put_varint(self.frame_type().0)?;
        w.put_varint(self.error_code.into_inner())?;
        if let CloseKind::Transport { frame_type } = self.kind {
            w.put_varint(frame_type.into_inner())?;
        }
        w.put_varint_prefixed(self.reason)
    }

    pub(super) fn decode(r: &mut FrameReader<'_, 'a>) -> Result<Self, Error> {
        let error_code = r.varint()?;
        let kind = if r.frame_type() == FrameType::CONNECTION_CLOSE.0 {
            CloseKind::Transport { frame_type: r.varint()? }
        } else {
            CloseKind::Application
        };
        let len = r.varint()?;
        let reason = r.bytes(len)?;
        Ok(Self { kind, error_code, reason })
    }
}
