//! Transport parameters (RFC 9000 §7.4, §18; RFC 9221, RFC 9287, RFC 9368): encode, decode, validate.
//!
//! [`TransportParameters::decode`] takes the side of the endpoint that *sent* the parameters,
//! parses every known parameter, skips unknown and reserved ones, and validates each value;
//! every failure is a TRANSPORT_PARAMETER_ERROR. [`TransportParameters::encode`] writes only
//! the parameters that differ from their defaults. The connection-ID cross-checks of RFC 9000
//! §7.3, which need the packet headers, are [`TransportParameters::authenticate_cids`].

mod preferred_address;
#[cfg(test)]
mod tests;
mod version_info;

use std::time::Duration;

pub use crate::crypto::Side;
pub use preferred_address::PreferredAddress;
pub use version_info::VersionInformation;

use crate::cid::{ConnectionId, ResetToken};
use crate::coding::{BufferFull, Reader, Writer};
use crate::error::Error;
use crate::varint::{self, VarInt};

/// Transport parameter identifiers (RFC 9000 §18.2 and extensions).
pub mod id {
    /// original_destination_connection_id (server only).
    pub const ORIGINAL_DESTINATION_CONNECTION_ID: u64 = 0x00;
    /// max_idle_timeout, in milliseconds.
    pub const MAX_IDLE_TIMEOUT: u64 = 0x01;
    /// stateless_reset_token (server only).
    pub const STATELESS_RESET_TOKEN: u64 = 0x02;
    /// max_udp_payload_size.
    pub const MAX_UDP_PAYLOAD_SIZE: u64 = 0x03;
    /// initial_max_data.
    pub const INITIAL_MAX_DATA: u64 = 0x04;
    /// initial_max_stream_data_bidi_local.
    pub const INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: u64 = 0x05;
    /// initial_max_stream_data_bidi_remote.
    pub const INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: u64 = 0x06;
    /// initial_max_stream_data_uni.
    pub const INITIAL_MAX_STREAM_DATA_UNI: u64 = 0x07;
    /// initial_max_streams_bidi.
    pub const INITIAL_MAX_STREAMS_BIDI: u64 = 0x08;
    /// initial_max_streams_uni.
    pub const INITIAL_MAX_STREAMS_UNI: u64 = 0x09;
    /// ack_delay_exponent.
    pub const ACK_DELAY_EXPONENT: u64 = 0x0a;
    /// max_ack_delay, in milliseconds.
    pub const MAX_ACK_DELAY: u64 = 0x0b;
    /// disable_active_migration (zero-length value).
    pub const DISABLE_ACTIVE_MIGRATION: u64 = 0x0c;
    /// preferred_address (server only).
    pub const PREFERRED_ADDRESS: u64 = 0x0d;
    /// active_connection_id_limit.
    pub const ACTIVE_CONNECTION_ID_LIMIT: u64 = 0x0e;
    /// initial_source_connection_id.
    pub const INITIAL_SOURCE_CONNECTION_ID: u64 = 0x0f;
    /// retry_source_connection_id (server only).
    pub const RETRY_SOURCE_CONNECTION_ID: u64 = 0x10;
    /// version_information (RFC 9368).
    pub const VERSION_INFORMATION: u64 = 0x11;
    /// max_datagram_frame_size (RFC 9221).
    pub const MAX_DATAGRAM_FRAME_SIZE: u64 = 0x20;
    /// grease_quic_bit (RFC 9287, zero-length value).
    pub const GREASE_QUIC_BIT: u64 = 0x2ab2;
    /// min_ack_delay, in microseconds (draft-ietf-quic-ack-frequency): the sender accepts
    /// ACK_FREQUENCY and IMMEDIATE_ACK frames.
    pub const MIN_ACK_DELAY: u64 = 0xff04de1b;

    /// Every identifier above, in the order they are encoded.
    pub const ALL: [u64; 21] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f, 0x10, 0x11, 0x20, 0x2ab2, 0xff04de1b,
    ];

    /// True for the reserved identifiers 31 * N + 27 (RFC 9000 §18.1).
    pub const fn is_reserved(id: u64) -> bool {
        id % 31 == 27
    }
}

/// Default max_udp_payload_size: the largest UDP payload, 65527.
pub const DEFAULT_MAX_UDP_PAYLOAD_SIZE: u64 = 65527;
/// Smallest valid max_udp_payload_size.
pub const MIN_MAX_UDP_PAYLOAD_SIZE: u64 = 1200;
/// Default ack_delay_exponent (a multiplier of 8).
pub const DEFAULT_ACK_DELAY_EXPONENT: u64 = 3;
/// Largest valid ack_delay_exponent.
pub const MAX_ACK_DELAY_EXPONENT: u64 = 20;
/// Default max_ack_delay, in milliseconds.
pub const DEFAULT_MAX_ACK_DELAY_MS: u64 = 25;
/// max_ack_delay values of this many milliseconds or more are invalid (2^14).
pub const MAX_ACK_DELAY_LIMIT_MS: u64 = 1 << 14;
/// Default (and smallest valid) active_connection_id_limit.
pub const DEFAULT_ACTIVE_CONNECTION_ID_LIMIT: u64 = 2;
/// Largest valid initial_max_streams_bidi / initial_max_streams_uni: 2^60.
pub const MAX_STREAMS_LIMIT: u64 = 1 << 60;

/// The transport parameters one endpoint declares. Fields hold RFC defaults when absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportParameters {
    /// DCID of the client's first Initial (server only).
    pub original_destination_connection_id: Option<ConnectionId>,
    /// Idle timeout in milliseconds; 0 disables it (default 0).
    pub max_idle_timeout: VarInt,
    /// Reset token for the handshake connection ID (server only).
    pub stateless_reset_token: Option<ResetToken>,
    /// Largest UDP payload the endpoint accepts (default 65527, at least 1200).
    pub max_udp_payload_size: VarInt,
    /// Connection-level flow control limit (default 0).
    pub initial_max_data: VarInt,
    /// Limit for bidirectional streams the sender opens (default 0).
    pub initial_max_stream_data_bidi_local: VarInt,
    /// Limit for bidirectional streams the receiver opens (default 0).
    pub initial_max_stream_data_bidi_remote: VarInt,
    /// Limit for unidirectional streams the receiver opens (default 0).
    pub initial_max_stream_data_uni: VarInt,
    /// Bidirectional streams the receiver may open (default 0, at most 2^60).
    pub initial_max_streams_bidi: VarInt,
    /// Unidirectional streams the receiver may open (default 0, at most 2^60).
    pub initial_max_streams_uni: VarInt,
    /// Exponent of the ACK Delay field (default 3, at most 20).
    pub ack_delay_exponent: VarInt,
    /// Largest delay before acknowledging, in milliseconds (default 25, below 2^14).
    pub max_ack_delay: VarInt,
    /// The sender does not support active migration.
    pub disable_active_migration: bool,
    /// The server's preferred address (server only).
    pub preferred_address: Option<PreferredAddress>,
    /// Connection IDs the sender is willing to store (default 2, at least 2).
    pub active_connection_id_limit: VarInt,
    /// SCID of the sender's first Initial (required from both sides; RFC 9000 §7.3).
    pub initial_source_connection_id: Option<ConnectionId>,
    /// SCID of the Retry the server sent (server only).
    pub retry_source_connection_id: Option<ConnectionId>,
    /// Largest DATAGRAM frame accepted; absent means DATAGRAM is not supported (RFC 9221).
    pub max_datagram_frame_size: Option<VarInt>,
    /// Version Information (RFC 9368).
    pub version_information: Option<VersionInformation>,
    /// The sender accepts packets with the QUIC bit set to 0 (RFC 9287).
    pub grease_quic_bit: bool,
    /// The shortest delay, in microseconds, the sender is willing to acknowledge with;
    /// present when it accepts ACK_FREQUENCY and IMMEDIATE_ACK frames
    /// (draft-ietf-quic-ack-frequency).
    pub min_ack_delay: Option<VarInt>,
}

impl Default for TransportParameters {
    fn default() -> Self {
        Self {
            original_destination_connection_id: None,
            max_idle_timeout: VarInt::ZERO,
            stateless_reset_token: None,
            max_udp_payload_size: VarInt::from_u32(DEFAULT_MAX_UDP_PAYLOAD_SIZE as u32),
            initial_max_data: VarInt::ZERO,
            initial_max_stream_data_bidi_local: VarInt::ZERO,
            initial_max_stream_data_bidi_remote: VarInt::ZERO,
            initial_max_stream_data_uni: VarInt::ZERO,
            initial_max_streams_bidi: VarInt::ZERO,
            initial_max_streams_uni: VarInt::ZERO,
            ack_delay_exponent: VarInt::from_u32(DEFAULT_ACK_DELAY_EXPONENT as u32),
            max_ack_delay: VarInt::from_u32(DEFAULT_MAX_ACK_DELAY_MS as u32),
            disable_active_migration: false,
            preferred_address: None,
            active_connection_id_limit: VarInt::from_u32(DEFAULT_ACTIVE_CONNECTION_ID_LIMIT as u32),
            initial_source_connection_id: None,
            retry_source_connection_id: None,
            max_datagram_frame_size: None,
            version_information: None,
            grease_quic_bit: false,
            min_ack_delay: None,
        }
    }
}

/// What the receiving endpoint saw in packet headers during the handshake, to check the peer's
/// connection-ID transport parameters against (RFC 9000 §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeCids {
    /// Source Connection ID of the first Initial packet received from the peer.
    pub peer_initial_scid: ConnectionId,
    /// When validating a server's parameters: the Destination Connection ID of the client's
    /// first Initial packet. Ignored when validating a client's.
    pub original_dcid: ConnectionId,
    /// When validating a server's parameters: the Source Connection ID of the Retry packet the
    /// client processed, if any. Ignored when validating a client's.
    pub retry_scid: Option<ConnectionId>,
}

fn tpe(reason: &'static str) -> Error {
    Error::transport_parameter(reason)
}

/// Bit of `id` in the duplicate-detection mask, for the parameters this endpoint knows.
fn known_bit(param: u64) -> Option<u32> {
    id::ALL.iter().position(|&i| i == param).map(|p| 1 << p)
}

/// An integer parameter: one variable-length integer filling the whole value.
fn int(value: &[u8]) -> Result<VarInt, Error> {
    let mut r = Reader::new(value);
    let v = r.varint().map_err(|_| tpe("truncated integer parameter"))?;
    if !r.is_empty() {
        return Err(tpe("integer parameter length mismatch"));
    }
    Ok(VarInt::new(v).unwrap_or(VarInt::MAX))
}

fn cid(value: &[u8]) -> Result<ConnectionId, Error> {
    ConnectionId::new(value).map_err(|_| tpe("connection ID parameter over 20 bytes"))
}

fn flag(value: &[u8]) -> Result<bool, Error> {
    //= https://www.rfc-editor.org/rfc/rfc9287#section-3
    //# The transport parameter is sent with an empty value; an endpoint that
    //# understands this transport parameter MUST treat receipt of a non-empty
    //# value of the transport parameter as a connection error of type
    //# TRANSPORT_PARAMETER_ERROR.
    if value.is_empty() {
        Ok(true)
    } else {
        Err(tpe("flag parameter with a value"))
    }
}

impl TransportParameters {
    /// Decodes and validates the parameters sent by `sender`.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-7.4
    //# An endpoint MUST treat receipt of a transport parameter with an
    //# invalid value as a connection error of type
    //# TRANSPORT_PARAMETER_ERROR.
    pub fn decode(sender: Side, buf: &[u8]) -> Result<Self, Error> {
        let mut p = Self::default();
        let mut seen = 0u32;
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            let param = r.varint().map_err(|_| tpe("truncated parameter identifier"))?;
            let value = r.varint_prefixed().map_err(|_| tpe("truncated parameter value"))?;
            //= https://www.rfc-editor.org/rfc/rfc9000#section-7.4.2
            //# An endpoint MUST ignore transport parameters that it does not support.
            //= https://www.rfc-editor.org/rfc/rfc9000#section-18.1
            //# Transport parameters with an identifier of the form 31 * N + 27 for
            //# integer values of N are reserved to exercise the requirement that
            //# unknown transport parameters be ignored.
            let Some(bit) = known_bit(param) else { continue };
            //= https://www.rfc-editor.org/rfc/rfc9000#section-7.4
            //# An endpoint SHOULD treat receipt of
            //# duplicate transport parameters as a connection error of type
            //# TRANSPORT_PARAMETER_ERROR.
            if seen & bit != 0 {
                return Err(tpe("duplicate transport parameter"));
            }
            seen |= bit;
            p.set(param, value)?;
        }
        p.validate(sender)?;
        Ok(p)
    }

    fn set(&mut self, param: u64, value: &[u8]) -> Result<(), Error> {
        match param {
            id::ORIGINAL_DESTINATION_CONNECTION_ID => {
                self.original_destination_connection_id = Some(cid(value)?)
            }
            id::MAX_IDLE_TIMEOUT => self.max_idle_timeout = int(value)?,
            id::STATELESS_RESET_TOKEN => {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
                //# This parameter is
                //# a sequence of 16 bytes.
                let token = <[u8; 16]>::try_from(value)
                    .map_err(|_| tpe("stateless_reset_token is not 16 bytes"))?;
                self.stateless_reset_token = Some(ResetToken(token));
            }
            id::MAX_UDP_PAYLOAD_SIZE => self.max_udp_payload_size = int(value)?,
            id::INITIAL_MAX_DATA => self.initial_max_data = int(value)?,
            id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL => {
                self.initial_max_stream_data_bidi_local = int(value)?
            }
            id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE => {
                self.initial_max_stream_data_bidi_remote = int(value)?
            }
            id::INITIAL_MAX_STREAM_DATA_UNI => self.initial_max_stream_data_uni = int(value)?,
            id::INITIAL_MAX_STREAMS_BIDI => self.initial_max_streams_bidi = int(value)?,
            id::INITIAL_MAX_STREAMS_UNI => self.initial_max_streams_uni = int(value)?,
            id::ACK_DELAY_EXPONENT => self.ack_delay_exponent = int(value)?,
            id::MAX_ACK_DELAY => self.max_ack_delay = int(value)?,
            //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
            //# This
            //# parameter is a zero-length value.
            id::DISABLE_ACTIVE_MIGRATION => self.disable_active_migration = flag(value)?,
            id::PREFERRED_ADDRESS => {
                self.preferred_address = Some(PreferredAddress::decode(value)?)
            }
            id::ACTIVE_CONNECTION_ID_LIMIT => self.active_connection_id_limit = int(value)?,
            id::INITIAL_SOURCE_CONNECTION_ID => {
                self.initial_source_connection_id = Some(cid(value)?)
            }
            id::RETRY_SOURCE_CONNECTION_ID => self.retry_source_connection_id = Some(cid(value)?),
            id::VERSION_INFORMATION => {
                self.version_information = Some(VersionInformation::decode(value)?)
            }
            id::MAX_DATAGRAM_FRAME_SIZE => self.max_datagram_frame_size = Some(int(value)?),
            id::GREASE_QUIC_BIT => self.grease_quic_bit = flag(value)?,
            id::MIN_ACK_DELAY => self.min_ack_delay = Some(int(value)?),
            _ => {}
        }
        Ok(())
    }

    /// Checks every value range and which side may send what. [`Self::decode`] runs it on
    /// received parameters; run it on local parameters before sending them.
    pub fn validate(&self, sender: Side) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
        //# The default for this parameter is the maximum permitted UDP
        //# payload of 65527.  Values below 1200 are invalid.
        if self.max_udp_payload_size.into_inner() < MIN_MAX_UDP_PAYLOAD_SIZE {
            return Err(tpe("max_udp_payload_size below 1200"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
        //# Values above 20 are invalid.
        if self.ack_delay_exponent.into_inner() > MAX_ACK_DELAY_EXPONENT {
            return Err(tpe("ack_delay_exponent above 20"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
        //# Values of 2^14 or greater are invalid.
        if self.max_ack_delay.into_inner() >= MAX_ACK_DELAY_LIMIT_MS {
            return Err(tpe("max_ack_delay of 2^14 or more"));
        }
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-3
        //# Endpoints that support this extension MUST treat receipt of a min_ack_delay that
        //# is greater than the max_ack_delay as a connection error of type
        //# TRANSPORT_PARAMETER_ERROR.
        if self
            .min_ack_delay
            .is_some_and(|m| m.into_inner() > self.max_ack_delay.into_inner() * 1000)
        {
            return Err(tpe("min_ack_delay greater than max_ack_delay"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
        //# The value of the
        //# active_connection_id_limit parameter MUST be at least 2.  An
        //# endpoint that receives a value less than 2 MUST close the
        //# connection with an error of type TRANSPORT_PARAMETER_ERROR.
        if self.active_connection_id_limit.into_inner() < DEFAULT_ACTIVE_CONNECTION_ID_LIMIT {
            return Err(tpe("active_connection_id_limit below 2"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.6
        //# If a max_streams transport parameter or a MAX_STREAMS frame is
        //# received with a value greater than 2^60, this would allow a maximum
        //# stream ID that cannot be expressed as a variable-length integer; see
        //# Section 16.  If either is received, the connection MUST be closed
        //# immediately with a connection error of type TRANSPORT_PARAMETER_ERROR
        //# if the offending value was received in a transport parameter or of
        //# type FRAME_ENCODING_ERROR if it was received in a frame; see
        //# Section 10.2.
        if self.initial_max_streams_bidi.into_inner() > MAX_STREAMS_LIMIT
            || self.initial_max_streams_uni.into_inner() > MAX_STREAMS_LIMIT
        {
            return Err(tpe("initial_max_streams above 2^60"));
        }
        match sender {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
            //# A client MUST NOT include any server-only transport parameter:
            //# original_destination_connection_id, preferred_address,
            //# retry_source_connection_id, or stateless_reset_token.  A server MUST
            //# treat receipt of any of these transport parameters as a connection
            //# error of type TRANSPORT_PARAMETER_ERROR.
            Side::Client => {
                if self.original_destination_connection_id.is_some()
                    || self.preferred_address.is_some()
                    || self.retry_source_connection_id.is_some()
                    || self.stateless_reset_token.is_some()
                {
                    return Err(tpe("server-only transport parameter sent by a client"));
                }
            }
            Side::Server => {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
                //# A server
                //# that chooses a zero-length connection ID MUST NOT provide a
                //# preferred address.
                if self.preferred_address.is_some()
                    && self.initial_source_connection_id.is_some_and(|c| c.is_empty())
                {
                    return Err(tpe("preferred_address with a zero-length connection ID"));
                }
            }
        }
        if let Some(pa) = &self.preferred_address {
            pa.validate()?;
        }
        if let Some(vi) = &self.version_information {
            vi.validate(sender)?;
        }
        Ok(())
    }

    /// Checks the connection-ID parameters the peer (`sender`) declared against what this
    /// endpoint saw in packet headers.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-7.3
    //# An endpoint MUST treat the absence of the
    //# initial_source_connection_id transport parameter from either endpoint
    //# or the absence of the original_destination_connection_id transport
    //# parameter from the server as a connection error of type
    //# TRANSPORT_PARAMETER_ERROR.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-7.3
    //# An endpoint MUST treat the following as a connection error of type
    //# TRANSPORT_PARAMETER_ERROR or PROTOCOL_VIOLATION:
    pub fn authenticate_cids(&self, sender: Side, seen: &HandshakeCids) -> Result<(), Error> {
        match self.initial_source_connection_id {
            None => return Err(tpe("initial_source_connection_id missing")),
            Some(c) if c != seen.peer_initial_scid => {
                return Err(tpe("initial_source_connection_id mismatch"))
            }
            Some(_) => {}
        }
        if sender == Side::Client {
            return Ok(());
        }
        match self.original_destination_connection_id {
            None => return Err(tpe("original_destination_connection_id missing")),
            Some(c) if c != seen.original_dcid => {
                return Err(tpe("original_destination_connection_id mismatch"))
            }
            Some(_) => {}
        }
        match (self.retry_source_connection_id, seen.retry_scid) {
            (None, None) => Ok(()),
            (Some(a), Some(b)) if a == b => Ok(()),
            (Some(_), Some(_)) => Err(tpe("retry_source_connection_id mismatch")),
            (None, Some(_)) => Err(tpe("retry_source_connection_id missing after Retry")),
            (Some(_), None) => Err(tpe("retry_source_connection_id without a Retry")),
        }
    }

    /// The idle timeout, `None` when disabled (0).
    pub fn idle_timeout(&self) -> Option<Duration> {
        let ms = self.max_idle_timeout.into_inner();
        (ms != 0).then(|| Duration::from_millis(ms))
    }

    /// max_ack_delay as a duration.
    pub fn max_ack_delay_duration(&self) -> Duration {
        Duration::from_millis(self.max_ack_delay.into_inner())
    }
}

mod encode;
pub use encode::reserved_id;

/// Fuzz entry point: the first byte picks the sender (low bit: 0 client, 1 server), the rest is
/// decoded. Anything decoded must re-encode and decode to the same value; a mismatch panics
/// (that is the bug a fuzzer looks for).
pub fn fuzz_decode(data: &[u8]) -> Result<(), Error> {
    let (sender, body) = match data.split_first() {
        Some((b, rest)) if b & 1 == 1 => (Side::Server, rest),
        Some((_, rest)) => (Side::Client, rest),
        None => (Side::Client, data),
    };
    let p = TransportParameters::decode(sender, body)?;
    let bytes = p.to_vec();
    assert_eq!(bytes.len(), p.encoded_len());
    assert_eq!(TransportParameters::decode(sender, &bytes).as_ref(), Ok(&p));
    Ok(())
}

/// Writes one parameter: identifier, length, value.
fn put_param(w: &mut Writer<'_>, param: u64, value: &[u8]) -> Result<(), BufferFull> {
    let need = varint::size(param) + varint::size(value.len() as u64) + value.len();
    if need > w.remaining() {
        return Err(BufferFull);
    }
    w.put_varint(param)?;
    w.put_varint_prefixed(value)
}
