//! Transmit through the ring: the planned messages of one round become linked `SENDMSG` (or
//! `SENDMSG_ZC`) SQEs, submitted with one `io_uring_enter`.
//!
//! The UDP backend's transmit policy (`udp/tx.rs`: splitting trains, partial sends, `EAGAIN`,
//! per-datagram errors, the GSO `EIO` fallback) expects `sendmmsg` semantics: the first `n`
//! messages went out, or an error if none did. Linking the SQEs (`IOSQE_IO_LINK`) and sending
//! with `MSG_DONTWAIT` gives exactly that: the kernel issues them in order, a full socket
//! fails one with `EAGAIN` instead of waiting, and a failure cancels the rest of the chain
//! (`ECANCELED`), so what was sent is always a prefix.
//!
//! Every SQE's pointers (header, name, control, payload) point into the UDP backend's `TxIo`
//! headers and into the batch's buffers; [`send_round`] does not return before every one of
//! its sends has completed, so those stay valid for the whole operation. (A zero-copy send's
//! payload is read until its notification, which may come later: `zc.rs` keeps those buffers
//! from being written meanwhile. The headers are copied by the kernel when the send is issued.)

use std::io;

use io_uring::{opcode, squeue, types};

use super::ring::{Core, SEND_ZC_REPORT_USAGE, TAG_SEND};
use crate::udp::io::TxIo;

/// Submits messages `0..n` of `tx_io` (as written by [`TxIo::fill`]) and waits for their
/// results. Returns how many went out as a prefix, or the first one's error when none did.
/// `enters` counts the `io_uring_enter` calls made. For zero-copy (`zc`), `core.zc.round`
/// must hold the base address of each message's buffer.
///
/// # Safety
/// The headers of `tx_io` must point at buffers that stay alive and unchanged until this
/// returns (the caller holds the batch borrowed across the call); for zero-copy, a buffer's
/// bytes must also stay alive and unwritten until its notifications arrive (`core.zc`).
pub(crate) unsafe fn send_round(
    core: &mut Core,
    fd: types::Fd,
    tx_io: &TxIo,
    n: usize,
    zc: bool,
    enters: &mut u64,
) -> io::Result<usize> {
    if n == 0 {
        return Ok(0);
    }
    {
        let mut sq = core.ring.submission();
        sq.sync();
        if sq.capacity() - sq.len() < n {
            drop(sq);
            *enters += 1;
            core.enter(0, None)?;
        }
    }
    let room = {
        let sq = core.ring.submission();
        sq.capacity() - sq.len()
    };
    if room < n {
        return Err(io::Error::other("io_uring submission queue has no room for a send batch"));
    }
    core.send_res.clear();
    core.send_res.resize(n, i32::MIN);
    core.sends_left = n;
    let round = if zc { u64::from(core.zc.next_round()) << 16 } else { 0 };
    for i in 0..n {
        let msg = tx_io.msghdr(i);
        let flags = libc::MSG_DONTWAIT as u32;
        let e = if zc {
            core.stats.zc_sends += 1;
            opcode::SendMsgZc::new(fd, msg).flags(flags).ioprio(SEND_ZC_REPORT_USAGE).build()
        } else {
            opcode::SendMsg::new(fd, msg).flags(flags).build()
        };
        let link = if i + 1 < n { squeue::Flags::IO_LINK } else { squeue::Flags::empty() };
        let e = e.flags(link).user_data(TAG_SEND | round | i as u64);
        // SAFETY: the header and everything it points at outlive the operation: this function
        // waits below for every send's completion (and notification) before returning, and
        // the caller keeps the pointees alive and unchanged until then. There is room for the
        // whole chain (checked above), so the push cannot fail half-way.
        let pushed = unsafe { core.ring.submission().push(&e) };
        if pushed.is_err() {
            // Not reachable after the room check; nothing of this chain was submitted yet
            // only if it is the first entry, so refuse to go on rather than guess.
            core.poisoned = true;
            return Err(io::Error::other("io_uring submission queue overflowed mid-chain"));
        }
    }
    // Wait for every result. Each enter returns once at least one completion arrived, and
    // each send posts one, so this ends; it must not give up early, since the kernel may still
    // read the headers and buffers until then. A failed enter other than a transient one
    // poisons the ring (no further enter), so the queued sends can never run after their
    // buffers are gone.
    while core.sends_left > 0 {
        *enters += 1;
        if let Err(e) = core.enter(core.sends_left, None) {
            core.poisoned = true;
            return Err(e);
        }
        core.drain();
    }
    let first_err = core.send_res.iter().position(|&r| r < 0);
    match first_err {
        None => Ok(core.send_res.len()),
        Some(0) => Err(io::Error::from_raw_os_error(-core.send_res[0])),
        Some(k) => Ok(k),
    }
}
