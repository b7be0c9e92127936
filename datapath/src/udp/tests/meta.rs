//! IPv6, dual-stack, ECN and pktinfo over loopback.

use std::time::Duration;

use super::*;

const T: Duration = Duration::from_secs(2);
const MARKS: [Ecn; 4] = [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce];

#[test]
fn ipv6_loopback_with_gso_and_gro() {
    let mut rx = open(&v6());
    let mut tx = open(&v6());
    assert!(rx.capabilities().ipv6);
    require!(tx, gso);
    let outs = [
        Out::new(rx.local_addr(), pattern(1, 7 * 1350 + 11)).gso(1350),
        Out::new(rx.local_addr(), pattern(2, 99)),
    ];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 9, T);
    assert_eq!(flatten(&got), expected(&outs));
    assert!(got.iter().all(|d| d.meta.src == tx.local_addr()));
    if rx.capabilities().gro {
        assert_eq!((got[0].data.len(), got[0].meta.segment_size), (7 * 1350 + 11, 1350));
    }
}

/// Sends each ECN mark as a plain datagram and as a GSO train, and checks what arrives.
fn ecn_round_trip(rx_cfg: &UdpConfig, tx_cfg: &UdpConfig, dst_ip: &str) {
    let mut rx = open(rx_cfg);
    let mut tx = open(tx_cfg);
    require!(rx, ecn);
    require!(tx, ecn);
    let dst = SocketAddr::new(dst_ip.parse().unwrap(), rx.local_addr().port());
    let mut outs: Vec<Out> = MARKS
        .iter()
        .enumerate()
        .map(|(i, &m)| Out::new(dst, pattern(i as u32, 300)).ecn(m))
        .collect();
    outs.push(Out::new(dst, pattern(9, 3 * 1000)).gso(1000).ecn(Ecn::Ce));
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 7, T);
    assert_eq!(flatten(&got), expected(&outs));
    let marks: Vec<Ecn> =
        got.iter().flat_map(|d| std::iter::repeat_n(d.meta.ecn, d.datagrams().len())).collect();
    assert_eq!(marks, [&MARKS[..], &[Ecn::Ce; 3]].concat(), "every mark survives");
}

#[test]
fn ecn_marks_round_trip_v4() {
    ecn_round_trip(&v4(), &v4(), "127.0.0.1");
}

#[test]
fn ecn_marks_round_trip_v6() {
    ecn_round_trip(&v6(), &v6(), "::1");
}

#[test]
fn ecn_marks_round_trip_dual_stack_v4() {
    let any6 = UdpConfig::new("[::]:0".parse().unwrap());
    // IPv4 traffic into a dual-stack socket, and out of one.
    ecn_round_trip(&any6, &v4(), "127.0.0.1");
    ecn_round_trip(&v4(), &any6, "127.0.0.1");
}

#[test]
fn ecn_off_neither_marks_nor_reads() {
    let mut rx = open(&v4());
    let mut tx = open(&v4().with_ecn(false));
    assert!(!tx.capabilities().ecn);
    send_all(&mut tx, &[Out::new(rx.local_addr(), vec![1; 10]).ecn(Ecn::Ce)]);
    let got = recv_n(&mut rx, 1, T);
    assert_eq!(got[0].meta.ecn, Ecn::NotEct, "no mark set by an ECN-off queue");
}

#[test]
fn pktinfo_reports_the_destination_address() {
    let mut rx = open(&UdpConfig::new("0.0.0.0:0".parse().unwrap()));
    require!(rx, pktinfo);
    let mut tx = open(&v4());
    let port = rx.local_addr().port();
    let outs: Vec<Out> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|ip| Out::new(SocketAddr::new(ip.parse().unwrap(), port), ip.as_bytes().to_vec()))
        .collect();
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 3, T);
    assert_eq!(got.len(), 3);
    for d in &got {
        let ip: IpAddr = std::str::from_utf8(&d.data).unwrap().parse().unwrap();
        assert_eq!(d.meta.dst_ip, Some(ip), "datagram sent to {ip}");
    }
}

#[test]
fn pktinfo_on_dual_stack_reports_v4_as_v4() {
    let mut rx = open(&UdpConfig::new("[::]:0".parse().unwrap()));
    require!(rx, pktinfo);
    let port = rx.local_addr().port();
    let mut tx4 = open(&v4());
    let mut tx6 = open(&v6());
    send_all(&mut tx4, &[Out::new(SocketAddr::new("127.0.0.1".parse().unwrap(), port), vec![4])]);
    let got = recv_n(&mut rx, 1, T);
    assert_eq!(got[0].meta.src, tx4.local_addr(), "IPv4 peer reported as V4, not mapped");
    assert!(got[0].meta.src.is_ipv4());
    assert_eq!(got[0].meta.dst_ip, Some("127.0.0.1".parse().unwrap()));
    send_all(&mut tx6, &[Out::new(SocketAddr::new("::1".parse().unwrap(), port), vec![6])]);
    let got = recv_n(&mut rx, 1, T);
    assert_eq!(got[0].meta.src, tx6.local_addr());
    assert_eq!(got[0].meta.dst_ip, Some("::1".parse().unwrap()));
}

#[test]
fn source_address_can_be_chosen() {
    let mut rx = open(&v4());
    let mut tx = open(&UdpConfig::new("0.0.0.0:0".parse().unwrap()));
    let outs = [
        Out::new(rx.local_addr(), vec![5]).src("127.0.0.5".parse().unwrap()),
        Out::new(rx.local_addr(), vec![6]).src("127.0.0.6".parse().unwrap()),
    ];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 2, T);
    let srcs: Vec<IpAddr> = got.iter().map(|d| d.meta.src.ip()).collect();
    assert_eq!(srcs, vec!["127.0.0.5".parse::<IpAddr>().unwrap(), "127.0.0.6".parse().unwrap()]);
    assert!(got.iter().all(|d| d.meta.src.port() == tx.local_addr().port()));

    let mut rx6 = open(&v6());
    let mut tx6 = open(&UdpConfig::new("[::]:0".parse().unwrap()));
    send_all(&mut tx6, &[Out::new(rx6.local_addr(), vec![7]).src("::1".parse().unwrap())]);
    assert_eq!(recv_n(&mut rx6, 1, T)[0].meta.src.ip(), "::1".parse::<IpAddr>().unwrap());
}

#[test]
fn dual_stack_socket_sends_to_ipv4_peers() {
    let mut rx = open(&v4());
    let mut tx = open(&UdpConfig::new("[::]:0".parse().unwrap()));
    require!(tx, gso);
    let outs = [Out::new(rx.local_addr(), pattern(3, 2500)).gso(1000)];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 3, T);
    assert_eq!(flatten(&got), expected(&outs));
    assert_eq!(got[0].meta.src.port(), tx.local_addr().port());
    assert!(got[0].meta.src.is_ipv4());
}
