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
        // SAFETY: `map` is our fresh mapping of `map_len` bytes, the offsets were checked to
        // lie inside it with the alignment the words and descriptors need, and the ring owns
        // (and unmaps) it.
        Ok(unsafe { Self::over(map, map_len, off, size, producer_side, true) })
    }

    /// A ring over memory at `map` laid out as `off` says.
    ///
    /// # Safety
    /// `map` must point to `map_len` readable and writable bytes that stay valid for the
    /// ring's whole life (unmapped by the ring itself when `owned`); `off.producer`,
    /// `off.consumer` and `off.flags` must be 4-byte aligned offsets of words inside it, and
    /// `off.desc` an offset aligned for `T` with room for `size` of them before `map_len`. The
    /// only other party writing the memory must follow the ring protocol (the kernel, or the
    /// opposite side in tests).
    unsafe fn over(
        map: NonNull<u8>,
        map_len: usize,
        off: &libc::xdp_ring_offset,
        size: u32,
        producer_side: bool,
        owned: bool,
    ) -> Self {
        let at = |o: u64| -> NonNull<u8> {
            // SAFETY: the caller guarantees every offset lies inside the `map_len` bytes.
            unsafe { map.add(o as usize) }
        };
        let producer = at(off.producer).cast::<AtomicU32>();
        let consumer = at(off.consumer).cast::<AtomicU32>();
        let flags = at(off.flags).cast::<AtomicU32>();
        let descs = at(off.desc).cast::<T>();
        // SAFETY: the words are 4-byte aligned u32s in live memory (caller's guarantee).
        let (p0, c0) = unsafe { (producer.as_ref(), consumer.as_ref()) };
        let (prod, cons) = (p0.load(Ordering::Acquire), c0.load(Ordering::Acquire));
        let (cached_prod, cached_cons) =
            if producer_side { (prod, cons.wrapping_add(size)) } else { (prod, cons) };
        Self {
            map,
            map_len: if owned { map_len } else { 0 },
            producer,
            consumer,
            flags,
            descs,
            mask: size - 1,
            size,
            cached_prod,
            cached_cons,
            _t: PhantomData,
        }
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
        if self.map_len == 0 {
            return; // memory the ring does not own (tests)
        }
        // SAFETY: unmaps exactly the mapping made in `map`; no reference into it outlives self.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u32 = 8;
    const OFF: libc::xdp_ring_offset =
        libc::xdp_ring_offset { producer: 0, consumer: 64, flags: 128, desc: 192 };

    /// A producer view and a consumer view over the same memory, both indices starting at
    /// `start` (to cross the u32 wrap).
    fn pair(mem: &mut [u64], start: u32) -> (Ring<u64>, Ring<u64>) {
        let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: (test) both words start at `start`; `mem` is 8-byte aligned, outlives the rings
        // and holds the words (0, 64, 128) and SIZE descriptors at 192.
        unsafe {
            base.cast::<u32>().write(start);
            base.add(64).cast::<u32>().write(start);
        }
        let len = mem.len() * 8;
        // SAFETY: as above; the rings do not own the memory.
        unsafe {
            (
                Ring::over(base, len, &OFF, SIZE, true, false),
                Ring::over(base, len, &OFF, SIZE, false, false),
            )
        }
    }

    #[test]
    fn xdp_ring_moves_entries_in_order_across_the_index_wrap() {
        let mut mem = vec![0u64; (192 + SIZE as usize * 8) / 8];
        let (mut prod, mut cons) = pair(&mut mem, u32::MAX - 5);
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        for round in 0..50u64 {
            let want = (round % 7 + 1) as u32;
            let free = prod.free(want);
            assert!(free <= SIZE);
            for _ in 0..free.min(want) {
                prod.push(next_in);
                next_in += 1;
            }
            prod.submit();
            assert_eq!(u64::from(prod.unconsumed()), next_in - next_out);
            let n = cons.available().min((round % 5 + 1) as u32);
            for k in 0..n {
                assert_eq!(cons.peek(k), next_out + u64::from(k), "in order");
            }
            cons.release(n);
            next_out += u64::from(n);
        }
        assert!(next_in > 100, "entries flowed: {next_in}");
        let left = cons.available();
        cons.release(left);
        assert_eq!(next_in - next_out, u64::from(left));
        assert_eq!(prod.free(SIZE), SIZE, "all slots free again");
    }

    #[test]
    fn xdp_ring_never_overfills() {
        let mut mem = vec![0u64; (192 + SIZE as usize * 8) / 8];
        let (mut prod, mut cons) = pair(&mut mem, 0);
        assert_eq!(prod.free(100), SIZE);
        for i in 0..SIZE {
            prod.push(u64::from(i));
        }
        prod.submit();
        assert_eq!(prod.free(1), 0, "full until the consumer releases");
        assert_eq!(cons.available(), SIZE);
        cons.release(3);
        assert_eq!(prod.free(1), 3);
        assert!(!prod.needs_wakeup());
    }
}
