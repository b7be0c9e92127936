//! A single-producer / single-consumer AF_XDP ring over memory the kernel shares with us.
//!
//! Each of the four rings (fill, completion, RX, TX) is an `mmap` of the socket at a fixed page
//! offset. It holds a producer word, a consumer word, a flags word and a power-of-two array of
//! descriptors, at offsets the kernel reports through `XDP_MMAP_OFFSETS`. One side only writes
//! the producer word, the other only the consumer word; each side keeps a cached copy of the
//! other's word and reads the shared one (with `Acquire`) only when the cache says the ring is
//! empty or full, and publishes its own word with `Release` after writing or reading the
//! descriptors (the same protocol as libbpf's `xsk.h`, which uses `smp_load_acquire` /
//! `smp_store_release`).

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// A mapped ring of `T` (a `u64` UMEM address for fill/completion, a `libc::xdp_desc` for
/// RX/TX).
pub(crate) struct Ring<T: Copy> {
    map: NonNull<u8>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    /// Producer side: our producer index. Consumer side: the last producer value we read.
    cached_prod: u32,
    /// Consumer side: our consumer index. Producer side: the last consumer value we read plus
    /// the ring size (so `cached_cons - cached_prod` is the free space).
    cached_cons: u32,
    _t: PhantomData<T>,
}

// SAFETY: the ring's memory is a private mapping of this process owned by the `Ring`; the
// kernel is the only other party and synchronises through the atomic words. Moving the ring to
// another thread moves sole user-space ownership with it.
unsafe impl<T: Copy + Send> Send for Ring<T> {}

impl<T: Copy> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("size", &self.size)
            .field("cached_prod", &self.cached_prod)
            .field("cached_cons", &self.cached_cons)
            .finish_non_exhaustive()
    }
}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `size` entries at page offset `pgoff` of socket `fd`, with the word and
    /// descriptor offsets `off` the kernel reported. `producer_side` says whether user space
    /// produces into it (fill, TX) or consumes from it (completion, RX).
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        pgoff: libc::off_t,
        off: &libc::xdp_ring_offset,
        size: u32,
        producer_side: bool,
    ) -> io::Result<Self> {
        if !size.is_power_of_two() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "ring size not a power of 2"));
        }
        let map_len = usize::try_from(off.desc)
            .ok()
            .and_then(|d| d.checked_add(size as usize * size_of::<T>()))
            .ok_or_else(|| io::Error::other("ring offsets out of range"))?;
        // The three words must lie before the descriptors, 4-byte aligned; the descriptors
        // aligned for `T`. (The kernel's layout always satisfies this; it is checked because
        // the pointers below rely on it.)
        let word_ok = |o: u64| o % 4 == 0 && o.checked_add(4).is_some_and(|e| e <= off.desc);
        if !(word_ok(off.producer) && word_ok(off.consumer) && word_ok(off.flags))
            || off.desc % align_of::<T>() as u64 != 0
        {
            return Err(io::Error::other("unexpected XDP ring layout"));
        }
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel validates `pgoff` and
        // the length; nothing aliases it until we return it wrapped in `Ring`.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let at = |o: u64| -> NonNull<u8> {
            // SAFETY: every offset the kernel reports lies inside the mapping of `map_len`
            // bytes (the descriptor array is last and `map_len` covers it).
            unsafe { map.add(o as usize) }
        };
        let producer = at(off.producer).cast::<AtomicU32>();
        let consumer = at(off.consumer).cast::<AtomicU32>();
        let flags = at(off.flags).cast::<AtomicU32>();
        let descs = at(off.desc).cast::<T>();
        // SAFETY: the words are 4-byte aligned u32s in the live mapping.
        let (p0, c0) = unsafe { (producer.as_ref(), consumer.as_ref()) };
        let (prod, cons) = (p0.load(Ordering::Acquire), c0.load(Ordering::Acquire));
        let (cached_prod, cached_cons) =
            if producer_side { (prod, cons.wrapping_add(size)) } else { (prod, cons) };
        Ok(Self {
            map,
            map_len,
            producer,
            consumer,
            flags,
            descs,
            mask: size - 1,
            size,
            cached_prod,
            cached_cons,
            _t: PhantomData,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the mapping, which lives as long as `self`.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    /// Number of entries.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// True when the kernel asks to be woken (`XDP_RING_NEED_WAKEUP`) to process this ring.
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // ---- producer side (fill, TX) ----

    /// Free slots, reading the kernel's consumer word only when the cache shows fewer than
    /// `want`.
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_cons = self.consumer().load(Ordering::Acquire).wrapping_add(self.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Writes `value` into the next free slot. The caller checked [`Ring::free`] first; the
    /// entry becomes visible to the kernel at [`Ring::submit`].
    pub(crate) fn push(&mut self, value: T) {
        debug_assert!(self.cached_cons.wrapping_sub(self.cached_prod) > 0, "push on a full ring");
        let i = (self.cached_prod & self.mask) as usize;
        // SAFETY: `i <= mask < size` indexes the descriptor array inside the mapping; this slot
        // is ours (between the kernel's consumer and our producer) until submitted.
        unsafe { self.descs.add(i).write(value) };
        self.cached_prod = self.cached_prod.wrapping_add(1);
    }

    /// Publishes every pushed entry to the kernel.
    pub(crate) fn submit(&mut self) {
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Submitted entries the kernel has not consumed yet.
    pub(crate) fn unconsumed(&self) -> u32 {
        self.cached_prod.wrapping_sub(self.consumer().load(Ordering::Acquire))
    }

    // ---- consumer side (completion, RX) ----

    /// Entries ready to read, reading the kernel's producer word only when the cache is empty.
    pub(crate) fn available(&mut self) -> u32 {
        let n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n > 0 {
            return n;
        }
        self.cached_prod = self.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Reads the `k`-th ready entry (`k < available()`), without consuming it.
    pub(crate) fn peek(&self, k: u32) -> T {
        debug_assert!(k < self.cached_prod.wrapping_sub(self.cached_cons));
        let i = (self.cached_cons.wrapping_add(k) & self.mask) as usize;
        // SAFETY: in bounds as in `push`; the kernel published this slot (Acquire above) and
        // will not rewrite it until we release it.
        unsafe { self.descs.add(i).read() }
    }

    /// Consumes `n` entries and hands their slots back to the kernel.
    pub(crate) fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.consumer().store(self.cached_cons, Ordering::Release);
    }
}

impl<T: Copy> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no reference into it outlives self.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}
