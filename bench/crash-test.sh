#!/usr/bin/env bash
# Crash-durability soak test: builds the release server and runs the e2e crash
# test for many rounds. Each round, 3 connections stream INSERT and COPY
# batches (one COPY per round large enough to be written to Parquet files
# directly) into a hypertable, the server is killed with SIGKILL at a random
# moment and restarted on the same data directory; every acknowledged batch
# must then be present exactly once and no batch partially. Afterwards the
# readers test runs (2 writers, 2 readers checking consistent snapshots).
#
#   bench/crash-test.sh [ROUNDS] [--seed N] [--large-rows N] [--max-kill-ms N]
#                       [--new-table-every N] [--read-ms N] [--no-readers]
#                       [--no-build] [--keep]
#
# ROUNDS defaults to 200. The seed (printed at the start) makes the kill
# moments and batch sizes repeatable. Every 20 rounds (--new-table-every) the
# table is dropped and created again, so that the checks stay fast.
# Environment: TMPDIR (where the test's data directories go; a few GiB),
# CARGO_TARGET_DIR.
set -euo pipefail

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

ROUNDS=200
SEED=""
LARGE_ROWS=300000
MAX_KILL_MS=4000
NEW_TABLE_EVERY=20
READ_MS=30000
READERS=1
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --seed) SEED=${2:?--seed needs a number}; shift ;;
        --seed=*) SEED=${1#*=} ;;
        --large-rows) LARGE_ROWS=${2:?--large-rows needs a number}; shift ;;
        --large-rows=*) LARGE_ROWS=${1#*=} ;;
        --max-kill-ms) MAX_KILL_MS=${2:?--max-kill-ms needs a number}; shift ;;
        --max-kill-ms=*) MAX_KILL_MS=${1#*=} ;;
        --new-table-every) NEW_TABLE_EVERY=${2:?--new-table-every needs a number}; shift ;;
        --new-table-every=*) NEW_TABLE_EVERY=${1#*=} ;;
        --read-ms) READ_MS=${2:?--read-ms needs a number}; shift ;;
        --read-ms=*) READ_MS=${1#*=} ;;
        --no-readers) READERS=0 ;;
        --no-build) BUILD=0 ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        [0-9]*) ROUNDS=$1 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for n in "$ROUNDS" "$LARGE_ROWS" "$MAX_KILL_MS" "$NEW_TABLE_EVERY" "$READ_MS" ${SEED:+"$SEED"}; do
    case "$n" in
        '' | *[!0-9]*) echo "not a number: $n" >&2; exit 2 ;;
    esac
done
if [ -z "$SEED" ]; then
    SEED=$(date +%s%N)
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

log() { printf '[crash-test] %s\n' "$*" >&2; }

# The test binary runs the server binary of the same profile.
CARGO_ARGS=(--release -p tempora-server --test e2e)
if [ "$BUILD" = 1 ]; then
    log "building (release): tempora server and the e2e tests"
    cargo test "${CARGO_ARGS[@]}" --no-run
fi

export TEMPORA_CRASH_ROUNDS=$ROUNDS
export TEMPORA_CRASH_SEED=$SEED
export TEMPORA_CRASH_LARGE_ROWS=$LARGE_ROWS
export TEMPORA_CRASH_MAX_KILL_MS=$MAX_KILL_MS
export TEMPORA_CRASH_NEW_TABLE_EVERY=$NEW_TABLE_EVERY
export TEMPORA_CRASH_READ_MS=$READ_MS
if [ "$KEEP" = 1 ]; then export TEMPORA_TEST_KEEP_DATA=1; fi

log "rounds=$ROUNDS seed=$SEED large-rows=$LARGE_ROWS max-kill-ms=$MAX_KILL_MS new-table-every=$NEW_TABLE_EVERY tmp=${TMPDIR:-/tmp}"
log "repeat with: bench/crash-test.sh $ROUNDS --seed $SEED --large-rows $LARGE_ROWS --max-kill-ms $MAX_KILL_MS --new-table-every $NEW_TABLE_EVERY"
started=$(date +%s)
cargo test "${CARGO_ARGS[@]}" \
    crash::kill_9_during_inserts_and_copies_keeps_whole_batches -- --exact --nocapture
if [ "$READERS" = 1 ]; then
    log "readers test for ${READ_MS} ms"
    cargo test "${CARGO_ARGS[@]}" \
        crash::readers_see_whole_batches_while_writers_run -- --exact --nocapture
fi
log "passed in $(( $(date +%s) - started )) s"
