#!/usr/bin/env bash
# Instructions per MiB of the in-memory line pipeline and of its memchr floor
# (crates/core/examples/log_pipeline.rs), counted by valgrind's callgrind:
# the repeatable figure on a shared, noisy machine, where MiB/s is not.
#
#   bench/callgrind.sh [MiB]        (default 100)
#
# Each part is the difference of two runs over the same deterministic stream:
# PHASE=gen (only build the stream) against PHASE=floor and PHASE=pipeline.
# Prints one JSON line: {"mib":…,"pipelineInstrPerMib":…,"floorInstrPerMib":…,"ratio":…}.
# valgrind is installed with apt-get when it is missing (as scripts/test-cluster
# installs its packages); without apt-get or root it says so and exits 0.
set -euo pipefail
MIB=${1:-100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[callgrind] %s\n' "$*" >&2; }

if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian package: valgrind"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
  else
    log "valgrind is not installed (and no root apt-get to install it): instruction counts skipped"
    exit 0
  fi
fi

cd "$ROOT"
cargo build -q --profile tools -p claude-k8s-core --example log_pipeline
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/tools/examples/log_pipeline
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Total instructions ("Ir") of one run of the example under callgrind.
count() {
  PHASE=$1 valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.out" "$BIN" "$MIB" >/dev/null 2>"$OUT/$1.err" ||
    { cat "$OUT/$1.err" >&2; exit 1; }
  sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$OUT/$1.out" | head -1
}
log "counting instructions over $MIB MiB (three runs under valgrind, about a minute each)"
gen=$(count gen)
floor=$(count floor)
pipeline=$(count pipeline)
# The stream's exact size (a little over the MiB asked for).
bytes=$(PHASE=gen "$BIN" "$MIB")
awk -v g="$gen" -v f="$floor" -v p="$pipeline" -v b="$bytes" 'BEGIN {
  m = b / 1048576; pi = (p - g) / m; fi = (f - g) / m
  printf "{\"mib\":%.1f,\"pipelineInstrPerMib\":%.0f,\"floorInstrPerMib\":%.0f,\"ratio\":%.1f}\n", m, pi, fi, pi / fi
}'
