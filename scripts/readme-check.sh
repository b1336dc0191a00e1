#!/usr/bin/env bash
# Runs the README's "Running a real TAM and a device" commands as written, in a temporary
# directory, against a built `otrp`, and checks what they did: the TA installed on the
# device (its digest), the Client App's invoke output, the Broker's session report and
# the SP's rollout status.
#
#   scripts/readme-check.sh [PATH/TO/otrp]      (default: $OTRP or target/debug/otrp)
#
# The blocks it runs are the ```sh blocks that follow a `<!-- readme-check -->` line in
# README.md, in order. Each block is sourced by bash verbatim; `otrp` is a shell function
# that calls the binary with only these changes, all for running unattended:
#   - `otrp tam serve` and `otrp tee run` (long-running) go to the background; the next
#     command waits until the TAM listens / the TEE socket exists;
#   - the TAM listens on a free port instead of 8443 (OTRP_README_PORT to choose it) and
#     /tmp/dev1.sock moves into the temporary directory, so parallel runs cannot collide;
#   - the placeholder SP_TOKEN stands for the token `otrp oem create-account` printed;
#   - `rollout status --watch` runs in the background and must end (exit 0) once the
#     device has installed the TA.
# Everything the commands print is in the transcript shown on failure.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
OTRP=${1:-${OTRP:-${CARGO_TARGET_DIR:-$repo/target}/debug/otrp}}
[ -x "$OTRP" ] || { echo "readme-check: no otrp binary at '$OTRP' (cargo build -p otrp, or pass its path)"; exit 2; }
OTRP="$(cd "$(dirname "$OTRP")" && pwd)/$(basename "$OTRP")"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/readme-check.XXXXXX")
TRANSCRIPT="$WORK/transcript.txt"
: >"$TRANSCRIPT"
TAM_PID="" TEE_PID="" WATCH_PID=""
cleanup() {
    local rc=$?
    for p in $WATCH_PID $TEE_PID $TAM_PID; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$rc" != 0 ]; then
        echo "---- transcript ($WORK) ----"
        cat "$TRANSCRIPT"
        echo "---- TAM log ----"; cat "$WORK/tam.log" 2>/dev/null || true
        echo "---- TEE log ----"; cat "$WORK/tee.log" 2>/dev/null || true
    fi
    if [ -z "${OTRP_README_KEEP:-}" ]; then rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${OTRP_README_PORT:-}
if [ -z "$PORT" ]; then
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 20000))
        if port_free "$p"; then PORT=$p; break; fi
    done
fi
[ -n "$PORT" ] || { echo "readme-check: no free port"; exit 1; }
export OTRP_TAM_URL="https://127.0.0.1:$PORT"
SP_TOKEN=""

fail() { echo "readme-check: FAILED: $*" | tee -a "$TRANSCRIPT"; exit 1; }

wait_until() { # WHAT SECONDS COMMAND...
    local what=$1 secs=$2; shift 2
    local i
    for i in $(seq 1 $((secs * 10))); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    fail "timed out waiting for $what"
}

otrp() {
    local args=() a
    for a in "$@"; do
        [ "$a" = SP_TOKEN ] && a=$SP_TOKEN
        a=${a//127.0.0.1:8443/127.0.0.1:$PORT}
        a=${a//\/tmp\/dev1.sock/$WORK\/dev1.sock}
        args+=("$a")
    done
    echo "\$ otrp ${args[*]}" >>"$TRANSCRIPT"
    case "${args[0]:-} ${args[1]:-}" in
    "tam serve")
        "$OTRP" "${args[@]}" --listen "127.0.0.1:$PORT" >>"$WORK/tam.log" 2>&1 &
        TAM_PID=$!
        wait_until "the TAM to listen" 60 grep -q "TAM listening" "$WORK/tam.log"
        return 0 ;;
    "tee run")
        "$OTRP" "${args[@]}" >>"$WORK/tee.log" 2>&1 &
        TEE_PID=$!
        wait_until "the TEE socket" 30 test -S "$WORK/dev1.sock"
        return 0 ;;
    esac
    if [[ " ${args[*]} " == *" --watch "* ]]; then
        timeout 120 "$OTRP" "${args[@]}" --interval-ms 200 >"$WORK/watch.out" 2>&1 &
        WATCH_PID=$!
        return 0
    fi
    local out
    out=$("$OTRP" "${args[@]}" 2>>"$TRANSCRIPT") || fail "otrp ${args[*]}"
    printf '%s\n' "$out" >>"$TRANSCRIPT"
    printf '%s\n' "$out" >"$WORK/last.out"
    if [[ " ${args[*]} " == *" create-account "* ]]; then
        SP_TOKEN=$(sed -n 's/^API token (shown once): //p' <<<"$out")
        [ -n "$SP_TOKEN" ] || fail "create-account printed no token"
    fi
    if [[ " ${args[*]} " == *" client invoke "* ]]; then
        printf '%s\n' "$out" >>"$WORK/invoke.out"
    fi
    if [[ " ${args[*]} " == *" broker run "* ]]; then
        printf '%s\n' "$out" >>"$WORK/broker.out"
    fi
}

# The marked blocks, in order.
awk '
    /<!-- readme-check -->/ { armed = 1; next }
    armed && /^```sh[[:space:]]*$/ { inblock = 1; armed = 0; n++; print "# --- block " n; next }
    inblock && /^```[[:space:]]*$/ { inblock = 0; next }
    inblock { print }
' "$repo/README.md" >"$WORK/readme-blocks.sh"
blocks=$(grep -c '^# --- block' "$WORK/readme-blocks.sh" || true)
[ "$blocks" -ge 3 ] || fail "expected at least 3 marked blocks in README.md, found $blocks"

cd "$WORK"
ln -s "$repo/tas" tas
# shellcheck disable=SC1091
source "$WORK/readme-blocks.sh"

# What the commands did.
digest() { sha256sum "$1" | cut -d' ' -f1; }
want=$(digest "$repo/tas/dist/payment-signer.wasm")
grep -q "installed: sd1:door-ta" "$WORK/broker.out" || fail "the Broker session installed no sd1:door-ta"
status=$("$OTRP" client status --tee "unix:$WORK/dev1.sock")
echo "$status" >>"$TRANSCRIPT"
grep -q "\"digest\": \"$want\"" <<<"$status" || fail "the TEE does not hold payment-signer.wasm as sd1:door-ta"
key=$(tail -n1 "$WORK/invoke.out")
[[ "$key" =~ ^04[0-9a-f]{128}$ ]] || fail "invoke --cmd 1 did not print a P-256 public key: '$key'"
if [ -n "$WATCH_PID" ]; then
    wait "$WATCH_PID" || fail "rollout status --watch did not end well: $(cat "$WORK/watch.out")"
    WATCH_PID=""
    cat "$WORK/watch.out" >>"$TRANSCRIPT"
    grep -q "done 1" "$WORK/watch.out" || fail "rollout status does not show the device done: $(cat "$WORK/watch.out")"
fi
echo "readme-check: OK ($blocks README blocks; TA sd1:door-ta installed on dev1, invoke answered a P-256 key, rollout done 1)"
