//! Receive-side work of a worker: each datagram (each GRO segment) goes through the sans-IO
//! [`crate::endpoint::Endpoint`] to an owned connection, a new server connection, a stateless
//! response, or the inbox of the worker that owns it.

use std::net::{IpAddr, SocketAddr};

use peregrine_datapath::{Ecn, Queue};

use super::inbox::Inbox;
use super::Worker;
use crate::endpoint::{ConnectionHandle, Handled, Response};
use crate::handoff::Command;

impl<Q: Queue> Worker<Q> {
    /// Routes every datagram of the receive batch.
    pub(super) fn handle_rx(&mut self, now: std::time::Instant) {
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
        now: std::time::Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Ecn,
        data: &mut [u8],
        local: bool,
    ) {
        match self.endpoint.handle(now, remote, local_ip, ecn, data) {
            Handled::Connection(_) | Handled::Dropped => {}
            Handled::Accepted(h) => self.on_accepted(now, h),
            Handled::Forward(w) => {
                let w = usize::from(w);
                if local && w < self.ctx.inboxes.len() && w != self.index {
                    self.stats.rx_forwarded += 1;
                    forward(&self.ctx.inboxes[w], remote, local_ip, ecn, data);
                } else {
                    self.stats.rx_dropped += 1;
                }
            }
            Handled::Response(r) => self.respond(r),
        }
    }

    /// A server connection was created for a new client: count it (or, when a shutdown began
    /// meanwhile, close it at once) and open its qlog file.
    fn on_accepted(&mut self, now: std::time::Instant, h: ConnectionHandle) {
        let counted = !self.shutting_down && self.ctx.accounting.open();
        let qlog_dir = self.cfg.qlog_dir.clone();
        let Some(e) = self.endpoint.get_mut(h) else { return };
        e.app.counted = counted;
        if !counted {
            e.conn.close(now, crate::varint::VarInt::from_u32(0), b"shutting down");
        }
        if let Some(dir) = qlog_dir.as_deref() {
            e.app.qlog = super::qlog::QlogFile::open(dir, &mut e.conn, now);
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
}

fn forward(inbox: &Inbox, remote: SocketAddr, local_ip: Option<IpAddr>, ecn: Ecn, data: &[u8]) {
    inbox.post(Command::Datagram { remote, local_ip, ecn, data: data.to_vec() });
}
