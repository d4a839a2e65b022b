#!/usr/bin/env bash
# Query benchmark: TSBS's 15 "cpu-only" query types against Tempora and a
# throw-away PostgreSQL cluster, in one run, on this machine, with a check that
# both return the same results. See docs/performance.md.
#
#   bench/queries.sh [smoke|small|medium] [--count N] [--warmup N]
#                    [--types a,b,...] [--timeout-secs S] [--workers N]
#                    [--compress] [--no-postgres] [--no-build] [--keep]
#
# Each server is started alone, loaded with COPY (Tempora: a hypertable with
# 12-hour chunks and TSBS's (hostname, time DESC) index, created before the
# load as TSBS's TimescaleDB loader does, then CHECKPOINT so every row is in
# Parquet; PostgreSQL: a plain table, then TSBS's indexes and VACUUM ANALYZE),
# queried, and stopped.
# With --compress, Tempora's chunks are then compressed (segmentby hostname,
# orderby time DESC, as TimescaleDB's figures were taken), the size before and
# after and the compression time recorded, and the queries run again on the
# compressed data; their results must equal the uncompressed ones.
# Exits with status 1 if a query type fails or the results differ.
# Environment: those of bench/lib.sh (TEMPORA_BENCH_SIZE, TEMPORA_BENCH_WORKERS,
# TEMPORA_BENCH_DIR, PG_BIN, TEMPORA_BENCH_PG_USER, CARGO_TARGET_DIR).
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

LOG_TAG=queries
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COUNT=""
WARMUP=""
TYPES=""
TIMEOUT=300
COMPRESS=0
while [ $# -gt 0 ]; do
    bench_option "$@"
    if [ "$USED" = 0 ]; then
        USED=1
        case "$1" in
            --count) COUNT=${2:?--count needs a number}; USED=2 ;;
            --count=*) COUNT=${1#*=} ;;
            --warmup) WARMUP=${2:?--warmup needs a number}; USED=2 ;;
            --warmup=*) WARMUP=${1#*=} ;;
            --types) TYPES=${2:?--types needs a list}; USED=2 ;;
            --types=*) TYPES=${1#*=} ;;
            --timeout-secs) TIMEOUT=${2:?--timeout-secs needs a number}; USED=2 ;;
            --timeout-secs=*) TIMEOUT=${1#*=} ;;
            --compress) COMPRESS=1 ;;
            -h | --help) usage; exit 0 ;;
            *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
        esac
    fi
    shift "$USED"
done

bench_size "$SIZE"
# The medium size's heavy types take seconds each on PostgreSQL: fewer runs.
if [ "$SIZE" = medium ]; then COUNT=${COUNT:-5}; WARMUP=${WARMUP:-1}; fi
COUNT=${COUNT:-20}
WARMUP=${WARMUP:-2}
bench_binaries "$BUILD" 1
bench_data
bench_run_dirs queries
bench_machine "$RESULTS/machine.txt" "queries: $WARMUP warm-up + $COUNT timed per type${TYPES:+ ($TYPES)}"
bench_traps

QUERY_ARGS=(--scale "$SCALE" --start "$START" --end "$END" --seed "$SEED"
    --warmup "$WARMUP" --count "$COUNT" --timeout-secs "$TIMEOUT")
if [ -n "$TYPES" ]; then QUERY_ARGS+=(--types "$TYPES"); fi

# TimescaleDB's time_bucket for PostgreSQL, so that both servers run the same
# SQL text: date_bin with TimescaleDB's origin, Monday 2000-01-03. An
# IMMUTABLE one-expression SQL function is inlined by the planner, so
# PostgreSQL runs date_bin itself.
TIME_BUCKET_FN="CREATE FUNCTION time_bucket(width interval, ts timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_bin(width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00')"

# ---------------------------------------------------------------- Tempora
# tempora_settle DATA_DIR: waits (up to 10 minutes) until the set of Parquet
# files has not changed for 10 s, so that background compaction of the files a
# large COPY or the CHECKPOINT wrote is not timed along with the queries.
tempora_settle() {
    local data=$1 last="" now stable=0 waited=0
    while [ "$stable" -lt 5 ] && [ "$waited" -lt 600 ]; do
        now=$(find "$data" -name '*.parquet' 2>/dev/null | sort | cksum)
        if [ "$now" = "$last" ]; then stable=$((stable + 1)); else stable=0; last=$now; fi
        sleep 2
        waited=$((waited + 2))
    done
    log "tempora: $(find "$data" -name '*.parquet' | wc -l) Parquet files, unchanged for 10 s (waited ${waited} s)"
}

# parquet_bytes DIR: total size of the Parquet files under DIR.
parquet_bytes() {
    find "$1" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {printf "%d", s}'
}

# tempora_sql SQL: runs one statement on the Tempora server, prints its rows.
tempora_sql() {
    psql "$TEMPORA_URL" -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"
}

# tempora_compress DATA_DIR: compresses every chunk and writes the figures to
# $RESULTS/compression.txt.
tempora_compress() {
    local data=$1 rows before after t0 t1
    rows=$(tempora_sql "SELECT count(*) FROM cpu")
    before=$(parquet_bytes "$data")
    log "tempora: compressing every chunk (segmentby hostname, orderby time DESC)"
    tempora_sql "ALTER TABLE cpu SET (timescaledb.compress, timescaledb.compress_segmentby = 'hostname', timescaledb.compress_orderby = 'time DESC')"
    t0=$(date +%s.%N)
    tempora_sql "SELECT count(compress_chunk(c)) FROM show_chunks('cpu') c" >/dev/null
    t1=$(date +%s.%N)
    # The replaced files leave the disk once no statement reads them.
    tempora_settle "$data"
    after=$(parquet_bytes "$data")
    awk -v rows="$rows" -v before="$before" -v after="$after" -v t0="$t0" -v t1="$t1" \
        -v csv="$(stat -c %s "$CSV")" 'BEGIN {
        secs = t1 - t0
        printf "rows                          %d\n", rows
        printf "CSV bytes                     %d\n", csv
        printf "Parquet bytes before          %d (%.2f B/row)\n", before, before / rows
        printf "Parquet bytes after           %d (%.2f B/row)\n", after, after / rows
        printf "compression ratio             %.2fx (CSV / after: %.1fx)\n", before / after, csv / after
        printf "compress_chunk over all (s)   %.3f (%d rows/s)\n", secs, rows / secs
    }' | tee "$RESULTS/compression.txt" >&2
}

run_tempora() {
    local data="$RUN_DIR/tempora-data" rc=0
    tempora_start "$data" "$RESULTS/tempora.log"
    log "tempora: loading with $WORKERS COPY streams into a hypertable with the (hostname, time DESC) index, then CHECKPOINT (every row in Parquet)"
    if ! "$BENCH" load --url "$TEMPORA_URL" --file "$CSV" --workers "$WORKERS" --hypertable \
        --index --checkpoint --label tempora --json-out "$RESULTS/tempora-load.json" >/dev/null; then
        log "tempora: the load failed; last lines of its log ($RESULTS/tempora.log):"
        tail -n 20 "$RESULTS/tempora.log" >&2 || true
        tempora_stop
        return 1
    fi
    tempora_settle "$data"
    log "tempora: CHECKPOINT again (nothing left to flush), then the queries"
    "$BENCH" run-queries --url "$TEMPORA_URL" --label tempora "${QUERY_ARGS[@]}" \
        --setup CHECKPOINT --json-out "$RESULTS/tempora.json" || rc=1
    if [ "$COMPRESS" = 1 ]; then
        if tempora_compress "$data"; then
            log "tempora: the queries again, on compressed chunks"
            "$BENCH" run-queries --url "$TEMPORA_URL" --label tempora-compressed "${QUERY_ARGS[@]}" \
                --json-out "$RESULTS/tempora-compressed.json" || rc=1
        else
            log "tempora: compression failed"
            rc=1
        fi
    fi
    tempora_stop
    rm -rf "$data"
    return "$rc"
}

# ---------------------------------------------------------------- PostgreSQL
run_postgres() {
    local dir="$RUN_DIR/postgres" rc=0
    pg_start "$dir" || return $?
    log "postgresql: loading with $WORKERS COPY streams into a plain table"
    if ! "$BENCH" load --url "$PG_URL" --file "$CSV" --workers "$WORKERS" \
        --label postgresql --json-out "$RESULTS/postgresql-load.json" >/dev/null; then
        log "postgresql: the load failed; last lines of its log:"
        tail -n 20 "$dir/postgres.log" >&2 || true
        rc=1
    else
        log "postgresql: TSBS's indexes, VACUUM ANALYZE, time_bucket, then the queries"
        "$BENCH" run-queries --url "$PG_URL" --label postgresql "${QUERY_ARGS[@]}" \
            --setup "CREATE INDEX cpu_hostname_time_idx ON cpu (hostname, time DESC)" \
            --setup "CREATE INDEX cpu_time_idx ON cpu (time DESC)" \
            --setup "VACUUM ANALYZE cpu" \
            --setup "$TIME_BUCKET_FN" \
            --json-out "$RESULTS/postgresql.json" || rc=1
    fi
    pg_stop || rc=1
    cp "$dir/postgres.log" "$RESULTS/postgresql.log" 2>/dev/null || true
    rm -rf "$dir"
    return "$rc"
}

bench_run_both
status=$STATUS
pg=$PG
echo
cat "$RESULTS/machine.txt"
echo
if [ "$pg" = ok ] && [ -s "$RESULTS/tempora.json" ] && [ -s "$RESULTS/postgresql.json" ]; then
    "$BENCH" compare-queries "$RESULTS/tempora.json" "$RESULTS/postgresql.json" \
        --json-out "$RESULTS/summary.json" || status=1
    echo
fi
if [ "$COMPRESS" = 1 ] && [ -s "$RESULTS/tempora-compressed.json" ]; then
    echo "compressed against uncompressed Tempora (results must be equal):"
    "$BENCH" compare-queries "$RESULTS/tempora-compressed.json" "$RESULTS/tempora.json" \
        --json-out "$RESULTS/summary-compressed.json" || status=1
    echo
    if [ "$pg" = ok ]; then
        echo "compressed Tempora against PostgreSQL:"
        "$BENCH" compare-queries "$RESULTS/tempora-compressed.json" "$RESULTS/postgresql.json" \
            --json-out "$RESULTS/summary-compressed-postgresql.json" || status=1
        echo
    fi
    cat "$RESULTS/compression.txt"
    echo
fi
log "results: $RESULTS"
exit "$status"
