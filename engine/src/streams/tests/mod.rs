//! Tests of the [`Streams`](super::Streams) manager, mostly over an in-memory client/server pair.

mod completions;
mod credit;
mod errors;
mod flow;
mod scheduler;

use std::time::{Duration, Instant};

use super::*;

/// One base instant for a test; time advances by adding to it.
pub(super) fn base() -> Instant {
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

/// The transport parameters an endpoint with `cfg` advertises.
pub(super) fn params(cfg: &StreamsConfig) -> PeerLimits {
    PeerLimits {
        initial_max_data: cfg.receive_window(),
        initial_max_stream_data_bidi_local: cfg.stream_receive_window(),
        initial_max_stream_data_bidi_remote: cfg.stream_receive_window(),
        initial_max_stream_data_uni: cfg.stream_receive_window(),
        initial_max_streams_bidi: cfg.max_concurrent_streams(Dir::Bi),
        initial_max_streams_uni: cfg.max_concurrent_streams(Dir::Uni),
    }
}

/// Hands a control frame from one side to the other's frame handlers.
pub(super) fn deliver_control(to: &mut Streams, f: ControlFrame) -> Result<(), Error> {
    match f {
        ControlFrame::ResetStream { id, error_code, final_size } => {
            to.on_reset_stream(id, error_code, final_size)
        }
        ControlFrame::StopSending { id, error_code } => to.on_stop_sending(id, error_code),
        ControlFrame::MaxData(max) => {
            to.on_max_data(max);
            Ok(())
        }
        ControlFrame::MaxStreamData { id, max } => to.on_max_stream_data(id, max),
        ControlFrame::MaxStreams { dir, max } => to.on_max_streams(dir, max),
        ControlFrame::DataBlocked(limit) => {
            to.on_data_blocked(limit);
            Ok(())
        }
        ControlFrame::StreamDataBlocked { id, limit } => to.on_stream_data_blocked(id, limit),
        ControlFrame::StreamsBlocked { dir, limit } => to.on_streams_blocked(dir, limit),
    }
}

/// A client and a server connected by a lossless-or-lossy, zero-delay "wire": every frame
/// is delivered (and acknowledged) or declared lost as soon as it is polled.
pub(super) struct Pair {
    pub client: Streams,
    pub server: Streams,
    pub now: Instant,
    pub rtt: Duration,
    /// Every control frame that crossed the wire, by sender role.
    pub sent_control: Vec<(Role, ControlFrame)>,
}

impl Pair {
    pub fn new(client: StreamsConfig, server: StreamsConfig) -> Self {
        let (cp, sp) = (params(&client), params(&server));
        let mut client = Streams::new(Role::Client, client);
        let mut server = Streams::new(Role::Server, server);
        client.set_peer_limits(sp).unwrap();
        server.set_peer_limits(cp).unwrap();
        Self {
            client,
            server,
            now: base(),
            rtt: Duration::from_millis(10),
            sent_control: Vec::new(),
        }
    }

    pub fn side(&mut self, role: Role) -> &mut Streams {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    /// Sends everything `from` has, frame by frame; `lose()` decides each frame's fate.
    /// Returns the number of frames that crossed. Errors are the receiver's.
    pub fn flush(&mut self, from: Role, mut lose: impl FnMut() -> bool) -> Result<usize, Error> {
        let (now, rtt) = (self.now, self.rtt);
        let mut crossed = 0;
        for _ in 0..100_000 {
            let (tx, rx) = match from {
                Role::Client => (&mut self.client, &mut self.server),
                Role::Server => (&mut self.server, &mut self.client),
            };
            if let Some(f) = tx.poll_control(now, rtt) {
                if lose() {
                    tx.on_control_lost(&f);
                } else {
                    deliver_control(rx, f)?;
                    tx.on_control_acked(&f);
                    self.sent_control.push((from, f));
                    crossed += 1;
                }
            } else if let Some(s) = tx.poll_stream_data(1200) {
                let len = s.data.len() as u64;
                if lose() {
                    tx.on_stream_data_lost(s.id, s.offset, len, s.fin);
                } else {
                    rx.on_stream(s.id, s.offset, s.data, s.fin)?;
                    tx.on_stream_data_acked(s.id, s.offset, len, s.fin);
                    crossed += 1;
                }
            } else {
                return Ok(crossed);
            }
        }
        panic!("flush did not terminate");
    }

    /// Flushes both ways, losslessly, until neither side has anything to send.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            let n = self.flush(Role::Client, || false).unwrap()
                + self.flush(Role::Server, || false).unwrap();
            if n == 0 {
                return;
            }
        }
        panic!("pair did not settle");
    }

    /// Reads `id` on `role` to the end (or until blocked); returns the bytes and whether FIN was seen.
    pub fn read_all(&mut self, role: Role, id: StreamId) -> (Vec<u8>, bool) {
        let s = self.side(role);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(id, &mut buf) {
                Ok((n, fin)) => {
                    out.extend_from_slice(&buf[..n]);
                    if fin {
                        return (out, true);
                    }
                }
                Err(_) => return (out, false),
            }
        }
    }
}

/// All pending events of `s`.
pub(super) fn events(s: &mut Streams) -> Vec<StreamEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn end_to_end_bidi_request_response() {
    let mut p = Pair::new(StreamsConfig::default(), StreamsConfig::default());
    let id = p.client.open(Dir::Bi).unwrap();
    let w = p.client.write(id, Bytes::from_static(b"GET /"), true).unwrap();
    p.settle();
    assert_eq!(
        events(&mut p.server),
        vec![StreamEvent::Opened { id }, StreamEvent::Readable { id }]
    );
    assert_eq!(p.read_all(Role::Server, id), (b"GET /".to_vec(), true));
    let r = p.server.write(id, Bytes::from(vec![9u8; 5000]), true).unwrap();
    p.settle();
    assert_eq!(p.server.len(), 0, "both parts done: freed");
    assert_eq!(
        events(&mut p.server),
        vec![
            StreamEvent::WriteComplete { id, write: r, outcome: WriteOutcome::Delivered },
            StreamEvent::Finished { id }
        ]
    );
    let ev = events(&mut p.client);
    assert!(ev.contains(&StreamEvent::WriteComplete {
        id,
        write: w,
        outcome: WriteOutcome::Delivered
    }));
    assert!(
        ev.contains(&StreamEvent::Finished { id }) && ev.contains(&StreamEvent::Readable { id })
    );
    assert_eq!(p.read_all(Role::Client, id), (vec![9u8; 5000], true));
    assert!(p.client.is_empty());
}

#[test]
fn lossy_transfer_delivers_everything() {
    let mut p = Pair::new(StreamsConfig::default(), StreamsConfig::default());
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let id = p.client.open(Dir::Uni).unwrap();
    p.client.write(id, Bytes::from(data.clone()), true).unwrap();
    let mut got = Vec::new();
    let mut n = 0u32;
    for _ in 0..10_000 {
        // Lose every third frame of every kind.
        p.flush(Role::Client, || {
            n += 1;
            n.is_multiple_of(3)
        })
        .unwrap();
        got.extend(p.read_all(Role::Server, id).0);
        p.flush(Role::Server, || false).unwrap();
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data);
    p.settle();
    assert!(p.client.is_empty() && p.server.is_empty());
}

/// `read_chunks` takes what repeated `read_chunk` calls would: pieces of at most the chunk
/// size, no more than the room, the end of the stream once, then the stream is freed.
#[test]
fn read_chunks_takes_in_order_pieces_within_room() {
    let mut p = Pair::new(StreamsConfig::default(), StreamsConfig::default());
    let id = p.client.open(Dir::Uni).unwrap();
    let data: Vec<u8> = (0..9000u32).map(|i| (i * 13 + i / 251) as u8).collect();
    for piece in data.chunks(3000) {
        p.client.write(id, Bytes::copy_from_slice(piece), false).unwrap();
    }
    p.client.write(id, Bytes::new(), true).unwrap();
    p.settle();
    let mut out = Vec::new();
    let mut room = 0;
    assert_eq!(p.server.read_chunks(id, &mut room, 1000, &mut out), Ok(false));
    assert!(out.is_empty(), "no room: nothing taken");
    room = 2500;
    assert_eq!(p.server.read_chunks(id, &mut room, 1000, &mut out), Ok(false));
    assert_eq!(room, 0);
    assert_eq!(out.iter().map(Bytes::len).sum::<usize>(), 2500);
    assert!(out.iter().all(|c| !c.is_empty() && c.len() <= 1000));
    room = 1 << 20;
    assert_eq!(p.server.read_chunks(id, &mut room, 1000, &mut out), Ok(true));
    assert_eq!(room, (1 << 20) - 6500);
    assert_eq!(out.concat(), data);
    assert!(p.server.is_empty(), "fully read uni stream is freed");
    assert_eq!(p.server.read_chunks(id, &mut room, 1000, &mut out), Err(ReadError::Closed));
}
