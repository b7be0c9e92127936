//! [`Connection`]: a handle to one connection owned by a worker — open and accept streams
//! (waiting for stream credit without ever waiting forever: DESIGN.md invariant 4), close,
//! stats — and [`Connecting`], the pending handshake of a client connection.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::stream::{RecvStream, SendStream};
use super::sync::block_on;
use crate::connection::ConnectionStats;
use crate::handoff::shared::{ConnShared, OpenSlot, OpenState, StreamShared};
use crate::handoff::{abandon, Command, ConnError, ConnOp, MigrateError, MigrateReply, WakingCell};
use crate::streams::Dir;
use crate::varint::VarInt;
use crate::worker::EndpointCtx;

/// A handle to a connection. Cheap to clone, `Send + Sync`; it never locks connection state.
///
/// When the last handle (including those held by its streams) is dropped, the connection is
/// closed with application code 0.
#[derive(Clone)]
pub struct Connection {
    pub(crate) shared: Arc<ConnShared>,
    pub(crate) ctx: Arc<EndpointCtx>,
    _guard: Arc<LastHandle>,
}

/// Closes the connection when the application's last handle goes.
struct LastHandle {
    shared: Arc<ConnShared>,
    ctx: Arc<EndpointCtx>,
}

impl Drop for LastHandle {
    fn drop(&mut self) {
        if self.shared.close.is_ended() || !self.shared.close.request() {
            return;
        }
        let cmd = Command::Conn {
            conn: self.shared.clone(),
            op: ConnOp::Close { code: VarInt::from_u32(0), reason: Vec::new() },
        };
        if self.ctx.stopped.load(Ordering::Acquire) {
            abandon(cmd);
        } else {
            self.ctx.inboxes[self.shared.worker].post(cmd);
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("handle", &self.shared.handle())
            .field("remote", &self.shared.remote)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn new(shared: Arc<ConnShared>, ctx: Arc<EndpointCtx>) -> Self {
        let guard = Arc::new(LastHandle { shared: shared.clone(), ctx: ctx.clone() });
        Self { shared, ctx, _guard: guard }
    }

    /// Posts a command to the owner worker; after the endpoint stopped, the command is
    /// abandoned here (its write completes as cancelled, its open fails).
    pub(crate) fn post_command(&self, cmd: Command) {
        if self.ctx.stopped.load(Ordering::Acquire) {
            abandon(cmd);
            return;
        }
        self.ctx.inboxes[self.shared.worker].post(cmd);
    }

    pub(crate) fn post(&self, op: ConnOp) {
        self.post_command(Command::Conn { conn: self.shared.clone(), op });
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.shared.remote
    }

    /// Counters as of the owner worker's last look at the connection.
    pub fn stats(&self) -> ConnectionStats {
        self.shared.mail.with(|m| {
            let mut s = m.stats;
            // Datagrams dropped in the handles' mailbox count with the connection's own.
            s.datagram_frames_dropped += m.datagrams_dropped;
            s
        })
    }

    /// The application protocol negotiated with ALPN (RFC 7301), once the handshake completed;
    /// `None` before that (a connection returned by `accept` or `Connecting::wait` has it).
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.shared.mail.with(|m| m.alpn.clone())
    }

    /// Whether 0-RTT was accepted or rejected by the server, once the handshake completed
    /// ([`crate::connection::EarlyDataState`]; `NotAttempted` without 0-RTT).
    pub fn early_data_state(&self) -> crate::connection::EarlyDataState {
        self.shared.mail.with(|m| m.early_data)
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<ConnError> {
        self.shared.mail.with(|m| m.error.clone())
    }

    /// The connection's atomic close flag, per packet number space (Initial, Handshake,
    /// 1-RTT): whether its CONNECTION_CLOSE was written there.
    pub fn close_written(&self) -> [bool; 3] {
        self.shared.close.written()
    }

    /// Whether the close is out in every space that needed it (the flush loop will not call
    /// into the connection for it again unless a packet from the peer re-arms it).
    pub fn close_emitted(&self) -> bool {
        self.shared.close.is_emitted()
    }

    /// Closes the connection with an application error code and reason. Returns at once
    /// (never waits on I/O): the close is recorded in the connection's atomic close flag and
    /// posted to the owner worker, which writes CONNECTION_CLOSE once per needed space.
    /// Idempotent.
    pub fn close(&self, code: VarInt, reason: &[u8]) {
        if self.shared.close.request() {
            self.post(ConnOp::Close { code, reason: reason.to_vec() });
        }
    }

    /// Client: moves the connection to a new local address (RFC 9000 §9.2): the owner worker
    /// rebinds its socket to `local` (port 0: a new ephemeral port; an unspecified IP: any
    /// address), sends from there with a new connection ID of the server's, and validates the
    /// new path with PATH_CHALLENGE. Returns the address bound. The connection must be the
    /// only one on its worker's socket (a client endpoint with one worker), its handshake
    /// confirmed, and the server must not have disabled active migration; the UDP datapath
    /// is the one that can rebind. Waits at most `timeout` for the worker.
    pub fn migrate(
        &self,
        local: SocketAddr,
        timeout: Duration,
    ) -> Result<SocketAddr, MigrateError> {
        let reply: MigrateReply = Arc::new(WakingCell::new(None));
        if self.shared.close.is_ended() {
            return Err(MigrateError::Closed);
        }
        self.post(ConnOp::Migrate { local, reply: reply.clone() });
        let wait = poll_fn(|cx| reply.poll(cx, |r| r.take()));
        block_on(wait, Some(timeout)).unwrap_or(Err(MigrateError::TimedOut))
    }

    /// Resolves when the connection ended, with the reason.
    pub async fn closed(&self) -> ConnError {
        let shared = self.shared.clone();
        poll_fn(move |cx| shared.mail.poll(cx, |m| m.error.clone())).await
    }

    /// Resolves when the owner worker dropped the connection (drained).
    pub async fn drained(&self) {
        let shared = self.shared.clone();
        poll_fn(move |cx| shared.mail.poll(cx, |m| m.drained.then_some(()))).await
    }

    /// Blocking [`Connection::drained`]; false when `timeout` passed first.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        block_on(self.drained(), Some(timeout)).is_ok()
    }

    fn open(&self, dir: Dir) -> Opening {
        let slot = Arc::new(WakingCell::new(OpenState::default()));
        if self.shared.close.is_ended() || self.shared.close.is_requested() {
            let e = self.close_reason().unwrap_or(ConnError::Closed);
            slot.with(|s| s.result = Some(Err(e)));
        } else {
            self.post(ConnOp::Open { dir, slot: slot.clone() });
        }
        Opening { conn: self.clone(), slot, done: false }
    }

    /// Opens a bidirectional stream, waiting for stream credit from the peer. Fails as soon
    /// as the connection ends; dropping the future cancels the open.
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), ConnError> {
        let s = self.open(Dir::Bi).await?;
        Ok((SendStream::new(self.clone(), s.clone()), RecvStream::new(self.clone(), s)))
    }

    /// Opens a unidirectional stream (see [`Connection::open_bi`]).
    pub async fn open_uni(&self) -> Result<SendStream, ConnError> {
        let s = self.open(Dir::Uni).await?;
        Ok(SendStream::new(self.clone(), s))
    }

    /// Blocking [`Connection::open_bi`], giving up after `timeout` ([`ConnError::TimedOut`]).
    pub fn open_bi_blocking(
        &self,
        timeout: Duration,
    ) -> Result<(SendStream, RecvStream), ConnError> {
        block_on(self.open_bi(), Some(timeout)).map_err(|_| ConnError::TimedOut)?
    }

    /// Blocking [`Connection::open_uni`], giving up after `timeout`.
    pub fn open_uni_blocking(&self, timeout: Duration) -> Result<SendStream, ConnError> {
        block_on(self.open_uni(), Some(timeout)).map_err(|_| ConnError::TimedOut)?
    }

    fn accept(&self, dir: Dir) -> impl Future<Output = Result<Arc<StreamShared>, ConnError>> {
        let shared = self.shared.clone();
        poll_fn(move |cx| {
            shared.mail.poll(cx, |m| match m.incoming[dir.index()].pop_front() {
                Some(s) => Some(Ok(s)),
                None => {
                    m.error.clone().map(Err).or_else(|| m.drained.then_some(Err(ConnError::Closed)))
                }
            })
        })
    }

    /// The next bidirectional stream the peer opened.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnError> {
        let s = self.accept(Dir::Bi).await?;
        Ok((SendStream::new(self.clone(), s.clone()), RecvStream::new(self.clone(), s)))
    }

    /// The next unidirectional stream the peer opened.
    pub async fn accept_uni(&self) -> Result<RecvStream, ConnError> {
        let s = self.accept(Dir::Uni).await?;
        Ok(RecvStream::new(self.clone(), s))
    }

    /// Blocking [`Connection::accept_bi`].
    pub fn accept_bi_blocking(
        &self,
        timeout: Duration,
    ) -> Result<(SendStream, RecvStream), ConnError> {
        block_on(self.accept_bi(), Some(timeout)).map_err(|_| ConnError::TimedOut)?
    }

    /// Blocking [`Connection::accept_uni`].
    pub fn accept_uni_blocking(&self, timeout: Duration) -> Result<RecvStream, ConnError> {
        block_on(self.accept_uni(), Some(timeout)).map_err(|_| ConnError::TimedOut)?
    }
}

/// A pending open. Dropping it before it resolves cancels the request; a stream the worker
/// opened in the meantime is reset and stopped.
struct Opening {
    conn: Connection,
    slot: Arc<OpenSlot>,
    done: bool,
}

impl Future for Opening {
    type Output = Result<Arc<StreamShared>, ConnError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let r = self.slot.poll(cx, |s| s.result.take());
        if r.is_ready() {
            self.done = true;
        }
        r
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let orphan = self.slot.with(|s| {
            s.cancelled = true;
            s.result.take()
        });
        if let Some(Ok(stream)) = orphan {
            self.conn.post(ConnOp::Reset { stream: stream.id, code: 0 });
            self.conn.post(ConnOp::Stop { stream: stream.id, code: 0 });
        }
    }
}

/// A client connection whose handshake is in progress.
pub struct Connecting {
    conn: Option<Connection>,
}

impl std::fmt::Debug for Connecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting").finish_non_exhaustive()
    }
}

impl Connecting {
    pub(crate) fn new(conn: Connection) -> Self {
        Self { conn: Some(conn) }
    }

    /// A handle to the connection before its handshake completed (to close it, or watch it).
    pub fn connection(&self) -> Option<Connection> {
        self.conn.clone()
    }

    /// Blocks until the handshake completes or fails, at most `timeout`.
    pub fn wait(self, timeout: Duration) -> Result<Connection, ConnError> {
        block_on(self, Some(timeout)).map_err(|_| ConnError::TimedOut)?
    }
}

impl Future for Connecting {
    type Output = Result<Connection, ConnError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(conn) = self.conn.as_ref() else { return Poll::Ready(Err(ConnError::Closed)) };
        match conn.shared.mail.poll(cx, |m| m.handshake.clone()) {
            Poll::Ready(Ok(())) => Poll::Ready(self.conn.take().ok_or(ConnError::Closed)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}
