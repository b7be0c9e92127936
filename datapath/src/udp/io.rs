//! `sendmmsg` / `recvmmsg` over preallocated message headers.
//!
//! The headers hold raw pointers into the queue's own scratch arrays and into packet buffers.
//! They are rebuilt before every call and only dereferenced by the kernel during that call, while
//! Rust holds the borrows that keep every pointee alive and unmoved.

use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::addr;
use super::cmsg::{self, CmsgBuf, RxControl, TxControl, CMSG_BUF_LEN};
use super::tx::MsgPlan;
use crate::{Ecn, TxBatch};

/// Header arrays for `n` messages.
struct Headers {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    ctrl: Vec<CmsgBuf>,
}

impl Headers {
    fn new(n: usize) -> Self {
        // SAFETY: mmsghdr and iovec are plain C structs of integers and pointers, for which
        // all-zero (null pointers, zero lengths) is a valid value.
        let (hdr, iov) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        Self {
            hdrs: vec![hdr; n],
            iovs: vec![iov; n],
            names: vec![addr::zeroed_storage(); n],
            ctrl: vec![CmsgBuf::default(); n],
        }
    }

    /// Points header `i` at its iovec, name and control slots.
    fn link(&mut self, i: usize, name_len: libc::socklen_t, ctrl_len: usize) {
        let h = &mut self.hdrs[i];
        h.msg_len = 0;
        let m = &mut h.msg_hdr;
        m.msg_name = std::ptr::from_mut(&mut self.names[i]).cast();
        m.msg_namelen = name_len;
        m.msg_iov = &mut self.iovs[i];
        m.msg_iovlen = 1;
        m.msg_control =
            if ctrl_len == 0 { std::ptr::null_mut() } else { self.ctrl[i].0.as_mut_ptr().cast() };
        m.msg_controllen = ctrl_len as _;
        m.msg_flags = 0;
    }
}

/// Transmit headers.
pub(crate) struct TxIo {
    h: Headers,
    v6_socket: bool,
}

// SAFETY: the raw pointers inside are rewritten before each system call and only dereferenced
// by the kernel during it; between calls they are dead values, so moving the queue to another
// thread cannot create shared access.
unsafe impl Send for TxIo {}

impl TxIo {
    /// Headers for up to `n` messages per call on a socket of the given family.
    pub(crate) fn new(n: usize, v6_socket: bool) -> Self {
        Self { h: Headers::new(n.max(1)), v6_socket }
    }

    /// Sends the planned messages with one `sendmmsg`, returning how many the kernel took.
    /// ECN marks are set only when `ecn` is on.
    pub(crate) fn send(
        &mut self,
        fd: BorrowedFd<'_>,
        plans: &[MsgPlan],
        batch: &TxBatch,
        ecn: bool,
    ) -> io::Result<usize> {
        let n = self.fill(plans, batch, ecn)?;
        // SAFETY: headers 0..n point at their own iovec, name and control slots in `self.h`
        // (alive, not moved: `self` is borrowed mutably for the call) and at `p.len` bytes of
        // buffers inside `batch` (borrowed for the call; a Box<[u8]>'s bytes do not move when
        // the TxBuffer does). The kernel reads them only during the call.
        let rc = unsafe {
            libc::sendmmsg(fd.as_raw_fd(), self.h.hdrs.as_mut_ptr(), n as libc::c_uint, 0)
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }

    /// The `msghdr` of message `i` as [`TxIo::fill`] last wrote it. It points into this
    /// `TxIo`'s heap arrays (which do not move with it) and into the batch passed to `fill`:
    /// valid while both are alive, unmoved and unchanged.
    pub(crate) fn msghdr(&self, i: usize) -> *const libc::msghdr {
        &self.h.hdrs[i].msg_hdr
    }

    /// Writes the headers of the planned messages (at most the batch size given to
    /// [`TxIo::new`]) and returns how many were written.
    pub(crate) fn fill(
        &mut self,
        plans: &[MsgPlan],
        batch: &TxBatch,
        ecn: bool,
    ) -> io::Result<usize> {
        let n = plans.len().min(self.h.hdrs.len());
        for (i, p) in plans[..n].iter().enumerate() {
            let b = &batch.items[p.buf];
            let unsendable = || io::Error::new(io::ErrorKind::InvalidInput, "unsendable meta");
            let name_len = addr::encode(&b.meta.dst, self.v6_socket, &mut self.h.names[i])
                .ok_or_else(unsendable)?;
            let tc = TxControl {
                v4: cmsg::unmap(b.meta.dst.ip()).is_ipv4(),
                segment: p.segment,
                tos: (ecn && b.meta.ecn != Ecn::NotEct).then_some(b.meta.ecn.bits()),
                src: b.meta.src_ip,
            };
            let ctrl_len = cmsg::encode_tx(&mut self.h.ctrl[i].0, &tc).ok_or_else(unsendable)?;
            let data = &b.buf[p.offset..p.offset + p.len];
            // The kernel only reads through this pointer (sendmmsg); `*mut` is the C type.
            self.h.iovs[i] =
                libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() };
            self.h.link(i, name_len, ctrl_len);
        }
        Ok(n)
    }
}

/// One received message, as reported by the kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RxMsg {
    pub(crate) len: usize,
    /// `MSG_TRUNC` or `MSG_CTRUNC`: data or control messages were cut.
    pub(crate) truncated: bool,
    pub(crate) src: Option<SocketAddr>,
    pub(crate) control: RxControl,
}

/// Receive headers and the buffers armed for the next call.
pub(crate) struct RxIo {
    h: Headers,
    /// Buffers the next `recvmmsg` fills, in order.
    pub(crate) armed: Vec<crate::buffer::PoolBuf>,
}

// SAFETY: as for TxIo; the armed buffers are owned boxes.
unsafe impl Send for RxIo {}

impl RxIo {
    /// Headers for up to `n` messages per call.
    pub(crate) fn new(n: usize) -> Self {
        Self { h: Headers::new(n.max(1)), armed: Vec::with_capacity(n.max(1)) }
    }

    /// Receives into up to `want` armed buffers with one `recvmmsg` (never waits: the socket
    /// is non-blocking), returning how many were filled, `armed[0..n]`.
    pub(crate) fn recv(&mut self, fd: BorrowedFd<'_>, want: usize) -> io::Result<usize> {
        let n = want.min(self.armed.len()).min(self.h.hdrs.len());
        for i in 0..n {
            let b = &mut self.armed[i];
            self.h.iovs[i] = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() };
            self.h.link(i, size_of::<libc::sockaddr_storage>() as libc::socklen_t, CMSG_BUF_LEN);
        }
        // SAFETY: headers 0..n point at their own slots in `self.h` and at the whole of
        // `armed[i]`, all owned by `self`, which is borrowed mutably for the call so nothing
        // else can touch or free them; the kernel writes within the given lengths only during
        // the call. A null timeout is allowed.
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.h.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                0,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok((rc as usize).min(n))
        }
    }

    /// What the kernel wrote for message `i` of the last [`RxIo::recv`].
    pub(crate) fn message(&self, i: usize) -> RxMsg {
        let h = &self.h.hdrs[i];
        let flags = h.msg_hdr.msg_flags;
        // size_t on glibc, socklen_t on musl.
        #[allow(clippy::unnecessary_cast)]
        let ctrl_len = h.msg_hdr.msg_controllen as usize;
        RxMsg {
            len: h.msg_len as usize,
            truncated: flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
            src: addr::decode(&self.h.names[i], h.msg_hdr.msg_namelen),
            control: cmsg::decode_rx(&self.h.ctrl[i].0, ctrl_len),
        }
    }
}
