//! Stream identifiers (RFC 9000 §2.1): initiator, direction and index packed in a 62-bit integer.

use std::fmt;

use crate::error::{Error, TransportErrorCode};

/// Which endpoint plays which role in the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The endpoint that initiated the connection.
    Client,
    /// The endpoint that accepted the connection.
    Server,
}

impl Role {
    /// The other role.
    pub const fn peer(self) -> Self {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}

/// Whether data flows both ways on a stream or only from its initiator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// Bidirectional: both endpoints may send.
    Bi,
    /// Unidirectional: only the initiator sends.
    Uni,
}

impl Dir {
    /// `0` for [`Dir::Bi`], `1` for [`Dir::Uni`]: an index for per-direction tables.
    pub const fn index(self) -> usize {
        match self {
            Dir::Bi => 0,
            Dir::Uni => 1,
        }
    }
}

/// The largest number of streams of one type an endpoint may open: 2^60 (RFC 9000 §4.6).
pub const MAX_STREAM_COUNT: u64 = 1 << 60;

/// A QUIC stream identifier, always below 2^62.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(u64);

impl StreamId {
    //= https://www.rfc-editor.org/rfc/rfc9000#section-2.1
    //# The least significant bit (0x01) of the stream ID identifies the
    //# initiator of the stream.  Client-initiated streams have even-numbered
    //# stream IDs (with the bit set to 0), and server-initiated streams have
    //# odd-numbered stream IDs (with the bit set to 1).

    //= https://www.rfc-editor.org/rfc/rfc9000#section-2.1
    //# The second least significant bit (0x02) of the stream ID
    //# distinguishes between bidirectional streams (with the bit set to 0)
    //# and unidirectional streams (with the bit set to 1).

    /// The stream with `index` (its position among streams of the same initiator and
    /// direction). Returns `None` when `index >= 2^60`, which no stream ID can encode.
    pub const fn new(initiator: Role, dir: Dir, index: u64) -> Option<Self> {
        if index >= MAX_STREAM_COUNT {
            return None;
        }
        let init = match initiator {
            Role::Client => 0,
            Role::Server => 1,
        };
        let d = match dir {
            Dir::Bi => 0,
            Dir::Uni => 2,
        };
        Some(StreamId(index << 2 | d | init))
    }

    /// Interprets a decoded varint as a stream ID; `None` above 2^62-1.
    pub const fn from_u64(v: u64) -> Option<Self> {
        if v <= crate::varint::MAX {
            Some(StreamId(v))
        } else {
            None
        }
    }

    /// The integer carried on the wire.
    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// The endpoint that opened the stream.
    pub const fn initiator(self) -> Role {
        if self.0 & 1 == 0 {
            Role::Client
        } else {
            Role::Server
        }
    }

    /// Bidirectional or unidirectional.
    pub const fn dir(self) -> Dir {
        if self.0 & 2 == 0 {
            Dir::Bi
        } else {
            Dir::Uni
        }
    }

    /// The stream's position among streams of the same initiator and direction (0-based).
    pub const fn index(self) -> u64 {
        self.0 >> 2
    }

    /// Whether the endpoint playing `local` opened this stream.
    pub fn is_local(self, local: Role) -> bool {
        self.initiator() == local
    }

    /// Whether the endpoint playing `local` may send on this stream (it has a sending part).
    pub fn can_send(self, local: Role) -> bool {
        self.dir() == Dir::Bi || self.is_local(local)
    }

    /// Whether the endpoint playing `local` may receive on this stream (it has a receiving part).
    pub fn can_recv(self, local: Role) -> bool {
        self.dir() == Dir::Bi || !self.is_local(local)
    }

    /// Checks that a frame which carries data *to* `local` (STREAM, RESET_STREAM,
    /// STREAM_DATA_BLOCKED) may name this stream.
    pub fn check_recv(self, local: Role) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.8
        //# An endpoint MUST terminate the connection with error
        //# STREAM_STATE_ERROR if it receives a STREAM frame for a locally
        //# initiated stream that has not yet been created, or for a send-only
        //# stream.
        if self.can_recv(local) {
            Ok(())
        } else {
            Err(Error::new(TransportErrorCode::STREAM_STATE_ERROR, "frame for a send-only stream"))
        }
    }

    /// Checks that a frame which controls data *from* `local` (STOP_SENDING,
    /// MAX_STREAM_DATA) may name this stream.
    pub fn check_send(self, local: Role) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.10
        //# An endpoint that receives a MAX_STREAM_DATA frame for a receive-only
        //# stream MUST terminate the connection with error STREAM_STATE_ERROR.
        if self.can_send(local) {
            Ok(())
        } else {
            Err(Error::new(
                TransportErrorCode::STREAM_STATE_ERROR,
                "frame for a receive-only stream",
            ))
        }
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let init = match self.initiator() {
            Role::Client => "client",
            Role::Server => "server",
        };
        let dir = match self.dir() {
            Dir::Bi => "bidi",
            Dir::Uni => "uni",
        };
        write!(f, "StreamId({} {init} {dir} #{})", self.0, self.index())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    //= https://www.rfc-editor.org/rfc/rfc9000#section-2.1
    //= type=test
    //# Client-initiated streams have even-numbered
    //# stream IDs (with the bit set to 0), and server-initiated streams have
    //# odd-numbered stream IDs (with the bit set to 1).
    #[test]
    fn types_match_table() {
        // RFC 9000 Table 1: 0x00 client bidi, 0x01 server bidi, 0x02 client uni, 0x03 server uni.
        let cases = [
            (0, Role::Client, Dir::Bi),
            (1, Role::Server, Dir::Bi),
            (2, Role::Client, Dir::Uni),
            (3, Role::Server, Dir::Uni),
        ];
        for (v, role, dir) in cases {
            let id = StreamId::from_u64(v).unwrap();
            assert_eq!((id.initiator(), id.dir(), id.index()), (role, dir, 0));
            assert_eq!(StreamId::new(role, dir, 0), Some(id));
            let id7 = StreamId::new(role, dir, 7).unwrap();
            assert_eq!(id7.into_inner(), 28 + v);
            assert_eq!(id7.index(), 7);
        }
        assert!(StreamId::new(Role::Client, Dir::Bi, MAX_STREAM_COUNT).is_none());
        let last = StreamId::new(Role::Server, Dir::Uni, MAX_STREAM_COUNT - 1).unwrap();
        assert_eq!(last.into_inner(), crate::varint::MAX);
        assert!(StreamId::from_u64(crate::varint::MAX + 1).is_none());
    }

    #[test]
    fn direction_checks() {
        let client_uni = StreamId::new(Role::Client, Dir::Uni, 0).unwrap();
        assert!(client_uni.can_send(Role::Client) && !client_uni.can_recv(Role::Client));
        assert!(!client_uni.can_send(Role::Server) && client_uni.can_recv(Role::Server));
        let e = client_uni.check_recv(Role::Client).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::STREAM_STATE_ERROR);
        assert_eq!(
            client_uni.check_send(Role::Server).unwrap_err().code,
            TransportErrorCode::STREAM_STATE_ERROR
        );
        let bidi = StreamId::new(Role::Server, Dir::Bi, 3).unwrap();
        for r in [Role::Client, Role::Server] {
            assert!(bidi.check_recv(r).is_ok() && bidi.check_send(r).is_ok());
        }
        assert!(bidi.is_local(Role::Server) && !bidi.is_local(Role::Client));
        assert_eq!(Role::Client.peer(), Role::Server);
    }
}
