//! Router tests: helpers that build real client packets, then one file per topic.

mod props;
mod reset;
mod routing;
mod server;

use std::net::SocketAddr;
use std::time::Instant;

use super::*;
use crate::coding::Writer;
use crate::crypto::{self, initial_keys, Side};
use crate::error::TransportErrorCode;
use crate::frame::{CloseKind, Frame, Frames};
use crate::packet::{Coalesced, LongHeader, PacketBuilder, TruncatedPn};
use crate::version;

pub(super) const UNIX: u64 = 1_700_000_000;
pub(super) const RESET_KEY: [u8; 32] = [0x11; 32];
pub(super) const TOKEN_KEY: [u8; 32] = [0x22; 32];

/// The tests' base instant (the one place tests read the clock).
pub(super) fn t0() -> Instant {
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

pub(super) fn client_addr() -> SocketAddr {
    "192.0.2.1:50000".parse().unwrap()
}

pub(super) fn cid(b: &[u8]) -> ConnectionId {
    ConnectionId::new(b).unwrap()
}

pub(super) fn server_config(server: AcceptConfig) -> RouterConfig {
    RouterConfig::new(ResetKey::new(&RESET_KEY), [7; 32])
        .with_worker(3, 8)
        .unwrap()
        .with_server(server)
}

pub(super) fn server(now: Instant, policy: RetryPolicy) -> Router {
    let s = AcceptConfig::new(TokenKey::new(&TOKEN_KEY)).with_retry_policy(policy);
    Router::new(server_config(s), now, UNIX)
}

pub(super) fn client(now: Instant) -> Router {
    Router::new(RouterConfig::new(ResetKey::new(&[0x33; 32]), [9; 32]), now, UNIX)
}

/// A client Initial (version `v`) padded to `size` octets, sealed with the Initial keys of
/// `dcid`, carrying one CRYPTO frame.
pub(super) fn client_initial(
    v: u32,
    dcid: &ConnectionId,
    scid: &ConnectionId,
    token: &[u8],
    size: usize,
) -> Vec<u8> {
    long_packet(LongType::Initial, v, dcid, scid, token, size)
}

pub(super) fn long_packet(
    ty: LongType,
    v: u32,
    dcid: &ConnectionId,
    scid: &ConnectionId,
    token: &[u8],
    size: usize,
) -> Vec<u8> {
    let keys = initial_keys(crypto::Version::from_wire(v).unwrap(), dcid, Side::Client).unwrap();
    let mut buf = vec![0u8; size];
    let mut w = Writer::new(&mut buf);
    let b = PacketBuilder::long(
        &mut w,
        &LongHeader {
            ty,
            version: v,
            dst_cid: *dcid,
            src_cid: *scid,
            token,
            pn: TruncatedPn::encode(0, None).unwrap(),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    w.put_slice(&[0x06, 0x00, 0x04, 1, 2, 3, 4]).unwrap();
    b.pad_datagram_to(&mut w, size, 16).unwrap();
    let l = b.finish(&mut w, 16).unwrap();
    let packet = &mut w.written_mut()[l.range()];
    keys.local.packet.seal_in_place(0, packet, l.header_len).unwrap();
    keys.local.header.protect(packet, l.pn_offset).unwrap();
    let n = w.len();
    buf.truncate(n);
    buf
}

/// A short-header packet of `len` octets to `dcid` (payload random-looking, not protected:
/// the router never decrypts).
pub(super) fn short_packet(dcid: &[u8], len: usize) -> Vec<u8> {
    let mut p = vec![0x41];
    p.extend_from_slice(dcid);
    p.extend((0..len.saturating_sub(p.len())).map(|i| (i * 31 + 7) as u8));
    p.truncate(len);
    p
}

/// Opens a server Initial carrying only CONNECTION_CLOSE, as the client would, with the keys of
/// `initial_dcid`; returns (DCID, SCID, error code).
pub(super) fn open_initial_close(
    v: u32,
    initial_dcid: &ConnectionId,
    datagram: &[u8],
    client_cid_len: usize,
) -> (ConnectionId, ConnectionId, u64) {
    let keys =
        initial_keys(crypto::Version::from_wire(v).unwrap(), initial_dcid, Side::Client).unwrap();
    let mut d = datagram.to_vec();
    let mut packets = Coalesced::new(&mut d, client_cid_len, false);
    let p = packets.next().unwrap().unwrap();
    assert!(packets.next().is_none());
    assert_eq!(p.header.long_type(), Some(LongType::Initial));
    let (dcid, scid) = (*p.header.dst_cid(), *p.header.src_cid().unwrap());
    keys.remote.header.unprotect(p.bytes, p.header.pn_offset().unwrap()).unwrap();
    let h = p.header.finish(p.bytes).unwrap();
    let pn = h.packet_number(None).unwrap();
    let n = keys.remote.packet.open_in_place(pn, p.bytes, h.header_len).unwrap();
    h.check_reserved_bits().unwrap();
    let frames: Vec<_> = Frames::new(&p.bytes[h.header_len..h.header_len + n])
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let close = frames
        .iter()
        .find_map(|f| match f {
            Frame::ConnectionClose(c) => Some(*c),
            _ => None,
        })
        .expect("a CONNECTION_CLOSE frame");
    assert!(matches!(close.kind, CloseKind::Transport { .. }));
    assert!(frames.iter().all(|f| matches!(f, Frame::ConnectionClose(_) | Frame::Padding(_))));
    (dcid, scid, close.error_code.into_inner())
}

pub(super) fn expect_response(ev: DatagramEvent, kind: ResponseKind) -> ResponseDatagram {
    match ev {
        DatagramEvent::Response(r) if r.kind == kind => r.transmit,
        other => panic!("expected a {kind:?} response, got {other:?}"),
    }
}

pub(super) fn expect_new(ev: DatagramEvent) -> IncomingClient {
    match ev {
        DatagramEvent::NewConnection(i) => i,
        other => panic!("expected a new connection, got {other:?}"),
    }
}

#[test]
fn versions_default_to_everything_supported() {
    let r = client(t0());
    assert_eq!(r.config().versions(), &version::SUPPORTED);
    assert!(RouterConfig::new(ResetKey::new(&[0; 32]), [0; 32]).with_versions(&[]).is_err());
    assert!(RouterConfig::new(ResetKey::new(&[0; 32]), [0; 32])
        .with_versions(&[0xff00_001d])
        .is_err());
    let s = AcceptConfig::new(TokenKey::new(&[0; 32]));
    assert_eq!(
        s.clone().with_max_connections(0).unwrap_err(),
        RouterConfigError::Zero("max_connections")
    );
    assert!(s
        .with_token_lifetimes(std::time::Duration::ZERO, std::time::Duration::from_secs(1))
        .is_err());
}
