//! [`XdpConfig`]: which interface and queue, which port, and the sizes of everything, validated
//! when set.

use std::io;
use std::net::SocketAddr;

use super::program::XdpMode;

/// UMEM frame size for MTUs up to [`MTU_FOR_SMALL_FRAMES`] (a 1500-byte-MTU frame with room to
/// spare); larger MTUs get 4096-byte frames (see [`XdpConfig::with_frame_size`]).
pub const DEFAULT_FRAME_SIZE: u32 = 2048;
/// Largest interface MTU whose frames fit a 2048-byte UMEM frame behind the kernel's 256-byte
/// headroom (Ethernet header and one VLAN tag included).
pub const MTU_FOR_SMALL_FRAMES: u32 = 2048 - 256 - 18;
/// Default number of UMEM frames (half for receive, half for transmit): 8 MiB at 2048 bytes.
pub const DEFAULT_FRAME_COUNT: u32 = 4096;
/// Default size of each of the RX, TX, fill and completion rings (entries).
pub const DEFAULT_RING_SIZE: u32 = 2048;
/// Default descriptors handled per receive or transmit call.
pub const DEFAULT_BATCH: usize = 64;
/// Default number of segments one transmit buffer may carry (segmented in software).
pub const DEFAULT_GSO_SEGMENTS: usize = 16;
/// Default number of transmit buffers in the pool.
pub const DEFAULT_TX_POOL: usize = 128;
/// Default number of receive buffers in the pool.
pub const DEFAULT_RX_POOL: usize = 4 * DEFAULT_BATCH;
/// Default XSKMAP size (queue ids `0..64` can have a socket).
pub const DEFAULT_XSKMAP_ENTRIES: u32 = 64;

/// How an [`crate::xdp::XdpQueue`] is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    pub(crate) interface: String,
    pub(crate) queue_id: u32,
    pub(crate) bind: SocketAddr,
    pub(crate) mode: XdpMode,
    pub(crate) zero_copy: bool,
    /// `None`: follows the interface's MTU.
    pub(crate) frame_size: Option<u32>,
    pub(crate) copy_payloads: bool,
    pub(crate) frame_count: u32,
    pub(crate) ring_size: u32,
    pub(crate) rx_batch: usize,
    pub(crate) tx_batch: usize,
    pub(crate) gso_segments: usize,
    pub(crate) tx_pool: usize,
    pub(crate) rx_pool: usize,
    pub(crate) xskmap_entries: u32,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl XdpConfig {
    /// Queue 0 of `interface`, receiving UDP datagrams sent to `bind` (an unspecified IP accepts
    /// every local address of the interface and sends from the route's preferred source; port 0
    /// lets the kernel pick one). Mode [`XdpMode::Auto`], zero-copy bind requested, UMEM frames
    /// lent to the engine (no payload copy in user space), [`DEFAULT_FRAME_COUNT`] frames sized
    /// for the interface's MTU, rings of [`DEFAULT_RING_SIZE`], batches of [`DEFAULT_BATCH`].
    pub fn new(interface: &str, bind: SocketAddr) -> Self {
        Self {
            interface: interface.to_string(),
            queue_id: 0,
            bind,
            mode: XdpMode::Auto,
            zero_copy: true,
            frame_size: None,
            copy_payloads: false,
            frame_count: DEFAULT_FRAME_COUNT,
            ring_size: DEFAULT_RING_SIZE,
            rx_batch: DEFAULT_BATCH,
            tx_batch: DEFAULT_BATCH,
            gso_segments: DEFAULT_GSO_SEGMENTS,
            tx_pool: DEFAULT_TX_POOL,
            rx_pool: DEFAULT_RX_POOL,
            xskmap_entries: DEFAULT_XSKMAP_ENTRIES,
        }
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The address datagrams are received on.
    pub fn bind_addr(&self) -> SocketAddr {
        self.bind
    }

    /// Sets the address (see [`XdpConfig::new`]).
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// The NIC queue to bind (default 0). Must be below the XSKMAP size.
    pub fn with_queue_id(mut self, queue_id: u32) -> io::Result<Self> {
        if queue_id >= self.xskmap_entries {
            return Err(invalid(format!(
                "queue id {queue_id} >= XSKMAP size {}",
                self.xskmap_entries
            )));
        }
        self.queue_id = queue_id;
        Ok(self)
    }

    /// The NIC queue.
    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }

    /// How to attach the XDP program (default [`XdpMode::Auto`]: native, else generic).
    pub fn with_mode(mut self, mode: XdpMode) -> Self {
        self.mode = mode;
        self
    }

    /// The requested mode.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Whether to try `XDP_ZEROCOPY` before copy mode (default on; the outcome is in
    /// [`crate::Capabilities::zero_copy`]). This is the bind mode: whether the *kernel* copies
    /// between the UMEM and its `sk_buff`s. Whether *user space* copies is
    /// [`XdpConfig::with_payload_copy`].
    pub fn with_zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// Whether the bind asks for `XDP_ZEROCOPY` first.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Off (the default): the engine seals each datagram straight into a UMEM frame that
    /// [`crate::Queue::alloc_tx`] lends, and opens received datagrams in place in their UMEM
    /// frames, which go back to the fill ring when the engine hands the receive batch back; no
    /// payload is copied in user space. Transmit buffers then hold one datagram each (a frame
    /// has no room for a GSO train: [`crate::Capabilities::gso`] is off). On: each payload is
    /// copied once each way between pool buffers and UMEM frames, and GSO trains are split in
    /// software ([`XdpConfig::with_gso_segments`]): the older path, kept to measure against.
    pub fn with_payload_copy(mut self, on: bool) -> Self {
        self.copy_payloads = on;
        self
    }

    /// Whether payloads are copied between pool buffers and UMEM frames.
    pub fn payload_copy(&self) -> bool {
        self.copy_payloads
    }

    /// UMEM frame size: 2048 or 4096 bytes. By default it follows the interface's MTU: 2048
    /// up to an MTU of [`MTU_FOR_SMALL_FRAMES`], 4096 above (twice the memory). A frame holds
    /// one Ethernet frame (AF_XDP multi-buffer is not used), so on an MTU above about 3800
    /// the largest UDP payload is what a 4096-byte frame holds, and the queue says so in
    /// [`crate::Capabilities::missing`].
    pub fn with_frame_size(mut self, bytes: u32) -> io::Result<Self> {
        if !matches!(bytes, 2048 | 4096) {
            return Err(invalid(format!("frame size {bytes}: must be 2048 or 4096")));
        }
        self.frame_size = Some(bytes);
        Ok(self)
    }

    /// The frame size for an interface of `mtu` bytes: the one set, or the smallest that
    /// holds the MTU's frames.
    pub fn frame_size_for(&self, mtu: u32) -> u32 {
        self.frame_size.unwrap_or(if mtu <= MTU_FOR_SMALL_FRAMES { 2048 } else { 4096 })
    }

    /// Number of UMEM frames (default [`DEFAULT_FRAME_COUNT`]; 64..=1M, even): half receive,
    /// half transmit. Memory is `frame_count × frame_size`, locked by the kernel.
    pub fn with_frame_count(mut self, frames: u32) -> io::Result<Self> {
        if !(64..=1 << 20).contains(&frames) || frames % 2 != 0 {
            return Err(invalid(format!("frame count {frames}: must be even, 64..=1048576")));
        }
        self.frame_count = frames;
        Ok(self)
    }

    /// Entries of each ring (default [`DEFAULT_RING_SIZE`]; a power of two, 64..=64K). Larger
    /// rings absorb longer bursts.
    pub fn with_ring_size(mut self, entries: u32) -> io::Result<Self> {
        if !entries.is_power_of_two() || !(64..=1 << 16).contains(&entries) {
            return Err(invalid(format!("ring size {entries}: a power of two in 64..=65536")));
        }
        self.ring_size = entries;
        Ok(self)
    }

    /// Most frames taken off the RX ring per receive call (default [`DEFAULT_BATCH`],
    /// 1..=4096).
    pub fn with_rx_batch(mut self, n: usize) -> io::Result<Self> {
        self.rx_batch = check_range("rx batch", n, 1, 4096)?;
        Ok(self)
    }

    /// Most transmit buffers handled per send call (default [`DEFAULT_BATCH`], 1..=4096).
    pub fn with_tx_batch(mut self, n: usize) -> io::Result<Self> {
        self.tx_batch = check_range("tx batch", n, 1, 4096)?;
        Ok(self)
    }

    /// Most segments of one transmit buffer (default [`DEFAULT_GSO_SEGMENTS`], 1..=64). AF_XDP
    /// has no segmentation offload: the queue splits trains itself. Transmit buffers hold this
    /// many maximum-size datagrams.
    pub fn with_gso_segments(mut self, n: usize) -> io::Result<Self> {
        self.gso_segments = check_range("gso segments", n, 1, 64)?;
        Ok(self)
    }

    /// Transmit buffers in the pool (default [`DEFAULT_TX_POOL`], 1..=65536).
    pub fn with_tx_pool(mut self, n: usize) -> io::Result<Self> {
        self.tx_pool = check_range("tx pool", n, 1, 1 << 16)?;
        Ok(self)
    }

    /// Receive buffers in the pool (default [`DEFAULT_RX_POOL`], 1..=65536).
    pub fn with_rx_pool(mut self, n: usize) -> io::Result<Self> {
        self.rx_pool = check_range("rx pool", n, 1, 1 << 16)?;
        Ok(self)
    }

    /// Slots of the XSKMAP (default [`DEFAULT_XSKMAP_ENTRIES`], 1..=4096): queue ids below it
    /// can be bound.
    pub fn with_xskmap_entries(mut self, n: u32) -> io::Result<Self> {
        let n = check_range("xskmap entries", n as usize, 1, 4096)? as u32;
        if self.queue_id >= n {
            return Err(invalid(format!("queue id {} >= XSKMAP size {n}", self.queue_id)));
        }
        self.xskmap_entries = n;
        Ok(self)
    }
}

fn check_range(what: &str, n: usize, lo: usize, hi: usize) -> io::Result<usize> {
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(invalid(format!("{what} {n}: must be in {lo}..={hi}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_config_validates() {
        let c = XdpConfig::new("veth0", "10.0.0.1:4433".parse().unwrap());
        assert!(c.clone().with_frame_size(3000).is_err());
        assert!(c.clone().with_frame_size(4096).is_ok());
        assert_eq!(c.frame_size_for(1500), 2048, "frames follow the MTU");
        assert_eq!(c.frame_size_for(MTU_FOR_SMALL_FRAMES), 2048);
        assert_eq!(c.frame_size_for(MTU_FOR_SMALL_FRAMES + 1), 4096);
        assert_eq!(c.frame_size_for(9000), 4096);
        assert_eq!(c.clone().with_frame_size(4096).unwrap().frame_size_for(1500), 4096);
        assert!(c.clone().with_ring_size(1000).is_err());
        assert!(c.clone().with_ring_size(4096).is_ok());
        assert!(c.clone().with_frame_count(63).is_err());
        assert!(c.clone().with_gso_segments(0).is_err());
        assert!(c.clone().with_queue_id(64).is_err());
        let c = c.with_queue_id(3).unwrap();
        assert!(c.clone().with_xskmap_entries(3).is_err());
        assert_eq!(c.with_xskmap_entries(4).unwrap().queue_id(), 3);
    }
}
