#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (as root) to run and test CodeBeaker:
# Docker engine, nats-server, the base image and the language images.
# Idempotent: each step checks first and says what it does; a second run takes seconds.
#
#   scripts/setup.sh [--languages default|all|NAME,...] [--test-tools] [--compose]
#
# --languages  which language images to build; `default` (the default): python, javascript,
#              c, cpp, java, bash. A node serves the languages whose images exist and picks
#              up new ones within seconds, so more can be built while it serves.
# --test-tools also the clients the test suite drives (browsers, SDKs, Prometheus).
# --compose    also docker-compose and the service images docker-compose.yml runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# What a new machine builds unless told otherwise: the most asked-for languages, about two
# minutes of image builds on the development machine (every language: about eight).
DEFAULT_LANGUAGES="python javascript c cpp java bash"

usage() { sed -n '/^#   scripts.setup.sh/,/^# --compose/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

COMPOSE=false
TEST_TOOLS=false
WANTED=${CODEBEAKER_LANGUAGES:-default}
while [ $# -gt 0 ]; do
  case "$1" in
    --compose) COMPOSE=true ;;
    --test-tools) TEST_TOOLS=true ;;
    --languages) [ $# -ge 2 ] || usage; WANTED=$2; shift ;;
    --languages=*) WANTED=${1#--languages=} ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
  shift
done

# The language names $WANTED stands for, each checked against docker/runtimes.
languages_wanted() {
  local names
  case "$WANTED" in
    all) names=$(ls docker/runtimes) ;;
    default) names=$DEFAULT_LANGUAGES ;;
    *) names=${WANTED//,/ } ;;
  esac
  for name in $names; do
    [ -d "docker/runtimes/$name" ] || {
      echo "no language named $name (known: $(ls docker/runtimes | tr '\n' ' '))" >&2; exit 2; }
    echo "$name"
  done
}
LANGUAGES=$(languages_wanted | tr '\n' ' ')

DATA_DIR=${CODEBEAKER_SETUP_DIR:-/var/lib/codebeaker-setup}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/codebeaker-dockerd.log}
BASE_IMAGE=codebeaker/base:bookworm

say() { if [ -t 1 ]; then printf '\033[1m[setup]\033[0m %s\n' "$*"; else printf '[setup] %s\n' "$*"; fi; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then echo "setup must run as root (it installs packages and starts dockerd)" >&2; exit 1; fi
}

# Installs the Debian packages (command or file that shows each is there, then the package).
install_packages() {
  local wanted=(
    dockerd docker.io   debootstrap debootstrap   nats-server nats-server   runsc runsc
    # The executor's seccomp filter links libseccomp (the images have its runtime library).
    /usr/include/seccomp.h libseccomp-dev
  )
  if $TEST_TOOLS; then
    wanted+=(
      curl curl   npm npm
      # The console's browser tests run Debian's Chromium headless (playwright-core drives it).
      chromium chromium
      # Prometheus: the metrics test scrapes a node with the real thing.
      prometheus prometheus
    )
  fi
  $COMPOSE && wanted+=(docker-compose docker-compose)
  local missing=() present=()
  for ((i = 0; i < ${#wanted[@]}; i += 2)); do
    local check=${wanted[i]} package=${wanted[i + 1]}
    if [ -e "$check" ] || command -v "$check" >/dev/null; then present+=("$package"); else missing+=("$package"); fi
  done
  if [ ${#missing[@]} -eq 0 ]; then say "packages present: ${present[*]}"; return; fi
  say "installing Debian packages: ${missing[*]}"
  apt-get update -q >/dev/null
  # No package may start its daemon (they would listen on every interface): we start what we
  # need ourselves, bound to 127.0.0.1.
  local policy=/usr/sbin/policy-rc.d
  [ -e $policy ] || { printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; trap "rm -f $policy" EXIT; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
}

# The Python HTTP clients the tests drive the API with (PyPI, or Debian's package where pip
# may not install into the system Python).
install_test_clients() {
  if python3 -c 'import requests' 2>/dev/null; then say "test clients present: requests"; return; fi
  say "installing the test clients: requests"
  python3 -m pip install --quiet requests 2>/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-requests >/dev/null
}

# A pinned PyPI package the tests use, in a venv of its own: install_pypi VENV PACKAGE VERSION.
# schemathesis runs over every endpoint of /openapi.json; judge0 is Judge0's own Python SDK,
# which the Judge0 API's tests drive unmodified; mcp is the official MCP SDK (both protocol
# eras), whose client the MCP tests drive.
install_pypi() {
  local venv="$DATA_DIR/$1" package="$2" version="$3"
  local have
  have=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$package'))" 2>/dev/null || true)
  if [ "$have" = "$version" ]; then say "$package $version present"; return; fi
  say "installing $package $version (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "$package==$version"
}

# Pinned npm packages the tests use, in a directory of their own: install_npm DIR PACKAGE@V...
# piston-client is the Piston API's own client, driven unmodified; ws speaks its WebSocket;
# @modelcontextprotocol/sdk is the official TypeScript MCP SDK (the initialize era);
# playwright-core drives Debian's Chromium for the console's tests (it downloads no browser),
# and axe-core checks the pages' accessibility there.
install_npm() {
  local dir="$DATA_DIR/$1"; shift
  if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$*" ]; then say "npm packages present: $*"; return; fi
  say "installing $* (npm) into $dir"
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
  (cd "$dir" && npm install --silent --no-audit --no-fund "$@")
  echo "$*" >"$dir/.installed"
}

# gVisor's runsc as a Docker runtime named "runsc" (ptrace platform: works without KVM;
# network none: jobs have no network anyway).
register_runsc() {
  local conf=/etc/docker/daemon.json
  if grep -q '"runsc"' "$conf" 2>/dev/null; then say "runsc registered with dockerd"; return; fi
  if [ -s "$conf" ]; then
    echo "$conf exists without a runsc runtime; add it by hand (see README, gVisor)" >&2; return
  fi
  say "registering runsc (gVisor) with dockerd in $conf"
  mkdir -p /etc/docker
  cat >"$conf" <<'JSON'
{
  "runtimes": {
    "runsc": { "path": "/usr/bin/runsc", "runtimeArgs": ["--platform=ptrace", "--network=none"] }
  }
}
JSON
  # A running dockerd reloads its runtimes on SIGHUP.
  if pidof dockerd >/dev/null; then kill -HUP "$(pidof dockerd)"; sleep 1; fi
}

start_dockerd() {
  if docker version >/dev/null 2>&1; then say "dockerd already answering"; return; fi
  say "starting dockerd (no bridge, no iptables; log: $DOCKERD_LOG)"
  nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$DOCKERD_LOG" 2>&1 &
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && { say "dockerd is up"; return; }
    sleep 0.5
  done
  echo "dockerd did not answer within 30 s; last log lines:" >&2
  tail -20 "$DOCKERD_LOG" >&2
  exit 1
}

# The Debian mirror this machine's apt already uses (debootstrap's default when none is found).
apt_mirror() {
  awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    || true
}

build_base() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then say "base image $BASE_IMAGE present"; return; fi
  if timeout 20 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
    say "pulled debian:bookworm-slim from a registry"
    docker tag debian:bookworm-slim "$BASE_IMAGE"
    return
  fi
  say "no registry reachable: bootstrapping Debian bookworm with debootstrap (about a minute)"
  local root="$DATA_DIR/bookworm-rootfs"
  rm -rf "$root"; mkdir -p "$root"
  debootstrap --variant=minbase bookworm "$root" $(apt_mirror) >"$DATA_DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$DATA_DIR/debootstrap.log" >&2; exit 1; }
  say "importing the root filesystem as $BASE_IMAGE"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
}

# The directory docker builds $1 from: $1 itself, or, where $1/pypi.txt pins wheels from
# PyPI (a toolchain Debian lacks), a copy with the wheels downloaded into wheels/ by the host's
# pip, which trusts this machine's certificates as a build container would not. The pins are
# exact, so the source directory's hash still names what is built.
build_context() {
  local dir=$1 name=$2
  [ -f "$dir/pypi.txt" ] || { echo "$dir"; return; }
  local context="$DATA_DIR/context-$name"
  rm -rf "$context"; cp -r "$dir" "$context"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -r "$dir/pypi.txt" -d "$context/wheels" >&2 \
    || { echo "downloading the wheels in $dir/pypi.txt from PyPI failed" >&2; return 1; }
  echo "$context"
}

# Builds image $2 from directory $1 on base $3, unless an image built from the same content on
# the same base exists (the pair's hash is kept as a label).
build_image() {
  local dir=$1 tag=$2 base=$3 name=${4:-$(basename "$1")}
  # A directory without a Dockerfile of its own lists Debian packages for the shared one.
  local dockerfile="$dir/Dockerfile"
  [ -f "$dockerfile" ] || dockerfile=docker/debian-packages.Dockerfile
  # Content only (names and bytes), so a fresh clone with new mtimes is still up to date.
  local hash; hash=$( { (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum);
                        sha256sum <"$dockerfile";
                        docker image inspect -f '{{.Id}}' "$base"; } | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "codebeaker.source_hash"}}' "$tag" 2>/dev/null)" = "$hash" ]; then
    say "image $tag up to date"; return
  fi
  say "building image $tag (log: $DATA_DIR/build-$name.log)"
  local context; context=$(build_context "$dir" "$name") || return 1
  if ! docker build --network host --build-arg BASE="$base" --label codebeaker.source_hash="$hash" \
      -f "$dockerfile" -t "$tag" "$context" >"$DATA_DIR/build-$name.log" 2>&1; then
    echo "building $tag failed; last lines of $DATA_DIR/build-$name.log:" >&2
    tail -30 "$DATA_DIR/build-$name.log" >&2
    return 1
  fi
  say "built $tag"
}

# The cell's executor, built from this checkout (crate cell/) on this Debian release, the same
# as the images': it links the system's glibc and libseccomp.
# It has a target directory of its own, so that it builds while scripts/serve.sh builds the
# server (one target directory allows one cargo at a time).
build_executor() {
  say "building the cell executor (cargo build --release -p codebeaker-cell)"
  local target="$DATA_DIR/executor-target"
  CARGO_TARGET_DIR="$target" cargo build --release --quiet -p codebeaker-cell --features executor
  mkdir -p "$DATA_DIR/cell"
  cp "$target/release/codebeaker-cell" "$DATA_DIR/cell/codebeaker-cell"
  cp docker/cell/Dockerfile "$DATA_DIR/cell/Dockerfile"
}

# A language's image: its toolchain (docker/runtimes/<lang>: a Dockerfile, or a `packages`
# file for docker/debian-packages.Dockerfile), then the executor as one last
# layer, so that a new executor costs one small layer per language, not a rebuild. Says when
# it is ready, with the time it took and its size: $2 is its place in the list ("3/39").
build_language() {
  local lang=$1 place=$2 started=$SECONDS
  build_image "docker/runtimes/$lang" "codebeaker/$lang-runtime:latest" codebeaker/runtime-base:latest >/dev/null \
    && build_image "$DATA_DIR/cell" "codebeaker/$lang:latest" "codebeaker/$lang-runtime:latest" "cell-$lang" >/dev/null \
    || { say "[$place] $lang: FAILED (log: $DATA_DIR/build-$lang.log)"; return 1; }
  local size; size=$(docker image inspect -f '{{.Size}}' "codebeaker/$lang:latest")
  say "[$place] $lang ready: codebeaker/$lang:latest, $((size / 1000000)) MB, $((SECONDS - started)) s"
}

# Language images share the runtime base and build in parallel (their time is mostly package
# downloads and unpacking).
build_runtimes() {
  build_image docker/runtime-base codebeaker/runtime-base:latest "$BASE_IMAGE"
  build_executor
  local total; total=$(echo $LANGUAGES | wc -w)
  say "language images: $total ($LANGUAGES), three at a time"
  local pids=() failed=0 n=0
  for lang in $LANGUAGES; do
    n=$((n + 1))
    build_language "$lang" "$n/$total" &
    pids+=($!)
    # At most three builds at once on a small machine.
    if [ ${#pids[@]} -ge 3 ]; then wait "${pids[0]}" || failed=1; pids=("${pids[@]:1}"); fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ $failed -eq 0 ] || { echo "some images failed to build" >&2; exit 1; }
  # Earlier builds of our images, untagged by these ones, take gigabytes: removed.
  local old; old=$(docker images -q --filter dangling=true --filter label=codebeaker.source_hash)
  if [ -n "$old" ]; then
    say "removing $(echo "$old" | wc -l) earlier builds of the images"
    docker rmi $old >/dev/null 2>&1 || true
  fi
}

# The images docker-compose.yml runs: nats-server, Prometheus, and CodeBeaker from a release
# build. (Grafana is not in Debian: its compose profile pulls grafana/grafana-oss.)
build_service_images() {
  say "building the nats image codebeaker/nats:latest"
  docker build --network host --build-arg BASE="$BASE_IMAGE" -t codebeaker/nats:latest \
    -f docker/nats/Dockerfile nats >"$DATA_DIR/build-nats.log" 2>&1 || { tail -30 "$DATA_DIR/build-nats.log" >&2; exit 1; }
  say "building the prometheus image codebeaker/prometheus:latest"
  docker build --network host --build-arg BASE="$BASE_IMAGE" -t codebeaker/prometheus:latest \
    -f docker/prometheus/Dockerfile observability >"$DATA_DIR/build-prometheus.log" 2>&1 || { tail -30 "$DATA_DIR/build-prometheus.log" >&2; exit 1; }
  say "building CodeBeaker (release) for the service image"
  cargo build --release --quiet
  say "building the service image codebeaker/codebeaker:latest"
  docker build --network host --build-arg BASE="$BASE_IMAGE" -t codebeaker/codebeaker:latest \
    -f docker/codebeaker/Dockerfile . >"$DATA_DIR/build-service.log" 2>&1 || { tail -30 "$DATA_DIR/build-service.log" >&2; exit 1; }
}

need_root
mkdir -p "$DATA_DIR"
install_packages
if $TEST_TOOLS; then
  install_test_clients
  install_pypi venv schemathesis 4.32.5
  install_pypi judge0-venv judge0 0.0.8
  install_pypi mcp-venv mcp 2.3.0
  install_npm npm-clients piston-client@1.0.2 ws@8.18.3 @modelcontextprotocol/sdk@1.32.2 playwright-core@1.65.2 axe-core@4.14.1
fi
register_runsc
start_dockerd
build_base
build_runtimes
$COMPOSE && build_service_images
say "ready"
