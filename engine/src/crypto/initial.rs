//! Initial secrets and keys (RFC 9001 §5.2, RFC 9369 §3.3.1) from the client's original DCID.

use super::aead::Cipher;
use super::hkdf::{hkdf_extract, HashAlg, Secret};
use super::keys::{DirectionalKeys, Keys};
use super::{CryptoError, Side, Version};

/// Longest connection ID QUIC allows; Initial secrets are never derived from a longer one.
const MAX_CID_LEN: usize = 20;

//= https://www.rfc-editor.org/rfc/rfc9001#section-5.2
//# initial_salt = 0x38762cf7f55934b34d179ae6a4c80cadccbb7f0a
/// The QUIC v1 Initial salt.
pub const INITIAL_SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];

//= https://www.rfc-editor.org/rfc/rfc9369#section-3.3.1
//# initial_salt = 0x0dede3def700a6db819381be6e269dcbf9bd2ed9
/// The QUIC v2 Initial salt.
pub const INITIAL_SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// The two Initial secrets of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialSecrets {
    /// `client_initial_secret`: protects packets the client sends.
    pub client: Secret,
    /// `server_initial_secret`: protects packets the server sends.
    pub server: Secret,
}

impl InitialSecrets {
    /// Derives both Initial secrets from the Destination Connection ID of the client's first
    /// Initial packet (or the one chosen by the server in a Retry).
    pub fn new(version: Version, client_dcid: &[u8]) -> Result<Self, CryptoError> {
        if client_dcid.len() > MAX_CID_LEN {
            return Err(CryptoError::InvalidKeyLength);
        }
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.2
        //# The hash
        //# function for HKDF when deriving initial secrets and keys is SHA-256
        //# [SHA].
        //
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.2
        //# initial_secret = HKDF-Extract(initial_salt,
        //#                               client_dst_connection_id)
        let prk = hkdf_extract(HashAlg::Sha256, version.initial_salt(), client_dcid);
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.2
        //# client_initial_secret = HKDF-Expand-Label(initial_secret,
        //#                                           "client in", "",
        //#                                           Hash.length)
        //# server_initial_secret = HKDF-Expand-Label(initial_secret,
        //#                                           "server in", "",
        //#                                           Hash.length)
        let mut client = [0u8; 32];
        let mut server = [0u8; 32];
        prk.expand_label(b"client in", &[], &mut client)?;
        prk.expand_label(b"server in", &[], &mut server)?;
        Ok(Self {
            client: Secret::new(HashAlg::Sha256, &client)?,
            server: Secret::new(HashAlg::Sha256, &server)?,
        })
    }
}

/// Initial packet protection keys for `side`, derived from the client's first DCID.
///
/// `local` protects what `side` sends, `remote` opens what its peer sends.
pub fn initial_keys(version: Version, client_dcid: &[u8], side: Side) -> Result<Keys, CryptoError> {
    let secrets = InitialSecrets::new(version, client_dcid)?;
    //= https://www.rfc-editor.org/rfc/rfc9001#section-5
    //# *  Initial packets use AEAD_AES_128_GCM with keys derived from the
    //#    Destination Connection ID field of the first Initial packet sent
    //#    by the client; see Section 5.2.
    let client = DirectionalKeys::from_secret(Cipher::Aes128Gcm, version, &secrets.client)?;
    let server = DirectionalKeys::from_secret(Cipher::Aes128Gcm, version, &secrets.server)?;
    Ok(match side {
        Side::Client => Keys { local: client, remote: server },
        Side::Server => Keys { local: server, remote: client },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_and_limits() {
        assert_eq!(Version::V1.initial_salt(), &INITIAL_SALT_V1);
        assert_eq!(Version::V2.initial_salt(), &INITIAL_SALT_V2);
        assert!(InitialSecrets::new(Version::V1, &[0; 21]).is_err());
        // Zero-length DCIDs are legal (after a Retry with an empty SCID).
        let a = InitialSecrets::new(Version::V1, &[]).unwrap();
        let b = InitialSecrets::new(Version::V2, &[]).unwrap();
        assert_ne!(a, b);
        assert_ne!(a.client, a.server);
    }
}
