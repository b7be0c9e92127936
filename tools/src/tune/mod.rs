//! `peregrine tune --interface IF`: read what the system says about a NIC and recommend a
//! worker/core/queue map and the `peregrine server` command line that uses it.
//!
//! Sources: sysfs (driver, queues, MTU, NUMA node), procfs (interrupts, IRQ affinity, CPUs),
//! and `ethtool` / `ip` when installed (never required). Whatever cannot be read is listed with
//! the reason instead of being guessed.

mod parse;
mod plan;

use crate::config::{format_list, parse_list};
use parse::{Channels, Irq, Rss};
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
    pub irqs: Vec<(Irq, Vec<u32>)>,
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
    /// What could not be read, and why.
    pub unavailable: Vec<String>,
}

const OFFLOADS: [&str; 4] = [
    "generic-segmentation-offload",
    "generic-receive-offload",
    "tx-checksumming",
    "rx-udp-gro-forwarding",
];

/// Inspects the interface and prints the report.
pub fn run(args: &Args) -> Result<(), String> {
    let r = inspect(&args.interface)?;
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

/// Gathers the report for `iface`; an interface that does not exist is an error.
pub fn inspect(iface: &str) -> Result<Report, String> {
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
            let aff = fs::read_to_string(format!("/proc/irq/{}/smp_affinity_list", irq.irq))
                .ok()
                .and_then(|s| parse_list(s.trim(), u32::MAX).ok())
                .unwrap_or_default();
            r.irqs.push((irq, aff));
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
    // Only receive vectors steer a queue's packets; skip tx, config and link vectors.
    let irq_cores = r
        .irqs
        .iter()
        .filter(|(i, _)| !["output", "-tx-", "config"].iter().any(|w| i.name.contains(w)))
        .filter_map(|(i, aff)| Some((i.queue?, aff.clone())))
        .collect();
    r.plan = plan::plan(&PlanInput {
        queues,
        online: r.online_cores.clone(),
        numa_cores: r.numa_cores.clone(),
        irq_cores,
    });
    r.command = command_line(&r);
    Ok(r)
}

/// The `peregrine server` invocation that applies the plan (knob names from `config`).
fn command_line(r: &Report) -> String {
    let mut c =
        String::from("peregrine server --listen [::]:443 --cert cert.pem --key key.pem --root www");
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
    if let Some(mtu) = r.mtu {
        // IPv6 (40) + UDP (8) headers, at most the largest datagram the engine builds.
        let limit = u32::from(peregrine_engine::connection::MAX_DATAGRAM_SIZE_LIMIT);
        let payload = mtu.saturating_sub(48).clamp(1200, limit);
        c += &format!(" --mtu {payload}");
    }
    for (key, feature) in [("gso", OFFLOADS[0]), ("gro", OFFLOADS[1])] {
        if r.offloads.get(feature) == Some(&false) {
            c += &format!(" --{key} off");
        }
    }
    c
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
    for (irq, aff) in &r.irqs {
        outln!("  irq {:<9} {} -> cores {}", irq.irq, irq.name, format_list(aff));
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
    if !r.unavailable.is_empty() {
        outln!("could not read:");
        for u in &r.unavailable {
            outln!("  {u}");
        }
    }
}
