//! In-memory TLS handshakes between our client and server [`TlsSession`]s, keys checked both ways.

use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::crypto::key_update::KEY_PHASE_BIT;
use crate::crypto::{
    Cipher, CryptoError, DirectionalKeys, HashAlg, KeyChange, KeyLogTarget, KeySlot, Keys, Level,
    OneRttKeys, Secret, Side, TlsClientConfig, TlsError, TlsServerConfig, TlsSession, Version,
    TAG_LEN,
};
use crate::error::TransportErrorCode;

const ALPN: &str = "hq-interop";

/// A self-signed certificate for `names` and its key.
fn cert(names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    (ck.cert.der().clone(), key)
}

fn server_config(
    ciphers: &[Cipher],
    alpn: &str,
    early_data: bool,
) -> (TlsServerConfig, CertificateDer<'static>) {
    let (cert, key) = cert(&["localhost"]);
    let config = TlsServerConfig::builder(vec![cert.clone()], key)
        .alpn_protocols([alpn])
        .ciphers(ciphers)
        .enable_early_data(early_data)
        .build()
        .unwrap();
    (config, cert)
}

fn client_config(root: CertificateDer<'static>) -> TlsClientConfig {
    TlsClientConfig::builder()
        .add_root_certificate(root)
        .unwrap()
        .alpn_protocols([ALPN])
        .build()
        .unwrap()
}

/// One side of the in-memory handshake.
struct Peer {
    tls: TlsSession,
    handshake: Option<Keys>,
    one_rtt: Option<OneRttKeys>,
    outbox: Vec<(Level, Vec<u8>)>,
}

impl Peer {
    fn new(tls: TlsSession) -> Self {
        Self { tls, handshake: None, one_rtt: None, outbox: Vec::new() }
    }

    /// Drains `write_hs` until it hands over no more keys.
    fn pump(&mut self) -> Result<(), TlsError> {
        for _ in 0..8 {
            let mut buf = Vec::new();
            let w = self.tls.write_hs(&mut buf)?;
            if !buf.is_empty() {
                self.outbox.push((w.level, buf));
            }
            match w.keys {
                None => return Ok(()),
                Some(KeyChange::Handshake(k)) => self.handshake = Some(k),
                Some(KeyChange::OneRtt(k)) => self.one_rtt = Some(*k),
            }
        }
        panic!("write_hs kept producing keys");
    }

    fn done(&self) -> bool {
        !self.tls.is_handshaking() && self.one_rtt.is_some() && self.outbox.is_empty()
    }
}

/// Delivers `from`'s pending CRYPTO data to `to`, level by level, pumping after each chunk as
/// a connection would after each packet.
fn deliver(from: &mut Peer, to: &mut Peer) -> Result<(), TlsError> {
    for (level, data) in std::mem::take(&mut from.outbox) {
        assert_eq!(level, to.tls.read_level(), "data arrives at the level TLS reads");
        to.tls.read_hs(level, &data)?;
        to.pump()?;
    }
    Ok(())
}

/// Runs the handshake to completion (bounded), or returns which side failed and how.
fn run(client: &mut Peer, server: &mut Peer) -> Result<(), (Side, TlsError)> {
    client.pump().map_err(|e| (Side::Client, e))?;
    for _ in 0..6 {
        deliver(client, server).map_err(|e| (Side::Server, e))?;
        deliver(server, client).map_err(|e| (Side::Client, e))?;
        if client.done() && server.done() {
            return Ok(());
        }
    }
    panic!("handshake did not finish in 6 rounds");
}

fn start(
    client_cfg: &TlsClientConfig,
    server_cfg: &TlsServerConfig,
    version: Version,
    sni: &str,
) -> (Peer, Peer) {
    let client = TlsSession::client(client_cfg, version, sni, b"client transport params").unwrap();
    let server = TlsSession::server(server_cfg, version, b"server transport params").unwrap();
    (Peer::new(client), Peer::new(server))
}

/// Seals `payload` in a long-header-shaped packet with `keys` (Handshake / 0-RTT).
fn seal_long(keys: &DirectionalKeys, pn: u64, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0xc3, 0, 0, 0, 1, 0, 0, 0x40, 0x20];
    p.extend_from_slice(&(pn as u32).to_be_bytes());
    let header_len = p.len();
    p.extend_from_slice(payload);
    p.extend_from_slice(&[0; TAG_LEN]);
    keys.packet.seal_in_place(pn, &mut p, header_len).unwrap();
    keys.header.protect(&mut p, header_len - 4).unwrap();
    p
}

fn open_long(keys: &DirectionalKeys, mut p: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
    let pnf = keys.header.unprotect(&mut p, 9)?;
    let n = keys.packet.open_in_place(u64::from(pnf.truncated), &mut p, 9 + pnf.len)?;
    Ok(p[9 + pnf.len..9 + pnf.len + n].to_vec())
}

/// A 1-RTT packet with an 8-byte DCID through the full send path.
fn seal_short(keys: &mut OneRttKeys, pn: u64, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x41];
    p.extend_from_slice(&[0xd0; 8]);
    p.extend_from_slice(&(pn as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p.extend_from_slice(&[0; TAG_LEN]);
    keys.seal(pn, &mut p, 11).unwrap();
    keys.local_header().protect(&mut p, 9).unwrap();
    p
}

fn open_short(keys: &mut OneRttKeys, mut p: Vec<u8>) -> Result<(KeySlot, Vec<u8>), CryptoError> {
    let pnf = keys.remote_header().unprotect(&mut p, 9)?;
    let phase = p[0] & KEY_PHASE_BIT != 0;
    let o = keys.open(phase, u64::from(pnf.truncated), &mut p, 9 + pnf.len)?;
    Ok((o.slot, p[9 + pnf.len..9 + pnf.len + o.len].to_vec()))
}

/// Both directions of both levels carry packets; 1-RTT survives two key updates.
fn check_keys_interoperate(client: &mut Peer, server: &mut Peer) {
    let (ch, sh) = (client.handshake.as_ref().unwrap(), server.handshake.as_ref().unwrap());
    assert_eq!(open_long(&sh.remote, seal_long(&ch.local, 0, b"client hs")).unwrap(), b"client hs");
    assert_eq!(open_long(&ch.remote, seal_long(&sh.local, 0, b"server hs")).unwrap(), b"server hs");

    let (c1, s1) = (client.one_rtt.as_mut().unwrap(), server.one_rtt.as_mut().unwrap());
    assert_eq!(open_short(s1, seal_short(c1, 0, b"hello server")).unwrap().1, b"hello server");
    assert_eq!(open_short(c1, seal_short(s1, 0, b"hello client")).unwrap().1, b"hello client");

    // Tampered ciphertext fails to open, and is counted.
    let mut bad = seal_short(c1, 1, b"tamper me");
    bad[14] ^= 0x20;
    assert_eq!(open_short(s1, bad), Err(CryptoError::DecryptFailed));
    assert_eq!(s1.failed_opens(), 1);

    // Key updates through rustls's secrets: client initiates, then server.
    c1.set_handshake_confirmed();
    s1.set_handshake_confirmed();
    c1.initiate_update().unwrap();
    assert_eq!(
        open_short(s1, seal_short(c1, 2, b"gen 1")).unwrap(),
        (KeySlot::Next, b"gen 1".to_vec())
    );
    assert_eq!(open_short(c1, seal_short(s1, 1, b"ack gen 1")).unwrap().0, KeySlot::Current);
    s1.on_packet_acked(1);
    s1.initiate_update().unwrap();
    assert_eq!(
        open_short(c1, seal_short(s1, 2, b"gen 2")).unwrap(),
        (KeySlot::Next, b"gen 2".to_vec())
    );
    assert_eq!((c1.generation(), s1.generation()), (2, 2));
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.3
//= type=test
//# A QUIC client starts TLS by requesting TLS handshake bytes from TLS.
//# The client acquires handshake bytes before sending its first packet.
//# A QUIC server starts the process by providing TLS with the client's
//# handshake bytes.
#[test]
fn full_handshake_both_versions() {
    for version in [Version::V1, Version::V2] {
        let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
        let client_cfg = client_config(root);
        let (mut client, mut server) = start(&client_cfg, &server_cfg, version, "localhost");
        assert_eq!(client.tls.read_level(), Level::Initial);
        run(&mut client, &mut server).unwrap();

        for p in [&client, &server] {
            assert_eq!(p.tls.alpn_protocol(), Some(ALPN.as_bytes()));
            assert_eq!(p.tls.negotiated_cipher(), Some(Cipher::Aes128Gcm));
            assert_eq!(p.tls.read_level(), Level::OneRtt);
            assert_eq!(p.tls.write_level(), Level::OneRtt);
            assert!(!p.tls.is_resumed());
        }
        assert_eq!(server.tls.server_name(), Some("localhost"));
        assert_eq!(server.tls.peer_transport_parameters(), Some(&b"client transport params"[..]));
        assert_eq!(client.tls.peer_transport_parameters(), Some(&b"server transport params"[..]));
        assert_eq!(client.tls.peer_certificates().map(|c| c.len()), Some(1));
        // The server sent session tickets after the handshake, at the 1-RTT level.
        assert!(client.tls.tickets_received() >= 1);
        check_keys_interoperate(&mut client, &mut server);
    }
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-4.3
//= type=test
//# A typical TLS ClientHello can easily fit into a 1200-byte packet.
#[test]
fn client_hello_fits_one_initial_packet() {
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
    let (mut client, _) = start(&client_config(root), &server_cfg, Version::V1, "localhost");
    client.pump().unwrap();
    assert_eq!(client.outbox.len(), 1);
    let (level, hello) = &client.outbox[0];
    assert_eq!(*level, Level::Initial);
    // 1200 bytes minus the long header (~50 with 20-byte CIDs), CRYPTO frame header and tag.
    assert!(hello.len() < 1100, "ClientHello is {} bytes", hello.len());
}

/// Captures TLS secrets through the key log hook.
#[derive(Debug, Default)]
struct Capture(Mutex<Vec<(String, Vec<u8>)>>);

impl rustls::KeyLog for Capture {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        self.0.lock().unwrap().push((label.to_owned(), secret.to_vec()));
    }
}

impl Capture {
    fn get(&self, label: &str) -> Vec<u8> {
        self.0.lock().unwrap().iter().find(|(l, _)| l == label).map(|(_, s)| s.clone()).unwrap()
    }
}

/// 1-RTT keys rebuilt with this crate's HKDF from the raw traffic secrets (captured through the
/// key log) interoperate with the keys rustls derived, across key updates: two independent key
/// schedules agree.
#[test]
fn raw_secret_schedule_matches_rustls_schedule() {
    for (cipher, hash) in
        [(Cipher::Aes128Gcm, HashAlg::Sha256), (Cipher::Aes256Gcm, HashAlg::Sha384)]
    {
        let (server_cfg, root) = server_config(&[cipher], ALPN, false);
        let capture = Arc::new(Capture::default());
        let client_cfg = TlsClientConfig::builder()
            .add_root_certificate(root)
            .unwrap()
            .alpn_protocols([ALPN])
            .keylog(KeyLogTarget::Custom(capture.clone()))
            .build()
            .unwrap();
        let (mut client, mut server) = start(&client_cfg, &server_cfg, Version::V2, "localhost");
        run(&mut client, &mut server).unwrap();
        let cs = Secret::new(hash, &capture.get("CLIENT_TRAFFIC_SECRET_0")).unwrap();
        let ss = Secret::new(hash, &capture.get("SERVER_TRAFFIC_SECRET_0")).unwrap();
        let mut ours = OneRttKeys::from_secrets(cipher, Version::V2, &cs, &ss).unwrap();
        let theirs = server.one_rtt.as_mut().unwrap();
        ours.set_handshake_confirmed();
        theirs.set_handshake_confirmed();
        assert_eq!(
            open_short(theirs, seal_short(&mut ours, 0, b"raw gen 0")).unwrap().1,
            b"raw gen 0"
        );
        for pn in 1..4 {
            ours.on_packet_acked(pn - 1);
            ours.initiate_update().unwrap();
            let (slot, _) = open_short(theirs, seal_short(&mut ours, pn, b"raw")).unwrap();
            assert_eq!(slot, KeySlot::Next);
            assert_eq!(
                open_short(&mut ours, seal_short(theirs, pn, b"rustls")).unwrap().0,
                KeySlot::Current
            );
        }
    }
}

/// The alert a failed handshake closes with, from whichever side failed.
fn failure(
    client_cfg: &TlsClientConfig,
    server_cfg: &TlsServerConfig,
    sni: &str,
) -> (Side, TlsError) {
    let (mut client, mut server) = start(client_cfg, server_cfg, Version::V1, sni);
    run(&mut client, &mut server).unwrap_err()
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-4.4
//= type=test
//# A client MUST authenticate the identity of the server.
#[test]
fn untrusted_certificate_is_unknown_ca() {
    let (server_cfg, _) = server_config(&Cipher::ALL, ALPN, false);
    // A trusted root with a different name and key: nothing chains to it.
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "some other CA");
    let other_root =
        params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().clone();
    let (side, err) = failure(&client_config(other_root), &server_cfg, "localhost");
    assert_eq!(side, Side::Client);
    assert_eq!(err.code, TransportErrorCode::crypto(48), "{err}");
    assert!(matches!(err.tls, Some(rustls::Error::InvalidCertificate(_))));
    assert_eq!(err.to_error().code.tls_alert(), Some(48));
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-4.8
//= type=test
//# The
//# AlertDescription value is added to 0x0100 to produce a QUIC error
//# code from the range reserved for CRYPTO_ERROR
#[test]
fn wrong_server_name_is_bad_certificate() {
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
    let (side, err) = failure(&client_config(root), &server_cfg, "example.com");
    assert_eq!(side, Side::Client);
    assert_eq!(err.code, TransportErrorCode::crypto(42), "{err}");
    assert_eq!(err.code.0, 0x12a);
}

#[test]
fn dangerous_skip_verify_accepts_any_certificate() {
    let (server_cfg, _) = server_config(&Cipher::ALL, ALPN, false);
    let client_cfg =
        TlsClientConfig::builder().dangerous_skip_verify().alpn_protocols([ALPN]).build().unwrap();
    let (mut client, mut server) =
        start(&client_cfg, &server_cfg, Version::V1, "not-the-name.example");
    run(&mut client, &mut server).unwrap();
    check_keys_interoperate(&mut client, &mut server);
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-8.1
//= type=test
//# When using ALPN, endpoints MUST immediately close a connection (see
//# Section 10.2 of [QUIC-TRANSPORT]) with a no_application_protocol TLS
//# alert (QUIC error code 0x0178; see Section 4.8) if an application
//# protocol is not negotiated.
#[test]
fn alpn_mismatch_is_no_application_protocol() {
    let (server_cfg, root) = server_config(&Cipher::ALL, "h3", false);
    let (side, err) = failure(&client_config(root), &server_cfg, "localhost");
    assert_eq!(side, Side::Server);
    assert_eq!(err.code, TransportErrorCode::crypto(120), "{err}");
    assert_eq!(err.code.0, 0x178);
}

#[test]
fn each_cipher_negotiated_when_offered_alone() {
    for cipher in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm, Cipher::Aes128Gcm] {
        // Offered alone by the client, then by the server.
        let alone = [cipher];
        for client_only in [true, false] {
            let (server_cfg, root) =
                server_config(if client_only { &Cipher::ALL } else { &alone }, ALPN, false);
            let client_cfg = TlsClientConfig::builder()
                .add_root_certificate(root)
                .unwrap()
                .alpn_protocols([ALPN])
                .ciphers(if client_only { &alone } else { &Cipher::ALL })
                .build()
                .unwrap();
            let (mut client, mut server) =
                start(&client_cfg, &server_cfg, Version::V1, "localhost");
            run(&mut client, &mut server).unwrap();
            assert_eq!(client.tls.negotiated_cipher(), Some(cipher));
            assert_eq!(server.one_rtt.as_ref().unwrap().cipher(), cipher);
            check_keys_interoperate(&mut client, &mut server);
        }
    }
}

/// The server picks the cipher in its own order: a client that prefers AES-256-GCM (as rustls
/// clients do) gets AES-128-GCM from a server that lists it first.
#[test]
fn server_order_picks_the_cipher() {
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
    let client_cfg = TlsClientConfig::builder()
        .add_root_certificate(root)
        .unwrap()
        .alpn_protocols([ALPN])
        .ciphers(&[Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305, Cipher::Aes128Gcm])
        .build()
        .unwrap();
    let (mut client, mut server) = start(&client_cfg, &server_cfg, Version::V1, "localhost");
    run(&mut client, &mut server).unwrap();
    assert_eq!(client.tls.negotiated_cipher(), Some(Cipher::Aes128Gcm));
    assert_eq!(server.one_rtt.as_ref().unwrap().cipher(), Cipher::Aes128Gcm);
}

#[test]
fn resumption_and_zero_rtt() {
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, true);
    let client_cfg = TlsClientConfig::builder()
        .add_root_certificate(root)
        .unwrap()
        .alpn_protocols([ALPN])
        .enable_early_data(true)
        .build()
        .unwrap();
    let (mut client, mut server) = start(&client_cfg, &server_cfg, Version::V1, "localhost");
    run(&mut client, &mut server).unwrap();
    assert!(client.tls.zero_rtt_keys().is_none());
    assert!(client.tls.tickets_received() >= 1);

    // Second connection: resumed, with 0-RTT keys on both sides that agree.
    let (mut client, mut server) = start(&client_cfg, &server_cfg, Version::V1, "localhost");
    client.pump().unwrap();
    let client_0rtt = client.tls.zero_rtt_keys().expect("client 0-RTT keys");
    deliver(&mut client, &mut server).unwrap();
    let server_0rtt = server.tls.zero_rtt_keys().expect("server 0-RTT keys");
    assert_eq!(
        open_long(&server_0rtt, seal_long(&client_0rtt, 0, b"early data")).unwrap(),
        b"early data"
    );
    deliver(&mut server, &mut client).unwrap();
    deliver(&mut client, &mut server).unwrap();
    deliver(&mut server, &mut client).unwrap();
    assert!(client.done() && server.done());
    assert!(client.tls.is_resumed() && server.tls.is_resumed());
    assert!(client.tls.is_early_data_accepted());
}

//= https://www.rfc-editor.org/rfc/rfc9369#section-5
//= type=test
//# Clients MUST NOT use a
//# session ticket or token from a QUIC version 1 connection to initiate
//# a QUIC version 2 connection, and vice versa.
#[test]
fn tickets_do_not_cross_versions() {
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
    let client_cfg = client_config(root);
    let handshake = |version| {
        let (mut client, mut server) = start(&client_cfg, &server_cfg, version, "localhost");
        run(&mut client, &mut server).unwrap();
        (client.tls.is_resumed(), server.tls.is_resumed())
    };
    assert_eq!(handshake(Version::V1), (false, false));
    // The client holds v1 tickets only: a v2 connection is a full handshake.
    assert_eq!(handshake(Version::V2), (false, false));
    assert_eq!(handshake(Version::V1), (true, true));
    assert_eq!(handshake(Version::V2), (true, true));
}

//= https://www.rfc-editor.org/rfc/rfc9369#section-5
//= type=test
//# Servers MUST validate the originating version of any session ticket
//# or token and not accept one issued from a different version.
#[test]
fn server_rejects_tickets_from_the_other_version() {
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
    let client_cfg = client_config(root);
    // A client that (wrongly) shares one session store across versions: offer the v1 ticket
    // on a v2 connection by handing rustls the v1 configuration with QUIC v2.
    let (mut client, mut server) = start(&client_cfg, &server_cfg, Version::V1, "localhost");
    run(&mut client, &mut server).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let misbehaving = rustls::quic::ClientConnection::new(
        client_cfg.rustls(Version::V1).clone(),
        rustls::quic::Version::V2,
        name,
        b"tp".to_vec(),
    )
    .unwrap();
    let mut client =
        Peer::new(TlsSession::from_rustls_for_tests(misbehaving.into(), Side::Client, Version::V2));
    let mut server = Peer::new(TlsSession::server(&server_cfg, Version::V2, b"tp").unwrap());
    run(&mut client, &mut server).unwrap();
    assert!(!server.tls.is_resumed(), "a v1 ticket must not resume a v2 connection");
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-6
//= type=test
//# Endpoints MUST treat the receipt of a TLS KeyUpdate message as a connection error of type
//# 0x010a, equivalent to a fatal TLS alert of unexpected_message; see
//# Section 4.8.
#[test]
fn tls_key_update_message_is_unexpected_message() {
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
    let (mut client, mut server) =
        start(&client_config(root), &server_cfg, Version::V1, "localhost");
    run(&mut client, &mut server).unwrap();
    // KeyUpdate(update_not_requested): type 24, length 1, value 0.
    let err = client.tls.read_hs(Level::OneRtt, &[24, 0, 0, 1, 0]).unwrap_err();
    assert_eq!(err.code, TransportErrorCode(0x10a), "{err}");
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-4.4
//= type=test
//# More specifically, servers MUST NOT send post-
//# handshake TLS CertificateRequest messages, and clients MUST treat
//# receipt of such messages as a connection error of type
//# PROTOCOL_VIOLATION.
#[test]
fn post_handshake_certificate_request_is_protocol_violation() {
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
    let (mut client, mut server) =
        start(&client_config(root), &server_cfg, Version::V1, "localhost");
    run(&mut client, &mut server).unwrap();
    // CertificateRequest: type 13, context "" and an empty extension list.
    let err = client.tls.read_hs(Level::OneRtt, &[13, 0, 0, 3, 0, 0, 0]).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::PROTOCOL_VIOLATION, "{err}");
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-8.3
//= type=test
//# A server MUST
//# treat receipt of a CRYPTO frame in a 0-RTT packet as a connection
//# error of type PROTOCOL_VIOLATION.
#[test]
fn crypto_data_at_the_wrong_level() {
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
    let (mut client, mut server) =
        start(&client_config(root), &server_cfg, Version::V1, "localhost");
    assert_eq!(
        server.tls.read_hs(Level::ZeroRtt, b"x").unwrap_err().code,
        TransportErrorCode::PROTOCOL_VIOLATION
    );
    assert_eq!(
        server.tls.read_hs(Level::Handshake, b"x").unwrap_err().code,
        TransportErrorCode::PROTOCOL_VIOLATION
    );
    client.pump().unwrap();
    deliver(&mut client, &mut server).unwrap();
    // Only the server's Initial (ServerHello) arrives: the client then reads Handshake data.
    let (level, sh) = server.outbox.remove(0);
    assert_eq!(level, Level::Initial);
    client.tls.read_hs(level, &sh).unwrap();
    client.pump().unwrap();
    assert!(client.handshake.is_some());
    // New Initial data is now a violation.
    assert_eq!(client.tls.read_level(), Level::Handshake);
    let err = client.tls.read_hs(Level::Initial, &[2, 0, 0, 0]).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::PROTOCOL_VIOLATION);
    // Garbage at the right level is a TLS decode error, as a CRYPTO_ERROR.
    let err = client.tls.read_hs(Level::Handshake, &[0xff, 0, 0, 1, 0]).unwrap_err();
    assert!(err.code.tls_alert().is_some(), "{err}");
}

#[test]
fn keylog_to_a_chosen_file() {
    let path = std::env::temp_dir().join(format!("peregrine-keylog-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let (server_cfg, root) = server_config(&Cipher::ALL, ALPN, false);
    let client_cfg = TlsClientConfig::builder()
        .add_root_certificate(root)
        .unwrap()
        .alpn_protocols([ALPN])
        .keylog(KeyLogTarget::File(path.clone()))
        .build()
        .unwrap();
    let (mut client, mut server) = start(&client_cfg, &server_cfg, Version::V1, "localhost");
    run(&mut client, &mut server).unwrap();
    let log = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        let line =
            log.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("{label} missing"));
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[1].len(), 64, "client random");
        assert_eq!(fields[2].len(), 64, "SHA-256 secret");
    }
}
