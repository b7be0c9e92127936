//! Test applications: a sender writing verifiable byte patterns on many streams, and a receiver
//! checking every byte.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::connection::{Connection, Event};
use crate::streams::{
    Dir, OpenError, ReadError, StreamEvent, StreamId, WriteError, WriteId, WriteOutcome,
};

/// The byte at `offset` of stream number `stream`: cheap to compute, position dependent, so a
/// shifted, dropped or duplicated byte is caught.
pub fn pattern_byte(stream: u64, offset: u64) -> u8 {
    let x = offset.wrapping_mul(0x9e37_79b9).wrapping_add(stream.wrapping_mul(0x85eb_ca6b));
    (x ^ (x >> 13) ^ (offset >> 8)) as u8
}

fn fill(stream: u64, offset: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = pattern_byte(stream, offset + i as u64);
    }
}

/// Writes `per_stream` pattern bytes on each of `count` streams it opens, then FIN.
#[derive(Debug)]
pub struct Sender {
    dir: Dir,
    count: usize,
    per_stream: u64,
    chunk: usize,
    /// (stream, bytes written, FIN written).
    pub streams: Vec<(StreamId, u64, bool)>,
    /// Accepted writes.
    pub writes: u64,
    /// WriteComplete events seen (Delivered, Cancelled).
    pub completions: (u64, u64),
    /// Streams whose data was fully acknowledged (Finished events).
    pub finished: u64,
    ids: BTreeSet<WriteId>,
}

impl Sender {
    /// `count` streams of `dir`, `per_stream` bytes each, written in `chunk`-byte writes.
    pub fn new(dir: Dir, count: usize, per_stream: u64, chunk: usize) -> Self {
        Self {
            dir,
            count,
            per_stream,
            chunk,
            streams: Vec::new(),
            writes: 0,
            completions: (0, 0),
            finished: 0,
            ids: BTreeSet::new(),
        }
    }

    /// Opens streams and writes as much as the connection accepts.
    pub fn pump(&mut self, conn: &mut Connection) {
        while self.streams.len() < self.count {
            match conn.open(self.dir) {
                Ok(id) => self.streams.push((id, 0, false)),
                Err(OpenError::Blocked) | Err(OpenError::Closed) => break,
            }
        }
        let mut buf = vec![0u8; self.chunk];
        for (id, written, fin) in self.streams.iter_mut() {
            // Bounded by per_stream / chunk writes.
            while !*fin {
                let n = (self.per_stream - *written).min(self.chunk as u64) as usize;
                let last = *written + n as u64 == self.per_stream;
                fill(id.into_inner(), *written, &mut buf[..n]);
                match conn.write(*id, Bytes::copy_from_slice(&buf[..n]), last) {
                    Ok(w) => {
                        self.ids.insert(w);
                        self.writes += 1;
                        *written += n as u64;
                        *fin = last;
                    }
                    Err(WriteError::Blocked) | Err(_) => break,
                }
            }
        }
    }

    /// Accounts for a stream event.
    pub fn on_event(&mut self, e: &StreamEvent) {
        match e {
            StreamEvent::WriteComplete { write, outcome, .. } if self.ids.remove(write) => {
                match outcome {
                    WriteOutcome::Delivered => self.completions.0 += 1,
                    WriteOutcome::Cancelled(_) => self.completions.1 += 1,
                }
            }
            StreamEvent::Finished { id } if self.streams.iter().any(|s| s.0 == *id) => {
                self.finished += 1
            }
            _ => {}
        }
    }

    /// Every stream written to the end and acknowledged.
    pub fn all_acked(&self) -> bool {
        self.finished == self.count as u64
    }
}

/// Reads every peer stream and checks each byte against [`pattern_byte`].
#[derive(Debug, Default)]
pub struct Receiver {
    /// Per stream: bytes read, FIN seen.
    pub streams: BTreeMap<StreamId, (u64, bool)>,
    /// Bytes read in total.
    pub bytes: u64,
    /// Bytes that did not match the pattern.
    pub mismatches: u64,
}

impl Receiver {
    /// Learns about a stream from an event.
    pub fn on_event(&mut self, e: &StreamEvent) {
        if let StreamEvent::Opened { id } | StreamEvent::Readable { id } = e {
            self.streams.entry(*id).or_insert((0, false));
        }
    }

    /// Reads everything available.
    pub fn pump(&mut self, conn: &mut Connection) {
        let mut buf = vec![0u8; 64 * 1024];
        for (id, (off, fin)) in self.streams.iter_mut() {
            // Each read returns data, the end, or stops the loop.
            while !*fin {
                match conn.read(*id, &mut buf) {
                    Ok((n, f)) => {
                        for (i, b) in buf[..n].iter().enumerate() {
                            if *b != pattern_byte(id.into_inner(), *off + i as u64) {
                                self.mismatches += 1;
                            }
                        }
                        *off += n as u64;
                        self.bytes += n as u64;
                        *fin = f;
                        // Close our half of a peer's bidirectional stream so the stream is
                        // freed and the peer gets its MAX_STREAMS credit back.
                        if f && id.dir() == Dir::Bi {
                            let _ = conn.finish(*id);
                        }
                        if n == 0 && !f {
                            break;
                        }
                    }
                    Err(ReadError::Blocked) => break,
                    Err(ReadError::Reset(_)) | Err(ReadError::Closed) => break,
                }
            }
        }
    }

    /// `count` streams fully read, each `per_stream` bytes, no mismatch. Empty finished
    /// streams are not counted: they are the peer's closed halves of our own bidirectional
    /// streams (the harness never sends empty streams), whose FIN may arrive before or after
    /// the last acknowledgement depending on timing.
    pub fn complete(&self, count: usize, per_stream: u64) -> bool {
        self.streams.values().filter(|(n, f)| *f && *n > 0 && *n == per_stream).count() == count
            && self.mismatches == 0
    }
}

/// Splits connection events: stream events go to `f`, the rest are returned.
pub fn dispatch(events: &mut Vec<Event>, mut f: impl FnMut(&StreamEvent)) -> Vec<Event> {
    let mut rest = Vec::new();
    for e in events.drain(..) {
        match e {
            Event::Stream(s) => f(&s),
            other => rest.push(other),
        }
    }
    rest
}
