//! Handing a connection's events to its application on the worker: the handles' waking cells, or
//! a handler called right here (timed, so that a handler that blocks is reported); creating
//! the application of a server connection when its handshake completes; handler timers.

use std::sync::Arc;
use std::time::Instant;

use peregrine_datapath::Queue;

use super::app::{self, AppKind};
use super::handles::HandleState;
use super::Worker;
use crate::app::ConnCtx;
use crate::connection::Event;
use crate::endpoint::ConnectionHandle;
use crate::handoff::shared::ConnShared;

impl<Q: Queue> Worker<Q> {
    /// Hands the events of connection `h` to its application.
    pub(super) fn dispatch(&mut self, h: ConnectionHandle, now: Instant) {
        let started = self.ctx.clock.now();
        let mut handler_ran = false;
        loop {
            let Some(e) = self.endpoint.get_mut(h) else { return };
            let Some(ev) = e.conn.poll_event() else { break };
            if matches!(e.app.kind, AppKind::Pending)
                && matches!(ev, Event::Connected | Event::Stream(_) | Event::DatagramReceived)
            {
                self.create_server_app(h, now);
            }
            let Some(e) = self.endpoint.get_mut(h) else { return };
            match &mut e.app.kind {
                AppKind::Pending => {}
                AppKind::Handles(hs) => hs.on_event(&mut e.conn, ev),
                AppKind::Handler(_) => {
                    handler_ran = true;
                    self.stats.handler_calls += 1;
                    if let Some((hd, mut d)) = e.app.handler_parts(h, self.index, now) {
                        app::handler_event(hd, &mut e.conn, &mut d, ev);
                    }
                }
            }
        }
        let Some(e) = self.endpoint.get_mut(h) else { return };
        match &mut e.app.kind {
            AppKind::Handles(hs) => hs.after_events(&mut e.conn),
            AppKind::Handler(_) if e.conn.is_closed() => {
                if let Some((hd, mut d)) = e.app.handler_parts(h, self.index, now) {
                    app::handler_closed(hd, &mut e.conn, &mut d);
                }
            }
            _ => {}
        }
        e.app.write_qlog(&mut e.conn);
        if handler_ran {
            self.note_handler_time(h, started);
        }
    }

    /// A server connection's handshake completed (or its first stream came, with early data):
    /// the worker's service gives it a handler, or it goes to `accept` with handles.
    fn create_server_app(&mut self, h: ConnectionHandle, now: Instant) {
        let index = self.index;
        let Some(e) = self.endpoint.get_mut(h) else { return };
        let handler = match self.service.as_mut() {
            Some(service) => {
                self.stats.handler_calls += 1;
                let mut timer = None;
                let mut cx = ConnCtx::new(&mut e.conn, h, index, now, &mut timer);
                let handler = service.on_connection(&mut cx);
                e.app.timer = timer;
                handler
            }
            None => None,
        };
        match handler {
            Some(handler) => {
                self.stats.handler_connections += 1;
                e.app.kind = AppKind::Handler(handler);
            }
            None => {
                let remote = e.conn.remote_address();
                let shared = Arc::new(ConnShared::registered(h, index, remote, e.close.clone()));
                // What `accept` returns has its handshake outcome and ALPN already.
                if e.conn.is_handshake_complete() {
                    let alpn = e.conn.alpn_protocol().map(<[u8]>::to_vec);
                    shared.mail.with(|m| {
                        super::handles::publish_datagram_state(m, &e.conn);
                        m.alpn = alpn;
                        m.handshake = Some(Ok(()));
                    });
                }
                e.app.kind = AppKind::Handles(Box::new(HandleState::new(shared.clone())));
                self.ctx.incoming.update(|q| {
                    // After shutdown began, accept yields nothing more.
                    if !q.closed {
                        q.queue.push_back(shared);
                    }
                });
            }
        }
    }

    /// Records the time one connection's handlers took this turn; reports a slow one.
    fn note_handler_time(&mut self, h: ConnectionHandle, started: Instant) {
        let took = self.ctx.clock.now().saturating_duration_since(started);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.stats.slowest_handler_us = self.stats.slowest_handler_us.max(us);
        if took > self.cfg.slow_handler {
            self.stats.slow_handlers += 1;
            tracing::warn!(
                worker = self.index,
                conn = h.0,
                took_ms = took.as_secs_f64() * 1e3,
                limit_ms = self.cfg.slow_handler.as_secs_f64() * 1e3,
                "a connection handler ran long: every connection of this worker waited"
            );
        }
    }

    /// Pushes the handler timer of `h` into the heap when it moved.
    pub(super) fn arm_app_timer(&mut self, h: ConnectionHandle) {
        let Some(e) = self.endpoint.get_mut(h) else { return };
        if let Some((at, generation)) = e.app.timer_to_arm() {
            self.app_timers.push(at, h, generation);
        }
    }

    /// Calls the handlers whose timers are due.
    pub(super) fn run_app_timers(&mut self, now: Instant) {
        while let Some((h, generation)) = self.app_timers.pop_due(now) {
            let started = self.ctx.clock.now();
            let Some(e) = self.endpoint.get_mut(h) else { continue };
            if !e.app.take_due(generation) {
                continue;
            }
            if let Some((hd, mut d)) = e.app.handler_parts(h, self.index, now) {
                self.stats.handler_calls += 1;
                app::handler_timer(hd, &mut e.conn, &mut d);
            }
            self.endpoint.touch(h);
            self.note_handler_time(h, started);
        }
    }
}
