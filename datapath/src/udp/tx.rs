//! Transmit policy, free of system calls: how buffers become messages, what a partial send
//! leaves behind, and which errors drop a datagram, turn GSO off, or stop the queue.
//!
//! The system call is passed in (`sys`), so the unit tests drive every path (`EAGAIN` after
//! some messages, `EINTR`, per-datagram errors, a GSO failure) with a scripted kernel.

use std::io;
use std::net::IpAddr;

use super::cmsg::unmap;
use super::config::MAX_UDP_PAYLOAD;
use super::socket::errno_name;
use crate::buffer::BufferPool;
use crate::{Capabilities, QueueStats, TxBatch, TxMeta};

/// How many `EINTR`s in a row one `send` absorbs before returning what it has done.
const MAX_INTERRUPTS: usize = 8;

/// One `mmsghdr` to be: a slice of one buffer, sent as one datagram or one GSO train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MsgPlan {
    /// Index of the buffer in the batch.
    pub(crate) buf: usize,
    /// Start of the slice in the buffer.
    pub(crate) offset: usize,
    /// Length of the slice.
    pub(crate) len: usize,
    /// Datagrams the slice becomes on the wire.
    pub(crate) segs: usize,
    /// `UDP_SEGMENT` to attach (only when `segs > 1`).
    pub(crate) segment: Option<u16>,
}

/// Transmit state of one queue.
#[derive(Debug)]
pub(crate) struct TxState {
    /// GSO is in use (probed at open; cleared if the device turns out unable).
    pub(crate) gso: bool,
    /// Most segments per GSO message.
    pub(crate) max_segs: usize,
    /// Most messages per system call.
    pub(crate) max_msgs: usize,
    /// The socket is IPv6 (dual-stack or not).
    pub(crate) v6_socket: bool,
    /// A GSO send of the front buffer failed with this errno, during the current `send`: that
    /// buffer is being re-sent as single datagrams to learn whether the device or the datagram
    /// is at fault. Forgotten when `send` returns (the batch may change before the next one).
    suspect: Option<i32>,
    plans: Vec<MsgPlan>,
}

/// What the queue lends to [`transmit`].
pub(crate) struct TxCtx<'a> {
    pub(crate) pool: &'a mut BufferPool,
    pub(crate) stats: &'a mut QueueStats,
    pub(crate) caps: &'a mut Capabilities,
}

#[derive(Debug, PartialEq, Eq)]
enum ErrClass {
    /// The socket is full: keep the rest for later.
    WouldBlock,
    /// A signal: try again.
    Interrupted,
    /// `EIO`/`EINVAL`: either this datagram is bad or the device cannot segment.
    MaybeGso,
    /// This datagram cannot be sent: drop it, count it, go on.
    Datagram,
    /// The socket itself is broken.
    Fatal,
}

fn classify(e: &io::Error) -> ErrClass {
    match e.raw_os_error() {
        Some(libc::EAGAIN) => ErrClass::WouldBlock,
        Some(libc::EINTR) => ErrClass::Interrupted,
        Some(libc::EIO | libc::EINVAL) => ErrClass::MaybeGso,
        Some(libc::EBADF | libc::ENOTSOCK | libc::EFAULT) | None => ErrClass::Fatal,
        // EMSGSIZE, ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EACCES, EPERM (firewall),
        // EADDRNOTAVAIL, ENOBUFS, ENOMEM, ...: about this datagram or transient.
        Some(_) => ErrClass::Datagram,
    }
}

/// True when `meta` can be sent from this socket: an IPv6 destination needs an IPv6 socket,
/// and a chosen source must be of the destination's family.
pub(crate) fn sendable(meta: &TxMeta, v6_socket: bool) -> bool {
    let dst_v4 = unmap(meta.dst.ip()).is_ipv4();
    if !dst_v4 && !v6_socket {
        return false;
    }
    match meta.src_ip.map(unmap) {
        None => true,
        Some(IpAddr::V4(_)) => dst_v4,
        Some(IpAddr::V6(_)) => !dst_v4,
    }
}

impl TxState {
    /// State for a socket of the given family, GSO settings and batch size.
    pub(crate) fn new(v6_socket: bool, gso: bool, max_segs: usize, max_msgs: usize) -> Self {
        Self {
            gso,
            max_segs: max_segs.max(1),
            max_msgs: max_msgs.max(1),
            v6_socket,
            suspect: None,
            plans: Vec::with_capacity(max_msgs.max(1)),
        }
    }

    /// Splits buffers from the front of `batch` into at most `max_msgs` messages.
    fn plan(&mut self, batch: &TxBatch) {
        self.plans.clear();
        let trial = self.suspect.is_some();
        for (i, b) in batch.items.iter().enumerate() {
            if self.plans.len() == self.max_msgs || (trial && i > 0) {
                break;
            }
            if i > 0 && !sendable(&b.meta, self.v6_socket) {
                break; // dropped when it reaches the front
            }
            let len = b.len;
            let (seg, per_msg) = match b.meta.segment_size {
                Some(s) if s > 0 && s < len && s <= usize::from(u16::MAX) => {
                    if self.gso && !trial {
                        (s, self.max_segs.min(MAX_UDP_PAYLOAD / s).max(1))
                    } else {
                        (s, 1)
                    }
                }
                _ => (len.max(1), 1),
            };
            let mut offset = 0;
            loop {
                let chunk = (seg * per_msg).min(len - offset);
                let segs = chunk.div_ceil(seg).max(1);
                let segment = (segs > 1).then_some(seg as u16);
                self.plans.push(MsgPlan { buf: i, offset, len: chunk, segs, segment });
                offset += chunk;
                if offset >= len || self.plans.len() == self.max_msgs {
                    break;
                }
            }
        }
    }

    /// Accounts for the first `n` planned messages having been sent: completed buffers go
    /// back to the pool, and a buffer sent only in part keeps its unsent tail, moved to the
    /// front (it starts on a segment boundary, so its segmentation is unchanged).
    fn complete(&self, n: usize, batch: &mut TxBatch, ctx: &mut TxCtx<'_>) -> usize {
        for p in &self.plans[..n] {
            ctx.stats.tx_datagrams += p.segs as u64;
            ctx.stats.tx_bytes += p.len as u64;
        }
        let last = self.plans[n - 1];
        let sent = last.offset + last.len;
        let whole = last.buf + usize::from(sent >= batch.items[last.buf].len);
        for _ in 0..whole {
            if let Some(b) = batch.items.pop_front() {
                ctx.pool.put(b.buf);
            }
        }
        if whole == last.buf {
            let b = &mut batch.items[0];
            b.buf.copy_within(sent..b.len, 0);
            b.len -= sent;
        }
        whole
    }

    fn drop_front(batch: &mut TxBatch, ctx: &mut TxCtx<'_>, why: &str) {
        if let Some(b) = batch.items.pop_front() {
            ctx.stats.tx_errors += b.segment_count() as u64;
            tracing::debug!(dst = %b.meta.dst, len = b.len, "udp transmit dropped: {why}");
            ctx.pool.put(b.buf);
        }
    }

    fn disable_gso(&mut self, caps: &mut Capabilities, errno: i32) {
        self.gso = false;
        caps.gso = false;
        caps.max_gso_segments = 1;
        let name = errno_name(&io::Error::from_raw_os_error(errno));
        let why = format!(
            "UDP_SEGMENT (GSO): a GSO send failed with {name} while the same datagrams went \
             out one by one; GSO is off and trains are sent one datagram at a time"
        );
        tracing::warn!("{why}");
        caps.missing.push(why);
    }
}

/// Sends buffers from the front of `batch` until it is empty or the socket is full, calling
/// `sys` (one `sendmmsg`) with the planned messages; returns how many buffers left the batch.
pub(crate) fn transmit<F>(
    st: &mut TxState,
    batch: &mut TxBatch,
    mut ctx: TxCtx<'_>,
    mut sys: F,
) -> io::Result<usize>
where
    F: FnMut(&[MsgPlan], &TxBatch) -> io::Result<usize>,
{
    let mut removed = 0;
    let mut interrupts = 0;
    st.suspect = None;
    // Each round sends at least one message, drops a buffer, starts a GSO trial (at most once
    // per buffer), absorbs an EINTR (bounded) or returns; the batch is finite.
    loop {
        while let Some(front) = batch.items.front() {
            if sendable(&front.meta, st.v6_socket) {
                break;
            }
            TxState::drop_front(batch, &mut ctx, "address family not available on this socket");
            removed += 1;
        }
        st.plan(batch);
        if st.plans.is_empty() {
            return Ok(removed);
        }
        ctx.stats.tx_calls += 1;
        match sys(&st.plans, batch) {
            Ok(n) => {
                let n = n.min(st.plans.len());
                if n == 0 {
                    return Ok(removed);
                }
                interrupts = 0;
                if let Some(errno) = st.suspect.take() {
                    st.disable_gso(ctx.caps, errno);
                }
                removed += st.complete(n, batch, &mut ctx);
            }
            Err(e) => match classify(&e) {
                ErrClass::WouldBlock => return Ok(removed),
                ErrClass::Interrupted => {
                    interrupts += 1;
                    if interrupts >= MAX_INTERRUPTS {
                        return Ok(removed);
                    }
                }
                ErrClass::MaybeGso if st.plans[0].segment.is_some() && st.suspect.is_none() => {
                    // Resend this buffer's datagrams one by one: if they go through, the
                    // device cannot do GSO; if not, the datagram itself was at fault.
                    st.suspect = Some(e.raw_os_error().unwrap_or(libc::EIO));
                }
                ErrClass::MaybeGso | ErrClass::Datagram => {
                    st.suspect = None;
                    TxState::drop_front(batch, &mut ctx, &errno_name(&e));
                    removed += 1;
                }
                ErrClass::Fatal => return Err(e),
            },
        }
    }
}

#[cfg(test)]
#[path = "tests/tx.rs"]
mod tests;
