#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder and message entry point with cargo-fuzz
# (libFuzzer). Not run by CI, which runs the short deterministic smoke test of the same
# bodies (crates/tools/otrp/tests/fuzz_smoke.rs).
#
#   scripts/fuzz.sh [--runs N] [SECONDS_PER_TARGET] [TARGET ...]
#
#   SECONDS_PER_TARGET  stop each target after this long (default 60; 0 = no time limit)
#   --runs N            stop each target after N executions (libFuzzer -runs=N), e.g.
#                       `scripts/fuzz.sh --runs 10000000 0 teep_decode` runs until 10 M
#   TARGET ...          default: every target of fuzz/Cargo.toml
#
# Run it under `nice -n 19` on a shared machine. Environment:
#   FUZZ_SANITIZER  cargo-fuzz sanitizer (default `none`: the workspace forbids
#                   `unsafe`, so AddressSanitizer would only watch dependencies, at 2-3x
#                   the cost per execution; use `address` for a slower, deeper run)
#   FUZZ_ARGS       extra libFuzzer flags (e.g. `-max_len=4096`)
#
# Builds with debug assertions (overflow checks: an arithmetic overflow is a panic, as
# in the debug builds of the device). Seeds each target's corpus (fuzz/corpus/<target>,
# kept between runs, not committed) with the published examples (testdata/) and the
# committed seeds of fuzz/seeds/<target>/, prints one line per target and a summary
# table, appends every run to fuzz/stats.tsv (date, target, executions, seconds,
# outcome: the cumulative count per target is in the table), and exits non-zero if
# any target crashed. Crashing inputs are left in fuzz/artifacts/<target>/: minimize
# with `cargo +nightly fuzz tmin -s none -a <target> <file>`, fix, and add the input as
# a regression test beside the code.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=
if [ "${1:-}" = "--runs" ]; then runs=$2; shift 2; fi
secs=${1:-60}; shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if rustup toolchain list | grep -q nightly; then fuzz=(cargo +nightly fuzz); else fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz); fi
build_flags=(-s "${FUZZ_SANITIZER:-none}" -a)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(sed -n 's/^name = "\(.*\)"/\1/p' fuzz/Cargo.toml | grep -v otrp-fuzz)

seed_corpus() {
    local dir=fuzz/corpus/$1
    mkdir -p "$dir"
    if [ -d "fuzz/seeds/$1" ]; then cp -n "fuzz/seeds/$1"/* "$dir"/ 2>/dev/null || true; fi
    python3 - "$dir" <<'PY'
import hashlib, os, re, sys
out = sys.argv[1]
for root in ("testdata", "crates/codec/otrp-json/tests/data"):
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith((".md", ".diag", ".pem")):
                continue
            raw = open(os.path.join(d, f), "rb").read()
            text = raw.decode("ascii", "ignore")
            digits = re.sub(r"\s+", "", text)
            if digits and len(digits) % 2 == 0 and re.fullmatch(r"[0-9A-Fa-f]+", digits):
                raw = bytes.fromhex(digits)
            open(os.path.join(out, hashlib.sha1(raw).hexdigest()), "wb").write(raw)
PY
}

limits=(-rss_limit_mb=2048 -timeout=30 -print_final_stats=1)
[ "$secs" = 0 ] || limits+=(-max_total_time="$secs")
[ -z "$runs" ] || limits+=(-runs="$runs")
# shellcheck disable=SC2206
extra=(${FUZZ_ARGS:-})

status=0
summary=()
for t in "${targets[@]}"; do
    seed_corpus "$t"
    log=fuzz/last-$t.log
    start=$(date +%s)
    if "${fuzz[@]}" run "${build_flags[@]}" "$t" "fuzz/corpus/$t" -- "${limits[@]}" "${extra[@]}" >"$log" 2>&1; then
        outcome="no crash"
    else
        outcome="CRASH (see fuzz/artifacts/$t, $log)"; status=1
    fi
    took=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "${execs:-0}" "$took" "$outcome" >>fuzz/stats.tsv
    echo "fuzz: $t: ${execs:-?} executions in ${took}s: $outcome"
    summary+=("$t")
done

echo
printf '%-18s %14s %8s %16s  %s\n' target executions seconds "total (stats)" outcome
for t in "${summary[@]}"; do
    awk -F'\t' -v t="$t" '$2 == t { total += $3; last = $0 } END {
        split(last, f, "\t"); printf "%-18s %14d %8d %16d  %s\n", t, f[3], f[4], total, f[5] }' fuzz/stats.tsv
done
exit $status
