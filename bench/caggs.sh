#!/usr/bin/env bash
# Continuous aggregate benchmark, Tempora against PostgreSQL in one run on
# this machine, on the TSBS cpu-only data: the time to materialize an hourly
# aggregate of all ten metrics per host over the whole data set, and the
# latency of TSBS's double-groupby-all (12 hours, every host, all metrics)
# answered from raw rows and from the aggregate. See docs/performance.md.
#
#   bench/caggs.sh [smoke|small|medium] [--count N] [--workers N]
#                  [--no-postgres] [--no-build] [--keep]
#
# Tempora: a hypertable with 12-hour chunks, loaded with COPY and
# CHECKPOINTed, then CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous)
# (which materializes everything), timed. PostgreSQL: a plain table with
# TSBS's indexes, then CREATE MATERIALIZED VIEW and REFRESH MATERIALIZED VIEW
# of the same query, each timed; then one late row per host, and the
# refresh each needs for it (Tempora: the one changed hour; PostgreSQL: all
# of it again), timed. Latencies: pgbench, N runs (default 20) of
# one fixed 12-hour window, after 2 warm-up runs. The two answers of each
# server must have the same number of rows.
# Environment: those of bench/lib.sh.
set -euo pipefail

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

LOG_TAG=caggs
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COUNT=20
while [ $# -gt 0 ]; do
    bench_option "$@"
    if [ "$USED" = 0 ]; then
        USED=1
        case "$1" in
            --count) COUNT=${2:?--count needs a number}; USED=2 ;;
            --count=*) COUNT=${1#*=} ;;
            -h | --help) usage; exit 0 ;;
            *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
        esac
    fi
    shift "$USED"
done

bench_size "$SIZE"
bench_binaries "$BUILD" 1
bench_data
bench_run_dirs caggs
bench_machine "$RESULTS/machine.txt" "caggs: $COUNT timed runs per query (pgbench, simple protocol)"
bench_traps

METRICS="usage_user usage_system usage_idle usage_nice usage_iowait usage_irq usage_softirq usage_steal usage_guest usage_guest_nice"
AVGS=$(for m in $METRICS; do printf 'avg(%s) AS mean_%s, ' "$m" "$m"; done)
AVGS=${AVGS%, }
MEANS=$(for m in $METRICS; do printf 'mean_%s, ' "$m"; done)
MEANS=${MEANS%, }
AGG_QUERY="SELECT time_bucket('1 hour', time) AS hour, hostname, $AVGS FROM cpu GROUP BY hour, hostname"
# TSBS's double-groupby-all over the first 12 hours, and the same from the aggregate.
FROM_TS="${START%Z}"
FROM_TS="${FROM_TS/T/ }+00"
TO_TS=$(date -u -d "${START} + 12 hours" '+%Y-%m-%d %H:%M:%S+00')
RAW_QUERY="WITH cpu_avg AS (SELECT time_bucket('1 hour', time) AS hour, hostname, $AVGS FROM cpu WHERE time >= '$FROM_TS' AND time < '$TO_TS' GROUP BY 1, 2) SELECT hour, hostname, $MEANS FROM cpu_avg ORDER BY hour, hostname"
AGG_READ="SELECT hour, hostname, $MEANS FROM cpu_hourly WHERE hour >= '$FROM_TS' AND hour < '$TO_TS' ORDER BY hour, hostname"

# Late rows: every host's first reading once more (one hour of one day changes).
LATE_ROWS="INSERT INTO cpu SELECT * FROM cpu WHERE time = '$FROM_TS'"

TIME_BUCKET_FN="CREATE FUNCTION time_bucket(width interval, ts timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_bin(width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00')"

PGBENCH=""
if bin=$(find_pg_bin) && [ -x "$bin/pgbench" ]; then PGBENCH=$bin/pgbench; fi
[ -n "$PGBENCH" ] || { log "pgbench not found (PostgreSQL's client tools); it times the queries"; exit 1; }

# timed URL LABEL SQL: runs SQL once, prints the seconds it took.
timed() {
    local url=$1 label=$2 sql=$3 t0 t1
    t0=$(date +%s.%N)
    psql "$url" -X -q -v ON_ERROR_STOP=1 -c "$sql" >/dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
    log "$label: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') s"
}

# latency URL SQL: the average latency (ms) of COUNT runs after 2 warm-ups.
latency() {
    local url=$1 sql=$2 script
    script=$(mktemp "$RUN_DIR/query.XXXXXX.sql")
    printf '%s;\n' "$sql" >"$script"
    "$PGBENCH" -n -M simple -t 2 -f "$script" "$url" >/dev/null 2>&1
    "$PGBENCH" -n -M simple -t "$COUNT" -f "$script" "$url" 2>/dev/null |
        awk '/^latency average/ { print $4 }'
}

# rows URL SQL: the number of rows SQL returns.
rows() {
    psql "$1" -X -A -t -q -v ON_ERROR_STOP=1 -c "SELECT count(*) FROM ($2) q"
}

declare -A FIG

run_tempora() {
    local data="$RUN_DIR/tempora-data"
    tempora_start "$data" "$RESULTS/tempora.log"
    log "tempora: loading with $WORKERS COPY streams into a hypertable, then CHECKPOINT"
    "$BENCH" load --url "$TEMPORA_URL" --file "$CSV" --workers "$WORKERS" --hypertable \
        --checkpoint --label tempora --json-out "$RESULTS/tempora-load.json" >/dev/null
    FIG[t_raw]=$(latency "$TEMPORA_URL" "$RAW_QUERY")
    FIG[t_create]=$(timed "$TEMPORA_URL" "tempora: CREATE MATERIALIZED VIEW (continuous, with data)" \
        "CREATE MATERIALIZED VIEW cpu_hourly WITH (timescaledb.continuous) AS $AGG_QUERY")
    FIG[t_rows]=$(rows "$TEMPORA_URL" "SELECT * FROM cpu_hourly")
    FIG[t_agg]=$(latency "$TEMPORA_URL" "$AGG_READ")
    psql "$TEMPORA_URL" -X -q -v ON_ERROR_STOP=1 -c "$LATE_ROWS"
    FIG[t_late]=$(timed "$TEMPORA_URL" "tempora: refresh after late rows" \
        "CALL refresh_continuous_aggregate('cpu_hourly', NULL, NULL)")
    local a b
    a=$(rows "$TEMPORA_URL" "$RAW_QUERY")
    b=$(rows "$TEMPORA_URL" "$AGG_READ")
    [ "$a" = "$b" ] || { log "tempora: raw answer has $a rows, the aggregate's $b"; return 1; }
    tempora_stop
    rm -rf "$data"
}

run_postgres() {
    local dir="$RUN_DIR/postgres" rc=0
    pg_start "$dir" || return $?
    log "postgresql: loading with $WORKERS COPY streams into a plain table, TSBS's indexes, VACUUM ANALYZE"
    "$BENCH" load --url "$PG_URL" --file "$CSV" --workers "$WORKERS" \
        --label postgresql --json-out "$RESULTS/postgresql-load.json" >/dev/null
    psql "$PG_URL" -X -q -v ON_ERROR_STOP=1 \
        -c "CREATE INDEX cpu_hostname_time_idx ON cpu (hostname, time DESC)" \
        -c "CREATE INDEX cpu_time_idx ON cpu (time DESC)" \
        -c "VACUUM ANALYZE cpu" -c "$TIME_BUCKET_FN"
    FIG[p_raw]=$(latency "$PG_URL" "$RAW_QUERY")
    FIG[p_create]=$(timed "$PG_URL" "postgresql: CREATE MATERIALIZED VIEW" \
        "CREATE MATERIALIZED VIEW cpu_hourly AS $AGG_QUERY")
    FIG[p_refresh]=$(timed "$PG_URL" "postgresql: REFRESH MATERIALIZED VIEW" \
        "REFRESH MATERIALIZED VIEW cpu_hourly")
    psql "$PG_URL" -X -q -c "ANALYZE cpu_hourly"
    FIG[p_rows]=$(rows "$PG_URL" "SELECT * FROM cpu_hourly")
    FIG[p_agg]=$(latency "$PG_URL" "$AGG_READ")
    psql "$PG_URL" -X -q -v ON_ERROR_STOP=1 -c "$LATE_ROWS"
    FIG[p_late]=$(timed "$PG_URL" "postgresql: REFRESH after late rows" \
        "REFRESH MATERIALIZED VIEW cpu_hourly")
    local a b
    a=$(rows "$PG_URL" "$RAW_QUERY")
    b=$(rows "$PG_URL" "$AGG_READ")
    [ "$a" = "$b" ] || { log "postgresql: raw answer has $a rows, the matview's $b"; rc=1; }
    pg_stop || rc=1
    rm -rf "$dir"
    return "$rc"
}

bench_run_both
status=$STATUS
pg=$PG
{
    cat "$RESULTS/machine.txt"
    echo
    printf '%-46s %12s %12s %8s\n' "" tempora postgresql ratio
    ratio() { awk -v t="$1" -v p="$2" 'BEGIN { if (t > 0 && p > 0) printf "%.2fx", t / p; else print "-" }'; }
    printf '%-46s %11ss %11ss %8s\n' "materialize hourly aggregate (create)" \
        "${FIG[t_create]:-}" "${FIG[p_create]:--}" "$(ratio "${FIG[t_create]:-0}" "${FIG[p_create]:-0}")"
    printf '%-46s %12s %11ss %8s\n' "refresh everything again (PostgreSQL only)" \
        "" "${FIG[p_refresh]:--}" ""
    printf '%-46s %11ss %11ss %8s\n' "refresh after one late row per host" \
        "${FIG[t_late]:-}" "${FIG[p_late]:--}" "$(ratio "${FIG[t_late]:-0}" "${FIG[p_late]:-0}")"
    printf '%-46s %12s %12s\n' "aggregate rows" "${FIG[t_rows]:-}" "${FIG[p_rows]:--}"
    printf '%-46s %10sms %10sms %8s\n' "double-groupby-all from raw rows" \
        "${FIG[t_raw]:-}" "${FIG[p_raw]:--}" "$(ratio "${FIG[t_raw]:-0}" "${FIG[p_raw]:-0}")"
    printf '%-46s %10sms %10sms %8s\n' "double-groupby-all from the aggregate" \
        "${FIG[t_agg]:-}" "${FIG[p_agg]:--}" "$(ratio "${FIG[t_agg]:-0}" "${FIG[p_agg]:-0}")"
    echo "(ratio: Tempora / PostgreSQL; below 1 Tempora is faster; postgresql: $pg)"
} | tee "$RESULTS/caggs.txt"
log "results: $RESULTS"
exit "$status"
