//! Receive-side routing in the worker: each datagram (each GRO segment) goes through the
//! [`crate::endpoint::Router`] to an owned connection, a new server connection, a stateless
//! response, or the inbox of the worker that owns it; and client connections start here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use peregrine_datapath::{Ecn, Queue};

use super::cid::WorkerCids;
use super::conn::ConnState;
use super::inbox::Command;
use super::Worker;
use crate::api::shared::ConnShared;
use crate::api::ConnError;
use crate::connection::{self, Connection};
use crate::endpoint::{AddressValidation, DatagramEvent, Incoming, Response};
use crate::scheduler::Interest;

impl<Q: Queue> Worker<Q> {
    /// Routes every datagram of the receive batch.
    pub(super) fn handle_rx(&mut self, now: Instant) {
        let mut rx = std::mem::replace(&mut self.rx, peregrine_datapath::RxBatch::new(0));
        for d in rx.iter_mut() {
            let meta = d.meta;
            for seg in d.segments_mut() {
                self.route(now, meta.src, meta.dst_ip, meta.ecn, seg, true);
            }
        }
        self.rx = rx;
    }

    /// Routes one datagram. `local`: it arrived on our queue (may be forwarded); forwarded
    /// datagrams are never forwarded again.
    pub(super) fn route(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Ecn,
        data: &mut [u8],
        local: bool,
    ) {
        match self.router.handle(now, remote, local_ip, ecn, data) {
            DatagramEvent::Known(h) | DatagramEvent::StatelessReset(h) => {
                let Some(&key) = self.by_handle.get(&h) else { return };
                if let Some(st) = self.conns.get_mut(key) {
                    st.conn.handle_datagram(now, remote, ecn, data);
                    self.stats.rx_routed += 1;
                    self.scheduler.schedule(key, Interest::Ack);
                    self.mark_dirty(key);
                }
            }
            DatagramEvent::NewConnection(incoming) => self.accept(now, incoming, data),
            DatagramEvent::Forward(w) => {
                let w = usize::from(w);
                if local && w < self.ctx.inboxes.len() && w != self.index {
                    self.stats.rx_forwarded += 1;
                    self.ctx.inboxes[w].post(Command::Datagram {
                        remote,
                        local_ip,
                        ecn,
                        data: data.to_vec(),
                    });
                } else {
                    self.stats.rx_dropped += 1;
                }
            }
            DatagramEvent::Response(r) => self.respond(r),
            DatagramEvent::Drop(_) => self.stats.rx_dropped += 1,
        }
    }

    /// Queues a stateless response (dropped when no transmit buffer is free: it is stateless).
    fn respond(&mut self, r: Response) {
        let Some(mut buf) = self.queue.alloc_tx() else { return };
        if !buf.extend_from_slice(&r.transmit.contents) {
            return;
        }
        buf.meta = r.transmit.meta();
        self.tx.push(buf);
        self.stats.responses += 1;
    }

    /// A new client's first Initial: create the server connection, or refuse it.
    fn accept(&mut self, now: Instant, incoming: Incoming, data: &mut [u8]) {
        let Some(server) = self.ctx.server.clone() else {
            self.stats.rx_dropped += 1;
            return;
        };
        if self.shutting_down || !self.ctx.accounting.open() {
            if let Some(r) = self.router.refuse(&incoming) {
                self.respond(r);
            }
            return;
        }
        let accepted = match self.router.accept(&incoming) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(worker = self.index, %e, "refusing a new connection");
                self.ctx.accounting.close();
                if let Some(r) = self.router.refuse(&incoming) {
                    self.respond(r);
                }
                return;
            }
        };
        let retry = match incoming.validation {
            AddressValidation::Retry { retry_src_cid } => {
                Some((incoming.orig_dst_cid, retry_src_cid))
            }
            _ => None,
        };
        let ci = connection::Incoming {
            dst_cid: incoming.dst_cid,
            src_cid: incoming.src_cid,
            version: incoming.version,
            retry,
        };
        let seed = self.next_seed();
        let cids = WorkerCids::new(
            (accepted.local_cid, accepted.reset_token),
            self.cid_format,
            self.index as u8,
            self.reset_key.clone(),
            seed,
        );
        let mut cfg = (*server).clone();
        cfg.transport = cfg
            .transport
            .with_rng_seed(seed)
            .fit_datapath(self.queue.capabilities().max_udp_payload);
        let conn = match Connection::server(&cfg, now, incoming.remote, ci, Box::new(cids)) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(worker = self.index, %e, "server connection setup failed");
                self.router.remove_connection(accepted.handle);
                self.ctx.accounting.close();
                return;
            }
        };
        let id = self.ctx.next_conn_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shared = Arc::new(ConnShared::new(id, self.index, incoming.remote));
        let mut st = ConnState::new(conn, shared, accepted.handle);
        self.attach_qlog(&mut st, now);
        st.conn.handle_datagram(now, incoming.remote, incoming.ecn, data);
        self.by_handle.insert(accepted.handle, id);
        self.conns.insert(id, st);
        self.stats.rx_routed += 1;
        self.scheduler.schedule(id, Interest::Ack);
        self.mark_dirty(id);
    }

    /// Starts a client connection for a handle.
    pub(super) fn connect(&mut self, now: Instant, server_name: &str, shared: Arc<ConnShared>) {
        let fail = |shared: &ConnShared, e: ConnError| {
            shared.close.mark_ended();
            shared.mail.update(|m| {
                m.handshake = Some(Err(e.clone()));
                m.error = Some(e);
                m.drained = true;
            });
        };
        let Some(client) = self.ctx.client.clone() else {
            return fail(&shared, ConnError::NotClient);
        };
        if self.shutting_down || !self.ctx.accounting.open() {
            return fail(&shared, ConnError::ShuttingDown);
        }
        let reg = match self.router.connect() {
            Ok(r) => r,
            Err(e) => {
                self.ctx.accounting.close();
                return fail(&shared, ConnError::Setup(e.to_string()));
            }
        };
        let seed = self.next_seed();
        let token = self.router.reset_token(&reg.local_cid);
        let cids = WorkerCids::new(
            (reg.local_cid, token),
            self.cid_format,
            self.index as u8,
            self.reset_key.clone(),
            seed,
        );
        let mut cfg = client;
        cfg.transport = cfg
            .transport
            .with_rng_seed(seed)
            .fit_datapath(self.queue.capabilities().max_udp_payload);
        let conn = match Connection::client(&cfg, now, shared.remote, server_name, Box::new(cids)) {
            Ok(c) => c,
            Err(e) => {
                self.router.remove_connection(reg.handle);
                self.ctx.accounting.close();
                return fail(&shared, ConnError::Setup(e.to_string()));
            }
        };
        let id = shared.id;
        let mut st = ConnState::new(conn, shared, reg.handle);
        self.attach_qlog(&mut st, now);
        self.by_handle.insert(reg.handle, id);
        self.conns.insert(id, st);
        self.scheduler.schedule(id, Interest::Data);
        self.mark_dirty(id);
    }

    /// Opens the connection's qlog file when the endpoint writes qlog.
    fn attach_qlog(&mut self, st: &mut ConnState, now: Instant) {
        if let Some(dir) = self.cfg.qlog_dir.as_deref() {
            st.qlog = super::qlog::QlogFile::open(dir, &mut st.conn, now);
        }
    }
}
