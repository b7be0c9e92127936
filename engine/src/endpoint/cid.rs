//! Routable connection IDs: QUIC-LB plaintext format carrying a server ID and a worker index.
//!
//! Every connection ID this endpoint issues has the same length and this layout, written
//! against draft-ietf-quic-load-balancers-21 (keyless "plaintext" configuration):
//!
//! ```text
//! Peregrine Connection ID {
//!   First Octet {
//!     Config Rotation (3),   // configuration id 0..=6; 0b111 = no QUIC-LB configuration
//!     CID Len (5),           // length self-description: total length - 1
//!   },
//!   Server ID (0..120),      // 0 to 15 octets assigned by the configuration agent
//!   Worker (8),              // index of the worker thread that owns the connection
//!   Nonce (32..),            // at least 4 random octets, fresh for every CID
//! }
//! ```
//!
//! A QUIC-LB load balancer is configured with a server ID length of `server_id.len() + 1`:
//! the worker octet is the last octet of the load balancer's server ID field, the way the
//! draft's §7.2 lets a server "reserve ... bytes of the server ID" for in-host
//! demultiplexing, so the Nonce that follows stays random as §5.4 requires. Inside a host,
//! any worker reads the worker octet to forward a packet to the connection's owner.
//!
//! Lengths: `1 + server_id.len() + 1 + 4 <= len <= 20`; the default is 8 octets with no server
//! ID (see [`CidFormat::unconfigured`]). Randomness is an input (`&mut impl RngCore`): the core
//! never draws entropy itself.

use rand::RngCore;

use crate::cid::{ConnectionId, MAX_CID_LEN};

/// Default length of the connection IDs this endpoint issues.
pub const DEFAULT_CID_LEN: usize = 8;
/// Longest server ID (the draft's 19-octet limit on server ID plus nonce, less the worker
/// octet and the 4-octet minimum nonce).
pub const MAX_SERVER_ID_LEN: usize = 14;
/// Fewest random nonce octets in a connection ID.
pub const MIN_NONCE_LEN: usize = 4;
/// Config rotation codepoint of connection IDs issued without a QUIC-LB configuration.
pub const UNROUTABLE_CONFIG: u8 = 0b111;

const LEN_MASK: u8 = 0x1f;

/// Why a [`CidFormat`] cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidFormatError {
    /// The length cannot hold the first octet, server ID, worker octet and a 4-octet nonce, or
    /// exceeds 20 octets.
    #[error("connection ID length {len} outside {min}..=20 for this server ID")]
    BadLength {
        /// The requested length.
        len: usize,
        /// The shortest length the server ID allows.
        min: usize,
    },
    /// The server ID is longer than [`MAX_SERVER_ID_LEN`] octets.
    #[error("server ID longer than {MAX_SERVER_ID_LEN} octets")]
    ServerIdTooLong,
    /// The config rotation value is not 0..=6.
    #[error("config rotation codepoint {0} is not 0..=6 (0b111 is reserved)")]
    BadConfigRotation(u8),
}

/// The shape of the connection IDs an endpoint issues: length, config rotation codepoint and
/// server ID. Generates IDs for a worker and reads the worker and server ID back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CidFormat {
    len: u8,
    config_rotation: u8,
    server_id_len: u8,
    server_id: [u8; MAX_SERVER_ID_LEN],
}

impl Default for CidFormat {
    fn default() -> Self {
        Self::unconfigured(DEFAULT_CID_LEN).unwrap_or(Self {
            len: DEFAULT_CID_LEN as u8,
            config_rotation: UNROUTABLE_CONFIG,
            server_id_len: 0,
            server_id: [0; MAX_SERVER_ID_LEN],
        })
    }
}

impl CidFormat {
    /// Shortest connection ID a server ID of `server_id_len` octets allows.
    pub const fn min_len(server_id_len: usize) -> usize {
        1 + server_id_len + 1 + MIN_NONCE_LEN
    }

    /// A QUIC-LB configuration: IDs of `len` octets carrying `server_id` under config rotation
    /// codepoint `config_rotation` (0..=6).
    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-load-balancers-21#section-3.1
    //# A configuration MUST NOT use the
    //# reserved identifier 0b111 (see Section 3.2 below).
    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-load-balancers-21#section-5.3
    //# The nonce length MUST be at least 4 octets.
    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-load-balancers-21#section-5.3
    //# As QUIC version 1 limits connection IDs to 20 octets, the server ID and nonce
    //# lengths MUST sum to 19 octets or less.
    pub fn new(len: usize, server_id: &[u8], config_rotation: u8) -> Result<Self, CidFormatError> {
        if config_rotation >= UNROUTABLE_CONFIG {
            return Err(CidFormatError::BadConfigRotation(config_rotation));
        }
        Self::build(len, server_id, config_rotation)
    }

    /// IDs of `len` octets for a server with no QUIC-LB configuration: config rotation 0b111
    /// (unroutable for load balancers), no server ID, length self-described.
    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-load-balancers-21#section-3.2
    //# Servers with no active configuration MUST issue connection IDs with the reserved
    //# value of the three most significant bits set to 0b111 to signify the connection
    //# ID is unroutable.  These connection IDs MUST self-encode their length (see
    //# Section 3.3).
    pub fn unconfigured(len: usize) -> Result<Self, CidFormatError> {
        Self::build(len, &[], UNROUTABLE_CONFIG)
    }

    fn build(len: usize, server_id: &[u8], config_rotation: u8) -> Result<Self, CidFormatError> {
        if server_id.len() > MAX_SERVER_ID_LEN {
            return Err(CidFormatError::ServerIdTooLong);
        }
        let min = Self::min_len(server_id.len());
        if !(min..=MAX_CID_LEN).contains(&len) {
            return Err(CidFormatError::BadLength { len, min });
        }
        let mut sid = [0; MAX_SERVER_ID_LEN];
        sid[..server_id.len()].copy_from_slice(server_id);
        Ok(Self {
            len: len as u8,
            config_rotation,
            server_id_len: server_id.len() as u8,
            server_id: sid,
        })
    }

    /// Length of every connection ID of this format: the DCID length of short headers sent to
    /// this endpoint.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.2
    //# An endpoint that uses this design MUST
    //# either use the same connection ID length for all connections or
    //# encode the length of the connection ID such that it can be recovered
    //# without state.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a format has at least the first octet, the worker octet and a nonce.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The config rotation codepoint (0b111 when unconfigured).
    pub fn config_rotation(&self) -> u8 {
        self.config_rotation
    }

    /// The server ID written into every connection ID.
    pub fn server_id(&self) -> &[u8] {
        &self.server_id[..usize::from(self.server_id_len)]
    }

    /// Offset of the worker octet in every connection ID of this format (what a datapath
    /// steers by, e.g. `UdpQueue::open_steered_group`).
    pub fn worker_offset(&self) -> usize {
        1 + usize::from(self.server_id_len)
    }

    fn first_octet(&self) -> u8 {
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-load-balancers-21#section-3.3
        //# However, the remaining 5 bits in the first octet of the Connection ID are
        //# reserved to express the length of the following connection ID, not including
        //# the first octet.
        (self.config_rotation << 5) | ((self.len - 1) & LEN_MASK)
    }

    /// A fresh connection ID owned by `worker`, with a random nonce from `rng`.
    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-load-balancers-21#section-5.4
    //# If there is no key in the configuration, the server MUST fill the Nonce field
    //# with bytes that have no observable relationship to the field in previously
    //# issued connection IDs.
    pub fn generate(&self, worker: u8, rng: &mut impl RngCore) -> ConnectionId {
        let mut b = [0u8; MAX_CID_LEN];
        let len = self.len();
        b[0] = self.first_octet();
        let w = self.worker_offset();
        b[1..w].copy_from_slice(self.server_id());
        b[w] = worker;
        rng.fill_bytes(&mut b[w + 1..len]);
        // `len` was checked against MAX_CID_LEN when the format was built.
        ConnectionId::new(&b[..len]).unwrap_or(ConnectionId::EMPTY)
    }

    /// True when `cid` has this format's length, config rotation and self-described length.
    fn matches_shape(&self, cid: &[u8]) -> bool {
        cid.len() == self.len() && cid[0] == self.first_octet()
    }

    /// The server ID field of `cid` when it has this format's shape (length, config rotation,
    /// self-described length); `None` otherwise. The server ID need not be this endpoint's.
    pub fn decode_server_id<'a>(&self, cid: &'a [u8]) -> Option<&'a [u8]> {
        self.matches_shape(cid).then(|| &cid[1..self.worker_offset()])
    }

    /// The worker index in `cid` when it is a connection ID of this format with this
    /// endpoint's server ID; `None` for anything else (a client-chosen ID, another server's).
    pub fn decode_worker(&self, cid: &[u8]) -> Option<u8> {
        if self.decode_server_id(cid)? != self.server_id() {
            return None;
        }
        Some(cid[self.worker_offset()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use std::collections::HashSet;

    #[test]
    fn every_length_round_trips_worker_and_server_id() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for sid_len in 0..=MAX_SERVER_ID_LEN {
            let sid: Vec<u8> = (0..sid_len as u8).map(|i| 0xa0 ^ i).collect();
            for len in 0..=MAX_CID_LEN + 1 {
                let f = CidFormat::new(len, &sid, 3);
                if len < CidFormat::min_len(sid_len) || len > MAX_CID_LEN {
                    assert!(matches!(f, Err(CidFormatError::BadLength { .. })), "{sid_len} {len}");
                    continue;
                }
                let f = f.unwrap();
                for worker in [0u8, 1, 17, 255] {
                    let cid = f.generate(worker, &mut rng);
                    assert_eq!(cid.len(), len);
                    assert_eq!(cid[0] >> 5, 3, "config rotation");
                    assert_eq!(usize::from(cid[0] & 0x1f), len - 1, "self-described length");
                    assert_eq!(f.decode_worker(&cid), Some(worker));
                    assert_eq!(f.decode_server_id(&cid), Some(&sid[..]));
                }
            }
        }
    }

    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-load-balancers-21#section-3.2
    //= type=test
    //# Servers with no active configuration MUST issue connection IDs with the reserved
    //# value of the three most significant bits set to 0b111 to signify the connection
    //# ID is unroutable.
    #[test]
    fn unconfigured_is_unroutable_and_default() {
        let f = CidFormat::default();
        assert_eq!(f, CidFormat::unconfigured(DEFAULT_CID_LEN).unwrap());
        let cid = f.generate(9, &mut ChaCha20Rng::seed_from_u64(1));
        assert_eq!(cid.len(), 8);
        assert_eq!(cid[0], 0b111_00111);
        assert_eq!(f.decode_worker(&cid), Some(9));
        assert_eq!(CidFormat::new(8, &[1], 7), Err(CidFormatError::BadConfigRotation(7)));
        assert_eq!(CidFormat::new(20, &[0; 15], 0), Err(CidFormatError::ServerIdTooLong));
    }

    #[test]
    fn foreign_ids_do_not_decode() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let ours = CidFormat::new(10, &[1, 2], 1).unwrap();
        let other_server = CidFormat::new(10, &[1, 3], 1).unwrap();
        let other_config = CidFormat::new(10, &[1, 2], 2).unwrap();
        let longer = CidFormat::new(11, &[1, 2], 1).unwrap();
        let cid = other_server.generate(4, &mut rng);
        assert_eq!(ours.decode_worker(&cid), None, "other server");
        assert_eq!(ours.decode_server_id(&cid), Some(&[1, 3][..]));
        assert_eq!(ours.decode_worker(&other_config.generate(4, &mut rng)), None);
        assert_eq!(ours.decode_worker(&longer.generate(4, &mut rng)), None);
        assert_eq!(ours.decode_worker(&[]), None);
        // A wrong self-described length with the right total length.
        let mut bad = ours.generate(4, &mut rng).as_bytes().to_vec();
        bad[0] ^= 0x01;
        assert_eq!(ours.decode_worker(&bad), None);
    }

    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-load-balancers-21#section-5.4
    //= type=test
    //# If there is no key in the configuration, the server MUST fill the Nonce field
    //# with bytes that have no observable relationship to the field in previously
    //# issued connection IDs.
    #[test]
    fn nonces_are_random_and_seeded() {
        let f = CidFormat::new(6, &[], 0).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let set: HashSet<_> = (0..1000).map(|_| f.generate(0, &mut rng)).collect();
        assert!(set.len() >= 999, "4 random octets: collisions are rare");
        let a = f.generate(0, &mut ChaCha20Rng::seed_from_u64(5));
        let b = f.generate(0, &mut ChaCha20Rng::seed_from_u64(5));
        assert_eq!(a, b, "deterministic under a seed");
    }
}
