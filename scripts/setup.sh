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

# Debian package $1 when command $2 is missing (as root, or with passwordless sudo); a
# refused or offline install is reported, never fatal: the tests that need it then say
# they skipped (or fail where .ci/run requires them).
otrp_add_deb() {
    local pkg=$1 cmd=$2 sudo=()
    if command -v "$cmd" >/dev/null 2>&1; then return 0; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: no apt-get here to install $pkg ($cmd); tests needing it are skipped"
        return 1
    fi
    if [ "$(id -u)" != 0 ]; then
        if sudo -n true 2>/dev/null; then sudo=(sudo -n); else
            echo "setup: not root and no passwordless sudo to install $pkg; tests needing it are skipped"
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    if timeout 300 "${sudo[@]}" apt-get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1 \
        || { timeout 300 "${sudo[@]}" apt-get update -q >/dev/null 2>&1 \
            && timeout 300 "${sudo[@]}" apt-get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1; }; then
        echo "setup: installed Debian package $pkg"
    else
        echo "setup: could not install Debian package $pkg (refused or offline); tests needing it are skipped"
        return 1
    fi
}

# libcoap's coap-client: the independent CoAP peer of the TAM's CoAP interop tests.
otrp_add_deb libcoap3-bin coap-client-notls || true
