//! Packet protection and TLS: AEAD and header protection on aws-lc-rs, Initial secrets, Retry
//! integrity, key update, and TLS 1.3 through rustls's QUIC API (RFC 9001, RFC 9369 §3.3).
//!
//! - [`aead`]: [`Cipher`], its RFC 9001 §6.6 limits, and [`AeadKey`], the in-place AEAD.
//! - [`header`]: [`HeaderKey`] masks and applies/removes header protection on raw packets.
//! - [`keys`]: [`PacketKey`], [`DirectionalKeys`], [`Keys`]: what the connection holds per level.
//! - [`hkdf`]: HKDF-Expand-Label and the v1/v2 labels.
//! - [`initial`]: Initial secrets and keys from the client's original DCID.
//! - [`retry`]: the Retry Integrity Tag.
//! - [`key_update`]: [`OneRttKeys`], the key-phase state machine and AEAD usage counters.
//! - [`provider`]: the rustls crypto provider whose QUIC keys are this module's types, so every
//!   encryption level goes through the same in-place code.
//! - [`config`], [`tls`]: TLS configuration builders and [`TlsSession`]; [`certs`]: PEM files
//!   and the verifier behind `dangerous_skip_verify`.
//!
//! Sealing writes into the caller's transmit buffer (`header | payload | 16 bytes of room`),
//! opening decrypts in place; nothing is allocated per packet. Malformed or short packets are
//! errors, never panics.

pub mod aead;
pub mod certs;
pub mod config;
pub mod header;
pub mod hkdf;
pub mod hmac;
pub mod initial;
pub mod key_update;
pub mod keys;
pub mod provider;
pub mod retry;
mod session;
pub mod tls;

#[cfg(test)]
mod tests;

pub use aead::{AeadKey, AeadLimits, Cipher, TAG_LEN};
pub use certs::{read_pem_certs, read_pem_key, SkipServerVerification};
pub use config::{KeyLogTarget, TlsClientConfig, TlsConfigError, TlsServerConfig};
pub use header::{HeaderKey, PacketNumberField};
pub use hkdf::{HashAlg, Secret};
pub use initial::{initial_keys, InitialSecrets};
pub use key_update::{KeySlot, OneRttKeys, Opened};
pub use keys::{DirectionalKeys, Keys, PacketKey};
pub use retry::{retry_integrity_tag, verify_retry_integrity};
pub use tls::{HandshakeWrite, KeyChange, TlsError, TlsSession};

use crate::error::{Error, TransportErrorCode};

/// A QUIC version with a packet protection scheme this module implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// QUIC version 1 (RFC 9000, RFC 9001).
    V1,
    /// QUIC version 2 (RFC 9369).
    V2,
}

impl Version {
    /// The version for a wire version number, if supported.
    pub fn from_wire(v: u32) -> Option<Self> {
        match v {
            crate::version::V1 => Some(Version::V1),
            crate::version::V2 => Some(Version::V2),
            _ => None,
        }
    }

    /// The wire version number.
    pub fn to_wire(self) -> u32 {
        match self {
            Version::V1 => crate::version::V1,
            Version::V2 => crate::version::V2,
        }
    }

    /// The HKDF labels of this version.
    pub fn labels(self) -> &'static hkdf::Labels {
        match self {
            Version::V1 => &hkdf::LABELS_V1,
            Version::V2 => &hkdf::LABELS_V2,
        }
    }

    /// The salt of the Initial secrets.
    pub fn initial_salt(self) -> &'static [u8; 20] {
        match self {
            Version::V1 => &initial::INITIAL_SALT_V1,
            Version::V2 => &initial::INITIAL_SALT_V2,
        }
    }

    pub(crate) fn rustls(self) -> rustls::quic::Version {
        match self {
            Version::V1 => rustls::quic::Version::V1,
            Version::V2 => rustls::quic::Version::V2,
        }
    }
}

impl TryFrom<u32> for Version {
    type Error = CryptoError;
    fn try_from(v: u32) -> Result<Self, CryptoError> {
        Version::from_wire(v).ok_or(CryptoError::UnsupportedVersion(v))
    }
}

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The endpoint that sent the first Initial.
    Client,
    /// The endpoint that accepted it.
    Server,
}

/// An encryption level (RFC 9001 §4): which keys protect a packet. Ordered as the handshake
/// progresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Initial packets (keys from the client's DCID).
    Initial,
    /// 0-RTT packets (early data; never carries CRYPTO frames).
    ZeroRtt,
    /// Handshake packets.
    Handshake,
    /// 1-RTT (short header) packets.
    OneRtt,
}

/// Why a packet protection operation failed. Most mean "discard this packet"; see
/// [`CryptoError::connection_error`] for the ones that must close the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A key, IV or secret had the wrong length (or a connection ID was longer than 20 bytes).
    #[error("key material of the wrong length")]
    InvalidKeyLength,
    /// The packet is too short for its header, the header protection sample or the tag.
    #[error("packet too short")]
    PacketTooShort,
    /// The first byte is not the header form this operation expects.
    #[error("wrong header form for this key")]
    InvalidHeader,
    /// Authentication failed: the packet must be discarded.
    #[error("packet failed authentication")]
    DecryptFailed,
    /// The AEAD refused to seal (payload too large).
    #[error("encryption failed")]
    EncryptFailed,
    /// The QUIC version has no packet protection scheme here.
    #[error("unsupported QUIC version {0:#010x}")]
    UnsupportedVersion(u32),
    /// The current send key reached its confidentiality limit: a key update is required.
    #[error("AEAD confidentiality limit reached")]
    ConfidentialityLimitReached,
    /// Too many packets failed authentication: the connection must close (AEAD_LIMIT_REACHED).
    #[error("AEAD integrity limit reached")]
    IntegrityLimitReached,
    /// A key update was requested before the handshake was confirmed or before a packet of the
    /// current phase was acknowledged.
    #[error("key update not permitted yet")]
    KeyUpdateNotPermitted,
    /// The peer updated keys twice without waiting for confirmation (KEY_UPDATE_ERROR).
    #[error("peer updated keys twice without confirmation")]
    KeyUpdateError,
}

impl CryptoError {
    /// The connection error this failure requires, if any (the rest mean "drop the packet" or
    /// are local misuse).
    pub fn connection_error(self) -> Option<Error> {
        match self {
            //= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
            //# If a key update is not possible or
            //# integrity limits are reached, the endpoint MUST stop using the
            //# connection and only send stateless resets in response to receiving
            //# packets.  It is RECOMMENDED that endpoints immediately close the
            //# connection with a connection error of type AEAD_LIMIT_REACHED before
            //# reaching a state where key updates are not possible.
            CryptoError::IntegrityLimitReached => Some(Error::new(
                TransportErrorCode::AEAD_LIMIT_REACHED,
                "AEAD integrity limit reached",
            )),
            CryptoError::ConfidentialityLimitReached => Some(Error::new(
                TransportErrorCode::AEAD_LIMIT_REACHED,
                "AEAD confidentiality limit reached",
            )),
            //= https://www.rfc-editor.org/rfc/rfc9001#section-6.7
            //# The KEY_UPDATE_ERROR error code (0x0e) is used to signal errors
            //# related to key updates.
            CryptoError::KeyUpdateError => Some(Error::new(
                TransportErrorCode::KEY_UPDATE_ERROR,
                "peer updated keys twice without confirmation",
            )),
            _ => None,
        }
    }
}
