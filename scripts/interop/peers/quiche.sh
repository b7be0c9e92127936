# quiche peer (Rust, cloudflare/quiche apps). Source after lib.sh:  . ../shared/interop/lib.sh; . ../shared/interop/peers/quiche.sh
# Needs: fetch github:cloudflare/quiche; cmake + libclang-dev (boring-sys builds BoringSSL and its
# bindings). The snapshot's workspace lists qlog-dancer, whose git dependency (wirefilter) cannot be
# fetched here, so the workspace is cut down to apps, octets, qlog and quiche before building.
: "${PW:?source scripts/interop/lib.sh first}"
QCT=$PW/quiche-target/release
quiche_build() {
  [ -x "$QCT/quiche-client" ] && [ -x "$QCT/quiche-server" ] && return 0
  peer_src cloudflare+quiche quiche || return 1
  sed -i '/"qlog-dancer",/d; /"h3i",/d; /"tokio-quiche",/d; /"task-killswitch",/d; /"datagram-socket",/d; /"buffer-pool",/d; /"netlog",/d' "$PSRC/quiche/Cargo.toml"
  (cd "$PSRC/quiche" && CARGO_TARGET_DIR=$PW/quiche-target timeout 3000 cargo build --release -j1 -p quiche_apps) >"$PW/quiche-build.log" 2>&1 \
    || { echo "quiche build failed: $(tail -3 "$PW/quiche-build.log")" >&2; return 1; }
}
# quiche_server PORT CERT KEY WWW [extra]: Retry is off unless extra has --retry (quiche-server's own
# default is Retry on); other extras go to quiche-server (e.g. --early-data).
quiche_server() {
  local p=$1 c=$2 k=$3 w=$4; shift 4; local retry=--no-retry x=()
  for a in "$@"; do [ "$a" = --retry ] && retry="" || x+=("$a"); done
  exec timeout "$SERVER_TIMEOUT" "$QCT/quiche-server" --listen 127.0.0.1:$p --cert "$c" --key "$k" --root "$w" $retry "${x[@]}"
}
# quiche_get HOST:PORT CA OUTDIR PATH... [-- extra]: one connection, HTTP/0.9 (hq-interop).
# quiche-client's default --wire-version is babababa (a reserved version), so every fetch starts
# with Version Negotiation; pass "--wire-version 1" in extra to skip that. extra "--resume" runs the
# client twice with a session file (add --early-data for 0-RTT).
quiche_get() {
  local hp=$1 ca=$2 out=$3; shift 3; local urls=() extra=() twice=0
  while [ $# -gt 0 ]; do [ "$1" = "--" ] && { shift; extra=("$@"); break; }; urls+=("https://localhost:${hp##*:}/${1#/}"); shift; done
  local x=(); for a in "${extra[@]}"; do [ "$a" = --resume ] && { twice=1; x+=(--session-file "$out/.session"); } || x+=("$a"); done
  mkdir -p "$out"
  local run
  for run in 1 $([ $twice = 1 ] && echo 2); do
    echo "== quiche-client run $run"
    RUST_LOG=${RUST_LOG:-info} timeout "$GET_TIMEOUT" "$QCT/quiche-client" --http-version HTTP/0.9 --trust-origin-ca-pem "$ca" \
      --connect-to "$hp" --dump-responses "$out" "${x[@]}" "${urls[@]}" || return $?
  done
}
quiche_CAP_CLI_VN=()                    # the default (babababa first)
quiche_CAP_CLI_RESUMPTION=(--resume)
quiche_CAP_CLI_ZERORTT=(--resume --early-data)
quiche_CAP_SRV_RETRY=(--retry)
quiche_build
quiche_CAP_SRV_ZERORTT=(--early-data)
