//! The transmit path: resolve the next hop, write the headers with full checksums in front of
//! the datagram the engine sealed into its lent UMEM frame (or, with payload copy on, copy each
//! segment into a frame behind room for the headers first), post to the TX ring, kick, and reap
//! completions.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use super::XdpQueue;
use crate::buffer::PoolBuf;
use crate::wire::{build_frame_before, FrameSpec, MAX_HEADERS_LEN};
use crate::{TxBatch, TxBuffer};

/// Most `sendto` kicks per send call: copy mode sends at most 32 frames per kick (512 where the
/// kernel took the larger budget), so this bounds one call to a few thousand frames; what is
/// left goes with the next call.
const MAX_KICKS: usize = 128;

/// Why a buffer could not be turned into frames.
enum Unsendable {
    /// The next hop's MAC is being resolved.
    Unresolved,
    /// No route through our interface, no source address, or too big.
    Unroutable,
}

impl XdpQueue {
    /// Lends a free transmit frame to the engine: a datagram of up to the largest payload,
    /// behind [`MAX_HEADERS_LEN`] bytes kept for the headers.
    pub(super) fn lend_tx_frame(&mut self) -> Option<TxBuffer> {
        if self.tx_free.len() == 0 {
            self.reap_completions();
            self.reclaim_orphans();
        }
        let frame = self.tx_free.take()?;
        let room = self.max_payload_v4.max(self.max_payload_v6);
        match self.umem.lend(frame + MAX_HEADERS_LEN as u64, room) {
            Some(lease) => {
                self.xstats.tx_lent += 1;
                Some(TxBuffer::new(PoolBuf::from_frame(lease)))
            }
            None => {
                self.tx_free.put(frame);
                None
            }
        }
    }

    /// Takes back a transmit buffer that was not posted: a lent frame of ours to the free
    /// list, a pool buffer to the pool (anything else is dropped, returning to its owner).
    fn recycle_tx(&mut self, mut buf: PoolBuf) {
        match buf.take_frame() {
            Some(lease) => {
                if let Ok((frame, _)) = self.umem.reclaim(lease) {
                    self.give_back(frame);
                }
            }
            None => self.tx_pool.put(buf),
        }
    }

    pub(super) fn transmit(&mut self, batch: &mut TxBatch) -> io::Result<usize> {
        self.reap_completions();
        #[allow(clippy::disallowed_methods)]
        // the datapath does I/O; neighbour entries age in real time
        let now = Instant::now();
        let mut done = 0;
        let mut posted = 0u32;
        while done < self.config.tx_batch {
            let Some(front) = batch.items.front() else { break };
            let segs = front.segment_count();
            // A lent frame already holds its datagram; anything else needs a frame per segment.
            let frames = if front.buf.is_frame() { 0 } else { segs };
            if segs > self.tx_frames.min(self.xsk.tx.size() as usize) {
                // More segments than could ever be in flight at once: it would block forever.
                if let Some(buf) = batch.items.pop_front() {
                    self.stats.tx_errors += segs as u64;
                    self.xstats.tx_unroutable += segs as u64;
                    self.recycle_tx(buf.buf);
                    done += 1;
                }
                continue;
            }
            if frames > self.tx_free.len() || self.xsk.tx.free(segs as u32) < segs as u32 {
                // Ring or frames exhausted: kick what is queued, reap, and retry once.
                if posted > 0 {
                    self.xsk.tx.submit();
                    self.kick();
                    posted = 0;
                }
                self.reap_completions();
                if frames > self.tx_free.len() || self.xsk.tx.free(segs as u32) < segs as u32 {
                    // Back-pressure: the rest stays in the batch for the next call.
                    self.xstats.tx_full += 1;
                    break;
                }
            }
            let Some(buf) = batch.items.pop_front() else { break };
            match self.spec_for(&buf, now) {
                Ok(spec) if buf.buf.is_frame() => posted += self.post_lent(buf, spec),
                Ok(spec) => {
                    posted += self.post(buf.data(), buf.meta.segment_size, spec);
                    self.tx_pool.put(buf.buf);
                }
                Err(why) => {
                    let n = segs as u64;
                    self.stats.tx_errors += n;
                    match why {
                        Unsendable::Unresolved => self.xstats.tx_unresolved += n,
                        Unsendable::Unroutable => self.xstats.tx_unroutable += n,
                    }
                    self.recycle_tx(buf.buf);
                }
            }
            done += 1;
        }
        if posted > 0 {
            self.xsk.tx.submit();
            self.kick();
        }
        Ok(done)
    }

    /// Writes the headers in front of the datagram sealed in a lent frame and queues the frame
    /// on the TX ring: no payload byte moves. A frame of another queue is copied (counted);
    /// a lent frame holding several segments (the queue reports no GSO) is refused. Returns the
    /// frames posted.
    fn post_lent(&mut self, mut buf: TxBuffer, spec: FrameSpec) -> u32 {
        let len = buf.len();
        let Some(lease) = buf.buf.take_frame() else { return 0 };
        let (frame, offset) = match self.umem.reclaim(lease) {
            Ok(f) => f,
            Err(foreign) => {
                // Another queue's frame: copy it (its drop returns it to its own UMEM).
                return self.post(&foreign.bytes()[..len], buf.meta.segment_size, spec);
            }
        };
        if buf.segment_count() > 1 {
            self.stats.tx_errors += buf.segment_count() as u64;
            self.xstats.tx_unroutable += buf.segment_count() as u64;
            self.give_back(frame);
            return 0;
        }
        let mut spec = spec;
        spec.ipv4_ident = self.ipv4_ident;
        self.ipv4_ident = self.ipv4_ident.wrapping_add(1);
        let built =
            self.umem.frame_mut(frame).and_then(|f| build_frame_before(f, offset, len, &spec).ok());
        let Some(range) = built else {
            self.give_back(frame);
            self.stats.tx_errors += 1;
            self.xstats.tx_unroutable += 1;
            return 0;
        };
        self.xsk.tx.push(libc::xdp_desc {
            addr: frame + range.start as u64,
            len: range.len() as u32,
            options: 0,
        });
        self.stats.tx_datagrams += 1;
        self.stats.tx_bytes += len as u64;
        self.xstats.tx_frames += 1;
        1
    }

    /// The headers of a datagram of `buf`, or why it cannot be sent.
    fn spec_for(&mut self, buf: &TxBuffer, now: Instant) -> Result<FrameSpec, Unsendable> {
        let dst = buf.meta.dst;
        let seg = match buf.meta.segment_size {
            Some(s) if s > 0 => s.min(buf.len()),
            _ => buf.len(),
        };
        let limit = if dst.is_ipv6() { self.max_payload_v6 } else { self.max_payload_v4 };
        if seg > limit {
            return Err(Unsendable::Unroutable);
        }
        let hop = match self.neigh.resolve(dst.ip(), now) {
            Ok(Some(h)) => h,
            Ok(None) => return Err(Unsendable::Unresolved),
            Err(_) => return Err(Unsendable::Unroutable),
        };
        let bind_ip = self.config.bind.ip();
        let src_ip = buf
            .meta
            .src_ip
            .or((!bind_ip.is_unspecified()).then_some(bind_ip))
            .or(hop.src)
            .ok_or(Unsendable::Unroutable)?;
        if src_ip.is_ipv6() != dst.is_ipv6() {
            return Err(Unsendable::Unroutable);
        }
        Ok(FrameSpec {
            src_mac: self.own_mac,
            dst_mac: hop.mac,
            vlan: None,
            src: SocketAddr::new(src_ip, self.local.port()),
            dst,
            dscp: 0,
            ecn: buf.meta.ecn,
            hop_limit: 64,
            ipv4_ident: 0,
            ipv6_flow_label: 0,
        })
    }

    /// Copies each segment of `data` into a frame and queues it on the TX ring (the caller made
    /// sure frames and ring slots are there). Returns the frames posted.
    fn post(&mut self, data: &[u8], segment_size: Option<usize>, mut spec: FrameSpec) -> u32 {
        let seg = match segment_size {
            Some(s) if s > 0 => s,
            _ => data.len().max(1),
        };
        let mut posted = 0;
        // An empty buffer is one empty datagram (`chunks` would yield nothing).
        let count = data.len().div_ceil(seg).max(1);
        for k in 0..count {
            let chunk = &data[(k * seg).min(data.len())..((k + 1) * seg).min(data.len())];
            let Some(addr) = self.tx_free.take() else { break };
            spec.ipv4_ident = self.ipv4_ident;
            self.ipv4_ident = self.ipv4_ident.wrapping_add(1);
            let built = self.umem.frame_mut(addr).and_then(|frame| {
                let end = MAX_HEADERS_LEN + chunk.len();
                frame.get_mut(MAX_HEADERS_LEN..end)?.copy_from_slice(chunk);
                build_frame_before(frame, MAX_HEADERS_LEN, chunk.len(), &spec).ok()
            });
            let Some(range) = built else {
                self.tx_free.put(addr);
                self.stats.tx_errors += 1;
                self.xstats.tx_unroutable += 1;
                continue;
            };
            self.xsk.tx.push(libc::xdp_desc {
                addr: addr + range.start as u64,
                len: range.len() as u32,
                options: 0,
            });
            posted += 1;
            self.xstats.tx_payload_copies += 1;
            self.stats.tx_datagrams += 1;
            self.stats.tx_bytes += chunk.len() as u64;
        }
        self.xstats.tx_frames += u64::from(posted);
        posted
    }

    /// Wakes the kernel to send what is on the TX ring, when it asked for it. In copy mode one
    /// kick sends a bounded number of frames (the budget), so kick until the ring is drained,
    /// the kernel stops making progress, or [`MAX_KICKS`].
    fn kick(&mut self) {
        for _ in 0..MAX_KICKS {
            if !self.xsk.tx.needs_wakeup() {
                return;
            }
            let before = self.xsk.tx.unconsumed();
            if before == 0 {
                return;
            }
            self.xstats.tx_kicks += 1;
            self.stats.tx_calls += 1;
            if self.xsk.kick_tx().is_err() {
                return;
            }
            self.reap_completions();
            if self.xsk.tx.unconsumed() >= before {
                return;
            }
        }
    }

    /// Takes completed transmit frames back into the free list.
    pub(super) fn reap_completions(&mut self) {
        let n = self.xsk.comp.available();
        if n == 0 {
            return;
        }
        let mask = !(u64::from(self.umem.frame_size()) - 1);
        for k in 0..n {
            let addr = self.xsk.comp.peek(k);
            self.tx_free.put(addr & mask);
        }
        self.xsk.comp.release(n);
        self.xstats.tx_completed += u64::from(n);
    }
}
