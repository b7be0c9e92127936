#!/usr/bin/env bash
# Counts the public API of a crate of the workspace (default peregrine-engine) from rustdoc's
# JSON output: every item of the crate a user can reach from its root (modules, types, traits,
# functions, inherent methods, constants, statics, struct fields, enum variants), each counted
# once however many paths reach it (a re-export counts as its target). Trait impls are not
# counted (the trait is). Prints the total, then per kind.
#
#   scripts/public_items.sh [PACKAGE] [-- extra cargo args, e.g. --features testing]
#
# The JSON format is unstable in rustdoc: the script runs the stable rustdoc with
# RUSTC_BOOTSTRAP=1 for the documented crate only (through a RUSTDOC wrapper), so dependencies
# are checked as usual and nothing else is rebuilt. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg="${1:-peregrine-engine}"
shift || true
[[ "${1:-}" == "--" ]] && shift
crate="${pkg//-/_}"
wrapper="$(mktemp)"
trap 'rm -f "$wrapper"' EXIT
printf '#!/bin/sh\nRUSTC_BOOTSTRAP=1 exec rustdoc "$@"\n' >"$wrapper"
chmod +x "$wrapper"
RUSTDOC="$wrapper" cargo rustdoc -q --release -p "$pkg" --lib "$@" -- \
    -Z unstable-options --output-format json
python3 - "${CARGO_TARGET_DIR:-target}/doc/$crate.json" <<'PY'
import collections, json, sys
doc = json.load(open(sys.argv[1]))
index = doc["index"]
seen, kinds = set(), collections.Counter()


def ids(v):
    """Every item id inside a JSON value (lists of ids, {"fields": [...]} and the like)."""
    if isinstance(v, int):
        yield str(v)
    elif isinstance(v, list):
        for x in v:
            yield from ids(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from ids(x)


def walk(iid):
    """Counts what a user of the crate can reach from `iid`: modules' items, re-exports'
    targets, types' fields, variants and inherent methods, traits' items."""
    if iid in seen or iid not in index:
        return
    seen.add(iid)
    item = index[iid]
    if item.get("crate_id") != 0:
        return
    kind, inner = next(iter(item["inner"].items()))
    if kind == "use":
        if inner.get("id") is not None:
            walk(str(inner["id"]))
        return
    if kind == "impl":
        if inner.get("trait") is None:  # inherent impl: its public items
            for i in inner["items"]:
                if index.get(str(i), {}).get("visibility") == "public":
                    walk(str(i))
        return
    kinds[kind] += 1
    if kind == "module":
        for i in inner["items"]:
            walk(str(i))
    elif kind in ("struct", "union", "enum"):
        for key in ("kind", "fields", "variants"):
            for i in ids(inner.get(key)):
                walk(i)
        for i in inner.get("impls", []):
            walk(str(i))
    elif kind == "variant":
        for i in ids(inner.get("kind")):
            walk(i)
    elif kind == "trait":
        for i in inner["items"]:
            walk(str(i))


walk(str(doc["root"]))
print(f"public items of {index[str(doc['root'])]['name']}: {sum(kinds.values())}")
for kind, n in kinds.most_common():
    print(f"  {kind}: {n}")
PY
