//! The provided-buffer ring (`IORING_REGISTER_PBUF_RING`): pool buffers lent to the kernel for
//! the multishot receive to fill.
//!
//! The ring is an array of `struct io_uring_buf { u64 addr; u32 len; u16 bid; u16 resv; }` in
//! page-aligned memory shared with the kernel; the `resv` field of entry 0 is the tail, which
//! we advance (release store) after writing entries; the kernel consumes from its head. Each
//! entry points at a [`PoolBuf`] held in `slots[bid]` until the kernel reports (in a CQE) that
//! it filled buffer `bid`; then the `PoolBuf` itself is lent to the engine, without a copy.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

use crate::buffer::{BufferPool, PoolBuf};

/// `struct io_uring_buf`.
#[repr(C)]
struct RawBuf {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<RawBuf>() == 16);

/// Offset of the tail (entry 0's `resv`) from the ring's base.
const TAIL_OFFSET: usize = 14;

/// A registered buffer ring and the buffers posted to it.
pub(crate) struct BufRing {
    base: NonNull<RawBuf>,
    map_len: usize,
    mask: u16,
    /// Our copy of the tail (the kernel only reads it).
    tail: u16,
    /// `slots[bid]`: the buffer posted under `bid`, until the kernel fills it.
    slots: Vec<Option<PoolBuf>>,
    /// Buffer ids with no buffer posted.
    free: Vec<u16>,
    bgid: u16,
    registered: bool,
}

// SAFETY: `base` points at an anonymous mapping owned by this value alone; the buffers it
// describes are owned boxes in `slots`. Moving the value to another thread moves that ownership
// with it; nothing is shared with other threads of this process.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Maps a ring of `entries` (a power of two ≤ 32768) and registers it as buffer group
    /// `bgid`. Fails with the kernel's error when buffer rings are unsupported.
    pub(crate) fn new(ring: &IoUring, entries: u16, bgid: u16) -> io::Result<Self> {
        debug_assert!(entries.is_power_of_two());
        let map_len = (usize::from(entries) * std::mem::size_of::<RawBuf>()).max(page_size());
        // SAFETY: an anonymous private mapping: no file, no fixed address; the result is
        // checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<RawBuf>()).ok_or_else(io::Error::last_os_error)?;
        let mut me = Self {
            base,
            map_len,
            mask: entries - 1,
            tail: 0,
            slots: (0..entries).map(|_| None).collect(),
            free: (0..entries).rev().collect(),
            bgid,
            registered: false,
        };
        // SAFETY: the mapping is page-aligned, zeroed (tail 0), `entries` entries long, and
        // stays mapped until `Drop`, which unmaps it only when it is no longer registered (or
        // the ring fd that holds the registration is gone).
        unsafe { ring.submitter().register_buf_ring_with_flags(p as u64, entries, bgid, 0)? };
        me.registered = true;
        Ok(me)
    }

    /// The buffer group id to receive with.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Buffers posted and not yet filled.
    pub(crate) fn posted(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Posts buffers from `pool` under every free id (as many as the pool gives), then
    /// publishes the new tail. Returns how many were posted.
    pub(crate) fn refill(&mut self, pool: &mut BufferPool) -> usize {
        let mut n = 0;
        while let Some(bid) = self.free.pop() {
            let Some(mut buf) = pool.take() else {
                self.free.push(bid);
                break;
            };
            let len = u32::try_from(buf.full_len()).unwrap_or(u32::MAX);
            let entry = RawBuf { addr: buf.base_ptr() as u64, len, bid, resv: 0 };
            let idx = usize::from(self.tail & self.mask);
            // SAFETY: `idx` < entries, inside the mapping. The kernel reads this entry only
            // after the tail store below makes it visible, and never reads entries at or past
            // the tail; it consumes at most `entries` posted entries, and at most `entries`
            // ids exist, so this slot is not one it still has to read. Entry 0's `resv` is the
            // tail: keep it, write the other fields only.
            unsafe {
                let e = self.base.as_ptr().add(idx);
                std::ptr::addr_of_mut!((*e).addr).write_volatile(entry.addr);
                std::ptr::addr_of_mut!((*e).len).write_volatile(entry.len);
                std::ptr::addr_of_mut!((*e).bid).write_volatile(entry.bid);
            }
            self.slots[usize::from(bid)] = Some(buf);
            self.tail = self.tail.wrapping_add(1);
            n += 1;
        }
        if n > 0 {
            // SAFETY: the tail is a naturally aligned u16 inside the mapping, shared with the
            // kernel, which reads it atomically; the release store orders the entry writes
            // above before it.
            let tail =
                unsafe { &*self.base.as_ptr().cast::<u8>().add(TAIL_OFFSET).cast::<AtomicU16>() };
            tail.store(self.tail, Ordering::Release);
        }
        n
    }

    /// Takes back the buffer the kernel filled under `bid` (reported in a CQE); `None` for an
    /// id with nothing posted (never expected from the kernel).
    pub(crate) fn take(&mut self, bid: u16) -> Option<PoolBuf> {
        let b = self.slots.get_mut(usize::from(bid))?.take()?;
        self.free.push(bid);
        Some(b)
    }

    /// Unregisters the ring; afterwards the kernel picks no more buffers from it.
    pub(crate) fn unregister(&mut self, ring: &IoUring) -> io::Result<()> {
        if self.registered {
            ring.submitter().unregister_buf_ring(self.bgid)?;
            self.registered = false;
        }
        Ok(())
    }

    /// Gives up the posted buffers and the mapping without freeing them, for when the kernel
    /// may still write into them (teardown could not confirm the receive ended).
    pub(crate) fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.registered {
            // Still registered: the owner did not unregister (its ring is being dropped too and
            // its fd close ends the registration), but stay on the safe side: keep the mapping
            // and the buffers rather than free memory the kernel may read.
            std::mem::forget(std::mem::take(&mut self.slots));
            return;
        }
        // SAFETY: the mapping was created in `new` with this length and is no longer
        // registered, so the kernel holds no reference to it.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory arguments.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}
