//! `peregrine server --datapath xdp` behind a veth pair left with its default offloads: the
//! kernel-UDP client's side keeps transmit checksum offload ON, so its kernel sends UDP with
//! partial checksums (only the pseudo-header sum; CHECKSUM_PARTIAL) that no NIC finishes. The
//! server must still serve the client byte-exact, count those datagrams
//! (`peregrine_datapath_rx_csum_partial_total` > 0) and say once on stderr that it accepts
//! them. Before partial checksums were accepted every such frame was dropped as a bad
//! checksum and the client timed out ("no handshake within 5s"). A second test sends frames
//! whose UDP checksum is truly bad (AF_PACKET) and expects one stderr warning with the
//! `ethtool` hint, not one per frame. Needs root; skips with the reason otherwise.

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

/// A server on the XDP side of a fresh namespace pair, with its metrics endpoint.
struct Served {
    // Drop order: the server before the namespaces.
    _server: Killed,
    net: Netns,
    dir: PathBuf,
    /// Held so the server's stdout stays read.
    _out_rx: mpsc::Receiver<String>,
    err_rx: mpsc::Receiver<String>,
    port: String,
    metrics: String,
}

impl Served {
    fn ns(&self, side: &str) -> String {
        format!("{}{side}", self.net.0)
    }

    fn interface(&self, side: &str) -> String {
        format!("{}{side}0", self.net.0)
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&self.ns("a"), &self.metrics, name)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Namespaces `tag`+pid, side b's transmit checksum offload on when `offload`, and the
/// server on side a serving `data` as /f.bin.
fn serve(tag: &str, offload: bool, data: &[u8]) -> Served {
    let name = format!("{tag}{}", std::process::id() % 100_000);
    let out = Command::new("bash").arg(script()).args(["up", &name]).output().unwrap();
    assert!(out.status.success(), "netns.sh up: {}", String::from_utf8_lossy(&out.stderr));
    let net = Netns(name.clone());
    let (ns_a, ns_b) = (format!("{name}a"), format!("{name}b"));
    let (if_a, if_b) = (format!("{name}a0"), format!("{name}b0"));
    if offload {
        // The client's end back to the veth default: transmit checksum offload on.
        let st = Command::new("ip")
            .args(["netns", "exec", &ns_b, "ethtool", "-K", &if_b, "tx", "on"])
            .output()
            .unwrap();
        assert!(st.status.success(), "ethtool -K tx on: {}", String::from_utf8_lossy(&st.stderr));
    }
    let dir = std::env::temp_dir().join(format!("peregrine-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f.bin"), data).unwrap();
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
    let metrics = m.strip_prefix("metrics on http://").expect("metrics line");
    let metrics = metrics.trim_end_matches("/metrics").to_owned();
    let port = addr.rsplit(':').next().unwrap().to_owned();
    Served { _server: server, net, dir, _out_rx: out_rx, err_rx, port, metrics }
}

#[test]
fn xdp_server_serves_a_client_whose_veth_leaves_checksums_partial() {
    if let Some(why) = missing_capability() {
        println!("skipping: {why}");
        return;
    }
    let data: Vec<u8> =
        (0..(1 << 20)).map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let s = serve("pgp", true, &data);
    let partial = "peregrine_datapath_rx_csum_partial_total";
    assert_eq!(s.metric(partial), 0.0, "nothing received yet");

    let out_dir = s.dir.join("out");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &s.ns("b"), BIN, "client", "--ca"])
        .arg(s.dir.join("cert.pem"))
        .arg("--output")
        .arg(&out_dir)
        .arg(format!("https://10.203.0.1:{}/f.bin", s.port));
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "client: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(out_dir.join("f.bin")).unwrap() == data, "file differs");

    let n = s.metric(partial);
    println!("{partial} = {n}");
    assert!(n > 0.0, "the client's datagrams arrived with partial checksums");
    let bad = s.metric("peregrine_datapath_rx_bad_checksum_total");
    assert_eq!(bad, 0.0, "no datagram was dropped as a bad checksum");
    // The server said so once, on stderr (it polls its counters every 50 ms).
    let note = s.err_rx.recv_timeout(Duration::from_secs(5)).expect("a note on stderr");
    assert!(note.contains("partial checksums"), "{note}");
}

/// The MAC address of `interface` in namespace `ns`.
fn mac(ns: &str, interface: &str) -> [u8; 6] {
    let out =
        Command::new("ip").args(["-n", ns, "-o", "link", "show", interface]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let hex = text.split("link/ether ").nth(1).and_then(|t| t.split(' ').next()).unwrap();
    let mut m = [0u8; 6];
    for (b, h) in m.iter_mut().zip(hex.split(':')) {
        *b = u8::from_str_radix(h, 16).unwrap();
    }
    m
}

/// Sends `count` UDP frames from side b to `port` on side a through an AF_PACKET socket, each
/// with a UDP checksum that is neither full nor partial.
fn send_bad_checksums(s: &Served, port: u16, count: usize) {
    use peregrine_datapath::wire::{build_frame, FrameSpec, MacAddr, IPV4_HEADERS_LEN};
    let (if_b, src_mac, dst_mac) =
        (s.interface("b"), mac(&s.ns("b"), &s.interface("b")), mac(&s.ns("a"), &s.interface("a")));
    let spec = FrameSpec {
        src_mac: MacAddr(src_mac),
        dst_mac: MacAddr(dst_mac),
        vlan: None,
        src: "10.203.0.2:40000".parse().unwrap(),
        dst: format!("10.203.0.1:{port}").parse().unwrap(),
        dscp: 0,
        ecn: peregrine_datapath::Ecn::NotEct,
        hop_limit: 64,
        ipv4_ident: 1,
        ipv6_flow_label: 0,
    };
    let mut frame = vec![0u8; IPV4_HEADERS_LEN + 1200];
    frame[IPV4_HEADERS_LEN..].fill(0xc3);
    let len = build_frame(&mut frame, &spec, 1200).unwrap();
    frame[IPV4_HEADERS_LEN - 1] ^= 0x5a; // the UDP checksum's low byte
    let sent = peregrine_datapath::netns::run_in(&s.ns("b"), move || {
        let name = std::ffi::CString::new(if_b).unwrap();
        // SAFETY: plain libc calls on values that live across them; the socket is closed below.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr());
            assert!(ifindex > 0, "if_nametoindex");
            let proto = (libc::ETH_P_IP as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&dst_mac);
            let mut sent = 0;
            for _ in 0..count {
                let rc = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    len,
                    0,
                    std::ptr::from_ref(&sll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                );
                sent += usize::from(rc == len as isize);
            }
            libc::close(fd);
            sent
        }
    })
    .expect("enter namespace");
    assert_eq!(sent, count, "frames sent");
}

#[test]
fn xdp_server_warns_once_about_bad_checksums() {
    if let Some(why) = missing_capability() {
        println!("skipping: {why}");
        return;
    }
    let s = serve("pgw", false, b"x");
    let port: u16 = s.port.parse().unwrap();
    send_bad_checksums(&s, port, 5);
    // Told within a second or so (the server polls its counters every 50 ms) ...
    let line = s.err_rx.recv_timeout(Duration::from_secs(3)).expect("a warning on stderr");
    println!("{line}");
    assert!(line.contains("dropped 5 received frame(s) with a bad IPv4 or UDP checksum"), "{line}");
    assert!(line.contains("ethtool -K <peer interface> tx off"), "{line}");
    assert_eq!(s.metric("peregrine_datapath_rx_bad_checksum_total"), 5.0);
    // ... and only once.
    send_bad_checksums(&s, port, 5);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s.metric("peregrine_datapath_rx_bad_checksum_total") < 10.0 {
        assert!(std::time::Instant::now() < deadline, "the second frames were not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.err_rx.try_recv().is_err(), "a second warning");
    assert_eq!(s.metric("peregrine_datapath_rx_csum_partial_total"), 0.0);
}
