//! The io_uring datapath: the UDP backend's socket, driven through one io_uring per worker —
//! a multishot `recvmsg` on a provided-buffer ring for receive, linked `sendmsg` (optionally
//! `sendmsg_zc`) SQEs with `UDP_SEGMENT` for transmit.
//!
//! Files: [`UringConfig`] in `config.rs`; ring setup, probe and completion routing in
//! `ring.rs`; the provided-buffer ring in `bufring.rs`; parsing received buffers in `rx.rs`;
//! the send submission in `tx.rs`; zero-copy transmit bookkeeping in `zc.rs`. The socket
//! itself (options, GSO/GRO/ECN/pktinfo probing, `SO_REUSEPORT`), the control-message codec,
//! the message headers and the transmit policy are the UDP backend's, reused as they are: a
//! [`UringQueue`] holds a [`UdpQueue`](crate::udp::UdpQueue) and only replaces its system
//! calls.
//!
//! # Receive: zero-copy hand-over of the kernel's buffers
//!
//! At open, pool buffers of [`RECV_HEADER_ROOM`] + [`UringConfig::rx_buffer_size`] bytes are
//! posted to a buffer ring registered with `IORING_REGISTER_PBUF_RING`, and one multishot
//! `IORING_OP_RECVMSG` is armed. The kernel writes each datagram (or GRO train) into the next
//! buffer — header, source address, control messages (`UDP_GRO`, TOS / traffic class,
//! pktinfo), payload at offset [`RECV_HEADER_ROOM`] — and posts a CQE naming it. `recv` reaps
//! those CQEs and lends the very same buffers to the engine in the [`RxBatch`], the header
//! hidden from the view: no copy after the kernel's own. When `recv` is called again with that
//! batch, the buffers go back to the pool and from there back to the ring. When the ring runs
//! dry (the engine holds everything, or a burst outran `recv`) the multishot ends with
//! `ENOBUFS`; datagrams wait in the socket buffer (`SO_RCVBUF`, 4 MiB by default) and the next
//! `recv` refills the ring and re-arms it. Truncated datagrams (`MSG_TRUNC`/`MSG_CTRUNC`) are
//! dropped and counted in [`QueueStats::rx_dropped`], as in the UDP backend.
//!
//! System calls: the ring is set up with cooperative task-run, so completions are posted when
//! the thread enters the kernel; `recv` makes one `io_uring_enter` only when the kernel flags
//! pending work (`IORING_SQ_TASKRUN`) or the receive must be re-armed, and none otherwise.
//!
//! # Transmit
//!
//! Exactly the UDP backend's policy (see [`crate::udp`]): trains split at 64 segments / 64 KiB,
//! order kept, `EAGAIN` leaves the rest in the batch, per-datagram errors drop and count, GSO
//! `EIO`/`EINVAL` falls back to single datagrams. Each round's messages become one chain of
//! linked SQEs sent with `MSG_DONTWAIT` and one `io_uring_enter` that also waits for their
//! completions (`tx.rs` explains why the chain gives `sendmmsg`'s prefix semantics). With
//! [`UringConfig::with_send_zc`] the SQEs are `IORING_OP_SENDMSG_ZC`: `send` does not wait for
//! the zero-copy notifications, but a buffer whose notification is outstanding is never lent
//! again by `alloc_tx` (it is parked until the notification arrives, see `zc.rs`), and a
//! train sent in part waits for its notifications before its unsent tail is moved.
//!
//! [`Queue::wait`] and [`Queue::wait_with`] sleep in `io_uring_enter` until a completion
//! arrives: a receive, a `POLL_ADD` on the socket for writability when asked, and for
//! `wait_with` a `POLL_ADD` on the [`Waker`](crate::Waker)'s eventfd, so a wake from another
//! thread ends the sleep at once.
//!
//! # Capabilities
//!
//! At open the ring is probed (`IORING_REGISTER_PROBE`): `SENDMSG`, `POLL_ADD` and
//! `ASYNC_CANCEL` are required, and an io_uring the kernel refuses (seccomp in containers,
//! `kernel.io_uring_disabled`, an old kernel) is an error from [`UringQueue::open`] that says
//! so. Missing `SENDMSG_ZC` (when asked for), buffer rings or multishot `recvmsg` are listed in
//! [`Capabilities::missing`]; without the latter two the queue receives with the UDP backend's
//! `recvmmsg` instead.

mod bufring;
mod config;
mod ring;
mod rx;
mod tx;
mod zc;

#[cfg(test)]
mod tests;

pub use config::{
    UringConfig, DEFAULT_BUF_RING_ENTRIES, DEFAULT_RING_ENTRIES, MAX_BUF_RING_ENTRIES,
    MAX_RING_ENTRIES, MIN_RING_ENTRIES, RECV_CONTROL_LEN, RECV_HEADER_ROOM, RECV_NAME_LEN,
};
pub use ring::UringStats;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use io_uring::{opcode, types};

use crate::buffer::BufferPool;
use crate::udp::socket::errno_name;
use crate::udp::{tx::TxCtx, UdpQueue};
use crate::{Capabilities, Ecn, Queue, QueueStats, RxBatch, RxDatagram, RxMeta, TxBatch, TxBuffer};
use ring::{Core, TAG_CANCEL, TAG_RECV};

/// Buffer group id of the provided-buffer ring (one ring per queue).
const BGID: u16 = 0;

/// Dropping a queue waits up to `TEARDOWN_WAITS` × `TEARDOWN_STEP` for the kernel to confirm
/// the receive was cancelled.
const TEARDOWN_WAITS: usize = 50;
const TEARDOWN_STEP: Duration = Duration::from_millis(10);

/// A [`Queue`] over one UDP socket driven through io_uring.
///
/// Open one per worker with [`UringQueue::open`], or a group sharing a port with
/// [`UringQueue::open_group`].
pub struct UringQueue {
    core: Core,
    udp: UdpQueue,
    config: UringConfig,
    send_zc: bool,
}

impl std::fmt::Debug for UringQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringQueue")
            .field("udp", &self.udp)
            .field("send_zc", &self.send_zc)
            .field("buffer_ring", &self.core.bufs.is_some())
            .field("uring_stats", &self.core.stats)
            .finish_non_exhaustive()
    }
}

impl UringQueue {
    /// Sets up the ring, then opens, binds and probes the socket as the UDP backend does,
    /// registers the buffer ring and arms the multishot receive.
    ///
    /// Errors: io_uring unavailable (the message names the cause and suggests the udp
    /// backend), a bad configuration, or a socket that cannot be made. Features the kernel
    /// refuses are listed in [`Capabilities::missing`].
    pub fn open(config: &UringConfig) -> io::Result<Self> {
        config.validate()?;
        let entries = u32::from(config.buf_ring_entries);
        let tx_batch = config.udp.tx_batch as u32;
        let cq = (2 * config.ring_entries).max(entries + 2 * tx_batch + 64).next_power_of_two();
        let ring = ring::build(config.ring_entries, cq)?;
        let probed = ring::probe(&ring)?;
        let mut udp = UdpQueue::open(&config.udp)?;
        let mut missing = Vec::new();

        let payload = config.rx_buffer_size(udp.caps.gro);
        let pool_limit = config.buf_ring_entries as usize + 2 * config.udp.rx_batch;
        let mut rx_pool = BufferPool::new(RECV_HEADER_ROOM + payload, pool_limit);
        let bufs = if !probed.recvmsg {
            missing.push("IORING_OP_RECVMSG: not supported; receiving with recvmmsg".into());
            None
        } else {
            match bufring::BufRing::new(&ring, config.buf_ring_entries, BGID) {
                Ok(mut b) => {
                    b.refill(&mut rx_pool);
                    Some(b)
                }
                Err(e) => {
                    missing.push(format!(
                        "IORING_REGISTER_PBUF_RING (buffer ring): {}; receiving with recvmmsg",
                        errno_name(&e)
                    ));
                    None
                }
            }
        };
        let send_zc = config.send_zc && probed.send_zc;
        if config.send_zc && !probed.send_zc {
            missing.push("IORING_OP_SENDMSG_ZC: not supported (kernel 6.1+); copying".into());
        }
        let mut core = Core {
            ring,
            bufs,
            rx_pool,
            rx_msghdr: ring::rx_template(),
            ready: VecDeque::with_capacity(entries as usize),
            recv_armed: false,
            recv_error: None,
            poll_armed: false,
            wake_armed: None,
            woken: false,
            send_res: Vec::with_capacity(config.udp.tx_batch),
            sends_left: 0,
            zc: zc::ZcTracker::default(),
            poisoned: false,
            stats: UringStats::default(),
        };
        if core.bufs.is_some() {
            let fd = types::Fd(udp.fd.as_raw_fd());
            core.arm_recv(fd)?;
            core.enter(0, None)?;
            core.drain();
            if !core.recv_armed && core.recv_error == Some(libc::EINVAL) {
                // Multishot recvmsg needs 6.0; older kernels refuse the flag.
                missing.push("multishot IORING_OP_RECVMSG: EINVAL; receiving with recvmmsg".into());
                if let Some(mut b) = core.bufs.take() {
                    match b.unregister(&core.ring) {
                        Ok(()) => drop(b),
                        Err(_) => b.leak(),
                    }
                }
            }
        }
        for m in &missing {
            tracing::info!(local = %udp.local_addr(), "uring queue: {m}");
        }
        udp.caps.missing.extend(missing);
        Ok(Self { core, udp, config: config.clone(), send_zc })
    }

    /// Opens `n` queues bound to the same address with `SO_REUSEPORT` (one per worker). With
    /// port 0 the first picks the port and the others join it.
    pub fn open_group(config: &UringConfig, n: usize) -> io::Result<Vec<Self>> {
        let mut config = config.clone().with_reuse_port(true);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let q = Self::open(&config)?;
            config = config.with_bind(q.local_addr());
            out.push(q);
        }
        Ok(out)
    }

    /// [`open_group`](Self::open_group), steered by octet `octet` of the QUIC Destination
    /// Connection ID modulo `n` (queue `i` gets value `i`) instead of by 4-tuple hash, as
    /// [`UdpQueue::open_steered_group`] does: each connection's packets reach its owner's queue
    /// and one client address's new connections spread over all queues. Fails if the kernel
    /// refuses the program (SO_ATTACH_REUSEPORT_CBPF, Linux 4.5+).
    pub fn open_steered_group(config: &UringConfig, n: usize, octet: u8) -> io::Result<Vec<Self>> {
        let group = Self::open_group(config, n)?;
        let n32 = u32::try_from(n)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many queues"))?;
        if let Some(first) = group.first() {
            crate::udp::socket::attach_cid_steering(first.udp.fd.as_fd(), octet, n32)?;
        }
        Ok(group)
    }

    /// The configuration the queue was opened with.
    pub fn config(&self) -> &UringConfig {
        &self.config
    }

    /// Counters of the ring itself (re-arms, `ENOBUFS`, zero-copy sends and copies).
    pub fn uring_stats(&self) -> UringStats {
        self.core.stats
    }

    /// True when transmits use `IORING_OP_SENDMSG_ZC`.
    pub fn send_zc(&self) -> bool {
        self.send_zc
    }

    /// True when receives use the multishot `recvmsg` on the buffer ring (false: the kernel
    /// refused it and `recvmmsg` is used, see [`Capabilities::missing`]).
    pub fn multishot_recv(&self) -> bool {
        self.core.bufs.is_some()
    }

    fn fd(&self) -> types::Fd {
        types::Fd(self.udp.fd.as_raw_fd())
    }

    /// Waits in the ring for a receive, writability (with `writable`), a wake-up on `wake_fd`
    /// (a `POLLIN` poll on it) or `timeout`. Returns true when the wake-up descriptor fired
    /// (the caller then clears it).
    fn wait_ring(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        wake_fd: Option<RawFd>,
    ) -> io::Result<bool> {
        let fd = self.fd();
        let core = &mut self.core;
        core.drain();
        if std::mem::take(&mut core.woken) {
            return Ok(true);
        }
        if !core.ready.is_empty() {
            return Ok(false);
        }
        if !core.recv_armed {
            if core.bufs.as_ref().is_some_and(|b| b.posted() > 0) {
                core.arm_recv(fd)?;
            } else if !writable && wake_fd.is_none() {
                // Every buffer is lent out: only a `recv` (which hands them back) can help.
                return Ok(false);
            }
        }
        if writable {
            core.arm_poll_out(fd)?;
        }
        if let Some(w) = wake_fd {
            core.arm_wake(w)?;
        }
        core.stats.wait_enters += 1;
        core.enter(1, timeout)?;
        core.drain();
        Ok(std::mem::take(&mut core.woken))
    }

    /// Moves ready receives into `batch`, dropping truncated or unreadable ones.
    fn fill_batch(&mut self, batch: &mut RxBatch) {
        while batch.items.len() < batch.capacity() {
            let Some(r) = self.core.ready.pop_front() else { break };
            let parsed = rx::parse(&r.buf, r.len);
            let (p, src) = match parsed {
                Some(p) if !p.truncated => match p.src {
                    Some(src) => (p, src),
                    None => {
                        self.udp.stats.rx_dropped += 1;
                        self.core.rx_pool.put(r.buf);
                        continue;
                    }
                },
                _ => {
                    self.udp.stats.rx_dropped += 1;
                    self.core.rx_pool.put(r.buf);
                    continue;
                }
            };
            let len = p.payload_len;
            let segment_size = match p.control.gro_segment {
                Some(s) if s > 0 && s < len => s,
                _ => len,
            };
            let ecn = match p.control.tos {
                Some(tos) if self.udp.caps.ecn => Ecn::from_tos(tos),
                _ => Ecn::NotEct,
            };
            let mut buf = r.buf;
            buf.set_start(RECV_HEADER_ROOM);
            let meta = RxMeta { src, dst_ip: p.control.dst_ip, ecn, segment_size };
            let d = RxDatagram { buf, len, meta };
            self.udp.stats.rx_datagrams += d.segment_count() as u64;
            self.udp.stats.rx_bytes += len as u64;
            batch.items.push(d);
        }
    }
}

impl AsFd for UringQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.udp.as_fd()
    }
}

impl AsRawFd for UringQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.udp.as_raw_fd()
    }
}

impl Queue for UringQueue {
    fn capabilities(&self) -> &Capabilities {
        self.udp.capabilities()
    }

    fn local_addr(&self) -> SocketAddr {
        self.udp.local_addr()
    }

    fn alloc_tx(&mut self) -> Option<TxBuffer> {
        if self.core.zc.is_idle() {
            return self.udp.alloc_tx();
        }
        // Zero-copy: never lend a buffer the kernel may still read (see `zc.rs`).
        for attempt in 0..2 {
            self.core.drain();
            self.core.zc.unpark(&mut self.udp.tx_pool);
            // Bounded: each turn either returns or parks one of the pool's finite buffers.
            while let Some(b) = self.udp.tx_pool.take_tx() {
                if !self.core.zc.is_busy(b.data().as_ptr() as usize) {
                    return Some(b);
                }
                self.core.stats.zc_parked += 1;
                self.core.zc.park(b.buf);
            }
            // Every buffer is busy: let the kernel post what it has (completions wait for our
            // next enter), once.
            if attempt == 0 && self.core.kernel_has_work() {
                self.udp.stats.tx_calls += 1;
                if self.core.enter(0, None).is_err() {
                    return None;
                }
            }
        }
        None
    }

    fn max_tx_buffer(&self) -> usize {
        self.udp.max_tx_buffer()
    }

    fn send(&mut self, batch: &mut TxBatch) -> io::Result<usize> {
        let fd = self.fd();
        let (ecn, zc) = (self.udp.caps.ecn, self.send_zc);
        let before = self.udp.stats.tx_calls;
        let mut enters = 0u64;
        let UdpQueue { tx, tx_io, tx_pool, stats, caps, .. } = &mut self.udp;
        let core = &mut self.core;
        let ctx = TxCtx { pool: tx_pool, stats, caps };
        let r = crate::udp::tx::transmit(tx, batch, ctx, |plans, b| {
            let n = tx_io.fill(plans, b, ecn)?;
            let base = |p: &crate::udp::tx::MsgPlan| b.items[p.buf].data().as_ptr() as usize;
            if zc {
                core.zc.round.clear();
                core.zc.round.extend(plans[..n].iter().map(base));
            }
            // SAFETY: the headers just written point into `tx_io` and into `b`, which the
            // transmit policy keeps borrowed, alive and unchanged for this call; `send_round`
            // returns only after the kernel finished every send. Zero-copy buffers the kernel
            // still reads afterwards are owned by the pool or the batch (heap memory that stays
            // put) and are not written until their notifications: `alloc_tx` parks them, and
            // the one write the policy makes into a sent buffer is waited for just below.
            let k = unsafe { tx::send_round(core, fd, tx_io, n, zc, &mut enters)? };
            if zc && k > 0 {
                // A train sent in part: the policy moves its unsent tail over the sent head.
                let last = &plans[k - 1];
                if last.offset + last.len < b.items[last.buf].len() {
                    core.wait_zc_idle(base(last), &mut enters)?;
                }
            }
            Ok(k)
        });
        // Count real `io_uring_enter` calls, not rounds.
        self.udp.stats.tx_calls = before + enters;
        r
    }

    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        if self.core.bufs.is_none() {
            return self.udp.recv(batch);
        }
        batch.recycle_into(&mut self.core.rx_pool);
        let fd = self.fd();
        let core = &mut self.core;
        if let Some(b) = core.bufs.as_mut() {
            b.refill(&mut core.rx_pool);
        }
        core.drain();
        if core.ready.len() < batch.capacity() {
            let posted = core.bufs.as_ref().map_or(0, |b| b.posted());
            if posted == 0 && !core.recv_armed && core.ready.is_empty() {
                return Err(io::Error::other(
                    "uring receive pool exhausted: every buffer is held by receive batches",
                ));
            }
            if !core.recv_armed && posted > 0 {
                if let Some(e) = core.recv_error.take() {
                    if matches!(e, libc::EBADF | libc::EINVAL | libc::EFAULT | libc::ENOTSOCK) {
                        return Err(io::Error::from_raw_os_error(e));
                    }
                }
                core.arm_recv(fd)?;
            }
            if core.kernel_has_work() {
                self.udp.stats.rx_calls += 1;
                core.enter(0, None)?;
                core.drain();
            }
        }
        self.fill_batch(batch);
        Ok(batch.len())
    }

    fn wait(&mut self, timeout: Option<Duration>, writable: bool) -> io::Result<()> {
        if self.core.bufs.is_none() {
            return self.udp.wait(timeout, writable);
        }
        self.wait_ring(timeout, writable, None).map(drop)
    }

    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        waker: &crate::Waker,
    ) -> io::Result<()> {
        if self.core.bufs.is_none() {
            return self.udp.wait_with(timeout, writable, waker);
        }
        // The waker's eventfd is watched by a poll in the ring: a wake ends the enter at once.
        if self.wait_ring(timeout, writable, Some(waker.as_fd().as_raw_fd()))? {
            waker.reset();
        }
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.udp.stats()
    }
}

impl Drop for UringQueue {
    fn drop(&mut self) {
        let c = &mut self.core;
        // Zero-copy sends still being read: give the kernel a moment, else keep their memory.
        for _ in 0..TEARDOWN_WAITS {
            if !c.zc.has_busy() || c.enter(1, Some(TEARDOWN_STEP)).is_err() {
                break;
            }
            c.drain();
        }
        if c.zc.has_busy() {
            tracing::warn!("uring queue: zero-copy sends not confirmed done; leaking tx buffers");
            c.zc.leak_parked();
            std::mem::forget(std::mem::replace(&mut self.udp.tx_pool, BufferPool::new(1, 1)));
        }
        if c.bufs.is_none() {
            return;
        }
        // Cancel the multishot receive and wait (bounded) for its last CQE, so the kernel
        // picks no buffer any more; only then unregister the ring and free the buffers.
        let mut clean = !c.poisoned;
        if clean && c.recv_armed {
            let e = opcode::AsyncCancel::new(TAG_RECV).build().user_data(TAG_CANCEL);
            // SAFETY: a cancellation carries no pointers.
            if unsafe { c.push(&e) }.is_ok() {
                for _ in 0..TEARDOWN_WAITS {
                    if !c.recv_armed || c.enter(1, Some(TEARDOWN_STEP)).is_err() {
                        break;
                    }
                    c.drain();
                }
            }
            clean = !c.recv_armed;
        }
        if let Some(mut b) = c.bufs.take() {
            if clean && b.unregister(&c.ring).is_ok() {
                drop(b);
            } else {
                tracing::warn!("uring queue: receive not confirmed cancelled; leaking its buffers");
                b.leak();
            }
        }
    }
}
