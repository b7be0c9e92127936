//! The version_information transport parameter (RFC 9368 §3).

use super::{tpe, Side};
use crate::coding::{BufferFull, Writer};
use crate::error::Error;

/// Version Information: the version the sender chose and the versions it makes available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInformation {
    /// The version the sender chose for this connection (never 0).
    pub chosen_version: u32,
    /// The sender's available versions (a client's includes its chosen version).
    pub available_versions: Vec<u32>,
}

impl VersionInformation {
    /// Length of the encoded value.
    pub fn encoded_len(&self) -> usize {
        4 * (1 + self.available_versions.len())
    }

    /// Writes the value (without identifier and length).
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        w.put_u32(self.chosen_version)?;
        for v in &self.available_versions {
            w.put_u32(*v)?;
        }
        Ok(())
    }

    /// Parses the value. Which side sent it matters only to [`Self::validate`].
    //= https://www.rfc-editor.org/rfc/rfc9368#section-4
    //# If that leads to a parsing failure (for example, if it is too short or if
    //# its length is not divisible by four), then the endpoint MUST close the
    //# connection; if the connection was using QUIC version 1, that connection closure
    //# MUST use a transport error of type TRANSPORT_PARAMETER_ERROR.
    pub fn decode(value: &[u8]) -> Result<Self, Error> {
        if value.len() < 4 || value.len() % 4 != 0 {
            return Err(tpe("version_information length not a positive multiple of 4"));
        }
        let mut words = value.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        let chosen_version = words.next().unwrap_or(0);
        Ok(Self { chosen_version, available_versions: words.collect() })
    }

    /// Checks the values.
    //= https://www.rfc-editor.org/rfc/rfc9368#section-4
    //# If an endpoint
    //# receives a Chosen Version equal to zero, or any Available Version equal to zero,
    //# it MUST treat it as a parsing failure.
    //= https://www.rfc-editor.org/rfc/rfc9368#section-4
    //# If a server receives Version
    //# Information where the Chosen Version is not included in Available Versions, it
    //# MUST treat it as a parsing failure.
    pub fn validate(&self, sender: Side) -> Result<(), Error> {
        if self.chosen_version == 0 || self.available_versions.contains(&0) {
            return Err(tpe("version_information with version 0"));
        }
        if sender == Side::Client && !self.available_versions.contains(&self.chosen_version) {
            return Err(tpe("client's chosen version not among its available versions"));
        }
        Ok(())
    }
}
