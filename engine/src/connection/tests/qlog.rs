//! qlog on the simulated network: an upload over a lossy link with a key update in the middle;
//! the client's trace logs every loss the connection counted, the key update and RTT metrics
//! in virtual time, and every event of both sides' traces parses with the `qlog` crate (0.18:
//! main schema draft 13, QUIC events draft 12).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use peregrine_datapath::sim::LinkConfig;

use super::app::{dispatch, Receiver, Sender};
use super::pair::{Pair, PairConfig};
use crate::qlog::RECORD_SEPARATOR;
use crate::streams::Dir;

const BYTES: u64 = 300_000;

#[test]
fn lossy_upload_trace_has_losses_key_update_and_rtt() {
    let link = LinkConfig { loss: 0.05, ..LinkConfig::with_delay(Duration::from_millis(15)) };
    let mut pair =
        Pair::new(PairConfig { seed: 11, up: link.clone(), down: link, ..Default::default() });
    let start = pair.now();
    pair.client.enable_qlog(start);
    assert!(pair.client.qlog_enabled());
    assert!(pair.handshake(), "handshake");
    // The server exists once the client's first packet arrived: its trace starts here.
    pair.server().enable_qlog(start);
    let mut tx = Sender::new(Dir::Bi, 1, BYTES, 16 * 1024);
    let mut rx = Receiver::default();
    let mut log = Vec::new();
    let mut server_log = Vec::new();
    let mut updated = false;
    for step in 0..400_000u64 {
        // A key update requested mid-transfer (done once RFC 9001 §6 permits it).
        let more = pair.step();
        let mut ev = std::mem::take(&mut pair.client_events);
        dispatch(&mut ev, |e| tx.on_event(e));
        let mut ev = std::mem::take(&mut pair.server_events);
        dispatch(&mut ev, |e| rx.on_event(e));
        tx.pump(&mut pair.client);
        rx.pump(pair.server());
        if !updated && step > 5 {
            pair.client.initiate_key_update();
            updated = true;
        }
        log.extend(pair.client.qlog_mut().unwrap().take());
        server_log.extend(pair.server().qlog_mut().unwrap().take());
        if (rx.complete(1, BYTES) && tx.all_acked()) || !more {
            break;
        }
    }
    assert!(rx.complete(1, BYTES) && tx.all_acked(), "upload finished");
    log.extend(pair.client.qlog_mut().unwrap().take());
    server_log.extend(pair.server().qlog_mut().unwrap().take());

    // Every event of both traces is one the qlog crate's types accept: a missing or
    // mistyped field, or an unknown name, fails here.
    let mut names = HashSet::new();
    for trace in [&log, &server_log] {
        for r in trace.split(|b| *b == RECORD_SEPARATOR).skip(1) {
            let e: qlog::events::Event = serde_json::from_slice(r)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(r)));
            names.insert(serde_json::to_value(&e).unwrap()["name"].as_str().unwrap().to_owned());
        }
    }
    for n in [
        "quic:parameters_set",
        "quic:packet_sent",
        "quic:packet_received",
        "quic:packet_lost",
        "quic:recovery_metrics_updated",
        "quic:key_updated",
    ] {
        assert!(names.contains(n), "{n} in {names:?}");
    }

    let events: Vec<serde_json::Value> = log
        .split(|b| *b == RECORD_SEPARATOR)
        .skip(1)
        .map(|r| serde_json::from_slice(r).expect("record parses"))
        .collect();
    let mut last = 0.0;
    let mut sent: HashMap<String, HashSet<u64>> = HashMap::new();
    let mut lost = 0;
    for e in &events {
        let t = e["time"].as_f64().unwrap();
        assert!(t >= last, "virtual time is monotonic");
        last = t;
        let ty = || e["data"]["header"]["packet_type"].as_str().unwrap().to_string();
        let pn = || e["data"]["header"]["packet_number"].as_u64().unwrap();
        match e["name"].as_str().unwrap() {
            "quic:packet_sent" => assert!(sent.entry(ty()).or_default().insert(pn())),
            "quic:packet_lost" => {
                assert!(sent.get(&ty()).is_some_and(|s| s.contains(&pn())), "lost unsent {e}");
                lost += 1;
            }
            _ => {}
        }
    }
    let stats = pair.client.stats();
    assert!(stats.packets_lost > 0, "5% loss loses packets");
    assert_eq!(lost, stats.packets_lost, "one packet_lost per packet the connection lost");
    assert!(events.iter().any(|e| e["name"] == "quic:key_updated"
        && e["data"]["trigger"] == "local_update"
        && e["data"]["key_phase"] == 1));
    // Both directions have 15 ms of delay: every RTT sample is at least 30 ms.
    let rtts: Vec<f64> = events
        .iter()
        .filter(|e| e["name"] == "quic:recovery_metrics_updated")
        .filter_map(|e| e["data"]["min_rtt"].as_f64())
        .filter(|r| *r > 0.0)
        .collect();
    assert!(!rtts.is_empty() && rtts.iter().all(|r| *r >= 30.0), "{rtts:?}");
    // Virtual time: the trace spans the simulated run, not the wall clock.
    let span = pair.now().duration_since(start).as_secs_f64() * 1000.0;
    assert!(last <= span + 1e-6 && last > 30.0, "last event {last} ms, run {span} ms");
}
