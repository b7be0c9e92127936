//! The UMEM: the packet memory an AF_XDP socket shares with the kernel, its registration, the
//! fill and completion rings, the free-frame allocator, and the frames lent to the engine.
//!
//! The area is one anonymous, page-aligned `mmap` of `frame_count * frame_size` bytes, split
//! into equal frames ("chunks" in kernel terms, aligned mode). A frame is at any time owned by
//! exactly one party: user space (in a free list, being read/written by the queue, or lent to
//! the engine as a [`FrameLease`] inside a [`crate::PoolBuf`]), or the kernel (posted on the
//! fill ring for receive, or on the TX ring until it shows up on the completion ring). Only
//! frames user space owns are ever turned into slices, and a lent frame only by its lease.
//!
//! The mapping is reference-counted ([`UmemArea`]): the queue and every lease hold it, so a
//! lent frame stays valid even when the engine keeps it past the queue (it is then simply
//! freed with the last lease). A lease dropped instead of handed back to its queue puts its
//! frame on the area's orphan list, which the queue reclaims: a lost lease never shrinks the
//! UMEM for good.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::ring::Ring;

/// The mapping itself, shared by the queue and every frame it lends.
pub(crate) struct UmemArea {
    ptr: NonNull<u8>,
    len: usize,
    frame_size: u32,
    /// Frames whose lease was dropped without being handed back to the queue.
    orphans: Mutex<Vec<u64>>,
    /// `orphans.len()`, read without the lock on the hot path.
    orphan_count: AtomicUsize,
    /// Payloads copied into lent frames in user space ([`crate::TxBuffer::extend_from_slice`]).
    copies_in: AtomicU64,
}

// SAFETY: the area is a private anonymous mapping owned by this value and freed only on drop;
// its bytes are only reached through frames, each owned by one party at a time (module docs),
// and the bookkeeping fields are a mutex and atomics.
unsafe impl Send for UmemArea {}
// SAFETY: as above; shared references never give access to a frame's bytes by themselves.
unsafe impl Sync for UmemArea {}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly our mapping, once the queue and every lease are gone (no slice
        // into it can outlive them). A socket still registered with it keeps the pages pinned
        // in the kernel; the queue closes its socket before dropping its handle anyway.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A registered packet area split into frames (the queue's handle on its [`UmemArea`]).
pub(crate) struct Umem {
    area: Arc<UmemArea>,
    frame_count: u32,
}

impl std::fmt::Debug for Umem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umem")
            .field("frame_size", &self.area.frame_size)
            .field("frame_count", &self.frame_count)
            .finish_non_exhaustive()
    }
}

impl Umem {
    /// Maps `frame_count` frames of `frame_size` bytes (2048 or 4096).
    pub(crate) fn new(frame_size: u32, frame_count: u32) -> io::Result<Self> {
        if !matches!(frame_size, 2048 | 4096) || frame_count == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad UMEM geometry"));
        }
        let len = frame_size as usize * frame_count as usize;
        // SAFETY: a fresh private anonymous mapping; the kernel picks a page-aligned address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let area = UmemArea {
            ptr,
            len,
            frame_size,
            orphans: Mutex::new(Vec::new()),
            orphan_count: AtomicUsize::new(0),
            copies_in: AtomicU64::new(0),
        };
        Ok(Self { area: Arc::new(area), frame_count })
    }

    /// Size of each frame.
    pub(crate) fn frame_size(&self) -> u32 {
        self.area.frame_size
    }

    /// Registers the area with socket `fd` (`XDP_UMEM_REG`, no headroom, aligned chunks).
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let reg = libc::xdp_umem_reg {
            addr: self.area.ptr.as_ptr() as u64,
            len: self.area.len as u64,
            chunk_size: self.area.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd, libc::XDP_UMEM_REG, &reg)
    }

    /// The bytes at `addr..addr + len` of the area, or `None` when out of range or crossing a
    /// frame boundary (a descriptor the kernel gave us is checked, never trusted).
    ///
    /// The caller must own the frame (it came off the RX or completion ring and was neither
    /// handed back nor lent yet); the module's ownership rule guarantees nobody else writes it.
    pub(crate) fn bytes(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let (start, len) = self.area.check(addr, len as usize)?;
        // SAFETY: in bounds of the mapping, inside one frame (checked above); the frame is
        // owned by the queue for as long as the borrow of `self` lasts (see the module docs).
        Some(unsafe { std::slice::from_raw_parts(self.area.ptr.as_ptr().add(start), len) })
    }

    /// The whole frame starting at `addr` (a frame-aligned address the queue owns: from its
    /// free list, or handed back by a lease), writable.
    pub(crate) fn frame_mut(&mut self, addr: u64) -> Option<&mut [u8]> {
        let start = usize::try_from(addr).ok()?;
        let fs = self.area.frame_size as usize;
        if start % fs != 0 || start + fs > self.area.len {
            return None;
        }
        // SAFETY: in bounds and frame-aligned (checked); the queue owns this frame (module
        // docs: it is in no ring and in no lease) and `&mut self` makes this borrow the only
        // one the queue hands out.
        Some(unsafe { std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(start), fs) })
    }

    /// Lends the bytes `addr..addr + len` (inside one frame the queue owns) to the engine. The
    /// frame stays the lease's until [`Umem::reclaim`] or the lease's drop.
    pub(crate) fn lend(&self, addr: u64, len: usize) -> Option<FrameLease> {
        let (start, len) = self.area.check(addr, len)?;
        let fs = self.area.frame_size as usize;
        Some(FrameLease {
            area: Arc::clone(&self.area),
            frame: (start - start % fs) as u64,
            offset: start % fs,
            len,
        })
    }

    /// Takes back the frame of `lease` when it is one of ours, returning its frame-aligned
    /// address and where the lent bytes started in it; or gives the lease back (another
    /// queue's frame).
    pub(crate) fn reclaim(&self, mut lease: FrameLease) -> Result<(u64, usize), FrameLease> {
        if !Arc::ptr_eq(&lease.area, &self.area) || lease.frame == RETURNED {
            return Err(lease);
        }
        let frame = std::mem::replace(&mut lease.frame, RETURNED);
        Ok((frame, lease.offset))
    }

    /// Frames whose leases were dropped instead of handed back, now the queue's again.
    pub(crate) fn take_orphans(&self, out: &mut Vec<u64>) {
        if self.area.orphan_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut o = self.area.orphans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.area.orphan_count.store(0, Ordering::Release);
        out.append(&mut o);
    }

    /// Payloads copied into this UMEM's lent frames in user space so far.
    pub(crate) fn copies_in(&self) -> u64 {
        self.area.copies_in.load(Ordering::Relaxed)
    }
}

impl UmemArea {
    /// `(start, len)` as `usize` when `addr..addr + len` lies inside one frame of the area.
    fn check(&self, addr: u64, len: usize) -> Option<(usize, usize)> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len)?;
        let fs = self.frame_size as usize;
        if end > self.len || (len > 0 && start / fs != (end - 1) / fs) {
            return None;
        }
        Some((start, len))
    }
}

/// `FrameLease::frame` once the frame went back to its queue (the drop then does nothing).
const RETURNED: u64 = u64::MAX;

/// Part of one UMEM frame lent to the engine (the storage of a [`crate::PoolBuf`] from an
/// AF_XDP queue): received payload opened in place, or a transmit payload sealed in place
/// behind room for the headers. It owns its frame until the queue reclaims it; dropped
/// elsewhere, the frame goes on the area's orphan list for the queue to take back.
pub(crate) struct FrameLease {
    area: Arc<UmemArea>,
    /// Frame-aligned address of the frame in the area, or [`RETURNED`].
    frame: u64,
    /// Where the lent bytes start inside the frame.
    offset: usize,
    /// How many bytes are lent.
    len: usize,
}

impl std::fmt::Debug for FrameLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameLease")
            .field("frame", &self.frame)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl FrameLease {
    /// Where the lent bytes start in the area.
    fn start(&self) -> usize {
        self.frame as usize + self.offset
    }

    /// The lent bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `Umem::lend` checked that the range lies in one frame of the mapping, which
        // lives as long as `self.area`; the lease owns the frame (module docs: no ring, no free
        // list, no other lease holds it) so nobody writes it while this borrow lasts.
        unsafe { std::slice::from_raw_parts(self.area.ptr.as_ptr().add(self.start()), self.len) }
    }

    /// The lent bytes, writable.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes this the only borrow of the frame.
        unsafe {
            std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(self.start()), self.len)
        }
    }

    /// Hides the first `n` lent bytes (clamped).
    pub(crate) fn skip(&mut self, n: usize) {
        let n = n.min(self.len);
        self.offset += n;
        self.len -= n;
    }

    /// Counts a payload copied into this frame in user space.
    pub(crate) fn note_copy(&self) {
        self.area.copies_in.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for FrameLease {
    fn drop(&mut self) {
        if self.frame == RETURNED {
            return;
        }
        let mut o = self.area.orphans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        o.push(self.frame);
        self.area.orphan_count.store(o.len(), Ordering::Release);
    }
}

/// A stack of free frame addresses.
#[derive(Debug, Default)]
pub(crate) struct FrameAlloc {
    free: Vec<u64>,
}

impl FrameAlloc {
    /// Frames `first..first + count` of size `frame_size`.
    pub(crate) fn new(first: u32, count: u32, frame_size: u32) -> Self {
        let free = (first..first + count).rev().map(|i| u64::from(i) * u64::from(frame_size));
        Self { free: free.collect() }
    }

    /// Takes a free frame.
    pub(crate) fn take(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Returns a frame.
    pub(crate) fn put(&mut self, addr: u64) {
        self.free.push(addr);
    }

    /// Free frames.
    pub(crate) fn len(&self) -> usize {
        self.free.len()
    }
}

/// Sets a `SOL_XDP` socket option to `value`.
pub(crate) fn setsockopt<T>(fd: BorrowedFd<'_>, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` for the call and `optlen` is its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads a `SOL_XDP` socket option into a zeroed `T`, returning it and the length the kernel
/// wrote.
pub(crate) fn getsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    name: libc::c_int,
    zeroed: T,
) -> io::Result<(T, usize)> {
    let mut value = zeroed;
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a writable `T` and `len` its size; the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok((value, len as usize))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The ring offsets of socket `fd` (`XDP_MMAP_OFFSETS`); kernels before 5.4 lack the flags word
/// and are refused (need_wakeup needs it).
pub(crate) fn mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<libc::xdp_mmap_offsets> {
    let zero = libc::xdp_ring_offset { producer: 0, consumer: 0, desc: 0, flags: 0 };
    let zeroed = libc::xdp_mmap_offsets { rx: zero, tx: zero, fr: zero, cr: zero };
    let (off, len) = getsockopt(fd, libc::XDP_MMAP_OFFSETS, zeroed)?;
    if len != size_of::<libc::xdp_mmap_offsets>() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "XDP_MMAP_OFFSETS without ring flags (kernel older than 5.4)",
        ));
    }
    Ok(off)
}

/// Sizes and maps the fill and completion rings of socket `fd` (the one the UMEM is
/// registered with).
pub(crate) fn fill_and_completion(
    fd: BorrowedFd<'_>,
    fill_size: u32,
    comp_size: u32,
) -> io::Result<(Ring<u64>, Ring<u64>)> {
    setsockopt(fd, libc::XDP_UMEM_FILL_RING, &fill_size)?;
    setsockopt(fd, libc::XDP_UMEM_COMPLETION_RING, &comp_size)?;
    let off = mmap_offsets(fd)?;
    let fill =
        Ring::map(fd, libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t, &off.fr, fill_size, true)?;
    let comp = Ring::map(
        fd,
        libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
        &off.cr,
        comp_size,
        false,
    )?;
    Ok((fill, comp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_umem_bounds_are_checked() {
        let u = Umem::new(2048, 4).unwrap();
        assert!(u.bytes(0, 2048).is_some());
        assert!(u.bytes(2047, 2).is_none(), "crosses a frame boundary");
        assert!(u.bytes(3 * 2048, 2048).is_some());
        assert!(u.bytes(4 * 2048, 1).is_none(), "past the end");
        assert!(u.bytes(u64::MAX, 4).is_none());
        let mut u = u;
        assert!(u.frame_mut(100).is_none(), "not frame-aligned");
        assert!(u.lend(2047, 2).is_none(), "a lease never crosses a frame");
        assert_eq!(u.frame_mut(2048).map(|f| f.len()), Some(2048));
        assert!(Umem::new(1000, 4).is_err());
    }

    #[test]
    fn xdp_lent_frames_come_back_handed_or_dropped() {
        let u = Umem::new(2048, 4).unwrap();
        // A receive view in frame 1 and a transmit view in frame 2, as PoolBufs.
        let mut rx = crate::PoolBuf::from_frame(u.lend(2048 + 300, 100).unwrap());
        let mut tx =
            crate::TxBuffer::new(crate::PoolBuf::from_frame(u.lend(2 * 2048 + 66, 1472).unwrap()));
        rx.copy_from_slice(&[7; 100]);
        assert_eq!(u.bytes(2048 + 300, 100).unwrap(), &[7; 100], "the view is the frame itself");
        assert_eq!((rx.len(), tx.capacity()), (100, 1472));
        tx.spare()[..3].copy_from_slice(b"abc");
        tx.advance(3);
        assert_eq!(u.bytes(2 * 2048 + 66, 3).unwrap(), b"abc", "sealed in place, not copied");
        assert_eq!(u.copies_in(), 0);
        assert!(tx.extend_from_slice(b"de"), "appending copies, and is counted");
        assert_eq!(u.copies_in(), 1);
        // Handed back: the frame and where the view started.
        let lease = rx.take_frame().unwrap();
        assert_eq!(u.reclaim(lease).unwrap(), (2048, 300));
        // Dropped: the frame is an orphan until the queue takes it back.
        drop(tx);
        let mut o = Vec::new();
        u.take_orphans(&mut o);
        assert_eq!(o, vec![2 * 2048]);
        u.take_orphans(&mut o);
        assert_eq!(o.len(), 1, "taken once");
        // Another UMEM's lease is not reclaimed here, and returns to its own UMEM.
        let other = Umem::new(2048, 2).unwrap();
        let foreign = other.lend(0, 10).unwrap();
        let back = u.reclaim(foreign).unwrap_err();
        drop(back);
        let mut o = Vec::new();
        other.take_orphans(&mut o);
        assert_eq!(o, vec![0]);
        // A lease outlives the queue's handle: the mapping stays until the last lease goes.
        let kept = u.lend(3 * 2048, 8).unwrap();
        drop(u);
        assert_eq!(kept.bytes().len(), 8);
    }

    #[test]
    fn xdp_frame_alloc_hands_out_each_frame_once() {
        let mut a = FrameAlloc::new(2, 3, 4096);
        let got: Vec<u64> = std::iter::from_fn(|| a.take()).collect();
        assert_eq!(got, vec![2 * 4096, 3 * 4096, 4 * 4096]);
        a.put(got[1]);
        assert_eq!(a.len(), 1);
        assert_eq!(a.take(), Some(3 * 4096));
    }
}
