//! qlog over the runtime on loopback: a transfer with `WorkerConfig::qlog_dir` set writes one
//! JSON-SEQ trace per side, and every record of both traces parses and agrees with the
//! transfer (packet numbers, ACKs, stream bytes, metrics, the close code).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use peregrine_engine::api::{Endpoint, EndpointConfig, WriteStatus};
use peregrine_engine::connection::TransportConfig;
use peregrine_engine::VarInt;
use serde_json::Value;

const T: Duration = Duration::from_secs(10);
const SIZE: usize = 1 << 20;
const CLOSE_CODE: u32 = 7;

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peregrine-qlog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pair(dir: Option<&Path>) -> (Endpoint, Endpoint) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut s = EndpointConfig::server(support::server_config(TransportConfig::default()));
    let mut c = EndpointConfig::client(support::client_config(TransportConfig::default()));
    s.worker.qlog_dir = dir.map(Path::to_path_buf);
    c.worker.qlog_dir = dir.map(Path::to_path_buf);
    (Endpoint::bind(any, s).unwrap(), Endpoint::bind(any, c).unwrap())
}

/// Runs the transfer: client → server `SIZE` bytes on one bidi stream, then the client closes
/// with `CLOSE_CODE`; returns once both connections are drained.
fn transfer(server: &Endpoint, client: &Endpoint) {
    let conn = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let sconn = server.accept_blocking(Some(T)).unwrap();
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let (send, _recv) = conn.open_bi_blocking(T).unwrap();
    send.write_all_blocking(data.clone(), T).unwrap();
    assert_eq!(send.finish().wait(T).unwrap(), WriteStatus::Delivered);
    let (_s, mut r) = sconn.accept_bi_blocking(T).unwrap();
    assert!(r.read_to_end_blocking(SIZE + 1, T).unwrap() == data);
    conn.close(VarInt::from_u32(CLOSE_CODE), b"done");
    assert!(conn.wait_drained(T), "client drained");
    assert!(sconn.wait_drained(T), "server drained");
}

/// Every record of a JSON-SEQ file: RS, one JSON object, newline.
fn records(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.first(), Some(&0x1e), "{}: starts with RS", path.display());
    bytes
        .split(|b| *b == 0x1e)
        .skip(1)
        .map(|r| {
            assert_eq!(r.last(), Some(&b'\n'), "record ends with a newline");
            serde_json::from_slice(r).unwrap_or_else(|e| {
                panic!("{}: bad record {e}: {}", path.display(), String::from_utf8_lossy(r))
            })
        })
        .collect()
}

/// What one trace says.
struct Trace {
    events: Vec<Value>,
    /// packet_type → packet numbers sent.
    sent: HashMap<String, BTreeSet<u64>>,
}

fn check_trace(path: &Path, vantage: &str, odcid: &str) -> Trace {
    let recs = records(path);
    let h = &recs[0];
    // The header and every event are what the qlog crate (main schema draft 13, QUIC
    // events draft 12) reads: its types reject a missing field or an unknown name.
    let seq: qlog::QlogSeq = serde_json::from_value(h.clone()).expect("a qlog 0.18 header");
    assert_eq!(seq.file_schema, qlog::QLOGFILESEQ_URI);
    assert_eq!(seq.trace.event_schemas, [qlog::events::QUIC_URI]);
    assert_eq!(h["trace"]["vantage_point"]["type"], vantage);
    let cf = &h["trace"]["common_fields"];
    assert_eq!(cf["group_id"], odcid);
    assert_eq!(cf["time_format"], "relative_to_epoch");
    assert_eq!(cf["reference_time"]["clock_type"], "monotonic");
    assert!(cf["reference_time"]["wall_clock_time"].as_str().unwrap().ends_with('Z'));
    for r in &recs[1..] {
        let _: qlog::events::Event =
            serde_json::from_value(r.clone()).unwrap_or_else(|e| panic!("{vantage}: {e}: {r}"));
    }
    let events = recs[1..].to_vec();
    let mut last_time = 0.0;
    let mut sent: HashMap<String, BTreeSet<u64>> = HashMap::new();
    let mut last_pn: HashMap<String, u64> = HashMap::new();
    for e in &events {
        let t = e["time"].as_f64().expect("time");
        assert!(t >= last_time, "{vantage}: time goes back: {t} after {last_time}");
        last_time = t;
        assert!(e["name"].as_str().is_some_and(|n| n.contains(':')), "{e}");
        if e["name"] == "quic:packet_sent" {
            let ty = e["data"]["header"]["packet_type"].as_str().unwrap().to_string();
            let pn = e["data"]["header"]["packet_number"].as_u64().unwrap();
            if let Some(prev) = last_pn.insert(ty.clone(), pn) {
                assert!(pn > prev, "{vantage}: {ty} packet number {pn} after {prev}");
            }
            assert!(e["data"]["raw"]["length"].as_u64().unwrap() > 0);
            sent.entry(ty).or_default().insert(pn);
        }
    }
    let names: BTreeSet<&str> = events.iter().filter_map(|e| e["name"].as_str()).collect();
    for n in [
        "quic:parameters_set",
        "quic:packet_sent",
        "quic:packet_received",
        "quic:recovery_metrics_updated",
        "quic:connection_closed",
    ] {
        assert!(names.contains(n), "{vantage}: no {n} event (have {names:?})");
    }
    let owners: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["name"] == "quic:parameters_set")
        .filter_map(|e| e["data"]["initiator"].as_str())
        .collect();
    assert_eq!(owners, BTreeSet::from(["local", "remote"]), "{vantage}: parameters_set owners");
    assert!(
        events.iter().any(|e| e["name"] == "quic:recovery_metrics_updated"
            && e["data"]["congestion_window"].as_u64().unwrap() > 0),
        "{vantage}: a metrics_updated with cwnd > 0"
    );
    Trace { events, sent }
}

/// Every ACK frame in the `name` events of `t` acknowledges only packet numbers that `sender`
/// logged as sent in that packet number space.
fn check_acks(t: &Trace, name: &str, sender: &Trace, who: &str) {
    let mut acked = 0;
    for e in t.events.iter().filter(|e| e["name"] == name) {
        let ty = e["data"]["header"]["packet_type"].as_str().unwrap();
        for f in e["data"]["frames"].as_array().unwrap() {
            if f["frame_type"] != "ack" {
                continue;
            }
            assert!(f["ack_delay"].as_f64().is_some(), "{f}");
            for r in f["acked_ranges"].as_array().unwrap() {
                let (lo, hi) = (r[0].as_u64().unwrap(), r[1].as_u64().unwrap());
                assert!(lo <= hi);
                for pn in lo..=hi {
                    assert!(
                        sender.sent.get(ty).is_some_and(|s| s.contains(&pn)),
                        "{who}: acked {ty} packet {pn} was never logged as sent"
                    );
                    acked += 1;
                }
            }
        }
    }
    assert!(acked > 0, "{who}: no ACK logged");
}

/// Bytes of stream `id` covered by the STREAM frames of `name` events, and the FIN offset.
fn stream_coverage(t: &Trace, name: &str) -> (u64, Option<u64>) {
    let mut ranges: BTreeMap<u64, u64> = BTreeMap::new();
    let mut fin = None;
    for e in t.events.iter().filter(|e| e["name"] == name) {
        for f in e["data"]["frames"].as_array().unwrap() {
            if f["frame_type"] == "stream" && f["stream_id"] == 0 {
                let off = f["offset"].as_u64().unwrap();
                let len = f["raw"]["payload_length"].as_u64().unwrap();
                let end = ranges.entry(off).or_insert(off);
                *end = (*end).max(off + len);
                if f["fin"] == true {
                    fin = Some(off + len);
                }
            }
        }
    }
    let (mut covered, mut upto) = (0, 0);
    for (start, end) in ranges {
        let s = start.max(upto);
        if end > s {
            covered += end - s;
            upto = end;
        }
    }
    (covered, fin)
}

fn close_event<'a>(t: &'a Trace, who: &str) -> &'a Value {
    let i = t
        .events
        .iter()
        .position(|e| e["name"] == "quic:connection_closed")
        .unwrap_or_else(|| panic!("{who}: no connection_closed"));
    let later_stream = t.events[i..].iter().any(|e| {
        e["data"]["frames"]
            .as_array()
            .is_some_and(|fs| fs.iter().any(|f| f["frame_type"] == "stream"))
    });
    assert!(!later_stream, "{who}: stream data logged after connection_closed");
    &t.events[i]
}

#[test]
fn transfer_writes_a_qlog_trace_per_side() {
    let dir = fresh_dir("transfer");
    let (server, client) = pair(Some(&dir));
    transfer(&server, &client);
    drop(client);
    drop(server);

    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let odcid = files[0].strip_suffix("_client.sqlog").expect("client trace").to_string();
    assert_eq!(files[1], format!("{odcid}_server.sqlog"));
    let c = check_trace(&dir.join(&files[0]), "client", &odcid);
    let s = check_trace(&dir.join(&files[1]), "server", &odcid);

    // ACKs a side received cover its own sent packets; ACKs it sent cover the peer's.
    check_acks(&c, "quic:packet_received", &c, "server acking the client (client trace)");
    check_acks(&s, "quic:packet_sent", &c, "server acking the client (server trace)");
    check_acks(&s, "quic:packet_received", &s, "client acking the server (server trace)");
    check_acks(&c, "quic:packet_sent", &s, "client acking the server (client trace)");

    let size = SIZE as u64;
    assert_eq!(stream_coverage(&c, "quic:packet_sent"), (size, Some(size)));
    assert_eq!(stream_coverage(&s, "quic:packet_received"), (size, Some(size)));

    let cc = close_event(&c, "client");
    assert_eq!(cc["data"]["initiator"], "local");
    assert_eq!(cc["data"]["error_code"], CLOSE_CODE);
    assert_eq!(cc["data"]["trigger"], "application");
    let sc = close_event(&s, "server");
    assert_eq!(sc["data"]["initiator"], "remote");
    assert_eq!(sc["data"]["error_code"], CLOSE_CODE);
    // The CONNECTION_CLOSE frame itself, as sent and as received.
    let close_frame = |t: &Trace, name: &str| {
        t.events.iter().filter(|e| e["name"] == name).any(|e| {
            e["data"]["frames"].as_array().unwrap().iter().any(|f| {
                f["frame_type"] == "connection_close"
                    && f["error_space"] == "application"
                    && f["error_code"] == CLOSE_CODE
            })
        })
    };
    assert!(close_frame(&c, "quic:packet_sent"), "client sent CONNECTION_CLOSE");
    assert!(close_frame(&s, "quic:packet_received"), "server received CONNECTION_CLOSE");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unwritable_qlog_dir_leaves_the_connection_working() {
    let dir = fresh_dir("unwritable").join("missing");
    let (server, client) = pair(Some(&dir));
    transfer(&server, &client);
    assert!(!dir.exists(), "nothing is created behind the user's back");
}

#[test]
fn qlog_off_writes_nothing() {
    let dir = fresh_dir("off");
    let (server, client) = pair(None);
    transfer(&server, &client);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
