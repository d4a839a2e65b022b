#!/usr/bin/env bash
# Bulk-ingest benchmark: the TSBS "cpu-only" data set loaded with parallel
# COPY into Tempora and into a throw-away PostgreSQL cluster, in one run, on
# this machine. See docs/performance.md.
#
#   bench/ingest.sh [smoke|small|medium] [--workers N] [--no-postgres]
#                   [--no-tempora] [--no-build] [--keep]
#
# Environment: TEMPORA_BENCH_SIZE, TEMPORA_BENCH_WORKERS, and those of
# bench/lib.sh: TEMPORA_BENCH_DIR (cache and scratch, default /var/tmp/tempora-bench),
# PG_BIN, TEMPORA_BENCH_PG_USER (default nobody), CARGO_TARGET_DIR.
set -euo pipefail

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}

LOG_TAG=ingest
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN_TEMPORA=1
while [ $# -gt 0 ]; do
    bench_option "$@"
    if [ "$USED" = 0 ]; then
        case "$1" in
            --no-tempora) RUN_TEMPORA=0 ;;
            -h | --help) usage; exit 0 ;;
            *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
        esac
        USED=1
    fi
    shift "$USED"
done

bench_size "$SIZE"
bench_binaries "$BUILD" "$RUN_TEMPORA"
bench_data
bench_run_dirs ingest
bench_machine "$RESULTS/machine.txt" "workers: $WORKERS"
bench_traps

REPORTS=()

# ---------------------------------------------------------------- Tempora
run_tempora() {
    local data="$RUN_DIR/tempora-data" rc=0
    tempora_start "$data" "$RESULTS/tempora.log"
    log "tempora: loading with $WORKERS COPY streams into a hypertable"
    if ! "$BENCH" load --url "$TEMPORA_URL" --file "$CSV" \
        --workers "$WORKERS" --hypertable --server-pid "$TEMPORA_PID" --data-dir "$data" \
        --label tempora --json-out "$RESULTS/tempora.json"; then
        log "tempora: the load failed; last lines of its log ($RESULTS/tempora.log):"
        tail -n 20 "$RESULTS/tempora.log" >&2 || true
        rc=1
    fi
    tempora_stop
    if [ "$rc" = 0 ]; then
        "$BENCH" du "$data" --update-json "$RESULTS/tempora.json" >/dev/null
        REPORTS+=("$RESULTS/tempora.json")
    fi
    rm -rf "$data"
    return "$rc"
}

# ---------------------------------------------------------------- PostgreSQL
run_postgres() {
    local dir="$RUN_DIR/postgres" rc=0 data
    pg_start "$dir" || { rc=$?; [ "$rc" = 2 ] && return 0; return "$rc"; }
    data=$PG_DATA
    log "postgresql: loading with $WORKERS COPY streams into a plain table"
    if ! "$BENCH" load --url "$PG_URL" --file "$CSV" \
        --workers "$WORKERS" --server-pid "$PG_PID" --data-dir "$data" \
        --label postgresql --json-out "$RESULTS/postgresql.json"; then
        log "postgresql: the load failed; last lines of its log:"
        tail -n 20 "$dir/postgres.log" >&2 || true
        rc=1
    fi
    pg_stop || rc=1
    cp "$dir/postgres.log" "$RESULTS/postgresql.log" 2>/dev/null || true
    if [ "$rc" = 0 ]; then
        "$BENCH" du "$data" --update-json "$RESULTS/postgresql.json" >/dev/null
        REPORTS+=("$RESULTS/postgresql.json")
    fi
    rm -rf "$dir"
    return "$rc"
}

status=0
if [ "$RUN_TEMPORA" = 1 ]; then run_tempora || status=1; fi
if [ "$RUN_POSTGRES" = 1 ]; then run_postgres || status=1; fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.txt"
echo
cat "$RESULTS/machine.txt"
echo
if [ "${#REPORTS[@]}" -gt 0 ]; then
    "$BENCH" compare "${REPORTS[@]}" --json-out "$RESULTS/summary.json"
    echo
    log "results: $RESULTS"
else
    log "no successful load"
    status=1
fi
exit "$status"
