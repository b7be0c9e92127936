//! A port of the simulated network: the [`Queue`] implementation the engine drives.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::config::{SimQueueConfig, MAX_UDP_PAYLOAD};
use super::network::SimNetwork;
use crate::buffer::BufferPool;
use crate::{Capabilities, Ecn, Queue, QueueStats, RxBatch, RxMeta, TxBatch, TxBuffer};

/// One port of a [`SimNetwork`], bound to one address, implementing [`Queue`].
///
/// `send` puts each datagram (each GSO segment separately) into the network at the current
/// virtual time; `recv` returns the datagrams whose arrival time has come, with source address,
/// destination IP and ECN codepoint; `wait` returns at once (the harness moves time). Dropping
/// the port unbinds its address.
#[derive(Debug)]
pub struct SimQueue {
    net: SimNetwork,
    addr: SocketAddr,
    caps: Capabilities,
    tx_pool: BufferPool,
    rx_pool: BufferPool,
    stats: QueueStats,
}

impl SimQueue {
    /// A port at `addr` (already claimed in `net`).
    pub(crate) fn new(net: SimNetwork, addr: SocketAddr, config: &SimQueueConfig) -> Self {
        let caps = Capabilities {
            gso: config.gso,
            max_gso_segments: if config.gso { config.max_gso_segments } else { 1 },
            gro: false,
            ecn: true,
            pktinfo: true,
            zero_copy: false,
            ipv6: addr.is_ipv6(),
            max_udp_payload: config.max_udp_payload,
            flow_steered: false,
            missing: Vec::new(),
        };
        // A GSO train is bounded by the 64 KiB UDP length, like Linux's UDP_SEGMENT.
        let tx_size = if config.gso { MAX_UDP_PAYLOAD } else { config.max_udp_payload };
        Self {
            net,
            addr,
            caps,
            tx_pool: BufferPool::new(tx_size, config.tx_buffers),
            rx_pool: BufferPool::new(config.max_udp_payload, config.rx_buffers),
            stats: QueueStats::default(),
        }
    }

    /// The network this port belongs to.
    pub fn network(&self) -> &SimNetwork {
        &self.net
    }

    /// When the next datagram on its way to this port becomes receivable (possibly already),
    /// or `None` when nothing is.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.net.lock().next_arrival(self.addr)
    }

    /// Current virtual time of the network.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// The payload size of each datagram `buf` becomes (the whole buffer without GSO), or
    /// `None` when the kernel would refuse it: bad segment size, too many segments, too large,
    /// a destination or source address this port cannot use.
    fn segment_size(&self, buf: &TxBuffer) -> Option<usize> {
        let m = &buf.meta;
        let v4 = self.addr.is_ipv4();
        if m.dst.ip().is_unspecified() || m.dst.port() == 0 || m.dst.is_ipv4() != v4 {
            return None;
        }
        if m.src_ip.is_some_and(|ip| ip != self.addr.ip()) {
            return None;
        }
        let len = buf.len();
        let seg = match m.segment_size {
            None => len,
            Some(0) => return None,
            Some(s) if len.div_ceil(s) > self.caps.max_gso_segments => return None,
            Some(s) => s.min(len),
        };
        (seg <= self.caps.max_udp_payload).then_some(seg)
    }
}

impl Queue for SimQueue {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn alloc_tx(&mut self) -> Option<TxBuffer> {
        self.tx_pool.take_tx()
    }

    fn max_tx_buffer(&self) -> usize {
        self.tx_pool.buf_size()
    }

    fn send(&mut self, batch: &mut TxBatch) -> io::Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        self.stats.tx_calls += 1;
        let mut inner = self.net.lock();
        let mut sent = 0;
        while let Some(buf) = batch.items.pop_front() {
            sent += 1;
            match self.segment_size(&buf) {
                None => self.stats.tx_errors += 1,
                Some(seg) => {
                    let data = buf.data();
                    // An empty buffer is one empty datagram; otherwise one per segment.
                    let payloads = data.chunks(seg.max(1)).chain(data.is_empty().then_some(data));
                    for payload in payloads {
                        inner.submit(self.addr, buf.meta.dst, buf.meta.ecn, payload);
                        self.stats.tx_datagrams += 1;
                        self.stats.tx_bytes += payload.len() as u64;
                    }
                }
            }
            self.tx_pool.put(buf.buf);
        }
        Ok(sent)
    }

    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        batch.recycle_into(&mut self.rx_pool);
        self.stats.rx_calls += 1;
        let mut inner = self.net.lock();
        while batch.items.len() < batch.capacity {
            let placeholder =
                RxMeta { src: self.addr, dst_ip: None, ecn: Ecn::NotEct, segment_size: 0 };
            let Some(mut rx) = self.rx_pool.take_rx(placeholder) else {
                break;
            };
            let Some(d) = inner.pop_ready(self.addr) else {
                self.rx_pool.put(rx.buf);
                break;
            };
            if d.data.len() > rx.buf.len() {
                // Larger than this port's buffers: truncated, so dropped (MSG_TRUNC).
                self.rx_pool.put(rx.buf);
                self.stats.rx_dropped += 1;
                inner.record_arrival(d.link, false);
                inner.recycle(d.data);
                continue;
            }
            let len = d.data.len();
            rx.buf[..len].copy_from_slice(&d.data);
            rx.len = len;
            rx.meta =
                RxMeta { src: d.src, dst_ip: Some(self.addr.ip()), ecn: d.ecn, segment_size: len };
            batch.items.push(rx);
            inner.record_arrival(d.link, true);
            inner.recycle(d.data);
            self.stats.rx_datagrams += 1;
            self.stats.rx_bytes += len as u64;
        }
        Ok(batch.items.len())
    }

    fn wait(&mut self, _timeout: Option<Duration>, _writable: bool) -> io::Result<()> {
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

impl Drop for SimQueue {
    fn drop(&mut self) {
        self.net.lock().unbind(self.addr);
    }
}
