#!/usr/bin/env bash
# Peregrine's server against independent clients, beside quinn's and s2n-quic's servers, in one
# run on loopback: an independent quinn client (benches quinn_perf) and an s2n-quic client
# (benches/s2n_perf) each download and upload SIZE from a Peregrine server (and, with --old, a
# second Peregrine binary such as the previous main), a quinn server and an s2n-quic server;
# every combination runs ROUNDS times, interleaved (round by round, so drift in the machine's
# load spreads over all servers), and the table shows medians: goodput and each server
# process's CPU seconds per GB moved (utime + stime from /proc/PID/stat around each transfer).
#
#   scripts/bench_peers.sh [--size 1G] [--rounds 3] [--old PATH] [--no-build]
#                          [--peregrine-args "ARGS"] [--also "ARGS"] [--json FILE]
#
# --also "ARGS" adds a second server from the same Peregrine binary with ARGS appended (e.g.
# --also "--congestion bbr"), so two settings are compared within one run.
# Each server runs with its own defaults: `peregrine server` (as built), quinn_perf server
# (quinn's default transport, 2 tokio threads), s2n-perf server (s2n-quic's perf defaults: max
# MTU 9000, BBR, 2 tokio threads). Clients: quinn_perf client (quinn's defaults) and s2n-perf
# client (same defaults as its server). Builds peregrine and quinn_perf (workspace, release)
# and s2n-perf (its own workspace, target dir target/s2n-perf; the first build takes long).
# Targets printed at the end (issue 18): Peregrine's goodput >= 1.5x quinn's server both ways,
# its server CPU per GB <= 0.6x quinn's, its download >= s2n-quic's. Compare within one run.
set -euo pipefail

size=1G
rounds=3
old=""
build=1
pg_args=""
also_args=""
json_out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size="${2:?--size needs a value}"; shift 2 ;;
        --rounds) rounds="${2:?--rounds needs a value}"; shift 2 ;;
        --old) old="${2:?--old needs a path}"; shift 2 ;;
        --no-build) build=0; shift ;;
        --peregrine-args) pg_args="${2?}"; shift 2 ;;
        --also) also_args="${2:?--also needs arguments}"; shift 2 ;;
        --json) json_out="${2:?--json needs a file}"; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "bench_peers.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done


# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
bench_need jq awk timeout
[ "$build" = 1 ] && bench_build s2n
bench_bins "$peregrine" "$quinn" "$s2n" ${old:+"$old"}
bench_init

"$quinn" gen-cert --cert "$work/cert.pem" --key "$work/key.pem"
mkdir -p "$work/www"

servers=(peregrine)
# shellcheck disable=SC2086 # extra arguments are meant to split
bench_start peregrine "$peregrine" server --listen 127.0.0.1:0 \
    --cert "$work/cert.pem" --key "$work/key.pem" --root "$work/www" $pg_args
if [ -n "$also_args" ]; then
    servers+=(also)
    # shellcheck disable=SC2086 # extra arguments are meant to split
    bench_start also "$peregrine" server --listen 127.0.0.1:0 \
        --cert "$work/cert.pem" --key "$work/key.pem" --root "$work/www" $pg_args $also_args
fi
if [ -n "$old" ]; then
    servers+=(old)
    bench_start old "$old" server --listen 127.0.0.1:0 \
        --cert "$work/cert.pem" --key "$work/key.pem" --root "$work/www"
fi
servers+=(quinn s2n)
bench_start quinn "$quinn" server --listen 127.0.0.1:0 \
    --cert "$work/cert.pem" --key "$work/key.pem"
bench_start s2n "$s2n" server --listen 127.0.0.1:0 \
    --cert "$work/cert.pem" --key "$work/key.pem"

hz="$(getconf CLK_TCK)"

# run CLIENT SERVER DIR: one transfer; prints "goodput_gbps cpu_s_per_gb" (or "nan nan").
run() {
    local client="$1" server="$2" dir="$3" out before after bytes gbps
    local -a cmd
    case "$client" in
        quinn) cmd=("$quinn" client --server "localhost:${port[$server]}" --ca "$work/cert.pem") ;;
        s2n) cmd=("$s2n" client --server "localhost:${port[$server]}" --ca "$work/cert.pem") ;;
    esac
    cmd+=("--$dir" "$size" --json)
    before="$(cpu_ticks "${pid[$server]}")"
    if ! out="$(timeout 300 "${cmd[@]}" 2>"$work/client.err")"; then
        echo "bench_peers.sh: $client client -> $server server ($dir) failed: \
$(tail -n 3 "$work/client.err")" >&2
        echo "nan nan"
        return
    fi
    after="$(cpu_ticks "${pid[$server]}")"
    bytes="$(jq -r '.bytes_total' <<<"$out")"
    gbps="$(jq -r '.goodput_gbps' <<<"$out")"
    awk -v g="$gbps" -v b="$bytes" -v t=$((after - before)) -v hz="$hz" \
        'BEGIN { if (b > 0) printf "%.4f %.4f\n", g, t / hz / (b / 1e9); else print "nan nan" }'
}

clients=(quinn s2n)
dirs=(download upload)
declare -A goodput cpu
for r in $(seq 1 "$rounds"); do
    for dir in "${dirs[@]}"; do
        for c in "${clients[@]}"; do
            for s in "${servers[@]}"; do
                echo "round $r/$rounds: $c client, $s server, $dir $size" >&2
                read -r g u < <(run "$c" "$s" "$dir")
                goodput["$dir,$c,$s"]+="$g "
                cpu["$dir,$c,$s"]+="$u "
            done
        done
    done
done

fmt() { awk -v v="$1" 'BEGIN { if (v == "nan") print "n/a"; else printf "%.2f", v }'; }

declare -A name=([peregrine]=Peregrine [old]="Peregrine (old)" [also]="Peregrine $also_args"
    [quinn]=quinn [s2n]=s2n-quic)
echo
echo "loopback, $size per transfer, median of $rounds, $(nproc) CPUs; Gbit/s and server CPU s/GB"
echo "(min-max of the goodput runs in brackets)"
for dir in "${dirs[@]}"; do
    for c in "${clients[@]}"; do
        echo
        echo "$dir, ${name[$c]} client:"
        printf '  %-28s %9s %15s %9s %10s %10s\n' server Gbit/s "(min-max)" "CPU s/GB" "vs quinn" "CPU/quinn"
        qg="$(median "${goodput[$dir,$c,quinn]}")"
        qu="$(median "${cpu[$dir,$c,quinn]}")"
        for s in "${servers[@]}"; do
            g="$(median "${goodput[$dir,$c,$s]}")"
            u="$(median "${cpu[$dir,$c,$s]}")"
            range="$(tr ' ' '\n' <<<"${goodput[$dir,$c,$s]}" | grep -v -e '^$' -e nan | sort -g \
                | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "(%.2f-%.2f)", lo, hi }')"
            printf '  %-28s %9s %15s %9s %10s %10s\n' "${name[$s]}" "$(fmt "$g")" "$range" \
                "$(fmt "$u")" "$(ratio "$g" "$qg")" "$(ratio "$u" "$qu")"
        done
    done
done

# Targets (issue 18), with the quinn client.
pd="$(median "${goodput[download,quinn,peregrine]}")"
pu="$(median "${goodput[upload,quinn,peregrine]}")"
qd="$(median "${goodput[download,quinn,quinn]}")"
qu="$(median "${goodput[upload,quinn,quinn]}")"
sd="$(median "${goodput[download,quinn,s2n]}")"
pc="$(median "${cpu[download,quinn,peregrine]} ${cpu[upload,quinn,peregrine]}")"
qc="$(median "${cpu[download,quinn,quinn]} ${cpu[upload,quinn,quinn]}")"
check() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { if (a == "n/a") print "n/a"; else if ((op == ">=" && a >= b) || (op == "<=" && a <= b)) print "met"; else print "NOT met" }'; }
echo
echo "targets (quinn client):"
d="$(ratio "$pd" "$qd")"; u="$(ratio "$pu" "$qu")"; c="$(ratio "$pc" "$qc")"; s="$(ratio "$pd" "$sd")"
echo "  download >= 1.5x quinn server:     $d  $(check "$d" '>=' 1.5)"
echo "  upload >= 1.5x quinn server:       $u  $(check "$u" '>=' 1.5)"
echo "  server CPU/GB <= 0.6x quinn's:     $c  $(check "$c" '<=' 0.6)"
echo "  download >= s2n-quic server's:     $s  $(check "$s" '>=' 1.0)"

if [ -n "$json_out" ]; then
    {
        echo "{"
        first=1
        for k in "${!goodput[@]}"; do
            [ "$first" = 1 ] || echo ","
            first=0
            printf '  "%s": {"goodput_gbps": [%s], "cpu_s_per_gb": [%s]}' "$k" \
                "$(sed 's/ $//; s/ /, /g; s/nan/null/g' <<<"${goodput[$k]}")" \
                "$(sed 's/ $//; s/ /, /g; s/nan/null/g' <<<"${cpu[$k]}")"
        done
        echo
        echo "}"
    } >"$json_out"
fi
