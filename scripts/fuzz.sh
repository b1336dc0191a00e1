#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder with cargo-fuzz (libFuzzer). Not run by CI,
# which runs the short deterministic smoke test (crates/tools/otrp/tests/fuzz_smoke.rs).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     default: 60 s, every target
#
# Seeds each target's corpus with the published examples (testdata/), prints the
# executions and outcome per target, and exits non-zero if any target crashed; crashing
# inputs are left in fuzz/artifacts/<target>/ — turn each into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}; shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if rustup toolchain list | grep -q nightly; then fuzz=(cargo +nightly fuzz); else fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz); fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(sed -n 's/^name = "\(.*\)"/\1/p' fuzz/Cargo.toml | grep -v otrp-fuzz)

seed_corpus() {
    local dir=fuzz/corpus/$1
    mkdir -p "$dir"
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

status=0
for t in "${targets[@]}"; do
    seed_corpus "$t"
    log=$(mktemp)
    if "${fuzz[@]}" run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        outcome="no crash"
    else
        outcome="CRASH (see fuzz/artifacts/$t)"; status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    [ -n "$execs" ] || execs=$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
    echo "fuzz: $t: ${execs:-?} executions in ${secs}s: $outcome"
    rm -f "$log"
done
exit $status
