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

# The console's editor (CodeMirror 6 and its language modes) and charts (uPlot), bundled into
# one ES module by esbuild. Every version is pinned by web/package-lock.json, which `npm ci`
# checks against npm's integrity hashes.
vendor_console() {
  local dest=assets/vendor/console
  (cd web && npm ci --silent --no-audit --no-fund)
  rm -rf "$dest"; mkdir -p "$dest"
  web/node_modules/.bin/esbuild web/vendor-entry.js --bundle --format=esm --minify \
    --legal-comments=none --log-level=warning --outfile="$dest/vendor.js"
  cp web/node_modules/uplot/dist/uPlot.min.css "$dest/"
  # The licenses of everything bundled, and what was bundled at which version.
  (cd web && npm ls --all --omit=dev --parseable --long 2>/dev/null | tail -n +2 \
    | awk -F: '{print $2}' | sort -u) >"$dest/VERSIONS"
  for dir in $(cd web && npm ls --all --omit=dev --parseable 2>/dev/null | tail -n +2 | sort -u); do
    for license in "$dir"/LICENSE*; do
      [ -f "$license" ] && { echo "== $(basename "$dir"): $(basename "$license")"; cat "$license"; echo; }
    done
  done >"$dest/LICENSES.txt"
  echo "[vendor] console: $(wc -l <"$dest/VERSIONS") packages -> $dest"
}
vendor_console
