//! Key update (RFC 9001 §6): derivation against the RFC, generation isolation, the key-phase
//! state machine, and AEAD usage limits.

use super::hex;
use crate::crypto::key_update::KEY_PHASE_BIT;
use crate::crypto::{
    AeadLimits, Cipher, CryptoError, HashAlg, KeySlot, OneRttKeys, PacketKey, Secret, Version,
    TAG_LEN,
};
use crate::error::TransportErrorCode;

const A5_SECRET: &str = "9ac312a7f877468ebe69422748ad00a1 5443f18203a07d6060f688f30f21632b";
const A5_KU_V1: &str = "1223504755036d556342ee9361d25342 1a826c9ecdf3c7148684b36b714881f9";
const A5_KU_V2: &str = "c69374c49e3d2a9466fa689e49d476db 5d0dfbc87d32ceeaa6343fd0ae4c7d88";
const OTHER_SECRET: &str = "0102030405060708090a0b0c0d0e0f10 1112131415161718191a1b1c1d1e1f20";

fn secret(h: &str) -> Secret {
    Secret::new(HashAlg::Sha256, &hex(h)).unwrap()
}

/// A 1-RTT packet with an empty DCID and a 4-byte packet number: header | payload | tag room.
fn plain_packet(pn: u64, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x43];
    p.extend_from_slice(&(pn as u32).to_be_bytes());
    p.extend_from_slice(payload);
    p.extend_from_slice(&[0; TAG_LEN]);
    p
}

/// Seals and header-protects a packet from `keys`.
fn send(keys: &mut OneRttKeys, pn: u64, payload: &[u8]) -> Vec<u8> {
    let mut p = plain_packet(pn, payload);
    keys.seal(pn, &mut p, 5).unwrap();
    keys.local_header().protect(&mut p, 1).unwrap();
    p
}

/// Removes header protection and opens, as a receiver does (pn is small enough that the
/// truncated value is the full packet number).
fn recv(
    keys: &mut OneRttKeys,
    mut p: Vec<u8>,
) -> Result<(crate::crypto::Opened, Vec<u8>), CryptoError> {
    let pnf = keys.remote_header().unprotect(&mut p, 1)?;
    let phase = p[0] & KEY_PHASE_BIT != 0;
    let opened = keys.open(phase, u64::from(pnf.truncated), &mut p, 1 + pnf.len)?;
    Ok((opened, p[5..5 + opened.len].to_vec()))
}

/// A pair of endpoints sharing 1-RTT secrets (ChaCha20, the A.5 secret as the client's).
fn pair(version: Version) -> (OneRttKeys, OneRttKeys) {
    let (c, s) = (secret(A5_SECRET), secret(OTHER_SECRET));
    let client = OneRttKeys::from_secrets(Cipher::ChaCha20Poly1305, version, &c, &s).unwrap();
    let server = OneRttKeys::from_secrets(Cipher::ChaCha20Poly1305, version, &s, &c).unwrap();
    (client, server)
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-6.1
//= type=test
//# secret_<n+1> = HKDF-Expand-Label(secret_<n>, "quic ku",
//#                                  "", Hash.length)
#[test]
fn next_generation_matches_rfc_ku_secret() {
    for (version, ku) in [(Version::V1, A5_KU_V1), (Version::V2, A5_KU_V2)] {
        let (mut client, _) = pair(version);
        // Generation 0 is the A.5 key: the A.5 packet comes out.
        let mut p = {
            let mut p = hex("4200bff4 01");
            p.extend_from_slice(&[0; TAG_LEN]);
            p
        };
        client.seal(654_360_564, &mut p, 4).unwrap();
        client.local_header().protect(&mut p, 1).unwrap();
        let want = if version == Version::V1 {
            "4cfe4189655e5cd55c41f69080575d7999c25a5bfb"
        } else {
            "5558b1c60ae7b6b932bc27d786f4bc2bb20f2162ba"
        };
        assert_eq!(p, hex(want));

        // Generation 1 must be the key derived, independently, from the RFC's `ku` value.
        client.set_handshake_confirmed();
        client.initiate_update().unwrap();
        assert_eq!((client.generation(), client.key_phase()), (1, true));
        let independent =
            PacketKey::from_secret(Cipher::ChaCha20Poly1305, version, &secret(ku)).unwrap();
        let mut ours = plain_packet(77, b"after the update");
        client.seal(77, &mut ours, 5).unwrap();
        let mut theirs = plain_packet(77, b"after the update");
        theirs[0] |= KEY_PHASE_BIT;
        independent.seal_in_place(77, &mut theirs, 5).unwrap();
        assert_eq!(ours, theirs, "{version:?}");
        assert_eq!(ours[0] & KEY_PHASE_BIT, KEY_PHASE_BIT);
    }
}

#[test]
fn generations_do_not_open_each_other() {
    let s0 = secret(A5_SECRET);
    let s1 = s0.next_generation(Version::V1).unwrap();
    let s2 = s1.next_generation(Version::V1).unwrap();
    for cipher in Cipher::ALL {
        let s = |s: &Secret| {
            if cipher.hash() == HashAlg::Sha256 {
                s.clone()
            } else {
                // AES-256-GCM suites hash with SHA-384: stretch the test secret accordingly.
                let mut b = [0u8; 48];
                crate::crypto::hkdf::hkdf_expand_label(
                    HashAlg::Sha256,
                    s.as_bytes(),
                    b"x",
                    &[],
                    &mut b,
                )
                .unwrap();
                Secret::new(HashAlg::Sha384, &b).unwrap()
            }
        };
        let keys: Vec<PacketKey> = [&s0, &s1, &s2]
            .iter()
            .map(|x| PacketKey::from_secret(cipher, Version::V1, &s(x)).unwrap())
            .collect();
        for (i, sealer) in keys.iter().enumerate() {
            let mut sealed = plain_packet(9, b"generation test");
            sealer.seal_in_place(9, &mut sealed, 5).unwrap();
            for (j, opener) in keys.iter().enumerate() {
                let r = opener.open_in_place(9, &mut sealed.clone(), 5);
                if i == j {
                    assert_eq!(r, Ok(15), "{cipher:?} gen {i}");
                } else {
                    assert_eq!(
                        r,
                        Err(CryptoError::DecryptFailed),
                        "{cipher:?} sealed gen {i} opened gen {j}"
                    );
                }
            }
        }
    }
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-6.2
//= type=test
//# If a packet is successfully processed using the next key and IV, then
//# the peer has initiated a key update.  The endpoint MUST update its
//# send keys to the corresponding key phase in response, as described in
//# Section 6.1.
#[test]
fn update_initiate_respond_and_reorder() {
    let (mut client, mut server) = pair(Version::V2);
    client.set_handshake_confirmed();
    server.set_handshake_confirmed();

    // Generation 0 both ways.
    let (o, pt) = recv(&mut server, send(&mut client, 1, b"c1")).unwrap();
    assert_eq!((o.slot, o.generation, pt.as_slice()), (KeySlot::Current, 0, &b"c1"[..]));
    let late_from_server = send(&mut server, 2, b"s2 (delayed)");

    // The client initiates: its next packets use generation 1 and phase 1.
    client.initiate_update().unwrap();
    assert!(client.has_previous());
    let (o, pt) = recv(&mut server, send(&mut client, 3, b"c3")).unwrap();
    assert_eq!((o.slot, o.generation, pt.as_slice()), (KeySlot::Next, 1, &b"c3"[..]));
    // The server responded: it now sends with generation 1 too.
    assert_eq!((server.generation(), server.key_phase()), (1, true));
    let (o, _) = recv(&mut client, send(&mut server, 4, b"s4")).unwrap();
    assert_eq!((o.slot, o.generation), (KeySlot::Current, 1));

    //= https://www.rfc-editor.org/rfc/rfc9001#section-6.5
    //= type=test
    //# A recovered packet number that is lower than any
    //# packet number from the current key phase uses the previous packet
    //# protection keys
    let (o, pt) = recv(&mut client, late_from_server.clone()).unwrap();
    assert_eq!((o.slot, o.generation, pt.as_slice()), (KeySlot::Previous, 0, &b"s2 (delayed)"[..]));

    // Once the previous key is discarded, the same late packet no longer opens.
    client.discard_previous();
    assert_eq!(recv(&mut client, late_from_server).unwrap_err(), CryptoError::DecryptFailed);
    assert_eq!(client.failed_opens(), 1);

    //= https://www.rfc-editor.org/rfc/rfc9001#section-6.1
    //= type=test
    //# An endpoint MUST NOT initiate a
    //# subsequent key update unless it has received an acknowledgment for a
    //# packet that was sent protected with keys from the current key phase.
    assert!(!client.update_permitted());
    assert_eq!(client.initiate_update(), Err(CryptoError::KeyUpdateNotPermitted));
    client.on_packet_acked(1); // acknowledges a generation-0 packet only
    assert!(!client.update_permitted());
    client.on_packet_acked(3);
    assert!(client.update_permitted());
    client.initiate_update().unwrap();
    let (o, _) = recv(&mut server, send(&mut client, 5, b"c5")).unwrap();
    assert_eq!((o.slot, o.generation), (KeySlot::Next, 2));
    assert_eq!((client.key_phase(), server.key_phase()), (false, false));
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-6.1
//= type=test
//# An endpoint MUST NOT initiate a key update prior to having confirmed
//# the handshake (Section 4.1.2).
#[test]
fn no_update_before_confirmation() {
    let (mut client, _) = pair(Version::V1);
    assert!(!client.update_permitted());
    assert_eq!(client.initiate_update(), Err(CryptoError::KeyUpdateNotPermitted));
    assert_eq!(client.generation(), 0);
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-6.3
//= type=test
//# Once generated, the next set of packet protection keys SHOULD be
//# retained, even if the packet that was received was subsequently
//# discarded.
#[test]
fn forged_key_phase_changes_nothing() {
    let (mut client, mut server) = pair(Version::V1);
    client.set_handshake_confirmed();
    // Flip the Key Phase bit of a genuine packet: the header is authenticated, so it fails with
    // the next keys and the receiver's state does not move.
    let mut p = send(&mut client, 1, b"ping");
    let pnf = server.remote_header().unprotect(&mut p, 1).unwrap();
    p[0] ^= KEY_PHASE_BIT;
    assert_eq!(
        server.open(true, u64::from(pnf.truncated), &mut p, 5),
        Err(CryptoError::DecryptFailed)
    );
    assert_eq!((server.generation(), server.key_phase(), server.failed_opens()), (0, false, 1));
    // A genuine update afterwards still works with the retained next keys.
    client.initiate_update().unwrap();
    let (o, _) = recv(&mut server, send(&mut client, 2, b"real")).unwrap();
    assert_eq!(o.slot, KeySlot::Next);
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-6.2
//= type=test
//# An endpoint
//# MAY treat such consecutive key updates as a connection error of type
//# KEY_UPDATE_ERROR.
#[test]
fn consecutive_peer_updates_are_an_error() {
    let (mut client, mut server) = pair(Version::V1);
    client.set_handshake_confirmed();
    client.initiate_update().unwrap();
    recv(&mut server, send(&mut client, 10, b"gen1")).unwrap();
    // A misbehaving client pretends its generation-1 packet was acknowledged and updates again
    // before the server sent anything with generation 1.
    client.on_packet_acked(10);
    client.initiate_update().unwrap();
    let err = recv(&mut server, send(&mut client, 11, b"gen2")).unwrap_err();
    assert_eq!(err, CryptoError::KeyUpdateError);
    assert_eq!(err.connection_error().unwrap().code, TransportErrorCode::KEY_UPDATE_ERROR);
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
//= type=test
//# If the total number of received packets that fail
//# authentication within the connection, across all keys, exceeds the
//# integrity limit for the selected AEAD, the endpoint MUST immediately
//# close the connection with a connection error of type
//# AEAD_LIMIT_REACHED and not process any more packets.
#[test]
fn integrity_limit_counts_failures_across_keys() {
    let (mut client, mut server) = pair(Version::V1);
    server.set_limits(AeadLimits { confidentiality: 100, integrity: 2 });
    let mut bad = send(&mut client, 1, b"x");
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(recv(&mut server, bad.clone()).unwrap_err(), CryptoError::DecryptFailed);
    // A failure at another level (say Handshake) counts too.
    assert_eq!(server.record_failed_open(), Ok(()));
    let err = recv(&mut server, bad).unwrap_err();
    assert_eq!(err, CryptoError::IntegrityLimitReached);
    assert_eq!(err.connection_error().unwrap().code, TransportErrorCode::AEAD_LIMIT_REACHED);
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
//= type=test
//# If the total number of encrypted packets with the same key
//# exceeds the confidentiality limit for the selected AEAD, the endpoint
//# MUST stop using those keys.
#[test]
fn confidentiality_limit_forces_an_update() {
    let (mut client, mut server) = pair(Version::V1);
    client.set_handshake_confirmed();
    client.set_limits(AeadLimits { confidentiality: 16, integrity: 1 << 36 });
    for pn in 0..16 {
        assert_eq!(client.should_update(), pn >= 14, "pn {pn}");
        recv(&mut server, send(&mut client, pn, b"data")).unwrap();
    }
    let mut p = plain_packet(16, b"one too many");
    assert_eq!(client.seal(16, &mut p, 5), Err(CryptoError::ConfidentialityLimitReached));
    // A key update resets the count for the new key.
    client.initiate_update().unwrap();
    assert_eq!(client.sealed_in_phase(), 0);
    recv(&mut server, send(&mut client, 16, b"fresh key")).unwrap();
    assert!(!client.should_update());
}

#[test]
fn seal_checks_header_form_and_room() {
    let (mut client, _) = pair(Version::V1);
    let mut long = plain_packet(1, b"x");
    long[0] = 0xc3;
    assert_eq!(client.seal(1, &mut long, 5), Err(CryptoError::InvalidHeader));
    assert_eq!(client.seal(1, &mut [], 0), Err(CryptoError::PacketTooShort));
    // No room for the tag.
    assert_eq!(client.seal(1, &mut [0x40u8; 20], 5), Err(CryptoError::PacketTooShort));
    assert_eq!(client.sealed_in_phase(), 0);
    assert!(OneRttKeys::from_secrets(
        Cipher::Aes256Gcm,
        Version::V1,
        &secret(A5_SECRET),
        &secret(A5_SECRET)
    )
    .is_err());
}
