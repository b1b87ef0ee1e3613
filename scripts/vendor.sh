#!/usr/bin/env bash
# Vendors the front-end files the binary serves (built in with include_bytes!), from npm, at
# pinned versions checked against npm's integrity hash. Run again after changing a version;
# the files land under assets/vendor/ and are committed, so that a build needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

# name version integrity files...
vendor() {
  local name=$1 version=$2 integrity=$3; shift 3
  local dest="assets/vendor/$name" work
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
  local tgz="$work/$name-$version.tgz"
  local got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    echo "vendor: $name@$version does not match its integrity hash ($got)" >&2; exit 1
  fi
  tar -xzf "$tgz" -C "$work"
  rm -rf "$dest"; mkdir -p "$dest"
  for f in "$@"; do cp "$work/package/$f" "$dest/"; done
  echo "$name@$version" >"$dest/VERSION"
  rm -rf "$work"
  echo "[vendor] $name@$version: $* -> $dest"
}

# The interactive API docs at /docs.
vendor swagger-ui-dist 5.35.0 \
  sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ== \
  swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE
