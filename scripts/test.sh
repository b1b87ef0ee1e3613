#!/usr/bin/env bash
# Runs the whole test suite: unit tests and integration tests against the real Docker engine.
# Sets the machine up first (idempotent), so it works on a fresh Debian 12 machine as root:
# every language's image (each language's tests run against its real image) and the clients
# the tests drive.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --languages all --test-tools
# The whole suite runs jobs in cells made for them (cold). The hostile-code catalogue runs
# again with python jobs in pooled cells that serve job after job, again with the `container`
# backend (a pooled cell serves one job), and again with every job inside gVisor (runsc). Test
# cases go with it: their compiled work dir moves between cells where a cell serves one job.
CATALOGUE=(--test hostile --test limits --test containment --test test_cases)
if cargo nextest --version >/dev/null 2>&1; then
  echo "[test] building the tests"
  cargo build --tests --quiet
  # A build leaves gigabytes of dirty pages; every container removal (an overlay unmount) then
  # waits for them to reach the disk, which stalls jobs by seconds. Written out once, here.
  sync
  echo "[test] the cell's executor and protocol (unit tests, with its seccomp filter)"
  cargo nextest run --no-fail-fast -p codebeaker-cell --features executor
  echo "[test] cargo nextest run $*"
  # Hundreds of containers at once on two cores now and then slow the kernel's or Docker's word
  # on an OOM kill past what a test waits for (two such reads fixed today, in the executor and
  # in `Sandbox::oom_killed`). One retry, reported by nextest as FLAKY, not hidden.
  cargo nextest run --no-fail-fast --retries 1 "$@"
  echo "[test] faults that stop or restart dockerd, one at a time"
  # nats-server 2.9.10 (Debian's) can lose track of a delivered message when a consumer's
  # leader dies with its server (fixed upstream in 2.10/2.11, nats-server#6469); the cluster
  # fault test then sees a job stay queued. One retry, reported as FLAKY, not hidden.
  cargo nextest run --no-fail-fast --test faults --run-ignored only --test-threads 1 --retries 1
  echo "[test] the hostile-code catalogue again, python jobs in pooled cells reused job after job"
  CODEBEAKER_TEST_POOL=1 cargo nextest run --no-fail-fast "${CATALOGUE[@]}"
  echo "[test] the hostile-code catalogue again, container backend (one job per pooled cell)"
  CODEBEAKER_TEST_BACKEND=container CODEBEAKER_TEST_POOL=1 cargo nextest run --no-fail-fast "${CATALOGUE[@]}"
  echo "[test] the hostile-code catalogue again, under gVisor (runsc), pooled"
  # runsc's ptrace platform on 2 cores is now and then slow to start a sandbox; a retry is
  # reported as FLAKY by nextest rather than hidden.
  CODEBEAKER_TEST_RUNTIME=runsc CODEBEAKER_TEST_POOL=1 \
    cargo nextest run --no-fail-fast --retries 2 "${CATALOGUE[@]}"
else
  echo "[test] cargo-nextest not found; using cargo test"
  cargo test -p codebeaker-cell --features executor
  cargo test "$@"
  cargo test --test faults -- --ignored --test-threads 1
  CODEBEAKER_TEST_POOL=1 cargo test "${CATALOGUE[@]}"
  CODEBEAKER_TEST_BACKEND=container CODEBEAKER_TEST_POOL=1 cargo test "${CATALOGUE[@]}"
  CODEBEAKER_TEST_RUNTIME=runsc CODEBEAKER_TEST_POOL=1 cargo test "${CATALOGUE[@]}"
fi
