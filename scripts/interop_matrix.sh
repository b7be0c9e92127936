#!/usr/bin/env bash
# Interop matrix against independent QUIC stacks built from their public sources: picoquic (C,
# picotls), quiche (Rust, BoringSSL) and s2n-quic (Rust, s2n-tls), every case in both roles, one
# table. Not a CI job: the first builds take 3 (picoquic), 8 (quiche) and 14 (s2n-quic) minutes on
# two cores.
#
#   scripts/interop_matrix.sh [--peers picoquic,quiche,s2n-quic] [--no-build] [CASE...]
#
# Cases (quic-interop-runner names where they exist): handshake transfer multiplexing chacha20
# retry keyupdate v2 (start in v2) v2cvn (v1 upgraded to v2, RFC 9368) vn loss (udpsim.py relay:
# 3% burst loss each way, 10 ms, 100 Mbit/s) resumption zerortt time50m. Not in the matrix yet:
# connectionmigration and datagrams (Peregrine's client cannot migrate; no peer's interop client
# here sends datagrams), rebind (see the quic-interop-runner endpoint, scripts/interop/run_endpoint.sh).
# A PASS is checked on the wire where it can be (tshark with the key log): the cipher suite, a
# Retry packet, v2 packets, a Version Negotiation packet, a resumed ServerHello, early_data in
# EncryptedExtensions, a key update in Peregrine's qlog.
#
# Needs: cmake, clang, libclang-dev, libssl-dev, pkg-config, tshark, tcpdump, bc, python3,
# openssl (apt-get install -y ...), root for tcpdump on lo. Peer sources: shallow git clones from
# GitHub, or snapshots in $PEER_MIRROR/OWNER+NAME/repo (bare git directories). Work area:
# $INTEROP_WORK (default target/interop). Output: target/interop/peers/results/matrix.md (and one
# TSV per peer beside it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers=picoquic,quiche,s2n-quic
build=1
cases=()
while [ $# -gt 0 ]; do
    case "$1" in
        --peers) peers="${2:?--peers needs a list}"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        -*) echo "interop_matrix.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
        *) cases+=("$1"); shift ;;
    esac
done
for tool in cmake tshark tcpdump bc python3 openssl; do
    command -v "$tool" >/dev/null || { echo "interop_matrix.sh: needs $tool (see --help)" >&2; exit 1; }
done
if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --release -q -p peregrine --bin peregrine)
fi
work="${INTEROP_WORK:-$root/target/interop}"
results="$work/peers/results"
IFS=, read -r -a list <<<"$peers"
for peer in "${list[@]}"; do
    [ -f "$root/scripts/interop/peers/$peer.sh" ] || { echo "interop_matrix.sh: no recipe for '$peer'" >&2; exit 2; }
    echo "== $peer" >&2
    bash "$root/scripts/interop/matrix.sh" "$peer" ${cases[@]+"${cases[@]}"} >&2 \
        || echo "interop_matrix.sh: $peer: the matrix did not finish (see above)" >&2
done

# One table: a row per case, a column per peer and role (srv = Peregrine serves, cli = Peregrine
# fetches). Notes (why N-A, why FAIL) follow the table.
{
    printf '| case |'; for peer in "${list[@]}"; do printf ' %s srv | %s cli |' "$peer" "$peer"; done; echo
    printf '|---|'; for _ in "${list[@]}"; do printf -- '---|---|'; done; echo
    files=(); for peer in "${list[@]}"; do files+=("$results/$peer.tsv"); done
    awk -F'\t' '{print $2}' "${files[@]}" 2>/dev/null | awk '!seen[$0]++' | while read -r case; do
        printf '| %s |' "$case"
        for peer in "${list[@]}"; do
            for role in pg-server pg-client; do
                r=$(awk -F'\t' -v c="$case" -v r="$role" '$2==c && $3==r {print $4 ($5=="-" ? "" : " " sprintf("%.1fs", $5))}' "$results/$peer.tsv" 2>/dev/null | tail -1)
                printf ' %s |' "${r:-—}"
            done
        done
        echo
    done
    echo
    echo "Notes (N-A and FAIL):"
    for peer in "${list[@]}"; do
        awk -F'\t' '$4!="PASS" {printf "- %s %s %s: %s\n", $1, $2, $3, $6}' "$results/$peer.tsv" 2>/dev/null
    done
} >"$results/matrix.md"
cat "$results/matrix.md"
