//! The UDP socket datapath: one non-blocking socket per worker, batched with `sendmmsg` /
//! `recvmmsg`, with GSO (`UDP_SEGMENT`), GRO (`UDP_GRO`), ECN, `IP_PKTINFO` and `SO_REUSEPORT`.
//!
//! Files: [`UdpConfig`] in `config.rs`; socket options and probing in `socket.rs`; control
//! messages in `cmsg.rs`; socket addresses in `addr.rs`; the system calls in `io.rs`; the
//! transmit policy (splitting, partial sends, errors, GSO fallback) in `tx.rs`.
//!
//! # Transmit
//!
//! Each [`TxBuffer`](crate::TxBuffer) becomes one message of a `sendmmsg`; with
//! [`TxMeta::segment_size`](crate::TxMeta::segment_size) set and GSO on, one message carries the
//! whole train with a `UDP_SEGMENT` control message. Trains longer than
//! [`MAX_GSO_SEGMENTS`] segments or [`MAX_UDP_PAYLOAD`] bytes (the kernel's limits) are split
//! into several messages of the same call; with GSO off, a train becomes one message per
//! segment. `EAGAIN` leaves the unsent buffers in the batch, in order (a train sent in part keeps
//! its unsent segments). A per-datagram error (`EMSGSIZE`, `EHOSTUNREACH`, `EINVAL`, ...) drops
//! that buffer and counts its datagrams in [`QueueStats::tx_errors`]. When a GSO send fails with
//! `EIO`/`EINVAL`, the train is re-sent one datagram at a time: if that works the device cannot
//! segment, so GSO is turned off for good and the reason listed in
//! [`Capabilities::missing`]; if not, the train is dropped as a bad datagram.
//!
//! The socket does not set `IP_RECVERR`, so ICMP errors (port unreachable, ...) are not reported
//! on this unconnected socket; `ECONNREFUSED` and friends are still handled if they show up.
//!
//! # Receive
//!
//! `recvmmsg` fills pool buffers of [`GRO_BUFFER_SIZE`] bytes when GRO is on (any coalesced
//! train fits) or [`UdpConfig::with_max_datagram_size`] bytes when it is off. A truncated
//! datagram (`MSG_TRUNC`, or `MSG_CTRUNC` which could hide the GRO segment size) is dropped and
//! counted in [`QueueStats::rx_dropped`]. IPv4 peers of a dual-stack socket are reported as
//! IPv4 addresses, not `::ffff:a.b.c.d`.

pub(crate) mod addr;
pub(crate) mod cmsg;
mod config;
pub(crate) mod io;
pub(crate) mod socket;
pub(crate) mod tx;

#[cfg(test)]
pub(crate) mod tests;

pub use config::{
    UdpConfig, DEFAULT_BATCH, DEFAULT_MAX_DATAGRAM, DEFAULT_RX_POOL, DEFAULT_SOCKET_BUFFER,
    DEFAULT_TX_POOL, GRO_BUFFER_SIZE, MAX_BATCH, MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD,
};

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::buffer::BufferPool;
use crate::{Capabilities, Ecn, Queue, QueueStats, RxBatch, RxDatagram, RxMeta, TxBatch, TxBuffer};

/// How many times one `recv` retries after `EINTR` or a pending socket error before returning.
const MAX_RX_RETRIES: usize = 4;

/// A [`Queue`] over one UDP socket.
///
/// Open one per worker with [`UdpQueue::open`], or a group sharing a port with
/// [`UdpQueue::open_group`].
pub struct UdpQueue {
    pub(crate) fd: OwnedFd,
    local: SocketAddr,
    config: UdpConfig,
    pub(crate) caps: Capabilities,
    pub(crate) stats: QueueStats,
    pub(crate) tx_pool: BufferPool,
    rx_pool: BufferPool,
    pub(crate) tx: tx::TxState,
    pub(crate) tx_io: io::TxIo,
    rx_io: io::RxIo,
}

impl std::fmt::Debug for UdpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpQueue")
            .field("fd", &self.fd)
            .field("local", &self.local)
            .field("caps", &self.caps)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl UdpQueue {
    /// Opens, binds and probes a socket as `config` asks. Features the kernel refuses are
    /// listed in [`Capabilities::missing`]; errors are only for a socket that cannot be made
    /// (bad configuration, address in use, `SO_REUSEPORT` refused, ...).
    pub fn open(config: &UdpConfig) -> std::io::Result<Self> {
        let s = socket::open(config)?;
        let tx_size = socket::tx_buffer_size(config, &s.caps);
        let rx_size = socket::rx_buffer_size(config, &s.caps);
        Ok(Self {
            tx: tx::TxState::new(s.v6, s.caps.gso, s.caps.max_gso_segments, config.tx_batch),
            tx_io: io::TxIo::new(config.tx_batch, s.v6),
            rx_io: io::RxIo::new(config.rx_batch),
            tx_pool: BufferPool::new(tx_size, config.tx_pool),
            rx_pool: BufferPool::new(rx_size, config.rx_pool),
            fd: s.fd,
            local: s.local,
            config: config.clone(),
            caps: s.caps,
            stats: QueueStats::default(),
        })
    }

    /// Opens `n` queues bound to the same address with `SO_REUSEPORT` (one per worker; the
    /// kernel spreads flows across them by 4-tuple hash). With port 0 the first picks the port
    /// and the others join it.
    pub fn open_group(config: &UdpConfig, n: usize) -> std::io::Result<Vec<Self>> {
        let mut config = config.clone().with_reuse_port(true);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let q = Self::open(&config)?;
            config = config.with_bind(q.local_addr());
            out.push(q);
        }
        Ok(out)
    }

    /// Opens [`open_group`](Self::open_group)'s `n` queues and steers datagrams among them by
    /// octet `octet` of the QUIC Destination Connection ID, modulo `n` (queue `i` gets value
    /// `i`), instead of by 4-tuple hash: a server whose connection IDs carry the owning
    /// worker's index in that octet receives each connection's packets on its owner's queue,
    /// and the new connections of one client address (random IDs) spread over all queues.
    /// Fails if the kernel refuses the program (SO_ATTACH_REUSEPORT_CBPF, Linux 4.5+).
    pub fn open_steered_group(
        config: &UdpConfig,
        n: usize,
        octet: u8,
    ) -> std::io::Result<Vec<Self>> {
        let group = Self::open_group(config, n)?;
        let n32 = u32::try_from(n).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "too many queues")
        })?;
        if let Some(first) = group.first() {
            socket::attach_cid_steering(first.fd.as_fd(), octet, n32)?;
        }
        Ok(group)
    }

    /// The configuration the queue was opened with.
    pub fn config(&self) -> &UdpConfig {
        &self.config
    }
}

impl AsFd for UdpQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for UdpQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Queue for UdpQueue {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn rebind(&mut self, local: SocketAddr) -> std::io::Result<SocketAddr> {
        if local.is_ipv4() != self.local.is_ipv4() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "rebind to another address family",
            ));
        }
        // A lone socket: a reuse-port group's steering program stays on the old group.
        let config = self.config.clone().with_bind(local).with_reuse_port(false);
        let mut new = Self::open(&config)?;
        new.stats = self.stats;
        // Buffers of the old pools still in the caller's batches are dropped, not recycled,
        // when they come back (the pools check where a buffer came from).
        *self = new;
        Ok(self.local)
    }

    fn alloc_tx(&mut self) -> Option<TxBuffer> {
        self.tx_pool.take_tx()
    }

    fn max_tx_buffer(&self) -> usize {
        self.tx_pool.buf_size()
    }

    fn send(&mut self, batch: &mut TxBatch) -> std::io::Result<usize> {
        let fd = self.fd.as_fd();
        let ecn = self.caps.ecn;
        let tx_io = &mut self.tx_io;
        let ctx =
            tx::TxCtx { pool: &mut self.tx_pool, stats: &mut self.stats, caps: &mut self.caps };
        tx::transmit(&mut self.tx, batch, ctx, |plans, b| tx_io.send(fd, plans, b, ecn))
    }

    fn recv(&mut self, batch: &mut RxBatch) -> std::io::Result<usize> {
        batch.recycle_into(&mut self.rx_pool);
        let want = batch.capacity().min(self.config.rx_batch);
        while self.rx_io.armed.len() < want {
            match self.rx_pool.take() {
                Some(b) => self.rx_io.armed.push(b),
                None => break,
            }
        }
        if self.rx_io.armed.is_empty() {
            return Err(std::io::Error::other(
                "udp receive pool exhausted: every buffer is held by receive batches",
            ));
        }
        let mut retries = 0;
        let n = loop {
            self.stats.rx_calls += 1;
            match self.rx_io.recv(self.fd.as_fd(), want) {
                Ok(n) => break n,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(0),
                    // A signal, or an error queued on the socket by an earlier datagram
                    // (reported once, then cleared): not this queue's failure.
                    Some(
                        libc::EINTR
                        | libc::ECONNREFUSED
                        | libc::ECONNRESET
                        | libc::EHOSTUNREACH
                        | libc::ENETUNREACH
                        | libc::EHOSTDOWN
                        | libc::ENETDOWN,
                    ) if retries < MAX_RX_RETRIES => retries += 1,
                    Some(libc::EINTR | libc::ECONNREFUSED | libc::ECONNRESET) => return Ok(0),
                    _ => return Err(e),
                },
            }
        };
        for i in 0..n {
            let m = self.rx_io.message(i);
            let buf = std::mem::take(&mut self.rx_io.armed[i]);
            let src = match m.src {
                Some(src) if !m.truncated && m.len <= buf.len() => src,
                _ => {
                    self.stats.rx_dropped += 1;
                    self.rx_pool.put(buf);
                    continue;
                }
            };
            let segment_size = match m.control.gro_segment {
                Some(s) if s > 0 && s < m.len => s,
                _ => m.len,
            };
            let ecn = match m.control.tos {
                Some(tos) if self.caps.ecn => Ecn::from_tos(tos),
                _ => Ecn::NotEct,
            };
            let meta = RxMeta { src, dst_ip: m.control.dst_ip, ecn, segment_size };
            let d = RxDatagram { buf, len: m.len, meta };
            self.stats.rx_datagrams += d.segment_count() as u64;
            self.stats.rx_bytes += m.len as u64;
            batch.items.push(d);
        }
        self.rx_io.armed.drain(..n);
        Ok(batch.len())
    }

    fn wait(&mut self, timeout: Option<Duration>, writable: bool) -> std::io::Result<()> {
        socket::wait(self.fd.as_fd(), timeout, writable)
    }

    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        waker: &crate::Waker,
    ) -> std::io::Result<()> {
        crate::waker::poll_with_waker(self.fd.as_fd(), waker, timeout, writable)
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}
