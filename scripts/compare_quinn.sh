#!/usr/bin/env bash
# Peregrine and quinn side by side, in one run, on loopback: the same perf scenarios
# (draft-banks-quic-performance) for the same duration, peregrine client -> peregrine server
# and quinn client -> quinn server (and, unless --no-cross, the two cross pairs), then one
# table with the ratio peregrine/quinn for throughput, requests/s and handshakes/s.
#
#   scripts/compare_quinn.sh [--duration 3s] [--no-cross] [--no-build]
#
# Builds `peregrine` and the `quinn_perf` example in release. Servers run as separate
# processes on 127.0.0.1 (peregrine server with its default workers, quinn_perf server on
# 2 tokio threads); clients are `peregrine perf --json` and `quinn_perf client --json`. quinn
# runs with its default transport configuration. Compare figures within one run only.
set -euo pipefail

duration=3s
cross=1
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="${2:?--duration needs a value}"; shift 2 ;;
        --no-cross) cross=0; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "compare_quinn.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done


# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
bench_need jq
[ "$build" = 1 ] && bench_build
bench_bins "$peregrine" "$quinn"

bench_init

"$quinn" gen-cert --cert "$work/cert.pem" --key "$work/key.pem"
mkdir -p "$work/www"


bench_start peregrine "$peregrine" server --listen 127.0.0.1:0 \
    --cert "$work/cert.pem" --key "$work/key.pem" --root "$work/www"
bench_start quinn "$quinn" server --listen 127.0.0.1:0 \
    --cert "$work/cert.pem" --key "$work/key.pem"

# Scenario name -> client flags, and the JSON key it reports.
scenarios=(throughput rps handshakes)
declare -A flags=(
    [throughput]="--streams 1 --connections 1"
    [rps]="--rps --streams 4 --connections 1 --request-size 64 --response-size 1K"
    [handshakes]="--handshakes --connections 2"
)
# quinn_perf prints flat keys; peregrine perf prints iperf3-like start/intervals/end.
declare -A key=([throughput]=goodput_gbps [rps]=requests_per_s [handshakes]=handshakes_per_s)
declare -A pkey=([throughput]='end.sum.bits_per_second / 1e9' [rps]=end.sum.requests_per_second
    [handshakes]=end.sum.handshakes_per_second)
declare -A unit=([throughput]="Gbit/s" [rps]="req/s" [handshakes]="hs/s")

# measure CLIENT SERVER SCENARIO: prints the scenario's figure.
measure() {
    local client="$1" server="$2" scenario="$3" out
    local -a cmd
    if [ "$client" = peregrine ]; then
        cmd=("$peregrine" perf)
    else
        cmd=("$quinn" client)
    fi
    # shellcheck disable=SC2206 # the flags are meant to split into words
    cmd+=(--server "localhost:${port[$server]}" --ca "$work/cert.pem" --duration "$duration" --json
        ${flags[$scenario]})
    if ! out="$(timeout 120 "${cmd[@]}" 2>"$work/client.err")"; then
        echo "compare_quinn.sh: $client -> $server $scenario failed: $(cat "$work/client.err")" >&2
        echo "nan"
        return
    fi
    if [ "$client" = peregrine ]; then
        jq -r ".${pkey[$scenario]}" <<<"$out"
    else
        jq -r ".${key[$scenario]}" <<<"$out"
    fi
}

pairs=("peregrine peregrine" "quinn quinn")
if [ "$cross" = 1 ]; then
    pairs+=("peregrine quinn" "quinn peregrine")
fi

declare -A result
for scenario in "${scenarios[@]}"; do
    for pair in "${pairs[@]}"; do
        read -r c s <<<"$pair"
        echo "running $scenario: $c client -> $s server, $duration" >&2
        result["$scenario,$c,$s"]="$(measure "$c" "$s" "$scenario")"
    done
done

fmt() { awk -v v="$1" 'BEGIN { if (v == "nan") print "n/a"; else if (v < 100) printf "%.3f", v; else printf "%.0f", v }'; }

echo
echo "loopback, $duration per run, $(nproc) CPUs; client -> server"
printf '%-11s %-7s %12s %12s %10s' scenario unit "P -> P" "Q -> Q" "P/Q"
if [ "$cross" = 1 ]; then
    printf ' %12s %12s' "P -> Q" "Q -> P"
fi
echo
for scenario in "${scenarios[@]}"; do
    pp="${result[$scenario,peregrine,peregrine]}"
    qq="${result[$scenario,quinn,quinn]}"
    printf '%-11s %-7s %12s %12s %10s' "$scenario" "${unit[$scenario]}" \
        "$(fmt "$pp")" "$(fmt "$qq")" "$(ratio "$pp" "$qq")"
    if [ "$cross" = 1 ]; then
        printf ' %12s %12s' "$(fmt "${result[$scenario,peregrine,quinn]}")" \
            "$(fmt "${result[$scenario,quinn,peregrine]}")"
    fi
    echo
done
echo "P = peregrine, Q = quinn; P/Q = (peregrine -> peregrine) / (quinn -> quinn)"
