# Helpers for the interop matrix (scripts/interop_matrix.sh). Sourced from the project checkout.
# Everything made lives under $INTEROP_WORK (default: target/interop in the project checkout).
H=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$H/../.." && pwd)
W=${INTEROP_WORK:-$PROJECT/target/interop}
mkdir -p "$W"

fail() { echo "$*" >&2; exit 1; }

# A CA and a leaf for localhost/127.0.0.1/::1 (the leaf is not a CA: rustls refuses that).
certs() {
  C=$W/certs
  [ -f "$C/cert.pem" ] && return 0
  mkdir -p "$C"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=interop-ca \
    -keyout "$C/ca.key" -out "$C/ca.pem" >/dev/null 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$C/key.pem" -out "$C/leaf.csr" >/dev/null 2>&1
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n' >"$C/ext.cnf"
  openssl x509 -req -in "$C/leaf.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial -days 3650 \
    -extfile "$C/ext.cnf" -out "$C/leaf.pem" >/dev/null 2>&1
  cat "$C/leaf.pem" "$C/ca.pem" >"$C/cert.pem"
}

# Files to serve: f1k, f5m, f50m (random) and m001..m150 (2 KB each, for multiplexing).
www() {
  WWW=$W/www
  [ -f "$WWW/m150" ] && return 0
  mkdir -p "$WWW"
  head -c 1000 /dev/urandom >"$WWW/f1k"
  head -c 5000000 /dev/urandom >"$WWW/f5m"
  head -c 50000000 /dev/urandom >"$WWW/f50m"
  for i in $(seq -w 1 150); do head -c 2048 /dev/urandom >"$WWW/m$i"; done
}

free_port() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

PW=$W/peers            # build area for all peers
PSRC=$PW/src
mkdir -p "$PSRC" "$PW/bin" "$PW/results"

# peer_src OWNER+NAME DIR: the peer's public sources in $PSRC/DIR, once. From a snapshot folder
# ($PEER_MIRROR/OWNER+NAME/repo, a bare git directory, e.g. what the search tool's `fetch` makes)
# when PEER_MIRROR is set, else a shallow clone of https://github.com/OWNER/NAME.
peer_src() {
  local d=$PSRC/$2
  [ -d "$d" ] && return 0
  rm -rf "$d.tmp"; mkdir -p "$d.tmp"
  if [ -n "${PEER_MIRROR:-}" ]; then
    local m=$PEER_MIRROR/$1/repo
    [ -d "$m" ] || { echo "peer_src: no snapshot $m" >&2; return 1; }
    git --git-dir="$m" archive HEAD | tar -x -C "$d.tmp" || return 1
  else
    git clone -q --depth 1 "https://github.com/${1/+//}" "$d.tmp" || return 1
  fi
  mv "$d.tmp" "$d"
}

# Peregrine side. PG defaults to the project's release binary.
PG=${PG:-$PROJECT/target/release/peregrine}
# Every <peer>_server function execs the server under `timeout $SERVER_TIMEOUT`: start it with
# `&` and stop it with `kill $!`. Every <peer>_get runs the client under `timeout $GET_TIMEOUT`.
SERVER_TIMEOUT=${SERVER_TIMEOUT:-600}; GET_TIMEOUT=${GET_TIMEOUT:-120}
# pg_server PORT CERT KEY WWW [extra flags...]
pg_server() { local p=$1 c=$2 k=$3 w=$4; shift 4; exec timeout "$SERVER_TIMEOUT" "$PG" server --listen 127.0.0.1:$p --cert "$c" --key "$k" --root "$w" "$@"; }
# pg_get HOST:PORT CA OUTDIR PATH... [-- extra flags]
pg_get() {
  local hp=$1 ca=$2 out=$3; shift 3; local urls=() extra=()
  while [ $# -gt 0 ]; do [ "$1" = "--" ] && { shift; extra=("$@"); break; }; urls+=("https://$hp/${1#/}"); shift; done
  mkdir -p "$out"; timeout "$GET_TIMEOUT" "$PG" client --ca "$ca" --output "$out" "${extra[@]}" "${urls[@]}"
}
# What Peregrine's own client and server need for a feature case (the peer-side flags are in
# peers/PEER.sh). An empty array: nothing special; unset: Peregrine cannot do the case in that role.
pg_CAP_CLI_CHACHA20=(); pg_CAP_CLI_KEYUPDATE=(); pg_CAP_CLI_V2=(--quic-version v2); pg_CAP_CLI_V2CVN=()
pg_CAP_CLI_VN=(--offer-version 0x1a2a3a4a); pg_CAP_SRV_RETRY=(--retry always); pg_CAP_SRV_V2CVN=(--prefer-version v2)
pg_CAP_SRV_CHACHA20=(); pg_CAP_SRV_KEYUPDATE=(); pg_CAP_SRV_V2=(); pg_CAP_SRV_VN=(); pg_CAP_SRV_RESUMPTION=()
pg_CAP_CLI_RETRY=()
# Resumption and 0-RTT: the client fetches the files twice over two connections of one run
# (--repeat 2: the second resumes from the first's ticket; sessions do not outlive the run).
pg_CAP_CLI_RESUMPTION=(--repeat 2); pg_CAP_CLI_ZERORTT=(--repeat 2 --early-data on)
pg_CAP_SRV_ZERORTT=(--early-data on)
