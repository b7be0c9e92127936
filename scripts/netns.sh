#!/usr/bin/env bash
# Two network namespaces joined by a veth pair, for the AF_XDP tests and benchmarks.
#
#   scripts/netns.sh up   [NAME] [--queues N] [--loss P] [--rate RATE]
#   scripts/netns.sh down [NAME]
#   scripts/netns.sh loss NAME P      # P in 0..100; 0 removes the loss rules
#   scripts/netns.sh rate NAME RATE   # e.g. 100mbit; "off" removes the shaper
#
# NAME defaults to "pg$$" (unique per invocation) and must be at most 10 characters: the
# namespaces are NAMEa / NAMEb, the interfaces NAMEa0 (in NAMEa) and NAMEb0 (in NAMEb).
# Addresses come from private test ranges and exist only inside the namespaces:
#   NAMEa0: 10.203.0.1/24, fd00:203::1/64      NAMEb0: 10.203.0.2/24, fd00:203::2/64
# Side "a" is where the AF_XDP queue runs; side "b" is the ordinary kernel stack.
#
# `up` prints the setup as shell assignments (NS_A=..., IF_A=..., IP4_A=..., ...) and cleans up
# whatever it created if any step fails. `down` is idempotent.
#
# Transmit checksum offload is turned off on both ends (ethtool -K tx off): on veth the kernel
# otherwise leaves UDP checksums partial (to be finished by a NIC that does not exist), and the
# AF_XDP side sees them. It accepts and counts them (rx_csum_partial; see docs/ARCHITECTURE.md,
# Datapaths), but the tests and benchmarks here want the full-checksum path a real NIC gives;
# tests of partial checksums turn the offload back on (ethtool -K NAMEb0 tx on).
#
# Loss (nftables, `numgen random mod 100 < P drop`) and rate (tc tbf) are applied on side b,
# on its input hook and its interface's netdev egress hook / its egress qdisc: AF_XDP bypasses netfilter and the qdisc layer on
# side a (XDP runs before the input hook; XSK transmit goes straight to the driver), so side b
# is where both directions can be shaped. (tc netem is not available on every kernel, so it is
# not used.)
set -euo pipefail

die() { echo "netns.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v ip >/dev/null || die "ip (iproute2) not found"

cmd=${1:-}
shift || true
name="pg$$"
if [[ $# -gt 0 && $1 != --* ]]; then
    name=$1
    shift
fi
[[ ${#name} -le 10 && $name =~ ^[A-Za-z0-9_]+$ ]] || die "bad NAME '$name' (<= 10 chars, [A-Za-z0-9_])"

ns_a="${name}a"; ns_b="${name}b"
if_a="${name}a0"; if_b="${name}b0"
ip4_a=10.203.0.1; ip4_b=10.203.0.2
ip6_a=fd00:203::1; ip6_b=fd00:203::2

queues=1; loss=0; rate=off

set_loss() { # P
    local p=$1
    ip netns exec "$ns_b" nft delete table inet pgloss 2>/dev/null || true
    ip netns exec "$ns_b" nft delete table netdev pglossout 2>/dev/null || true
    [[ $p -eq 0 ]] && return 0
    command -v nft >/dev/null || die "nft (nftables) not found"
    # Input hook for what side b's stack receives; the netdev egress hook of b's interface for
    # what it sends (an output-hook drop would fail the sender's sendmsg with EPERM instead of
    # losing the datagram on the wire).
    ip netns exec "$ns_b" nft -f - <<EOF
table inet pgloss {
    chain input { type filter hook input priority -300; policy accept; meta l4proto udp numgen random mod 100 < $p drop; }
}
table netdev pglossout {
    chain egress { type filter hook egress device "$if_b" priority -300; policy accept; meta l4proto udp numgen random mod 100 < $p drop; }
}
EOF
}

set_rate() { # RATE|off
    local r=$1
    ip netns exec "$ns_b" tc qdisc del dev "$if_b" root 2>/dev/null || true
    [[ $r == off ]] && return 0
    ip netns exec "$ns_b" tc qdisc add dev "$if_b" root tbf rate "$r" burst 64kb latency 50ms
}

down() {
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
}

up() {
    ip netns list | grep -qw "$ns_a" && die "namespace $ns_a exists (run: $0 down $name)"
    trap 'down; exit 1' ERR INT TERM
    ip netns add "$ns_a"
    ip netns add "$ns_b"
    ip link add "$if_a" numtxqueues "$queues" numrxqueues "$queues" netns "$ns_a" type veth \
        peer name "$if_b" numtxqueues "$queues" numrxqueues "$queues" netns "$ns_b"
    for side in a b; do
        local ns=ns_$side ifc=if_$side a4=ip4_$side a6=ip6_$side
        ip -n "${!ns}" link set lo up
        ip -n "${!ns}" addr add "${!a4}/24" dev "${!ifc}"
        ip -n "${!ns}" addr add "${!a6}/64" dev "${!ifc}" nodad
        if command -v ethtool >/dev/null; then
            ip netns exec "${!ns}" ethtool -K "${!ifc}" tx off >/dev/null 2>&1 || true
        fi
        ip -n "${!ns}" link set "${!ifc}" up
    done
    [[ $loss -ne 0 ]] && set_loss "$loss"
    [[ $rate != off ]] && set_rate "$rate"
    trap - ERR INT TERM
    cat <<EOF
NS_A=$ns_a
NS_B=$ns_b
IF_A=$if_a
IF_B=$if_b
IP4_A=$ip4_a
IP4_B=$ip4_b
IP6_A=$ip6_a
IP6_B=$ip6_b
QUEUES=$queues
EOF
}

case $cmd in
    up)
        while [[ $# -gt 0 ]]; do
            case $1 in
                --queues) queues=$2; shift 2 ;;
                --loss) loss=$2; shift 2 ;;
                --rate) rate=$2; shift 2 ;;
                *) die "unknown option $1" ;;
            esac
        done
        [[ $queues =~ ^[0-9]+$ && $queues -ge 1 ]] || die "bad --queues"
        [[ $loss =~ ^[0-9]+$ && $loss -le 100 ]] || die "bad --loss"
        command -v ethtool >/dev/null || echo "netns.sh: ethtool not found; UDP checksums on veth may stay partial" >&2
        up
        ;;
    down) down ;;
    loss)
        [[ ${1:-} =~ ^[0-9]+$ && $1 -le 100 ]] || die "usage: $0 loss NAME P"
        set_loss "$1"
        ;;
    rate)
        [[ -n ${1:-} ]] || die "usage: $0 rate NAME RATE|off"
        set_rate "$1"
        ;;
    *) die "usage: $0 up|down|loss|rate [NAME] ..." ;;
esac
