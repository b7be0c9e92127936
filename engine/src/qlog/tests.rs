//! Unit tests: every record is one RS-prefixed JSON object with the schema's field names.

use std::time::{Duration, Instant};

use super::*;
use crate::coding::Writer;
use crate::frame::{ConnectionClose, Crypto, MaxData, Padding, Stream};
use crate::varint::VarInt;

fn records(buf: &[u8]) -> Vec<serde_json::Value> {
    buf.split(|b| *b == RECORD_SEPARATOR)
        .filter(|r| !r.is_empty())
        .map(|r| {
            assert_eq!(r.last(), Some(&b'\n'), "record ends with a newline");
            serde_json::from_slice(r).expect("record is JSON")
        })
        .collect()
}

#[test]
fn header_has_the_fields_qvis_reads() {
    let h = header(Side::Server, &[0xab, 0x01], 1_700_000_000_123.5);
    assert_eq!(h[0], RECORD_SEPARATOR);
    let v = &records(&h)[0];
    assert_eq!(v["qlog_format"], "JSON-SEQ");
    assert_eq!(v["qlog_version"], "0.3");
    assert_eq!(v["trace"]["vantage_point"]["type"], "server");
    let c = &v["trace"]["common_fields"];
    assert_eq!(c["ODCID"], "ab01");
    assert_eq!(c["time_format"], "relative");
    assert_eq!(c["reference_time"].as_f64(), Some(1_700_000_000_123.5));
}

#[test]
fn packet_frames_and_events_serialize() {
    #[allow(clippy::disallowed_methods)] // a test's arbitrary origin, not the core's clock
    let t0 = Instant::now();
    let mut q = Qlog::new(t0);
    let mut buf = [0u8; 256];
    let mut w = Writer::new(&mut buf);
    Crypto { offset: VarInt::from_u32(5), data: b"abc" }.encode(&mut w).unwrap();
    let s = Stream {
        stream_id: VarInt::from_u32(4),
        offset: VarInt::from_u32(100),
        data: b"hello",
        fin: true,
        has_length: true,
    };
    s.encode(&mut w).unwrap();
    MaxData { max_data: VarInt::from_u32(9000) }.encode(&mut w).unwrap();
    ConnectionClose::application(VarInt::from_u32(7), b"b\"ye").encode(&mut w).unwrap();
    Padding { len: 3 }.encode(&mut w).unwrap();
    let n = w.len();
    q.packet(t0 + Duration::from_millis(2), true, PacketType::OneRtt, 42, 99, &buf[..n], 3);
    q.packet_lost(t0 + Duration::from_millis(3), PacketType::Initial, 1, Some("time_threshold"));
    let m = Metrics { cwnd: 12000, bytes_in_flight: 1200, ..Metrics::default() };
    q.metrics(t0 + Duration::from_millis(4), m);
    q.metrics(t0 + Duration::from_millis(5), m); // unchanged: not logged again
    q.connection_closed(t0 + Duration::from_millis(6), &CloseTrigger::IdleTimeout);
    let recs = records(&q.take());
    assert_eq!(q.pending(), 0);
    assert_eq!(recs.len(), 4);
    let p = &recs[0];
    assert_eq!(p["name"], "transport:packet_sent");
    assert_eq!(p["time"].as_f64(), Some(2.0));
    assert_eq!(p["data"]["header"]["packet_type"], "1RTT");
    assert_eq!(p["data"]["header"]["packet_number"], 42);
    assert_eq!(p["data"]["raw"]["length"], 99);
    let f = p["data"]["frames"].as_array().unwrap();
    assert_eq!(f[0]["frame_type"], "crypto");
    assert_eq!(f[0]["offset"], 5);
    assert_eq!(f[0]["length"], 3);
    assert_eq!(f[1]["frame_type"], "stream");
    assert_eq!((f[1]["stream_id"].as_u64(), f[1]["offset"].as_u64()), (Some(4), Some(100)));
    assert_eq!((f[1]["length"].as_u64(), f[1]["fin"].as_bool()), (Some(5), Some(true)));
    assert_eq!(f[2]["maximum"], 9000);
    assert_eq!(f[3]["error_space"], "application");
    assert_eq!(f[3]["error_code"], 7);
    assert_eq!(f[3]["reason"], "b\"ye");
    assert_eq!(f[4]["frame_type"], "padding");
    assert_eq!(recs[1]["data"]["trigger"], "time_threshold");
    assert_eq!(recs[2]["data"]["congestion_window"], 12000);
    assert_eq!(recs[3]["data"]["trigger"], "idle_timeout");
}
