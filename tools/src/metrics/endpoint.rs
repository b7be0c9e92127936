//! Endpoint, worker, scheduler and datapath counters of [`EndpointStats`] as Prometheus
//! families, labelled by endpoint role (`server`, `client`) and worker index.

use peregrine_engine::api::EndpointStats;

use super::Exposition;

/// Adds the counters of one endpoint, labelled `endpoint="<role>"`.
pub fn endpoint_metrics(e: &mut Exposition, role: &str, s: &EndpointStats) {
    let l = [("endpoint", role)];
    e.gauge("peregrine_connections", "Connections live now.", &l, s.live_connections as f64);
    let counters: [(&str, &str, u64); 8] = [
        ("peregrine_connections_opened_total", "Connections ever created.", s.opened),
        ("peregrine_connections_closed_total", "Connections ever removed.", s.closed),
        ("peregrine_stream_writes_total", "Stream writes handed to workers.", s.writes),
        ("peregrine_stream_write_completions_total", "Write completions delivered.", s.completions),
        ("peregrine_stream_writes_delivered_total", "Writes delivered to the peer.", s.delivered),
        (
            "peregrine_stream_writes_cancelled_total",
            "Writes accepted, then cancelled.",
            s.cancelled,
        ),
        ("peregrine_stream_writes_refused_total", "Writes refused.", s.refused),
        (
            "peregrine_accounting_underflows_total",
            "Connection removals that found the count at zero (a bug if non-zero).",
            s.accounting_underflows,
        ),
    ];
    for (name, help, v) in counters {
        e.counter(name, help, &l, v as f64);
    }
    for w in &s.workers {
        let idx = w.index.to_string();
        let l = [("endpoint", role), ("worker", idx.as_str())];
        e.gauge(
            "peregrine_worker_connections",
            "Connections a worker owns now.",
            &l,
            w.connections as f64,
        );
        e.gauge(
            "peregrine_worker_pinned",
            "1 pinned to its core, 0 pinning failed, -1 not asked.",
            &l,
            match w.pinned {
                Some(true) => 1.0,
                Some(false) => 0.0,
                None => -1.0,
            },
        );
        let q = &w.queue;
        let sc = &w.scheduler;
        let counters: [(&str, &str, u64); 28] = [
            ("peregrine_worker_iterations_total", "Worker loop iterations.", w.iterations),
            (
                "peregrine_worker_rx_routed_total",
                "Datagrams routed to owned connections.",
                w.rx_routed,
            ),
            (
                "peregrine_worker_rx_forwarded_total",
                "Datagrams forwarded to other workers.",
                w.rx_forwarded,
            ),
            ("peregrine_worker_rx_dropped_total", "Datagrams dropped by the router.", w.rx_dropped),
            (
                "peregrine_worker_stateless_responses_total",
                "Version Negotiation, Retry, reset and refusal packets sent.",
                w.responses,
            ),
            ("peregrine_worker_retries_total", "Retry packets sent.", w.retries),
            (
                "peregrine_worker_new_tokens_sent_total",
                "NEW_TOKEN tokens given to clients whose handshake was confirmed.",
                w.new_tokens_sent,
            ),
            (
                "peregrine_worker_new_tokens_accepted_total",
                "New clients admitted on a NEW_TOKEN token (no Retry).",
                w.new_tokens_accepted,
            ),
            (
                "peregrine_worker_retry_tokens_accepted_total",
                "New clients admitted on a Retry token.",
                w.retry_tokens_accepted,
            ),
            (
                "peregrine_worker_tokens_ignored_total",
                "Unusable tokens in new clients' Initials, treated as absent.",
                w.tokens_ignored,
            ),
            (
                "peregrine_worker_invalid_retry_tokens_total",
                "Initials refused with INVALID_TOKEN.",
                w.invalid_retry_tokens,
            ),
            ("peregrine_worker_commands_total", "Application commands applied.", w.commands),
            ("peregrine_worker_timeouts_total", "Timer expirations handled.", w.timeouts),
            (
                "peregrine_worker_forced_drains_total",
                "Connections dropped at the shutdown deadline.",
                w.forced_drains,
            ),
            ("peregrine_worker_tx_errors_total", "Transmit calls that failed.", w.tx_errors),
            ("peregrine_worker_rx_errors_total", "Receive calls that failed.", w.rx_errors),
            ("peregrine_scheduler_flushes_total", "Send-scheduler flushes.", sc.flushes),
            ("peregrine_scheduler_turns_total", "Connection turns in flushes.", sc.turns),
            ("peregrine_scheduler_transmits_total", "Transmit buffers built.", sc.transmits),
            ("peregrine_scheduler_datagrams_total", "Datagrams built.", sc.datagrams),
            (
                "peregrine_scheduler_limited_total",
                "Turns that stopped on a congestion, pacing or amplification limit.",
                sc.limited,
            ),
            (
                "peregrine_scheduler_pool_exhausted_total",
                "Flushes that ran out of transmit buffers.",
                sc.pool_exhausted,
            ),
            (
                "peregrine_datapath_tx_datagrams_total",
                "Datagrams handed to the datapath.",
                q.tx_datagrams,
            ),
            ("peregrine_datapath_tx_bytes_total", "Payload bytes transmitted.", q.tx_bytes),
            ("peregrine_datapath_tx_calls_total", "Datapath transmit calls.", q.tx_calls),
            (
                "peregrine_datapath_rx_datagrams_total",
                "Datagrams received from the datapath.",
                q.rx_datagrams,
            ),
            ("peregrine_datapath_rx_bytes_total", "Payload bytes received.", q.rx_bytes),
            ("peregrine_datapath_rx_calls_total", "Datapath receive calls.", q.rx_calls),
        ];
        for (name, help, v) in counters {
            e.counter(name, help, &l, v as f64);
        }
        e.counter(
            "peregrine_datapath_rx_dropped_total",
            "Datagrams the datapath dropped on receive.",
            &l,
            q.rx_dropped as f64,
        );
        e.counter(
            "peregrine_datapath_rx_bad_checksum_total",
            "Received frames dropped for a bad IPv4 or UDP checksum (AF_XDP).",
            &l,
            q.rx_bad_checksum as f64,
        );
        e.counter(
            "peregrine_datapath_rx_malformed_total",
            "Received frames for our port dropped as malformed or unsupported (AF_XDP).",
            &l,
            q.rx_malformed as f64,
        );
        e.counter(
            "peregrine_datapath_rx_csum_partial_total",
            "Received datagrams accepted with a partial UDP checksum (AF_XDP, veth peers).",
            &l,
            q.rx_csum_partial as f64,
        );
        e.counter(
            "peregrine_datapath_tx_errors_total",
            "Datapath transmit errors.",
            &l,
            q.tx_errors as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_engine::WorkerStats;

    #[test]
    fn every_worker_is_labelled() {
        let mut s = EndpointStats { opened: 3, ..Default::default() };
        for i in 0..2 {
            let mut w = WorkerStats { index: i, ..Default::default() };
            w.queue.rx_datagrams = 10 + i as u64;
            s.workers.push(w);
        }
        let mut e = Exposition::new();
        endpoint_metrics(&mut e, "server", &s);
        let text = e.render();
        assert!(text.contains("peregrine_connections_opened_total{endpoint=\"server\"} 3\n"));
        assert!(text.contains(
            "peregrine_datapath_rx_datagrams_total{endpoint=\"server\",worker=\"1\"} 11\n"
        ));
        assert_eq!(text.matches("# TYPE peregrine_datapath_rx_datagrams_total counter").count(), 1);
    }
}
