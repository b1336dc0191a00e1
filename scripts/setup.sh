#!/usr/bin/env bash
# Installs what the build and the tests need beyond a Rust toolchain. Idempotent; sourced
# by scripts/test.sh and .ci/run. Never fails the caller for an optional target: it says
# what it skipped instead.
otrp_have_target() { rustup target list --installed 2>/dev/null | grep -qx "$1"; }
otrp_add_target() {
    local t=$1
    if otrp_have_target "$t"; then return 0; fi
    if timeout 300 rustup target add "$t" >/dev/null 2>&1; then
        echo "setup: installed rust target $t"
    else
        echo "setup: could not install rust target $t (refused or offline); steps needing it are skipped"
        return 1
    fi
}
