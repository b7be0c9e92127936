# s2n-quic peer (Rust, aws/s2n-quic's interop binary s2n-quic-qns). Source after lib.sh:
#   . ../shared/interop/lib.sh; . ../shared/interop/peers/s2n-quic.sh
# Needs: fetch github:aws/s2n-quic; cmake + a C compiler (s2n-tls and aws-lc build from crates).
# Build: cargo build --release -j1 -p s2n-quic-qns (about 14 minutes on 2 shared cores).
: "${PW:?source scripts/interop/lib.sh first}"
S2N=$PW/s2n-target/release/s2n-quic-qns
s2n_quic_build() {
  [ -x "$S2N" ] && return 0
  peer_src aws+s2n-quic s2n-quic || return 1
  (cd "$PSRC/s2n-quic" && CARGO_TARGET_DIR=$PW/s2n-target timeout 3600 cargo build --release -j1 -p s2n-quic-qns) >"$PW/s2n-quic-build.log" 2>&1 \
    || { echo "s2n-quic build failed: $(tail -3 "$PW/s2n-quic-build.log")" >&2; return 1; }
}
# s2n_quic_server PORT CERT KEY WWW [extra]: extra e.g. --testcase retry (always Retry),
#   --testcase resumption, --tls rustls (default s2n-tls).
s2n_quic_server() {
  local p=$1 c=$2 k=$3 w=$4; shift 4
  exec timeout "$SERVER_TIMEOUT" "$S2N" interop server --ip 127.0.0.1 --port "$p" --certificate "$c" --private-key "$k" --www-dir "$w" "$@"
}
# s2n_quic_get HOST:PORT CA OUTDIR PATH... [-- extra]: extra e.g. --testcase resumption (one
#   connection per URL, in order, so the later ones resume), --tls rustls.
s2n_quic_get() {
  local hp=$1 ca=$2 out=$3; shift 3; local urls=() extra=()
  while [ $# -gt 0 ]; do [ "$1" = "--" ] && { shift; extra=("$@"); break; }; urls+=("https://localhost:${hp##*:}/${1#/}"); shift; done
  local x=(); for a in "${extra[@]}"; do   # --resume: fetch the list twice, one connection per URL, in order
    if [ "$a" = --resume ]; then x+=(--testcase resumption); urls+=("${urls[@]}"); else x+=("$a"); fi; done
  mkdir -p "$out"
  timeout "$GET_TIMEOUT" "$S2N" interop client --ip "${hp%:*}" --port "${hp##*:}" --ca "$ca" --download-dir "$out" "${x[@]}" "${urls[@]}"
}
s2n_quic_CAP_SRV_RETRY=(--testcase retry)
s2n_quic_CAP_CLI_RESUMPTION=(--resume)
s2n_quic_build
# The brief's names (bash allows '-' in function names): s2n-quic_server / s2n-quic_get.
s2n-quic_server() { s2n_quic_server "$@"; }
s2n-quic_get() { s2n_quic_get "$@"; }
