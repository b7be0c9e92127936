//! The send scheduler through the manager: round-robin fairness, the send quantum and
//! strict priorities.

use super::*;

/// A client whose streams take one frame per turn (send quantum 1 byte).
fn client() -> Streams {
    client_with_quantum(1)
}

fn client_with_quantum(quantum: u64) -> Streams {
    let config = StreamsConfig::default().with_send_quantum(quantum).unwrap();
    let mut c = Streams::new(Role::Client, config);
    c.set_peer_limits(params(
        &StreamsConfig::default()
            .with_stream_receive_window(1 << 30)
            .unwrap()
            .with_receive_window(1 << 40)
            .unwrap(),
    ))
    .unwrap();
    c
}

/// Frame room that leaves exactly 100 data bytes on these streams: type 1, stream ID 1,
/// offset 2 (offsets below 16384), length 2.
const ROOM_100: usize = 106;

fn order(c: &mut Streams, room: usize) -> Vec<StreamId> {
    std::iter::from_fn(|| c.poll_stream_data(room)).map(|f| f.id).collect()
}

/// The room a frame needs is sized to its stream: the header is counted exactly, so 100
/// data bytes fit in 106 bytes, not in 125 (a worst-case 25-byte header).
#[test]
fn frame_room_counts_the_exact_header() {
    let mut c = client();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, Bytes::from(vec![0; 1000]), false).unwrap();
    let f = c.poll_stream_data(ROOM_100).unwrap();
    assert_eq!(f.data.len(), 100);
    // One byte less of room is one byte less of data.
    assert_eq!(c.poll_stream_data(ROOM_100 - 1).unwrap().data.len(), 99);
    // Too small for a header (a one-byte length now) and a byte: nothing, and the stream
    // keeps its turn.
    assert!(c.poll_stream_data(5).is_none());
    assert_eq!(c.poll_stream_data(6).unwrap().data.len(), 1);
}

/// A bare FIN is a frame too: it is handed out only when its header fits the room (at
/// offset 4096 on this stream: type 1, ID 1, offset 2, length 1), else the stream keeps its
/// turn. Handed out regardless, it overran a full packet into the AEAD tag and the connection
/// closed with "packet assembly failed" (100 connections x 4 streams of requests).
#[test]
fn a_bare_fin_needs_room_for_its_header() {
    let mut c = client();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, Bytes::from(vec![0; 4096]), false).unwrap();
    let sent: usize = std::iter::from_fn(|| c.poll_stream_data(1200)).map(|f| f.data.len()).sum();
    assert_eq!(sent, 4096);
    c.finish(id).unwrap();
    assert!(c.poll_stream_data(4).is_none());
    let f = c.poll_stream_data(5).expect("the FIN fits in 5 bytes");
    assert!(f.fin && f.data.is_empty() && f.offset == 4096 && f.id == id);
}

#[test]
fn round_robin_within_a_priority() {
    let mut c = client();
    let ids: Vec<_> = (0..3).map(|_| c.open(Dir::Uni).unwrap()).collect();
    for &id in &ids {
        c.write(id, Bytes::from(vec![0; 1000]), true).unwrap();
    }
    let got = order(&mut c, ROOM_100);
    assert_eq!(got.len(), 30);
    for (i, id) in got.iter().enumerate() {
        assert_eq!(*id, ids[i % 3], "turn {i}");
    }
}

/// With a quantum, a stream keeps its turn until it has sent that many bytes in it (or runs
/// out), then goes behind the others: 350-byte responses go out whole, one after the other,
/// and a bulk stream yields after each quantum.
#[test]
fn a_stream_keeps_its_turn_for_a_quantum() {
    let mut c = client_with_quantum(300);
    let ids: Vec<_> = (0..3).map(|_| c.open(Dir::Uni).unwrap()).collect();
    for &id in &ids {
        c.write(id, Bytes::from(vec![0; 350]), true).unwrap();
    }
    let got: Vec<_> =
        std::iter::from_fn(|| c.poll_stream_data(ROOM_100)).map(|f| (f.id, f.data.len())).collect();
    // Turns of 300 bytes (three 100-byte frames), then the 50-byte tails in a second round.
    let [a, b, d] = [ids[0], ids[1], ids[2]];
    let want = [
        (a, 100),
        (a, 100),
        (a, 100),
        (b, 100),
        (b, 100),
        (b, 100),
        (d, 100),
        (d, 100),
        (d, 100),
        (a, 50),
        (b, 50),
        (d, 50),
    ];
    assert_eq!(got, want);

    // The default quantum (16 KiB) sends each 4 KiB response whole before the next.
    let mut c = Streams::new(Role::Client, StreamsConfig::default());
    c.set_peer_limits(params(
        &StreamsConfig::default().with_stream_receive_window(1 << 30).unwrap(),
    ))
    .unwrap();
    let ids: Vec<_> = (0..4).map(|_| c.open(Dir::Uni).unwrap()).collect();
    for &id in &ids {
        c.write(id, Bytes::from(vec![0; 4096]), true).unwrap();
    }
    let frames: Vec<_> = std::iter::from_fn(|| c.poll_stream_data(1200)).collect();
    let order: Vec<_> = frames.iter().map(|f| f.id).collect();
    let mut runs = order.clone();
    runs.dedup();
    assert_eq!(runs, ids, "each stream's frames are consecutive, in turn order");
    assert!(frames.iter().filter(|f| f.fin).count() == 4);
}

#[test]
fn higher_priority_first_and_changes_take_effect() {
    let mut c = client();
    let low = c.open(Dir::Bi).unwrap();
    let a = c.open(Dir::Bi).unwrap();
    let b = c.open(Dir::Bi).unwrap();
    let high = c.open(Dir::Bi).unwrap();
    c.set_priority(low, -1).unwrap();
    c.set_priority(high, i32::MAX).unwrap();
    for id in [low, a, b, high] {
        c.write(id, Bytes::from(vec![0; 300]), false).unwrap();
    }
    let got = order(&mut c, ROOM_100);
    assert_eq!(got, vec![high, high, high, a, b, a, b, a, b, low, low, low]);

    // Raising a queued stream moves it ahead at once.
    for id in [low, a, b] {
        c.write(id, Bytes::from(vec![0; 200]), false).unwrap();
    }
    assert_eq!(c.poll_stream_data(ROOM_100).unwrap().id, a);
    c.set_priority(low, 10).unwrap();
    assert_eq!(order(&mut c, ROOM_100), vec![low, low, b, a, b]);
}

#[test]
fn retransmissions_take_a_turn_and_small_budgets_keep_the_place() {
    let mut c = client();
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    c.write(a, Bytes::from(vec![0; 200]), false).unwrap();
    c.write(b, Bytes::from(vec![0; 200]), false).unwrap();
    let f1 = c.poll_stream_data(ROOM_100).unwrap();
    assert_eq!(f1.id, a);
    assert!(c.poll_stream_data(0).is_none(), "no room for a byte");
    assert_eq!(c.poll_stream_data(ROOM_100).unwrap().id, b, "b kept its turn");
    c.on_stream_data_lost(a, f1.offset, f1.data.len() as u64, false);
    let got: Vec<_> =
        std::iter::from_fn(|| c.poll_stream_data(ROOM_100)).map(|f| (f.id, f.offset)).collect();
    assert_eq!(got, vec![(a, 0), (b, 100), (a, 100)]);
}
