//! A counting global allocator for benchmarks ("heap allocations per packet"), kept here because
//! implementing `GlobalAlloc` takes `unsafe`, and every `unsafe` of Peregrine lives in this crate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Wraps the system allocator and counts allocations (`alloc`, `alloc_zeroed`, `realloc`).
///
/// Install it in a benchmark binary with
/// `#[global_allocator] static A: CountingAllocator = CountingAllocator::new();` and read
/// [`CountingAllocator::allocations`] before and after the measured section.
#[derive(Debug)]
pub struct CountingAllocator {
    allocs: AtomicU64,
}

impl CountingAllocator {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self { allocs: AtomicU64::new(0) }
    }

    /// Allocations made so far through this allocator.
    pub fn allocations(&self) -> u64 {
        self.allocs.load(Ordering::Relaxed)
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is the system allocator's; the counter is a relaxed atomic.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this wrapper with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_through_the_trait() {
        let a = CountingAllocator::new();
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: non-zero size layout; the pointer is freed with the same layout below.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: `p` came from `a.alloc(layout)`.
        let q = unsafe { a.realloc(p, layout, 128) };
        // SAFETY: `q` is the reallocated block of 128 bytes with the same alignment.
        unsafe { a.dealloc(q, Layout::from_size_align(128, 8).unwrap()) };
        assert_eq!(a.allocations(), 2);
    }
}
