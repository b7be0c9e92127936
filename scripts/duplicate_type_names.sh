#!/usr/bin/env bash
# Lists the type names (struct, enum, trait, type alias; pub or pub(crate)) that more than one
# file of the library code defines: one name per concept. Test code (tests/ folders, files named
# tests.rs) are left out. Exits 1 when a name of issue 17's clusters is defined twice again.
#
#   scripts/duplicate_type_names.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Issue 17's clusters: each must have one definition (or none).
checked='^(ConfigError|ServerConfig|Incoming|Transmit|Scheduler|ReadError|SendStream|RecvStream|DropReason|Mailbox|RouterSeed)$'
dups=$(grep -rhoE --include=*.rs --exclude=tests.rs --exclude-dir=tests \
        '^\s*pub(\((crate|super)\))? (struct|enum|trait|type) [A-Z][A-Za-z0-9]*' \
        engine/src datapath/src tools/src benches/src $(ls -d units/src 2>/dev/null) |
    awk '{print $NF}' | sort | uniq -d)
bad=0
for name in $dups; do
    files=$(grep -rlE --include=*.rs --exclude=tests.rs --exclude-dir=tests \
        "^\s*pub(\((crate|super)\))? (struct|enum|trait|type) $name\b" \
        engine/src datapath/src tools/src benches/src $(ls -d units/src 2>/dev/null) | tr '\n' ' ')
    if [[ $name =~ $checked ]]; then
        echo "DUPLICATE $name: $files"
        bad=1
    else
        echo "also twice (not checked) $name: $files"
    fi
done
exit $bad
