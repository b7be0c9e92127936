//! Unit tests: every record is one RS-prefixed JSON object that the `qlog` crate (0.18: main
//! schema draft 13, QUIC events draft 12) parses into its types.

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

/// Parses one event record with the `qlog` crate's types: no field may be missing or
/// mistyped, and the event name must be one it knows.
fn typed(r: &serde_json::Value) -> qlog::events::Event {
    serde_json::from_value(r.clone()).unwrap_or_else(|e| panic!("{e}: {r}"))
}

#[test]
fn header_is_the_current_schema() {
    let h = header(Side::Server, &[0xab, 0x01], 1_705_314_600_123.0);
    assert_eq!(h[0], RECORD_SEPARATOR);
    let v = &records(&h)[0];
    let seq: qlog::QlogSeq = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(seq.file_schema, qlog::QLOGFILESEQ_URI);
    assert_eq!(seq.serialization_format, "application/qlog+json-seq");
    assert_eq!(seq.trace.event_schemas, [qlog::events::QUIC_URI]);
    assert_eq!(seq.trace.vantage_point.unwrap().ty, qlog::VantagePointType::Server);
    let c = seq.trace.common_fields.unwrap();
    assert_eq!(c.group_id.as_deref(), Some("ab01"), "the ODCID groups the trace");
    assert_eq!(c.time_format, Some(qlog::TimeFormat::RelativeToEpoch));
    assert_eq!(c.reference_time.clock_type, "monotonic");
    assert_eq!(c.reference_time.epoch, "unknown");
    assert_eq!(c.reference_time.wall_clock_time.as_deref(), Some("2024-01-15T10:30:00.123Z"));
    // The reader the crate offers for files takes it too.
    let reader = qlog::reader::QlogSeqReader::new(Box::new(std::io::Cursor::new(h)));
    assert!(reader.is_ok());
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
    for r in &recs {
        typed(r);
    }
    let p = &recs[0];
    assert_eq!(p["name"], "quic:packet_sent");
    assert_eq!(p["time"].as_f64(), Some(2.0));
    assert_eq!(p["data"]["header"]["packet_type"], "1RTT");
    assert_eq!(p["data"]["header"]["packet_number"], 42);
    assert_eq!(p["data"]["raw"]["length"], 99);
    assert_eq!(p["data"]["raw"]["payload_length"].as_u64(), Some(n as u64));
    let f = p["data"]["frames"].as_array().unwrap();
    assert_eq!(f[0]["frame_type"], "crypto");
    assert_eq!(f[0]["offset"], 5);
    assert_eq!(f[0]["raw"]["payload_length"], 3);
    assert_eq!(f[1]["frame_type"], "stream");
    assert_eq!((f[1]["stream_id"].as_u64(), f[1]["offset"].as_u64()), (Some(4), Some(100)));
    assert_eq!(
        (f[1]["raw"]["payload_length"].as_u64(), f[1]["fin"].as_bool()),
        (Some(5), Some(true))
    );
    assert_eq!(f[2]["maximum"], 9000);
    assert_eq!(f[3]["error_space"], "application");
    assert_eq!(f[3]["error_code"], 7);
    assert_eq!(f[3]["reason"], "b\"ye");
    assert_eq!(f[3]["error"], "unknown", "application errors have no qlog name here");
    assert_eq!(f[4]["frame_type"], "padding");
    assert_eq!(f[4]["raw"]["payload_length"], 3);
    assert_eq!(recs[1]["data"]["trigger"], "time_threshold");
    assert_eq!(recs[2]["data"]["congestion_window"], 12000);
    assert_eq!(recs[3]["data"]["trigger"], "idle_timeout");
}

#[test]
fn every_frame_and_close_parses_with_the_qlog_crate() {
    use crate::frame::{AckFrequency, ImmediateAck, ResetStream, StopSending};
    #[allow(clippy::disallowed_methods)] // a test's arbitrary origin, not the core's clock
    let t0 = Instant::now();
    let mut q = Qlog::new(t0);
    let mut buf = [0u8; 256];
    let mut w = Writer::new(&mut buf);
    let v = VarInt::from_u32;
    ResetStream { stream_id: v(8), error_code: v(3), final_size: v(77) }.encode(&mut w).unwrap();
    StopSending { stream_id: v(8), error_code: v(4) }.encode(&mut w).unwrap();
    let violation = crate::error::TransportErrorCode::PROTOCOL_VIOLATION;
    ConnectionClose::transport(violation, Some(0x8), b"bad").encode(&mut w).unwrap();
    ImmediateAck.encode(&mut w).unwrap();
    let freq = AckFrequency {
        sequence: v(1),
        ack_eliciting_threshold: v(9),
        request_max_ack_delay: v(25_000),
        reordering_threshold: v(2),
    };
    freq.encode(&mut w).unwrap();
    let n = w.len();
    q.packet(t0, false, PacketType::Handshake, 3, 200, &buf[..n], 3);
    for (app, code) in [(false, 0), (false, 0x7), (false, 0x178), (true, 9)] {
        let trigger = CloseTrigger::Frame {
            owner: Owner::Remote,
            application: app,
            code,
            reason: "r".into(),
        };
        q.connection_closed(t0, &trigger);
    }
    q.connection_closed(t0, &CloseTrigger::StatelessReset);
    q.key_updated(t0 + Duration::from_millis(1), Side::Client, true, 1);
    let recs = records(&q.take());
    for r in &recs {
        typed(r);
    }
    let f = recs[0]["data"]["frames"].as_array().unwrap();
    assert_eq!(
        (f[0]["frame_type"].as_str(), f[0]["error_code"].as_u64()),
        (Some("reset_stream"), Some(3))
    );
    assert_eq!(f[2]["error"], "protocol_violation");
    assert_eq!(f[2]["trigger_frame_type"], 8);
    // The ack-frequency frames have no name in the schema: unknown, by type, fields kept.
    assert_eq!(
        (f[3]["frame_type"].as_str(), f[3]["frame_type_bytes"].as_u64()),
        (Some("unknown"), Some(0x1f))
    );
    assert_eq!(
        (f[4]["frame_type"].as_str(), f[4]["frame_type_bytes"].as_u64()),
        (Some("unknown"), Some(0xaf))
    );
    assert_eq!(f[4]["ack_eliciting_threshold"], 9);
    assert_eq!(f[4]["request_max_ack_delay"], 25_000);
    assert_eq!(recs[1]["data"]["trigger"], "clean");
    assert_eq!(recs[2]["data"]["connection_error"], "frame_encoding_error");
    assert!(recs[3]["data"].get("connection_error").is_none(), "a crypto error has no name");
    assert_eq!(recs[4]["data"]["application_error"], "unknown");
    assert_eq!(recs[6]["data"]["key_phase"], 1);
}
