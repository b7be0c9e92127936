//! DESIGN.md invariant 4: MAX_STREAMS credit comes back once per finished peer stream, however it finished.

use super::*;

const LIMIT: u64 = 2;

fn pair() -> Pair {
    let server = StreamsConfig::default()
        .with_max_concurrent_streams(Dir::Bi, LIMIT)
        .unwrap()
        .with_max_concurrent_streams(Dir::Uni, LIMIT)
        .unwrap();
    Pair::new(StreamsConfig::default(), server)
}

/// Ways a client-opened stream can finish; `None` for the server's part of a uni stream.
#[derive(Clone, Copy, Debug)]
enum End {
    /// The sender sends FIN; the receiver reads to the end.
    Fin,
    /// The sender resets.
    Reset,
    /// The receiver sends STOP_SENDING; the sender answers with RESET_STREAM.
    StopSending,
}

/// Finishes the client->server direction of `id` with `how`.
fn end_client_part(p: &mut Pair, id: StreamId, how: End) {
    match how {
        End::Fin => {
            p.client.finish(id).unwrap();
            p.settle();
            assert_eq!(p.read_all(Role::Server, id), (b"hi".to_vec(), true));
        }
        End::Reset => p.client.reset(id, 7).unwrap(),
        End::StopSending => p.server.stop_sending(id, 8).unwrap(),
    }
    p.settle();
}

/// Finishes the server->client direction of bidi `id` with `how`.
fn end_server_part(p: &mut Pair, id: StreamId, how: End) {
    match how {
        End::Fin => {
            p.server.write(id, Bytes::from_static(b"ok"), true).unwrap();
            p.settle();
            assert_eq!(p.read_all(Role::Client, id), (b"ok".to_vec(), true));
        }
        End::Reset => p.server.reset(id, 9).unwrap(),
        End::StopSending => p.client.stop_sending(id, 10).unwrap(),
    }
    p.settle();
}

/// Opens up to the limit, then finishes one stream at a time and checks the credit.
fn run(dir: Dir, ends: &[(End, Option<End>)]) {
    let mut p = pair();
    let mut open = Vec::new();
    for _ in 0..LIMIT {
        let id = p.client.open(dir).unwrap();
        p.client.write(id, Bytes::from_static(b"hi"), false).unwrap();
        open.push(id);
    }
    assert_eq!(p.client.open(dir), Err(OpenError::Blocked));
    p.settle();
    assert!(p
        .sent_control
        .contains(&(Role::Client, ControlFrame::StreamsBlocked { dir, limit: LIMIT })));
    for (i, &(client_end, server_end)) in ends.iter().enumerate() {
        let before = p.server.max_remote_streams(dir);
        let id = open.remove(0);
        end_client_part(&mut p, id, client_end);
        if let Some(server_end) = server_end {
            assert_eq!(
                p.server.max_remote_streams(dir),
                before,
                "half-closed {id:?} returns no credit"
            );
            end_server_part(&mut p, id, server_end);
        }
        let after = p.server.max_remote_streams(dir);
        assert_eq!(
            after,
            before + 1,
            "stream {i} ({client_end:?}, {server_end:?}) returns exactly one credit"
        );
        assert!(p
            .sent_control
            .contains(&(Role::Server, ControlFrame::MaxStreams { dir, max: after })));
        assert_eq!(p.client.max_local_streams(dir), after);
        // The client may open exactly one more.
        let new = p.client.open(dir).unwrap();
        p.client.write(new, Bytes::from_static(b"hi"), false).unwrap();
        open.push(new);
        assert_eq!(p.client.open(dir), Err(OpenError::Blocked));
        p.settle();
        assert_eq!(p.server.max_remote_streams(dir), after, "no credit without a finished stream");
    }
    let ev = events(&mut p.client);
    let available = ev.iter().filter(|e| **e == StreamEvent::Available { dir }).count();
    assert_eq!(available, ends.len(), "a refused open is woken once per new limit");
}

#[test]
fn opening_a_stream_never_waits_forever_uni() {
    run(
        Dir::Uni,
        &[(End::Fin, None), (End::Reset, None), (End::StopSending, None), (End::Fin, None)],
    );
}

#[test]
fn opening_a_stream_never_waits_forever_bidi() {
    let all = [End::Fin, End::Reset, End::StopSending];
    let mut ends = Vec::new();
    for c in all {
        for s in all {
            ends.push((c, Some(s)));
        }
    }
    run(Dir::Bi, &ends);
}

#[test]
fn bidi_stop_sending_both_ways() {
    // The peer stops our sending part while we still have unacknowledged data in flight;
    // we stop theirs: both sides answer with resets and the stream is freed.
    let mut p = pair();
    let id = p.client.open(Dir::Bi).unwrap();
    p.client.write(id, Bytes::from(vec![1u8; 10_000]), false).unwrap();
    p.settle();
    let w = p.server.write(id, Bytes::from(vec![2u8; 10_000]), false).unwrap();
    p.server.poll_stream_data(500).unwrap(); // in flight, never acknowledged
    p.server.stop_sending(id, 1).unwrap();
    p.client.stop_sending(id, 2).unwrap();
    p.settle();
    assert!(p.server.is_empty() && p.client.is_empty());
    assert_eq!(p.server.max_remote_streams(Dir::Bi), LIMIT + 1);
    let ev = events(&mut p.server);
    assert!(ev.contains(&StreamEvent::Stopped { id, error_code: 2 }));
    assert!(ev.contains(&StreamEvent::WriteComplete {
        id,
        write: w,
        outcome: WriteOutcome::Cancelled(CancelReason::StopSending(2))
    }));
}
