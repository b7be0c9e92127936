# Shared by the benchmark scripts (sourced, not run): the work directory and the processes a
# script starts, servers that announce "listening on ADDR", and readings from /proc.
#
#   . "$(dirname "$0")/lib.sh"
#   bench_need TOOL...        exits unless every TOOL is on PATH
#   bench_bins BIN...         exits unless every BIN is an executable file
#   bench_init                $work (a new temporary directory) and $pids; on EXIT every process in
#                             $pids gets SIGTERM and is waited for, the script's own
#                             `bench_cleanup_extra` runs if it defines one, and $work is removed
#   bench_start NAME CMD...   runs CMD in the background, output in $work/NAME.out and .err;
#                             waits (up to 20 s) for its "listening on ADDR" line; sets
#                             addr[NAME], port[NAME] and pid[NAME]; exits if it did not start
#   bench_stop NAME           SIGTERM to pid[NAME], SIGKILL after 10 s, and waits for it
#   cpu_ticks PID             user + system clock ticks of every thread of PID so far
#   status_field PID FIELD    the number of a /proc/PID/status line (VmRSS in KiB, Threads)
#   median "V1 V2 ..."        the median of the numbers (nan ignored), or nan
#   ratio A B                 A / B to two decimals, or n/a when either is nan or B is 0
#
# Sourcing it also sets $root (the checkout), $target (CARGO_TARGET_DIR or $root/target) and the
# release binaries $peregrine, $quinn (quinn_perf) and $s2n (s2n-perf); `bench_build [s2n]`
# builds the first two (and s2n-perf, in its own workspace under $target/s2n-perf).
# Messages name the script that sourced this file.

bench_me="$(basename "$0")"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
peregrine="$target/release/peregrine"
quinn="$target/release/examples/quinn_perf"
s2n="$target/s2n-perf/release/s2n-perf"
declare -A addr port pid
pids=()

bench_build() {
    (cd "$root" && cargo build --release -q -p peregrine --bin peregrine \
        && cargo build --release -q -p peregrine-benches --example quinn_perf) || exit 1
    if [ "${1:-}" = s2n ]; then
        (cd "$root/benches/s2n_perf" && CARGO_TARGET_DIR="$target/s2n-perf" \
            cargo build --release -q) || exit 1
    fi
}

bench_need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "$bench_me: needs $t" >&2; exit 1; }
    done
}

bench_bins() {
    local b
    for b in "$@"; do
        [ -x "$b" ] || { echo "$bench_me: $b missing (build it with --release, or run without --no-build)" >&2; exit 1; }
    done
}

bench_cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if declare -F bench_cleanup_extra >/dev/null; then
        bench_cleanup_extra
    fi
    rm -rf "$work"
}

bench_init() {
    work="$(mktemp -d)"
    trap bench_cleanup EXIT
}

bench_start() {
    local name="$1" i a=""
    shift
    # Truncated here, not by the background job's own redirection: that runs asynchronously,
    # so a read right after could see a previous run's file, or none.
    : >"$work/$name.out"
    : >"$work/$name.err"
    "$@" >>"$work/$name.out" 2>>"$work/$name.err" &
    pids+=("$!")
    pid[$name]="$!"
    for i in $(seq 1 400); do
        a="$(sed -n 's/^listening on //p' "$work/$name.out" | head -n1)"
        [ -n "$a" ] && break
        if [ "$i" = 400 ] || ! kill -0 "${pid[$name]}" 2>/dev/null; then
            echo "$bench_me: $name server did not start:" >&2
            cat "$work/$name.err" >&2
            exit 1
        fi
        sleep 0.05
    done
    addr[$name]="$a"
    port[$name]="${a##*:}"
}

bench_stop() {
    local p="${pid[$1]}" i
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

cpu_ticks() {
    awk '{ sub(/^[^)]*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

status_field() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

median() {
    tr ' ' '\n' <<<"$1" | grep -v -e '^$' -e nan | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "n/a"; else printf "%.2f", a / b }'
}
