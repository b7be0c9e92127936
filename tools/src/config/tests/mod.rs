//! Unit tests of [`Settings`]: every key settable, validation errors, the TOML round trip.

use super::*;

/// A key file (64 hex digits) for the `token-key-file` example, written once per process.
fn example_key_file() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("peregrine-config-key-{}", std::process::id()));
        std::fs::write(&p, format!("{}\n", "0123456789abcdef".repeat(4))).unwrap();
        p.to_string_lossy().into_owned()
    })
}

fn example_values() -> Vec<(&'static str, &'static str)> {
    vec![
        ("datapath", "xdp"),
        ("interface", "eth0"),
        ("queues", "0-3"),
        ("workers", "4"),
        ("cores", "0-3,6"),
        ("rx-batch", "64"),
        ("tx-batch", "128"),
        ("busy-poll-us", "50"),
        ("congestion", "newreno"),
        ("initial-window", "32K"),
        ("pacing", "off"),
        ("gso", "off"),
        ("gro", "false"),
        ("mtu", "9000"),
        ("stream-window", "4M"),
        ("connection-window", "1G"),
        ("max-bidi-streams", "1000"),
        ("max-uni-streams", "0"),
        ("idle-timeout", "500ms"),
        ("handshake-timeout", "3s"),
        ("max-handshakes", "64"),
        ("retry", "always"),
        ("token-key-file", example_key_file()),
        ("cid-len", "12"),
        ("quic-lb-server-id", "0a0b"),
        ("quic-lb-config-rotation", "2"),
        ("early-data", "on"),
        ("datagrams", "on"),
        ("datagram-queue", "1024"),
        ("preferred-address", "127.0.0.2:4433"),
        ("migrate-after", "300ms"),
        ("ring-size", "2048"),
        ("xdp-mode", "native"),
        ("xdp-payload-copy", "on"),
        ("keylog-file", "/tmp/keys.log"),
        ("qlog-dir", "/tmp/qlog"),
        ("metrics-addr", "127.0.0.1:9100"),
    ]
}

#[test]
fn every_key_changes_the_settings() {
    let examples = example_values();
    assert_eq!(examples.iter().map(|(k, _)| *k).collect::<Vec<_>>(), KEYS);
    for (key, value) in examples {
        let mut s = Settings::default();
        s.set(key, value).unwrap();
        assert_ne!(s, Settings::default(), "{key} = {value} changed nothing");
    }
}

#[test]
fn typed_values() {
    let mut s = Settings::default();
    for (k, v) in example_values() {
        s.set(k, v).unwrap();
    }
    assert_eq!(s.datapath, Datapath::Xdp);
    assert_eq!(s.cores, [0, 1, 2, 3, 6]);
    assert_eq!(s.congestion, Algorithm::NewReno);
    assert_eq!(s.initial_window, 32 << 10);
    assert_eq!(s.connection_window, 1 << 30);
    assert_eq!(s.idle_timeout, Duration::from_millis(500));
    assert_eq!(s.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(s.preferred_address, Some("127.0.0.2:4433".parse().unwrap()));
    assert_eq!(s.migrate_after, Some(MigrateAfter::Time(Duration::from_millis(300))));
    s.set("migrate-after", "1M").unwrap();
    assert_eq!(s.migrate_after, Some(MigrateAfter::Bytes(1 << 20)));
    // Every spelling the engine's parser accepts is accepted here.
    for name in ["reno", "new-reno", "new_reno", "NewReno", "CUBIC", "bbr", "BBRv3"] {
        s.set("congestion", name).unwrap();
    }
    s.set("congestion", "bbr").unwrap();
    assert_eq!(s.congestion, Algorithm::Bbr);
}

#[test]
fn bad_values_name_key_value_and_range() {
    for (key, value, needle) in [
        ("workers", "0", "1..=1024"),
        ("workers", "-1", "non-negative"),
        ("mtu", "1199", "1200..=65527"),
        ("mtu", "65528", "1200..=65527"),
        ("stream-window", "0", "1K..=1G"),
        ("stream-window", "2G", "1K..=1G"),
        ("connection-window", "-5", "byte count"),
        ("idle-timeout", "30", "no unit"),
        ("idle-timeout", "2h", "outside 1ms..=1h"),
        ("idle-timeout", "1d", "unknown unit"),
        ("idle-timeout", "0s", "1ms..=1h"),
        ("cores", "3-1", "reversed"),
        ("cores", "a", "list of numbers"),
        ("congestion", "vegas", "newreno, cubic, bbr"),
        ("ring-size", "1000", "power of two"),
        ("datapath", "dpdk", "udp, uring, xdp"),
        ("metrics-addr", "localhost", "with a port"),
        ("preferred-address", "127.0.0.2", "with a port"),
        ("preferred-address", "0.0.0.0:4433", "specific address"),
        ("migrate-after", "soon", "neither a duration"),
        ("migrate-after", "2h", "1ms..=1h"),
        ("migrate-after", "0", "1..=1T"),
        ("no-such-key", "1", "unknown key"),
    ] {
        let err = Settings::default().set(key, value).unwrap_err();
        assert!(err.starts_with(&format!("{key}: ")), "{err}");
        assert!(err.contains(needle), "{key}={value}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

/// The key file: 32 raw bytes or 64 hex digits; anything else is one clear line naming the file.
#[test]
fn token_key_file_forms_and_errors() {
    let dir = std::env::temp_dir().join(format!("peregrine-config-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let raw: Vec<u8> = (1..=32).collect();
    let hex: String = raw.iter().map(|b| format!("{b:02X}")).collect();
    for (name, content) in [("raw", raw.clone()), ("hex", format!("  {hex}\r\n").into_bytes())] {
        let p = dir.join(name);
        std::fs::write(&p, &content).unwrap();
        assert_eq!(read_key_file(&p).unwrap().to_vec(), raw, "{name}");
    }
    for (name, content, needle) in [
        ("short", b"abcd".to_vec(), "holds 4 bytes: expected 32 raw bytes or 64 hex digits"),
        ("hex63", hex.as_bytes()[..63].to_vec(), "holds 63 bytes"),
        ("nothex", vec![b'g'; 64], "holds 64 bytes"),
        ("zero", vec![0; 32], "all zeros"),
        ("big", vec![b'a'; 5000], "more than 1024 bytes"),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, &content).unwrap();
        let err = Settings::default().set("token-key-file", p.to_str().unwrap()).unwrap_err();
        assert!(err.starts_with("token-key-file: ") && err.contains(needle), "{name}: {err}");
        assert!(err.contains(p.to_str().unwrap()) && !err.contains('\n'), "{err}");
    }
    let err = Settings::default().set("token-key-file", "/nonexistent/key").unwrap_err();
    assert!(err.contains("cannot read /nonexistent/key") && !err.contains('\n'), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn toml_round_trip() {
    let mut s = Settings::default();
    for (k, v) in example_values() {
        s.set(k, v).unwrap();
    }
    let text = s.to_toml();
    let mut back = Settings::default();
    back.apply_toml(&text, "t").unwrap();
    assert_eq!(back, s);
    assert_eq!(back.to_toml(), text);
    let mut d = Settings::default();
    d.apply_toml(&Settings::default().to_toml(), "t").unwrap();
    assert_eq!(d, Settings::default());
}

#[test]
fn toml_accepts_native_types_and_rejects_unknown_keys() {
    let mut s = Settings::default();
    s.apply_toml("cores = [0, 2]\nworkers = 2\npacing = false\nstream-window = 65536\n", "f")
        .unwrap();
    assert_eq!((s.cores.as_slice(), s.workers, s.pacing), (&[0u32, 2][..], 2, false));
    assert_eq!(s.stream_window, 65536);
    let err = s.apply_toml("wrokers = 2\n", "f.toml").unwrap_err();
    assert!(err.contains("unknown key 'wrokers'"), "{err}");
    let err = s.apply_toml("workers = \n", "f.toml").unwrap_err();
    assert!(err.starts_with("f.toml: invalid TOML at line 1"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let err = s.apply_toml("mtu = 1.5\n", "f.toml").unwrap_err();
    assert!(err.contains("mtu: expected"), "{err}");
    let err = s.apply_toml("[section]\nmtu = 1500\n", "f.toml").unwrap_err();
    assert!(err.contains("unknown key 'section'"), "{err}");
}

#[test]
fn every_key_is_a_flag() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ConfigArgs,
    }
    let cmd = T::command();
    for key in KEYS {
        assert!(cmd.get_arguments().any(|a| a.get_long() == Some(key)), "--{key} missing");
    }
    let mut argv = vec!["t".to_owned()];
    for (k, v) in example_values() {
        argv.push(format!("--{k}"));
        argv.push(v.to_owned());
    }
    let t = T::try_parse_from(argv).unwrap();
    assert_eq!(t.a.given().len(), KEYS.len());
    let s = t.a.resolve().unwrap();
    assert_eq!(s.ring_size, 2048);
}

#[test]
fn quic_lb_keys_build_the_cid_format() {
    let mut s = Settings::default();
    assert_eq!(s.cid_format().unwrap(), CidFormat::default());
    s.set("quic-lb-config-rotation", "3").unwrap();
    let err = s.cid_format().unwrap_err();
    assert!(err.contains("needs --quic-lb-server-id"), "{err}");
    s.set("quic-lb-server-id", "0x0A0b").unwrap();
    let f = s.cid_format().unwrap();
    assert_eq!((f.len(), f.server_id(), f.config_rotation()), (8, &[10, 11][..], 3));
    s.set("cid-len", "7").unwrap();
    let err = s.cid_format().unwrap_err();
    assert!(err.starts_with("--cid-len: ") && err.contains("7 outside 8..=20"), "{err}");
    for bad in ["", "1", "0g", "0x", "é1", &"00".repeat(15)] {
        let err = Settings::default().set("quic-lb-server-id", bad).unwrap_err();
        assert!(err.starts_with("quic-lb-server-id: ") && err.contains("in hex"), "{bad}: {err}");
    }
    for (key, bad) in [("cid-len", "5"), ("cid-len", "21"), ("quic-lb-config-rotation", "7")] {
        assert!(Settings::default().set(key, bad).is_err(), "{key} = {bad}");
    }
    // The TOML round trip keeps the configuration.
    let mut s = Settings::default();
    for (k, v) in
        [("cid-len", "10"), ("quic-lb-server-id", "ff01"), ("quic-lb-config-rotation", "1")]
    {
        s.set(k, v).unwrap();
    }
    let mut back = Settings::default();
    back.apply_toml(&s.to_toml(), "t").unwrap();
    assert_eq!(back, s);
}
