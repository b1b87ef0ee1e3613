#!/usr/bin/env bash
# Sets everything up (idempotent), builds CodeBeaker and runs a node in the foreground,
# ready on http://127.0.0.1:8000. Extra arguments go to `codebeaker serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "[serve] building codebeaker (release)"
cargo build --release --quiet
exec "${CARGO_TARGET_DIR:-target}/release/codebeaker" serve "$@"
