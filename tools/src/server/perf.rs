//! The perf protocol (draft-banks-quic-performance) served by a handler on the worker that
//! owns the connection: on each bidirectional stream the client sends the response size as 8
//! bytes (big-endian), then its upload, then FIN; the server drains the upload and answers
//! with that many bytes, then FIN.
//!
//! No thread, no lock and no allocation per request: the upload is read into one buffer per
//! connection and dropped, the response is slices of one shared payload, and a stream writes
//! only as much as the peer may receive ([`ConnCtx::send_room`]) — a client that grants no
//! credit makes the server hold no more than its credit plus a small constant, whatever size
//! it asked for.

use std::collections::hash_map::Entry;

use peregrine_engine::app::{ConnCtx, ConnectionHandler};
use peregrine_engine::ConnectionError;
use peregrine_engine::{ReadError, StreamId, WriteError};
use rustc_hash::FxHashMap;

use super::service::Shared;
use crate::perf::protocol::{payload, CHUNK};

use super::CODE_BAD_REQUEST;

/// Largest perf response a stream can carry: a request above it is malformed (an
/// hq-interop `GET /...` sent on a perf connection reads as about 5 * 10^18) and is refused.
//= https://www.rfc-editor.org/rfc/rfc9000#section-19.8
//# The largest offset
//# delivered on a stream -- the sum of the offset and data length --
//# cannot exceed 2^62-1, as it is not possible to provide flow control
//# credit for that data.
pub const MAX_PERF_RESPONSE: u64 = (1 << 62) - 1;

/// One stream's progress.
#[derive(Debug)]
enum Stream {
    /// Reading the 8-byte size (`got` of them so far), then draining the upload.
    Request { size: [u8; 8], got: usize },
    /// Upload drained: sending `left` more bytes.
    Respond { left: u64 },
}

/// The handler of one perf connection.
pub struct PerfHandler {
    streams: FxHashMap<StreamId, Stream>,
    shared: Shared,
    /// DATAGRAM frames received on the connection (`perf --datagrams`).
    datagrams: u64,
}

/// Reads and drops whatever stream `id` has.
pub(super) fn drain(cx: &mut ConnCtx<'_>, id: StreamId) {
    while let Ok(c) = cx.read_chunk(id, usize::MAX) {
        if c.fin || c.data.is_empty() {
            break;
        }
    }
}

impl PerfHandler {
    pub(super) fn new(shared: Shared) -> Self {
        Self { streams: FxHashMap::default(), shared, datagrams: 0 }
    }

    /// Sends what the stream's room allows; FIN with the last bytes.
    fn pump(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        let Some(Stream::Respond { left }) = self.streams.get_mut(&id) else { return };
        let p = payload();
        loop {
            if *left == 0 {
                // Only the FIN is left (a zero-byte response, or a FIN refused earlier).
                if !matches!(cx.finish(id), Err(WriteError::Blocked)) {
                    self.streams.remove(&id);
                }
                return;
            }
            let room = cx.send_room(id);
            if room == 0 {
                return; // on_writable follows
            }
            let n = (*left).min(room).min(CHUNK as u64);
            let fin = n == *left;
            match cx.write(id, p.slice(..n as usize), fin) {
                Ok(_) => {
                    *left -= n;
                    self.shared.counters.response_bytes(n);
                    if fin {
                        self.streams.remove(&id);
                        return;
                    }
                }
                Err(WriteError::Blocked) => return,
                Err(_) => {
                    // Reset, stopped or closed: nothing more to send.
                    self.streams.remove(&id);
                    return;
                }
            }
        }
    }
}

impl ConnectionHandler for PerfHandler {
    fn on_stream_opened(&mut self, _cx: &mut ConnCtx<'_>, id: StreamId) {
        if id.dir() == peregrine_engine::Dir::Bi {
            self.streams.insert(id, Stream::Request { size: [0; 8], got: 0 });
        }
    }

    fn on_readable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        let Entry::Occupied(mut e) = self.streams.entry(id) else {
            // A unidirectional stream, or a response already under way: drain it.
            drain(cx, id);
            return;
        };
        let Stream::Request { size, got } = e.get_mut() else { return };
        let mut fin = false;
        while *got < 8 && !fin {
            match cx.read(id, &mut size[*got..]) {
                Ok((0, false)) | Err(ReadError::Blocked) => return,
                Ok((n, f)) => {
                    *got += n;
                    fin = f;
                }
                Err(_) => {
                    e.remove();
                    return;
                }
            }
        }
        if *got == 8 && u64::from_be_bytes(*size) > MAX_PERF_RESPONSE {
            // An hq-interop "GET /..." on a perf connection reads as ~5 * 10^18 bytes.
            tracing::warn!(
                size = u64::from_be_bytes(*size),
                hq_request = size.starts_with(b"GET "),
                "perf request larger than a stream can carry refused"
            );
            e.remove();
            let _ = cx.reset(id, CODE_BAD_REQUEST);
            let _ = cx.stop_sending(id, CODE_BAD_REQUEST);
            return;
        }
        if !fin {
            // The upload (until its FIN): taken without copying and dropped.
            loop {
                match cx.read_chunk(id, usize::MAX) {
                    Ok(c) => {
                        self.shared.counters.upload_bytes(c.data.len() as u64);
                        if c.fin {
                            break;
                        }
                        if c.data.is_empty() {
                            return;
                        }
                    }
                    Err(ReadError::Blocked) => return,
                    Err(_) => {
                        e.remove();
                        return;
                    }
                }
            }
        }
        if *got < 8 {
            e.remove();
            let _ = cx.reset(id, CODE_BAD_REQUEST);
            return;
        }
        let left = u64::from_be_bytes(*size);
        e.insert(Stream::Respond { left });
        self.shared.counters.request();
        self.pump(cx, id);
    }

    fn on_writable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        self.pump(cx, id);
    }

    /// `perf --datagrams`: each datagram goes back with our receive count in its header
    /// (`crate::perf::datagrams`). An echo the send queue cannot take is dropped (counted by
    /// the connection): datagrams are unreliable both ways.
    fn on_datagram(&mut self, cx: &mut ConnCtx<'_>) {
        while let Some(d) = cx.recv_datagram() {
            self.datagrams += 1;
            let _ = cx.send_datagram(crate::perf::datagrams::echo(&d, self.datagrams));
        }
    }

    fn on_reset(&mut self, cx: &mut ConnCtx<'_>, id: StreamId, _code: u64) {
        if matches!(self.streams.get(&id), Some(Stream::Request { .. })) {
            self.streams.remove(&id);
            let _ = cx.reset(id, CODE_BAD_REQUEST);
        }
    }

    fn on_stop_sending(&mut self, _cx: &mut ConnCtx<'_>, id: StreamId, _code: u64) {
        self.streams.remove(&id);
    }

    fn on_closed(&mut self, cx: &mut ConnCtx<'_>, error: &ConnectionError) {
        self.streams.clear();
        super::service::log_end(cx, "perf", error);
        self.shared.connection_ended(cx.stats());
    }
}
