//! A wire tap between the two peers: counts datagrams and reads the key-phase bit of 1-RTT
//! packets, independently of both implementations.
//!
//! The key-phase bit is under header protection, and the 1-RTT header-protection key never
//! changes across key updates (RFC 9001 §6). Given the first 1-RTT traffic secrets (from a
//! rustls key log of the quinn-proto side), the tap derives the header-protection keys with
//! aws-lc-rs (AES-128, the only suite the quinn-proto side offers in these tests) and unmasks the
//! first byte of each short-header packet it saw: the number of key-phase flips per direction
//! proves that both peers really switched keys.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::quic::{HeaderProtectionKey, AES_128};
use aws_lc_rs::hkdf;
use peregrine_datapath::{Ecn, TxBuffer};

/// A short-header packet as seen on the wire: its protected first byte and its sample.
struct Protected {
    first: u8,
    sample: [u8; 16],
}

/// What one direction carried.
#[derive(Default)]
struct Direction {
    datagrams: usize,
    bytes: usize,
    /// Destination connection ID length of short headers in this direction (learnt from the
    /// receiver's source connection ID in its long headers).
    dcid_len: Option<usize>,
    short: Vec<Protected>,
    /// Short-header datagrams seen before the CID length was known (not analysed).
    unparsed: usize,
    /// Retry packets.
    retries: usize,
    /// Bytes of Handshake packets (long header type 2).
    handshake_bytes: usize,
    /// 0-RTT packets (long header type 1).
    zero_rtt: usize,
    /// Largest datagram.
    max_len: usize,
    /// Transmit calls, and the ECN codepoint of the last one.
    transmits: usize,
    last_ecn: Ecn,
}

/// The tap. Direction 0 is client -> server, 1 is server -> client.
pub struct Tap {
    client: SocketAddr,
    dirs: [Direction; 2],
}

impl Tap {
    /// A tap between `client` and `server`.
    pub fn new(client: SocketAddr, _server: SocketAddr) -> Self {
        Self { client, dirs: [Direction::default(), Direction::default()] }
    }

    /// Records a transmit from `from` (every GSO segment).
    pub fn record(&mut self, from: SocketAddr, buf: &TxBuffer) {
        let dir = usize::from(from != self.client);
        self.dirs[dir].transmits += 1;
        self.dirs[dir].last_ecn = buf.meta.ecn;
        let seg = buf.meta.segment_size.unwrap_or(buf.len()).max(1);
        for datagram in buf.data().chunks(seg) {
            self.dirs[dir].datagrams += 1;
            self.dirs[dir].bytes += datagram.len();
            self.dirs[dir].max_len = self.dirs[dir].max_len.max(datagram.len());
            self.record_datagram(dir, datagram);
        }
    }

    fn record_datagram(&mut self, dir: usize, mut d: &[u8]) {
        // Walk coalesced long-header packets; the short-header packet, if any, is last.
        while let Some(&first) = d.first() {
            if first & 0x80 == 0 {
                let this = &mut self.dirs[dir];
                let Some(dcid_len) = this.dcid_len else {
                    this.unparsed += 1;
                    return;
                };
                let at = 1 + dcid_len + 4;
                if let Some(sample) = d.get(at..at + 16) {
                    let sample = sample.try_into().expect("16 bytes");
                    this.short.push(Protected { first, sample });
                }
                return;
            }
            // Long header: flags, version(4), dcid len + dcid, scid len + scid, ...
            let Some(&dcid_len) = d.get(5) else { return };
            let scid_at = 6 + usize::from(dcid_len);
            let Some(&scid_len) = d.get(scid_at) else { return };
            // Short headers towards this packet's sender carry its SCID.
            self.dirs[1 - dir].dcid_len.get_or_insert(usize::from(scid_len));
            let ty = (first >> 4) & 0x3;
            let mut at = scid_at + 1 + usize::from(scid_len);
            if ty == 0 {
                // Initial: token length + token.
                let Some((len, n)) = varint(&d[at.min(d.len())..]) else { return };
                at += n + len as usize;
            }
            if ty == 3 {
                self.dirs[dir].retries += 1;
                return; // Retry: nothing after it.
            }
            let Some((len, n)) = varint(&d[at.min(d.len())..]) else { return };
            let end = at + n + len as usize;
            if end > d.len() {
                return;
            }
            if ty == 2 {
                self.dirs[dir].handshake_bytes += end;
            }
            if ty == 1 {
                self.dirs[dir].zero_rtt += 1;
            }
            d = &d[end..];
        }
    }

    /// Datagrams sent client -> server and server -> client.
    pub fn datagrams(&self) -> (usize, usize) {
        (self.dirs[0].datagrams, self.dirs[1].datagrams)
    }

    /// The largest datagram client -> server and server -> client.
    pub fn max_datagram(&self) -> (usize, usize) {
        (self.dirs[0].max_len, self.dirs[1].max_len)
    }

    /// Transmit calls (a GSO train counts once) client -> server and server -> client.
    pub fn transmits(&self) -> (usize, usize) {
        (self.dirs[0].transmits, self.dirs[1].transmits)
    }

    /// The ECN codepoint each side set on its last transmit (client, server).
    pub fn last_ecn(&self) -> (Ecn, Ecn) {
        (self.dirs[0].last_ecn, self.dirs[1].last_ecn)
    }

    /// 0-RTT packets sent by the client and by the server.
    pub fn zero_rtt_packets(&self) -> (usize, usize) {
        (self.dirs[0].zero_rtt, self.dirs[1].zero_rtt)
    }

    /// Bytes of Handshake packets sent by the client and by the server.
    pub fn handshake_bytes(&self) -> (usize, usize) {
        (self.dirs[0].handshake_bytes, self.dirs[1].handshake_bytes)
    }

    /// Retry packets sent by the server.
    pub fn retries(&self) -> usize {
        self.dirs[1].retries
    }

    /// Payload bytes sent client -> server and server -> client.
    pub fn bytes(&self) -> (usize, usize) {
        (self.dirs[0].bytes, self.dirs[1].bytes)
    }

    /// The key phases of the 1-RTT packets of each direction, in send order with runs collapsed
    /// (so `[0, 1, 0]` means two key updates), using the first 1-RTT secrets from `keys`.
    pub fn key_phases(&self, keys: &KeyLog) -> Result<[Vec<u8>; 2], String> {
        let secrets = keys.secrets.lock().expect("key log lock");
        let find = |label: &str| {
            secrets
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, s)| s.clone())
                .ok_or_else(|| format!("no {label} in the key log"))
        };
        let hp = [
            hp_key(&find("CLIENT_TRAFFIC_SECRET_0")?)?,
            hp_key(&find("SERVER_TRAFFIC_SECRET_0")?)?,
        ];
        let mut out = [Vec::new(), Vec::new()];
        for (dir, runs) in out.iter_mut().enumerate() {
            for p in &self.dirs[dir].short {
                let mask = hp[dir].new_mask(&p.sample).map_err(|e| format!("mask: {e:?}"))?;
                let phase = ((p.first ^ (mask[0] & 0x1f)) >> 2) & 1;
                if runs.last() != Some(&phase) {
                    runs.push(phase);
                }
            }
        }
        Ok(out)
    }
}

/// HKDF-Expand-Label(secret, "quic hp", "", 16) (RFC 9001 §5.4.1, RFC 8446 §7.1), SHA-256.
fn hp_key(secret: &[u8]) -> Result<HeaderProtectionKey, String> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let label = b"tls13 quic hp";
    let info = [&16u16.to_be_bytes()[..], &[label.len() as u8], label, &[0u8]];
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret);
    let okm = prk.expand(&info, Len(16)).map_err(|_| "hkdf expand")?;
    let mut key = [0u8; 16];
    okm.fill(&mut key).map_err(|_| "hkdf fill")?;
    HeaderProtectionKey::new(&AES_128, &key).map_err(|e| format!("hp key: {e:?}"))
}

/// A QUIC variable-length integer and its encoded length.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let n = 1usize << (first >> 6);
    let bytes = b.get(..n)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = (v << 8) | u64::from(x);
    }
    Some((v, n))
}

/// Logged secrets: (NSS key log label, secret).
type Secrets = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A rustls key log that keeps every secret in memory (labels and secrets, one connection).
#[derive(Clone, Debug, Default)]
pub struct KeyLog {
    secrets: Secrets,
}

impl rustls::KeyLog for KeyLog {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        self.secrets.lock().expect("key log lock").push((label.to_owned(), secret.to_vec()));
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}
