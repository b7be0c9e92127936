//! Transport error codes (RFC 9000 §20) and the internal protocol error type.

use std::fmt;

/// A QUIC transport error code as carried in CONNECTION_CLOSE (type 0x1c).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransportErrorCode(pub u64);

macro_rules! errors {
    {$($name:ident($val:expr) $desc:expr;)*} => {
        impl TransportErrorCode {
            $(
                #[doc = $desc]
                pub const $name: Self = TransportErrorCode($val);
            )*

            /// The RFC's name of this code (`CRYPTO_ERROR` for the 0x0100-0x01ff range), if known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    0x0100..=0x01ff => Some("CRYPTO_ERROR"),
                    _ => None,
                }
            }

            /// What the code means, from RFC 9000 §20.1.
            pub fn description(self) -> &'static str {
                match self.0 {
                    $($val => $desc,)*
                    0x0100..=0x01ff => "the cryptographic handshake failed (TLS alert)",
                    _ => "unknown error code",
                }
            }
        }
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-20.1
//# This section lists the defined QUIC transport error codes that can be
//# used in a CONNECTION_CLOSE frame with a type of 0x1c.
errors! {
    NO_ERROR(0x0) "the connection is being closed abruptly in the absence of any error";
    INTERNAL_ERROR(0x1) "the endpoint encountered an internal error and cannot continue with the connection";
    CONNECTION_REFUSED(0x2) "the server refused to accept a new connection";
    FLOW_CONTROL_ERROR(0x3) "received more data than permitted in advertised data limits";
    STREAM_LIMIT_ERROR(0x4) "received a frame for a stream identifier that exceeded advertised the stream limit for the corresponding stream type";
    STREAM_STATE_ERROR(0x5) "received a frame for a stream that was not in a state that permitted that frame";
    FINAL_SIZE_ERROR(0x6) "received a STREAM frame or a RESET_STREAM frame containing a different final size to the one already established";
    FRAME_ENCODING_ERROR(0x7) "received a frame that was badly formatted";
    TRANSPORT_PARAMETER_ERROR(0x8) "received transport parameters that were badly formatted, included an invalid value, was absent even though it is mandatory, was present though it is forbidden, or is otherwise in error";
    CONNECTION_ID_LIMIT_ERROR(0x9) "the number of connection IDs provided by the peer exceeds the advertised active_connection_id_limit";
    PROTOCOL_VIOLATION(0xa) "detected an error with protocol compliance that was not covered by more specific error codes";
    INVALID_TOKEN(0xb) "received an invalid Retry Token in a client Initial";
    APPLICATION_ERROR(0xc) "the application or application protocol caused the connection to be closed during the handshake";
    CRYPTO_BUFFER_EXCEEDED(0xd) "received more data in CRYPTO frames than can be buffered";
    KEY_UPDATE_ERROR(0xe) "key update error";
    AEAD_LIMIT_REACHED(0xf) "the endpoint has reached the confidentiality or integrity limit for the AEAD algorithm";
    NO_VIABLE_PATH(0x10) "no viable network path exists";
    VERSION_NEGOTIATION_ERROR(0x11) "version negotiation failed or was tampered with (RFC 9368)";
}

impl TransportErrorCode {
    /// The CRYPTO_ERROR code carrying a TLS alert (0x0100 + alert).
    pub const fn crypto(alert: u8) -> Self {
        TransportErrorCode(0x100 | alert as u64)
    }

    /// The TLS alert, when this is a CRYPTO_ERROR.
    pub fn tls_alert(self) -> Option<u8> {
        if (0x100..=0x1ff).contains(&self.0) {
            Some((self.0 & 0xff) as u8)
        } else {
            None
        }
    }
}

impl fmt::Debug for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.tls_alert()) {
            (_, Some(a)) => write!(f, "CRYPTO_ERROR(alert {a})"),
            (Some(n), None) => f.write_str(n),
            (None, None) => write!(f, "TransportErrorCode({:#x})", self.0),
        }
    }
}

impl fmt::Display for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A protocol error detected while processing peer input: the code to send in
/// CONNECTION_CLOSE, the frame type that triggered it (if any) and a static reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// The transport error code.
    pub code: TransportErrorCode,
    /// The type of the frame that triggered the error, when one did.
    pub frame_type: Option<u64>,
    /// A short human-readable reason (sent as the close reason phrase).
    pub reason: &'static str,
}

impl Error {
    /// An error with `code` and `reason`.
    pub const fn new(code: TransportErrorCode, reason: &'static str) -> Self {
        Self { code, frame_type: None, reason }
    }

    /// FRAME_ENCODING_ERROR.
    pub const fn frame_encoding(reason: &'static str) -> Self {
        Self::new(TransportErrorCode::FRAME_ENCODING_ERROR, reason)
    }

    /// PROTOCOL_VIOLATION.
    pub const fn protocol_violation(reason: &'static str) -> Self {
        Self::new(TransportErrorCode::PROTOCOL_VIOLATION, reason)
    }

    /// TRANSPORT_PARAMETER_ERROR.
    pub const fn transport_parameter(reason: &'static str) -> Self {
        Self::new(TransportErrorCode::TRANSPORT_PARAMETER_ERROR, reason)
    }

    /// INTERNAL_ERROR.
    pub const fn internal(reason: &'static str) -> Self {
        Self::new(TransportErrorCode::INTERNAL_ERROR, reason)
    }

    /// Records which frame type triggered the error.
    pub const fn with_frame_type(mut self, frame_type: u64) -> Self {
        self.frame_type = Some(frame_type);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)?;
        if let Some(t) = self.frame_type {
            write!(f, " (frame type {t:#x})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_crypto_range() {
        assert_eq!(TransportErrorCode::FLOW_CONTROL_ERROR.name(), Some("FLOW_CONTROL_ERROR"));
        assert_eq!(TransportErrorCode(0x10).name(), Some("NO_VIABLE_PATH"));
        let c = TransportErrorCode::crypto(40);
        assert_eq!(c.0, 0x128);
        assert_eq!(c.tls_alert(), Some(40));
        assert_eq!(format!("{c:?}"), "CRYPTO_ERROR(alert 40)");
        assert_eq!(TransportErrorCode(0x99).name(), None);
        let e = Error::frame_encoding("bad ack range").with_frame_type(0x02);
        assert_eq!(e.to_string(), "FRAME_ENCODING_ERROR: bad ack range (frame type 0x2)");
    }
}
