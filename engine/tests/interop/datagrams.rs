//! DATAGRAM frames (RFC 9221) with quinn-proto, both roles, over a lossy path: each side
//! sends datagrams the other must receive intact and at most once; lost ones stay lost.

use std::collections::HashSet;

use bytes::Bytes;

use crate::driver::{Budget, Pair};
use crate::peregrine_peer::PeregrinePeer;
use crate::quinn_peer::QuinnPeer;
use crate::scenarios;
use crate::setup::{self, Setup};

/// Datagrams each side sends.
const N: u32 = 300;

fn payload(i: u32) -> Bytes {
    let mut v = i.to_be_bytes().to_vec();
    v.extend((0..50 + i % 500).map(|k| (k as u8) ^ (i as u8).wrapping_mul(13)));
    Bytes::from(v)
}

fn check(got: &mut HashSet<u32>, d: &[u8]) {
    let i = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    assert_eq!(d, &payload(i)[..], "datagram {i} intact");
    assert!(got.insert(i), "datagram {i} delivered once");
}

/// Runs the exchange: `send(peregrine_side_first, i)` sends datagram `i` from one side,
/// `recv` drains what each side got. Returns (received by Peregrine, received by quinn).
fn exchange<C, S>(
    p: &mut Pair<C, S>,
    mut send: impl FnMut(&mut C, &mut S, u32),
    mut recv: impl FnMut(&mut C, &mut S, &mut HashSet<u32>, &mut HashSet<u32>),
) -> (HashSet<u32>, HashSet<u32>)
where
    C: crate::app::Peer,
    S: crate::app::Peer,
{
    let (mut at_peregrine, mut at_quinn) = (HashSet::new(), HashSet::new());
    let mut next = 0;
    let mut idle_steps = 0;
    let _ = p.run_until(Budget::new(100_000, 60), |c, s, _| {
        for _ in 0..2 {
            if next < N {
                send(c, s, next);
                next += 1;
            }
        }
        recv(c, s, &mut at_peregrine, &mut at_quinn);
        if next == N {
            idle_steps += 1;
        }
        idle_steps > 2_000
    });
    (at_peregrine, at_quinn)
}

fn assert_most(got: &HashSet<u32>, who: &str) {
    println!("{who}: {} of {N} datagrams", got.len());
    assert!(got.len() as u32 >= N * 3 / 4 && got.len() as u32 <= N, "{who}: {}", got.len());
}

/// Peregrine client, quinn-proto server, 5% loss both ways.
#[test]
fn datagrams_peregrine_client() {
    let setup = Setup { datagrams: true, ..Setup::new(60).loss(0.05) };
    let (mut p, _) = setup::peregrine_quinn(&setup);
    scenarios::handshake(&mut p);
    let (at_peregrine, at_quinn) = exchange(
        &mut p,
        |c: &mut PeregrinePeer, s: &mut QuinnPeer, i| {
            c.conn().expect("conn").send_datagram(payload(i)).expect("Peregrine send");
            s.conn().expect("conn").datagrams().send(payload(i), true).expect("quinn send");
        },
        |c, s, a, b| {
            while let Some(d) = c.conn().expect("conn").recv_datagram() {
                check(a, &d);
            }
            while let Some(d) = s.conn().expect("conn").datagrams().recv() {
                check(b, &d);
            }
        },
    );
    assert_most(&at_peregrine, "Peregrine client received");
    assert_most(&at_quinn, "quinn server received");
}

/// quinn-proto client, Peregrine server, 5% loss both ways.
#[test]
fn datagrams_peregrine_server() {
    let setup = Setup { datagrams: true, ..Setup::new(61).loss(0.05) };
    let (mut p, _) = setup::quinn_peregrine(&setup);
    scenarios::handshake(&mut p);
    let (at_peregrine, at_quinn) = exchange(
        &mut p,
        |c: &mut QuinnPeer, s: &mut PeregrinePeer, i| {
            s.conn().expect("conn").send_datagram(payload(i)).expect("Peregrine send");
            c.conn().expect("conn").datagrams().send(payload(i), true).expect("quinn send");
        },
        |c, s, a, b| {
            while let Some(d) = s.conn().expect("conn").recv_datagram() {
                check(a, &d);
            }
            while let Some(d) = c.conn().expect("conn").datagrams().recv() {
                check(b, &d);
            }
        },
    );
    assert_most(&at_peregrine, "Peregrine server received");
    assert_most(&at_quinn, "quinn client received");
}
