//! Flow control through the manager: BLOCKED signals once per limit, credit updates, auto-tuning.

use super::*;

fn client_with_peer(max_data: u64, stream_data: u64, streams: u64) -> Streams {
    let mut c = Streams::new(Role::Client, StreamsConfig::default());
    let limits = PeerLimits {
        initial_max_data: max_data,
        initial_max_stream_data_bidi_local: stream_data,
        initial_max_stream_data_bidi_remote: stream_data,
        initial_max_stream_data_uni: stream_data,
        initial_max_streams_bidi: streams,
        initial_max_streams_uni: streams,
    };
    c.set_peer_limits(limits).unwrap();
    c
}

fn drain_data(s: &mut Streams) -> u64 {
    std::iter::from_fn(|| s.poll_stream_data(1000)).map(|f| f.data.len() as u64).sum()
}

fn controls(s: &mut Streams) -> Vec<ControlFrame> {
    let now = base();
    std::iter::from_fn(|| s.poll_control(now, Duration::ZERO)).collect()
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.12
//= type=test
//# A sender SHOULD send a DATA_BLOCKED frame (type=0x14) when it wishes
//# to send data but is unable to do so due to connection-level flow
//# control; see Section 4.
#[test]
fn data_blocked_once_per_limit() {
    let mut c = client_with_peer(1500, 1 << 20, 10);
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    c.write(a, Bytes::from(vec![0; 1000]), false).unwrap();
    c.write(b, Bytes::from(vec![0; 1000]), false).unwrap();
    assert_eq!(drain_data(&mut c), 1500, "connection credit bounds the total");
    assert_eq!(controls(&mut c), vec![ControlFrame::DataBlocked(1500)]);
    c.write(a, Bytes::from(vec![0; 10]), false).unwrap();
    assert_eq!(drain_data(&mut c), 0);
    assert_eq!(controls(&mut c), vec![], "not again for the same limit");
    c.on_control_lost(&ControlFrame::DataBlocked(1500));
    assert_eq!(controls(&mut c), vec![ControlFrame::DataBlocked(1500)], "repeated when lost");
    c.on_max_data(1600);
    assert_eq!(drain_data(&mut c), 100, "blocked streams resume on MAX_DATA");
    assert_eq!(controls(&mut c), vec![ControlFrame::DataBlocked(1600)]);
    c.on_max_data(10_000);
    assert_eq!(drain_data(&mut c), 410);
    assert_eq!(controls(&mut c), vec![]);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.13
//= type=test
//# A sender SHOULD send a STREAM_DATA_BLOCKED frame (type=0x15) when it
//# wishes to send data but is unable to do so due to stream-level flow
//# control.
#[test]
fn stream_data_blocked_once_per_limit() {
    let mut c = client_with_peer(1 << 20, 100, 10);
    let a = c.open(Dir::Bi).unwrap();
    c.write(a, Bytes::from(vec![0; 300]), false).unwrap();
    assert_eq!(drain_data(&mut c), 100);
    assert_eq!(controls(&mut c), vec![ControlFrame::StreamDataBlocked { id: a, limit: 100 }]);
    c.write(a, Bytes::from(vec![0; 1]), false).unwrap();
    assert_eq!(controls(&mut c), vec![]);
    c.on_max_stream_data(a, 90).unwrap();
    assert_eq!(drain_data(&mut c), 0, "smaller limits are ignored");
    c.on_max_stream_data(a, 250).unwrap();
    assert_eq!(drain_data(&mut c), 150);
    assert_eq!(controls(&mut c), vec![ControlFrame::StreamDataBlocked { id: a, limit: 250 }]);
}

#[test]
fn streams_blocked_once_per_limit() {
    let mut c = client_with_peer(1000, 1000, 1);
    c.open(Dir::Bi).unwrap();
    assert_eq!(c.open(Dir::Bi), Err(OpenError::Blocked));
    assert_eq!(c.open(Dir::Bi), Err(OpenError::Blocked));
    assert_eq!(controls(&mut c), vec![ControlFrame::StreamsBlocked { dir: Dir::Bi, limit: 1 }]);
    assert_eq!(c.open(Dir::Bi), Err(OpenError::Blocked));
    assert_eq!(controls(&mut c), vec![]);
    c.on_control_lost(&ControlFrame::StreamsBlocked { dir: Dir::Bi, limit: 1 });
    assert_eq!(controls(&mut c), vec![ControlFrame::StreamsBlocked { dir: Dir::Bi, limit: 1 }]);
    c.on_max_streams(Dir::Bi, 2).unwrap();
    assert_eq!(events(&mut c), vec![StreamEvent::Available { dir: Dir::Bi }]);
    c.on_control_lost(&ControlFrame::StreamsBlocked { dir: Dir::Bi, limit: 1 });
    assert_eq!(controls(&mut c), vec![], "stale loss");
    c.open(Dir::Bi).unwrap();
    assert_eq!(c.open(Dir::Bi), Err(OpenError::Blocked));
    assert_eq!(controls(&mut c), vec![ControlFrame::StreamsBlocked { dir: Dir::Bi, limit: 2 }]);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-4.5
//= type=test
//# The receiver MUST use the final size of the stream to
//# account for all bytes sent on the stream in its connection-level flow
//# controller.
#[test]
fn reading_returns_stream_and_connection_credit() {
    let cfg = StreamsConfig::default()
        .with_stream_receive_window(1000)
        .unwrap()
        .with_max_stream_receive_window(1000)
        .unwrap()
        .with_receive_window(2000)
        .unwrap()
        .with_max_receive_window(2000)
        .unwrap();
    let mut s = Streams::new(Role::Server, cfg);
    let id = StreamId::new(Role::Client, Dir::Uni, 0).unwrap();
    s.on_stream(id, 0, Bytes::from(vec![0; 1000]), false).unwrap();
    assert_eq!(controls(&mut s), vec![], "nothing read yet");
    assert_eq!(s.read(id, &mut [0; 499]), Ok((499, false)));
    assert_eq!(controls(&mut s), vec![]);
    assert_eq!(s.read(id, &mut [0; 1]), Ok((1, false)));
    assert_eq!(controls(&mut s), vec![ControlFrame::MaxStreamData { id, max: 1500 }]);
    s.on_control_lost(&ControlFrame::MaxStreamData { id, max: 1500 });
    assert_eq!(controls(&mut s), vec![ControlFrame::MaxStreamData { id, max: 1500 }]);
    assert_eq!(s.read(id, &mut [0; 1000]), Ok((500, false)));
    assert_eq!(
        controls(&mut s),
        vec![ControlFrame::MaxData(3000), ControlFrame::MaxStreamData { id, max: 2000 }]
    );
    s.on_control_lost(&ControlFrame::MaxData(3000));
    assert_eq!(controls(&mut s), vec![ControlFrame::MaxData(3000)]);
    // A reset releases the unread remainder of the final size to the connection.
    s.on_stream(id, 1000, Bytes::from(vec![0; 100]), false).unwrap();
    s.on_reset_stream(id, 3, 1500).unwrap();
    assert_eq!(s.conn_recv().consumed(), 1500);
}

/// Each round the peer fills the whole advertised window and the application reads it all;
/// rounds are `gap` apart. Returns the MAX_STREAM_DATA increments (the window in use).
fn tune(gap: Duration, rounds: usize) -> Vec<u64> {
    let cfg = StreamsConfig::default()
        .with_stream_receive_window(10_000)
        .unwrap()
        .with_max_stream_receive_window(80_000)
        .unwrap()
        .with_receive_window(1 << 30)
        .unwrap();
    let mut s = Streams::new(Role::Server, cfg);
    let id = StreamId::new(Role::Client, Dir::Uni, 0).unwrap();
    let rtt = Duration::from_millis(20);
    let mut now = base();
    let (mut offset, mut limit) = (0u64, 10_000u64);
    let mut increments = Vec::new();
    for _ in 0..rounds {
        let n = limit - offset;
        s.on_stream(id, offset, Bytes::from(vec![1; n as usize]), false).unwrap();
        offset += n;
        let mut buf = vec![0; n as usize];
        assert_eq!(s.read(id, &mut buf), Ok((n as usize, false)));
        now += gap;
        while let Some(f) = s.poll_control(now, rtt) {
            if let ControlFrame::MaxStreamData { max, .. } = f {
                increments.push(max - limit);
                limit = max;
            }
        }
    }
    increments
}

#[test]
fn auto_tuning_grows_windows_only_when_consumption_is_fast() {
    // A window per RTT (updates < 2 RTT apart): the window doubles up to the 80 KB cap.
    let fast = tune(Duration::from_millis(20), 8);
    assert_eq!(fast, vec![10_000, 20_000, 40_000, 80_000, 80_000, 80_000, 80_000, 80_000]);
    // A window per 5 RTTs: the window is not the bottleneck and stays at 10 KB.
    let slow = tune(Duration::from_millis(100), 8);
    assert_eq!(slow, vec![10_000; 8]);
}

/// Send-buffer auto-tuning: the floor the connection passes (twice its congestion window)
/// raises every stream's buffer, in powers of two, never below the configured size nor above
/// `MAX_AUTO_SEND_BUFFER`; a write blocked under the old limit becomes writable; the limit
/// shrinks only when the floor falls to a quarter of it.
#[test]
fn send_buffer_follows_the_floor() {
    let cfg = StreamsConfig::default().with_send_buffer(1000).unwrap();
    let mut p = super::Pair::new(cfg.clone(), cfg);
    let id = p.client.open(Dir::Uni).unwrap();
    p.client.write(id, Bytes::from(vec![1u8; 800]), false).unwrap();
    assert_eq!(
        p.client.write(id, Bytes::from(vec![2u8; 800]), false),
        Err(WriteError::Blocked),
        "1600 bytes exceed the 1000-byte buffer"
    );
    let _ = super::events(&mut p.client);
    // Below the configured size: nothing changes.
    p.client.set_send_buffer_floor(500);
    assert_eq!(p.client.send_buffer(), 1000);
    assert!(super::events(&mut p.client).is_empty());
    // Above it: rounded up to a power of two, and the blocked write is told.
    p.client.set_send_buffer_floor(3000);
    assert_eq!(p.client.send_buffer(), 4096);
    assert_eq!(super::events(&mut p.client), [StreamEvent::Writable { id }]);
    p.client.write(id, Bytes::from(vec![2u8; 800]), false).unwrap();
    // New streams get the current limit too.
    let id2 = p.client.open(Dir::Uni).unwrap();
    p.client.write(id2, Bytes::from(vec![3u8; 3000]), false).unwrap();
    p.client.write(id2, Bytes::from(vec![3u8; 1000]), false).unwrap();
    // Hysteresis: a smaller floor above a quarter of the limit keeps it...
    p.client.set_send_buffer_floor(1500);
    assert_eq!(p.client.send_buffer(), 4096);
    // ...a floor at a quarter or less brings it down (never under the configured size).
    p.client.set_send_buffer_floor(900);
    assert_eq!(p.client.send_buffer(), 1000);
    assert_eq!(p.client.write(id2, Bytes::from(vec![3u8; 10]), false), Err(WriteError::Blocked));
    // The ceiling.
    p.client.set_send_buffer_floor(u64::MAX);
    assert_eq!(p.client.send_buffer(), MAX_AUTO_SEND_BUFFER);
    // Everything written still arrives.
    p.settle();
    assert_eq!(p.read_all(Role::Server, id).0.len(), 1600);
    assert_eq!(p.read_all(Role::Server, id2).0.len(), 4000);
}
