//! `peregrine server --datapath xdp` behind a veth pair left with its default offloads: the
//! kernel-UDP client's side keeps transmit checksum offload ON, so its kernel sends UDP with
//! partial checksums (only the pseudo-header sum; CHECKSUM_PARTIAL) that no NIC finishes. The
//! server must still serve the client byte-exact, count those datagrams
//! (`peregrine_datapath_rx_csum_partial_total` > 0) and say once on stderr that it accepts
//! them. Before partial checksums were accepted every such frame was dropped as a bad
//! checksum and the client timed out. Needs root; skips with the reason otherwise.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod support;

use support::{run_bounded, BIN};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns.sh")
}

/// Why this test cannot run here, if it cannot.
fn missing_capability() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (AF_XDP and network namespaces need it)".into());
    }
    for tool in ["ip", "ethtool"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// The namespaces; taken down on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).args(["down", &self.0]).output();
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of `r`, read on a thread.
fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The sum over workers of metric `name` in the server's exposition at `addr`, which listens
/// inside namespace `ns`.
fn metric(ns: &str, addr: &str, name: &str) -> f64 {
    let addr = addr.to_owned();
    let body = peregrine_datapath::netns::run_in(ns, move || {
        let mut s = TcpStream::connect(&addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok::<_, std::io::Error>(body)
    })
    .expect("enter namespace")
    .expect("scrape metrics");
    let values: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(!values.is_empty(), "no {name} in the exposition:\n{body}");
    values.iter().sum()
}

#[test]
fn xdp_server_serves_a_client_whose_veth_leaves_checksums_partial() {
    if let Some(why) = missing_capability() {
        println!("skipping: {why}");
        return;
    }
    let name = format!("pgp{}", std::process::id() % 100_000);
    let out = Command::new("bash").arg(script()).args(["up", &name]).output().unwrap();
    assert!(out.status.success(), "netns.sh up: {}", String::from_utf8_lossy(&out.stderr));
    let net = Netns(name.clone());
    let (ns_a, ns_b) = (format!("{name}a"), format!("{name}b"));
    let (if_a, if_b) = (format!("{name}a0"), format!("{name}b0"));
    // The client's end back to the veth default: transmit checksum offload on.
    let st = Command::new("ip")
        .args(["netns", "exec", &ns_b, "ethtool", "-K", &if_b, "tx", "on"])
        .output()
        .unwrap();
    assert!(st.status.success(), "ethtool -K tx on: {}", String::from_utf8_lossy(&st.stderr));

    let dir = std::env::temp_dir().join(format!("peregrine-xdp-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    let data: Vec<u8> =
        (0..(1 << 20)).map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(root.join("f.bin"), &data).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["10.203.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();

    let mut server = Killed(
        Command::new("ip")
            .args(["netns", "exec", &ns_a, BIN, "server", "--listen", "10.203.0.1:0"])
            .arg("--cert")
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"))
            .arg("--root")
            .arg(&root)
            .args(["--datapath", "xdp", "--interface", &if_a, "--ring-size", "1024"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out_rx = support::lines(server.0.stdout.take().unwrap());
    let err_rx = lines(server.0.stderr.take().unwrap());
    let first = out_rx.recv_timeout(Duration::from_secs(20)).expect("server printed its address");
    let addr = first.strip_prefix("listening on ").expect("listening line").to_owned();
    let m = out_rx.recv_timeout(Duration::from_secs(5)).expect("metrics line");
    let metrics = m.strip_prefix("metrics on http://").expect("metrics line").to_owned();
    let metrics = metrics.trim_end_matches("/metrics").to_owned();
    let partial = "peregrine_datapath_rx_csum_partial_total";
    assert_eq!(metric(&ns_a, &metrics, partial), 0.0, "nothing received yet");

    let port = addr.rsplit(':').next().unwrap();
    let out_dir = dir.join("out");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns_b, BIN, "client", "--ca"])
        .arg(dir.join("cert.pem"))
        .arg("--output")
        .arg(&out_dir)
        .arg(format!("https://10.203.0.1:{port}/f.bin"));
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "client: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(out_dir.join("f.bin")).unwrap() == data, "file differs");

    let n = metric(&ns_a, &metrics, partial);
    println!("{partial} = {n}");
    assert!(n > 0.0, "the client's datagrams arrived with partial checksums");
    let bad = metric(&ns_a, &metrics, "peregrine_datapath_rx_bad_checksum_total");
    assert_eq!(bad, 0.0, "no datagram was dropped as a bad checksum");
    // The server said so once, on stderr (it polls its counters every 50 ms).
    let note = err_rx.recv_timeout(Duration::from_secs(5)).expect("a note on stderr");
    assert!(note.contains("partial checksums"), "{note}");
    drop(server);
    drop(net);
    let _ = std::fs::remove_dir_all(&dir);
}
