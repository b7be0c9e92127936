#!/usr/bin/env bash
# `peregrine server` against a quinn server, the same independent quinn client (benches
# quinn_perf) for both, in one run on loopback, interleaved (round by round, server by server)
# and medians of ROUNDS (issue 12, "Prove it"):
#   - requests/s: 512-byte request, 4 KiB response, 16 concurrent streams on one connection,
#     and 100 connections x 4 streams (quinn_perf client --rps);
#   - handshakes/s: 8 concurrent connect-and-close loops (--handshakes);
#   - holding HOLD idle connections (--hold), each server freshly started: its RSS (total, and
#     the growth over its RSS before the hold divided by HOLD), its thread count (both from
#     /proc/PID/status) and its CPU while idle (utime + stime from /proc/PID/stat over
#     IDLE_WINDOW, as % of one core).
#
#   scripts/bench_server.sh [--rounds 3] [--duration 3s] [--hold 10000] [--idle-window 3]
#                           [--old PATH] [--peregrine-args "ARGS"] [--no-build]
#
# Servers: `peregrine server --workers $(nproc)` (plus --peregrine-args; --old PATH adds a second
# peregrine binary, e.g. the previous main, with the same flags) and `quinn_perf server` (quinn's
# defaults, 2 tokio threads). The client: quinn_perf client, quinn's defaults, 2 tokio threads.
# Every client run is bounded (timeout), every server is stopped on exit. Builds both in release
# unless --no-build. Targets printed at the end (issue 12): requests/s >= 1.5x quinn, handshakes/s
# >= 1.3x quinn, HOLD connections at <= 32 KiB each with <= 32 server threads, idle CPU < 2%.
set -euo pipefail

rounds=3
duration=3s
hold=10000
idle_window=3
old=""
build=1
pg_args="--workers $(nproc)"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="${2:?--rounds needs a value}"; shift 2 ;;
        --duration) duration="${2:?--duration needs a value}"; shift 2 ;;
        --hold) hold="${2:?--hold needs a value}"; shift 2 ;;
        --idle-window) idle_window="${2:?--idle-window needs seconds}"; shift 2 ;;
        --old) old="${2:?--old needs a path}"; shift 2 ;;
        --peregrine-args) pg_args="${2?}"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "bench_server.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done


# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
bench_need jq awk timeout
[ "$build" = 1 ] && bench_build
bench_bins "$peregrine" "$quinn" ${old:+"$old"}
bench_init

"$quinn" gen-cert --cert "$work/cert.pem" --key "$work/key.pem"
mkdir -p "$work/www"

# start_server NAME KIND: starts server KIND (peregrine, old, quinn) in the background as NAME
# (port[NAME], pid[NAME]; see lib.sh).
start_server() {
    local name="$1" kind="$2"
    local -a cmd
    case "$kind" in
        # shellcheck disable=SC2206 # extra arguments are meant to split
        peregrine) cmd=("$peregrine" server --listen 127.0.0.1:0 --cert "$work/cert.pem"
            --key "$work/key.pem" --root "$work/www" $pg_args) ;;
        # shellcheck disable=SC2206
        old) cmd=("$old" server --listen 127.0.0.1:0 --cert "$work/cert.pem"
            --key "$work/key.pem" --root "$work/www" $pg_args) ;;
        quinn) cmd=("$quinn" server --listen 127.0.0.1:0 --cert "$work/cert.pem"
            --key "$work/key.pem") ;;
    esac
    bench_start "$name" "${cmd[@]}"
}

hz="$(getconf CLK_TCK)"

servers=(peregrine)
[ -n "$old" ] && servers+=(old)
servers+=(quinn)
for s in "${servers[@]}"; do
    start_server "$s" "$s"
done

scenarios=(rps1 rps100 handshakes)
declare -A flags=(
    [rps1]="--rps --connections 1 --streams 16 --request-size 512 --response-size 4K"
    [rps100]="--rps --connections 100 --streams 4 --request-size 512 --response-size 4K"
    [handshakes]="--handshakes --connections 8"
)
declare -A key=([rps1]=requests_per_s [rps100]=requests_per_s [handshakes]=handshakes_per_s)

# measure SERVER SCENARIO: writes the scenario's figure (or nan) to $work/res (not in a
# subshell: it restarts a server that died).
measure() {
    local server="$1" scenario="$2" out
    # shellcheck disable=SC2206 # the flags are meant to split into words
    local -a cmd=("$quinn" client --server "localhost:${port[$server]}" --ca "$work/cert.pem"
        --duration "$duration" --json ${flags[$scenario]})
    if ! out="$(timeout 120 "${cmd[@]}" 2>"$work/client.err")"; then
        echo "bench_server.sh: $scenario against $server failed: $(tail -n 3 "$work/client.err")" >&2
        out='{}'
    fi
    if ! kill -0 "${pid[$server]}" 2>/dev/null; then
        echo "bench_server.sh: $server server exited during $scenario: $(tail -n 3 "$work/$server.err")" >&2
        start_server "$server" "$server"
    fi
    jq -r ".${key[$scenario]} // \"nan\"" <<<"$out" >"$work/res"
}

# hold_run KIND: a fresh KIND server, the client holding $hold connections; writes
# "rss_kib kib_per_conn threads idle_cpu_pct" (nan where it failed) to $work/res.
hold_run() {
    local kind="$1" name="hold-$1" cpid i t0 t1 rss0 rss th ok=1
    start_server "$name" "$kind"
    local p="${pid[$name]}"
    sleep 0.5
    rss0="$(status_field "$p" VmRSS)"
    # The client holds long enough for the settle second, the window and a margin. Its files
    # are truncated first (see bench_start in lib.sh).
    : >"$work/hold.out"
    : >"$work/hold.err"
    timeout $((120 + idle_window)) "$quinn" client --server "localhost:${port[$name]}" \
        --ca "$work/cert.pem" --hold --connections "$hold" --duration "$((idle_window + 4))s" \
        --json >>"$work/hold.out" 2>>"$work/hold.err" &
    cpid=$!
    for i in $(seq 1 1200); do
        grep -q '^holding' "$work/hold.err" && break
        if ! kill -0 "$cpid" 2>/dev/null || ! kill -0 "$p" 2>/dev/null; then
            ok=0
            break
        fi
        sleep 0.1
    done
    grep -q '^holding' "$work/hold.err" || ok=0
    if [ "$ok" = 1 ]; then
        sleep 1
        t0="$(cpu_ticks "$p")"
        sleep "$idle_window"
        t1="$(cpu_ticks "$p" 2>/dev/null || echo nan)"
        rss="$(status_field "$p" VmRSS 2>/dev/null || echo nan)"
        th="$(status_field "$p" Threads 2>/dev/null || echo nan)"
    fi
    local rc=0
    wait "$cpid" || rc=$?
    if [ "$rc" != 0 ]; then
        echo "bench_server.sh: the hold client against $kind exited with status $rc" >&2
        ok=0
    fi
    if ! kill -0 "$p" 2>/dev/null; then
        echo "bench_server.sh: $kind server exited during the hold: $(tail -n 3 "$work/$name.err")" >&2
        ok=0
    fi
    if [ "$ok" = 1 ] && [ "$(jq -r .held_to_the_end "$work/hold.out")" != "$hold" ]; then
        echo "bench_server.sh: $kind: $(jq -r '"held \(.held_to_the_end) of \(.connections), first closed: \(.first_close)"' "$work/hold.out")" >&2
        ok=0
    fi
    bench_stop "$name"
    if [ "$ok" = 0 ]; then
        echo "bench_server.sh: hold against $kind failed: $(tail -n 3 "$work/hold.err")" >&2
        echo "nan nan nan nan" >"$work/res"
        return
    fi
    awk -v r0="$rss0" -v r="$rss" -v n="$hold" -v th="$th" -v t="$((t1 - t0))" -v hz="$hz" \
        -v w="$idle_window" 'BEGIN { printf "%d %.1f %d %.2f\n", r, (r - r0) / n, th, 100 * t / hz / w }' >"$work/res"
}

declare -A result
for r in $(seq 1 "$rounds"); do
    for scenario in "${scenarios[@]}"; do
        for s in "${servers[@]}"; do
            echo "round $r/$rounds: $scenario, $s server" >&2
            measure "$s" "$scenario"
            result["$scenario,$s"]+="$(cat "$work/res") "
        done
    done
    for s in "${servers[@]}"; do
        echo "round $r/$rounds: holding $hold connections, $s server" >&2
        hold_run "$s"
        read -r rss per th cpu <"$work/res"
        result["rss,$s"]+="$rss "
        result["per_conn,$s"]+="$per "
        result["threads,$s"]+="$th "
        result["idle_cpu,$s"]+="$cpu "
    done
done

fmt() { awk -v v="$1" 'BEGIN { if (v == "nan") print "n/a"; else if (v < 100) printf "%.2f", v; else printf "%.0f", v }'; }
range() {
    tr ' ' '\n' <<<"$1" | grep -v -e '^$' -e nan | sort -g \
        | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "(%g-%g)", lo, hi }'
}

declare -A name=([peregrine]=Peregrine [old]="Peregrine (old)" [quinn]=quinn)
declare -A label=(
    [rps1]="requests/s, 1 conn x 16 streams"
    [rps100]="requests/s, 100 conns x 4 streams"
    [handshakes]="handshakes/s, 8 concurrent"
    [rss]="RSS KiB holding $hold conns"
    [per_conn]="KiB per held connection"
    [threads]="server threads holding $hold"
    [idle_cpu]="idle CPU % of a core, $hold conns"
)
echo
echo "loopback, quinn client, median of $rounds, $duration per run, $(nproc) CPUs"
echo "peregrine server args: $pg_args; quinn server: 2 tokio threads; (min-max) of the runs"
printf '%-36s' ""
for s in "${servers[@]}"; do printf ' %24s' "${name[$s]}"; done
printf ' %9s\n' "P/quinn"
for k in "${scenarios[@]}" rss per_conn threads idle_cpu; do
    printf '%-36s' "${label[$k]}"
    for s in "${servers[@]}"; do
        printf ' %24s' "$(fmt "$(median "${result[$k,$s]}")") $(range "${result[$k,$s]}")"
    done
    printf ' %9s\n' "$(ratio "$(median "${result[$k,peregrine]}")" "$(median "${result[$k,quinn]}")")"
done

check() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { if (a == "n/a" || a == "nan") print "n/a"; else if ((op == ">=" && a >= b) || (op == "<=" && a <= b) || (op == "<" && a < b)) print "met"; else print "NOT met" }'; }
r1="$(ratio "$(median "${result[rps1,peregrine]}")" "$(median "${result[rps1,quinn]}")")"
r100="$(ratio "$(median "${result[rps100,peregrine]}")" "$(median "${result[rps100,quinn]}")")"
hs="$(ratio "$(median "${result[handshakes,peregrine]}")" "$(median "${result[handshakes,quinn]}")")"
per="$(median "${result[per_conn,peregrine]}")"
th="$(median "${result[threads,peregrine]}")"
cpu="$(median "${result[idle_cpu,peregrine]}")"
echo
echo "targets (issue 12):"
echo "  requests/s (1 x 16) >= 1.5x quinn:     $r1  $(check "$r1" '>=' 1.5)"
echo "  requests/s (100 x 4) >= 1.5x quinn:    $r100  $(check "$r100" '>=' 1.5)"
echo "  handshakes/s >= 1.3x quinn:            $hs  $(check "$hs" '>=' 1.3)"
echo "  <= 32 KiB per held connection:         $(fmt "$per")  $(check "$per" '<=' 32)"
echo "  <= 32 server threads holding $hold:  $(fmt "$th")  $(check "$th" '<=' 32)"
echo "  idle CPU < 2% of a core holding $hold: $(fmt "$cpu")  $(check "$cpu" '<' 2)"
