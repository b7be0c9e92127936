//! Acknowledgment policy on the simulated network: RFC 9000 §13.2's ACK every second
//! ack-eliciting packet by default, fewer ACKs between Peregrine peers through the ACK
//! frequency extension (draft-ietf-quic-ack-frequency), IMMEDIATE_ACK answered at once.

use std::time::Duration;

use peregrine_datapath::sim::{Blackhole, LinkConfig};

use super::pair::PairConfig;
use super::transfer::{check, run_until_done};
use crate::connection::TransportConfig;

/// 100 Mbit/s, 10 ms each way, a queue that never overflows: packets arrive one at a time
/// (one every ~116 us), so every ACK decision is a per-packet one.
fn paced_link() -> LinkConfig {
    LinkConfig {
        rate_bps: Some(100_000_000),
        queue_bytes: 8 << 20,
        mtu: Some(1500),
        ..LinkConfig::with_delay(Duration::from_millis(10))
    }
}

fn cfg(client: TransportConfig, server: TransportConfig) -> PairConfig {
    let link = paced_link();
    PairConfig { up: link.clone(), down: link, client, server, ..PairConfig::default() }
}

const DOWN: (usize, u64) = (1, 3 << 20);

//= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.2
//= type=test
//# A receiver SHOULD send an ACK frame after receiving at least two ack-
//# eliciting packets.
#[test]
fn rfc_default_acks_every_second_packet() {
    let off = || TransportConfig::default().with_ack_frequency(false);
    let o =
        run_until_done(cfg(off().with_rng_seed(1), off().with_rng_seed(2)), (0, 0), DOWN, 400_000);
    check(&o, (0, 0), DOWN);
    let c = o.pair.client.stats();
    let s = o.pair.server.as_ref().unwrap().stats();
    assert_eq!((s.ack_frequency_sent, c.ack_frequency_received), (0, 0));
    assert_eq!(s.packets_lost, 0);
    // One ACK per two ack-eliciting packets (a lone last packet waits for max_ack_delay), plus
    // one at once for each gap the server's lost jumbo-size PMTU probes leave.
    let (acks, received) = (c.acks_sent, c.ack_eliciting_received);
    let gaps = s.pmtu_probes_lost;
    assert!(received > 2000, "{received} packets");
    assert!(acks * 2 >= received - 2, "{acks} ACKs for {received}");
    assert!(acks * 2 <= received + 2 * gaps + 8, "{acks} ACKs for {received}, {gaps} gaps");
}

//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6
//= type=test
//# - The number of received ack-eliciting packets is greater than the
//#   Ack-Eliciting Threshold.
#[test]
fn ack_frequency_between_peregrine_peers_follows_the_window() {
    let on = TransportConfig::default;
    let o =
        run_until_done(cfg(on().with_rng_seed(1), on().with_rng_seed(2)), (0, 0), DOWN, 400_000);
    check(&o, (0, 0), DOWN);
    let c = o.pair.client.stats();
    let server = o.pair.server.as_ref().unwrap();
    let s = server.stats();
    assert_eq!(s.packets_lost, 0);
    assert!(s.ack_frequency_sent >= 1);
    assert_eq!(c.ack_frequency_received, s.ack_frequency_sent, "every request applied");
    // The last request: an eighth of the window in packets (at most 127), at most the RTT,
    // the loss detector's packet threshold.
    let (threshold, delay, reorder) = server.ack_frequency_requested().unwrap();
    let window_packets = s.cwnd / s.pmtu;
    assert!(threshold >= 8, "threshold {threshold}");
    // Requests follow the window within the 1.5x hysteresis.
    let want = (window_packets / 8).min(127);
    assert!(threshold * 3 >= want * 2 && threshold * 2 <= want * 3, "{threshold} vs {want}");
    assert!(delay >= Duration::from_millis(1) && delay <= s.smoothed_rtt, "{delay:?}");
    assert_eq!(reorder, crate::recovery::PACKET_THRESHOLD);
    // Far fewer ACKs than one per two packets, yet still several per round trip.
    let (acks, received) = (c.acks_sent, c.ack_eliciting_received);
    assert!(acks * 6 < received, "{acks} ACKs for {received} packets");
    let rtts = o.pair.net.elapsed().as_millis() as u64 / 20;
    assert!(acks >= rtts * 2, "{acks} ACKs in ~{rtts} round trips");
}

/// A peer without the extension (it never advertised min_ack_delay) is never sent
/// ACK_FREQUENCY, and acknowledges by RFC 9000.
#[test]
fn no_ack_frequency_to_a_peer_without_the_extension() {
    let on = TransportConfig::default().with_rng_seed(2);
    let off = TransportConfig::default().with_ack_frequency(false).with_rng_seed(1);
    let o = run_until_done(cfg(off, on), (0, 0), DOWN, 400_000);
    check(&o, (0, 0), DOWN);
    let c = o.pair.client.stats();
    assert_eq!(o.pair.server.as_ref().unwrap().stats().ack_frequency_sent, 0);
    assert!(c.acks_sent * 2 + 8 >= c.ack_eliciting_received);
}

//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-5
//= type=test
//# An endpoint SHOULD send a packet containing an ACK frame
//# immediately upon receiving an IMMEDIATE_ACK frame.
#[test]
fn pto_probes_carry_immediate_ack_and_are_answered_at_once() {
    use super::pair::Pair;
    let mut pair = Pair::new(cfg(TransportConfig::default(), TransportConfig::default()));
    assert!(pair.handshake());
    // The server's packets vanish for 400 ms: its PTO fires and its probes carry
    // IMMEDIATE_ACK; once the link is back a probe gets through.
    let now = pair.now();
    let mut down = paced_link();
    down.blackholes.push(Blackhole { start: now, end: now + Duration::from_millis(400) });
    pair.net.set_link(pair.server_addr, pair.client_addr, down).unwrap();
    let s = pair.server();
    let id = s.open(crate::streams::Dir::Uni).unwrap();
    s.write(id, bytes::Bytes::from(vec![7u8; 5000]), true).unwrap();
    let mut answered = 0;
    for _ in 0..20_000 {
        let before = pair.client.stats();
        if !pair.step() {
            break;
        }
        let after = pair.client.stats();
        if after.immediate_acks_received > before.immediate_acks_received {
            // Handled and flushed in the same step: the ACK left at the same instant.
            assert!(after.acks_sent > before.acks_sent, "IMMEDIATE_ACK not answered at once");
            answered += 1;
        }
        if pair.now() > now + Duration::from_secs(3) {
            break;
        }
    }
    let s = pair.server.as_ref().unwrap().stats();
    assert!(s.pto_count >= 1 && s.immediate_acks_sent >= 1, "{s:?}");
    assert!(answered >= 1, "no IMMEDIATE_ACK arrived");
}

/// ACK_FREQUENCY validation at the receiver: a Requested Max Ack Delay below our min_ack_delay
/// or of 2^14 ms and more is a PROTOCOL_VIOLATION, a stale Sequence Number is ignored, and an
/// endpoint that never advertised min_ack_delay refuses the frame.
//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-4
//= type=test
//# A receiving endpoint MUST ignore a received ACK_FREQUENCY frame unless the
//# Sequence Number value in the frame is greater than the largest processed
//# value.
#[test]
fn ack_frequency_frames_are_validated_and_ordered() {
    use super::pair::Pair;
    use crate::error::TransportErrorCode;
    use crate::frame::AckFrequency;
    use crate::recovery::SpaceId;
    use crate::VarInt;
    let f = |seq: u32, threshold: u32, delay_us: u32| AckFrequency {
        sequence: VarInt::from_u32(seq),
        ack_eliciting_threshold: VarInt::from_u32(threshold),
        request_max_ack_delay: VarInt::from_u32(delay_us),
        reordering_threshold: VarInt::from_u32(3),
    };
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    let c = &mut p.client;
    let pv = TransportErrorCode::PROTOCOL_VIOLATION;
    assert_eq!(c.on_ack_frequency(&f(0, 9, 999)).unwrap_err().code, pv, "below min_ack_delay");
    assert_eq!(c.on_ack_frequency(&f(0, 9, 16_384_000)).unwrap_err().code, pv, "2^14 ms");
    c.on_ack_frequency(&f(5, 9, 4000)).unwrap();
    let policy = *c.spaces[SpaceId::Data.index()].acks.config();
    assert_eq!(policy.ack_eliciting_threshold, 10);
    assert_eq!(policy.max_ack_delay, Duration::from_millis(4));
    assert_eq!(policy.reordering_threshold, 3);
    // Older or equal sequence numbers change nothing.
    c.on_ack_frequency(&f(5, 50, 8000)).unwrap();
    c.on_ack_frequency(&f(3, 50, 8000)).unwrap();
    assert_eq!(*c.spaces[SpaceId::Data.index()].acks.config(), policy);
    assert_eq!(c.stats().ack_frequency_received, 1);
    // Without the extension configured, the frames are refused.
    let off = TransportConfig::default().with_ack_frequency(false);
    let mut p = super::pair::Pair::new(cfg(off.clone(), off));
    assert!(p.handshake());
    assert_eq!(p.client.on_ack_frequency(&f(0, 9, 4000)).unwrap_err().code, pv);
    assert_eq!(p.client.on_immediate_ack(p.net.now()).unwrap_err().code, pv);
}
