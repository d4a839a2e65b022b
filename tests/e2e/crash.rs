//! Crash durability of concurrent INSERT and COPY batches, and consistent
//! reads while they run.
//!
//! `kill_9_during_inserts_and_copies_keeps_whole_batches` runs rounds on one
//! data directory: writers on 3 connections stream INSERT batches and COPY
//! batches (text and CSV, now and then one large enough to be written to
//! Parquet files directly) into a hypertable, each batch with its own id;
//! the server gets SIGKILL at a random moment; after the restart every
//! acknowledged batch must be present exactly once, and no batch partially.
//!
//! Knobs (environment):
//! - `TEMPORA_CRASH_ROUNDS`: rounds (default 6); `bench/crash-test.sh` runs 200.
//! - `TEMPORA_CRASH_SEED`: seed of the kill moments and batch sizes (default:
//!   from the clock; printed, so a failing run can be repeated).
//! - `TEMPORA_CRASH_LARGE_ROWS`: rows of the large COPYs (default 300000;
//!   0 leaves them out).
//! - `TEMPORA_CRASH_MAX_KILL_MS`: latest kill moment after a round starts
//!   (default 4000).
//! - `TEMPORA_CRASH_NEW_TABLE_EVERY`: drop the table and create it again
//!   after every N rounds (default 0: never), to keep long runs fast.
//! - `TEMPORA_CRASH_READ_MS`: how long the readers test runs (default 4000).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{pin_mut, SinkExt};
use tokio_postgres::{Client, Error};

use crate::support::TestServer;

/// A small xorshift64* generator: reproducible from its printed seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [lo, hi].
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn clock_seed() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    d.as_secs() ^ (d.subsec_nanos() as u64) << 20
}

/// `2024-01-01 00:00:00+00` plus `secs` (modulo 20 days), as text.
fn ts(secs: u64) -> String {
    let secs = secs % (20 * 86_400);
    let (d, rest) = (secs / 86_400, secs % 86_400);
    format!(
        "2024-01-{:02} {:02}:{:02}:{:02}+00",
        d + 1,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// What a batch is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Insert,
    CopyText,
    CopyCsv,
    /// A COPY past the size at which rows are written to files directly.
    CopyLarge,
}

/// Row `i` (0-based) of batch `batch` has v = i + 1: a whole batch of `n`
/// rows has count n, sum n(n+1)/2 and max n.
fn batch_sql_or_data(kind: Kind, table: &str, batch: i64, rows: u64) -> (String, Vec<u8>) {
    let base = (batch as u64).wrapping_mul(7919);
    match kind {
        Kind::Insert => {
            let mut sql = format!("INSERT INTO {table} (time, batch, v) VALUES ");
            for i in 0..rows {
                if i > 0 {
                    sql.push_str(", ");
                }
                let _ = write!(sql, "('{}', {batch}, {})", ts(base + i), i + 1);
            }
            (sql, Vec::new())
        }
        Kind::CopyText => {
            let mut data = String::with_capacity(rows as usize * 40);
            for i in 0..rows {
                let _ = writeln!(data, "{}\t{batch}\t{}\t\\N", ts(base + i), i + 1);
            }
            (format!("COPY {table} FROM STDIN"), data.into_bytes())
        }
        Kind::CopyCsv => {
            let mut data = String::with_capacity(rows as usize * 40);
            for i in 0..rows {
                let _ = writeln!(data, "{},{batch},{},", ts(base + i), i + 1);
            }
            (
                format!("COPY {table} (time, batch, v, pad) FROM STDIN (FORMAT csv)"),
                data.into_bytes(),
            )
        }
        Kind::CopyLarge => {
            // ~280 decoded bytes per row: 300,000 rows pass 64 MiB.
            let pad = "p".repeat(250);
            let mut data = String::with_capacity(rows as usize * 250);
            for i in 0..rows {
                let _ = writeln!(data, "{}\t{batch}\t{}\t{pad}", ts(base + i), i + 1);
            }
            (format!("COPY {table} FROM STDIN"), data.into_bytes())
        }
    }
}

async fn send_batch(
    client: &Client,
    kind: Kind,
    table: &str,
    batch: i64,
    rows: u64,
) -> Result<u64, Error> {
    let (sql, data) = batch_sql_or_data(kind, table, batch, rows);
    if kind == Kind::Insert {
        return client.execute(&sql, &[]).await;
    }
    let sink = client.copy_in::<_, Cursor<Vec<u8>>>(&sql).await?;
    pin_mut!(sink);
    for piece in data.chunks(256 * 1024) {
        sink.send(Cursor::new(piece.to_vec())).await?;
    }
    sink.finish().await
}

async fn create_table(client: &Client, table: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (time timestamptz NOT NULL, batch bigint NOT NULL, \
             v bigint NOT NULL, pad text)"
        ))
        .await
        .unwrap();
    client
        .query_one(
            &format!(
                "SELECT create_hypertable('{table}', 'time', chunk_time_interval => INTERVAL '1 day')"
            ),
            &[],
        )
        .await
        .unwrap();
}

/// What the writers did, shared with the test.
#[derive(Default)]
struct Ledger {
    /// Every batch sent (acknowledged or not): id -> (rows, kind).
    sent: BTreeMap<i64, (u64, Kind)>,
    /// Batches whose statement returned success.
    acked: BTreeSet<i64>,
    /// Errors other than a lost connection.
    unexpected: Vec<String>,
}

const TABLE: &str = "cr_ht";
const WRITERS: i64 = 3;

/// Writer `w` of round `round`: sends batches until its connection fails.
async fn writer(
    client: Client,
    ledger: Arc<Mutex<Ledger>>,
    round: u64,
    w: i64,
    seed: u64,
    large_rows: u64,
) {
    let mut rng = Rng::new(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for seq in 0..100_000i64 {
        let batch = round as i64 * 1_000_000 + w * 100_000 + seq;
        let (kind, rows) = match w {
            0 => (Kind::Insert, rng.range(20, 200)),
            1 => (Kind::CopyText, rng.range(1_000, 10_000)),
            _ => {
                // One large COPY per round: first on even rounds, after
                // a few small ones on odd rounds.
                if large_rows > 0 && seq == if round.is_multiple_of(2) { 0 } else { 3 } {
                    (Kind::CopyLarge, large_rows)
                } else {
                    (Kind::CopyCsv, rng.range(500, 5_000))
                }
            }
        };
        ledger.lock().unwrap().sent.insert(batch, (rows, kind));
        match send_batch(&client, kind, TABLE, batch, rows).await {
            Ok(n) => {
                let mut l = ledger.lock().unwrap();
                if n != rows {
                    l.unexpected.push(format!(
                        "batch {batch} ({kind:?}): {n} rows acknowledged, {rows} sent"
                    ));
                }
                l.acked.insert(batch);
            }
            Err(e) => {
                if let Some(db) = e.as_db_error() {
                    ledger.lock().unwrap().unexpected.push(format!(
                        "batch {batch} ({kind:?}): {} {}",
                        db.code().code(),
                        db.message()
                    ));
                }
                return;
            }
        }
    }
}

/// Checks the table against the ledger; returns batch -> rows present.
async fn verify(
    client: &Client,
    ledger: &Ledger,
    previous: &BTreeMap<i64, i64>,
    round: u64,
    seed: u64,
) -> BTreeMap<i64, i64> {
    let ctx = format!("round {round} (TEMPORA_CRASH_SEED={seed})");
    let rows = client
        .query(
            &format!("SELECT batch, count(*), sum(v)::int8, max(v) FROM {TABLE} GROUP BY batch"),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
    let mut present = BTreeMap::new();
    for r in &rows {
        let (batch, count, sum, max): (i64, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let Some(&(size, kind)) = ledger.sent.get(&batch) else {
            panic!("{ctx}: batch {batch} was never sent ({count} rows)");
        };
        let size = size as i64;
        assert_eq!(
            (count, sum, max),
            (size, size * (size + 1) / 2, size),
            "{ctx}: batch {batch} ({kind:?}, {size} rows) is partially present or duplicated \
             (count, sum, max)"
        );
        present.insert(batch, count);
    }
    for batch in &ledger.acked {
        assert!(
            present.contains_key(batch),
            "{ctx}: acknowledged batch {batch} ({:?}) is missing after kill -9",
            ledger.sent[batch]
        );
    }
    for (batch, count) in previous {
        assert_eq!(
            present.get(batch),
            Some(count),
            "{ctx}: batch {batch}, present after the previous restart, is gone"
        );
    }
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM {TABLE}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        total,
        present.values().sum::<i64>(),
        "{ctx}: count(*) vs per-batch counts"
    );
    present
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_inserts_and_copies_keeps_whole_batches() {
    let rounds = env_u64("TEMPORA_CRASH_ROUNDS", 6);
    let seed = env_u64("TEMPORA_CRASH_SEED", clock_seed());
    let large_rows = env_u64("TEMPORA_CRASH_LARGE_ROWS", 300_000);
    let max_kill_ms = env_u64("TEMPORA_CRASH_MAX_KILL_MS", 4_000).max(300);
    let new_table_every = env_u64("TEMPORA_CRASH_NEW_TABLE_EVERY", 0);
    eprintln!(
        "crash test: TEMPORA_CRASH_SEED={seed} TEMPORA_CRASH_ROUNDS={rounds} \
         TEMPORA_CRASH_LARGE_ROWS={large_rows} TEMPORA_CRASH_MAX_KILL_MS={max_kill_ms} \
         TEMPORA_CRASH_NEW_TABLE_EVERY={new_table_every}"
    );
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut server = TestServer::start().await;
    create_table(&server.connect().await, TABLE).await;

    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let mut present = BTreeMap::new();
    let mut unacked_present = 0usize;
    let mut total_acked = 0usize;
    for round in 0..rounds {
        let round_seed = rng.next();
        let kill_after = Duration::from_millis(rng.range(200, max_kill_ms));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let client = server.connect().await;
            tasks.push(tokio::spawn(writer(
                client,
                ledger.clone(),
                round,
                w,
                round_seed,
                large_rows,
            )));
        }
        tokio::time::sleep(kill_after).await;
        server.kill9();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("a writer did not notice the kill within 60 s")
                .expect("writer task panicked");
        }
        server.restart().await;
        let client = server.connect().await;
        let l_snapshot = {
            let l = ledger.lock().unwrap();
            assert!(
                l.unexpected.is_empty(),
                "round {round} (seed {seed}): {:?}",
                l.unexpected
            );
            Ledger {
                sent: l.sent.clone(),
                acked: l.acked.clone(),
                unexpected: Vec::new(),
            }
        };
        let now = verify(&client, &l_snapshot, &present, round, seed).await;
        // At most one statement per writer was in flight at the kill.
        let round_lo = round as i64 * 1_000_000;
        let round_hi = round_lo + 1_000_000;
        let extra = now
            .keys()
            .filter(|b| (round_lo..round_hi).contains(*b) && !l_snapshot.acked.contains(b))
            .count();
        assert!(
            extra as i64 <= WRITERS,
            "round {round} (seed {seed}): {extra} unacknowledged batches present"
        );
        unacked_present += extra;
        let acked_round = l_snapshot
            .acked
            .iter()
            .filter(|b| (round_lo..round_hi).contains(*b))
            .count();
        let large = l_snapshot
            .sent
            .iter()
            .filter(|(b, (_, k))| (round_lo..round_hi).contains(*b) && *k == Kind::CopyLarge)
            .map(|(b, _)| (*b, l_snapshot.acked.contains(b), now.contains_key(b)))
            .collect::<Vec<_>>();
        eprintln!(
            "round {round}: killed after {kill_after:?}; {acked_round} batches acknowledged, \
             {extra} unacknowledged present; large COPYs (id, acked, present): {large:?}; \
             {} rows in total",
            now.values().sum::<i64>()
        );
        present = now;
        total_acked += acked_round;
        // Long runs start over with an empty table now and then, so that the
        // checks stay fast; rows of the dropped table must never come back.
        if new_table_every > 0 && (round + 1) % new_table_every == 0 && round + 1 < rounds {
            client
                .batch_execute(&format!("DROP TABLE {TABLE}"))
                .await
                .unwrap();
            create_table(&client, TABLE).await;
            *ledger.lock().unwrap() = Ledger::default();
            present.clear();
            eprintln!("round {round}: table dropped and created again");
        }
    }

    // A graceful stop and restart keeps exactly the same rows.
    let status = server.stop();
    assert!(status.success(), "SIGTERM shutdown exited with {status}");
    server.restart().await;
    let client = server.connect().await;
    let snapshot = {
        let l = ledger.lock().unwrap();
        Ledger {
            sent: l.sent.clone(),
            acked: l.acked.clone(),
            unexpected: Vec::new(),
        }
    };
    let after_stop = verify(&client, &snapshot, &present, rounds, seed).await;
    assert_eq!(
        after_stop, present,
        "rows changed across a graceful restart"
    );
    assert!(
        total_acked > 0,
        "no batch was acknowledged in {rounds} rounds"
    );
    eprintln!(
        "crash test: {rounds} rounds, {total_acked} batches acknowledged, {unacked_present} \
         unacknowledged batches found whole, {} rows at the end, {:?}",
        present.values().sum::<i64>(),
        started.elapsed()
    );
}

/// Readers running next to an INSERT writer and a COPY writer only ever see
/// whole batches: every batch has ROWS rows whose v sum to SUM, so a
/// consistent snapshot has count % ROWS == 0 and sum == count / ROWS * SUM.
#[tokio::test(flavor = "multi_thread")]
async fn readers_see_whole_batches_while_writers_run() {
    const ROWS: i64 = 500;
    const SUM: i64 = ROWS * (ROWS + 1) / 2;
    let seed = env_u64("TEMPORA_CRASH_SEED", clock_seed());
    let large_rows = env_u64("TEMPORA_CRASH_LARGE_ROWS", 300_000) / ROWS as u64 * ROWS as u64;
    let run_for = Duration::from_millis(env_u64("TEMPORA_CRASH_READ_MS", 4_000));
    eprintln!("readers test: TEMPORA_CRASH_SEED={seed} TEMPORA_CRASH_LARGE_ROWS={large_rows}");
    let server = TestServer::start().await;
    let table = "cr_conc";
    create_table(&server.connect().await, table).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked_rows = Arc::new(AtomicI64::new(0));
    let batch_ids = Arc::new(AtomicI64::new(0));

    // Writer 0: one INSERT per batch. Writer 1: COPYs of 1..=20 batches,
    // the first one large (files), every third inside BEGIN ... COMMIT
    // together with an INSERT batch.
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let client = server.connect().await;
        let (stop, acked_rows, batch_ids) = (stop.clone(), acked_rows.clone(), batch_ids.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ (w + 1));
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let id = batch_ids.fetch_add(1, Ordering::SeqCst);
                if w == 0 {
                    let got = send_batch(&client, Kind::Insert, table, id, ROWS as u64)
                        .await
                        .unwrap();
                    assert_eq!(got, ROWS as u64);
                    acked_rows.fetch_add(ROWS, Ordering::SeqCst);
                    continue;
                }
                // k batches in one COPY: rows i of sub-batch j get v = i + 1.
                let k = if n == 1 && large_rows > 0 {
                    large_rows / ROWS as u64
                } else {
                    rng.range(1, 20)
                };
                let pad = if n == 1 {
                    "p".repeat(250)
                } else {
                    String::new()
                };
                let mut data = String::new();
                for j in 0..k {
                    for i in 0..ROWS as u64 {
                        let _ = writeln!(
                            data,
                            "{}\t{id}\t{}\t{pad}",
                            ts((id as u64 * 7919 + j * 1000 + i) % (20 * 86_400)),
                            i + 1
                        );
                    }
                }
                let in_block = n.is_multiple_of(3);
                if in_block {
                    client.batch_execute("BEGIN").await.unwrap();
                }
                let sink = client
                    .copy_in::<_, Cursor<Vec<u8>>>(&format!("COPY {table} FROM STDIN"))
                    .await
                    .unwrap();
                pin_mut!(sink);
                for piece in data.as_bytes().chunks(256 * 1024) {
                    sink.send(Cursor::new(piece.to_vec())).await.unwrap();
                }
                let got = sink.finish().await.unwrap();
                assert_eq!(got, k * ROWS as u64);
                let mut rows = k as i64 * ROWS;
                if in_block {
                    let extra = batch_ids.fetch_add(1, Ordering::SeqCst);
                    send_batch(&client, Kind::Insert, table, extra, ROWS as u64)
                        .await
                        .unwrap();
                    rows += ROWS;
                    client.batch_execute("COMMIT").await.unwrap();
                }
                acked_rows.fetch_add(rows, Ordering::SeqCst);
            }
        }));
    }

    let mut readers = Vec::new();
    for r in 0..2 {
        let client = server.connect().await;
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let sql = format!("SELECT count(*), sum(v)::int8 FROM {table}");
            let mut last = 0i64;
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let (count, sum) = if r == 0 {
                    let row = client.query_one(&sql, &[]).await.unwrap();
                    (
                        row.get::<_, i64>(0),
                        row.get::<_, Option<i64>>(1).unwrap_or(0),
                    )
                } else {
                    let messages = client.simple_query(&sql).await.unwrap();
                    let row = messages
                        .iter()
                        .find_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                            _ => None,
                        })
                        .expect("a row");
                    (
                        row.get(0).unwrap().parse::<i64>().unwrap(),
                        row.get(1).map(|s| s.parse::<i64>().unwrap()).unwrap_or(0),
                    )
                };
                assert_eq!(
                    count % ROWS,
                    0,
                    "reader {r}: count {count} is not whole batches"
                );
                assert_eq!(
                    sum,
                    count / ROWS * SUM,
                    "reader {r}: sum(v) {sum} for {count} rows"
                );
                assert!(
                    count >= last,
                    "reader {r}: count went from {last} back to {count}"
                );
                last = count;
                reads += 1;
            }
            (reads, last)
        }));
    }

    tokio::time::sleep(run_for).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("writer still running 120 s after stop")
            .expect("writer failed");
    }
    for (r, handle) in readers.into_iter().enumerate() {
        let (reads, last) = tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("reader still running 60 s after stop")
            .expect("reader failed");
        eprintln!("reader {r}: {reads} reads, last count {last}");
        assert!(reads >= 3, "reader {r} only read {reads} times");
    }
    let client = server.connect().await;
    let row = client
        .query_one(&format!("SELECT count(*), sum(v)::int8 FROM {table}"), &[])
        .await
        .unwrap();
    let count: i64 = row.get(0);
    assert_eq!(
        count,
        acked_rows.load(Ordering::SeqCst),
        "rows after the writers stopped"
    );
    assert_eq!(row.get::<_, i64>(1), count / ROWS * SUM);
    eprintln!("readers test: {count} rows written");
}
