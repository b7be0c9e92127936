#!/usr/bin/env bash
# Interop matrix: Peregrine against one independent peer, both roles (one peer per run; the
# whole matrix and its table: scripts/interop_matrix.sh).
#   bash scripts/interop/matrix.sh PEER [CASE...]      (PEER: picoquic | quiche | s2n-quic)
# scripts/interop/peers/PEER.sh builds the peer from its public sources and defines PEER_server /
# PEER_get (a '-' in a name becomes '_') and PEER_CAP_CLI_<CASE> / PEER_CAP_SRV_<CASE> arrays: the
# flags that make its client or server do a case (unset: it cannot). Peregrine's own are pg_CAP_*
# in lib.sh. A case runs in a role when both the server's and the client's side can do it; else it
# is recorded N-A with the reason.
# Roles: "pg-server" = Peregrine serves, the peer fetches; "pg-client" = the peer serves, Peregrine
# fetches. Results: $INTEROP_WORK/peers/results/PEER.tsv (peer case role result secs note); logs,
# captures (cap.pcap + keys.log) and Peregrine qlogs under $INTEROP_WORK/peers/logs/PEER/CASE-ROLE/.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
certs; www
PEER=${1:?usage: matrix.sh PEER [CASE...]}; shift
[ -x "$PG" ] || fail "no $PG: cargo build --release -p peregrine first"
. "$H/peers/$PEER.sh" || fail "cannot build $PEER"
P=${PEER//-/_}
ALL=(handshake transfer multiplexing chacha20 retry keyupdate v2 v2cvn vn loss resumption zerortt time50m)
CASES=("$@"); [ ${#CASES[@]} -eq 0 ] && CASES=("${ALL[@]}")
RES=$PW/results/$PEER.tsv; rm -f "$RES"; LOGS=$PW/logs/$PEER
MFILES=(); for f in "$WWW"/m*; do MFILES+=("/$(basename "$f")"); done
CT=${CLIENT_TIMEOUT:-60}

record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$PEER" "$1" "$2" "$3" "$4" "$5" | tee -a "$RES"; }
# cap WHO SIDE CASE: sets CAPV to the flags of WHO (pg or the peer) for SIDE (CLI|SRV) in CASE;
# fails when WHO cannot. The plain cases and a client's part in retry need no flag.
cap() {
  CAPV=()
  case "$3" in handshake|transfer|multiplexing|loss|time50m) return 0;; esac
  [ "$3" = retry ] && [ "$2" = CLI ] && [ "$1" != pg ] && return 0
  [ "$2" = SRV ] && [ "$1" != pg ] && case $3 in vn|resumption) true;; *) false;; esac && return 0
  local n="${1}_CAP_${2}_${3^^}"
  declare -p "$n" >/dev/null 2>&1 || return 1
  local v="$n[@]"; CAPV=("${!v}")
}

# run_one CASE ROLE PATHS...: SX / CX arrays hold the server's / client's extra flags.
# env: RELAY=1 puts udpsim.py between (10 ms each way, 100 Mbit/s, queue 200, 3% drops each way
# in bursts of up to 3).
run_one() {
  local case=$1 role=$2; shift 2; local paths=("$@")
  local d=$LOGS/$case-$role; rm -rf "$d"; mkdir -p "$d/out"
  local port cport rp=""; port=$(free_port); cport=$port
  local sextra=("${SX[@]}") cextra=("${CX[@]}")
  local pgx=()
  case $case in transfer|time50m|loss|multiplexing) ;; *) pgx=(--qlog-dir "$d/qlog");; esac
  if [ "$role" = pg-server ]; then sextra+=("${pgx[@]}"); else cextra+=("${pgx[@]}"); fi
  export SSLKEYLOGFILE=$d/keys.log
  local cap=""
  case $case in transfer|time50m|loss|multiplexing) ;; *)
    timeout 200 tcpdump -U -i lo -s 1600 -w "$d/cap.pcap" "udp port $port" >"$d/tcpdump.log" 2>&1 & cap=$!; sleep 0.5;;
  esac
  if [ "$role" = pg-server ]; then
    pg_server "$port" "$C/cert.pem" "$C/key.pem" "$WWW" "${sextra[@]}" >"$d/server.log" 2>&1 &
  else
    "${P}_server" "$port" "$C/cert.pem" "$C/key.pem" "$WWW" "${sextra[@]}" >"$d/server.log" 2>&1 &
  fi
  local spid=$!
  if [ "${RELAY:-0}" = 1 ]; then
    cport=$(free_port)
    timeout 300 python3 "$H/udpsim.py" --listen 127.0.0.1:$cport --server 127.0.0.1:$port --delay-ms 10 --rate-mbps 100 \
      --queue 200 --drop-to-server 3 --drop-to-client 3 --burst 3 --seed 7 >"$d/relay.log" 2>&1 &
    rp=$!
  fi
  sleep 1
  local t0 t1 rc
  t0=$(date +%s.%N)
  if [ "$role" = pg-server ]; then
    GET_TIMEOUT=$CT "${P}_get" 127.0.0.1:$cport "$C/ca.pem" "$d/out" "${paths[@]}" -- "${cextra[@]}" >"$d/client.log" 2>&1
  else
    GET_TIMEOUT=$CT pg_get 127.0.0.1:$cport "$C/ca.pem" "$d/out" "${paths[@]}" -- "${cextra[@]}" >"$d/client.log" 2>&1
  fi
  rc=$?; t1=$(date +%s.%N)
  sleep 0.3
  kill "$spid" 2>/dev/null; sleep 0.3; kill -9 "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
  [ -n "$rp" ] && { kill -INT "$rp" 2>/dev/null; sleep 0.3; kill "$rp" 2>/dev/null; wait "$rp" 2>/dev/null; }
  [ -n "$cap" ] && { sleep 1.5; kill -INT "$cap" 2>/dev/null; wait "$cap" 2>/dev/null; }
  unset SSLKEYLOGFILE
  SECS=$(echo "$t1 - $t0" | bc)
  local bad=0 missing=()
  for p in "${paths[@]}"; do
    cmp -s "$WWW/${p#/}" "$d/out/${p#/}" || { bad=$((bad+1)); [ ${#missing[@]} -lt 3 ] && missing+=("${p#/}"); }
  done
  if [ $rc -eq 0 ] && [ $bad -eq 0 ]; then RESULT=PASS; NOTE="${#paths[@]} file(s) byte-exact"
  else RESULT=FAIL; NOTE="client rc=$rc, $bad/${#paths[@]} file(s) missing or different (${missing[*]})"; fi
  DIR=$d
}

# wire_note: what the capture shows (versions and long-header packet types, cipher suite,
# resumption and 0-RTT evidence), and checks that a PASS really did the feature.
wire_note() {
  local case=$1 TS="tshark -r $DIR/cap.pcap -o tls.keylog_file:$DIR/keys.log"
  WIRE=$($TS -Y quic -T fields -e quic.version -e quic.long.packet_type 2>/dev/null \
    | awk -F'\t' '$1!="" {split($1,v,","); split($2,t,","); for(i in v) c[v[i]"/"t[i]]++} END {for (k in c) printf "%s:%d ", k, c[k]}')
  local cs; cs=$($TS -Y 'tls.handshake.type==2' -T fields -e tls.handshake.ciphersuite 2>/dev/null | sort -u | tr '\n' ' ')
  NOTE2="wire(version/longtype:count): $WIRE cipher: $cs"
  [ "$RESULT" = PASS ] || return 0
  case $case in
    chacha20) echo "$cs" | grep -q 0x1303 || { RESULT=FAIL; NOTE="not ChaCha20-Poly1305 (0x1303)"; } ;;
    retry) echo "$WIRE" | grep -q '/3:' || { RESULT=FAIL; NOTE="no Retry packet on the wire"; } ;;
    v2|v2cvn) echo "$WIRE" | grep -q 0x6b3343cf || { RESULT=FAIL; NOTE="no v2 packet on the wire"; } ;;
    vn) echo "$WIRE" | grep -q '0x00000000' || { RESULT=FAIL; NOTE="no Version Negotiation packet on the wire"; } ;;
    keyupdate) [ "${KU:-0}" -gt 0 ] || { RESULT=FAIL; NOTE="no key update in Peregrine's qlog"; } ;;
    resumption|zerortt)
      local npsk nee
      npsk=$($TS -Y 'tls.handshake.type==2' -T fields -e tls.handshake.extension.type 2>/dev/null | grep -c '\b41\b')
      nee=$($TS -Y 'tls.handshake.type==8' -T fields -e tls.handshake.extension.type 2>/dev/null | grep -c '\b42\b')
      NOTE2="$NOTE2 ServerHellos_with_psk=$npsk EE_early_data=$nee"
      local ntkt; ntkt=$($TS -Y 'tls.handshake.type==4' -T fields -e frame.number 2>/dev/null | wc -l)
      NOTE2="$NOTE2 NewSessionTickets=$ntkt"
      [ "$npsk" -gt 0 ] || { RESULT=FAIL; NOTE="no resumed handshake (no ServerHello with pre_shared_key)"; }
      # A server that issues no ticket cannot be resumed with.
      [ "$npsk" -eq 0 ] && [ "$ntkt" -eq 0 ] && { RESULT=N-A; NOTE="the server sent no NewSessionTicket"; }
      [ "$case" = zerortt ] && [ "$nee" -eq 0 ] && { RESULT=FAIL; NOTE="0-RTT not accepted (no early_data in EncryptedExtensions)"; } ;;
  esac
}

for case in "${CASES[@]}"; do
  for role in pg-server pg-client; do
    paths=(/f1k); RELAY=0; skip=""; SX=(); CX=()
    if [ "$role" = pg-server ]; then srv=pg; cli=$P; else srv=$P; cli=pg; fi
    case $case in
      handshake) ;;
      transfer) paths=(/f5m /f50m) ;;
      multiplexing) paths=("${MFILES[@]}") ;;
      loss) paths=(/f5m); RELAY=1 ;;
      time50m) paths=(/f50m) ;;
      keyupdate) paths=(/f5m) ;;
      v2|v2cvn) paths=(/f1k /f5m) ;;
      chacha20|retry|vn|resumption|zerortt) ;;
      *) echo "unknown case $case" >&2; continue ;;
    esac
    who() { [ "$1" = pg ] && echo Peregrine || echo "$PEER"; }
    # Why a side cannot, when its recipe says (<who>_WHY_<SIDE>_<CASE>).
    why() { local v="${1}_WHY_${2}_${3^^}"; [ -n "${!v:-}" ] && echo ": ${!v}"; true; }
    if cap "$srv" SRV "$case"; then SX=("${CAPV[@]}"); else skip="$(who "$srv") server cannot do $case$(why "$srv" SRV "$case")"; fi
    if [ -z "$skip" ]; then
      if cap "$cli" CLI "$case"; then CX=("${CAPV[@]}"); else skip="$(who "$cli") client cannot do $case$(why "$cli" CLI "$case")"; fi
    fi
    if [ -n "$skip" ]; then record "$case" "$role" N-A - "$skip"; continue; fi
    run_one "$case" "$role" "${paths[@]}"
    NOTE2=""
    KU=$(cat "$DIR"/qlog/* 2>/dev/null | grep -c -E '"(quic|security):key_updated"')
    [ -f "$DIR/cap.pcap" ] && wire_note "$case"
    [ -d "$DIR/qlog" ] && NOTE2="$NOTE2 pg-qlog key_updated=$KU"
    if declare -f "${P}_check_$case" >/dev/null; then "${P}_check_$case" "$role" "$DIR"; fi
    # A server without version_information (RFC 9368): after acting on a Version Negotiation
    # packet, Peregrine's client MUST close with VERSION_NEGOTIATION_ERROR (RFC 9368 §4,
    # downgrade protection), so the case cannot pass against that server.
    if [ "$case" = vn ] && [ "$role" = pg-client ] && [ "$RESULT" = FAIL ] \
        && grep -q 'no version_information from the server after negotiation' "$DIR/client.log"; then
      RESULT=N-A; NOTE="$PEER's server sends no version_information (RFC 9368); after its Version Negotiation Peregrine's client closes with VERSION_NEGOTIATION_ERROR as RFC 9368 §4 requires"
    fi
    [ "$RESULT" = FAIL ] && NOTE="$NOTE; client: $(tail -n 2 "$DIR/client.log" | tr '\n\t' '  ' | cut -c1-300)"
    record "$case" "$role" "$RESULT" "$SECS" "$NOTE${NOTE2:+; $NOTE2}"
  done
done
