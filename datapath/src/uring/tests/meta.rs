//! Per-datagram metadata over loopback: ECN marks, pktinfo, dual-stack addresses.

use super::*;

fn ecn_round_trip(rx_cfg: UringConfig, tx_cfg: UringConfig) {
    let mut rx = open!(rx_cfg.with_gro(false));
    let mut tx = open!(tx_cfg);
    assert!(rx.capabilities().ecn && tx.capabilities().ecn);
    let dst = rx.local_addr();
    let marks = [Ecn::Ect0, Ecn::Ect1, Ecn::Ce, Ecn::NotEct];
    let outs: Vec<Out> = marks
        .iter()
        .enumerate()
        .map(|(i, &m)| Out::new(dst, pattern(i as u32, 64)).ecn(m))
        .collect();
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 4, T);
    assert_eq!(flatten(&got), expected(&outs));
    let seen: Vec<Ecn> = got.iter().map(|d| d.meta.ecn).collect();
    assert_eq!(seen, marks, "each ECN codepoint survives the round trip");
}

#[test]
fn ecn_marks_round_trip_v4() {
    ecn_round_trip(v4(), v4());
}

#[test]
fn ecn_marks_round_trip_v6() {
    ecn_round_trip(v6(), v6());
}

#[test]
fn pktinfo_reports_the_destination_and_source_can_be_chosen() {
    // Bound to the wildcard, so only pktinfo can tell which address a datagram was sent to.
    let mut rx = open!(UringConfig::new("0.0.0.0:0".parse().unwrap()).with_gro(false));
    let mut tx = open!(v4());
    let port = rx.local_addr().port();
    let to = |ip: &str| SocketAddr::new(ip.parse().unwrap(), port);
    let src: IpAddr = "127.0.0.9".parse().unwrap();
    let outs = [Out::new(to("127.0.0.1"), vec![1]), Out::new(to("127.0.0.3"), vec![2]).src(src)];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 2, T);
    assert_eq!(flatten(&got), expected(&outs));
    assert_eq!(got[0].meta.dst_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(got[1].meta.dst_ip, Some("127.0.0.3".parse().unwrap()));
    assert_eq!(got[1].meta.src.ip(), src, "IP_PKTINFO on transmit chose the source");

    let mut rx6 = open!(UringConfig::new("[::]:0".parse().unwrap()).with_gro(false));
    let mut tx6 = open!(v6());
    let dst6 = SocketAddr::new("::1".parse().unwrap(), rx6.local_addr().port());
    send_all(&mut tx6, &[Out::new(dst6, vec![3])]);
    let got6 = recv_n(&mut rx6, 1, T);
    assert_eq!(got6.len(), 1);
    assert_eq!(got6[0].meta.dst_ip, Some("::1".parse().unwrap()));
}

#[test]
fn dual_stack_socket_reports_ipv4_peers_as_ipv4() {
    let mut rx = open!(UringConfig::new("[::]:0".parse().unwrap()).with_gro(false));
    let mut tx = open!(v4().with_gso(false));
    let dst = SocketAddr::new("127.0.0.1".parse().unwrap(), rx.local_addr().port());
    send_all(&mut tx, &[Out::new(dst, pattern(5, 33)).ecn(Ecn::Ect1)]);
    let got = recv_n(&mut rx, 1, T);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, pattern(5, 33));
    assert_eq!(got[0].meta.src, tx.local_addr(), "an IPv4 address, not ::ffff:127.0.0.1");
    assert_eq!(got[0].meta.dst_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(got[0].meta.ecn, Ecn::Ect1);
}
