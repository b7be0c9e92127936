//! hq-interop served by a handler on the worker that owns the connection: a bidirectional
//! stream carries `GET /path` and is answered with the file, read as the stream drains (never
//! ahead of what the peer may receive), then FIN. A missing file, an escape from the served
//! directory or a malformed request resets the stream with a code.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use peregrine_engine::app::{ConnCtx, ConnectionHandler};
use peregrine_engine::ConnectionError;
use peregrine_engine::{Dir, ReadError, StreamId, WriteError};
use rustc_hash::FxHashMap;

use super::perf::drain;
use super::service::Shared;
use super::{resolve, CODE_BAD_REQUEST, CODE_NOT_FOUND, MAX_REQUEST};

/// Largest piece read from a file at once.
const FILE_CHUNK: u64 = 64 * 1024;

/// One stream's progress.
enum Stream {
    /// Reading the request line.
    Request(Vec<u8>),
    /// Sending `left` more bytes of `file`.
    Respond { file: File, left: u64 },
}

/// The handler of one hq-interop connection.
pub struct HqHandler {
    streams: FxHashMap<StreamId, Stream>,
    shared: Shared,
}

impl HqHandler {
    pub(super) fn new(shared: Shared) -> Self {
        Self { streams: FxHashMap::default(), shared }
    }

    /// The request of `id` is complete (`head` up to its line end, or the FIN): open the file.
    fn start(&mut self, cx: &mut ConnCtx<'_>, id: StreamId, head: &[u8]) {
        let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
        let line = String::from_utf8_lossy(&head[..line_end]);
        let target = line.trim_end_matches('\r').strip_prefix("GET ").map(str::trim);
        let path = match (self.shared.root(), target) {
            (Some(root), Some(t)) if !t.is_empty() && line_end <= MAX_REQUEST => resolve(root, t),
            _ => Err(CODE_BAD_REQUEST),
        };
        let opened = path.and_then(|p| open(&p).ok_or(CODE_NOT_FOUND));
        match opened {
            Ok((file, left)) => {
                self.shared.counters.request();
                self.streams.insert(id, Stream::Respond { file, left });
                self.pump(cx, id);
            }
            Err(code) => {
                self.streams.remove(&id);
                let _ = cx.reset(id, code);
                let _ = cx.stop_sending(id, code);
            }
        }
    }

    /// Reads and sends what the stream's room allows; FIN with the last bytes.
    fn pump(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        let Some(Stream::Respond { file, left }) = self.streams.get_mut(&id) else { return };
        loop {
            if *left == 0 {
                if !matches!(cx.finish(id), Err(WriteError::Blocked)) {
                    self.streams.remove(&id);
                }
                return;
            }
            let room = cx.send_room(id);
            if room == 0 {
                return; // on_writable follows
            }
            let want = (*left).min(room).min(FILE_CHUNK) as usize;
            let mut buf = vec![0u8; want];
            let n = match file.read(&mut buf) {
                Ok(0) | Err(_) => {
                    // The file shrank or failed under us: the response cannot be completed.
                    self.streams.remove(&id);
                    let _ = cx.reset(id, CODE_NOT_FOUND);
                    return;
                }
                Ok(n) => n,
            };
            buf.truncate(n);
            let fin = n as u64 == *left;
            match cx.write(id, Bytes::from(buf), fin) {
                Ok(_) => {
                    *left -= n as u64;
                    self.shared.counters.response_bytes(n as u64);
                    if fin {
                        self.streams.remove(&id);
                        return;
                    }
                }
                Err(_) => {
                    // Blocked despite the room (cannot happen), reset, stopped or closed.
                    self.streams.remove(&id);
                    return;
                }
            }
        }
    }
}

/// Opens `path` and reads its length.
fn open(path: &Path) -> Option<(File, u64)> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    Some((file, len))
}

impl ConnectionHandler for HqHandler {
    fn on_stream_opened(&mut self, _cx: &mut ConnCtx<'_>, id: StreamId) {
        if id.dir() == Dir::Bi {
            self.streams.insert(id, Stream::Request(Vec::new()));
        }
    }

    fn on_readable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        let Some(Stream::Request(head)) = self.streams.get_mut(&id) else {
            drain(cx, id);
            return;
        };
        let mut complete = false;
        loop {
            match cx.read_chunk(id, MAX_REQUEST + 1) {
                Ok(c) => {
                    let room = (MAX_REQUEST + 1).saturating_sub(head.len());
                    head.extend_from_slice(&c.data[..c.data.len().min(room)]);
                    if c.fin || head.contains(&b'\n') || head.len() > MAX_REQUEST {
                        complete = true;
                        break;
                    }
                    if c.data.is_empty() {
                        break;
                    }
                }
                Err(ReadError::Blocked) => break,
                Err(_) => {
                    self.streams.remove(&id);
                    return;
                }
            }
        }
        if complete {
            let head = match self.streams.remove(&id) {
                Some(Stream::Request(h)) => h,
                _ => return,
            };
            self.start(cx, id, &head);
        }
    }

    fn on_writable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        self.pump(cx, id);
    }

    fn on_reset(&mut self, cx: &mut ConnCtx<'_>, id: StreamId, _code: u64) {
        if matches!(self.streams.get(&id), Some(Stream::Request(_))) {
            self.streams.remove(&id);
            let _ = cx.reset(id, CODE_BAD_REQUEST);
        }
    }

    fn on_stop_sending(&mut self, _cx: &mut ConnCtx<'_>, id: StreamId, _code: u64) {
        self.streams.remove(&id);
    }

    fn on_closed(&mut self, cx: &mut ConnCtx<'_>, error: &ConnectionError) {
        self.streams.clear();
        super::service::log_end(cx, "hq-interop", error);
        self.shared.connection_ended(cx.stats());
    }
}
