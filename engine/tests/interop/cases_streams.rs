//! Stream-type and session cases: unidirectional streams opened by both sides, many short
//! streams (MAX_STREAMS at default limits), TLS session resumption across connections.

use std::collections::BTreeMap;

use crate::app::Peer;
use crate::cases::Build;
use crate::driver::{Budget, Pair};
use crate::scenarios::{self, payload};
use crate::setup::{Factory, Setup};

/// Payload direction tags of unidirectional streams (bidirectional ones use 0 and 1).
const UNI_FROM_CLIENT: u64 = 2;
const UNI_FROM_SERVER: u64 = 3;

/// One side's unidirectional streams: what it sends, what it receives.
#[derive(Default)]
struct Uni {
    /// Streams opened: (bytes queued, FIN sent).
    out: BTreeMap<u64, (usize, bool)>,
    /// Streams accepted: (bytes, FIN read).
    got: BTreeMap<u64, (Vec<u8>, bool)>,
}

impl Uni {
    fn pump(&mut self, peer: &mut dyn Peer, streams: u64, size: usize, tag: u64) {
        while (self.out.len() as u64) < streams {
            let Some(id) = peer.open_uni() else { break };
            self.out.insert(id, (0, false));
        }
        for (&id, (sent, fin)) in self.out.iter_mut() {
            let data = payload(id >> 2, tag, size);
            while *sent < size {
                let n = peer.write(id, &data[*sent..]).expect("uni write");
                if n == 0 {
                    break;
                }
                *sent += n;
            }
            if *sent == size && !*fin {
                peer.finish(id).expect("uni finish");
                *fin = true;
            }
        }
        while let Some(id) = peer.accept_uni() {
            self.got.insert(id, (Vec::new(), false));
        }
        for (&id, (buf, fin)) in self.got.iter_mut() {
            if !*fin {
                *fin = peer.read(id, buf).expect("uni read");
            }
        }
    }

    fn done(&self, streams: u64) -> bool {
        let all = |n: usize| n as u64 == streams;
        all(self.out.len())
            && self.out.values().all(|o| o.1)
            && all(self.got.len())
            && self.got.values().all(|g| g.1)
    }

    fn check(&self, size: usize, tag: u64, who: &str) {
        for (&id, (buf, _)) in &self.got {
            assert!(*buf == payload(id >> 2, tag, size), "{who} got wrong bytes on uni {id}");
        }
    }
}

/// Each side opens 10 unidirectional streams and sends 32 KiB + FIN on each; each side
/// accepts the other's and checks every byte. Covers server-initiated stream IDs.
pub fn uni_streams_both_ways<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, _) = build(&Setup::new(41));
    scenarios::handshake(&mut p);
    let (streams, size) = (10, 32 * 1024);
    let (mut cu, mut su) = (Uni::default(), Uni::default());
    let r = p.run_until(Budget::new(200_000, 120), |c, s, _| {
        cu.pump(c, streams, size, UNI_FROM_CLIENT);
        su.pump(s, streams, size, UNI_FROM_SERVER);
        cu.done(streams) && su.done(streams)
    });
    if let Err(e) = r {
        panic!(
            "uni streams {} -> {}: {e}; client opened {} got {}, server opened {} got {}",
            p.client.name(),
            p.server.name(),
            cu.out.len(),
            cu.got.len(),
            su.out.len(),
            su.got.len()
        );
    }
    su.check(size, UNI_FROM_CLIENT, "server");
    cu.check(size, UNI_FROM_SERVER, "client");
    assert!(su.out.keys().all(|id| id & 3 == 3), "server uni stream IDs end in 0b11");
    assert!(cu.out.keys().all(|id| id & 3 == 2), "client uni stream IDs end in 0b10");
}

/// 300 short bidirectional streams (2 KB each way) at the default limit of 100 concurrent
/// streams: stream credit must come back as streams finish.
pub fn many_small_streams<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, _) = build(&Setup::new(42));
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 300, 2000, Budget::new(200_000, 120));
}

/// Two connections through configurations that keep TLS state: the second resumes the first
/// one's session. Checked by Peregrine's own flag where Peregrine is a side, and on the wire:
/// a resumed handshake carries no Certificate / CertificateVerify, so the server's Handshake
/// packets are far smaller (the setup should carry a large certificate chain).
pub fn resumption<C: Peer, S: Peer>(mut make: Factory<C, S>) {
    let mut handshake_bytes = Vec::new();
    for (round, seed) in [51u64, 52].into_iter().enumerate() {
        let mut p: Pair<C, S> = make(seed);
        scenarios::handshake(&mut p);
        handshake_bytes.push(p.tap.handshake_bytes().1);
        // Give the NewSessionTicket time to arrive before this connection goes away.
        scenarios::transfer(&mut p, 1, 4096, Budget::new(10_000, 30));
        let resumed = round == 1;
        for (side, flag) in [("client", p.client.is_resumed()), ("server", p.server.is_resumed())] {
            if let Some(flag) = flag {
                assert_eq!(flag, resumed, "Peregrine {side} resumed on connection {round}");
            }
        }
    }
    let (full, resumed) = (handshake_bytes[0], handshake_bytes[1]);
    eprintln!("[resumption] server Handshake packets: full {full} B, resumed {resumed} B");
    assert!(
        full > 3000 && resumed < full / 2,
        "a resumed handshake sends no certificate chain: server Handshake packets {full} B, \
         then {resumed} B"
    );
}

/// A ~6 KB certificate chain: the server's first flight exceeds three times the client's
/// Initial, so the server hits the anti-amplification limit (RFC 9000 §8.1) and must resume
/// sending when the client's next datagrams arrive.
pub fn large_certificate_chain<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, _) = build(&Setup { cert_names: 160, ..Setup::new(43) });
    scenarios::handshake(&mut p);
    let hs = p.tap.handshake_bytes().1;
    assert!(hs > 3 * 1200, "the server's Handshake flight is larger than 3 x 1200 B: {hs} B");
    scenarios::transfer(&mut p, 2, 16 * 1024, Budget::new(20_000, 30));
}

/// 0-RTT across two connections through configurations that keep TLS state: the first leaves
/// a ticket; the second writes a request before its handshake, which leaves in 0-RTT packets.
/// `accept`: whether the server takes 0-RTT. Either way its application reads the request
/// exactly once (rejected: the client sends it again in 1-RTT).
pub fn zero_rtt<C: Peer, S: Peer>(mut make: Factory<C, S>, accept: bool) {
    let mut p: Pair<C, S> = make(61);
    scenarios::handshake(&mut p);
    // Give the NewSessionTicket time to arrive before this connection goes away.
    scenarios::transfer(&mut p, 1, 4096, Budget::new(10_000, 30));

    let mut p: Pair<C, S> = make(62);
    let id = p.client.open_bi().expect("the remembered limits allow a stream before the handshake");
    let msg = scenarios::payload(9, 0, 3000);
    let request = |c: &mut C, id: u64| {
        let mut sent = 0;
        while sent < msg.len() {
            let n = c.write(id, &msg[sent..]).expect("request write");
            assert!(n > 0, "the flow control limits allow the request");
            sent += n;
        }
        c.finish(id).expect("finish");
    };
    request(&mut p.client, id);
    let (mut got, mut fin, mut sid, mut again) = (Vec::new(), false, None, false);
    let r = p.run_until(Budget::new(20_000, 30), |c, s, _| {
        // quinn-proto drops what was written in rejected 0-RTT: its application writes again.
        if !again && c.early_data_accepted() == Some(false) && !c.resends_rejected_0rtt() {
            again = true;
            let id = c.open_bi().expect("a stream after the handshake");
            request(c, id);
        }
        if sid.is_none() {
            sid = s.accept_bi();
        }
        if let (Some(sid), false) = (sid, fin) {
            fin = s.read(sid, &mut got).expect("server read");
        }
        fin && c.is_connected() && s.is_connected()
    });
    if let Err(e) = r {
        panic!(
            "0-RTT request: {e}; connected {} {}, ended {:?} {:?}, read {} B fin {fin}, \
             0-RTT packets {:?}; client {}; server {}",
            p.client.is_connected(),
            p.server.is_connected(),
            p.client.ended(),
            p.server.ended(),
            got.len(),
            p.tap.zero_rtt_packets(),
            p.client.summary(),
            p.server.summary()
        );
    }
    assert_eq!(got, msg, "the request, once");
    let (zero_rtt, _) = p.tap.zero_rtt_packets();
    eprintln!("[zero_rtt] client 0-RTT packets on the wire: {zero_rtt}");
    assert!(zero_rtt > 0, "the request left in 0-RTT packets");
    let flags =
        [("client", p.client.early_data_accepted()), ("server", p.server.early_data_accepted())];
    for (side, flag) in flags {
        if let Some(flag) = flag {
            assert_eq!(
                flag,
                accept,
                "{side} ({}) says 0-RTT accepted",
                [p.client.name(), p.server.name()][usize::from(side == "server")]
            );
        }
    }
    assert!(flags.iter().any(|(_, f)| f.is_some()), "one side tells whether 0-RTT was accepted");
}
