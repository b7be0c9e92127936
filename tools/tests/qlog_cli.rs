//! `peregrine perf --qlog-dir DIR`: one qlog trace per side, and every record of both parses
//! with the `qlog` crate 0.18 (main schema draft 13, QUIC events draft 12), the version
//! quiche and quinn write; a directory that cannot be created is one error line.

// A command, not the sans-IO core: it reads the wall clock for its deadline.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

mod support;

use support::{peregrine as run_bounded, temp_dir};

#[test]
fn perf_writes_a_qlog_trace_per_side_that_parses() {
    // Not created beforehand: perf creates it.
    let dir = temp_dir("perf").join("nested");
    let out = run_bounded(
        &["perf", "--download", "2M", "--json", "--qlog-dir", dir.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "perf failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let odcid = names[0].strip_suffix("_client.sqlog").expect("client trace");
    assert_eq!(names[1], format!("{odcid}_server.sqlog"));
    for (name, vantage) in names.iter().zip(["client", "server"]) {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let recs: Vec<serde_json::Value> = bytes
            .split(|b| *b == 0x1e)
            .skip(1)
            .map(|r| serde_json::from_slice(r).expect("every record is JSON"))
            .collect();
        // The crate's own reader takes the file; each event parses into its types (the
        // reader itself would silently fall back to untyped JSON, so each is parsed here).
        let reader = qlog::reader::QlogSeqReader::with_file(dir.join(name)).expect("header");
        assert_eq!(reader.qlog.file_schema, qlog::QLOGFILESEQ_URI);
        for r in &recs[1..] {
            let _: qlog::events::Event =
                serde_json::from_value(r.clone()).unwrap_or_else(|e| panic!("{name}: {e}: {r}"));
        }
        assert_eq!(recs[0]["serialization_format"], "application/qlog+json-seq");
        assert_eq!(recs[0]["trace"]["vantage_point"]["type"], vantage);
        assert_eq!(recs[0]["trace"]["common_fields"]["group_id"], odcid);
        let has = |n: &str| recs.iter().any(|r| r["name"] == n);
        assert!(has("quic:packet_sent") && has("quic:packet_received"), "{name}");
        assert!(has("quic:parameters_set"), "{name}");
        assert!(has("quic:connection_closed"), "{name}: the trace was flushed to its end");
        let stream_bytes: u64 = recs
            .iter()
            .filter(|r| r["name"] == "quic:packet_sent")
            .flat_map(|r| r["data"]["frames"].as_array().unwrap().clone())
            .filter(|f| f["frame_type"] == "stream")
            .map(|f| f["raw"]["payload_length"].as_u64().unwrap())
            .sum();
        if vantage == "server" {
            assert!(stream_bytes >= 2 << 20, "server sent the download: {stream_bytes}");
        }
    }
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn uncreatable_qlog_dir_is_one_error_line() {
    let out = run_bounded(
        &["perf", "--download", "1M", "--qlog-dir", "/dev/null/qlog"],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--qlog-dir") && err.contains("/dev/null/qlog"), "{err}");
}
