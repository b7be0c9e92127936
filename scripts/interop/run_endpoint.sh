#!/usr/bin/env bash
# quic-interop-runner endpoint for peregrine (https://github.com/quic-interop/quic-interop-runner).
#
# The contract, as the runner's endpoint image (quic-network-simulator-endpoint) sets it up:
#   - /setup.sh runs first (routes through the network simulator); the client then waits for
#     the simulator with `/wait-for-it.sh sim:57832 -s -t 30`.
#   - ROLE=client|server, TESTCASE=<name>; REQUESTS="<url> <url> ..." for the client;
#     SERVER_PARAMS / CLIENT_PARAMS: extra flags appended to the command line.
#   - SSLKEYLOGFILE: TLS secrets (both commands write them, NSS key log format); QLOGDIR: one
#     qlog trace per connection (--qlog-dir).
#   - The server serves /www on port 443 with /certs/cert.pem and /certs/priv.key; the client
#     saves into /downloads and does not verify the server (the runner's certificates are
#     self-signed).
#   - Exit 127 tells the runner a test case is not supported (for this role).
# Build the image with scripts/interop/Dockerfile.
#
# For a local run, WWW, DOWNLOADS, CERTS override /www, /downloads, /certs; PEREGRINE the
# binary; LISTEN the server address ([::]:443); SETUP and WAIT_FOR_IT the two helper scripts
# (skipped, with a note on stderr, when absent outside the image).
set -euo pipefail

PEREGRINE="${PEREGRINE:-peregrine}"
WWW="${WWW:-/www}"
DOWNLOADS="${DOWNLOADS:-/downloads}"
CERTS="${CERTS:-/certs}"
LISTEN="${LISTEN:-[::]:443}"
SETUP="${SETUP:-/setup.sh}"
WAIT_FOR_IT="${WAIT_FOR_IT:-/wait-for-it.sh}"
ROLE="${ROLE:-}"
TESTCASE="${TESTCASE:-}"

unsupported() {
    echo "run_endpoint.sh: test case '${TESTCASE}' is not supported as ${ROLE}: $1" >&2
    exit 127
}

# Whether the peregrine binary has FLAG (some flags arrive with later versions).
has_flag() { "$PEREGRINE" "$1" --help 2>/dev/null | grep -q -- "$2"; }

case "$ROLE" in
  server | client) ;;
  *)
    echo "run_endpoint.sh: ROLE must be client or server, got '${ROLE}'" >&2
    exit 1
    ;;
esac

# Test cases and what each role needs. Cases not listed (http3, zerortt,
# connectionmigration, ...) are not supported.
extra=()
case "$TESTCASE" in
  handshake | transfer | multiplexing | multiconnect | longrtt | blackhole | goodput | \
    crosstraffic | ipv6 | ecn | amplificationlimit | handshakeloss | transferloss | \
    handshakecorruption | transfercorruption) ;;
  rebind-port | rebind-addr)
    # The server follows a NAT rebinding (path validation); the client side needs nothing.
    ;;
  chacha20)
    # The server accepts ChaCha20-Poly1305 (every cipher is offered); the client cannot
    # restrict its offer to it yet.
    [ "$ROLE" = server ] || unsupported "the client has no option to offer only ChaCha20"
    ;;
  keyupdate)
    # The server follows the client's key update; the client cannot force one yet.
    [ "$ROLE" = server ] || unsupported "the client has no option to initiate a key update"
    ;;
  resumption)
    # The server issues session tickets and resumes with them (rustls, stateless tickets);
    # the client fetches every URL on one connection and keeps no session across runs yet.
    [ "$ROLE" = server ] || unsupported "the client keeps no session across connections"
    ;;
  retry)
    # The client follows a Retry; the server sends one to every new client with
    # --retry always (its default, auto, only under a flood of handshakes).
    if [ "$ROLE" = server ]; then
      has_flag server --retry || unsupported "this peregrine server has no --retry"
      extra+=(--retry always)
    fi
    ;;
  v2)
    # The runner's v2 case is compatible version negotiation (RFC 9368): the client's first
    # Initial is v1 and offers v2 in version_information, and the server switches to v2. The
    # server moves clients that offer v2 with --prefer-version v2; the client offers v2 by
    # default (it starts in v1 and lists v2 in its version_information).
    if [ "$ROLE" = server ]; then
      has_flag server --prefer-version || unsupported "this peregrine server has no --prefer-version"
      extra+=(--prefer-version v2)
    fi
    ;;
  *) unsupported "not implemented" ;;
esac

if [ -x "$SETUP" ]; then
  "$SETUP"
else
  echo "run_endpoint.sh: no $SETUP (outside the runner's image): routes left as they are" >&2
fi

qlog=()
if [ -n "${QLOGDIR:-}" ]; then
  mkdir -p "$QLOGDIR"
  qlog=(--qlog-dir "$QLOGDIR")
fi
# shellcheck disable=SC2206 # the runner's parameters are meant to split into words
server_params=(${SERVER_PARAMS:-})
# shellcheck disable=SC2206
client_params=(${CLIENT_PARAMS:-})

if [ "$ROLE" = server ]; then
  exec "$PEREGRINE" server --listen "$LISTEN" --cert "$CERTS/cert.pem" \
    --key "$CERTS/priv.key" --root "$WWW" "${qlog[@]}" "${extra[@]}" "${server_params[@]}"
fi

read -r -a urls <<<"${REQUESTS:-}"
if [ "${#urls[@]}" -eq 0 ]; then
  echo "run_endpoint.sh: REQUESTS is empty" >&2
  exit 1
fi
if [ -x "$WAIT_FOR_IT" ]; then
  "$WAIT_FOR_IT" sim:57832 -s -t 30
else
  echo "run_endpoint.sh: no $WAIT_FOR_IT (outside the runner's image): not waiting for sim" >&2
fi
mkdir -p "$DOWNLOADS"
client=("$PEREGRINE" client --output "$DOWNLOADS" --insecure "${qlog[@]}" "${extra[@]}"
  "${client_params[@]}")
if [ "$TESTCASE" = multiconnect ]; then
  # One connection per file.
  for url in "${urls[@]}"; do
    "${client[@]}" "$url"
  done
else
  exec "${client[@]}" "${urls[@]}"
fi
