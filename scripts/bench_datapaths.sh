#!/usr/bin/env bash
# The datapaths side by side on a veth pair between two network namespaces, as one table:
# udp, uring, xdp-copy and xdp-zero-copy on side a (AF_XDP in native mode; xdp-copy copies each
# payload between engine buffers and UMEM frames, xdp-zero-copy has the engine seal into and
# open in the UMEM frames); raw datagrams/s both ways at SIZE bytes, QUIC goodput (Peregrine
# server on side a, Peregrine client on side b), side a's calls and CPU time per datagram, and
# each AF_XDP row's QUIC CPU per datagram as a ratio of udp's (issue 16's target: <= 0.6). The
# bind mode is printed (veth: copy mode only). Needs root, iproute2 and ethtool.
#
#   scripts/bench_datapaths.sh [SECS] [SIZE]     # defaults: 2 seconds per run, 1200 bytes
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "bench_datapaths.sh: must run as root" >&2; exit 1; }
cargo build --release -q -p peregrine-benches --example datapath_goodput
exec target/release/examples/datapath_goodput "${1:-2}" "${2:-1200}"
