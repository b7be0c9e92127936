#!/usr/bin/env bash
# Instructions per request of a server (Peregrine's and quinn's) serving the independent quinn
# client's requests/s scenario (benches quinn_perf client --rps: 512-byte request, 4 KiB
# response), counted by callgrind: repeatable whatever else the machine is doing, unlike
# requests/s. With --client, also the client's instructions per request against each server
# (the quinn client runs under callgrind, the server natively): what a server's packets cost
# the peer.
#
#   scripts/callgrind_rps.sh [--connections 1] [--streams 16] [--duration 10s] [--client]
#                            [--old PATH] [--no-build]
#
# Each figure is (all instructions of the process - aws-lc's one-off entropy seeding at start
# (jitterentropy)) / requests completed; the one handshake stays in (about 1.5 M instructions,
# a few hundred per request over the thousands served). Under valgrind aws-lc runs its AVX2
# AES-GCM code, so crypto weighs more than on the real CPU, and a large memcpy counts one
# instruction per byte (rep movsb).
set -euo pipefail

conns=1
streams=16
duration=10s
client=0
old=""
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --connections) conns="${2:?--connections needs a value}"; shift 2 ;;
        --streams) streams="${2:?--streams needs a value}"; shift 2 ;;
        --duration) duration="${2:?--duration needs a value}"; shift 2 ;;
        --client) client=1; shift ;;
        --old) old="${2:?--old needs a path}"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "callgrind_rps.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
bench_need valgrind callgrind_annotate jq awk timeout
[ "$build" = 1 ] && bench_build
bench_bins "$peregrine" "$quinn" ${old:+"$old"}
bench_init

"$quinn" gen-cert --cert "$work/cert.pem" --key "$work/key.pem"
mkdir -p "$work/www"

# server_cmd KIND: the command line of server KIND (peregrine, old, quinn).
server_cmd() {
    case "$1" in
        peregrine) echo "$peregrine server --workers 2 --root $work/www" ;;
        old) echo "$old server --workers 2 --root $work/www" ;;
        quinn) echo "$quinn server" ;;
    esac
}

# per_request CALLGRIND_FILE REQUESTS: instructions per request, jitterentropy left out.
per_request() {
    callgrind_annotate --inclusive=no "$1" 2>/dev/null | awk -v n="$2" '
        /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
        /jitterentropy/ && $2 ~ /^\(/ { gsub(",", "", $1); seed += $1 }
        END { if (n > 0) printf "%.0f", (total - seed) / n; else print "nan" }'
}

# measure KIND SIDE: one run with SIDE (server or client) under callgrind; prints
# "requests instructions_per_request".
measure() {
    local kind="$1" side="$2" out req
    local -a srv cli
    read -r -a srv <<<"$(server_cmd "$kind")"
    srv+=(--listen 127.0.0.1:0 --cert "$work/cert.pem" --key "$work/key.pem")
    [ "$side" = server ] && srv=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "${srv[@]}")
    bench_start "$kind-$side" "${srv[@]}"
    cli=("$quinn" client --server "localhost:${port[$kind-$side]}" --ca "$work/cert.pem"
        --duration "$duration" --json --rps --connections "$conns" --streams "$streams"
        --request-size 512 --response-size 4K)
    [ "$side" = client ] && cli=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "${cli[@]}")
    if ! out="$(timeout 600 "${cli[@]}" 2>"$work/client.err")"; then
        echo "callgrind_rps.sh: the client against $kind failed: $(tail -n 3 "$work/client.err")" >&2
        out='{}'
    fi
    # SIGINT lets valgrind write its file at exit (SIGTERM would too; INT is what a user sends).
    kill -INT "${pid[$kind-$side]}" 2>/dev/null || true
    bench_stop "$kind-$side"
    req="$(jq -r '.requests // 0' <<<"$out")"
    echo "$req $(per_request "$work/cg.out" "$req")"
    rm -f "$work/cg.out"
}

servers=(peregrine)
[ -n "$old" ] && servers+=(old)
servers+=(quinn)
declare -A name=([peregrine]=Peregrine [old]="Peregrine (old)" [quinn]=quinn)
echo "quinn client --rps, $conns connection(s) x $streams streams, 512 B request, 4 KiB response, $duration"
printf '%-18s %10s %22s' server requests "server instr/request"
[ "$client" = 1 ] && printf ' %22s' "client instr/request"
echo
for s in "${servers[@]}"; do
    read -r req srv <<<"$(measure "$s" server)"
    printf '%-18s %10s %22s' "${name[$s]}" "$req" "$srv"
    if [ "$client" = 1 ]; then
        read -r _ cli <<<"$(measure "$s" client)"
        printf ' %22s' "$cli"
    fi
    echo
done
