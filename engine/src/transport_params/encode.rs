//! Encoding transport parameters, defaults omitted, optionally with a reserved (grease) one.

use super::{
    id, put_param, PreferredAddress, TransportParameters, VersionInformation,
    DEFAULT_ACK_DELAY_EXPONENT, DEFAULT_ACTIVE_CONNECTION_ID_LIMIT, DEFAULT_MAX_ACK_DELAY_MS,
    DEFAULT_MAX_UDP_PAYLOAD_SIZE,
};
use crate::coding::{BufferFull, Writer};
use crate::varint::{self, VarInt};

/// The value of one parameter to encode.
enum Value<'a> {
    Int(VarInt),
    Bytes(&'a [u8]),
    Flag,
    Address(&'a PreferredAddress),
    Versions(&'a VersionInformation),
}

impl Value<'_> {
    fn len(&self) -> usize {
        match self {
            Value::Int(v) => v.size(),
            Value::Bytes(b) => b.len(),
            Value::Flag => 0,
            Value::Address(a) => a.encoded_len(),
            Value::Versions(v) => v.encoded_len(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        match self {
            Value::Int(v) => w.put_varint(v.into_inner()),
            Value::Bytes(b) => w.put_slice(b),
            Value::Flag => Ok(()),
            Value::Address(a) => a.encode(w),
            Value::Versions(v) => v.encode(w),
        }
    }
}

/// The reserved parameter identifier 31 * N + 27 for `n` (reduced so the identifier fits in a
/// variable-length integer). Randomness comes in as `n`.
pub fn reserved_id(n: u64) -> u64 {
    const MAX_N: u64 = (varint::MAX - 27) / 31;
    31 * (n % (MAX_N + 1)) + 27
}

impl TransportParameters {
    /// Calls `f` for each parameter that differs from its default, in identifier order.
    fn each<E>(&self, mut f: impl FnMut(u64, Value<'_>) -> Result<(), E>) -> Result<(), E> {
        let ints = [
            (id::MAX_IDLE_TIMEOUT, self.max_idle_timeout, 0),
            (id::MAX_UDP_PAYLOAD_SIZE, self.max_udp_payload_size, DEFAULT_MAX_UDP_PAYLOAD_SIZE),
            (id::INITIAL_MAX_DATA, self.initial_max_data, 0),
            (id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL, self.initial_max_stream_data_bidi_local, 0),
            (id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE, self.initial_max_stream_data_bidi_remote, 0),
            (id::INITIAL_MAX_STREAM_DATA_UNI, self.initial_max_stream_data_uni, 0),
            (id::INITIAL_MAX_STREAMS_BIDI, self.initial_max_streams_bidi, 0),
            (id::INITIAL_MAX_STREAMS_UNI, self.initial_max_streams_uni, 0),
            (id::ACK_DELAY_EXPONENT, self.ack_delay_exponent, DEFAULT_ACK_DELAY_EXPONENT),
            (id::MAX_ACK_DELAY, self.max_ack_delay, DEFAULT_MAX_ACK_DELAY_MS),
            (
                id::ACTIVE_CONNECTION_ID_LIMIT,
                self.active_connection_id_limit,
                DEFAULT_ACTIVE_CONNECTION_ID_LIMIT,
            ),
        ];
        for param in id::ALL {
            let value = match param {
                id::ORIGINAL_DESTINATION_CONNECTION_ID => {
                    self.original_destination_connection_id.as_ref().map(|c| Value::Bytes(c))
                }
                id::STATELESS_RESET_TOKEN => {
                    self.stateless_reset_token.as_ref().map(|t| Value::Bytes(&t.0))
                }
                id::DISABLE_ACTIVE_MIGRATION => {
                    self.disable_active_migration.then_some(Value::Flag)
                }
                id::PREFERRED_ADDRESS => self.preferred_address.as_ref().map(Value::Address),
                id::INITIAL_SOURCE_CONNECTION_ID => {
                    self.initial_source_connection_id.as_ref().map(|c| Value::Bytes(c))
                }
                id::RETRY_SOURCE_CONNECTION_ID => {
                    self.retry_source_connection_id.as_ref().map(|c| Value::Bytes(c))
                }
                id::VERSION_INFORMATION => self.version_information.as_ref().map(Value::Versions),
                id::MAX_DATAGRAM_FRAME_SIZE => self.max_datagram_frame_size.map(Value::Int),
                id::GREASE_QUIC_BIT => self.grease_quic_bit.then_some(Value::Flag),
                id::MIN_ACK_DELAY => self.min_ack_delay.map(Value::Int),
                _ => ints
                    .iter()
                    .find(|(i, _, _)| *i == param)
                    .filter(|(_, v, default)| v.into_inner() != *default)
                    .map(|(_, v, _)| Value::Int(*v)),
            };
            if let Some(value) = value {
                f(param, value)?;
            }
        }
        Ok(())
    }

    /// Writes the parameters, omitting those equal to their defaults.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-7.4
    //# An endpoint MUST NOT send a parameter more than once in a given
    //# transport parameters extension.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
    //# Transport parameters have a
    //# default value of 0 if the transport parameter is absent, unless
    //# otherwise stated.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        self.each(|param, value| {
            w.put_varint(param)?;
            w.put_varint(value.len() as u64)?;
            value.write(w)
        })
    }

    /// Writes the parameters followed by one reserved parameter (identifier
    /// [`reserved_id`]`(n)`, arbitrary `value`) to exercise the peer's handling of unknown ones.
    pub fn encode_with_grease(
        &self,
        w: &mut Writer<'_>,
        n: u64,
        value: &[u8],
    ) -> Result<(), BufferFull> {
        let param = reserved_id(n);
        let grease = varint::size(param) + varint::size(value.len() as u64) + value.len();
        if self.encoded_len() + grease > w.remaining() {
            return Err(BufferFull);
        }
        self.encode(w)?;
        put_param(w, param, value)
    }

    /// Bytes [`Self::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let mut n = 0;
        let _ = self.each::<()>(|param, value| {
            n += varint::size(param) + varint::size(value.len() as u64) + value.len();
            Ok(())
        });
        n
    }

    /// The encoding in a new vector (for the TLS extension, which takes ownership).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.encoded_len()];
        let mut w = Writer::new(&mut buf);
        // Cannot fail: the buffer has exactly the room needed.
        let _ = self.encode(&mut w);
        buf
    }
}
