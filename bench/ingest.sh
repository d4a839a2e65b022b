#!/usr/bin/env bash
# Bulk-ingest benchmark: the TSBS "cpu-only" data set loaded with parallel
# COPY into Tempora and into a throw-away PostgreSQL cluster, in one run, on
# this machine. See docs/performance.md.
#
#   bench/ingest.sh [smoke|small|medium] [--workers N] [--no-postgres]
#                   [--no-tempora] [--no-build] [--keep]
#
# Environment: TEMPORA_BENCH_DIR (cache and scratch, default /var/tmp/tempora-bench),
# TEMPORA_BENCH_SIZE, TEMPORA_BENCH_WORKERS, PG_BIN (PostgreSQL's bin directory),
# TEMPORA_BENCH_PG_USER (unprivileged user for PostgreSQL when run as root, default nobody),
# CARGO_TARGET_DIR.
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

SIZE=${TEMPORA_BENCH_SIZE:-small}
WORKERS=${TEMPORA_BENCH_WORKERS:-2}
RUN_TEMPORA=1
RUN_POSTGRES=1
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        smoke | small | medium) SIZE=$1 ;;
        --workers) WORKERS=${2:?--workers needs a number}; shift ;;
        --workers=*) WORKERS=${1#*=} ;;
        --no-postgres) RUN_POSTGRES=0 ;;
        --no-tempora) RUN_TEMPORA=0 ;;
        --no-build) BUILD=0 ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

START=2016-01-01T00:00:00Z
INTERVAL=10s
SEED=123
case "$SIZE" in
    smoke) SCALE=100; END=2016-01-01T06:00:00Z ;;
    small) SCALE=100; END=2016-01-02T00:00:00Z ;;
    medium) SCALE=4000; END=2016-01-02T00:00:00Z ;;
    *) echo "unknown size: $SIZE (smoke, small or medium)" >&2; exit 2 ;;
esac

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BENCH_DIR=${TEMPORA_BENCH_DIR:-/var/tmp/tempora-bench}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

log() { printf '[ingest] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- build
if [ "$BUILD" = 1 ]; then
    log "building (release): tempora-server, tempora-bench"
    (cd "$REPO" && cargo build --release -p tempora-server -p tempora-bench)
fi
BENCH=$TARGET_DIR/release/tempora-bench
SERVER=""
for candidate in "$TARGET_DIR/release/tempora" "$TARGET_DIR/release/tempora-server"; do
    if [ -x "$candidate" ]; then SERVER=$candidate; break; fi
done
[ -x "$BENCH" ] || { log "missing $BENCH (run without --no-build)"; exit 1; }
if [ "$RUN_TEMPORA" = 1 ] && [ -z "$SERVER" ]; then
    log "missing the Tempora server binary in $TARGET_DIR/release (run without --no-build)"
    exit 1
fi

fstype=$(df -PT "$BENCH_DIR" 2>/dev/null | awk 'NR == 2 { print $2 }')
if [ "$fstype" = tmpfs ] || [ "$fstype" = ramfs ]; then
    log "WARNING: $BENCH_DIR is on $fstype: fsync costs nothing there; set TEMPORA_BENCH_DIR to a directory on a disk"
fi

# ---------------------------------------------------------------- data
ROWS=$("$BENCH" gen --scale "$SCALE" --start "$START" --end "$END" --interval "$INTERVAL" --seed "$SEED" --rows)
CSV="$BENCH_DIR/cpu-only-scale$SCALE-${START//:/}-${END//:/}-$INTERVAL-seed$SEED.csv"
if [ -s "$CSV" ]; then
    log "data: $CSV (cached, $ROWS rows)"
else
    need_kb=$((ROWS * 170 / 1024))
    free_kb=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
    if [ "$free_kb" -lt $((need_kb * 3)) ]; then
        log "WARNING: $BENCH_DIR has $((free_kb / 1024)) MiB free; the CSV needs about $((need_kb / 1024)) MiB and each server needs more than that again"
    fi
    log "data: generating $ROWS rows ($SCALE hosts, $START .. $END, every $INTERVAL, seed $SEED) into $CSV"
    "$BENCH" gen --scale "$SCALE" --start "$START" --end "$END" --interval "$INTERVAL" --seed "$SEED" --out "$CSV"
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$BENCH_DIR/results/$STAMP-$SIZE"
mkdir -p "$RESULTS"
RUN_DIR=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
chmod 755 "$RUN_DIR"

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "size: $SIZE ($ROWS rows, $SCALE hosts, $START .. $END, $INTERVAL, seed $SEED)"
    echo "workers: $WORKERS"
    echo "cpus: $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "kernel: $(uname -sr)"
    echo "filesystem: $fstype ($BENCH_DIR)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$RESULTS/machine.txt"

TEMPORA_PID=""
PG_CTL=""
PG_DATA=""
cleanup() {
    if [ -n "$TEMPORA_PID" ] && kill -0 "$TEMPORA_PID" 2>/dev/null; then
        kill -TERM "$TEMPORA_PID" 2>/dev/null || true
        wait "$TEMPORA_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_CTL" ] && [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        as_pg "$PG_CTL" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ "$KEEP" = 0 ]; then rm -rf "$RUN_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REPORTS=()

# ---------------------------------------------------------------- Tempora
run_tempora() {
    local port data rc=0 t0 t1
    port=$("$BENCH" free-port)
    data="$RUN_DIR/tempora-data"
    log "tempora: starting $SERVER on 127.0.0.1:$port, data in $data (durable commits: the default)"
    "$SERVER" --host 127.0.0.1 --port "$port" --data-dir "$data" >"$RESULTS/tempora.log" 2>&1 &
    TEMPORA_PID=$!
    log "tempora: loading with $WORKERS COPY streams into a hypertable"
    if ! "$BENCH" load --url "postgresql://postgres@127.0.0.1:$port/postgres" --file "$CSV" \
        --workers "$WORKERS" --hypertable --server-pid "$TEMPORA_PID" --data-dir "$data" \
        --label tempora --json-out "$RESULTS/tempora.json"; then
        log "tempora: the load failed; last lines of its log ($RESULTS/tempora.log):"
        tail -n 20 "$RESULTS/tempora.log" >&2 || true
        rc=1
    fi
    log "tempora: stopping (SIGTERM flushes memtables to Parquet)"
    t0=$(date +%s.%N)
    kill -TERM "$TEMPORA_PID" 2>/dev/null || true
    wait "$TEMPORA_PID" || log "tempora: exited with status $?"
    t1=$(date +%s.%N)
    TEMPORA_PID=""
    log "tempora: stopped after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
    if [ "$rc" = 0 ]; then
        "$BENCH" du "$data" --update-json "$RESULTS/tempora.json" >/dev/null
        REPORTS+=("$RESULTS/tempora.json")
    fi
    rm -rf "$data"
    return "$rc"
}

# ---------------------------------------------------------------- PostgreSQL
find_pg_bin() {
    local d
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && { echo "$PG_BIN"; return 0; }
        log "postgresql: PG_BIN=$PG_BIN holds no initdb and pg_ctl"
        return 1
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -n -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir)
        if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    fi
    return 1
}

PG_USER=""
as_pg() {
    if [ -z "$PG_USER" ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$PG_USER" -- "$@"
    else
        setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --clear-groups -- "$@"
    fi
}

run_postgres() {
    local bin port dir version
    if ! bin=$(find_pg_bin); then
        log "postgresql: not found (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or PATH); skipping it."
        log "  install it with: sudo apt-get install postgresql   (Debian/Ubuntu; PostgreSQL 15 for the reference figures)"
        log "  or point PG_BIN at a directory holding initdb and pg_ctl"
        return 0
    fi
    version=$("$bin/pg_ctl" --version 2>/dev/null | awk '{ print $3 }')
    dir="$RUN_DIR/postgres"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        PG_USER=${TEMPORA_BENCH_PG_USER:-nobody}
        if ! id "$PG_USER" >/dev/null 2>&1 ||
            { ! command -v runuser >/dev/null 2>&1 && ! command -v setpriv >/dev/null 2>&1; }; then
            log "postgresql: running as root and cannot switch to user '$PG_USER' (initdb refuses root); skipping it."
            log "  set TEMPORA_BENCH_PG_USER to an existing unprivileged user, or run as a normal user"
            return 0
        fi
        chown "$PG_USER" "$dir"
        if ! as_pg test -w "$dir"; then
            log "postgresql: user '$PG_USER' cannot write $dir (a parent directory is not searchable?); skipping it."
            return 0
        fi
        log "postgresql: running as root; the cluster runs as user '$PG_USER'"
    fi
    PG_CTL="$bin/pg_ctl"
    PG_DATA="$dir/data"
    port=$("$BENCH" free-port)
    log "postgresql: initdb $version in $PG_DATA"
    as_pg "$bin/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# tempora bench/ingest.sh: durable commits (the defaults, stated explicitly)
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 1GB
max_wal_size = 4GB
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
EOF
    log "postgresql: starting on 127.0.0.1:$port (fsync=on, synchronous_commit=on, shared_buffers=1GB, max_wal_size=4GB)"
    as_pg "$PG_CTL" -D "$PG_DATA" -l "$dir/postgres.log" -w -t 120 start >/dev/null ||
        { cat "$dir/postgres.log" >&2; return 1; }
    local pid rc=0
    pid=$(head -n 1 "$PG_DATA/postmaster.pid")
    log "postgresql: loading with $WORKERS COPY streams into a plain table"
    if ! "$BENCH" load --url "postgresql://postgres@127.0.0.1:$port/postgres" --file "$CSV" \
        --workers "$WORKERS" --server-pid "$pid" --data-dir "$PG_DATA" \
        --label postgresql --json-out "$RESULTS/postgresql.json"; then
        log "postgresql: the load failed; last lines of its log:"
        tail -n 20 "$dir/postgres.log" >&2 || true
        rc=1
    fi
    log "postgresql: stopping (shutdown checkpoint)"
    as_pg "$PG_CTL" -D "$PG_DATA" -m fast -w -t 1200 stop >/dev/null || rc=1
    cp "$dir/postgres.log" "$RESULTS/postgresql.log" 2>/dev/null || true
    if [ "$rc" = 0 ]; then
        "$BENCH" du "$PG_DATA" --update-json "$RESULTS/postgresql.json" >/dev/null
        REPORTS+=("$RESULTS/postgresql.json")
    fi
    rm -rf "$dir"
    PG_DATA=""
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
