//! The receive path: RX ring → parse and verify → lend the frame to the engine with the
//! payload in place (or, with payload copy on, copy the payload into a pool buffer and put the
//! frame straight back on the fill ring); then whatever reached the guard socket through the
//! kernel. Lent frames go back to the fill ring when the engine hands the batch back (the
//! next receive call).

use std::io;
use std::net::IpAddr;
use std::time::Instant;

use super::XdpQueue;
use crate::buffer::{PoolBuf, RxDatagram};
use crate::wire::{parse_frame, UdpChecksum, WireError};
use crate::{Ecn, RxBatch, RxMeta};

impl XdpQueue {
    pub(super) fn receive(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        self.recycle_rx(batch);
        self.stats.rx_calls += 1;
        let mut want = batch.capacity().min(self.config.rx_batch);
        if !self.config.copy_payloads {
            // Lent frames are away until the next call: keep the rest for the fill ring.
            want = want.min(self.rx_lend_max);
        }
        #[allow(clippy::disallowed_methods)]
        // the datapath does I/O; neighbour entries age in real time
        let now = Instant::now();
        let n = self.xsk.rx.available().min(want as u32);
        let frame_mask = !(u64::from(self.umem.frame_size()) - 1);
        for k in 0..n {
            let d = self.xsk.rx.peek(k);
            self.xstats.xsk_rx_frames += 1;
            if !self.frame(d.addr, d.len, batch, now) {
                // Aligned mode: the descriptor points into its frame (after headroom); the
                // frame goes back to the fill ring from its start.
                self.fill_pending.push(d.addr & frame_mask);
            }
        }
        if n > 0 {
            self.xsk.rx.release(n);
        }
        self.refill();
        if batch.len() < want {
            self.drain_guard(batch, want);
        }
        Ok(batch.len())
    }

    /// Takes back what the engine held of the previous receive: lent frames to the fill ring
    /// (a frame of another queue's UMEM goes back there when dropped), pool buffers to the
    /// pool; and reclaims frames whose leases were dropped elsewhere.
    fn recycle_rx(&mut self, batch: &mut RxBatch) {
        for mut buf in batch.drain_bufs() {
            match buf.take_frame() {
                Some(lease) => {
                    if let Ok((frame, _)) = self.umem.reclaim(lease) {
                        self.give_back(frame);
                    }
                }
                None => self.rx_pool.put(buf),
            }
        }
        self.reclaim_orphans();
    }

    /// A frame the queue owns again goes where it belongs: a receive frame to the fill ring,
    /// a transmit frame to the free list.
    pub(super) fn give_back(&mut self, frame: u64) {
        if frame < self.rx_end {
            self.fill_pending.push(frame);
        } else {
            self.tx_free.put(frame);
        }
    }

    /// Takes back the frames of leases dropped instead of handed back.
    pub(super) fn reclaim_orphans(&mut self) {
        let mut orphans = std::mem::take(&mut self.orphans);
        self.umem.take_orphans(&mut orphans);
        for f in orphans.drain(..) {
            self.give_back(f);
        }
        self.orphans = orphans;
    }

    /// Parses one frame of the RX ring and, when it is a valid datagram for us, puts its
    /// payload into `batch`: lent in place (returns true: the frame is the engine's until the
    /// next receive) or copied into a pool buffer (returns false, as for a dropped frame).
    fn frame(&mut self, addr: u64, len: u32, batch: &mut RxBatch, now: Instant) -> bool {
        let Some(bytes) = self.umem.bytes(addr, len) else {
            self.xstats.rx_invalid += 1;
            self.stats.rx_dropped += 1;
            return false;
        };
        // Partial UDP checksums (veth peers) are accepted and counted: see "Partial
        // checksums" in the module docs.
        let p = match parse_frame(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.xstats.rx_invalid += 1;
                self.stats.rx_dropped += 1;
                if matches!(e, WireError::BadUdpChecksum | WireError::BadIpChecksum) {
                    self.xstats.rx_bad_checksum += 1;
                    self.stats.rx_bad_checksum += 1;
                } else {
                    self.xstats.rx_malformed += 1;
                    self.stats.rx_malformed += 1;
                }
                return false;
            }
        };
        let bind_ip = self.config.bind.ip();
        if p.dst.port() != self.local.port() || (!bind_ip.is_unspecified() && p.dst.ip() != bind_ip)
        {
            self.xstats.rx_not_ours += 1;
            self.stats.rx_dropped += 1;
            return false;
        }
        if p.udp_checksum == UdpChecksum::Partial {
            self.xstats.rx_csum_partial += 1;
            self.stats.rx_csum_partial += 1;
        }
        self.neigh.learn(p.src.ip(), p.src_mac, now);
        let payload = &bytes[p.payload.clone()];
        let n = payload.len();
        let meta =
            RxMeta { src: p.src, dst_ip: Some(p.dst.ip()), ecn: p.ecn, segment_size: n.max(1) };
        if !self.config.copy_payloads {
            // The payload stays where the kernel put it; the engine opens it there.
            let Some(lease) = self.umem.lend(addr + p.payload.start as u64, n) else {
                self.stats.rx_dropped += 1;
                return false;
            };
            batch.items.push(RxDatagram { buf: PoolBuf::from_frame(lease), len: n, meta });
            self.xstats.rx_lent += 1;
            self.stats.rx_datagrams += 1;
            self.stats.rx_bytes += n as u64;
            return true;
        }
        let Some(mut d) = self.rx_pool.take_rx(meta) else {
            // Every receive buffer is held by the engine: drop, as a full socket would.
            self.stats.rx_dropped += 1;
            return false;
        };
        d.buf[..n].copy_from_slice(payload);
        d.len = n;
        self.xstats.rx_payload_copies += 1;
        self.stats.rx_datagrams += 1;
        self.stats.rx_bytes += n as u64;
        batch.items.push(d);
        false
    }

    /// Posts the frames of consumed RX descriptors back to the fill ring, and wakes the driver
    /// when it asks for it.
    fn refill(&mut self) {
        if !self.fill_pending.is_empty() {
            let free = self.xsk.fill.free(self.fill_pending.len() as u32) as usize;
            let n = free.min(self.fill_pending.len());
            for a in self.fill_pending.drain(..n) {
                self.xsk.fill.push(a);
            }
            if n > 0 {
                self.xsk.fill.submit();
            }
        }
        if self.xsk.fill.needs_wakeup() {
            self.xstats.rx_kicks += 1;
            // Best effort: a failed wake-up is retried on the next receive.
            let _ = self.xsk.kick_rx();
        }
    }

    /// Receives what the kernel delivered to the guard socket (datagrams the XDP program did
    /// not steer), into the same batch.
    fn drain_guard(&mut self, batch: &mut RxBatch, want: usize) {
        while batch.len() < want {
            let local_ip = self.local.ip();
            let meta = RxMeta {
                src: self.local,
                dst_ip: (!local_ip.is_unspecified()).then_some(local_ip),
                ecn: Ecn::NotEct,
                segment_size: 1,
            };
            // Guard datagrams may be up to 64 KiB (a reassembled fragmented datagram), larger
            // than the frame-sized receive buffers: they come from a small pool of their own
            // (handed back to the receive pool later, they are freed and their place returns).
            let Some(mut d) = self.guard_pool.take_rx(meta) else { return };
            match self.steering.guard.recv_from(&mut d.buf) {
                Ok((len, src)) => {
                    let src = match src {
                        std::net::SocketAddr::V6(s) => match s.ip().to_ipv4_mapped() {
                            Some(v4) => std::net::SocketAddr::new(IpAddr::V4(v4), s.port()),
                            None => src,
                        },
                        v4 => v4,
                    };
                    d.len = len;
                    d.meta.src = src;
                    d.meta.segment_size = len.max(1);
                    self.xstats.kernel_rx += 1;
                    self.stats.rx_datagrams += 1;
                    self.stats.rx_bytes += len as u64;
                    batch.items.push(d);
                }
                Err(_) => {
                    self.guard_pool.put(d.buf);
                    return;
                }
            }
        }
    }
}
