//! `tune`'s advice beyond the worker map: socket buffer and busy-poll sysctls, interrupt
//! placement (the kernel's effective affinity, irqbalance), NIC queue counts and offloads,
//! each with what is in effect now, what to set and why.

use std::collections::BTreeMap;

use peregrine_datapath::udp::DEFAULT_SOCKET_BUFFER;

use super::parse::Channels;
use super::plan::Assignment;
use super::IrqInfo;

/// How pressing a piece of advice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// In effect already: nothing to do.
    Ok,
    /// Costs throughput or predictability as it is: change it.
    Change,
    /// A trade-off to consider (latency against CPU, for instance).
    Consider,
}

/// One piece of advice.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Advice {
    /// What it is about (`net.core.rmem_max`, `irq 45`, `ethtool -L eth0`, ...).
    pub setting: String,
    /// What is in effect now, as read.
    pub current: String,
    /// What to set.
    pub recommended: String,
    /// Whether to act.
    pub level: Level,
    /// Why.
    pub reason: String,
    /// The command that applies it, when one does.
    pub command: Option<String>,
}

/// What the advice is computed from (read by `inspect`).
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The interface.
    pub interface: &'a str,
    /// `net.core.*` sysctls read, by name (`rmem_max`, ...).
    pub sysctls: BTreeMap<&'static str, u64>,
    /// Whether an irqbalance process runs.
    pub irqbalance: Option<bool>,
    /// The interface's interrupts.
    pub irqs: &'a [IrqInfo],
    /// The worker map.
    pub plan: &'a [Assignment],
    /// Channel counts, when ethtool gave them.
    pub channels: Option<&'a Channels>,
    /// Online cores.
    pub online: usize,
    /// Offloads read (feature -> on).
    pub offloads: &'a BTreeMap<String, bool>,
}

/// The sysctls `tune` reads, under `/proc/sys/net/core/`.
pub const SYSCTLS: [&str; 5] =
    ["rmem_max", "wmem_max", "busy_poll", "busy_read", "netdev_max_backlog"];

fn sysctl(name: &str, current: u64, recommended: u64, level: Level, reason: String) -> Advice {
    Advice {
        setting: format!("net.core.{name}"),
        current: current.to_string(),
        recommended: recommended.to_string(),
        level,
        reason,
        command: (level != Level::Ok).then(|| format!("sysctl -w net.core.{name}={recommended}")),
    }
}

/// Computes the advice.
pub fn advise(i: &Inputs<'_>) -> Vec<Advice> {
    let mut out = Vec::new();
    let want = DEFAULT_SOCKET_BUFFER as u64;
    for (name, opt) in [("rmem_max", "SO_RCVBUF"), ("wmem_max", "SO_SNDBUF")] {
        let Some(&cur) = i.sysctls.get(name) else { continue };
        let (level, reason) = if cur >= want {
            (Level::Ok, format!("the UDP and io_uring datapaths ask each socket for a {} MiB {opt}; the kernel grants it", want >> 20))
        } else {
            (
                Level::Change,
                format!(
                    "the UDP and io_uring datapaths ask each socket for a {} MiB {opt}; without \
                     privileges the kernel caps it at {name} ({cur} bytes), and bursts beyond \
                     it are dropped (RcvbufErrors/SndbufErrors in /proc/net/snmp)",
                    want >> 20
                ),
            )
        };
        out.push(sysctl(name, cur, cur.max(want), level, reason));
    }
    for name in ["busy_poll", "busy_read"] {
        let Some(&cur) = i.sysctls.get(name) else { continue };
        let reason = "kernel busy polling of the socket (µs) shortens receive latency and \
                      spends a core spinning; pair it with --busy-poll-us on the workers, and \
                      leave it at 0 for throughput runs"
            .to_string();
        let level = if cur == 0 { Level::Consider } else { Level::Ok };
        out.push(sysctl(name, cur, if cur == 0 { 50 } else { cur }, level, reason));
    }
    if let Some(&cur) = i.sysctls.get("netdev_max_backlog") {
        let (level, rec) = if cur < 5000 { (Level::Consider, 5000) } else { (Level::Ok, cur) };
        out.push(sysctl(
            "netdev_max_backlog",
            cur,
            rec,
            level,
            "packets a core queues between the NIC and the stack; at 10 Gbit/s and more a \
             short backlog drops bursts (the second column of /proc/net/softnet_stat counts them)"
                .into(),
        ));
    }
    if let Some(running) = i.irqbalance {
        out.push(Advice {
            setting: "irqbalance".into(),
            current: if running { "running" } else { "not running" }.into(),
            recommended: "not running (or the NIC's IRQs banned)".into(),
            level: if running { Level::Change } else { Level::Ok },
            reason: "irqbalance moves interrupts between cores at run time, so the cores the \
                     worker map avoids or uses for a queue's interrupt stop being the right ones"
                .into(),
            command: running.then(|| "systemctl stop irqbalance".to_string()),
        });
    }
    // A worker pinned to a core that takes its own queue's interrupt (as the kernel has it
    // now, effective affinity first) shares that core with the softirq work of its queue.
    for a in i.plan {
        let Some(irq) = i.irqs.iter().find(|q| q.queue == Some(a.queue) && q.is_receive()) else {
            continue;
        };
        let cores =
            if irq.effective_affinity.is_empty() { &irq.affinity } else { &irq.effective_affinity };
        let on_worker = cores.contains(&a.core);
        out.push(Advice {
            setting: format!("irq {} ({})", irq.irq, irq.name),
            current: format!("cores {}", crate::config::format_list(cores)),
            recommended: format!("a core other than {} (worker {})", a.core, a.worker),
            level: if on_worker { Level::Consider } else { Level::Ok },
            reason: format!(
                "queue {}'s interrupt runs on cores {} (effective affinity, what the kernel \
                 does, not only what smp_affinity allows); worker {} is pinned to core {}",
                a.queue,
                crate::config::format_list(cores),
                a.worker,
                a.core
            ),
            command: None,
        });
    }
    if let Some(ch) = i.channels {
        let have = ch.rx_queues();
        let max = ch.max_combined;
        let useful = (i.online as u32).min(max);
        if max > 0 && have < useful {
            out.push(Advice {
                setting: format!("ethtool -L {}", i.interface),
                current: format!("{have} queue(s)"),
                recommended: format!("combined {useful}"),
                level: Level::Change,
                reason: format!(
                    "the NIC has up to {max} queues and the machine {} cores: one queue per \
                     worker spreads receive work over more cores",
                    i.online
                ),
                command: Some(format!("ethtool -L {} combined {useful}", i.interface)),
            });
        }
    }
    for (feature, short, why) in [
        (
            "generic-receive-offload",
            "gro",
            "UDP GRO coalesces datagrams: far fewer receive calls per byte",
        ),
        ("generic-segmentation-offload", "gso", "UDP GSO sends a train of datagrams per call"),
        ("tx-checksumming", "tx", "without checksum offload the CPU sums every datagram"),
    ] {
        if i.offloads.get(feature) == Some(&false) {
            out.push(Advice {
                setting: format!("{} {feature}", i.interface),
                current: "off".into(),
                recommended: "on".into(),
                level: Level::Change,
                reason: why.into(),
                command: Some(format!("ethtool -K {} {short} on", i.interface)),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irq(n: u32, queue: u32, aff: &[u32], eff: &[u32]) -> IrqInfo {
        IrqInfo {
            irq: n,
            name: format!("eth0-rx-{queue}"),
            queue: Some(queue),
            counts: vec![],
            affinity: aff.to_vec(),
            effective_affinity: eff.to_vec(),
        }
    }

    #[test]
    fn sysctls_irqs_queues_and_offloads() {
        let sysctls = BTreeMap::from([
            ("rmem_max", 212_992),
            ("wmem_max", 8 << 20),
            ("busy_poll", 0),
            ("busy_read", 0),
            ("netdev_max_backlog", 1000),
        ]);
        // The IRQ may run on 0-1 but the kernel delivers it on 1, where worker 0 is pinned.
        let irqs = [irq(45, 0, &[0, 1], &[1])];
        let plan = [Assignment { worker: 0, queue: 0, core: 1, note: None }];
        let ch = Channels { rx: 0, tx: 0, combined: 1, max_combined: 8 };
        let offloads = BTreeMap::from([("generic-receive-offload".to_string(), false)]);
        let a = advise(&Inputs {
            interface: "eth0",
            sysctls,
            irqbalance: Some(true),
            irqs: &irqs,
            plan: &plan,
            channels: Some(&ch),
            online: 4,
            offloads: &offloads,
        });
        let get = |s: &str| a.iter().find(|x| x.setting.starts_with(s)).unwrap();
        assert_eq!(get("net.core.rmem_max").level, Level::Change);
        assert_eq!(get("net.core.rmem_max").recommended, (4 << 20).to_string());
        assert_eq!(get("net.core.wmem_max").level, Level::Ok);
        assert_eq!(get("net.core.busy_poll").level, Level::Consider);
        assert_eq!(get("irqbalance").level, Level::Change);
        let i = get("irq 45");
        assert_eq!((i.level, i.current.as_str()), (Level::Consider, "cores 1"));
        assert_eq!(get("ethtool -L").recommended, "combined 4");
        assert_eq!(get("eth0 generic-receive").command.as_deref(), Some("ethtool -K eth0 gro on"));
        assert!(a.iter().all(|x| !x.reason.is_empty()));
    }
}
