//! Peer frames that name the wrong stream: limits, directions, unopened streams, bad counts.

use super::*;
use crate::error::TransportErrorCode as Code;

fn server(bidi: u64, uni: u64) -> Streams {
    let cfg = StreamsConfig::default()
        .with_max_concurrent_streams(Dir::Bi, bidi)
        .unwrap()
        .with_max_concurrent_streams(Dir::Uni, uni)
        .unwrap();
    let mut s = Streams::new(Role::Server, cfg);
    s.set_peer_limits(params(&StreamsConfig::default())).unwrap();
    s
}

fn sid(role: Role, dir: Dir, i: u64) -> StreamId {
    StreamId::new(role, dir, i).unwrap()
}

fn data() -> Bytes {
    Bytes::from_static(b"x")
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-4.6
//= type=test
//# An endpoint
//# that receives a frame with a stream ID exceeding the limit it has
//# sent MUST treat this as a connection error of type
//# STREAM_LIMIT_ERROR; see Section 11 for details on error handling.
//= https://www.rfc-editor.org/rfc/rfc9000#section-3.2
//= type=test
//# Before a stream is created, all streams of the same type with lower-
//# numbered stream IDs MUST be created.
#[test]
fn stream_limit_error_and_implicit_open() {
    let mut s = server(3, 1);
    let e = s.on_stream(sid(Role::Client, Dir::Bi, 3), 0, data(), false).unwrap_err();
    assert_eq!(e.code, Code::STREAM_LIMIT_ERROR);
    // Index 2 (the third stream) is allowed and opens 0 and 1 first, in order.
    s.on_stream(sid(Role::Client, Dir::Bi, 2), 0, data(), false).unwrap();
    let opened: Vec<_> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            StreamEvent::Opened { id } => Some(id.index()),
            _ => None,
        })
        .collect();
    assert_eq!(opened, vec![0, 1, 2]);
    assert_eq!(s.recv_state(sid(Role::Client, Dir::Bi, 0)), Some(RecvState::Recv));
    // Every frame kind is checked against the limit, also for uni streams.
    let over = sid(Role::Client, Dir::Uni, 1);
    assert_eq!(s.on_reset_stream(over, 0, 0).unwrap_err().code, Code::STREAM_LIMIT_ERROR);
    assert_eq!(s.on_stream_data_blocked(over, 0).unwrap_err().code, Code::STREAM_LIMIT_ERROR);
    let over_bi = sid(Role::Client, Dir::Bi, 3);
    assert_eq!(s.on_max_stream_data(over_bi, 9).unwrap_err().code, Code::STREAM_LIMIT_ERROR);
    assert_eq!(s.on_stop_sending(over_bi, 0).unwrap_err().code, Code::STREAM_LIMIT_ERROR);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.8
//= type=test
//# An endpoint MUST terminate the connection with error
//# STREAM_STATE_ERROR if it receives a STREAM frame for a locally
//# initiated stream that has not yet been created, or for a send-only
//# stream.
//= https://www.rfc-editor.org/rfc/rfc9000#section-19.4
//= type=test
//# An endpoint that receives a RESET_STREAM frame for a send-only stream
//# MUST terminate the connection with error STREAM_STATE_ERROR.

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.5
//= type=test
//# Receiving a STOP_SENDING frame for a
//# locally initiated stream that has not yet been created MUST be
//# treated as a connection error of type STREAM_STATE_ERROR.  An
//# endpoint that receives a STOP_SENDING frame for a receive-only stream
//# MUST terminate the connection with error STREAM_STATE_ERROR.

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.10
//= type=test
//# Receiving a MAX_STREAM_DATA frame for a locally
//# initiated stream that has not yet been created MUST be treated as a
//# connection error of type STREAM_STATE_ERROR.  An endpoint that
//# receives a MAX_STREAM_DATA frame for a receive-only stream MUST
//# terminate the connection with error STREAM_STATE_ERROR.

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.13
//= type=test
//# An endpoint that receives a STREAM_DATA_BLOCKED frame for a send-only
//# stream MUST terminate the connection with error STREAM_STATE_ERROR.
#[test]
fn stream_state_errors_by_direction() {
    let mut s = server(10, 10);
    let our_uni = s.open(Dir::Uni).unwrap();
    let our_bi = s.open(Dir::Bi).unwrap();
    let peer_uni = sid(Role::Client, Dir::Uni, 0);
    let unopened_bi = sid(Role::Server, Dir::Bi, 1);
    let unopened_uni = sid(Role::Server, Dir::Uni, 5);
    let state = |r: Result<(), Error>| r.unwrap_err().code;
    // Frames for our receiving part on a send-only stream.
    assert_eq!(state(s.on_stream(our_uni, 0, data(), false)), Code::STREAM_STATE_ERROR);
    assert_eq!(state(s.on_reset_stream(our_uni, 0, 0)), Code::STREAM_STATE_ERROR);
    assert_eq!(state(s.on_stream_data_blocked(our_uni, 0)), Code::STREAM_STATE_ERROR);
    // Frames for our sending part on a receive-only stream.
    assert_eq!(state(s.on_max_stream_data(peer_uni, 10)), Code::STREAM_STATE_ERROR);
    assert_eq!(state(s.on_stop_sending(peer_uni, 0)), Code::STREAM_STATE_ERROR);
    // Locally initiated streams that we have not opened.
    assert_eq!(state(s.on_stream(unopened_bi, 0, data(), false)), Code::STREAM_STATE_ERROR);
    assert_eq!(state(s.on_max_stream_data(unopened_bi, 10)), Code::STREAM_STATE_ERROR);
    assert_eq!(state(s.on_stop_sending(unopened_uni, 0)), Code::STREAM_STATE_ERROR);
    assert_eq!(state(s.on_reset_stream(unopened_bi, 0, 0)), Code::STREAM_STATE_ERROR);
    // The same frames on the right streams are fine.
    s.on_stream(our_bi, 0, data(), false).unwrap();
    s.on_max_stream_data(our_uni, 5).unwrap();
    s.on_stream(peer_uni, 0, data(), true).unwrap();
    assert!(s.write(peer_uni, data(), false).is_err(), "cannot write on a receive-only stream");
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.11
//= type=test
//# Receipt of a frame that
//# permits opening of a stream larger than this limit MUST be treated
//# as a connection error of type FRAME_ENCODING_ERROR.
#[test]
fn stream_counts_above_2_60() {
    let mut s = server(1, 1);
    assert_eq!(
        s.on_max_streams(Dir::Bi, (1 << 60) + 1).unwrap_err().code,
        Code::FRAME_ENCODING_ERROR
    );
    assert_eq!(
        s.on_streams_blocked(Dir::Uni, (1 << 60) + 1).unwrap_err().code,
        Code::FRAME_ENCODING_ERROR
    );
    s.on_max_streams(Dir::Bi, 1 << 60).unwrap();
    assert_eq!(s.max_local_streams(Dir::Bi), 1 << 60);
    s.on_max_streams(Dir::Bi, 5).unwrap();
    assert_eq!(s.max_local_streams(Dir::Bi), 1 << 60, "smaller limits are ignored");
    let bad = PeerLimits { initial_max_streams_bidi: (1 << 60) + 1, ..Default::default() };
    assert_eq!(s.set_peer_limits(bad).unwrap_err().code, Code::TRANSPORT_PARAMETER_ERROR);
}

#[test]
fn frames_for_freed_streams_are_ignored() {
    let mut s = server(1, 1);
    let id = sid(Role::Client, Dir::Uni, 0);
    s.on_stream(id, 0, data(), true).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(s.read(id, &mut buf), Ok((1, true)));
    assert!(s.is_empty());
    assert_eq!(s.max_remote_streams(Dir::Uni), 2);
    // Retransmissions and late frames: no error, no new stream, no new credit.
    s.on_stream(id, 0, data(), true).unwrap();
    s.on_reset_stream(id, 0, 1).unwrap();
    s.on_stream_data_blocked(id, 1).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.max_remote_streams(Dir::Uni), 2);
    assert_eq!(s.read(id, &mut buf), Err(ReadError::Closed));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.9
//= type=test
//# An
//# endpoint MUST terminate a connection with an error of type
//# FLOW_CONTROL_ERROR if it receives more data than the maximum data
//# value that it has sent.
#[test]
fn connection_flow_control_error_at_limit_plus_one() {
    let cfg = StreamsConfig::default()
        .with_receive_window(1000)
        .unwrap()
        .with_stream_receive_window(800)
        .unwrap();
    let mut s = Streams::new(Role::Server, cfg);
    let a = sid(Role::Client, Dir::Bi, 0);
    let b = sid(Role::Client, Dir::Uni, 0);
    s.on_stream(a, 0, Bytes::from(vec![0; 600]), false).unwrap();
    // A gap counts: the highest offset is what uses credit.
    s.on_stream(b, 399, data(), false).unwrap();
    assert_eq!(s.conn_recv().received(), 1000);
    let e = s.on_stream(a, 600, data(), false).unwrap_err();
    assert_eq!(e.code, Code::FLOW_CONTROL_ERROR);
    // A reset's final size counts too.
    let mut s =
        Streams::new(Role::Server, StreamsConfig::default().with_receive_window(1000).unwrap());
    s.on_stream(a, 0, Bytes::from(vec![0; 500]), false).unwrap();
    assert_eq!(s.on_reset_stream(b, 0, 501).unwrap_err().code, Code::FLOW_CONTROL_ERROR);
    s.on_reset_stream(b, 0, 500).unwrap();
}

#[test]
fn closed_streams_refuse_everything() {
    let mut s = server(1, 1);
    s.set_peer_limits(params(&StreamsConfig::default())).unwrap();
    let id = s.open(Dir::Bi).unwrap();
    let w = s.write(id, data(), false).unwrap();
    s.cancel_all(CancelReason::ConnectionClosed);
    s.cancel_all(CancelReason::EndpointDropped);
    assert_eq!(
        events(&mut s),
        vec![StreamEvent::WriteComplete {
            id,
            write: w,
            outcome: WriteOutcome::Cancelled(CancelReason::ConnectionClosed)
        }]
    );
    assert_eq!(s.open(Dir::Bi), Err(OpenError::Closed));
    assert_eq!(s.write(id, data(), false), Err(WriteError::Closed));
    assert_eq!(s.read(id, &mut [0; 1]), Err(ReadError::Closed));
    assert!(s.poll_stream_data(1000).is_none() && s.poll_control(base(), Duration::ZERO).is_none());
    assert!(!s.wants_transmit() && s.is_closed());
    s.on_stream(sid(Role::Client, Dir::Bi, 0), 0, data(), false).unwrap();
    assert!(s.is_empty());
}
