//! The ACK frequency extension (draft-ietf-quic-ack-frequency) between Peregrine and
//! quinn-proto, each side the data sender in turn: the sender's ACK_FREQUENCY is applied by the
//! other side, which then acknowledges less often than RFC 9000's every second packet.

use peregrine_datapath::sim::LinkConfig;

use crate::app::Peer;
use crate::driver::{Budget, Pair};
use crate::scenarios::{handshake, payload};
use crate::setup::{peregrine_quinn, quinn_peregrine, Setup, DELAY};

/// The server sends `SIZE` bytes on one unidirectional stream; the client reads them all.
/// One direction only, so every ACK the client sends is an ACK-only decision (none rides on
/// its own data).
fn download<C: Peer, S: Peer>(pair: &mut Pair<C, S>) {
    let want = payload(0, 1, SIZE);
    let (mut sid, mut sent, mut cid, mut got) = (None, 0usize, None, Vec::new());
    let r = pair.run_until(Budget::new(2_000_000, 60), |c, s, _| {
        if sid.is_none() {
            sid = s.open_uni();
        }
        if let Some(id) = sid {
            while sent < want.len() {
                let n = s.write(id, &want[sent..]).expect("server write");
                if n == 0 {
                    break;
                }
                sent += n;
            }
            if sent == want.len() {
                let _ = s.finish(id);
            }
        }
        if cid.is_none() {
            cid = c.accept_uni();
        }
        cid.is_some_and(|id| c.read(id, &mut got).expect("client read"))
    });
    r.unwrap_or_else(|e| panic!("download: {e}; client got {} of {SIZE}", got.len()));
    assert!(got == want, "client got wrong bytes ({} of {SIZE})", got.len());
}

/// 100 Mbit/s with a queue that never overflows: data packets arrive one at a time, so each
/// receiver's ACK decisions are per packet.
fn setup(seed: u64) -> Setup {
    let link = LinkConfig {
        rate_bps: Some(100_000_000),
        queue_bytes: 8 << 20,
        ..LinkConfig::with_delay(DELAY)
    };
    Setup { link, max_datagram: Some(1452), ..Setup::new(seed) }
}

const SIZE: usize = 2 << 20;

/// Peregrine sends to a quinn-proto client (which advertises min_ack_delay): Peregrine asks
/// for fewer ACKs once its window is large, and quinn acknowledges accordingly.
#[test]
fn peregrine_sender_asks_quinn_for_fewer_acks() {
    let (mut pair, _) = quinn_peregrine(&setup(61));
    handshake(&mut pair);
    download(&mut pair);
    let server = pair.server.conn().expect("Peregrine server connection").stats();
    let quinn = pair.client.conn().expect("quinn-proto client connection").stats();
    assert!(server.ack_frequency_sent >= 1, "no ACK_FREQUENCY sent: {server:?}");
    assert!(quinn.frame_rx.ack_frequency >= 1, "quinn saw no ACK_FREQUENCY: {:?}", quinn.frame_rx);
    // quinn's ACKs for ~1450 data packets: far fewer than one per two.
    let (threshold, _, _) = pair.server.conn().unwrap().ack_frequency_requested().unwrap();
    assert!(threshold >= 4, "threshold {threshold}");
    let data_packets = SIZE as u64 / 1452;
    eprintln!("quinn sent {} ACKs for ~{data_packets} data packets", quinn.frame_tx.acks);
    assert!(quinn.frame_tx.acks * 4 < data_packets, "quinn ACKs: {}", quinn.frame_tx.acks);
}

/// A quinn-proto server asking (ACK_FREQUENCY, threshold 9) a Peregrine client: Peregrine
/// applies it and acknowledges about once per 10 ack-eliciting packets.
#[test]
fn peregrine_receiver_honours_quinns_ack_frequency() {
    let s = Setup { quinn_ack_threshold: Some(9), ..setup(62) };
    let (mut pair, _) = peregrine_quinn(&s);
    handshake(&mut pair);
    download(&mut pair);
    let client = pair.client.conn().expect("Peregrine client connection").stats();
    let quinn = pair.server.conn().expect("quinn-proto server connection").stats();
    assert!(quinn.frame_tx.ack_frequency >= 1);
    assert!(client.ack_frequency_received >= 1, "{client:?}");
    let (acks, received) = (client.acks_sent, client.ack_eliciting_received);
    eprintln!("Peregrine sent {acks} ACKs for {received} ack-eliciting packets");
    // Threshold 9: one ACK per 10 packets, plus the early ones before the frame arrived.
    assert!(acks * 5 < received, "{acks} ACKs for {received} packets");
}

/// Without ACK_FREQUENCY from quinn-proto (its default), a Peregrine receiver acknowledges
/// every second ack-eliciting packet.
#[test]
fn peregrine_receiver_acks_every_second_packet_by_default() {
    let (mut pair, _) = peregrine_quinn(&setup(63));
    handshake(&mut pair);
    download(&mut pair);
    let client = pair.client.conn().expect("Peregrine client connection").stats();
    let (acks, received) = (client.acks_sent, client.ack_eliciting_received);
    assert_eq!(client.ack_frequency_received, 0);
    assert!(acks * 2 + 8 >= received && received > 1000, "{acks} ACKs for {received} packets");
}
