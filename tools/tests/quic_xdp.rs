//! `peregrine server --datapath xdp` inside two network namespaces joined by a veth pair
//! (scripts/netns.sh): a kernel-UDP client in the other namespace fetches a file byte-exact,
//! and the server reports its XDP mode, frame size, lent UMEM frames and bind mode (copy or
//! zero-copy) at start-up. Needs root (CI runs as root); skips with the reason otherwise, or
//! fails under `PEREGRINE_REQUIRE_ALL=1`.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod support;

use support::{run_bounded, BIN};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns.sh")
}

/// The namespaces; taken down on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn up(name: &str) -> Self {
        let out = Command::new("bash").arg(script()).args(["up", name]).output().unwrap();
        assert!(out.status.success(), "netns.sh up: {}", String::from_utf8_lossy(&out.stderr));
        Self { name: name.to_owned() }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).args(["down", &self.name]).output();
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn server_over_xdp_serves_a_kernel_udp_client_byte_exact() {
    if !peregrine_datapath::require::xdp_netns(false) {
        return;
    }
    let name = format!("pgx{}", std::process::id() % 100_000);
    let net = Netns::up(&name);
    let (ns_a, ns_b, if_a) = (format!("{name}a"), format!("{name}b"), format!("{name}a0"));
    let dir = std::env::temp_dir().join(format!("peregrine-xdp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    let data: Vec<u8> =
        (0..(2 << 20)).map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(root.join("f.bin"), &data).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["10.203.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();

    // A bad interface is a one-line error, not a fallback.
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns_a, BIN, "server", "--listen", "10.203.0.1:0"])
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .arg("--root")
        .arg(&root)
        .args(["--datapath", "xdp", "--interface", "nosuchif0"]);
    let out = run_bounded(cmd, Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.lines().count() == 1, "{err}");
    assert!(err.contains("nosuchif0"), "{err}");

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
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = support::lines(server.0.stdout.take().unwrap());
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("server printed its address");
    let addr = first.strip_prefix("listening on ").expect("listening line").to_owned();
    let note = rx.recv_timeout(Duration::from_secs(5)).expect("datapath note");
    assert!(note.starts_with("server: datapath xdp on "), "{note}");
    assert!(note.contains(" mode, "), "XDP mode: {note}");
    assert!(note.contains("-byte frames, UMEM frames lent to the engine"), "buffers: {note}");
    assert!(
        note.contains("bound in copy mode") || note.contains("bound zero-copy"),
        "bind mode: {note}"
    );

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
    drop(server);
    drop(net);
    let _ = std::fs::remove_dir_all(&dir);
}
