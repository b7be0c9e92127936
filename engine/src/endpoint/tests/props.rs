//! Properties: arbitrary and mutated datagrams never panic, never register a connection, and
//! never draw a response larger than what triggered it.

use super::*;
use proptest::prelude::*;

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
//= type=test
//# An endpoint MUST NOT send a Stateless Reset that is three times or
//# more larger than the packet it receives to avoid being used for
//# amplification.
fn check(r: &mut Router, now: Instant, datagram: &[u8]) -> DatagramEvent {
    let before = (r.connection_count(), r.cid_count(), r.initial_cid_count());
    let ev = r.handle(now, client_addr(), None, Ecn::NotEct, datagram);
    assert_eq!(before, (r.connection_count(), r.cid_count(), r.initial_cid_count()));
    if let DatagramEvent::Response(resp) = &ev {
        assert!(resp.transmit.contents.len() <= datagram.len(), "{:?}", resp.kind);
    }
    ev
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_never_creates_connections(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let now = t0();
        for policy in [RetryPolicy::Never, RetryPolicy::Always] {
            let mut r = server(now, policy);
            let ev = check(&mut r, now, &data);
            prop_assert!(!matches!(ev, DatagramEvent::NewConnection(_) | DatagramEvent::Known(_)));
        }
        let mut c = client(now);
        let ev = check(&mut c, now, &data);
        prop_assert!(!matches!(ev, DatagramEvent::NewConnection(_) | DatagramEvent::Known(_)));
    }

    #[test]
    fn garbage_with_a_long_header_prefix(
        first in 0xc0u8..=0xff,
        v in prop_oneof![Just(version::V1), Just(version::V2), any::<u32>()],
        rest in proptest::collection::vec(any::<u8>(), 0..1400),
    ) {
        let mut data = vec![first];
        data.extend_from_slice(&v.to_be_bytes());
        data.extend_from_slice(&rest);
        let now = t0();
        let mut r = server(now, RetryPolicy::Always);
        check(&mut r, now, &data);
    }

    /// Flipped and truncated real Initials (with and without a Retry token), against a router
    /// that holds connections: no panic, no table change from `handle` itself.
    #[test]
    fn mutated_initials(
        flips in proptest::collection::vec((0usize..1300, any::<u8>()), 0..8),
        cut in 0usize..1300,
        with_token in any::<bool>(),
    ) {
        let now = t0();
        let mut r = server(now, RetryPolicy::Always);
        let odcid = cid(&[4; 8]);
        let first = client_initial(version::V1, &odcid, &cid(&[1, 2]), &[], 1300);
        let mut d = first.clone();
        if with_token {
            if let DatagramEvent::Response(resp) = r.handle(now, client_addr(), None, Ecn::NotEct, &first) {
                let retry = crate::packet::RetryPacket::parse(&resp.transmit.contents).unwrap();
                d = client_initial(version::V1, &retry.src_cid, &cid(&[1, 2]), retry.token, 1300);
            }
        }
        for (at, x) in flips {
            let i = at % d.len();
            d[i] ^= x;
        }
        d.truncate(cut.max(1));
        check(&mut r, now, &d);
    }

    /// The fuzz entry point on arbitrary input, and on real packets prefixed by a selector.
    #[test]
    fn fuzz_entry_point(
        data in proptest::collection::vec(any::<u8>(), 0..1600),
        sel in any::<u8>(),
        flip in (0usize..1300, any::<u8>()),
    ) {
        let now = t0();
        crate::endpoint::fuzz::handle(now, &data);
        let mut initial = vec![sel];
        initial.extend(client_initial(version::V1, &cid(&[9; 8]), &cid(&[1]), &[], 1250));
        crate::endpoint::fuzz::handle(now, &initial);
        let i = flip.0 % initial.len();
        initial[i] ^= flip.1;
        crate::endpoint::fuzz::handle(now, &initial);
    }
}
