#!/usr/bin/env bash
# Builds the sample Trusted Applications (tas/*) for wasm32-unknown-unknown in release mode
# and copies them to tas/dist/<name>.wasm, with tas/dist/BUILD-INFO (toolchain, sizes,
# SHA-256).
#
#   scripts/build-tas.sh           rebuild and update tas/dist
#   scripts/build-tas.sh --check   rebuild into a temp dir and compare with tas/dist byte
#                                  for byte (exit 1 on a difference)
#
# Reproducibility: the builds are byte-identical for the same rustc version and Cargo.lock
# files. Cargo hashes the absolute path of path dependencies into symbol names, which
# changes the code layout after LTO, so the SDK and the TAs are copied to a fixed build
# directory (/tmp/otrp-tas-build) and built there; the remaining absolute paths (that
# directory and the cargo registry) are remapped, and `strip = true` drops the name
# section. A different rustc version gives different code, so --check compares bytes only
# when the toolchain matches the one recorded in BUILD-INFO and otherwise says so and
# skips the comparison.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TAS=(payment-signer smart-lock drone-geofence)
MODE=build
if [ "${1:-}" = "--check" ]; then MODE=check; fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || {
        echo "SKIPPED: the wasm32-unknown-unknown target is not installed and could not be added"
        exit 0
    }
fi

DIST="$ROOT/tas/dist"
if [ "$MODE" = check ]; then
    OUT="$(mktemp -d)"
    trap 'rm -rf "$OUT"' EXIT
else
    OUT="$DIST"
    mkdir -p "$OUT"
fi

BUILD=/tmp/otrp-tas-build
rm -rf "$BUILD/src"
mkdir -p "$BUILD/src/crates/ta" "$BUILD/src/tas"
cp -r "$ROOT/crates/ta/sdk" "$BUILD/src/crates/ta/sdk"
rm -rf "$BUILD/src/crates/ta/sdk/target"
for t in "${TAS[@]}"; do
    mkdir -p "$BUILD/src/tas/$t"
    cp -r "$ROOT/tas/$t/Cargo.toml" "$ROOT/tas/$t/src" "$BUILD/src/tas/$t/"
    if [ -f "$ROOT/tas/$t/Cargo.lock" ]; then cp "$ROOT/tas/$t/Cargo.lock" "$BUILD/src/tas/$t/"; fi
done

export CARGO_TARGET_DIR="$BUILD/target"
CARGO_HOME_DIR="${CARGO_HOME:-$HOME/.cargo}"
# 64 KiB shadow stack instead of 1 MiB: a TA starts with ~2 pages of memory, not 17.
export RUSTFLAGS="--remap-path-prefix=$BUILD/src=/otrp --remap-path-prefix=$CARGO_HOME_DIR=/cargo -C link-arg=-zstack-size=65536"
unset CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
RUSTC_VERSION="$(rustc -V)"

for t in "${TAS[@]}"; do
    locked=()
    if [ -f "$ROOT/tas/$t/Cargo.lock" ]; then locked=(--locked); fi
    (cd "$BUILD/src/tas/$t" && cargo build -q "${locked[@]}" --release --target wasm32-unknown-unknown)
    if [ ! -f "$ROOT/tas/$t/Cargo.lock" ] && [ "$MODE" = build ]; then
        cp "$BUILD/src/tas/$t/Cargo.lock" "$ROOT/tas/$t/Cargo.lock"
    fi
    cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/ta_${t//-/_}.wasm" "$OUT/$t.wasm"
done

info() {
    echo "toolchain: $RUSTC_VERSION"
    for t in "${TAS[@]}"; do
        f="$1/$t.wasm"
        echo "$t.wasm $(stat -c %s "$f") bytes sha256 $(sha256sum "$f" | cut -d' ' -f1)"
    done
}

if [ "$MODE" = build ]; then
    info "$OUT" > "$DIST/BUILD-INFO"
    cat "$DIST/BUILD-INFO"
    exit 0
fi

RECORDED="$(sed -n 's/^toolchain: //p' "$DIST/BUILD-INFO" 2>/dev/null || true)"
if [ "$RECORDED" != "$RUSTC_VERSION" ]; then
    echo "SKIPPED byte comparison: tas/dist was built with '$RECORDED', this is '$RUSTC_VERSION'"
    info "$OUT"
    exit 0
fi
status=0
for t in "${TAS[@]}"; do
    if cmp -s "$OUT/$t.wasm" "$DIST/$t.wasm"; then
        echo "ok: $t.wasm is byte-identical ($(stat -c %s "$OUT/$t.wasm") bytes)"
    else
        echo "DIFFERS: $t.wasm (rebuilt $(stat -c %s "$OUT/$t.wasm") bytes, committed $(stat -c %s "$DIST/$t.wasm") bytes)"
        status=1
    fi
done
exit $status
