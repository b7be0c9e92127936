//! 1-RTT keys and the key-phase state machine of RFC 9001 §6, plus AEAD usage counters (§6.6).
//!
//! # Mechanics (this type) and policy (the connection)
//!
//! [`OneRttKeys`] holds the header keys (never updated), the current send and receive packet
//! keys, the *next* generation (precomputed, so that a packet with a flipped Key Phase bit never
//! triggers key derivation on the receive path), and optionally the *previous* receive key,
//! kept after an update for reordered packets. It selects the key for each received packet,
//! rotates on a peer-initiated update, counts packets sealed per key and authentication failures
//! per connection.
//!
//! The connection decides *when*:
//! - call [`OneRttKeys::set_handshake_confirmed`] once the handshake is confirmed;
//! - report acknowledged 1-RTT packet numbers with [`OneRttKeys::on_packet_acked`];
//! - initiate with [`OneRttKeys::initiate_update`] when [`OneRttKeys::should_update`] says the
//!   confidentiality limit is near (or for any other reason), if [`OneRttKeys::update_permitted`],
//!   and preferably not within 3 PTO of the ACK that confirmed the previous update (RFC 9001
//!   §6.5 SHOULD);
//! - call [`OneRttKeys::discard_previous`] about 3 PTO after an update (§6.5 SHOULD);
//! - close with AEAD_LIMIT_REACHED / KEY_UPDATE_ERROR when `seal` or `open` return
//!   [`CryptoError::ConfidentialityLimitReached`], [`CryptoError::IntegrityLimitReached`] or
//!   [`CryptoError::KeyUpdateError`] (see [`CryptoError::connection_error`]).

use super::aead::{AeadLimits, Cipher};
use super::header::HeaderKey;
use super::hkdf::Secret;
use super::keys::{DirectionalKeys, Keys, PacketKey};
use super::{CryptoError, Version};

/// The Key Phase bit of a short header's first byte.
pub const KEY_PHASE_BIT: u8 = 0x04;

/// Send and receive packet keys of one generation.
#[derive(Debug)]
struct KeyPair {
    local: PacketKey,
    remote: PacketKey,
}

/// Where the next generation's packet keys come from.
enum SecretSource {
    /// Raw secrets of the *next* generation to derive (this crate's HKDF).
    Raw { version: Version, local: Secret, remote: Secret },
    /// rustls's secrets, already advanced to the next generation to derive.
    Rustls(rustls::quic::Secrets),
}

impl SecretSource {
    /// The packet keys of the next generation; advances the secrets by one generation.
    fn next_keys(&mut self, cipher: Cipher) -> Result<KeyPair, CryptoError> {
        match self {
            SecretSource::Raw { version, local, remote } => {
                let pair = KeyPair {
                    local: PacketKey::from_secret(cipher, *version, local)?,
                    remote: PacketKey::from_secret(cipher, *version, remote)?,
                };
                *local = local.next_generation(*version)?;
                *remote = remote.next_generation(*version)?;
                Ok(pair)
            }
            SecretSource::Rustls(secrets) => {
                let set = secrets.next_packet_keys();
                Ok(KeyPair {
                    local: PacketKey::from_rustls(set.local, cipher),
                    remote: PacketKey::from_rustls(set.remote, cipher),
                })
            }
        }
    }
}

/// Which receive key [`OneRttKeys::open`] used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySlot {
    /// The previous generation (a packet sent before the last update, reordered).
    Previous,
    /// The current generation.
    Current,
    /// The next generation: the peer initiated a key update, which is now applied.
    Next,
}

/// What [`OneRttKeys::open`] did with a packet it authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Plaintext length; the plaintext is `packet[header_len..header_len + len]`.
    pub len: usize,
    /// The key that opened it. [`KeySlot::Next`] means the peer updated keys and this endpoint
    /// has now updated its send keys too (RFC 9001 §6.2).
    pub slot: KeySlot,
    /// Generation of the key that opened it (0 for the first 1-RTT keys).
    pub generation: u64,
}

/// 1-RTT packet protection with key updates; see the module docs for who drives what.
pub struct OneRttKeys {
    cipher: Cipher,
    limits: AeadLimits,
    local_header: HeaderKey,
    remote_header: HeaderKey,
    current: KeyPair,
    next: KeyPair,
    previous_remote: Option<PacketKey>,
    secrets: SecretSource,
    key_phase: bool,
    generation: u64,
    handshake_confirmed: bool,
    first_sent_in_phase: Option<u64>,
    first_received_in_phase: Option<u64>,
    acked_in_phase: bool,
    sealed_in_phase: u64,
    failed_opens: u64,
}

impl OneRttKeys {
    /// Keys from the two 1-RTT traffic secrets (`local` protects what this endpoint sends),
    /// derived with this crate's HKDF; later generations use "quic ku" ("quicv2 ku").
    pub fn from_secrets(
        cipher: Cipher,
        version: Version,
        local: &Secret,
        remote: &Secret,
    ) -> Result<Self, CryptoError> {
        if local.hash() != cipher.hash() || remote.hash() != cipher.hash() {
            return Err(CryptoError::InvalidKeyLength);
        }
        let local_keys = DirectionalKeys::from_secret(cipher, version, local)?;
        let remote_keys = DirectionalKeys::from_secret(cipher, version, remote)?;
        let secrets = SecretSource::Raw {
            version,
            local: local.next_generation(version)?,
            remote: remote.next_generation(version)?,
        };
        Self::assemble(cipher, Keys { local: local_keys, remote: remote_keys }, secrets)
    }

    /// Keys handed over by rustls (`KeyChange::OneRtt`): generation 0 and the secrets for the
    /// following generations.
    pub(crate) fn from_rustls(
        cipher: Cipher,
        keys: rustls::quic::Keys,
        next: rustls::quic::Secrets,
    ) -> Result<Self, CryptoError> {
        Self::assemble(cipher, Keys::from_rustls(keys, cipher), SecretSource::Rustls(next))
    }

    fn assemble(
        cipher: Cipher,
        keys: Keys,
        mut secrets: SecretSource,
    ) -> Result<Self, CryptoError> {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.3
        //# For this reason, endpoints MUST be able to retain two sets of packet
        //# protection keys for receiving packets: the current and the next.
        let next = secrets.next_keys(cipher)?;
        Ok(Self {
            cipher,
            limits: cipher.limits(),
            local_header: keys.local.header,
            remote_header: keys.remote.header,
            current: KeyPair { local: keys.local.packet, remote: keys.remote.packet },
            next,
            previous_remote: None,
            secrets,
            key_phase: false,
            generation: 0,
            handshake_confirmed: false,
            first_sent_in_phase: None,
            first_received_in_phase: None,
            acked_in_phase: false,
            sealed_in_phase: 0,
            failed_opens: 0,
        })
    }

    /// The negotiated AEAD.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The usage limits in force (by default [`Cipher::limits`]).
    pub fn limits(&self) -> AeadLimits {
        self.limits
    }

    /// Replaces the usage limits, e.g. with [`Cipher::limits_for_max_packet_size`] when the
    /// endpoint never sends nor opens packets larger than 2048 bytes.
    pub fn set_limits(&mut self, limits: AeadLimits) {
        self.limits = limits;
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4
    //# The same header protection key is used for the duration of the
    //# connection, with the value not changing after a key update (see
    //# Section 6).
    /// Header protection for packets this endpoint sends.
    pub fn local_header(&self) -> &HeaderKey {
        &self.local_header
    }

    /// Header protection for packets the peer sends.
    pub fn remote_header(&self) -> &HeaderKey {
        &self.remote_header
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-6
    //# The Key Phase bit is initially set to 0 for the
    //# first set of 1-RTT packets and toggled to signal each subsequent key
    //# update.
    /// The Key Phase bit this endpoint currently sends.
    pub fn key_phase(&self) -> bool {
        self.key_phase
    }

    /// Key generation in use: 0 for the first 1-RTT keys, +1 per update.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Packets sealed with the current send key.
    pub fn sealed_in_phase(&self) -> u64 {
        self.sealed_in_phase
    }

    /// Received packets that failed authentication during the connection (across all keys,
    /// including those reported through [`OneRttKeys::record_failed_open`]).
    pub fn failed_opens(&self) -> u64 {
        self.failed_opens
    }

    /// True while a previous-generation receive key is retained.
    pub fn has_previous(&self) -> bool {
        self.previous_remote.is_some()
    }

    /// Records that the handshake is confirmed (RFC 9001 §4.1.2): key updates become possible.
    pub fn set_handshake_confirmed(&mut self) {
        self.handshake_confirmed = true;
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-6.1
    //# This can be implemented by tracking the
    //# lowest packet number sent with each key phase and the highest
    //# acknowledged packet number in the 1-RTT space: once the latter is
    //# higher than or equal to the former, another key update can be
    //# initiated.
    /// Reports that the peer acknowledged 1-RTT packet `pn` (the largest acknowledged of an ACK
    /// frame is enough).
    pub fn on_packet_acked(&mut self, pn: u64) {
        if self.first_sent_in_phase.is_some_and(|first| pn >= first) {
            self.acked_in_phase = true;
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-6.1
    //# An endpoint MUST NOT initiate a key update prior to having confirmed
    //# the handshake (Section 4.1.2).  An endpoint MUST NOT initiate a
    //# subsequent key update unless it has received an acknowledgment for a
    //# packet that was sent protected with keys from the current key phase.
    /// True when this endpoint may initiate a key update now.
    pub fn update_permitted(&self) -> bool {
        self.handshake_confirmed && (self.generation == 0 || self.acked_in_phase)
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
    //# Endpoints MUST initiate a key update
    //# before sending more protected packets than the confidentiality limit
    //# for the selected AEAD permits.
    /// True once the current send key has sealed 7/8 of its confidentiality limit: the
    /// connection should initiate a key update (leaving room for the peer to acknowledge).
    pub fn should_update(&self) -> bool {
        let limit = self.limits.confidentiality;
        self.sealed_in_phase >= limit - limit / 8
    }

    /// Initiates a key update (RFC 9001 §6.1): send and receive keys move to the next
    /// generation, the Key Phase bit flips, the old receive key is kept as *previous*.
    pub fn initiate_update(&mut self) -> Result<(), CryptoError> {
        if !self.update_permitted() {
            return Err(CryptoError::KeyUpdateNotPermitted);
        }
        self.rotate()
    }

    /// Moves to the next generation and precomputes the one after it.
    fn rotate(&mut self) -> Result<(), CryptoError> {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-9.5
        //# After
        //# receiving a key update, an endpoint SHOULD generate and save the next
        //# set of receive packet protection keys, as described in Section 6.3.
        let after = self.secrets.next_keys(self.cipher)?;
        let next = std::mem::replace(&mut self.next, after);
        let old = std::mem::replace(&mut self.current, next);
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.1
        //# An endpoint MUST retain old keys until it has successfully
        //# unprotected a packet sent using the new keys.
        self.previous_remote = Some(old.remote);
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.4
        //# An endpoint never sends packets that are protected with old keys.
        //# Only the current keys are used.
        drop(old.local);
        self.key_phase = !self.key_phase;
        self.generation += 1;
        self.first_sent_in_phase = None;
        self.first_received_in_phase = None;
        self.acked_in_phase = false;
        self.sealed_in_phase = 0;
        Ok(())
    }

    /// Discards the previous receive key (RFC 9001 §6.5: about 3 PTO after the update).
    pub fn discard_previous(&mut self) {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.5
        //# An endpoint SHOULD retain old read keys for no more than three times
        //# the PTO after having received a packet protected using the new keys.
        self.previous_remote = None;
    }

    /// Seals a 1-RTT packet in place (see [`PacketKey::seal_in_place`]) with the current key,
    /// after writing the current Key Phase bit into the (unprotected) first byte.
    pub fn seal(
        &mut self,
        pn: u64,
        packet: &mut [u8],
        header_len: usize,
    ) -> Result<(), CryptoError> {
        let first = packet.first_mut().ok_or(CryptoError::PacketTooShort)?;
        if *first & 0x80 != 0 {
            return Err(CryptoError::InvalidHeader);
        }
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
        //# If the total number of encrypted packets with the same key
        //# exceeds the confidentiality limit for the selected AEAD, the endpoint
        //# MUST stop using those keys.
        if self.sealed_in_phase >= self.limits.confidentiality {
            return Err(CryptoError::ConfidentialityLimitReached);
        }
        *first = (*first & !KEY_PHASE_BIT) | if self.key_phase { KEY_PHASE_BIT } else { 0 };
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
        //# Endpoints MUST count the number of encrypted packets for each set of
        //# keys.
        self.current.local.seal_in_place(pn, packet, header_len)?;
        self.sealed_in_phase += 1;
        self.first_sent_in_phase.get_or_insert(pn);
        Ok(())
    }

    /// Counts a packet that failed authentication at another encryption level (Handshake,
    /// 0-RTT): the integrity limit applies across all keys of the connection. Returns
    /// [`CryptoError::IntegrityLimitReached`] once the count exceeds the limit.
    pub fn record_failed_open(&mut self) -> Result<(), CryptoError> {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
        //# In addition to counting packets sent, endpoints MUST count the number
        //# of received packets that fail authentication during the lifetime of a
        //# connection.
        self.failed_opens = self.failed_opens.saturating_add(1);
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
        //# If the total number of received packets that fail
        //# authentication within the connection, across all keys, exceeds the
        //# integrity limit for the selected AEAD, the endpoint MUST immediately
        //# close the connection with a connection error of type
        //# AEAD_LIMIT_REACHED and not process any more packets.
        if self.failed_opens > self.limits.integrity {
            Err(CryptoError::IntegrityLimitReached)
        } else {
            Ok(())
        }
    }

    /// Opens a 1-RTT packet in place. `key_phase` is the Key Phase bit and `pn` the full packet
    /// number, both recovered after removing header protection with
    /// [`OneRttKeys::remote_header`]; `packet[..header_len]` is the unprotected header.
    ///
    /// A flipped Key Phase bit on a packet newer than every packet of the current phase is
    /// tried with the precomputed next keys; if they open it, the peer initiated a key update
    /// and this endpoint updates its send keys too ([`KeySlot::Next`]). An older packet with the
    /// other phase uses the retained previous key. Failures are counted toward the integrity
    /// limit.
    pub fn open(
        &mut self,
        key_phase: bool,
        pn: u64,
        packet: &mut [u8],
        header_len: usize,
    ) -> Result<Opened, CryptoError> {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.5
        //# A recovered packet number that is lower than any
        //# packet number from the current key phase uses the previous packet
        //# protection keys; a recovered packet number that is higher than any
        //# packet number from the current key phase requires the use of the next
        //# packet protection keys.
        let slot = if key_phase == self.key_phase {
            KeySlot::Current
        } else if self.previous_remote.is_some()
            && self.first_received_in_phase.is_none_or(|first| pn < first)
        {
            KeySlot::Previous
        } else {
            KeySlot::Next
        };
        //= https://www.rfc-editor.org/rfc/rfc9001#section-6.3
        //# Endpoints responding to an apparent key update MUST NOT generate a
        //# timing side-channel signal that might indicate that the Key Phase bit
        //# was invalid (see Section 9.5).
        // Every candidate key exists before the packet arrives; new keys are derived only after a
        // packet authenticated with the next keys, never for a forged Key Phase bit.
        let key = match slot {
            KeySlot::Current => &self.current.remote,
            KeySlot::Previous => self.previous_remote.as_ref().unwrap_or(&self.current.remote),
            KeySlot::Next => &self.next.remote,
        };
        let len = match key.open_in_place(pn, packet, header_len) {
            Ok(len) => len,
            Err(CryptoError::DecryptFailed) => {
                //= https://www.rfc-editor.org/rfc/rfc9001#section-5.5
                //# Similarly, a packet
                //# that appears to trigger a key update but cannot be unprotected
                //# successfully MUST be discarded.
                //
                //= https://www.rfc-editor.org/rfc/rfc9001#section-6.3
                //# Once generated, the next set of packet protection keys SHOULD be
                //# retained, even if the packet that was received was subsequently
                //# discarded.
                self.record_failed_open()?;
                return Err(CryptoError::DecryptFailed);
            }
            Err(e) => return Err(e),
        };
        let generation = match slot {
            KeySlot::Current => {
                let first = self.first_received_in_phase.get_or_insert(pn);
                *first = (*first).min(pn);
                self.generation
            }
            KeySlot::Previous => self.generation - 1,
            KeySlot::Next => {
                //= https://www.rfc-editor.org/rfc/rfc9001#section-6.2
                //# If an endpoint detects a second update before it has
                //# sent any packets with updated keys containing an acknowledgment for
                //# the packet that initiated the key update, it indicates that its peer
                //# has updated keys twice without awaiting confirmation.  An endpoint
                //# MAY treat such consecutive key updates as a connection error of type
                //# KEY_UPDATE_ERROR.
                if self.generation > 0 && self.first_sent_in_phase.is_none() {
                    return Err(CryptoError::KeyUpdateError);
                }
                //= https://www.rfc-editor.org/rfc/rfc9001#section-6.2
                //# If a packet is successfully processed using the next key and IV, then
                //# the peer has initiated a key update.  The endpoint MUST update its
                //# send keys to the corresponding key phase in response, as described in
                //# Section 6.1.
                self.rotate()?;
                self.first_received_in_phase = Some(pn);
                self.generation
            }
        };
        Ok(Opened { len, slot, generation })
    }
}

impl std::fmt::Debug for OneRttKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneRttKeys")
            .field("cipher", &self.cipher)
            .field("generation", &self.generation)
            .field("key_phase", &self.key_phase)
            .field("has_previous", &self.previous_remote.is_some())
            .field("sealed_in_phase", &self.sealed_in_phase)
            .field("failed_opens", &self.failed_opens)
            .finish_non_exhaustive()
    }
}
