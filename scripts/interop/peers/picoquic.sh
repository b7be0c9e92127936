# picoquic peer (C). Source after lib.sh:  . ../shared/interop/lib.sh; . ../shared/interop/peers/picoquic.sh
# Needs: apt-get install -y cmake libssl-dev pkg-config; fetch github:private-octopus/picoquic,
# github:h2o/picotls, github:h2o/picotest (picotls's test submodule, needed by its CMakeLists).
# Builds picoquicdemo with picotls as a FetchContent subproject pointed at the local snapshot.
: "${PW:?source scripts/interop/lib.sh first}"
PQ=$PW/picoquic-build/picoquicdemo
picoquic_build() {
  [ -x "$PQ" ] && return 0
  peer_src private-octopus+picoquic picoquic && peer_src h2o+picotls picotls || return 1
  if [ ! -f "$PSRC/picotls/deps/picotest/picotest.c" ]; then
    rm -rf "$PSRC/picotls/deps/picotest"; mkdir -p "$PSRC/picotls/deps/picotest"
    git --git-dir="$PEER_MIRROR/h2o+picotest/repo" archive HEAD | tar -x -C "$PSRC/picotls/deps/picotest" || return 1
  fi
  (mkdir -p "$PW/picoquic-build" && cd "$PW/picoquic-build" \
    && cmake "$PSRC/picoquic" -DCMAKE_BUILD_TYPE=Release -DPICOQUIC_FETCH_PTLS=ON \
         -DFETCHCONTENT_SOURCE_DIR_PICOTLS="$PSRC/picotls" -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
         -Dpicoquic_BUILD_TESTS=OFF -DBUILD_PICO_SIM=OFF -DBUILD_PQBENCH=OFF -DBUILD_LOGREADER=OFF \
    && timeout 2400 make -j1 picoquicdemo) >"$PW/picoquic-build.log" 2>&1 \
    || { echo "picoquic build failed: $(tail -3 "$PW/picoquic-build.log")" >&2; return 1; }
}
# picoquic_server PORT CERT KEY WWW [extra]: extra e.g. -r (force Retry), -v 6b3343cf (v2),
#   -C 0x1303 (chacha20); logs to stdout with -L -l -.  Server answers hq-interop and h3.
picoquic_server() { local p=$1 c=$2 k=$3 w=$4; shift 4; cd "$PW/picoquic-build" && exec timeout "$SERVER_TIMEOUT" "$PQ" -p "$p" -c "$c" -k "$k" -w "$w" "$@"; }
# picoquic_get HOST:PORT CA OUTDIR PATH... [-- extra]: extra e.g. -C 0x1303, -u 100 (key update
#   every N packets?), -v 6b3343cf, -V (upgrade-to-v2 via compatible VN).  Uses -a hq-interop.
picoquic_get() {
  local hp=$1 ca=$2 out=$3; shift 3; local paths=() extra=() host=${1%:*} port=${1##*:}
  host=${hp%:*}; port=${hp##*:}
  while [ $# -gt 0 ]; do [ "$1" = "--" ] && { shift; extra=("$@"); break; }; paths+=("${1#/}"); shift; done
  local sc; sc=$(IFS=';'; echo "${paths[*]/#/-:/}")   # picoquicdemo scenario: "-:/f1k;-:/f5m"
  local x=() twice=0; for a in "${extra[@]}"; do [ "$a" = --resume ] && twice=1 || x+=("$a"); done
  mkdir -p "$out"
  local run
  for run in 1 $([ $twice = 1 ] && echo 2); do   # tickets persist in $out/demo_ticket_store.bin between runs
    echo "== picoquicdemo client run $run"
    (cd "$out" && timeout "$GET_TIMEOUT" "$PQ" -a hq-interop -t "$ca" -n localhost -o "$out" "${x[@]}" "$host" "$port" "$sc") || return $?
  done
}
picoquic_CAP_CLI_CHACHA20=(-C 20);  picoquic_CAP_SRV_CHACHA20=(-C 20)
picoquic_CAP_SRV_RETRY=(-r)
picoquic_CAP_CLI_KEYUPDATE=(-u 100)
picoquic_CAP_CLI_V2=(-v 6b3343cf)
picoquic_CAP_CLI_V2CVN=(-U 6b3343cf)   # start in v1, ask for compatible upgrade to v2 (RFC 9368)
picoquic_CAP_SRV_V2=()                 # picoquic server accepts v2 (Peregrine's client starts in it with --quic-version v2)
picoquic_CAP_CLI_VN=(-v 1a2a3a4a)      # unknown version first; expects VN then v1
picoquic_CAP_CLI_RESUMPTION=(--resume); picoquic_CAP_CLI_ZERORTT=(--resume)   # tickets in the output folder
picoquic_CAP_SRV_ZERORTT=()            # picoquicdemo's server accepts early data by default
picoquic_build
picoquic_CAP_CLI_V2KU=(-v 6b3343cf -u 100)   # v2 plus a client-initiated key update
# picoquicdemo's client closes with 0x437 after any Version Negotiation packet (also against a
# picoquic server), so the vn case can only show what Peregrine put in its VN packet.
picoquic_check_vn() {
  if [ "$RESULT" = FAIL ] && grep -q 'Received a version negotiation request' "$2/client.log" && grep -q '0x437' "$2/client.log"; then
    RESULT=N-A; NOTE="picoquicdemo client does not retry after VN (same against picoquic's own server); Peregrine's VN: $(grep -o 'Received a version negotiation request: .*' "$2/client.log" | head -1)"
  fi
}
