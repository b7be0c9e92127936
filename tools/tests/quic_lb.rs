//! Scale-out behind an existing L4 balancer (issue 16): the kernel's own nftables, in a balancer
//! namespace, routes QUIC to three `peregrine server` processes in their own namespaces by the
//! QUIC-LB server ID their connection IDs carry (`--quic-lb-server-id`), with no QUIC-specific
//! code in the balancer. Each server runs 2 workers, so inside a host the datagrams are
//! steered by the worker octet that follows the server ID. The ruleset is the README's
//! deployment recipe ("Behind a load
//! balancer"):
//!
//! - long-header packets (first byte & 0x80: Initial, 0-RTT, Handshake) by a hash of the
//!   4-tuple, so one client's handshake stays on one server;
//! - short-header packets by the server ID octet that follows the first octet of the
//!   Destination Connection ID (`@th,80,8`: UDP header 64 bits, QUIC first byte 8 bits, CID
//!   first octet 8 bits), so a client whose address or port changes keeps its server;
//! - stateless: `notrack` and `ip daddr set` per packet on the way in, `ip saddr set VIP` on
//!   the way out. With conntrack and `dnat`, the rule would be decided on a flow's first packet
//!   only; stateless, every packet is routed by the rules and nothing is kept per client.
//!
//! Topology (all made here, deleted on drop, even when the test fails):
//!
//! ```text
//!  client ns ── veth ── balancer ns ── veth ── server ns 0 (10.211.1.2, server ID 01)
//!  10.211.0.1           VIP 10.211.100.1:4433 ── server ns 1 (10.211.2.2, server ID 02)
//!                                          └─── server ns 2 (10.211.3.2, server ID 03)
//! ```
//!
//! Needs root, `ip` and `nft`; skips with the reason otherwise, or fails under
//! `PEREGRINE_REQUIRE_ALL=1`.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use peregrine_datapath::{netns, require};
use peregrine_engine::api::{Connection, Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, TransportConfig};
use peregrine_engine::crypto::TlsClientConfig;
use support::{run_bounded, BIN};

const T: Duration = Duration::from_secs(10);
const VIP: &str = "10.211.100.1";
const PORT: u16 = 4433;
const SERVERS: usize = 3;

/// What this machine lacks to run these tests, if anything.
fn missing() -> Option<&'static str> {
    use peregrine_datapath::require::{have, is_root};
    if !is_root() {
        Some("needs root (network namespaces, nftables)")
    } else if !have("ip") {
        Some("ip (iproute2) not installed")
    } else if !have("nft") {
        Some("nft (nftables) not installed")
    } else {
        None
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn in_ns(ns: &str, args: &[&str]) {
    sh(&[&["ip", "netns", "exec", ns][..], args].concat());
}

/// `nft -f -` in `ns` with `rules` on stdin.
fn nft(ns: &str, rules: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "nft in {ns}: {}\n{rules}", String::from_utf8_lossy(&out.stderr));
}

/// The packet count of the first `counter` in `chain` of table `table` in `ns`.
fn counter(ns: &str, table: &str, chain: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "chain", "ip", table, chain])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let n = text.split("counter packets ").nth(1).and_then(|r| r.split(' ').next());
    n.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no counter in {chain}: {text}"))
}

/// The balancer's ruleset: the README recipe with this topology's addresses.
fn balancer_rules() -> String {
    let servers: Vec<String> = (0..SERVERS).map(|k| format!("10.211.{}.2", k + 1)).collect();
    let mut rules = format!(
        "table ip quiclb {{
  chain prerouting {{
    type filter hook prerouting priority raw; policy accept;
    ip daddr {VIP} udp dport {PORT} notrack jump route
    ip saddr {{ {all} }} udp sport {PORT} notrack ip saddr set {VIP}
  }}
  chain route {{
    @th,64,8 & 0x80 == 0x80 jump by_tuple
    @th,72,8 != 0x07 jump by_tuple
    @th,80,8 vmap {{ {ids} }}
    jump by_tuple
  }}
  chain by_tuple {{
    jhash ip saddr . udp sport . ip daddr . udp dport mod {SERVERS} seed 0x51 vmap {{ {hashes} }}
  }}
",
        all = servers.join(", "),
        ids = (0..SERVERS)
            .map(|k| format!("0x{:02x} : jump cid{k}", k + 1))
            .collect::<Vec<_>>()
            .join(", "),
        hashes =
            (0..SERVERS).map(|k| format!("{k} : jump tuple{k}")).collect::<Vec<_>>().join(", "),
    );
    for (k, addr) in servers.iter().enumerate() {
        rules += &format!("  chain cid{k} {{ counter ip daddr set {addr} accept\n  }}\n");
        rules += &format!("  chain tuple{k} {{ counter ip daddr set {addr} accept\n  }}\n");
    }
    rules + "}\n"
}

/// The namespaces and links; every namespace is deleted on drop (with its links and rules).
struct Topology {
    client: String,
    balancer: String,
    servers: Vec<String>,
}

impl Topology {
    fn up(tag: &str) -> Self {
        let p = format!("qlb{}{tag}", std::process::id() % 100_000);
        let mut t =
            Topology { client: format!("{p}c"), balancer: format!("{p}l"), servers: vec![] };
        t.servers = (0..SERVERS).map(|k| format!("{p}s{k}")).collect();
        // `t` exists before the first namespace: a failure half-way deletes what was made.
        for ns in [&t.client, &t.balancer].into_iter().chain(&t.servers) {
            sh(&["ip", "netns", "add", ns]);
        }
        // Before the links move in (their settings come from `default`): replies leave the
        // balancer with the VIP as source, which no reverse path of its would accept.
        for key in ["ip_forward=1", "conf.all.rp_filter=0", "conf.default.rp_filter=0"] {
            in_ns(&t.balancer, &["sysctl", "-qw", &format!("net.ipv4.{key}")]);
        }
        let (c, l) = (t.client.clone(), t.balancer.clone());
        let link = |a_ns: &str, a: &str, a_ip: &str, b_ns: &str, b: &str, b_ip: &str| {
            // Made inside the namespaces: nothing is left behind in the host's.
            sh(&["ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", b, "netns", b_ns]);
            for (ns, dev, ip) in [(a_ns, a, a_ip), (b_ns, b, b_ip)] {
                in_ns(ns, &["ip", "addr", "add", ip, "dev", dev]);
                in_ns(ns, &["ip", "link", "set", dev, "up"]);
                in_ns(ns, &["ip", "link", "set", "lo", "up"]);
            }
        };
        link(&c, &format!("{p}c0"), "10.211.0.1/24", &l, &format!("{p}l0"), "10.211.0.2/24");
        in_ns(&c, &["ip", "route", "add", "default", "via", "10.211.0.2"]);
        for (k, s) in t.servers.iter().enumerate() {
            let (sip, lip) = (format!("10.211.{}.2/24", k + 1), format!("10.211.{}.1/24", k + 1));
            link(s, &format!("{p}s{k}"), &sip, &l, &format!("{p}l{}", k + 1), &lip);
            in_ns(s, &["ip", "route", "add", "default", "via", &format!("10.211.{}.1", k + 1)]);
        }
        nft(&l, &balancer_rules());
        t
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.client, &self.balancer].into_iter().chain(&self.servers) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A `peregrine server` in a namespace; killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The three servers' shared files: certificate and key (one for the group, as behind a real
/// balancer), the Retry/reset key file, and each server's root with `who` naming it.
struct Group {
    dir: PathBuf,
}

impl Group {
    fn new(tag: &str) -> Self {
        let dir = support::temp_dir(tag);
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
        std::fs::write(dir.join("group.key"), format!("{}\n", "5a".repeat(32))).unwrap();
        Group { dir }
    }

    /// Starts server `k` (server ID k+1) in `ns`, answering `GET /who` with `name`.
    fn start(&self, ns: &str, k: usize, name: &str) -> Server {
        let root = self.dir.join(name);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("who"), name).unwrap();
        let p = |f: &str| self.dir.join(f).to_string_lossy().into_owned();
        let id = format!("{:02x}", k + 1);
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, BIN, "server", "--listen", &format!("0.0.0.0:{PORT}")])
            .args(["--cert", &p("cert.pem"), "--key", &p("key.pem"), "--root"])
            .arg(&root)
            .args([
                "--quic-lb-server-id",
                &id,
                "--cid-len",
                "8",
                "--retry",
                "always",
                "--workers",
                "2",
            ])
            .args(["--token-key-file", &p("group.key"), "--qlog-dir"])
            .arg(self.dir.join(format!("qlog-{name}")))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = support::lines(child.stdout.take().unwrap());
        let server = Server(child);
        let first = lines.recv_timeout(T).unwrap_or_else(|_| panic!("{name} did not start"));
        assert!(first.starts_with("listening on"), "{name}: {first}");
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || while lines.recv().is_ok() {});
        server
    }

    fn start_all(&self, topo: &Topology) -> Vec<Server> {
        topo.servers.iter().enumerate().map(|(k, ns)| self.start(ns, k, &format!("s{k}"))).collect()
    }

    /// An in-process client (the engine `peregrine client` runs on) in `ns` on UDP port `port`
    /// (0: any), trusting the group's certificate.
    fn client(&self, ns: &str, port: u16) -> std::io::Result<Endpoint> {
        let tls = TlsClientConfig::builder()
            .add_root_pem_file(self.dir.join("cert.pem"))
            .unwrap()
            .alpn_protocols([&b"hq-interop"[..]])
            .build()
            .unwrap();
        let mut c = ClientConfig::new(Arc::new(tls));
        c.transport =
            TransportConfig::default().with_idle_timeout(Some(Duration::from_secs(5))).unwrap();
        let addr: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
        netns::run_in(ns, || Endpoint::bind(addr, EndpointConfig::client(c))).unwrap()
    }
}

/// Every connection ID the server `name` issued, from its qlog traces: its transport
/// parameters' initial_source_connection_id (the handshake Source Connection ID) and
/// retry_source_connection_id, and the NEW_CONNECTION_ID frames it sent; in hex, by kind.
fn issued_cids(group: &Group, name: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let dir = group.dir.join(format!("qlog-{name}"));
    for file in std::fs::read_dir(&dir).into_iter().flatten() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for rec in text.split('\x1e').filter(|r| !r.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(rec.trim()).unwrap();
            let d = &v["data"];
            if v["name"] == "quic:parameters_set" && d["initiator"] == "local" {
                for (kind, key) in [
                    ("handshake", "initial_source_connection_id"),
                    ("retry", "retry_source_connection_id"),
                ] {
                    if let Some(c) = d[key].as_str() {
                        out.push((kind, c.to_owned()));
                    }
                }
            }
            if v["name"] == "quic:packet_sent" {
                for f in d["frames"].as_array().into_iter().flatten() {
                    if f["frame_type"] == "new_connection_id" {
                        out.push((
                            "new_connection_id",
                            f["connection_id"].as_str().unwrap().into(),
                        ));
                    }
                }
            }
        }
    }
    out
}

fn vip() -> SocketAddr {
    format!("{VIP}:{PORT}").parse().unwrap()
}

/// `GET /who`: which server answered on `conn`.
fn who(conn: &Connection) -> Result<String, String> {
    let (s, mut r) = conn.open_bi_blocking(T).map_err(|e| e.to_string())?;
    s.write_fin(b"GET /who\r\n".to_vec());
    let b = r.read_to_end_blocking(100, T).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// The `peregrine client` binary in the client namespace fetches `/who` through the balancer,
/// each run from a new source port: every run succeeds (handshake by 4-tuple hash, Retry
/// included, then 1-RTT routed by the server ID of the servers' connection IDs), and the runs
/// land on more than one server. A server whose connection IDs lacked its server ID would see
/// its 1-RTT packets dropped (or sent elsewhere) and the fetch would time out.
#[test]
fn connections_spread_over_servers_and_follow_their_server_id() {
    require!(missing().is_none(), "{}", missing().unwrap_or_default());
    let group = Group::new("spread");
    let _servers;
    let topo = Topology::up("a");
    _servers = group.start_all(&topo);
    let mut seen = BTreeSet::new();
    // 12 runs of a 1-in-3 hash: all on one server with probability 3^-11.
    for run in 0..12 {
        let out_dir = group.dir.join(format!("out{run}"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &topo.client, BIN, "client", "--insecure", "--output"])
            .arg(&out_dir)
            .arg(format!("https://{VIP}:{PORT}/who"));
        let out = run_bounded(cmd, T);
        assert!(out.status.success(), "run {run}: {}", String::from_utf8_lossy(&out.stderr));
        seen.insert(std::fs::read_to_string(out_dir.join("who")).unwrap());
    }
    eprintln!("servers that answered: {seen:?}");
    assert!(seen.len() >= 2, "12 connections all reached {seen:?}");
    let by_cid: Vec<u64> =
        (0..SERVERS).map(|k| counter(&topo.balancer, "quiclb", &format!("cid{k}"))).collect();
    eprintln!("short-header packets routed by server ID: {by_cid:?}");
    assert!(by_cid.iter().filter(|&&n| n > 0).count() >= 2, "{by_cid:?}");
    // Every ID each server issued carries its server ID after the first octet (config
    // rotation 0, length 8: 0x07), whatever the kind.
    for k in 0..SERVERS {
        let name = format!("s{k}");
        let cids = issued_cids(&group, &name);
        let prefix = format!("07{:02x}", k + 1);
        for (kind, cid) in &cids {
            assert!(cid.len() == 16 && cid.starts_with(&prefix), "{name} issued {kind} {cid}");
        }
        if seen.contains(&name) {
            for kind in ["handshake", "retry", "new_connection_id"] {
                assert!(cids.iter().any(|(k, _)| *k == kind), "{name}: no {kind} ID in its qlog");
            }
        }
    }
}

/// A NAT rebinding mid-connection: the client's source port changes (stateless port rewrite
/// in the client namespace, so the client itself does not know) to a port whose 4-tuple hash
/// picks another server than the connection's owner (found by connecting from that port
/// first). The next request on the same connection is answered by the owner: the balancer
/// routed the new 4-tuple's short-header packets by the server ID in the connection ID. Were
/// they routed by 4-tuple, they would reach the other server, which drops them (their server
/// ID is not its own), and the request would time out.
#[test]
fn rebinding_keeps_the_connection_because_the_cid_picks_the_server() {
    require!(missing().is_none(), "{}", missing().unwrap_or_default());
    let group = Group::new("rebind");
    let _servers;
    let topo = Topology::up("b");
    _servers = group.start_all(&topo);
    let ep = group.client(&topo.client, 0).unwrap();
    let old_port = ep.local_addr().port();
    let conn = ep.connect(vip(), "localhost").unwrap().wait(T).unwrap();
    let owner = who(&conn).unwrap();
    // A port the 4-tuple hash sends elsewhere: 40 tries of a 2-in-3 chance.
    let new_port = (40_000..40_040)
        .filter(|&port| port != old_port)
        .find(|&port| {
            let probe = group.client(&topo.client, port).unwrap();
            let c = probe.connect(vip(), "localhost").unwrap().wait(T).unwrap();
            let w = who(&c).unwrap();
            c.close(peregrine_engine::VarInt::from_u32(0), b"");
            w != owner
        })
        .expect("no port in 40000..40040 hashes to another server");
    eprintln!("owner {owner}; rebinding port {old_port} -> {new_port}");
    nft(
        &topo.client,
        &format!(
            "table ip rebind {{
  chain out {{ type filter hook output priority raw; policy accept;
    ip daddr {VIP} udp sport {old_port} notrack udp sport set {new_port} counter
  }}
  chain in {{ type filter hook prerouting priority raw; policy accept;
    ip saddr {VIP} udp dport {new_port} notrack udp dport set {old_port} counter
  }}
}}\n"
        ),
    );
    for i in 0..3 {
        assert_eq!(who(&conn).unwrap(), owner, "request {i} after the rebinding");
    }
    let (out, back) =
        (counter(&topo.client, "rebind", "out"), counter(&topo.client, "rebind", "in"));
    eprintln!("packets through the rebinding: {out} out, {back} back");
    assert!(out > 0 && back > 0, "the connection did not use the new port");
}

/// The connection's server dies and a new process takes its server ID (same namespace, same
/// `--quic-lb-server-id`, same `--token-key-file`): it never saw the connection, and answers
/// the client's next packet, routed to it by the server ID, with a stateless reset the client
/// accepts (its token comes from the group's shared reset key), so the request fails at once
/// with "stateless reset" instead of waiting out the 5 s idle timeout.
#[test]
fn a_server_that_never_saw_the_connection_resets_it() {
    require!(missing().is_none(), "{}", missing().unwrap_or_default());
    let group = Group::new("reset");
    let mut servers;
    let topo = Topology::up("r");
    servers = group.start_all(&topo);
    let ep = group.client(&topo.client, 0).unwrap();
    let conn = ep.connect(vip(), "localhost").unwrap().wait(T).unwrap();
    let owner = who(&conn).unwrap();
    let k: usize = owner[1..].parse().unwrap();
    let _ = servers[k].0.kill();
    let _ = servers[k].0.wait();
    servers[k] = group.start(&topo.servers[k], k, "new");
    let err = who(&conn).expect_err("a new process cannot answer for the old one's connection");
    eprintln!("{owner} replaced; the request on its connection: {err}");
    assert!(err.contains("stateless reset"), "{err}");
    // The group still serves new connections.
    let conn = ep.connect(vip(), "localhost").unwrap().wait(T).unwrap();
    let _ = who(&conn).unwrap();
}
