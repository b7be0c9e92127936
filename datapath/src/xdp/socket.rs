//! The AF_XDP socket: creation, UMEM registration, the four rings, bind (zero-copy first when
//! asked, copy mode on `EOPNOTSUPP`), wake-ups and `XDP_STATISTICS`.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::ring::Ring;
use super::umem::{self, Umem};

/// Counters the kernel keeps for one AF_XDP socket (`getsockopt(SOL_XDP, XDP_STATISTICS)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStatistics {
    /// Frames dropped by the kernel for reasons other than invalid descriptors (for example a
    /// frame larger than a UMEM frame).
    pub rx_dropped: u64,
    /// Invalid descriptors found on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors found on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full (user space too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty when woken to send.
    pub tx_ring_empty_descs: u64,
}

/// What to ask of the socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct XskParams {
    pub(crate) ifindex: u32,
    pub(crate) queue_id: u32,
    pub(crate) rx_size: u32,
    pub(crate) tx_size: u32,
    pub(crate) fill_size: u32,
    pub(crate) comp_size: u32,
    pub(crate) zero_copy: bool,
}

/// A bound AF_XDP socket and its rings. Field order matters: the rings are unmapped before the
/// socket is closed.
pub(crate) struct Xsk {
    pub(crate) rx: Ring<libc::xdp_desc>,
    pub(crate) tx: Ring<libc::xdp_desc>,
    pub(crate) fill: Ring<u64>,
    pub(crate) comp: Ring<u64>,
    fd: OwnedFd,
    /// Whether the socket was bound in zero-copy mode.
    pub(crate) zero_copy: bool,
    /// Why zero-copy is off, when it was asked for.
    pub(crate) zero_copy_missing: Option<String>,
    /// Frames one copy-mode wake-up may send, when the kernel let us raise it.
    pub(crate) tx_budget: Option<u32>,
}

/// `SOL_XDP` option (Linux 6.17+) raising how many frames one copy-mode `sendto` transmits
/// (32 otherwise).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// The budget asked for.
const COPY_TX_BUDGET: u32 = 512;

impl std::fmt::Debug for Xsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xsk")
            .field("fd", &self.fd)
            .field("zero_copy", &self.zero_copy)
            .finish_non_exhaustive()
    }
}

impl AsFd for Xsk {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `socket(AF_XDP, SOCK_RAW)`: fails with `EAFNOSUPPORT` where AF_XDP is missing and `EPERM`
/// without `CAP_NET_RAW`.
pub(crate) fn xdp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before being wrapped.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Xsk {
    /// Creates a socket, registers `umem` with it, maps its rings and binds it to
    /// `(ifindex, queue_id)` with `XDP_USE_NEED_WAKEUP`: in zero-copy mode first when
    /// `p.zero_copy`, then in copy mode if the driver refuses with `EOPNOTSUPP`.
    pub(crate) fn open(umem: &Umem, p: &XskParams) -> io::Result<Self> {
        let fd = xdp_socket()?;
        let b = fd.as_fd();
        umem.register(b).map_err(|e| ctx(e, "XDP_UMEM_REG"))?;
        let (fill, comp) = umem::fill_and_completion(b, p.fill_size, p.comp_size)
            .map_err(|e| ctx(e, "fill/completion rings"))?;
        umem::setsockopt(b, libc::XDP_RX_RING, &p.rx_size).map_err(|e| ctx(e, "XDP_RX_RING"))?;
        umem::setsockopt(b, libc::XDP_TX_RING, &p.tx_size).map_err(|e| ctx(e, "XDP_TX_RING"))?;
        let off = umem::mmap_offsets(b)?;
        let rx = Ring::map(b, libc::XDP_PGOFF_RX_RING, &off.rx, p.rx_size, false)?;
        let tx = Ring::map(b, libc::XDP_PGOFF_TX_RING, &off.tx, p.tx_size, true)?;

        let mut zero_copy_missing = None;
        let mut zero_copy = false;
        if p.zero_copy {
            match bind(b, p, libc::XDP_ZEROCOPY) {
                Ok(()) => zero_copy = true,
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    zero_copy_missing = Some("zero-copy: EOPNOTSUPP (copy mode)".to_string());
                }
                Err(e) => return Err(ctx(e, "bind (zero-copy)")),
            }
        } else {
            zero_copy_missing = Some("zero-copy: not requested (copy mode)".to_string());
        }
        if !zero_copy {
            bind(b, p, libc::XDP_COPY).map_err(|e| ctx(e, "bind (copy mode)"))?;
        }
        // Copy mode sends at most 32 frames per wake-up unless the kernel (6.17+) lets us
        // raise the budget; best effort.
        let tx_budget = (!zero_copy)
            .then(|| umem::setsockopt(b, XDP_MAX_TX_SKB_BUDGET, &COPY_TX_BUDGET).ok())
            .flatten()
            .map(|()| COPY_TX_BUDGET);
        Ok(Self { rx, tx, fill, comp, fd, zero_copy, zero_copy_missing, tx_budget })
    }

    /// Asks the kernel to process the TX ring (`sendto(MSG_DONTWAIT)`). Busy conditions
    /// (`EAGAIN`, `EBUSY`, `ENOBUFS`) are not errors: the frames stay queued for the next kick.
    pub(crate) fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: a zero-length sendto with no buffer and no address, on our socket.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(()),
            _ => Err(e),
        }
    }

    /// Asks the kernel to refill from the fill ring and deliver to the RX ring
    /// (`recvfrom(MSG_DONTWAIT)`), for drivers that set need_wakeup on the fill ring.
    pub(crate) fn kick_rx(&self) -> io::Result<()> {
        // SAFETY: a zero-length recvfrom with no buffer and no address, on our socket.
        let rc = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(()),
            _ => Err(e),
        }
    }

    /// The kernel's counters for this socket.
    pub(crate) fn statistics(&self) -> io::Result<XskStatistics> {
        let zeroed = libc::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        };
        let (s, _len) = umem::getsockopt(self.fd.as_fd(), libc::XDP_STATISTICS, zeroed)?;
        Ok(XskStatistics {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }
}

/// Binds, retrying for a while on `EBUSY`: the kernel releases a closed socket's claim on a
/// queue asynchronously, so re-opening a queue right after closing it can find it still taken.
fn bind(fd: BorrowedFd<'_>, p: &XskParams, mode: u16) -> io::Result<()> {
    let mut tries = 0;
    loop {
        match bind_once(fd, p, mode) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < BIND_BUSY_RETRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// How many times [`bind`] retries on `EBUSY`, 10 ms apart.
const BIND_BUSY_RETRIES: u32 = 100;

fn bind_once(fd: BorrowedFd<'_>, p: &XskParams, mode: u16) -> io::Result<()> {
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
        sxdp_ifindex: p.ifindex,
        sxdp_queue_id: p.queue_id,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: `sa` is a live sockaddr_xdp and the length is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&sa).cast(),
            size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Adds what failed to an error, keeping its kind and errno text.
pub(crate) fn ctx(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
