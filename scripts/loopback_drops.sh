#!/usr/bin/env bash
# Where do receivers drop a sender's datagrams on loopback? Runs servers and the independent
# quinn perf client (benches quinn_perf) inside a network namespace of its own, so the kernel's
# UDP counters (/proc/net/snmp: RcvbufErrors, InErrors, InDatagrams, OutDatagrams) count only
# these transfers, and reports per download the receive-buffer drops beside the goodput.
# Servers: quinn's perf server, s2n-quic's (if built) and Peregrine with each VARIANT's extra
# arguments (default: none, "--congestion bbr", "--pacing off", "--gso off").
#
#   sudo scripts/loopback_drops.sh [--size 100M] [--rounds 3] [--variant "ARGS"]...
#
# Needs root (namespace). Cleans the namespace up on exit; each transfer is bounded (120 s).
set -euo pipefail

size=100M
rounds=3
variants=()
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size="${2:?--size needs a value}"; shift 2 ;;
        --rounds) rounds="${2:?--rounds needs a value}"; shift 2 ;;
        --variant) variants+=("${2?}"); shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "loopback_drops.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
[ ${#variants[@]} -gt 0 ] || variants=("" "--congestion bbr" "--pacing off" "--gso off")
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 20 ]] \
    || { echo "loopback_drops.sh: --rounds is 1..20" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "loopback_drops.sh: must run as root (namespace)" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
bench_need ip jq awk timeout

bench_bins "$peregrine" "$quinn"

ns="pgdrop$$"
bench_cleanup_extra() {
    ip netns del "$ns" 2>/dev/null || true
}
bench_init
ip netns add "$ns"
ip -n "$ns" link set lo up
inns() { ip netns exec "$ns" "$@"; }

"$quinn" gen-cert --cert "$work/cert.pem" --key "$work/key.pem"
mkdir -p "$work/www"

declare -A label
servers=()
start_server() { # NAME LABEL CMD...: bench_start (lib.sh) in the namespace, labelled
    local name="$1"
    label[$name]="$2"
    shift 2
    bench_start "$name" ip netns exec "$ns" "$@"
    servers+=("$name")
}
i=0
for v in "${variants[@]}"; do
    # shellcheck disable=SC2086 # the variant's arguments are meant to split
    start_server "pg$i" "Peregrine ${v:-(defaults)}" "$peregrine" server --listen 127.0.0.1:0 \
        --cert "$work/cert.pem" --key "$work/key.pem" --root "$work/www" $v
    i=$((i + 1))
done
start_server quinn "quinn" "$quinn" server --listen 127.0.0.1:0 --cert "$work/cert.pem" \
    --key "$work/key.pem"
if [ -x "$s2n" ]; then
    start_server s2n "s2n-quic" "$s2n" server --listen 127.0.0.1:0 --cert "$work/cert.pem" \
        --key "$work/key.pem"
fi

# udp FIELD: the namespace's Udp counter FIELD from /proc/net/snmp.
udp() {
    inns awk -v f="$1" '$1 == "Udp:" { if (!n) { for (i = 2; i <= NF; i++) k[i] = $i; n = 1 }
        else for (i = 2; i <= NF; i++) if (k[i] == f) print $i }' /proc/net/snmp
}

declare -A res
for r in $(seq 1 "$rounds"); do
    for s in "${servers[@]}"; do
        b_err="$(udp RcvbufErrors)"; b_in="$(udp InDatagrams)"
        if out="$(timeout 120 ip netns exec "$ns" "$quinn" client \
            --server "localhost:${port[$s]}" --ca "$work/cert.pem" --download "$size" --json \
            2>"$work/client.err")"; then
            g="$(jq -r '.goodput_gbps' <<<"$out" | awk '{ printf "%.2f", $1 }')"
        else
            g=nan
        fi
        e=$(($(udp RcvbufErrors) - b_err)); n=$(($(udp InDatagrams) - b_in))
        echo "round $r/$rounds: ${label[$s]}: $g Gbit/s, $e receive-buffer drops, $n datagrams in" >&2
        res[$s]+="$g/$e/$n "
    done
done

echo
echo "quinn client downloads $size on loopback (own namespace), $rounds rounds; per round:"
echo "goodput Gbit/s / receive-buffer drops (RcvbufErrors: the client's socket, or the server's"
echo "for ACKs) / UDP InDatagrams of the namespace (a GRO batch counts once)"
for s in "${servers[@]}"; do
    printf '  %-32s %s\n' "${label[$s]}" "${res[$s]}"
done
