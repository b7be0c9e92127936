//! Packet protection key handles the connection holds: [`PacketKey`], [`DirectionalKeys`], [`Keys`].

use super::aead::{AeadKey, AeadLimits, Cipher, NONCE_LEN, TAG_LEN};
use super::header::HeaderKey;
use super::hkdf::{Expander, Secret};
use super::{CryptoError, Version};

/// An AEAD packet protection key for one direction, as the connection holds it.
///
/// Whatever produced it (Initial secrets, a raw secret, or TLS through this crate's rustls
/// provider), the work is done by [`AeadKey`]: one in-place code path for every level.
pub struct PacketKey {
    inner: Box<dyn rustls::quic::PacketKey>,
    cipher: Cipher,
}

impl PacketKey {
    /// A key from raw key and IV bytes.
    pub fn new(cipher: Cipher, key: &[u8], iv: &[u8]) -> Result<Self, CryptoError> {
        Ok(Self { inner: Box::new(AeadKey::new(cipher, key, iv)?), cipher })
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.1
    //# The keys used for packet protection are computed from the TLS secrets
    //# using the KDF provided by TLS.
    /// The packet key derived from a traffic secret: "quic key" and "quic iv" ("quicv2 ..." for
    /// v2) expanded with the secret's hash.
    pub fn from_secret(
        cipher: Cipher,
        version: Version,
        secret: &Secret,
    ) -> Result<Self, CryptoError> {
        Self::from_expander(cipher, version, &secret.expander())
    }

    /// [`PacketKey::from_secret`] from the secret's expander.
    fn from_expander(
        cipher: Cipher,
        version: Version,
        secret: &Expander,
    ) -> Result<Self, CryptoError> {
        let labels = version.labels();
        let mut key = [0u8; 32];
        let key = &mut key[..cipher.key_len()];
        secret.expand_label(labels.key, &[], key)?;
        let mut iv = [0u8; NONCE_LEN];
        secret.expand_label(labels.iv, &[], &mut iv)?;
        Self::new(cipher, key, &iv)
    }

    /// Wraps a key produced by this crate's rustls crypto provider.
    pub(crate) fn from_rustls(inner: Box<dyn rustls::quic::PacketKey>, cipher: Cipher) -> Self {
        Self { inner, cipher }
    }

    /// The AEAD.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The RFC 9001 §6.6 usage limits of this key's AEAD.
    pub fn limits(&self) -> AeadLimits {
        AeadLimits {
            confidentiality: self.inner.confidentiality_limit(),
            integrity: self.inner.integrity_limit(),
        }
    }

    /// Seals a packet in place in the transmit buffer.
    ///
    /// `packet` is the whole packet: `header_len` bytes of header (with the packet number
    /// unprotected; it is the associated data), then the plaintext payload, then [`TAG_LEN`]
    /// bytes of room. On return the payload is ciphertext and the last 16 bytes hold the tag.
    /// Nothing is allocated or copied besides the 16-byte tag.
    #[inline]
    pub fn seal_in_place(
        &self,
        pn: u64,
        packet: &mut [u8],
        header_len: usize,
    ) -> Result<(), CryptoError> {
        let body_end = packet.len().checked_sub(TAG_LEN).ok_or(CryptoError::PacketTooShort)?;
        if header_len > body_end {
            return Err(CryptoError::PacketTooShort);
        }
        let (header, rest) = packet.split_at_mut(header_len);
        let (payload, tag_room) = rest.split_at_mut(body_end - header_len);
        let tag = self
            .inner
            .encrypt_in_place(pn, header, payload)
            .map_err(|_| CryptoError::EncryptFailed)?;
        tag_room.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens a packet in place: `packet[..header_len]` is the header with protection already
    /// removed (the associated data), the rest is ciphertext and tag. Returns the plaintext
    /// length; the plaintext is `packet[header_len..header_len + len]`.
    #[inline]
    pub fn open_in_place(
        &self,
        pn: u64,
        packet: &mut [u8],
        header_len: usize,
    ) -> Result<usize, CryptoError> {
        if packet.len() < header_len.saturating_add(TAG_LEN) {
            return Err(CryptoError::PacketTooShort);
        }
        let (header, body) = packet.split_at_mut(header_len);
        self.inner
            .decrypt_in_place(pn, header, body)
            .map(|plain| plain.len())
            .map_err(|_| CryptoError::DecryptFailed)
    }
}

impl std::fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PacketKey({:?}, ..)", self.cipher)
    }
}

/// Packet and header protection keys for one direction of one encryption level.
#[derive(Debug)]
pub struct DirectionalKeys {
    /// Protects (or removes protection from) payloads.
    pub packet: PacketKey,
    /// Protects (or removes protection from) the first byte and the packet number.
    pub header: HeaderKey,
}

impl DirectionalKeys {
    /// The keys derived from a traffic secret with `version`'s labels.
    pub fn from_secret(
        cipher: Cipher,
        version: Version,
        secret: &Secret,
    ) -> Result<Self, CryptoError> {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.1
        //# Both "quic key" and "quic hp" are used to produce keys, so the Length
        //# provided to HKDF-Expand-Label along with these labels is determined
        //# by the size of keys in the AEAD or header protection algorithm.
        let secret = secret.expander();
        let mut hp = [0u8; 32];
        let hp = &mut hp[..cipher.key_len()];
        secret.expand_label(version.labels().hp, &[], hp)?;
        Ok(Self {
            packet: PacketKey::from_expander(cipher, version, &secret)?,
            header: HeaderKey::new(cipher, hp)?,
        })
    }

    /// Converts keys produced by this crate's rustls provider.
    pub(crate) fn from_rustls(keys: rustls::quic::DirectionalKeys, cipher: Cipher) -> Self {
        Self {
            packet: PacketKey::from_rustls(keys.packet, cipher),
            header: HeaderKey::from_rustls(keys.header),
        }
    }
}

/// Keys for both directions of one encryption level.
#[derive(Debug)]
pub struct Keys {
    /// Protects packets this endpoint sends.
    pub local: DirectionalKeys,
    /// Removes protection from packets the peer sends.
    pub remote: DirectionalKeys,
}

impl Keys {
    /// Converts keys produced by this crate's rustls provider.
    pub(crate) fn from_rustls(keys: rustls::quic::Keys, cipher: Cipher) -> Self {
        Self {
            local: DirectionalKeys::from_rustls(keys.local, cipher),
            remote: DirectionalKeys::from_rustls(keys.remote, cipher),
        }
    }
}
