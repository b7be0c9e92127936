//! Parsers of the text that `tune` reads: `ethtool -l/-k/-x`, `/proc/interrupts`, `ip -d link`.
//!
//! Pure functions over captured text, so they are tested with samples in the known formats.

use std::collections::BTreeMap;

/// Channel counts from `ethtool -l IF` ("Current hardware settings" section).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Channels {
    /// Dedicated RX channels.
    pub rx: u32,
    /// Dedicated TX channels.
    pub tx: u32,
    /// Combined RX/TX channels.
    pub combined: u32,
    /// The maximum combined channels the NIC supports ("Pre-set maximums").
    pub max_combined: u32,
}

impl Channels {
    /// Receive queues in use: dedicated RX plus combined.
    pub fn rx_queues(&self) -> u32 {
        self.rx + self.combined
    }
}

/// Parses `ethtool -l` output; `None` when it has no "Current hardware settings" section.
pub fn ethtool_channels(text: &str) -> Option<Channels> {
    let mut ch = Channels::default();
    let mut section = "";
    let mut saw_current = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("Pre-set maximums") {
            section = "max";
            continue;
        }
        if l.starts_with("Current hardware settings") {
            section = "cur";
            saw_current = true;
            continue;
        }
        let Some((k, v)) = l.split_once(':') else { continue };
        // "n/a" means the NIC has no such channel type.
        let n = v.trim().parse::<u32>().unwrap_or(0);
        match (section, k.trim()) {
            ("cur", "RX") => ch.rx = n,
            ("cur", "TX") => ch.tx = n,
            ("cur", "Combined") => ch.combined = n,
            ("max", "Combined") => ch.max_combined = n,
            _ => {}
        }
    }
    saw_current.then_some(ch)
}

/// Parses `ethtool -k` output into feature → (on, fixed).
pub fn ethtool_features(text: &str) -> BTreeMap<String, (bool, bool)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        let on = if v.starts_with("on") {
            true
        } else if v.starts_with("off") {
            false
        } else {
            continue;
        };
        out.insert(k.trim().to_owned(), (on, v.contains("[fixed]")));
    }
    out
}

/// RSS indirection from `ethtool -x`: how many table entries point at each RX queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rss {
    /// Table size.
    pub entries: usize,
    /// Entries per queue (queue → count).
    pub per_queue: BTreeMap<u32, usize>,
    /// The hash function marked on, if shown (e.g. `toeplitz`).
    pub hash_function: Option<String>,
}

/// Parses `ethtool -x` output; `None` when it has no indirection table.
pub fn ethtool_rss(text: &str) -> Option<Rss> {
    let mut rss = Rss::default();
    let mut in_table = false;
    let mut in_funcs = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("RX flow hash indirection table") {
            in_table = true;
            continue;
        }
        if l.starts_with("RSS hash key") {
            in_table = false;
            continue;
        }
        if l.starts_with("RSS hash function") {
            in_funcs = true;
            continue;
        }
        if in_funcs {
            if let Some((name, state)) = l.split_once(':') {
                if state.trim() == "on" {
                    rss.hash_function = Some(name.trim().to_owned());
                }
            }
            continue;
        }
        if in_table {
            // "    0:      0     1     2     3     0     1     2     3"
            let Some((_, vals)) = l.split_once(':') else { continue };
            for q in vals.split_whitespace().filter_map(|v| v.parse::<u32>().ok()) {
                rss.entries += 1;
                *rss.per_queue.entry(q).or_default() += 1;
            }
        }
    }
    (rss.entries > 0).then_some(rss)
}

/// One interrupt line of `/proc/interrupts` that belongs to an interface.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Irq {
    /// The IRQ number.
    pub irq: u32,
    /// The action name (e.g. `eth0-TxRx-3`).
    pub name: String,
    /// The queue number guessed from the trailing digits of the name, if any.
    pub queue: Option<u32>,
    /// Interrupt counts per CPU column.
    pub counts: Vec<u64>,
}

/// The lines of `/proc/interrupts` whose action name mentions `iface` (or, when given, one of
/// `aliases`, such as the PCI address or `virtioN` the driver names its vectors after).
pub fn interrupts_for(text: &str, iface: &str, aliases: &[String]) -> Vec<Irq> {
    let mut lines = text.lines();
    let cpus = lines.next().map(|h| h.split_whitespace().count()).unwrap_or(0);
    let mut out = Vec::new();
    for line in lines {
        let Some((num, rest)) = line.split_once(':') else { continue };
        let Ok(irq) = num.trim().parse::<u32>() else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() <= cpus {
            continue;
        }
        let name = fields[fields.len() - 1];
        let matches = |n: &str| {
            n == iface
                || n.starts_with(&format!("{iface}-"))
                || aliases.iter().any(|a| n.starts_with(a.as_str()))
        };
        if !matches(name) {
            continue;
        }
        let counts = fields[..cpus].iter().map(|c| c.parse().unwrap_or(0)).collect();
        let digits: String = name.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
        let queue = digits.chars().rev().collect::<String>().parse().ok();
        out.push(Irq { irq, name: name.to_owned(), queue, counts });
    }
    out
}

/// XDP state from `ip -d link show dev IF`: the attached program id, if any.
pub fn xdp_attached(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w.starts_with("prog/xdp") {
            return words
                .next()
                .and_then(|id| (id == "id").then(|| words.next()).flatten())
                .map(|id| format!("{w} id {id}"));
        }
    }
    None
}

#[cfg(test)]
mod tests;
