//! The end-of-run invariant checks of `peregrine stress` (DESIGN.md invariants 2, 3, 4 and 5,
//! plus buffer and handle release), on plain numbers so a forged report proves they bite.

use peregrine_engine::api::EndpointStats;
use peregrine_engine::DEFAULT_MAX_BATCH;

/// Transmit buffers per flush of the workers (their default configuration).
const MAX_BATCH: u64 = DEFAULT_MAX_BATCH as u64;

/// What one endpoint reported after its shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointReport {
    /// "client" or "server".
    pub name: &'static str,
    /// `Endpoint::stats()` after the shutdown (and a second, idempotent shutdown call).
    pub stats: EndpointStats,
    /// How the first shutdown call ended (`Err` with the reason when it timed out).
    pub shutdown: Result<(), String>,
    /// Buffers the worker held at its last sleep after the shutdown (`None`: never seen idle).
    pub idle_buffers: Option<usize>,
    /// Buffers of the queue's pools still in existence after the endpoint was dropped
    /// (`None`: the endpoint could not be dropped because a thread still holds it).
    pub buffers_after_drop: Option<usize>,
}

/// What the application threads saw of their writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppWrites {
    /// Writes (write, write with FIN, finish) handed to the endpoints.
    pub issued: u64,
    /// Completions seen as delivered.
    pub delivered: u64,
    /// Completions seen as cancelled.
    pub cancelled: u64,
    /// Completions seen as refused.
    pub refused: u64,
    /// Completions still unresolved after the shutdown and a bounded wait.
    pub unresolved: u64,
}

/// Everything the checks look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Client and server.
    pub endpoints: Vec<EndpointReport>,
    /// The application's own tally.
    pub app: AppWrites,
    /// Threads that did not finish in time, with the call they were in.
    pub hung_threads: Vec<String>,
    /// Violations seen during the run (a blocking call past its timeout, a slow close).
    pub during_run: Vec<String>,
}

/// Every violated invariant, one line each; empty when the run is clean.
pub fn violations(r: &Report) -> Vec<String> {
    let mut v = r.during_run.clone();
    for t in &r.hung_threads {
        v.push(format!("thread did not finish: {t}"));
    }
    let (mut writes, mut delivered, mut cancelled, mut refused) = (0, 0, 0, 0);
    for e in &r.endpoints {
        let s = &e.stats;
        let n = e.name;
        writes += s.writes;
        delivered += s.delivered;
        cancelled += s.cancelled;
        refused += s.refused;
        if let Err(why) = &e.shutdown {
            v.push(format!("{n}: shutdown failed: {why}"));
        }
        if s.completions != s.writes {
            v.push(format!("{n}: {} completions for {} writes", s.completions, s.writes));
        }
        if s.delivered + s.cancelled + s.refused != s.completions {
            v.push(format!(
                "{n}: delivered {} + cancelled {} + refused {} != completions {}",
                s.delivered, s.cancelled, s.refused, s.completions
            ));
        }
        if s.duplicate_completions != 0 {
            v.push(format!("{n}: {} duplicate completions", s.duplicate_completions));
        }
        if s.accounting_underflows != 0 {
            v.push(format!("{n}: {} accounting underflows", s.accounting_underflows));
        }
        if s.drained_signals != 1 {
            v.push(format!("{n}: drained signalled {} times (want exactly 1)", s.drained_signals));
        }
        if s.live_connections != 0 {
            v.push(format!("{n}: {} connections live after shutdown", s.live_connections));
        }
        if s.opened != s.closed {
            v.push(format!("{n}: {} connections opened but {} closed", s.opened, s.closed));
        }
        // DESIGN.md invariant 1: the flush loop is bounded (ready connections + one batch),
        // also while closes are emitted; a loop spinning on an emitted close breaks it.
        let bound = s.opened + MAX_BATCH;
        for w in &s.workers {
            if w.scheduler.max_turns_per_flush > bound {
                v.push(format!(
                    "{n}: worker {} took {} turns in one flush (bound {bound})",
                    w.index, w.scheduler.max_turns_per_flush
                ));
            }
        }
        match e.idle_buffers {
            Some(0) => {}
            Some(b) => v.push(format!("{n}: worker held {b} buffers at rest after shutdown")),
            None => v.push(format!("{n}: worker never went idle after shutdown")),
        }
        match e.buffers_after_drop {
            Some(0) => {}
            Some(b) => v.push(format!("{n}: {b} buffers still exist after the endpoint dropped")),
            None => v.push(format!("{n}: endpoint could not be dropped (a thread holds it)")),
        }
    }
    let a = &r.app;
    if a.issued != writes {
        v.push(format!("application issued {} writes, endpoints counted {writes}", a.issued));
    }
    if a.unresolved != 0 {
        v.push(format!("{} writes never completed", a.unresolved));
    }
    if a.delivered + a.cancelled + a.refused + a.unresolved != a.issued {
        v.push(format!(
            "application saw {} completions for {} writes",
            a.delivered + a.cancelled + a.refused,
            a.issued
        ));
    }
    if (a.delivered, a.cancelled, a.refused) != (delivered, cancelled, refused) {
        v.push(format!(
            "application saw delivered/cancelled/refused {}/{}/{}, endpoints counted {}/{}/{}",
            a.delivered, a.cancelled, a.refused, delivered, cancelled, refused
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Report {
        let stats = EndpointStats {
            opened: 5,
            closed: 5,
            drained_signals: 1,
            writes: 10,
            completions: 10,
            delivered: 6,
            cancelled: 3,
            refused: 1,
            ..EndpointStats::default()
        };
        let ep = |name| EndpointReport {
            name,
            stats: stats.clone(),
            shutdown: Ok(()),
            idle_buffers: Some(0),
            buffers_after_drop: Some(0),
        };
        Report {
            endpoints: vec![ep("client"), ep("server")],
            app: AppWrites { issued: 20, delivered: 12, cancelled: 6, refused: 2, unresolved: 0 },
            ..Report::default()
        }
    }

    #[test]
    fn a_clean_report_passes() {
        assert_eq!(violations(&clean()), Vec::<String>::new());
    }

    #[test]
    fn a_forged_duplicate_completion_fails() {
        let mut r = clean();
        r.endpoints[1].stats.duplicate_completions = 1;
        r.endpoints[1].stats.completions += 1;
        r.endpoints[1].stats.delivered += 1;
        let v = violations(&r);
        assert!(v.iter().any(|l| l == "server: 1 duplicate completions"), "{v:?}");
        assert!(v.iter().any(|l| l == "server: 11 completions for 10 writes"), "{v:?}");
        assert!(v.iter().any(|l| l.contains("application saw delivered")), "{v:?}");
    }

    #[test]
    fn each_invariant_is_checked() {
        type Forge = fn(&mut Report);
        let cases: Vec<(Forge, &str)> = vec![
            (|r| r.endpoints[0].stats.drained_signals = 2, "client: drained signalled 2 times"),
            (|r| r.endpoints[0].stats.drained_signals = 0, "client: drained signalled 0 times"),
            (|r| r.endpoints[0].stats.accounting_underflows = 1, "client: 1 accounting underflows"),
            (|r| r.endpoints[1].stats.live_connections = 3, "server: 3 connections live"),
            (|r| r.endpoints[1].stats.closed = 4, "server: 5 connections opened but 4 closed"),
            (|r| r.endpoints[0].stats.writes = 11, "client: 10 completions for 11 writes"),
            (|r| r.endpoints[0].idle_buffers = Some(2), "client: worker held 2 buffers at rest"),
            (|r| r.endpoints[0].idle_buffers = None, "client: worker never went idle"),
            (|r| r.endpoints[1].buffers_after_drop = Some(1), "server: 1 buffers still exist"),
            (|r| r.endpoints[1].buffers_after_drop = None, "server: endpoint could not be dropped"),
            (|r| r.endpoints[0].shutdown = Err("timed out".into()), "client: shutdown failed"),
            (|r| r.app.unresolved = 1, "1 writes never completed"),
            (
                |r| {
                    let mut w = peregrine_engine::WorkerStats::default();
                    w.scheduler.max_turns_per_flush = 70;
                    r.endpoints[0].stats.workers.push(w);
                },
                "client: worker 0 took 70 turns in one flush (bound 69)",
            ),
            (|r| r.app.issued = 21, "application issued 21 writes, endpoints counted 20"),
            (|r| r.hung_threads.push("client-2 in open_bi".into()), "thread did not finish"),
            (|r| r.during_run.push("open_bi waited 9 s".into()), "open_bi waited 9 s"),
        ];
        for (forge, want) in cases {
            let mut r = clean();
            forge(&mut r);
            let v = violations(&r);
            assert!(v.iter().any(|l| l.starts_with(want)), "want '{want}' in {v:?}");
        }
    }
}
