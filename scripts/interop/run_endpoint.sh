#!/usr/bin/env bash
# quic-interop-runner endpoint for peregrine.
#
# Contract (https://github.com/quic-interop/quic-interop-runner): the runner sets
#   ROLE=client|server, TESTCASE=<name>, REQUESTS="<url> <url> ..." (client),
#   SSLKEYLOGFILE, QLOGDIR; serves files from /www, downloads into /downloads,
#   certificates in /certs/cert.pem and /certs/priv.key.
# Exit 127 tells the runner a test case is not supported.
#
# Uses `peregrine server --listen --cert --key --root` and `peregrine client URL... --output`.
# Both commands append TLS secrets to $SSLKEYLOGFILE when it is set (NSS key log format).
# Not wired yet: QLOGDIR is accepted but nothing is written to it (no qlog yet). The client
# does not verify the server (--insecure), as the runner's certificates are self-signed.
# For a local run, WWW, DOWNLOADS and CERTS override /www, /downloads and /certs, and
# PEREGRINE the binary; LISTEN overrides [::]:443.
#
set -euo pipefail

PEREGRINE="${PEREGRINE:-peregrine}"
WWW="${WWW:-/www}"
DOWNLOADS="${DOWNLOADS:-/downloads}"
CERTS="${CERTS:-/certs}"
LISTEN="${LISTEN:-[::]:443}"
ROLE="${ROLE:-}"
TESTCASE="${TESTCASE:-}"

case "$TESTCASE" in
  handshake | transfer | multiplexing | multiconnect) ;;
  *)
    echo "run_endpoint.sh: test case '${TESTCASE}' is not supported" >&2
    exit 127
    ;;
esac

if [ -n "${QLOGDIR:-}" ]; then
  mkdir -p "$QLOGDIR"
fi

case "$ROLE" in
  server)
    exec "$PEREGRINE" server --listen "$LISTEN" \
      --cert "$CERTS/cert.pem" --key "$CERTS/priv.key" --root "$WWW"
    ;;
  client)
    # The runner starts the client only once the server is up (its own wait-for-it step).
    read -r -a urls <<<"${REQUESTS:-}"
    if [ "${#urls[@]}" -eq 0 ]; then
      echo "run_endpoint.sh: REQUESTS is empty" >&2
      exit 1
    fi
    mkdir -p "$DOWNLOADS"
    if [ "$TESTCASE" = "multiconnect" ]; then
      for url in "${urls[@]}"; do
        "$PEREGRINE" client "$url" --output "$DOWNLOADS" --insecure
      done
    else
      exec "$PEREGRINE" client "${urls[@]}" --output "$DOWNLOADS" --insecure
    fi
    ;;
  *)
    echo "run_endpoint.sh: ROLE must be client or server, got '${ROLE}'" >&2
    exit 1
    ;;
esac
