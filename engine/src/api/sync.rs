//! The blocking side of the handle API: a thread-parking executor ([`block_on`]) that runs
//! the handles' futures with a timeout.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Wakes a parked thread.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The deadline passed before the operation completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;

/// Runs `fut` to completion on this thread, parking between polls, giving up after `timeout`
/// (`None`: no limit). The future is dropped on timeout, which cancels what it waited for.
pub fn block_on<F: Future>(fut: F, timeout: Option<Duration>) -> Result<F::Output, Elapsed> {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = timeout.map(|t| crate::worker::clock::now() + t);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                let now = crate::worker::clock::now();
                if now >= d {
                    return Err(Elapsed);
                }
                std::thread::park_timeout(d - now);
            }
        }
    }
}
