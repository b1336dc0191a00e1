#!/usr/bin/env bash
# The README's test command: sets up what the tests need on a fresh machine, then runs
# every test of the workspace. PostgreSQL tests run when OTRP_TEST_DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
cargo test --workspace --locked "$@"
