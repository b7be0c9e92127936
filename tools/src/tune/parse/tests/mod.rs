//! Parser tests over captured-format samples of ethtool, /proc/interrupts and ip output.

use super::*;

const ETHTOOL_L: &str = "Channel parameters for eth0:
Pre-set maximums:
RX:		n/a
TX:		n/a
Other:		1
Combined:	63
Current hardware settings:
RX:		n/a
TX:		n/a
Other:		1
Combined:	8
";

const ETHTOOL_L_SPLIT: &str = "Channel parameters for enp1s0:
Pre-set maximums:
RX:		4
TX:		4
Other:		n/a
Combined:	n/a
Current hardware settings:
RX:		2
TX:		4
Other:		n/a
Combined:	n/a
";

const ETHTOOL_K: &str = "Features for eth0:
rx-checksumming: on
tx-checksumming: on
	tx-checksum-ipv4: off [fixed]
	tx-checksum-ip-generic: on
scatter-gather: on
generic-segmentation-offload: on
generic-receive-offload: off
rx-udp-gro-forwarding: off
tx-udp-segmentation: on
large-receive-offload: off [fixed]
";

const ETHTOOL_X: &str = "RX flow hash indirection table for eth0 with 4 RX ring(s):
    0:      0     1     2     3     0     1     2     3
    8:      0     1     2     3     0     1     2     2
RSS hash key:
6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb
RSS hash function:
    toeplitz: on
    xor: off
    crc32: off
";

const INTERRUPTS: &str = "           CPU0       CPU1       CPU2       CPU3
  0:         45          0          0          0   IO-APIC   2-edge      timer
 24:          0          0          0          0  PCI-MSI 524288-edge      eth0
 25:      10231          0          0          5  PCI-MSI 524289-edge      eth0-TxRx-0
 26:          0      20455          0          0  PCI-MSI 524290-edge      eth0-TxRx-1
 27:          3          0      30001          0  PCI-MSI 524291-edge      eth0-TxRx-2
 28:          0          0          0      40000  PCI-MSI 524292-edge      eth0-TxRx-3
 29:          9          9          9          9  PCI-MSI 524293-edge      eth10-TxRx-0
 30:          1          2          0          0  PCI-MSIX-0000:00:05.0   1-edge      virtio1-input.0
NMI:          0          0          0          0   Non-maskable interrupts
";

#[test]
fn channels_combined_and_split() {
    let ch = ethtool_channels(ETHTOOL_L).unwrap();
    assert_eq!((ch.combined, ch.max_combined, ch.rx_queues()), (8, 63, 8));
    let ch = ethtool_channels(ETHTOOL_L_SPLIT).unwrap();
    assert_eq!((ch.rx, ch.tx, ch.combined, ch.rx_queues()), (2, 4, 0, 2));
    assert_eq!(ethtool_channels("netlink error: Operation not supported"), None);
}

#[test]
fn features_on_off_fixed() {
    let f = ethtool_features(ETHTOOL_K);
    assert_eq!(f["generic-segmentation-offload"], (true, false));
    assert_eq!(f["generic-receive-offload"], (false, false));
    assert_eq!(f["tx-checksum-ipv4"], (false, true));
    assert_eq!(f["rx-udp-gro-forwarding"], (false, false));
    assert_eq!(f["large-receive-offload"], (false, true));
    assert!(!f.contains_key("Features for eth0"));
}

#[test]
fn rss_table_counts() {
    let r = ethtool_rss(ETHTOOL_X).unwrap();
    assert_eq!(r.entries, 16);
    assert_eq!(r.per_queue[&2], 5);
    assert_eq!(r.per_queue[&3], 3);
    assert_eq!(r.hash_function.as_deref(), Some("toeplitz"));
    assert_eq!(ethtool_rss("Cannot get RX ring count: Operation not supported"), None);
}

#[test]
fn interrupts_of_one_interface() {
    let irqs = interrupts_for(INTERRUPTS, "eth0", &[]);
    let nums: Vec<u32> = irqs.iter().map(|i| i.irq).collect();
    assert_eq!(nums, [24, 25, 26, 27, 28], "eth10 is not eth0");
    assert_eq!(irqs[0].queue, Some(0), "trailing digit of the bare name");
    assert_eq!(irqs[3].queue, Some(2));
    assert_eq!(irqs[4].counts, [0, 0, 0, 40000]);
    let v = interrupts_for(INTERRUPTS, "ens5", &["virtio1-input".to_owned()]);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].queue, Some(0));
    assert!(interrupts_for(INTERRUPTS, "lo", &[]).is_empty());
    assert!(interrupts_for("", "eth0", &[]).is_empty());
}

#[test]
fn xdp_program_detection() {
    let with = "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 xdp qdisc mq state UP\n    \
                link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff\n    prog/xdp id 42 name xdp_pass tag 3b185187f1855c4c jited";
    assert_eq!(xdp_attached(with).as_deref(), Some("prog/xdp id 42"));
    let generic = "mtu 1500 xdpgeneric qdisc\n    prog/xdpgeneric id 7 tag 00";
    assert_eq!(xdp_attached(generic).as_deref(), Some("prog/xdpgeneric id 7"));
    assert_eq!(xdp_attached("1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue"), None);
}
