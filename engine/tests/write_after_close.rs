//! Found by `peregrine stress`: a write posted after its connection left the worker was
//! reported as accepted-then-cancelled (`Cancelled(ConnectionClosed)`) although nothing was
//! ever queued. It is refused (`Refused(WriteError::Closed)`), as `WriteStatus::Refused`
//! documents, so "every accepted send completes exactly once" counts only real sends.

mod support;

use std::time::Duration;

use peregrine_engine::api::WriteStatus;
use peregrine_engine::connection::TransportConfig;
use peregrine_engine::streams::WriteError;
use peregrine_engine::VarInt;

const T: Duration = Duration::from_secs(10);

#[test]
fn a_write_after_the_connection_drained_is_refused_not_cancelled() {
    let (server, client) =
        support::loopback_pair(TransportConfig::default(), TransportConfig::default());
    let conn = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let (s, _r) = conn.open_bi_blocking(T).unwrap();
    assert_eq!(s.write(vec![1u8; 100]).wait(T).unwrap(), WriteStatus::Delivered);
    conn.close(VarInt::from_u32(7), b"done");
    assert!(conn.wait_drained(T), "the connection leaves its worker");
    let before = client.stats();
    let late = s.write(vec![2u8; 100]).wait(T).unwrap();
    assert_eq!(late, WriteStatus::Refused(WriteError::Closed));
    assert!(!late.was_accepted());
    let after = client.stats();
    assert_eq!(after.refused, before.refused + 1);
    assert_eq!(after.cancelled, before.cancelled);
    assert_eq!(after.completions, after.writes);
}
