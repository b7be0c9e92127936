//! `peregrine tune --interface IF`: read what the system says about a NIC and recommend a
//! worker/core/queue map and the `peregrine server` command line that uses it.
//!
//! Sources: sysfs (driver, queues, MTU, NUMA node), procfs (interrupts, IRQ affinity, CPUs),
//! and `ethtool` / `ip` when installed (never required). Whatever cannot be read is listed with
//! the reason instead of being guessed.

mod advice;
mod parse;
mod plan;

use crate::config::{format_list, parse_list};
use advice::Advice;
use parse::{Channels, Rss};
use plan::{Assignment, PlanInput};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

/// Drivers with native (driver-mode) XDP support in mainline Linux.
pub const NATIVE_XDP_DRIVERS: &[&str] = &[
    "i40e",
    "ice",
    "ixgbe",
    "ixgbevf",
    "igb",
    "igc",
    "mlx4_en",
    "mlx4_core",
    "mlx5_core",
    "bnxt_en",
    "nfp",
    "qede",
    "virtio_net",
    "veth",
    "tun",
    "ena",
    "sfc",
    "thunderx",
    "mvneta",
    "mvpp2",
    "stmmac",
    "fec",
    "dpaa2-eth",
    "enetc",
    "netsec",
    "gve",
    "idpf",
    "iavf",
    "cpsw",
    "lan966x",
];

/// Arguments of `peregrine tune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The network interface to inspect, e.g. eth0.
    #[arg(long, value_name = "IF")]
    interface: String,
    /// The address the server will listen on: its family sets the headers the recommended
    /// --mtu leaves room for (IPv6 40 + UDP 8, IPv4 20 + 8; [::] takes IPv6's).
    #[arg(long, default_value = "[::]:443")]
    listen: std::net::SocketAddr,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Everything `tune` found and recommends.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// The interface.
    pub interface: String,
    /// Kernel driver name, if the interface has a device.
    pub driver: Option<String>,
    /// MTU from sysfs.
    pub mtu: Option<u32>,
    /// NUMA node of the device (`None` when unknown or -1).
    pub numa_node: Option<u32>,
    /// RX queue numbers from sysfs `queues/rx-*`.
    pub rx_queues: Vec<u32>,
    /// Channel counts from `ethtool -l`.
    pub channels: Option<Channels>,
    /// RSS table from `ethtool -x`.
    pub rss: Option<Rss>,
    /// Offloads of interest from `ethtool -k` (feature → on).
    pub offloads: BTreeMap<String, bool>,
    /// The interface's interrupts with their affinity.
    pub irqs: Vec<IrqInfo>,
    /// Whether the driver is in [`NATIVE_XDP_DRIVERS`].
    pub native_xdp: bool,
    /// The attached XDP program, from `ip -d link`.
    pub xdp_program: Option<String>,
    /// Online CPU cores.
    pub online_cores: Vec<u32>,
    /// Cores of the NIC's NUMA node.
    pub numa_cores: Vec<u32>,
    /// The recommended map.
    pub plan: Vec<Assignment>,
    /// The `peregrine server` command line using it.
    pub command: String,
    /// Why the command's `--mtu` is what it is.
    pub mtu_reason: Option<String>,
    /// Sysctls, interrupts, queue counts and offloads: what is set, what to set, why.
    pub advice: Vec<Advice>,
    /// What could not be read, and why.
    pub unavailable: Vec<String>,
}

const OFFLOADS: [&str; 4] = [
    "generic-segmentation-offload",
    "generic-receive-offload",
    "tx-checksumming",
    "rx-udp-gro-forwarding",
];

/// One interrupt of the interface: where it may run (`smp_affinity_list`) and where the
/// kernel actually delivers it (`effective_affinity_list`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IrqInfo {
    /// The IRQ number.
    pub irq: u32,
    /// The action name (e.g. `eth0-TxRx-3`).
    pub name: String,
    /// The queue number from the trailing digits of the name, if any.
    pub queue: Option<u32>,
    /// Interrupt counts per CPU.
    pub counts: Vec<u64>,
    /// Cores it may run on.
    pub affinity: Vec<u32>,
    /// Cores the kernel delivers it to (empty when the kernel does not say).
    pub effective_affinity: Vec<u32>,
}

impl IrqInfo {
    /// Whether it is a receive (or combined) vector, not a tx, config or link one.
    pub fn is_receive(&self) -> bool {
        !["output", "-tx-", "config"].iter().any(|w| self.name.contains(w))
    }

    /// Where it runs: the effective affinity when known, else the allowed one.
    pub fn cores(&self) -> &[u32] {
        if self.effective_affinity.is_empty() {
            &self.affinity
        } else {
            &self.effective_affinity
        }
    }
}

/// Inspects the interface and prints the report.
pub fn run(args: &Args) -> Result<(), String> {
    let r = inspect(&args.interface, args.listen)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?);
    } else {
        print_text(&r);
    }
    Ok(())
}

fn read(path: impl AsRef<Path>, missing: &mut Vec<String>) -> Option<String> {
    let path = path.as_ref();
    match fs::read_to_string(path) {
        Ok(s) => Some(s.trim().to_owned()),
        Err(e) => {
            missing.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

fn tool(cmd: &str, args: &[&str], missing: &mut Vec<String>) -> Option<String> {
    let what = format!("{cmd} {}", args.join(" "));
    match Command::new(cmd).args(args).output() {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let line = err.lines().next().unwrap_or("failed").trim().to_owned();
            missing.push(format!("{what}: {line}"));
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            missing.push(format!("{what}: {cmd} is not installed"));
            None
        }
        Err(e) => {
            missing.push(format!("{what}: {e}"));
            None
        }
    }
}

/// Gathers the report for `iface` and a server on `listen`; an interface that does not exist
/// is an error.
pub fn inspect(iface: &str, listen: std::net::SocketAddr) -> Result<Report, String> {
    if iface.is_empty() || iface.contains(['/', '\0']) || iface == "." || iface == ".." {
        return Err(format!("--interface: '{iface}' is not an interface name"));
    }
    let base = Path::new("/sys/class/net").join(iface);
    if !base.exists() {
        return Err(format!("--interface: no interface named '{iface}' (see ip link)"));
    }
    let mut r = Report { interface: iface.to_owned(), ..Report::default() };
    let m = &mut r.unavailable;
    r.driver = match fs::read_link(base.join("device/driver")) {
        Ok(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
        Err(e) => {
            m.push(format!(
                "driver: {}/device/driver: {e}; a virtual interface has none",
                base.display()
            ));
            None
        }
    };
    r.mtu = read(base.join("mtu"), m).and_then(|s| s.parse().ok());
    if base.join("device").exists() {
        if let Some(s) = read(base.join("device/numa_node"), m) {
            r.numa_node = s.parse().ok();
            if r.numa_node.is_none() {
                m.push(format!("numa node: the device reports {s} (single node or unknown)"));
            }
        }
    } else {
        m.push("numa node: no device directory (virtual interface)".into());
    }
    match fs::read_dir(base.join("queues")) {
        Ok(dir) => {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(q) = name.strip_prefix("rx-").and_then(|q| q.parse().ok()) {
                    r.rx_queues.push(q);
                }
            }
            r.rx_queues.sort_unstable();
        }
        Err(e) => m.push(format!("{}/queues: {e}", base.display())),
    }
    if let Some(t) = tool("ethtool", &["-l", iface], m) {
        r.channels = parse::ethtool_channels(&t);
    }
    if let Some(t) = tool("ethtool", &["-x", iface], m) {
        r.rss = parse::ethtool_rss(&t);
    }
    if let Some(t) = tool("ethtool", &["-k", iface], m) {
        let f = parse::ethtool_features(&t);
        for k in OFFLOADS {
            match f.get(k) {
                Some(&(on, _)) => {
                    r.offloads.insert(k.to_owned(), on);
                }
                None => m.push(format!("offload {k}: not listed by ethtool -k")),
            }
        }
    }
    if let Some(t) = read("/proc/interrupts", m) {
        // Drivers name vectors after the interface, the PCI address or virtioN.
        let mut aliases = Vec::new();
        if let Ok(dev) = fs::read_link(base.join("device")) {
            if let Some(n) = dev.file_name().map(|n| n.to_string_lossy().into_owned()) {
                // virtio_net: "virtio2-input.0"; PCI NICs: names containing the address.
                aliases.push(if n.starts_with("virtio") { format!("{n}-") } else { n });
            }
        }
        for irq in parse::interrupts_for(&t, iface, &aliases) {
            let list = |file: &str| {
                fs::read_to_string(format!("/proc/irq/{}/{file}", irq.irq))
                    .ok()
                    .and_then(|s| parse_list(s.trim(), u32::MAX).ok())
                    .unwrap_or_default()
            };
            r.irqs.push(IrqInfo {
                affinity: list("smp_affinity_list"),
                effective_affinity: list("effective_affinity_list"),
                irq: irq.irq,
                name: irq.name,
                queue: irq.queue,
                counts: irq.counts,
            });
        }
        if r.irqs.is_empty() {
            m.push(format!("irqs: no /proc/interrupts line names {iface} (virtual or polled)"));
        }
    }
    r.native_xdp = r.driver.as_deref().is_some_and(|d| NATIVE_XDP_DRIVERS.contains(&d));
    if let Some(t) = tool("ip", &["-d", "link", "show", "dev", iface], m) {
        r.xdp_program = parse::xdp_attached(&t);
    }
    r.online_cores = read("/sys/devices/system/cpu/online", m)
        .and_then(|s| parse_list(&s, u32::MAX).ok())
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..n as u32).collect()
        });
    if let Some(node) = r.numa_node {
        r.numa_cores = read(format!("/sys/devices/system/node/node{node}/cpulist"), m)
            .and_then(|s| parse_list(&s, u32::MAX).ok())
            .unwrap_or_default();
    }
    let mut queues = r.rx_queues.clone();
    if let Some(ch) = &r.channels {
        let n = ch.rx_queues();
        if n > 0 && (n as usize) < queues.len() {
            queues.truncate(n as usize);
        }
    }
    // Only receive vectors steer a queue's packets; skip tx, config and link vectors. Where
    // the kernel delivers each is its effective affinity (one core of the allowed set).
    let irq_cores = r
        .irqs
        .iter()
        .filter(|i| i.is_receive())
        .filter_map(|i| Some((i.queue?, i.cores().to_vec())))
        .collect();
    r.plan = plan::plan(&PlanInput {
        queues,
        online: r.online_cores.clone(),
        numa_cores: r.numa_cores.clone(),
        irq_cores,
    });
    let (command, mtu_reason) = command_line(&r, listen);
    r.command = command;
    r.mtu_reason = mtu_reason;
    let mut sysctls = std::collections::BTreeMap::new();
    for name in advice::SYSCTLS {
        if let Some(v) = read(format!("/proc/sys/net/core/{name}"), &mut r.unavailable) {
            if let Ok(v) = v.parse() {
                sysctls.insert(name, v);
            }
        }
    }
    r.advice = advice::advise(&advice::Inputs {
        interface: iface,
        sysctls,
        irqbalance: irqbalance_running(),
        irqs: &r.irqs,
        plan: &r.plan,
        channels: r.channels.as_ref(),
        online: r.online_cores.len(),
        offloads: &r.offloads,
    });
    Ok(r)
}

/// Whether a process named irqbalance runs (`None` when /proc cannot be listed).
fn irqbalance_running() -> Option<bool> {
    let dir = fs::read_dir("/proc").ok()?;
    Some(dir.flatten().any(|e| {
        e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit())
            && fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "irqbalance")
    }))
}

/// The `peregrine server` invocation that applies the plan for a server on `listen` (knob
/// names from `config`), and why its `--mtu` is what it is.
fn command_line(r: &Report, listen: std::net::SocketAddr) -> (String, Option<String>) {
    let mut c =
        format!("peregrine server --listen {listen} --cert cert.pem --key key.pem --root www");
    if r.native_xdp {
        c += &format!(" --datapath xdp --xdp-mode native --interface {}", r.interface);
    } else {
        c += " --datapath udp";
    }
    let queues: Vec<u32> = r.plan.iter().map(|a| a.queue).collect();
    let mut cores: Vec<u32> = r.plan.iter().map(|a| a.core).collect();
    cores.sort_unstable();
    cores.dedup();
    c += &format!(" --workers {}", r.plan.len().max(1));
    if !queues.is_empty() && r.native_xdp {
        c += &format!(" --queues {}", format_list(&queues));
    }
    if !cores.is_empty() {
        c += &format!(" --cores {}", format_list(&cores));
    }
    let mut reason = None;
    if let Some(mtu) = r.mtu {
        let (payload, why) = udp_payload(mtu, listen);
        c += &format!(" --mtu {payload}");
        reason = Some(why);
    }
    for (key, feature) in [("gso", OFFLOADS[0]), ("gro", OFFLOADS[1])] {
        if r.offloads.get(feature) == Some(&false) {
            c += &format!(" --{key} off");
        }
    }
    (c, reason)
}

/// The largest UDP payload for an interface MTU and a listen address's family, capped at the
/// largest datagram the engine builds; with the reason.
fn udp_payload(mtu: u32, listen: std::net::SocketAddr) -> (u32, String) {
    // An IPv6 socket ([::] included: it takes IPv4-mapped peers too) must fit the larger
    // IPv6 header.
    let (headers, family) =
        if listen.is_ipv4() { (28, "IPv4 20 + UDP 8") } else { (48, "IPv6 40 + UDP 8") };
    let limit = u32::from(peregrine_engine::MAX_DATAGRAM_SIZE_LIMIT);
    let fits = mtu.saturating_sub(headers);
    let payload = fits.clamp(1200, limit);
    let why = if fits > limit {
        format!(
            "interface MTU {mtu} - {headers} ({family} headers, --listen {listen}) = {fits}, \
             capped at {limit}, the largest datagram the engine builds"
        )
    } else if fits < 1200 {
        format!("interface MTU {mtu} - {headers} ({family}) = {fits}, below QUIC's 1200 minimum")
    } else {
        format!("interface MTU {mtu} - {headers} ({family} headers, --listen {listen})")
    };
    (payload, why)
}

fn print_text(r: &Report) {
    let or = |o: Option<String>| o.unwrap_or_else(|| "unknown".into());
    outln!("peregrine tune: {}", r.interface);
    outln!("  driver        {}", or(r.driver.clone()));
    outln!("  mtu           {}", or(r.mtu.map(|m| m.to_string())));
    outln!("  numa node     {}", or(r.numa_node.map(|n| n.to_string())));
    outln!("  rx queues     {} ({})", r.rx_queues.len(), format_list(&r.rx_queues));
    if let Some(ch) = &r.channels {
        outln!(
            "  channels      rx {} tx {} combined {} (max combined {})",
            ch.rx,
            ch.tx,
            ch.combined,
            ch.max_combined
        );
    }
    if let Some(rss) = &r.rss {
        let spread: Vec<String> = rss.per_queue.iter().map(|(q, n)| format!("q{q}:{n}")).collect();
        outln!("  rss           {} entries, {}", rss.entries, spread.join(" "));
    }
    for (k, on) in &r.offloads {
        outln!("  offload       {k}: {}", if *on { "on" } else { "off" });
    }
    for irq in &r.irqs {
        outln!(
            "  irq {:<9} {} -> cores {} (allowed {})",
            irq.irq,
            irq.name,
            format_list(irq.cores()),
            format_list(&irq.affinity)
        );
    }
    outln!(
        "  xdp           native driver support: {}; attached program: {}",
        if r.native_xdp { "yes" } else { "no (generic mode only)" },
        r.xdp_program.as_deref().unwrap_or("none")
    );
    outln!(
        "  cpus          online {} ; numa-local {}",
        format_list(&r.online_cores),
        if r.numa_cores.is_empty() { "unknown".into() } else { format_list(&r.numa_cores) }
    );
    outln!("recommended map (one worker per RX queue):");
    for a in &r.plan {
        let note = a.note.as_deref().map(|n| format!("  ({n})")).unwrap_or_default();
        outln!("  worker {:<3} queue {:<3} core {}{note}", a.worker, a.queue, a.core);
    }
    outln!("command:\n  {}", r.command);
    if let Some(why) = &r.mtu_reason {
        outln!("  --mtu: {why}");
    }
    if !r.advice.is_empty() {
        outln!("advice:");
        for a in &r.advice {
            let level = match a.level {
                advice::Level::Ok => "ok",
                advice::Level::Change => "CHANGE",
                advice::Level::Consider => "consider",
            };
            outln!("  [{level:<8}] {}: {} -> {}", a.setting, a.current, a.recommended);
            outln!("             {}", a.reason);
            if let Some(c) = &a.command {
                outln!("             $ {c}");
            }
        }
    }
    if !r.unavailable.is_empty() {
        outln!("could not read:");
        for u in &r.unavailable {
            outln!("  {u}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_follows_the_listen_family() {
        let v6: std::net::SocketAddr = "[::]:443".parse().unwrap();
        let v4: std::net::SocketAddr = "0.0.0.0:443".parse().unwrap();
        assert_eq!(udp_payload(1400, v6).0, 1352);
        assert_eq!(udp_payload(1400, v4).0, 1372);
        assert!(udp_payload(1400, v6).1.contains("IPv6 40 + UDP 8"));
        let limit = u32::from(peregrine_engine::MAX_DATAGRAM_SIZE_LIMIT);
        let (p, why) = udp_payload(65536, v6);
        assert_eq!(p, limit.min(65536 - 48));
        assert!(why.contains("IPv6") && (why.contains("capped") || p == 65488), "{why}");
        assert_eq!(udp_payload(1000, v4).0, 1200);
    }

    #[test]
    fn irqs_are_plain_objects_and_the_effective_affinity_steers_the_plan() {
        // This VM: queue 0's interrupt may run on cores 0-1; the kernel delivers it on 1.
        let irq = IrqInfo {
            irq: 38,
            name: "virtio2-input.0".into(),
            queue: Some(0),
            counts: vec![0, 9],
            affinity: vec![0, 1],
            effective_affinity: vec![1],
        };
        let v = serde_json::to_value(&irq).unwrap();
        assert!(v.is_object(), "{v}");
        assert_eq!(v["effective_affinity"], serde_json::json!([1]));
        assert_eq!(irq.cores(), [1]);
        let input = plan::PlanInput {
            queues: vec![0],
            online: vec![0, 1],
            numa_cores: vec![],
            irq_cores: [(0, irq.cores().to_vec())].into(),
        };
        let p = plan::plan(&input);
        assert_eq!((p[0].core, p[0].note.clone()), (0, None), "core 0 takes no interrupt: {p:?}");
        // With only the allowed set, both cores looked busy and core 0 got a false note.
        let input = plan::PlanInput { irq_cores: [(0, vec![0, 1])].into(), ..input };
        assert!(plan::plan(&input)[0].note.is_some());
    }
}
