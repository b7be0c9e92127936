//! Frame type numbers, which packet types may carry them, and how they count for recovery.

use std::fmt;

use crate::error::Error;

/// A frame type number as carried in the Frame Type field (RFC 9000 §12.4, RFC 9221 §4).
///
/// The ACK, STREAM, MAX_STREAMS, STREAMS_BLOCKED, CONNECTION_CLOSE and DATAGRAM frames use low
/// bits of the type as flags, so several numbers name one frame family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameType(pub u64);

impl FrameType {
    /// PADDING (0x00).
    pub const PADDING: Self = Self(0x00);
    /// PING (0x01).
    pub const PING: Self = Self(0x01);
    /// ACK without ECN counts (0x02).
    pub const ACK: Self = Self(0x02);
    /// ACK with ECN counts (0x03).
    pub const ACK_ECN: Self = Self(0x03);
    /// RESET_STREAM (0x04).
    pub const RESET_STREAM: Self = Self(0x04);
    /// STOP_SENDING (0x05).
    pub const STOP_SENDING: Self = Self(0x05);
    /// CRYPTO (0x06).
    pub const CRYPTO: Self = Self(0x06);
    /// NEW_TOKEN (0x07).
    pub const NEW_TOKEN: Self = Self(0x07);
    /// STREAM with no flag bits (0x08); the family is 0x08..=0x0f.
    pub const STREAM: Self = Self(0x08);
    /// The highest STREAM type (0x0f: OFF, LEN and FIN all set).
    pub const STREAM_MAX: Self = Self(0x0f);
    /// MAX_DATA (0x10).
    pub const MAX_DATA: Self = Self(0x10);
    /// MAX_STREAM_DATA (0x11).
    pub const MAX_STREAM_DATA: Self = Self(0x11);
    /// MAX_STREAMS for bidirectional streams (0x12).
    pub const MAX_STREAMS_BIDI: Self = Self(0x12);
    /// MAX_STREAMS for unidirectional streams (0x13).
    pub const MAX_STREAMS_UNI: Self = Self(0x13);
    /// DATA_BLOCKED (0x14).
    pub const DATA_BLOCKED: Self = Self(0x14);
    /// STREAM_DATA_BLOCKED (0x15).
    pub const STREAM_DATA_BLOCKED: Self = Self(0x15);
    /// STREAMS_BLOCKED for bidirectional streams (0x16).
    pub const STREAMS_BLOCKED_BIDI: Self = Self(0x16);
    /// STREAMS_BLOCKED for unidirectional streams (0x17).
    pub const STREAMS_BLOCKED_UNI: Self = Self(0x17);
    /// NEW_CONNECTION_ID (0x18).
    pub const NEW_CONNECTION_ID: Self = Self(0x18);
    /// RETIRE_CONNECTION_ID (0x19).
    pub const RETIRE_CONNECTION_ID: Self = Self(0x19);
    /// PATH_CHALLENGE (0x1a).
    pub const PATH_CHALLENGE: Self = Self(0x1a);
    /// PATH_RESPONSE (0x1b).
    pub const PATH_RESPONSE: Self = Self(0x1b);
    /// CONNECTION_CLOSE signalling a transport error (0x1c).
    pub const CONNECTION_CLOSE: Self = Self(0x1c);
    /// CONNECTION_CLOSE signalling an application error (0x1d).
    pub const APPLICATION_CLOSE: Self = Self(0x1d);
    /// HANDSHAKE_DONE (0x1e).
    pub const HANDSHAKE_DONE: Self = Self(0x1e);
    /// IMMEDIATE_ACK (0x1f, draft-ietf-quic-ack-frequency).
    pub const IMMEDIATE_ACK: Self = Self(0x1f);
    /// DATAGRAM without a Length field (0x30, RFC 9221).
    pub const DATAGRAM: Self = Self(0x30);
    /// DATAGRAM with a Length field (0x31, RFC 9221).
    pub const DATAGRAM_LEN: Self = Self(0x31);
    /// ACK_FREQUENCY (0xaf, draft-ietf-quic-ack-frequency).
    pub const ACK_FREQUENCY: Self = Self(0xaf);

    /// Every frame type this crate understands, in numeric order.
    pub const ALL: [FrameType; 35] = {
        let mut all = [FrameType(0); 35];
        let mut i = 0;
        while i < 32 {
            all[i] = FrameType(i as u64);
            i += 1;
        }
        all[32] = Self::DATAGRAM;
        all[33] = Self::DATAGRAM_LEN;
        all[34] = Self::ACK_FREQUENCY;
        all
    };

    /// True for the types defined by RFC 9000 §19, RFC 9221 and draft-ietf-quic-ack-frequency.
    pub const fn is_known(self) -> bool {
        matches!(self.0, 0x00..=0x1f | 0x30 | 0x31 | 0xaf)
    }

    /// True for the STREAM family (0x08..=0x0f).
    pub const fn is_stream(self) -> bool {
        matches!(self.0, 0x08..=0x0f)
    }

    /// The RFC's name of the frame family, if the type is known.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "PADDING",
            0x01 => "PING",
            0x02 | 0x03 => "ACK",
            0x04 => "RESET_STREAM",
            0x05 => "STOP_SENDING",
            0x06 => "CRYPTO",
            0x07 => "NEW_TOKEN",
            0x08..=0x0f => "STREAM",
            0x10 => "MAX_DATA",
            0x11 => "MAX_STREAM_DATA",
            0x12 | 0x13 => "MAX_STREAMS",
            0x14 => "DATA_BLOCKED",
            0x15 => "STREAM_DATA_BLOCKED",
            0x16 | 0x17 => "STREAMS_BLOCKED",
            0x18 => "NEW_CONNECTION_ID",
            0x19 => "RETIRE_CONNECTION_ID",
            0x1a => "PATH_CHALLENGE",
            0x1b => "PATH_RESPONSE",
            0x1c | 0x1d => "CONNECTION_CLOSE",
            0x1e => "HANDSHAKE_DONE",
            0x1f => "IMMEDIATE_ACK",
            0x30 | 0x31 => "DATAGRAM",
            0xaf => "ACK_FREQUENCY",
            _ => return None,
        })
    }

    /// Whether a frame of this type may appear in a packet of type `kind` (RFC 9000 §12.4
    /// Table 3, RFC 9221 §5). Unknown types are allowed nowhere.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
    //# ih:  Only a CONNECTION_CLOSE frame of type 0x1c can appear in Initial
    //#      or Handshake packets.
    //
    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.5
    //# Note that it is not possible to send the following frames in 0-RTT
    //# packets for various reasons: ACK, CRYPTO, HANDSHAKE_DONE, NEW_TOKEN,
    //# PATH_RESPONSE, and RETIRE_CONNECTION_ID.
    ///
    /// RETIRE_CONNECTION_ID is marked "__01" in Table 3 but listed above by §12.5, which lets a
    /// server reject it in 0-RTT; it is rejected there.
    pub const fn allowed_in(self, kind: PacketKind) -> bool {
        if !self.is_known() {
            return false;
        }
        match kind {
            // Note that all frames can appear in 1-RTT packets.
            PacketKind::OneRtt => true,
            // Table 3 "IH": PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE 0x1c only.
            PacketKind::Initial | PacketKind::Handshake => {
                matches!(self.0, 0x00 | 0x01 | 0x02 | 0x03 | 0x06 | 0x1c)
            }
            //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-3
            //# Consequently, ACK_FREQUENCY
            //# and IMMEDIATE_ACK frames cannot be sent in 0-RTT packets, as per
            //# Section 7.4.1 of [QUIC-TRANSPORT].
            PacketKind::ZeroRtt => {
                !matches!(self.0, 0x02 | 0x03 | 0x06 | 0x07 | 0x1b | 0x19 | 0x1e | 0x1f | 0xaf)
            }
        }
    }

    /// [`allowed_in`](Self::allowed_in) as the error the peer must be closed with.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
    //# An endpoint MUST treat
    //# receipt of a frame in a packet type that is not permitted as a
    //# connection error of type PROTOCOL_VIOLATION.
    //
    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.5
    //# A server MAY treat receipt
    //# of these frames in 0-RTT packets as a connection error of type
    //# PROTOCOL_VIOLATION.
    //
    //= https://www.rfc-editor.org/rfc/rfc9221#section-5
    //# Like STREAM frames, DATAGRAM frames contain application data and MUST be
    //# protected with either 0-RTT or 1-RTT keys.
    pub fn check_allowed(self, kind: PacketKind) -> Result<(), Error> {
        if self.allowed_in(kind) {
            Ok(())
        } else {
            Err(Error::protocol_violation("frame type not permitted in this packet type")
                .with_frame_type(self.0))
        }
    }

    /// Whether the frame elicits an acknowledgment: every frame but ACK, PADDING and
    /// CONNECTION_CLOSE (RFC 9002 §2). DATAGRAM frames are ack-eliciting (RFC 9221 §5.2).
    //= https://www.rfc-editor.org/rfc/rfc9002#section-2
    //# Ack-eliciting frames:  All frames other than ACK, PADDING, and
    //#    CONNECTION_CLOSE are considered ack-eliciting.
    pub const fn is_ack_eliciting(self) -> bool {
        !matches!(self.0, 0x00 | 0x02 | 0x03 | 0x1c | 0x1d)
    }

    /// Whether the frame is a probing frame: PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID or
    /// PADDING (RFC 9000 §9.1, Table 3 "P").
    //= https://www.rfc-editor.org/rfc/rfc9000#section-9.1
    //# PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID, and PADDING frames
    //# are "probing frames", and all other frames are "non-probing frames".
    pub const fn is_probing(self) -> bool {
        matches!(self.0, 0x00 | 0x18 | 0x1a | 0x1b)
    }

    /// Whether a packet made only of frames of this type counts toward bytes in flight by the
    /// letter of Table 3 (RFC 9000 §12.4): every frame except ACK (the "C" marking).
    ///
    /// Table 3 leaves CONNECTION_CLOSE unmarked, while RFC 9002 §2 defines in-flight packets as
    /// those that are ack-eliciting or carry PADDING, which excludes a packet holding only
    /// CONNECTION_CLOSE. Recovery should use [`PacketSummary::in_flight`], which follows
    /// RFC 9002; this per-type view is the Table 3 marking only.
    pub const fn is_congestion_controlled(self) -> bool {
        !matches!(self.0, 0x02 | 0x03)
    }

    /// Whether the frame's contents are flow controlled: STREAM only (Table 3 "F"). DATAGRAM
    /// frames are not (RFC 9221 §5.4).
    pub const fn is_flow_controlled(self) -> bool {
        self.is_stream()
    }
}

impl fmt::Debug for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}({:#04x})", self.0),
            None => write!(f, "FrameType({:#x})", self.0),
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The packet types that carry frames (RFC 9000 §17), for the per-type permission checks of
/// [`FrameType::allowed_in`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Initial packets (long header type 0x0).
    Initial,
    /// 0-RTT packets (long header type 0x1).
    ZeroRtt,
    /// Handshake packets (long header type 0x2).
    Handshake,
    /// 1-RTT packets (short header).
    OneRtt,
}

/// What a packet's frames add up to for loss recovery and migration, accumulated frame by frame
/// on both the send and the receive side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketSummary {
    /// Frames seen (a coalesced PADDING run counts once).
    pub frames: usize,
    /// At least one frame is ack-eliciting (RFC 9002 §2).
    pub ack_eliciting: bool,
    /// The packet counts toward bytes in flight: it is ack-eliciting or carries PADDING
    /// (RFC 9002 §2).
    pub in_flight: bool,
    /// At least one frame is not a probing frame (RFC 9000 §9.1).
    pub non_probing: bool,
}

impl PacketSummary {
    /// Accounts for one frame of type `ty`.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-2
    //# In-flight packets:  Packets are considered in flight when they are
    //#    ack-eliciting or contain a PADDING frame, and they have been sent
    //#    but are not acknowledged, declared lost, or discarded along with
    //#    old keys.
    pub fn on_frame(&mut self, ty: FrameType) {
        self.frames += 1;
        self.ack_eliciting |= ty.is_ack_eliciting();
        self.in_flight |= ty.is_ack_eliciting() || ty == FrameType::PADDING;
        self.non_probing |= !ty.is_probing();
    }

    /// A probing packet: at least one frame and only probing frames (RFC 9000 §9.1).
    //= https://www.rfc-editor.org/rfc/rfc9000#section-9.1
    //# A packet containing only probing frames is a "probing packet", and a
    //# packet containing any other frame is a "non-probing packet".
    pub fn is_probing(&self) -> bool {
        self.frames > 0 && !self.non_probing
    }
}
