# Shell functions shared by bench/ingest.sh and bench/queries.sh: building the
# binaries, the cached TSBS CSV, the machine description, a Tempora server and
# a throw-away PostgreSQL cluster. Sourced, not run; the caller sets
# `set -euo pipefail` and LOG_TAG.
#
# Environment: TEMPORA_BENCH_SIZE (default small), TEMPORA_BENCH_WORKERS (COPY
# streams, default 2), TEMPORA_BENCH_DIR (cache and scratch, default /var/tmp/tempora-bench),
# PG_BIN (PostgreSQL's bin directory), TEMPORA_BENCH_PG_USER (unprivileged user
# for PostgreSQL when run as root, default nobody), CARGO_TARGET_DIR.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BENCH_DIR=${TEMPORA_BENCH_DIR:-/var/tmp/tempora-bench}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

START=2016-01-01T00:00:00Z
INTERVAL=10s
SEED=123

log() { printf '[%s] %s\n' "${LOG_TAG:-bench}" "$*" >&2; }

# The options bench_option reads, with their defaults.
SIZE=${TEMPORA_BENCH_SIZE:-small}
WORKERS=${TEMPORA_BENCH_WORKERS:-2}
RUN_POSTGRES=1
BUILD=1
KEEP=0

# bench_option ARG [VALUE]: reads an option every script takes (a size,
# --workers N, --no-postgres, --no-build, --keep); sets USED to the number of
# words it took, 0 if ARG is none of them.
bench_option() {
    USED=1
    case "$1" in
        smoke | small | medium) SIZE=$1 ;;
        --workers) WORKERS=${2:?--workers needs a number}; USED=2 ;;
        --workers=*) WORKERS=${1#*=} ;;
        --no-postgres) RUN_POSTGRES=0 ;;
        --no-build) BUILD=0 ;;
        --keep) KEEP=1 ;;
        *) USED=0 ;;
    esac
}

# bench_size NAME: sets SIZE, SCALE and END for smoke, small or medium.
bench_size() {
    SIZE=$1
    case "$SIZE" in
        smoke) SCALE=100; END=2016-01-01T06:00:00Z ;;
        small) SCALE=100; END=2016-01-02T00:00:00Z ;;
        medium) SCALE=4000; END=2016-01-02T00:00:00Z ;;
        *) echo "unknown size: $SIZE (smoke, small or medium)" >&2; exit 2 ;;
    esac
}

# bench_binaries BUILD NEED_SERVER: builds (if BUILD is 1) and sets BENCH and
# SERVER; exits if one that is needed is missing.
bench_binaries() {
    local build=$1 need_server=$2 candidate
    if [ "$build" = 1 ]; then
        log "building (release): tempora-server, tempora-bench"
        (cd "$REPO" && cargo build --release -p tempora-server -p tempora-bench)
    fi
    BENCH=$TARGET_DIR/release/tempora-bench
    SERVER=""
    for candidate in "$TARGET_DIR/release/tempora" "$TARGET_DIR/release/tempora-server"; do
        if [ -x "$candidate" ]; then SERVER=$candidate; break; fi
    done
    [ -x "$BENCH" ] || { log "missing $BENCH (run without --no-build)"; exit 1; }
    if [ "$need_server" = 1 ] && [ -z "$SERVER" ]; then
        log "missing the Tempora server binary in $TARGET_DIR/release (run without --no-build)"
        exit 1
    fi
}

# bench_data: warns about a RAM-backed BENCH_DIR, sets FSTYPE, ROWS and CSV,
# generating the CSV unless it is cached.
bench_data() {
    FSTYPE=$(df -PT "$BENCH_DIR" 2>/dev/null | awk 'NR == 2 { print $2 }')
    if [ "$FSTYPE" = tmpfs ] || [ "$FSTYPE" = ramfs ]; then
        log "WARNING: $BENCH_DIR is on $FSTYPE: fsync costs nothing there; set TEMPORA_BENCH_DIR to a directory on a disk"
    fi
    ROWS=$("$BENCH" gen --scale "$SCALE" --start "$START" --end "$END" --interval "$INTERVAL" --seed "$SEED" --rows)
    CSV="$BENCH_DIR/cpu-only-scale$SCALE-${START//:/}-${END//:/}-$INTERVAL-seed$SEED.csv"
    if [ -s "$CSV" ]; then
        log "data: $CSV (cached, $ROWS rows)"
        return 0
    fi
    local need_kb free_kb
    need_kb=$((ROWS * 170 / 1024))
    free_kb=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
    if [ "$free_kb" -lt $((need_kb * 3)) ]; then
        log "WARNING: $BENCH_DIR has $((free_kb / 1024)) MiB free; the CSV needs about $((need_kb / 1024)) MiB and each server needs more than that again"
    fi
    log "data: generating $ROWS rows ($SCALE hosts, $START .. $END, every $INTERVAL, seed $SEED) into $CSV"
    "$BENCH" gen --scale "$SCALE" --start "$START" --end "$END" --interval "$INTERVAL" --seed "$SEED" --out "$CSV"
}

# bench_run_dirs KIND: sets RESULTS (kept) and RUN_DIR (scratch, removed on exit
# unless KEEP=1).
bench_run_dirs() {
    RESULTS="$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)-$1-$SIZE"
    mkdir -p "$RESULTS"
    RUN_DIR=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
    chmod 755 "$RUN_DIR"
}

# bench_machine FILE LINE...: describes the machine and the run.
bench_machine() {
    local file=$1
    shift
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "size: $SIZE ($ROWS rows, $SCALE hosts, $START .. $END, $INTERVAL, seed $SEED)"
        local line
        for line in "$@"; do echo "$line"; done
        echo "cpus: $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
        echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
        echo "kernel: $(uname -sr)"
        echo "filesystem: $FSTYPE ($BENCH_DIR)"
        echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    } > "$file"
}

# ---------------------------------------------------------------- Tempora
TEMPORA_PID=""

# tempora_start DATA_DIR LOG_FILE: starts the server on a free port; sets
# TEMPORA_PID and TEMPORA_URL.
tempora_start() {
    local data=$1 logfile=$2 port
    port=$("$BENCH" free-port)
    log "tempora: starting $SERVER on 127.0.0.1:$port, data in $data (durable commits: the default)"
    "$SERVER" --host 127.0.0.1 --port "$port" --data-dir "$data" --trust-loopback >"$logfile" 2>&1 &
    TEMPORA_PID=$!
    TEMPORA_URL="postgresql://postgres@127.0.0.1:$port/postgres"
}

# tempora_stop: SIGTERM (which flushes memtables to Parquet) and wait.
tempora_stop() {
    local t0 t1
    [ -n "$TEMPORA_PID" ] || return 0
    log "tempora: stopping (SIGTERM flushes memtables to Parquet)"
    t0=$(date +%s.%N)
    kill -TERM "$TEMPORA_PID" 2>/dev/null || true
    wait "$TEMPORA_PID" || log "tempora: exited with status $?"
    t1=$(date +%s.%N)
    TEMPORA_PID=""
    log "tempora: stopped after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
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

PG_CTL=""
PG_DATA=""

# pg_start DIR: initdb in DIR/data and start the cluster on a free port with
# durable commits (the defaults, stated), shared_buffers=1GB and
# max_wal_size=4GB. Sets PG_CTL, PG_DATA, PG_PID, PG_URL and PG_VERSION.
# Returns 0 when it runs, 1 on an error, 2 when PostgreSQL cannot be run here
# (it says why).
pg_start() {
    local dir=$1 bin port
    if ! bin=$(find_pg_bin); then
        log "postgresql: not found (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or PATH); skipping it."
        log "  install it with: sudo apt-get install postgresql   (Debian/Ubuntu; PostgreSQL 15 for the reference figures)"
        log "  or point PG_BIN at a directory holding initdb and pg_ctl"
        return 2
    fi
    PG_VERSION=$("$bin/pg_ctl" --version 2>/dev/null | awk '{ print $3 }')
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        PG_USER=${TEMPORA_BENCH_PG_USER:-nobody}
        if ! id "$PG_USER" >/dev/null 2>&1 ||
            { ! command -v runuser >/dev/null 2>&1 && ! command -v setpriv >/dev/null 2>&1; }; then
            log "postgresql: running as root and cannot switch to user '$PG_USER' (initdb refuses root); skipping it."
            log "  set TEMPORA_BENCH_PG_USER to an existing unprivileged user, or run as a normal user"
            return 2
        fi
        chown "$PG_USER" "$dir"
        if ! as_pg test -w "$dir"; then
            log "postgresql: user '$PG_USER' cannot write $dir (a parent directory is not searchable?); skipping it."
            return 2
        fi
        log "postgresql: running as root; the cluster runs as user '$PG_USER'"
    fi
    PG_CTL="$bin/pg_ctl"
    PG_DATA="$dir/data"
    port=$("$BENCH" free-port)
    log "postgresql: initdb $PG_VERSION in $PG_DATA"
    as_pg "$bin/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# tempora bench: durable commits (the defaults, stated explicitly)
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
    PG_PID=$(head -n 1 "$PG_DATA/postmaster.pid")
    PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
}

# pg_stop: a fast shutdown (which writes a checkpoint); returns its status.
pg_stop() {
    local rc=0
    [ -n "$PG_DATA" ] || return 0
    log "postgresql: stopping (shutdown checkpoint)"
    as_pg "$PG_CTL" -D "$PG_DATA" -m fast -w -t 1200 stop >/dev/null || rc=1
    PG_DATA=""
    return "$rc"
}

# bench_cleanup: stops whatever is still running; removes RUN_DIR unless KEEP=1.
# Installed as the EXIT trap by bench_traps.
bench_cleanup() {
    if [ -n "$TEMPORA_PID" ] && kill -0 "$TEMPORA_PID" 2>/dev/null; then
        kill -TERM "$TEMPORA_PID" 2>/dev/null || true
        wait "$TEMPORA_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_CTL" ] && [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        as_pg "$PG_CTL" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ "${KEEP:-0}" = 0 ] && [ -n "${RUN_DIR:-}" ]; then rm -rf "$RUN_DIR"; fi
}

# bench_run_both: runs the caller's run_tempora, then (unless --no-postgres)
# run_postgres; sets STATUS (1 if either failed) and PG (ok, failed, or
# skipped when PostgreSQL cannot run here: run_postgres returned 2).
bench_run_both() {
    local rc
    STATUS=0
    run_tempora || STATUS=1
    PG=skipped
    if [ "$RUN_POSTGRES" = 1 ]; then
        if run_postgres; then PG=ok; else
            rc=$?
            if [ "$rc" = 2 ]; then PG=skipped; else PG=failed; STATUS=1; fi
        fi
    fi
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.txt"
}

bench_traps() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
