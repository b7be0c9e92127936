#!/usr/bin/env bash
# Instructions per datagram of Peregrine's two worker threads in the single-connection
# goodput benchmark (benches/examples/goodput_vs_quinn, Peregrine only), counted by callgrind:
# repeatable whatever else the machine is doing, unlike wall-clock goodput. Use it to A/B a
# hot-path change (run it on both commits; compare the per-datagram figures).
#
#   scripts/callgrind_goodput.sh [MiB] [--no-build]      (default 100 MiB)
#
# Prints, for the sending (server) and the receiving (client) worker: instructions in the
# thread, and per datagram sent. The counts include the handshake (a few million
# instructions: use enough MiB to amortise it). Under valgrind aws-lc runs its AVX2 AES-GCM
# code, not AVX-512, so the crypto share is larger than on the real CPU.
set -euo pipefail

mib=100
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *[!0-9]*) echo "callgrind_goodput.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
        *) mib="$1"; shift ;;
    esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bench="$target/release/examples/goodput_vs_quinn"
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
    echo "callgrind_goodput.sh: needs valgrind (callgrind, callgrind_annotate)" >&2
    exit 1
fi
if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --release -q -p peregrine-benches --example goodput_vs_quinn)
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
PEREGRINE_PIN=0 valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$out/cg.%p" "$bench" "$mib" 1 peregrine >"$out/bench.txt" 2>"$out/valgrind.txt"
datagrams="$(sed -n 's/.*peregrine sender: \([0-9]*\) datagrams.*/\1/p' "$out/bench.txt")"
if [ -z "$datagrams" ]; then
    echo "callgrind_goodput.sh: the benchmark printed no datagram count:" >&2
    cat "$out/bench.txt" "$out/valgrind.txt" >&2
    exit 1
fi

# The worker threads are the ones whose cost is almost all in Worker::run; the sender is
# the one where poll_transmit outweighs handle_datagram.
inclusive() { # file, function pattern -> inclusive instructions (0 when absent)
    callgrind_annotate --inclusive=yes "$1" 2>/dev/null \
        | { grep -E "$2" || true; } | head -1 | awk '{gsub(",", "", $1); print $1+0}'
}
echo "payload ${mib} MiB, ${datagrams} datagrams sent (callgrind, instructions)"
for f in "$out"/cg.*-*; do
    run="$(inclusive "$f" 'Worker<Q>::run \[')"
    [ "${run:-0}" -gt 0 ] || continue
    tx="$(inclusive "$f" 'Connection>::poll_transmit \[')"
    rx="$(inclusive "$f" 'Connection>::handle_datagram \[')"
    role=receiver main=handle_datagram part="${rx:-0}"
    if [ "${tx:-0}" -gt "${rx:-0}" ]; then
        role=sender main=poll_transmit part="$tx"
    fi
    total="$(sed -n 's/^summary: //p' "$f")"
    printf '%-8s worker: %11d instructions, %6d per datagram (%s: %d)\n' \
        "$role" "$total" $((total / datagrams)) "$main" $((part / datagrams))
done
