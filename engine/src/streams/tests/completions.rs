//! DESIGN.md invariant 2 through the manager: every accepted write completes exactly once.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Op {
    Open(bool),
    Write { by_server: bool, stream: u8, len: u8, fin: bool },
    Flush { by_server: bool, loss: u8 },
    Read(u8),
    Reset { by_server: bool, stream: u8 },
    Stop { by_server: bool, stream: u8 },
    Close { by_server: bool, reason: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<bool>().prop_map(Op::Open),
        6 => (any::<bool>(), any::<u8>(), 0u8..60, proptest::bool::weighted(0.15))
            .prop_map(|(by_server, stream, len, fin)| Op::Write { by_server, stream, len, fin }),
        5 => (any::<bool>(), any::<u8>()).prop_map(|(by_server, loss)| Op::Flush { by_server, loss }),
        2 => any::<u8>().prop_map(Op::Read),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(by_server, stream)| Op::Reset { by_server, stream }),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(by_server, stream)| Op::Stop { by_server, stream }),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(by_server, reason)| Op::Close { by_server, reason }),
    ]
}

fn role(by_server: bool) -> Role {
    if by_server {
        Role::Server
    } else {
        Role::Client
    }
}

type Outcomes = HashMap<(Role, WriteId), Vec<WriteOutcome>>;

fn collect(p: &mut Pair, outcomes: &mut Outcomes) {
    for r in [Role::Client, Role::Server] {
        for e in events(p.side(r)) {
            if let StreamEvent::WriteComplete { write, outcome, .. } = e {
                outcomes.entry((r, write)).or_default().push(outcome);
            }
        }
    }
}

fn run(ops: Vec<Op>, close_at_end: bool) -> Result<(), TestCaseError> {
    let small = StreamsConfig::default().with_send_buffer(100).unwrap();
    let mut p = Pair::new(small.clone(), small);
    let mut streams: Vec<StreamId> = Vec::new();
    let mut accepted: HashMap<(Role, WriteId), StreamId> = HashMap::new();
    let mut tainted: HashSet<StreamId> = HashSet::new();
    let mut closed = false;
    let mut outcomes = Outcomes::new();
    for o in ops {
        let pick = |i: u8| (!streams.is_empty()).then(|| streams[i as usize % streams.len()]);
        match o {
            Op::Open(bidi) => {
                if let Ok(id) = p.client.open(if bidi { Dir::Bi } else { Dir::Uni }) {
                    streams.push(id);
                }
            }
            Op::Write { by_server, stream, len, fin } => {
                let Some(id) = pick(stream) else { continue };
                let data = Bytes::from(vec![len; len as usize]);
                if let Ok(w) = p.side(role(by_server)).write(id, data, fin) {
                    prop_assert!(
                        accepted.insert((role(by_server), w), id).is_none(),
                        "write id reused"
                    );
                }
            }
            Op::Flush { by_server, loss } => {
                let mut k = 0u32;
                p.flush(role(by_server), || {
                    k += 1;
                    k <= 32 && (loss >> (k % 8)) & 1 == 1
                })
                .map_err(|e| TestCaseError::fail(format!("protocol error: {e}")))?;
            }
            Op::Read(stream) => {
                let Some(id) = pick(stream) else { continue };
                let _ = p.read_all(Role::Server, id);
                let _ = p.read_all(Role::Client, id);
            }
            Op::Reset { by_server, stream } => {
                let Some(id) = pick(stream) else { continue };
                if p.side(role(by_server)).reset(id, 1).is_ok() {
                    tainted.insert(id);
                }
            }
            Op::Stop { by_server, stream } => {
                let Some(id) = pick(stream) else { continue };
                if p.side(role(by_server)).stop_sending(id, 2).is_ok() {
                    tainted.insert(id);
                }
            }
            Op::Close { by_server, reason } => {
                let reason = match reason % 3 {
                    0 => CancelReason::ConnectionClosed,
                    1 => CancelReason::IdleTimeout,
                    _ => CancelReason::EndpointDropped,
                };
                p.side(role(by_server)).cancel_all(reason);
                closed = true;
            }
        }
        collect(&mut p, &mut outcomes);
        for (k, v) in &outcomes {
            prop_assert!(v.len() == 1, "{k:?} completed {} times: {v:?}", v.len());
        }
    }
    // With nothing lost for good, writes on untouched streams are all delivered.
    p.settle();
    collect(&mut p, &mut outcomes);
    if !closed {
        for (key, id) in &accepted {
            if !tainted.contains(id) {
                prop_assert_eq!(
                    outcomes.get(key).map(|v| v[0]),
                    Some(WriteOutcome::Delivered),
                    "{:?}",
                    key
                );
            }
        }
    }
    if close_at_end {
        p.client.cancel_all(CancelReason::EndpointDropped);
        p.server.cancel_all(CancelReason::EndpointDropped);
        collect(&mut p, &mut outcomes);
        for key in accepted.keys() {
            prop_assert_eq!(outcomes.get(key).map(|v| v.len()), Some(1), "{:?}", key);
        }
        prop_assert_eq!(outcomes.len(), accepted.len());
    }
    for (k, v) in &outcomes {
        prop_assert!(v.len() == 1, "{k:?} completed {} times", v.len());
        prop_assert!(accepted.contains_key(k), "completion for a refused write {k:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random writes, losses, reads, resets, STOP_SENDING and closes on both sides of a
    /// pair: each accepted write gets exactly one completion, and none is left pending
    /// once the endpoints are dropped.
    #[test]
    fn every_accepted_send_completes_exactly_once(ops in proptest::collection::vec(op(), 1..150)) {
        run(ops, true)?;
    }

    /// Without the final drop, a settled connection that nobody closed has delivered every
    /// write on streams that were not reset or stopped (no completion is lost).
    #[test]
    fn settled_writes_are_delivered(ops in proptest::collection::vec(op(), 1..150)) {
        run(ops, false)?;
    }
}
