//! A worker's inbox: the lock-free command queue that handles (and other workers, forwarding
//! datagrams) post to, and the wake-up of a sleeping worker.

use std::sync::atomic::{fence, AtomicBool, Ordering};

use crossbeam::queue::SegQueue;
use peregrine_datapath::Waker;

use crate::handoff::Command;

/// The command queue of one worker plus its wake-up.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: SegQueue<Command>,
    waker: Waker,
    sleeping: AtomicBool,
}

impl Inbox {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self { queue: SegQueue::new(), waker: Waker::new()?, sleeping: AtomicBool::new(false) })
    }

    /// Posts `cmd` and wakes the worker if it sleeps (lock-free; one `write` only when needed).
    pub(crate) fn post(&self, cmd: Command) {
        self.queue.push(cmd);
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// The next command.
    pub(crate) fn pop(&self) -> Option<Command> {
        self.queue.pop()
    }

    /// Commands waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The waker the worker sleeps on.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Announces that the worker is about to sleep; false when a command is already waiting
    /// (then it must not sleep). Pairs with the fence in [`Inbox::post`]: either the poster
    /// sees `sleeping` and wakes, or the worker sees the command.
    pub(crate) fn prepare_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The worker woke up.
    pub(crate) fn woke(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }
}
