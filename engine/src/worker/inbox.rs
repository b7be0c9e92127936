//! A worker's inbox: the lock-free command queue that handles (and other workers, forwarding
//! datagrams) post to, and the wake-up of a sleeping worker.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam::queue::SegQueue;
use peregrine_datapath::{Ecn, Waker};

use crate::api::shared::{Completer, ConnShared, OpenSlot};
use crate::streams::{Dir, StreamId};
use crate::varint::VarInt;

/// An operation on one connection, from its handles.
#[derive(Debug)]
pub(crate) enum ConnOp {
    /// Open a stream (waits for stream credit in the worker; the slot may be cancelled).
    Open { dir: Dir, slot: Arc<OpenSlot> },
    /// Write (and maybe FIN); exactly one completion through `done`.
    Write { stream: StreamId, data: Bytes, fin: bool, done: Completer },
    /// Reset the sending part.
    Reset { stream: StreamId, code: u64 },
    /// STOP_SENDING on the receiving part.
    Stop { stream: StreamId, code: u64 },
    /// Change the send priority of a stream (higher is served first).
    Priority { stream: StreamId, priority: i32 },
    /// The application read below the buffer limit: pull more data.
    ReadMore { stream: StreamId },
    /// Close the connection.
    Close { code: VarInt, reason: Vec<u8> },
}

/// A command for a worker.
#[derive(Debug)]
pub(crate) enum Command {
    /// Start a client connection.
    Connect { server_name: String, conn: Arc<ConnShared> },
    /// A datagram another worker received for one of our connections.
    Datagram { remote: SocketAddr, local_ip: Option<IpAddr>, ecn: Ecn, data: Vec<u8> },
    /// An operation on connection `id`.
    Conn { id: u64, op: ConnOp },
    /// Graceful shutdown: close every connection and refuse new ones.
    Shutdown { code: VarInt, reason: Vec<u8> },
    /// Forget every remaining connection now (the shutdown deadline passed).
    ForceDrain,
    /// Exit the thread (endpoint dropped).
    Stop,
}

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
