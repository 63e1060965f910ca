#!/usr/bin/env bash
# Prints the driver entry points (cu*) that cust_raw declares, one per line, sorted: the API
# that build-stub.sh stubs and ../emu/build-emu.sh emulates. cust_raw's bindings (src/cuda.rs)
# are found through cargo's own resolution of the locked version.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
manifest="$(cd "$root" && cargo metadata --format-version 1 --locked --features ambient-cuda/cuda |
  python3 -c 'import json,sys
pk=[p for p in json.load(sys.stdin)["packages"] if p["name"]=="cust_raw"]
print(pk[0]["manifest_path"] if pk else "")')"
if [ -z "$manifest" ]; then
  echo "cust-symbols: cust_raw is not in the dependency graph (cargo fetch first?)" >&2
  exit 1
fi
bindings="$(dirname "$manifest")/src/cuda.rs"
[ -f "$bindings" ] || { echo "cust-symbols: $bindings not found (cargo fetch first)" >&2; exit 1; }
symbols="$(grep -oE 'pub fn cu[A-Za-z0-9_]+' "$bindings" | sed 's/pub fn //' | sort -u)"
count="$(printf '%s\n' "$symbols" | wc -l)"
[ "$count" -gt 100 ] || { echo "cust-symbols: only $count cu* symbols in $bindings" >&2; exit 1; }
printf '%s\n' "$symbols"
