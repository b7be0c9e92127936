#!/usr/bin/env bash
# quic-interop-runner endpoint for peregrine.
#
# Contract (https://github.com/quic-interop/quic-interop-runner): the runner sets
#   ROLE=client|server, TESTCASE=<name>, REQUESTS="<url> <url> ..." (client),
#   SSLKEYLOGFILE, QLOGDIR; serves files from /www, downloads into /downloads,
#   certificates in /certs/cert.pem and /certs/priv.key.
# Exit 127 tells the runner a test case is not supported.
#
# NOTE: `peregrine server` and `peregrine client` land with the QUIC runtime; until then this
# script's supported cases fail with "unrecognized subcommand" from peregrine (exit 2).
#
# Supported test cases (what `peregrine server/client` do without extra flags):
#   handshake   one connection, one small file
#   transfer    one connection, several large files (flow control)
#   multiplexing many files on one connection (concurrent streams)
#   multiconnect one connection per requested file
# Everything else (retry, resumption, zerortt, keyupdate, ecn, v2, chacha20, ...) exits 127
# until the CLI grows a flag for it.
set -euo pipefail

PEREGRINE="${PEREGRINE:-peregrine}"
ROLE="${ROLE:-}"
TESTCASE="${TESTCASE:-}"

case "$TESTCASE" in
  handshake | transfer | multiplexing | multiconnect) ;;
  *)
    echo "run_endpoint.sh: test case '${TESTCASE}' is not supported" >&2
    exit 127
    ;;
esac

common=()
if [ -n "${SSLKEYLOGFILE:-}" ]; then
  common+=(--keylog-file "$SSLKEYLOGFILE")
fi
if [ -n "${QLOGDIR:-}" ]; then
  mkdir -p "$QLOGDIR"
  common+=(--qlog-dir "$QLOGDIR")
fi

case "$ROLE" in
  server)
    exec "$PEREGRINE" server --listen "[::]:443" \
      --cert /certs/cert.pem --key /certs/priv.key --root /www "${common[@]}"
    ;;
  client)
    # The runner starts the client only once the server is up (its own wait-for-it step).
    read -r -a urls <<<"${REQUESTS:-}"
    if [ "${#urls[@]}" -eq 0 ]; then
      echo "run_endpoint.sh: REQUESTS is empty" >&2
      exit 1
    fi
    mkdir -p /downloads
    if [ "$TESTCASE" = "multiconnect" ]; then
      for url in "${urls[@]}"; do
        "$PEREGRINE" client "$url" --output /downloads "${common[@]}"
      done
    else
      exec "$PEREGRINE" client "${urls[@]}" --output /downloads "${common[@]}"
    fi
    ;;
  *)
    echo "run_endpoint.sh: ROLE must be client or server, got '${ROLE}'" >&2
    exit 1
    ;;
esac
