//! A cross-thread wake-up for a worker sleeping in [`crate::Queue::wait_with`]: an `eventfd`
//! polled beside the queue's own descriptor.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Wakes a thread blocked in [`crate::Queue::wait_with`] from any other thread.
///
/// Backed by a non-blocking `eventfd`: [`Waker::wake`] adds one to its counter (one `write`),
/// the waiting side polls it together with its queue and [`Waker::reset`]s it after waking.
/// Wakes coalesce: many `wake` calls before the sleeper runs cost one wake-up.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new waker (one `eventfd`, close-on-exec, non-blocking).
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(Self { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Wakes the sleeper (or makes its next wait return at once). Never blocks: a full counter
    /// (`EAGAIN`) already means "wake".
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local u64 to our descriptor.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Clears pending wakes (call after waking, before looking for work).
    pub fn reset(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live local u64 from our descriptor.
        let _ = unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), std::mem::size_of::<u64>())
        };
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Blocks until `queue_fd` is readable (or writable, with `writable`), `waker` was woken, or
/// `timeout` passes. Clears the waker's counter when it fired. Spurious returns are allowed.
pub fn poll_with_waker(
    queue_fd: BorrowedFd<'_>,
    waker: &Waker,
    timeout: Option<Duration>,
    writable: bool,
) -> io::Result<()> {
    let mut events = libc::POLLIN;
    if writable {
        events |= libc::POLLOUT;
    }
    let mut pfds = [
        libc::pollfd { fd: queue_fd.as_raw_fd(), events, revents: 0 },
        libc::pollfd { fd: waker.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
    ];
    // Round up so that a sub-millisecond timeout still sleeps instead of spinning.
    let ms = match timeout {
        None => -1,
        Some(d) => {
            libc::c_int::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
        }
    };
    // SAFETY: `pfds` is an array of two live pollfds for the duration of the call.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if pfds[1].revents != 0 {
        waker.reset();
    }
    Ok(())
}

#[cfg(test)]
// The test measures that a wait slept or woke early, with generous bounds.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Instant;

    #[test]
    fn wake_interrupts_wait_and_coalesces() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let w = std::sync::Arc::new(Waker::new().unwrap());
        // Nothing pending: the wait times out.
        let t = Instant::now();
        poll_with_waker(sock.as_fd(), &w, Some(Duration::from_millis(20)), false).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(15));
        // Woken from another thread: returns well before the 10 s timeout.
        let w2 = w.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w2.wake();
        });
        let t = Instant::now();
        poll_with_waker(sock.as_fd(), &w, Some(Duration::from_secs(10)), false).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        h.join().unwrap();
        // Two wakes before a wait coalesce into one wake-up: the wait after it times out. (Done on
        // one thread: from another, the waiter may consume the first wake before the second.)
        w.wake();
        w.wake();
        let t = Instant::now();
        poll_with_waker(sock.as_fd(), &w, Some(Duration::from_secs(10)), false).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        let t = Instant::now();
        poll_with_waker(sock.as_fd(), &w, Some(Duration::from_millis(20)), false).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(15));
    }
}
