//! Scenarios shared by every pairing (quinn-proto with itself, Peregrine with quinn-proto both
//! ways): each drives a [`Pair`] and asserts what each side saw of the other.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::app::{Ended, Peer};
use crate::certs::ALPN;
use crate::driver::{Budget, Pair};

/// Runs until both sides completed the handshake, then checks the ALPN each negotiated.
pub fn handshake<C: Peer, S: Peer>(pair: &mut Pair<C, S>) {
    let r = pair.run_until(Budget::new(10_000, 30), |c, s, _| c.is_connected() && s.is_connected());
    let (c, s) = (&pair.client, &pair.server);
    if let Err(e) = r {
        panic!(
            "handshake {} -> {}: {e}; client ended {:?}, server ended {:?}",
            c.name(),
            s.name(),
            c.ended(),
            s.ended()
        );
    }
    assert_eq!(c.alpn().as_deref(), Some(ALPN), "client's ALPN ({})", c.name());
    assert_eq!(s.alpn().as_deref(), Some(ALPN), "server's ALPN ({})", s.name());
}

/// The `len` bytes stream `index` carries in direction `dir` (0 request, 1 response): a
/// xorshift sequence seeded by both, so a misplaced or swapped range never matches by accident.
pub fn payload(index: u64, dir: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (index << 8) ^ (dir << 40) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One stream of a transfer, on either side.
#[derive(Default)]
struct Half {
    /// What this side must send, and how much of it is queued.
    out: Vec<u8>,
    sent: usize,
    finished: bool,
    /// What it received, and whether the FIN came.
    got: Vec<u8>,
    fin: bool,
}

impl Half {
    fn pump(&mut self, peer: &mut impl Peer, id: u64) {
        while self.sent < self.out.len() {
            let n = peer.write(id, &self.out[self.sent..]).unwrap_or_else(|e| {
                panic!("{}: write on stream {id}: {e} (ended {:?})", peer.name(), peer.ended());
            });
            if n == 0 {
                break;
            }
            self.sent += n;
        }
        if self.sent == self.out.len() && !self.finished {
            peer.finish(id).unwrap_or_else(|e| {
                panic!("{}: finish {id}: {e} (ended {:?})", peer.name(), peer.ended())
            });
            self.finished = true;
        }
        if !self.fin {
            self.fin = peer.read(id, &mut self.got).unwrap_or_else(|e| {
                panic!("{}: read on stream {id}: {e} (ended {:?})", peer.name(), peer.ended())
            });
        }
    }

    fn done(&self) -> bool {
        self.finished && self.fin
    }
}

/// The client opens `streams` bidirectional streams and sends `size` bytes plus FIN on each;
/// the server answers each as soon as it accepts it with `size` other bytes plus FIN. Both
/// directions run concurrently. Checks every byte each side received.
pub fn transfer<C: Peer, S: Peer>(
    pair: &mut Pair<C, S>,
    streams: u64,
    size: usize,
    budget: Budget,
) {
    transfer_rebinding(pair, streams, size, budget, None);
}

/// [`transfer`], and once the client has received `rebind.0` bytes (mid-transfer, with the
/// server's data and the client's ACKs in flight) the client's NAT mapping changes to
/// `rebind.1` and the old one expires.
pub fn transfer_rebinding<C: Peer, S: Peer>(
    pair: &mut Pair<C, S>,
    streams: u64,
    size: usize,
    budget: Budget,
    mut rebind: Option<(usize, SocketAddr)>,
) {
    let mut client: BTreeMap<u64, Half> = BTreeMap::new();
    let mut server: BTreeMap<u64, Half> = BTreeMap::new();
    let mut opened = 0u64;
    let mut finished = false;
    let (wanted, mut rebound) = (rebind.is_some(), false);
    // At most two runs: up to the rebinding, then to the end.
    let mut r = Ok(());
    for _ in 0..2 {
        let at = rebind.map(|(bytes, _)| bytes);
        r = pair.run_until(budget, |c, s, _| {
            while opened < streams {
                let Some(id) = c.open_bi() else { break };
                client.insert(id, Half { out: payload(id / 4, 0, size), ..Half::default() });
                opened += 1;
            }
            while let Some(id) = s.accept_bi() {
                // Client-initiated bidirectional stream `id` is the (id / 4)th one opened;
                // both sides derive the payloads from that index.
                server.insert(id, Half { out: payload(id / 4, 1, size), ..Half::default() });
            }
            for (&id, half) in client.iter_mut() {
                half.pump(c, id);
            }
            for (&id, half) in server.iter_mut() {
                half.pump(s, id);
            }
            finished = opened == streams
                && server.len() as u64 == streams
                && client.values().all(Half::done)
                && server.values().all(Half::done);
            let got: usize = client.values().map(|h| h.got.len()).sum();
            finished || at.is_some_and(|a| got >= a)
        });
        match rebind.take() {
            Some((_, addr)) if r.is_ok() && !finished => {
                pair.rebind_client(addr);
                rebound = true;
            }
            _ => break,
        }
    }
    assert!(!wanted || rebound || r.is_err(), "the transfer ended before the rebinding");
    let (c, s) = (&pair.client, &pair.server);
    if let Err(e) = r {
        let got_c: usize = client.values().map(|h| h.got.len()).sum();
        let got_s: usize = server.values().map(|h| h.got.len()).sum();
        panic!(
            "transfer {} -> {}: {e}; opened {opened}, accepted {}, client got {got_c} B, \
             server got {got_s} B; client ended {:?}, server ended {:?}",
            c.name(),
            s.name(),
            server.len(),
            c.ended(),
            s.ended()
        );
    }
    for (&id, half) in &server {
        let want = payload(id / 4, 0, size);
        assert!(half.got == want, "server ({}) got wrong bytes on stream {id}", s.name());
    }
    for (&id, half) in &client {
        let want = payload(id / 4, 1, size);
        assert!(half.got == want, "client ({}) got wrong bytes on stream {id}", c.name());
    }
}

/// Prints what both sides and the network counted (visible with `--nocapture`).
pub fn report<C: Peer, S: Peer>(what: &str, pair: &Pair<C, S>) {
    let stats = pair.net.total_stats();
    let ((tc, ts), (dc, ds)) = (pair.tap.transmits(), pair.tap.datagrams());
    eprintln!(
        "[{what}] transmits (GSO trains) client {tc} for {dc} datagrams, server {ts} for {ds}"
    );
    eprintln!(
        "[{what}] {} -> {}: {:?} virtual, {} steps; network: {} sent, {} delivered, {} lost, \
         {} queue drops\n  client {}\n  server {}",
        pair.client.name(),
        pair.server.name(),
        pair.net.elapsed(),
        pair.steps,
        stats.sent,
        stats.delivered,
        stats.lost_random + stats.lost_burst,
        stats.dropped_queue_full,
        pair.client.summary(),
        pair.server.summary()
    );
}

/// Runs until `which` side's connection ended (or the budget ran out), returning how.
pub fn wait_end<C: Peer, S: Peer>(pair: &mut Pair<C, S>, client: bool, budget: Budget) -> Ended {
    let r = pair.run_until(
        budget,
        |c, s, _| {
            if client {
                c.ended().is_some()
            } else {
                s.ended().is_some()
            }
        },
    );
    let (c, s) = (&pair.client, &pair.server);
    if let Err(e) = r {
        panic!(
            "waiting for the {} to see the end: {e}; client ended {:?}, server ended {:?}",
            if client { c.name() } else { s.name() },
            c.ended(),
            s.ended()
        );
    }
    if client { c.ended() } else { s.ended() }.expect("ended")
}
