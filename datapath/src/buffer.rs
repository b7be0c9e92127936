//! Pooled packet buffers, batches and per-datagram metadata shared by every backend.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::xdp::FrameLease;

/// Explicit Congestion Notification codepoint (RFC 3168), the low two bits of the IP TOS /
/// traffic-class byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Ecn {
    /// Not ECN-capable transport (`00`).
    #[default]
    NotEct = 0b00,
    /// ECN-capable transport, ECT(1) (`01`).
    Ect1 = 0b01,
    /// ECN-capable transport, ECT(0) (`10`).
    Ect0 = 0b10,
    /// Congestion experienced (`11`).
    Ce = 0b11,
}

impl Ecn {
    /// The codepoint in the low two bits of a TOS / traffic-class byte.
    pub fn from_tos(tos: u8) -> Self {
        match tos & 0b11 {
            0b01 => Ecn::Ect1,
            0b10 => Ecn::Ect0,
            0b11 => Ecn::Ce,
            _ => Ecn::NotEct,
        }
    }

    /// The two-bit codepoint.
    pub fn bits(self) -> u8 {
        self as u8
    }
}

/// Metadata of a received buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMeta {
    /// The sender.
    pub src: SocketAddr,
    /// The local address the datagram was sent to, when the backend knows it
    /// ([`crate::Capabilities::pktinfo`]).
    pub dst_ip: Option<IpAddr>,
    /// ECN codepoint of the IP header (every coalesced segment carries the same one).
    pub ecn: Ecn,
    /// Size of each datagram in the buffer: the buffer holds `len / segment_size` datagrams of
    /// this size and possibly a shorter last one. Equal to the length when not coalesced.
    pub segment_size: usize,
}

/// One received buffer: a datagram, or several coalesced by GRO.
#[derive(Debug)]
pub struct RxDatagram {
    pub(crate) buf: PoolBuf,
    pub(crate) len: usize,
    /// Where it came from and how to split it.
    pub meta: RxMeta,
}

impl RxDatagram {
    /// All received bytes (every coalesced datagram back to back).
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// All received bytes, writable in place (the engine decrypts in place).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Number of datagrams in this buffer.
    pub fn segment_count(&self) -> usize {
        if self.len == 0 {
            return 1;
        }
        self.len.div_ceil(self.meta.segment_size.max(1))
    }

    /// The datagrams of this buffer, one slice each, writable in place.
    pub fn segments_mut(&mut self) -> std::slice::ChunksMut<'_, u8> {
        let seg = self.meta.segment_size.max(1);
        self.buf[..self.len].chunks_mut(seg)
    }

    /// The datagrams of this buffer, one slice each.
    pub fn segments(&self) -> std::slice::Chunks<'_, u8> {
        let seg = self.meta.segment_size.max(1);
        self.buf[..self.len].chunks(seg)
    }
}

/// A batch of received buffers, reused across calls to [`crate::Queue::recv`].
#[derive(Debug)]
pub struct RxBatch {
    pub(crate) items: Vec<RxDatagram>,
    pub(crate) capacity: usize,
}

impl RxBatch {
    /// A batch that receives up to `capacity` buffers per call (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { items: Vec::with_capacity(capacity), capacity }
    }

    /// Most buffers one receive call fills.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Received buffers.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing was received.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The received buffers.
    pub fn iter(&self) -> std::slice::Iter<'_, RxDatagram> {
        self.items.iter()
    }

    /// The received buffers, writable in place.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, RxDatagram> {
        self.items.iter_mut()
    }

    /// Total datagrams received (GRO buffers counted by segment).
    pub fn datagram_count(&self) -> usize {
        self.items.iter().map(RxDatagram::segment_count).sum()
    }

    /// Takes every received buffer out of the batch (a backend that sorts them: UMEM frames
    /// back to its fill ring, the others to their pool).
    pub(crate) fn drain_bufs(&mut self) -> impl Iterator<Item = PoolBuf> + '_ {
        self.items.drain(..).map(|d| d.buf)
    }

    /// Hands every buffer to `pool`; backends call this at the start of a receive.
    pub(crate) fn recycle_into(&mut self, pool: &mut BufferPool) {
        for d in self.items.drain(..) {
            pool.put(d.buf);
        }
    }
}

/// Metadata of a transmit buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxMeta {
    /// Where to send.
    pub dst: SocketAddr,
    /// Source address to send from (needs [`crate::Capabilities::pktinfo`]); `None` lets the
    /// kernel choose.
    pub src_ip: Option<IpAddr>,
    /// ECN codepoint to set.
    pub ecn: Ecn,
    /// GSO: the buffer holds datagrams of this size back to back (the last may be shorter).
    /// `None` sends the buffer as one datagram.
    pub segment_size: Option<usize>,
}

impl TxMeta {
    /// One plain datagram to `dst`.
    pub fn to(dst: SocketAddr) -> Self {
        Self { dst, src_ip: None, ecn: Ecn::NotEct, segment_size: None }
    }
}

/// A transmit buffer lent by a queue's pool. Write the datagram(s) into [`TxBuffer::spare`] or
/// with [`TxBuffer::extend_from_slice`], set the metadata, and push it into a [`TxBatch`].
#[derive(Debug)]
pub struct TxBuffer {
    pub(crate) buf: PoolBuf,
    pub(crate) len: usize,
    /// Destination, source, ECN and segmentation.
    pub meta: TxMeta,
}

impl TxBuffer {
    pub(crate) fn new(buf: PoolBuf) -> Self {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Self { buf, len: 0, meta: TxMeta::to(unspecified) }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total capacity.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The written bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The written bytes, writable in place (encryption happens here).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The unwritten tail; write into it, then call [`TxBuffer::advance`].
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// Marks `n` more bytes of [`TxBuffer::spare`] as written.
    ///
    /// # Panics
    /// When `n` exceeds the spare capacity (a bug in the caller, never peer-driven).
    pub fn advance(&mut self, n: usize) {
        assert!(n <= self.buf.len() - self.len, "advance past the buffer's capacity");
        self.len += n;
    }

    /// Sets the written length (e.g. to undo a partially written packet).
    ///
    /// # Panics
    /// When `len` exceeds the capacity.
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.buf.len(), "length past the buffer's capacity");
        self.len = len;
    }

    /// Appends `data`, returning false (and writing nothing) when it does not fit.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> bool {
        let end = self.len + data.len();
        if end > self.buf.len() {
            return false;
        }
        self.buf[self.len..end].copy_from_slice(data);
        self.buf.note_copy();
        self.len = end;
        true
    }

    /// Number of datagrams this buffer will become on the wire.
    pub fn segment_count(&self) -> usize {
        match self.meta.segment_size {
            Some(s) if s > 0 && self.len > 0 => self.len.div_ceil(s),
            _ => 1,
        }
    }
}

/// Transmit buffers waiting to be sent, in order.
#[derive(Debug, Default)]
pub struct TxBatch {
    pub(crate) items: std::collections::VecDeque<TxBuffer>,
}

impl TxBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a written buffer for transmit.
    pub fn push(&mut self, buf: TxBuffer) {
        self.items.push_back(buf);
    }

    /// Buffers waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Removes every waiting buffer (for example when a connection is dropped), returning them.
    pub fn drain(&mut self) -> impl Iterator<Item = TxBuffer> + '_ {
        self.items.drain(..)
    }
}

/// A buffer lent by a [`BufferPool`], or a UMEM frame lent by an AF_XDP queue. Dropping it
/// instead of handing it back frees its memory (or returns the frame to its queue's UMEM)
/// and tells the pool, so a lost buffer never shrinks the pool for good.
#[derive(Debug, Default)]
pub struct PoolBuf {
    data: Box<[u8]>,
    /// Bytes at the front that the slice view hides (0 unless a backend set it, e.g. the
    /// io_uring backend skipping the kernel's `recvmsg_out` header in a received buffer).
    start: usize,
    /// The pool's count of live buffers; `None` once handed back (or for an empty default).
    live: Option<Arc<AtomicUsize>>,
    /// When set, the bytes are this part of a UMEM frame, not `data` (AF_XDP without copies).
    frame: Option<FrameLease>,
}

impl std::ops::Deref for PoolBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.frame {
            Some(f) => f.bytes(),
            None => &self.data[self.start..],
        }
    }
}

impl std::ops::DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.frame {
            Some(f) => f.bytes_mut(),
            None => &mut self.data[self.start..],
        }
    }
}

impl PoolBuf {
    /// A buffer whose bytes are a lent UMEM frame.
    pub(crate) fn from_frame(frame: FrameLease) -> Self {
        Self { data: Box::default(), start: 0, live: None, frame: Some(frame) }
    }

    /// The UMEM frame this buffer lends, taken out of it (an empty buffer is left).
    pub(crate) fn take_frame(&mut self) -> Option<FrameLease> {
        self.frame.take()
    }

    /// Whether the bytes are a lent UMEM frame.
    pub(crate) fn is_frame(&self) -> bool {
        self.frame.is_some()
    }

    /// Hides the first `start` bytes of the whole buffer from the slice view (clamped to its
    /// size); 0 shows all of it again. Handing the buffer back to its pool resets it. (A UMEM
    /// frame's view only shrinks.)
    pub(crate) fn set_start(&mut self, start: usize) {
        match &mut self.frame {
            Some(f) => f.skip(start),
            None => self.start = start.min(self.data.len()),
        }
    }

    /// Start of the whole buffer, including any hidden front bytes (for a backend that lends
    /// the memory to the kernel).
    pub(crate) fn base_ptr(&mut self) -> *mut u8 {
        match &mut self.frame {
            Some(f) => f.bytes_mut().as_mut_ptr(),
            None => self.data.as_mut_ptr(),
        }
    }

    /// Size of the whole buffer, including any hidden front bytes.
    pub(crate) fn full_len(&self) -> usize {
        match &self.frame {
            Some(f) => f.bytes().len(),
            None => self.data.len(),
        }
    }

    /// Counts a payload copied into the buffer in user space, when it is a UMEM frame (the
    /// AF_XDP queue reports these copies).
    fn note_copy(&self) {
        if let Some(f) = &self.frame {
            f.note_copy();
        }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A free list of fixed-size buffers with an upper bound on how many exist at once.
///
/// Buffers handed back with [`BufferPool::put`] are reused; a buffer dropped elsewhere is
/// freed and no longer counts against the limit.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Box<[u8]>>,
    buf_size: usize,
    /// Buffers in existence: free plus lent out (lent ones decrement it when dropped).
    live: Arc<AtomicUsize>,
    limit: usize,
}

impl BufferPool {
    /// A pool of buffers of `buf_size` bytes, at most `limit` of them lent out or free at once.
    pub fn new(buf_size: usize, limit: usize) -> Self {
        Self {
            free: Vec::new(),
            buf_size,
            live: Arc::new(AtomicUsize::new(0)),
            limit: limit.max(1),
        }
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Buffers currently lent out.
    pub fn outstanding(&self) -> usize {
        self.live.load(Ordering::Relaxed).saturating_sub(self.free.len())
    }

    /// A handle that counts this pool's buffers still in existence from any thread, also
    /// after the pool is gone (see [`PoolTracker`]).
    pub fn tracker(&self) -> PoolTracker {
        PoolTracker { live: Arc::clone(&self.live) }
    }

    /// Lends a buffer, allocating only while fewer than `limit` exist.
    pub fn take(&mut self) -> Option<PoolBuf> {
        let data = match self.free.pop() {
            Some(b) => b,
            None if self.live.load(Ordering::Relaxed) >= self.limit => return None,
            None => {
                self.live.fetch_add(1, Ordering::Relaxed);
                vec![0u8; self.buf_size].into_boxed_slice()
            }
        };
        Some(PoolBuf { data, start: 0, live: Some(Arc::clone(&self.live)), frame: None })
    }

    /// Takes a buffer back (a buffer of another pool or size is simply freed).
    pub fn put(&mut self, mut buf: PoolBuf) {
        let ours = buf.live.as_ref().is_some_and(|l| Arc::ptr_eq(l, &self.live));
        if ours && buf.frame.is_none() && buf.data.len() == self.buf_size {
            buf.live = None;
            self.free.push(std::mem::take(&mut buf.data));
        }
    }

    /// Lends a transmit buffer.
    pub fn take_tx(&mut self) -> Option<TxBuffer> {
        self.take().map(TxBuffer::new)
    }

    /// Lends a receive buffer wrapped for a batch (length and metadata filled in by the backend).
    pub(crate) fn take_rx(&mut self, meta: RxMeta) -> Option<RxDatagram> {
        self.take().map(|buf| RxDatagram { buf, len: 0, meta })
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        // The free buffers go with the pool: only lent-out buffers still exist.
        self.live.fetch_sub(self.free.len(), Ordering::Relaxed);
    }
}

/// Counts the buffers of one [`BufferPool`] that still exist: free or lent out while the pool
/// lives, and only the lent-out ones once it is dropped. After a pool and everything that
/// borrowed from it are gone the count is 0; anything else is a leaked buffer.
#[derive(Clone, Debug)]
pub struct PoolTracker {
    live: Arc<AtomicUsize>,
}

impl PoolTracker {
    /// Buffers of the pool in existence now.
    pub fn existing(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_bounds_and_reuse() {
        let mut pool = BufferPool::new(16, 2);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert!(pool.take().is_none(), "limit must hold");
        let pa = a.as_ptr();
        pool.put(a);
        let c = pool.take().unwrap();
        assert_eq!(c.as_ptr(), pa, "freed buffer is reused, not reallocated");
        pool.put(b);
        pool.put(c);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn dropped_buffers_do_not_shrink_the_pool() {
        let mut pool = BufferPool::new(8, 2);
        let a = pool.take_tx().unwrap();
        let b = pool.take().unwrap();
        assert!(pool.take().is_none());
        drop(a);
        assert_eq!(pool.outstanding(), 1);
        let c = pool.take().expect("a dropped buffer frees its place");
        assert!(pool.take().is_none(), "still bounded");
        pool.put(b);
        pool.put(c);
        assert_eq!(pool.outstanding(), 0);
        let mut other = BufferPool::new(8, 1);
        let foreign = other.take().unwrap();
        pool.put(foreign);
        assert_eq!(other.outstanding(), 0, "a foreign buffer handed to the wrong pool is freed");
        assert_eq!(pool.outstanding(), 0);
        assert!(pool.take().is_some() && pool.take().is_some());
    }

    #[test]
    fn tracker_sees_leaks_past_the_pool() {
        let mut pool = BufferPool::new(8, 4);
        let tracker = pool.tracker();
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        pool.put(a);
        assert_eq!(tracker.existing(), 2, "one free, one lent");
        drop(pool);
        assert_eq!(tracker.existing(), 1, "the free one went with the pool, the lent one lives");
        drop(b);
        assert_eq!(tracker.existing(), 0, "nothing leaked");
    }

    #[test]
    fn hidden_front_bytes_are_reset_by_the_pool() {
        let mut pool = BufferPool::new(16, 1);
        let mut b = pool.take().unwrap();
        b[4] = 9;
        b.set_start(4);
        assert_eq!((b.len(), b.full_len(), b[0]), (12, 16, 9), "view starts after 4 bytes");
        b.set_start(100);
        assert_eq!(b.len(), 0, "clamped");
        pool.put(b);
        let b = pool.take().unwrap();
        assert_eq!(b.len(), 16, "a buffer from the pool shows all of itself");
    }

    #[test]
    fn tx_buffer_writes_and_segments() {
        let mut pool = BufferPool::new(10, 1);
        let mut t = pool.take_tx().unwrap();
        assert!(t.extend_from_slice(&[1, 2, 3, 4]));
        assert!(!t.extend_from_slice(&[0; 7]), "overflow refused");
        t.spare()[..3].copy_from_slice(&[5, 6, 7]);
        t.advance(3);
        assert_eq!(t.data(), &[1, 2, 3, 4, 5, 6, 7]);
        t.meta.segment_size = Some(3);
        assert_eq!(t.segment_count(), 3);
    }

    #[test]
    fn rx_segments_split_at_segment_size() {
        let meta = RxMeta {
            src: "127.0.0.1:1".parse().unwrap(),
            dst_ip: None,
            ecn: Ecn::Ect0,
            segment_size: 4,
        };
        let mut pool = BufferPool::new(16, 1);
        let mut d = RxDatagram { buf: pool.take().unwrap(), len: 10, meta };
        d.data_mut().copy_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let segs: Vec<&[u8]> = d.segments().collect();
        assert_eq!(segs, vec![&[0, 1, 2, 3][..], &[4, 5, 6, 7][..], &[8, 9][..]]);
        assert_eq!(d.segment_count(), 3);
    }

    #[test]
    fn ecn_from_tos() {
        assert_eq!(Ecn::from_tos(0xb8 | 0b10), Ecn::Ect0);
        assert_eq!(Ecn::from_tos(0x01), Ecn::Ect1);
        assert_eq!(Ecn::from_tos(0x03), Ecn::Ce);
        assert_eq!(Ecn::from_tos(0x00), Ecn::NotEct);
        assert_eq!(Ecn::Ce.bits(), 3);
    }
}
