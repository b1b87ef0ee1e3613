#!/usr/bin/env bash
# Sets up what a node needs (idempotent), builds CodeBeaker and runs a node in the foreground,
# ready on http://127.0.0.1:8000. Extra arguments go to `codebeaker serve`.
#
# A new machine serves python as soon as it can: cargo builds the server while setup installs
# the packages and builds the python image; once the node runs, the other languages' images
# are built in the background, and the node serves each within seconds of its build.
# CODEBEAKER_LANGUAGES (default: all) names the images to build then, e.g. "default" or
# "python,c,java" (see scripts/setup.sh). CODEBEAKER_PROFILE (default: quick) is the cargo
# profile: `quick` builds in half the time of `release`; `release` runs jobs about 3 ms faster.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${CODEBEAKER_SETUP_DIR:-/var/lib/codebeaker-setup}
LATER=${CODEBEAKER_LANGUAGES:-all}
PROFILE=${CODEBEAKER_PROFILE:-quick}
started=$SECONDS

echo "[serve] building codebeaker (cargo profile $PROFILE) while setup prepares the machine"
cargo build --profile "$PROFILE" --quiet &
build=$!
if ! scripts/setup.sh --languages python; then
  kill $build 2>/dev/null; exit 1
fi
echo "[serve] waiting for the build of codebeaker"
wait $build

if [ "$LATER" != python ]; then
  echo "[serve] building the other language images in the background ($LATER; progress in $DATA_DIR/languages.log)"
  nohup scripts/setup.sh --languages "$LATER" >"$DATA_DIR/languages.log" 2>&1 &
fi
echo "[serve] set up and built in $((SECONDS - started)) s; starting the node"
exec "${CARGO_TARGET_DIR:-target}/$PROFILE/codebeaker" serve "$@"
