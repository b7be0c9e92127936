//! The UMEM: the packet memory an AF_XDP socket shares with the kernel, its registration, the
//! fill and completion rings, and the free-frame allocator.
//!
//! The area is one anonymous, page-aligned `mmap` of `frame_count * frame_size` bytes, split
//! into equal frames ("chunks" in kernel terms, aligned mode). A frame is at any time owned by
//! exactly one party: user space (in a free list, or being read/written), or the kernel (posted
//! on the fill ring for receive, or on the TX ring until it shows up on the completion ring).
//! Only frames user space owns are ever turned into slices.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use super::ring::Ring;

/// A registered packet area split into frames.
pub(crate) struct Umem {
    area: NonNull<u8>,
    len: usize,
    frame_size: u32,
    frame_count: u32,
}

// SAFETY: the area is a private anonymous mapping owned by this value; frames are only
// accessed through `&self`/`&mut self` under the ownership rule of the module docs.
unsafe impl Send for Umem {}

impl std::fmt::Debug for Umem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umem")
            .field("frame_size", &self.frame_size)
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
        let area =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { area, len, frame_size, frame_count })
    }

    /// Size of each frame.
    pub(crate) fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Registers the area with socket `fd` (`XDP_UMEM_REG`, no headroom, aligned chunks).
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let reg = libc::xdp_umem_reg {
            addr: self.area.as_ptr() as u64,
            len: self.len as u64,
            chunk_size: self.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd, libc::XDP_UMEM_REG, &reg)
    }

    /// The bytes at `addr..addr + len` of the area, or `None` when out of range or crossing a
    /// frame boundary (a descriptor the kernel gave us is checked, never trusted).
    ///
    /// The caller must own the frame (it came off the RX or completion ring and was not handed
    /// back yet); the module's ownership rule guarantees the kernel is not writing it.
    pub(crate) fn bytes(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len as usize)?;
        let fs = self.frame_size as usize;
        if end > self.len || (len > 0 && start / fs != (end - 1) / fs) {
            return None;
        }
        // SAFETY: in bounds of the mapping (checked above); the frame is owned by user space
        // for as long as the borrow of `self` lasts (see the module docs).
        Some(unsafe { std::slice::from_raw_parts(self.area.as_ptr().add(start), len as usize) })
    }

    /// The whole frame starting at `addr` (a frame-aligned address from the allocator),
    /// writable.
    pub(crate) fn frame_mut(&mut self, addr: u64) -> Option<&mut [u8]> {
        let start = usize::try_from(addr).ok()?;
        let fs = self.frame_size as usize;
        if start % fs != 0 || start + fs > self.len {
            return None;
        }
        // SAFETY: in bounds and frame-aligned (checked); user space owns this frame (it came
        // from the free list) and `&mut self` makes the borrow unique.
        Some(unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add(start), fs) })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly our mapping. The socket it was registered with is closed
        // before (field order in the owner), so the kernel holds no pinned reference we rely on.
        unsafe { libc::munmap(self.area.as_ptr().cast(), self.len) };
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
        assert_eq!(u.frame_mut(2048).map(|f| f.len()), Some(2048));
        assert!(Umem::new(1000, 4).is_err());
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
