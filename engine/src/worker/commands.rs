//! The commands a worker takes from its inbox: client connection starts, datagrams forwarded
//! by other workers, the handles' operations on connections, shutdown.

use std::sync::Arc;
use std::time::Instant;

use peregrine_datapath::Queue;

use super::app::{AppKind, AppState};
use super::handles::{refuse_op, HandleState};
use super::{Worker, MAX_COMMANDS_PER_ROUND};
use crate::endpoint::{ConnectionHandle, StartError};
use crate::handoff::shared::ConnShared;
use crate::handoff::{Command, ConnError, ConnOp, HandlerBox, MigrateError};
use crate::scheduler::CloseFlag;

impl<Q: Queue> Worker<Q> {
    /// Applies up to [`MAX_COMMANDS_PER_ROUND`] commands from the inbox.
    pub(super) fn run_commands(&mut self, now: Instant) {
        for _ in 0..MAX_COMMANDS_PER_ROUND {
            let Some(cmd) = self.inbox.pop() else { break };
            self.stats.commands += 1;
            match cmd {
                Command::Connect { server_name, conn } => self.connect(now, &server_name, conn),
                Command::ConnectWith { server_name, conn, handler } => {
                    self.connect_with(now, &server_name, conn, handler)
                }
                Command::Datagram { remote, local_ip, ecn, mut data } => {
                    self.route(now, remote, local_ip, ecn, &mut data, false);
                }
                Command::Conn { conn, op } => self.conn_op(now, &conn, op),
                Command::Shutdown { code, reason } => {
                    self.shutting_down = true;
                    self.endpoint.stop_accepting();
                    for h in self.endpoint.handles() {
                        if let Some(e) = self.endpoint.get_mut(h) {
                            e.close.request();
                            e.conn.close(now, code, &reason);
                        }
                        self.endpoint.touch(h);
                    }
                }
                Command::ForceDrain => {
                    for h in self.endpoint.handles() {
                        self.stats.forced_drains += 1;
                        self.endpoint.remove(h);
                    }
                }
                Command::Stop => {
                    self.stop = true;
                    return;
                }
            }
        }
    }

    /// Registers a client connection with the endpoint, counted in the accounting; `None`
    /// (with the reason) when it cannot start.
    fn start_client(
        &mut self,
        now: Instant,
        shared: &ConnShared,
        server_name: &str,
        close: Arc<CloseFlag>,
    ) -> Result<ConnectionHandle, ConnError> {
        if self.shutting_down || !self.ctx.accounting.open() {
            return Err(ConnError::ShuttingDown);
        }
        match self.endpoint.connect(now, shared.remote, server_name, close) {
            Ok(h) => Ok(h),
            Err(e) => {
                self.ctx.accounting.close();
                Err(match e {
                    StartError::NotClient => ConnError::NotClient,
                    StartError::ShuttingDown => ConnError::ShuttingDown,
                    other => ConnError::Setup(other.to_string()),
                })
            }
        }
    }

    /// Starts a client connection served by handles.
    fn connect(&mut self, now: Instant, server_name: &str, shared: Arc<ConnShared>) {
        let h = match self.start_client(now, &shared, server_name, shared.close.clone()) {
            Ok(h) => h,
            Err(e) => return shared.fail_start(e),
        };
        shared.set_handle(h);
        self.attach_client(now, h, AppKind::Handles(Box::new(HandleState::new(shared))));
    }

    /// Starts a client connection served by a handler on this worker.
    fn connect_with(
        &mut self,
        now: Instant,
        server_name: &str,
        shared: Arc<ConnShared>,
        mut handler: HandlerBox,
    ) {
        let h = match self.start_client(now, &shared, server_name, shared.close.clone()) {
            Ok(h) => h,
            Err(e) => {
                handler.on_start_failed(&e.to_string());
                return shared.fail_start(e);
            }
        };
        shared.set_handle(h);
        self.stats.handler_connections += 1;
        self.attach_client(now, h, AppKind::Handler(handler));
    }

    fn attach_client(&mut self, now: Instant, h: ConnectionHandle, kind: AppKind) {
        let qlog_dir = self.cfg.qlog_dir.clone();
        let Some(e) = self.endpoint.get_mut(h) else { return };
        e.app = AppState { kind, counted: true, ..AppState::default() };
        if let Some(dir) = qlog_dir.as_deref() {
            e.app.qlog = super::qlog::QlogFile::open(dir, &mut e.conn, now);
        }
    }

    /// Applies one operation of a connection's handles.
    fn conn_op(&mut self, now: Instant, shared: &ConnShared, op: ConnOp) {
        let Some(h) = shared.handle() else { return refuse_op(op) };
        if let ConnOp::Migrate { local, reply } = op {
            let r = self.migrate(now, h, local);
            reply.update(|slot| *slot = Some(r));
            self.endpoint.touch(h);
            return;
        }
        let Some(e) = self.endpoint.get_mut(h) else { return refuse_op(op) };
        match &mut e.app.kind {
            AppKind::Handles(hs) => hs.apply(&mut e.conn, now, op),
            // Only a close reaches a handler-served connection from outside.
            _ => match op {
                ConnOp::Close { code, reason } => e.conn.close(now, code, &reason),
                other => refuse_op(other),
            },
        }
        self.endpoint.touch(h);
    }

    /// Client: moves this worker's socket to `local` and the connection `h` with it (RFC 9000
    /// §9.2); the connection validates the new path and falls back on its own if validation
    /// fails (the old socket is closed, so a fallback only works where the old address still
    /// reaches us, e.g. a changed route rather than a closed port).
    fn migrate(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        local: std::net::SocketAddr,
    ) -> Result<std::net::SocketAddr, MigrateError> {
        if self.endpoint.len() != 1 {
            return Err(MigrateError::SharedSocket);
        }
        let old = self.queue.local_addr();
        let e = self.endpoint.get_mut(h).ok_or(MigrateError::Closed)?;
        e.conn.check_migration()?;
        let new = self.queue.rebind(local).map_err(|e| MigrateError::Rebind(e.to_string()))?;
        self.endpoint.set_local_port(new.port());
        let e = self.endpoint.get_mut(h).ok_or(MigrateError::Closed)?;
        if e.conn.local_address().is_none() {
            e.conn.set_local_address(old);
        }
        e.conn.migrate(now, new)?;
        tracing::debug!(worker = self.index, from = %old, to = %new, "socket rebound, migrating");
        Ok(new)
    }
}
