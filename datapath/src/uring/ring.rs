//! The ring: setup, capability probe, entering the kernel, and routing completions.
//!
//! One ring per queue carries the multishot receive, the sends, an occasional `POLL_ADD` for
//! writability and cancellations. Each CQE's `user_data` says which (see the `TAG_*`
//! constants); [`Core::drain`] sorts them: filled receive buffers go to a ready queue (still
//! holding the buffer, no copy), send results and zero-copy notifications to the transmit
//! state.
//!
//! The ring is set up with `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
//! IORING_SETUP_SUBMIT_ALL` where the kernel allows (5.19+): the kernel never interrupts the
//! thread to post a completion; it raises `IORING_SQ_TASKRUN` and the completion appears at our
//! next `io_uring_enter`. So a `recv` that finds the flag clear and the completion queue empty
//! costs no system call at all.
//! (`DEFER_TASKRUN` would need `SINGLE_ISSUER`, which a queue that may move between threads
//! cannot promise, and a registered ring fd, `IORING_REGISTER_RING_FDS`, is per thread too.)

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::bufring::BufRing;
use super::config::{RECV_CONTROL_LEN, RECV_NAME_LEN};
use super::zc::ZcTracker;
use crate::buffer::{BufferPool, PoolBuf};
use crate::udp::socket::errno_name;

/// `user_data` of the multishot receive.
pub(crate) const TAG_RECV: u64 = 1 << 56;
/// `user_data` of send `i` of round `r` (zero-copy rounds number themselves):
/// `TAG_SEND | r << 16 | i`.
pub(crate) const TAG_SEND: u64 = 2 << 56;
/// `user_data` of the writability poll.
pub(crate) const TAG_POLL: u64 = 3 << 56;
/// `user_data` of a cancellation.
pub(crate) const TAG_CANCEL: u64 = 4 << 56;
/// `user_data` of the poll on a wake-up descriptor `fd`: `TAG_WAKE | fd`.
pub(crate) const TAG_WAKE: u64 = 5 << 56;
const TAG_MASK: u64 = 0xff << 56;

/// `IORING_SEND_ZC_REPORT_USAGE` (SQE `ioprio` of a zero-copy send): the notification says
/// whether the kernel had to copy after all.
pub(crate) const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`: bit of a notification's result.
const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// Counters specific to the io_uring backend (monotonic since open).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UringStats {
    /// Times the multishot receive was armed (the first arm included).
    pub recv_arms: u64,
    /// Times the multishot receive ended because every provided buffer was in use (`ENOBUFS`).
    pub recv_enobufs: u64,
    /// Times it ended for another reason (error result or the kernel stopping it).
    pub recv_other_ends: u64,
    /// `io_uring_enter` calls made while waiting ([`crate::Queue::wait`]).
    pub wait_enters: u64,
    /// Zero-copy sends submitted (`IORING_OP_SENDMSG_ZC`).
    pub zc_sends: u64,
    /// Zero-copy notifications that reported the kernel copied the data anyway (loopback
    /// always does).
    pub zc_copied: u64,
    /// Transmit buffers `alloc_tx` set aside because the kernel might still read them.
    pub zc_parked: u64,
    /// Times a round waited for a buffer's notifications before its unsent tail was moved.
    pub zc_waits: u64,
}

/// A filled receive buffer and how many bytes of it the kernel wrote (header included).
pub(crate) struct Ready {
    pub(crate) buf: PoolBuf,
    pub(crate) len: usize,
}

/// The ring and everything its completions touch.
pub(crate) struct Core {
    pub(crate) ring: IoUring,
    /// `None` when the kernel refused buffer rings or multishot receive: `recv` then uses the
    /// UDP backend's `recvmmsg`.
    pub(crate) bufs: Option<BufRing>,
    pub(crate) rx_pool: BufferPool,
    /// The template the multishot receive was armed with (only its name and control lengths
    /// matter to the kernel, which copies it when the SQE is submitted).
    pub(crate) rx_msghdr: Box<libc::msghdr>,
    pub(crate) ready: VecDeque<Ready>,
    pub(crate) recv_armed: bool,
    /// The last multishot end was an error other than `ENOBUFS` (its errno).
    pub(crate) recv_error: Option<i32>,
    pub(crate) poll_armed: bool,
    /// The wake-up descriptor a `POLLIN` poll is armed on.
    pub(crate) wake_armed: Option<RawFd>,
    /// A wake-up poll fired since the last wait looked.
    pub(crate) woken: bool,
    /// Result of send `i` of the current submission (`i32::MIN` until it completes).
    pub(crate) send_res: Vec<i32>,
    pub(crate) sends_left: usize,
    /// Zero-copy buffers the kernel may still read.
    pub(crate) zc: ZcTracker,
    /// An `io_uring_enter` failed in a way that may have left sends queued: no further enter
    /// is made (the kernel reads SQEs only then), every operation fails, and `Drop` leaks the
    /// buffers instead of freeing memory the kernel might still see.
    pub(crate) poisoned: bool,
    pub(crate) stats: UringStats,
}

// SAFETY: the raw pointers in `rx_msghdr` are null (only its lengths are used); the ring's
// mappings and the buffer ring are owned by this value and used by one thread at a time (the
// queue is `Send`, not `Sync`).
unsafe impl Send for Core {}

/// Sets up a ring of `entries` SQEs and `cq_entries` CQEs, preferring cooperative task-run.
/// io_uring refused outright (seccomp, `kernel.io_uring_disabled`, no kernel support) is an
/// error that says so.
pub(crate) fn build(entries: u32, cq_entries: u32) -> io::Result<IoUring> {
    // SUBMIT_ALL (5.18): a send whose preparation fails does not stop the submission of the
    // ones after it, so every queued SQE is consumed by the enter that submits it.
    let coop = IoUring::builder()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_submit_all()
        .setup_cqsize(cq_entries)
        .build(entries);
    let r = match coop {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            IoUring::builder().setup_cqsize(cq_entries).build(entries)
        }
        other => other,
    };
    r.map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => {
                " (blocked: seccomp filter of a container, or sysctl kernel.io_uring_disabled)"
            }
            Some(libc::ENOSYS) => " (kernel built without io_uring)",
            Some(libc::ENOMEM) => " (locked-memory limit, RLIMIT_MEMLOCK, too low)",
            _ => "",
        };
        io::Error::new(
            e.kind(),
            format!(
                "io_uring unavailable: io_uring_setup failed with {}{hint}; use the udp backend",
                errno_name(&e)
            ),
        )
    })
}

/// Which opcodes the kernel knows. `SENDMSG` and `POLL_ADD` are required; what else is
/// missing is returned as reasons for [`crate::Capabilities::missing`].
pub(crate) struct Probed {
    pub(crate) recvmsg: bool,
    pub(crate) send_zc: bool,
}

pub(crate) fn probe(ring: &IoUring) -> io::Result<Probed> {
    let mut p = Probe::new();
    ring.submitter().register_probe(&mut p).map_err(|e| {
        io::Error::new(e.kind(), format!("io_uring probe failed: {}", errno_name(&e)))
    })?;
    for (code, name) in [
        (opcode::SendMsg::CODE, "IORING_OP_SENDMSG"),
        (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD"),
        (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
    ] {
        if !p.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring unavailable: the kernel lacks {name}; use the udp backend"),
            ));
        }
    }
    Ok(Probed {
        recvmsg: p.is_supported(opcode::RecvMsgMulti::CODE),
        send_zc: p.is_supported(opcode::SendMsgZc::CODE),
    })
}

/// A `msghdr` whose only meaning is the room reserved for name and control messages in each
/// provided buffer.
pub(crate) fn rx_template() -> Box<libc::msghdr> {
    // SAFETY: msghdr is plain integers and pointers; all-zero (null pointers) is valid.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_namelen = RECV_NAME_LEN as libc::socklen_t;
    m.msg_controllen = RECV_CONTROL_LEN as _;
    Box::new(m)
}

impl Core {
    /// Queues an SQE, making room by submitting when the queue is full.
    ///
    /// # Safety
    /// Every pointer in `entry` (message header, its name, iovec, control and data buffers)
    /// must stay valid and unmoved until the operation's last CQE has been reaped (for a
    /// zero-copy send: its notification).
    pub(crate) unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: the caller guarantees the entry's pointees outlive the operation.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
        Err(io::Error::other("io_uring submission queue stays full"))
    }

    /// Arms the multishot receive on `fd` into the buffer ring.
    pub(crate) fn arm_recv(&mut self, fd: types::Fd) -> io::Result<()> {
        let Some(bufs) = &self.bufs else { return Ok(()) };
        let e = opcode::RecvMsgMulti::new(fd, &*self.rx_msghdr, bufs.bgid())
            .build()
            .user_data(TAG_RECV);
        // SAFETY: the kernel reads the msghdr template (a heap box owned by `self`) when the
        // SQE is submitted; the buffers it writes into are those of the registered buffer ring,
        // owned by `self.bufs` until they come back in a CQE or the ring is torn down (see
        // `UringQueue`'s `Drop`).
        unsafe { self.push(&e)? };
        self.recv_armed = true;
        self.recv_error = None;
        self.stats.recv_arms += 1;
        Ok(())
    }

    /// Arms a one-shot `POLLOUT` poll on `fd` (once at a time).
    pub(crate) fn arm_poll_out(&mut self, fd: types::Fd) -> io::Result<()> {
        if self.poll_armed {
            return Ok(());
        }
        let e = opcode::PollAdd::new(fd, libc::POLLOUT as u32).build().user_data(TAG_POLL);
        // SAFETY: a poll carries no pointers.
        unsafe { self.push(&e)? };
        self.poll_armed = true;
        Ok(())
    }

    /// Waits until the kernel has sent every notification for the buffer at `addr`. Must not
    /// give up (the caller is about to write into the buffer): a failed enter poisons the ring.
    pub(crate) fn wait_zc_idle(&mut self, addr: usize, enters: &mut u64) -> io::Result<()> {
        if self.zc.is_busy(addr) {
            self.stats.zc_waits += 1;
        }
        while self.zc.is_busy(addr) {
            *enters += 1;
            if let Err(e) = self.enter(1, None) {
                self.poisoned = true;
                return Err(e);
            }
            self.drain();
        }
        Ok(())
    }

    /// Arms a one-shot `POLLIN` poll on the wake-up descriptor `fd` (cancelling one armed on
    /// another descriptor).
    pub(crate) fn arm_wake(&mut self, fd: RawFd) -> io::Result<()> {
        if self.wake_armed == Some(fd) {
            return Ok(());
        }
        if let Some(old) = self.wake_armed.take() {
            let c = opcode::AsyncCancel::new(TAG_WAKE | old as u64).build().user_data(TAG_CANCEL);
            // SAFETY: a cancellation carries no pointers.
            unsafe { self.push(&c)? };
        }
        let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(TAG_WAKE | fd as u64);
        // SAFETY: a poll carries no pointers (the kernel holds its own reference to the file).
        unsafe { self.push(&e)? };
        self.wake_armed = Some(fd);
        Ok(())
    }

    /// True when completions may be waiting in the kernel: pending task work (the
    /// `IORING_SQ_TASKRUN` flag) or unsubmitted SQEs.
    pub(crate) fn kernel_has_work(&mut self) -> bool {
        let mut sq = self.ring.submission();
        sq.sync();
        sq.taskrun() || !sq.is_empty() || sq.cq_overflow()
    }

    /// One `io_uring_enter`: submits what is queued and waits for `want` completions or
    /// `timeout`. A timeout or a signal is not an error.
    pub(crate) fn enter(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other("io_uring queue is unusable after an earlier failure"));
        }
        let r = match timeout {
            Some(t) if want > 0 => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            _ => self.ring.submitter().submit_and_wait(want),
        };
        match r {
            Ok(_) => Ok(()),
            // Timeout, signal, or a transient shortage (completion queue full, no memory for
            // the moment): the caller drains and tries again.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Sorts every completion waiting in the completion queue.
    pub(crate) fn drain(&mut self) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let (ud, res, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
            match ud & TAG_MASK {
                TAG_RECV => {
                    if let Some(bid) = cqueue::buffer_select(flags) {
                        let buf = self.bufs.as_mut().and_then(|b| b.take(bid));
                        match (buf, usize::try_from(res)) {
                            (Some(buf), Ok(len)) => self.ready.push_back(Ready { buf, len }),
                            (Some(buf), Err(_)) => self.rx_pool.put(buf),
                            (None, _) => {}
                        }
                    }
                    if !cqueue::more(flags) {
                        self.recv_armed = false;
                        if res == -libc::ENOBUFS {
                            self.stats.recv_enobufs += 1;
                        } else {
                            self.stats.recv_other_ends += 1;
                            if res < 0 {
                                self.recv_error = Some(-res);
                            }
                        }
                    }
                }
                TAG_SEND => {
                    if cqueue::notif(flags) {
                        self.zc.notified(ud);
                        if (res as u32) & NOTIF_USAGE_ZC_COPIED != 0 {
                            self.stats.zc_copied += 1;
                        }
                    } else {
                        let i = (ud & 0xffff) as usize;
                        if let Some(slot) = self.send_res.get_mut(i) {
                            *slot = res;
                        }
                        self.sends_left = self.sends_left.saturating_sub(1);
                        if cqueue::more(flags) {
                            self.zc.expect(ud, i);
                        }
                    }
                }
                TAG_POLL => self.poll_armed = false,
                TAG_WAKE => {
                    let fd = (ud & !TAG_MASK) as RawFd;
                    if self.wake_armed == Some(fd) {
                        self.wake_armed = None;
                    }
                    self.woken = true;
                }
                _ => {}
            }
        }
    }
}
