//! Receive-path conditions reported once, when first seen, on the server's stderr: a datapath
//! that drops every packet of a client for a reason only a counter knows leaves the server
//! silently useless (the client just times out), so the first drop of each class is told with
//! a one-line hint. Later ones are only counted (`--metrics-addr`).

use peregrine_datapath::QueueStats;

/// Which receive conditions were already reported.
#[derive(Debug, Default)]
pub struct RxReport {
    partial: bool,
    bad_checksum: bool,
    malformed: bool,
}

impl RxReport {
    /// Lines for the conditions seen for the first time in `total` (the counters of every
    /// queue, summed); each condition is reported once in the life of `self`.
    pub fn check(&mut self, total: &QueueStats) -> Vec<String> {
        let mut out = Vec::new();
        if total.rx_csum_partial > 0 && !self.partial {
            self.partial = true;
            out.push(
                "peregrine: note: accepting UDP datagrams with partial checksums (left for a \
                 checksum offload by the peer's kernel, as over veth); QUIC's AEAD authenticates \
                 them (counter peregrine_datapath_rx_csum_partial_total)"
                    .to_owned(),
            );
        }
        if total.rx_bad_checksum > 0 && !self.bad_checksum {
            self.bad_checksum = true;
            out.push(format!(
                "peregrine: warning: the datapath dropped {} received frame(s) with a bad IPv4 or \
                 UDP checksum; if clients time out, a device on their side offloads checksums \
                 that nothing completes: try `ethtool -K <peer interface> tx off` there \
                 (counter peregrine_datapath_rx_bad_checksum_total)",
                total.rx_bad_checksum
            ));
        }
        if total.rx_malformed > 0 && !self.malformed {
            self.malformed = true;
            out.push(format!(
                "peregrine: warning: the datapath dropped {} malformed frame(s) for our port \
                 (inconsistent lengths, IP fragments, stacked VLAN tags or IPv6 extension \
                 headers it does not parse; counter peregrine_datapath_rx_malformed_total)",
                total.rx_malformed
            ));
        }
        out
    }
}

/// The receive counters of `queues` summed (those [`RxReport::check`] reads).
pub fn sum<'a>(queues: impl IntoIterator<Item = &'a QueueStats>) -> QueueStats {
    let mut t = QueueStats::default();
    for q in queues {
        t.rx_csum_partial += q.rx_csum_partial;
        t.rx_bad_checksum += q.rx_bad_checksum;
        t.rx_malformed += q.rx_malformed;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_condition_is_reported_once_with_its_hint() {
        let mut r = RxReport::default();
        assert!(r.check(&QueueStats::default()).is_empty(), "nothing to report");
        let a = QueueStats { rx_bad_checksum: 2, ..QueueStats::default() };
        let b = QueueStats { rx_bad_checksum: 1, rx_csum_partial: 5, ..QueueStats::default() };
        let lines = r.check(&sum([&a, &b]));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("partial checksums"), "{}", lines[0]);
        assert!(lines[1].contains("dropped 3 received frame(s) with a bad"), "{}", lines[1]);
        assert!(lines[1].contains("ethtool -K <peer interface> tx off"), "{}", lines[1]);
        assert!(lines.iter().all(|l| !l.contains('\n')), "one line each");
        let more = QueueStats { rx_bad_checksum: 9, rx_csum_partial: 9, ..QueueStats::default() };
        assert!(r.check(&more).is_empty(), "already reported");
        let m = QueueStats { rx_malformed: 1, ..more };
        let lines = r.check(&m);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("1 malformed frame(s)"), "{}", lines[0]);
    }
}
