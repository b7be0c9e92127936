#!/usr/bin/env bash
# Packets/s and CPU per packet of the udp and xdp (generic, native) datapaths on a veth pair
# between two network namespaces, as one table. Needs root, iproute2 and ethtool.
#
#   scripts/bench_datapaths.sh [SECS] [SIZE]     # defaults: 2 seconds per run, 1200 bytes
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "bench_datapaths.sh: must run as root" >&2; exit 1; }
cargo build --release -q -p peregrine-datapath --example bench_datapaths
exec target/release/examples/bench_datapaths "${1:-2}" "${2:-1200}"
