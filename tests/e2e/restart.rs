//! Durability: every acknowledged row survives `kill -9`, a graceful stop and
//! repeated restarts, exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use tokio_postgres::Client;

use crate::support::TestServer;

const BATCHES: i64 = 10;
const BATCH_ROWS: i64 = 100;

fn ts_literal(t: DateTime<Utc>) -> String {
    t.format("'%Y-%m-%d %H:%M:%S+00'").to_string()
}

/// Row `n` of the data set: one row every 7 minutes from 2024-01-01, so
/// 1000 rows span ~5 days (several 1-day chunks); v = n.
fn row_time(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(7 * n)
}

async fn create_tables(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE rs_ht (time TIMESTAMPTZ NOT NULL, device TEXT, v INTEGER);
             CREATE TABLE rs_plain (id INTEGER NOT NULL, note TEXT);",
        )
        .await
        .unwrap();
    client
        .query_one(
            "SELECT create_hypertable('rs_ht', 'time', chunk_time_interval => INTERVAL '1 day')",
            &[],
        )
        .await
        .unwrap();
}

/// Inserts rows [from, to) in batches of BATCH_ROWS, each acknowledged,
/// plus one rs_plain row per batch; returns the number of batches.
async fn insert_rows(client: &Client, from: i64, to: i64) -> i64 {
    let mut batches = 0;
    let mut n = from;
    while n < to {
        let end = (n + BATCH_ROWS).min(to);
        let values: Vec<String> = (n..end)
            .map(|i| format!("({}, 'dev{}', {i})", ts_literal(row_time(i)), i % 3))
            .collect();
        let count = client
            .execute(
                &format!("INSERT INTO rs_ht VALUES {}", values.join(", ")),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(count as i64, end - n, "rows acknowledged for batch at {n}");
        let count = client
            .execute(
                &format!("INSERT INTO rs_plain VALUES ({n}, 'batch {n}')"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(count, 1);
        batches += 1;
        n = end;
    }
    batches
}

/// Asserts that rs_ht holds exactly rows [0, n) once each, and rs_plain
/// exactly `batches` rows.
async fn assert_rows(client: &Client, n: i64, batches: i64, context: &str) {
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT time), sum(v), min(v), max(v) FROM rs_ht",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{context}: {e:?}"));
    let (count, distinct, sum, min, max): (i64, i64, Option<i64>, Option<i32>, Option<i32>) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(count, n, "{context}: row count");
    assert_eq!(distinct, n, "{context}: duplicated rows");
    if n > 0 {
        assert_eq!(sum, Some(n * (n - 1) / 2), "{context}: sum(v)");
        assert_eq!(min, Some(0), "{context}: min(v)");
        assert_eq!(max, Some(n as i32 - 1), "{context}: max(v)");
    }
    // Spot-check complete rows.
    for i in [0, n / 2, n - 1] {
        if i < 0 || n == 0 {
            continue;
        }
        let rows = client
            .query(
                &format!(
                    "SELECT device, v FROM rs_ht WHERE time = {}",
                    ts_literal(row_time(i))
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{context}: row {i}");
        assert_eq!(rows[0].get::<_, String>(0), format!("dev{}", i % 3));
        assert_eq!(rows[0].get::<_, i32>(1), i as i32);
    }
    let row = client
        .query_one("SELECT count(*), count(DISTINCT id) FROM rs_plain", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), batches, "{context}: rs_plain rows");
    assert_eq!(
        row.get::<_, i64>(1),
        batches,
        "{context}: rs_plain duplicates"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_rows_survive_kill_9() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    create_tables(&client).await;
    let mut batches = 0;
    batches += insert_rows(&client, 0, BATCHES * BATCH_ROWS).await;
    assert_rows(&client, BATCHES * BATCH_ROWS, batches, "before kill -9").await;
    drop(client);

    server.kill9();
    server.restart().await;

    let client = server.connect().await;
    assert_rows(&client, BATCHES * BATCH_ROWS, batches, "after kill -9").await;

    // The hypertable is still a hypertable, and writable.
    let created: bool = client
        .query_one(
            "SELECT created FROM create_hypertable('rs_ht', 'time', if_not_exists => true)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!created, "rs_ht lost its hypertable status");
    let chunks: i64 = client
        .query_one("SELECT count(*) FROM show_chunks('rs_ht')", &[])
        .await
        .unwrap()
        .get(0);
    // 1000 rows * 7 minutes = 4.86 days from midnight: 5 one-day chunks.
    assert_eq!(chunks, 5, "chunks after restart");
    batches += insert_rows(&client, BATCHES * BATCH_ROWS, BATCHES * BATCH_ROWS + 50).await;
    assert_rows(
        &client,
        BATCHES * BATCH_ROWS + 50,
        batches,
        "insert after restart",
    )
    .await;
}

/// Parquet files under the data directory's chunks/ and tables/.
fn parquet_files(dir: &std::path::Path) -> usize {
    crate::support::parquet_files_under(&dir.join("chunks"))
        + crate::support::parquet_files_under(&dir.join("tables"))
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_writes_memtables_to_parquet() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    create_tables(&client).await;
    let batches = insert_rows(&client, 0, BATCHES * BATCH_ROWS).await;
    assert_eq!(
        parquet_files(&server.data_dir()),
        0,
        "rows still in memtables"
    );
    // As psql sends it: the simple protocol, any case, with a semicolon.
    let tags = client.simple_query("checkpoint ;").await.unwrap();
    assert!(
        matches!(
            tags.last(),
            Some(tokio_postgres::SimpleQueryMessage::CommandComplete(0))
        ),
        "{tags:?}"
    );
    // rs_ht spans ~5 one-day chunks, rs_plain is one table.
    assert!(parquet_files(&server.data_dir()) >= 6);
    client.execute("CHECKPOINT", &[]).await.unwrap();
    assert_rows(&client, BATCHES * BATCH_ROWS, batches, "after CHECKPOINT").await;
    drop(client);
    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_rows(
        &client,
        BATCHES * BATCH_ROWS,
        batches,
        "CHECKPOINT then kill -9",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_survive_graceful_stop() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    create_tables(&client).await;
    let mut batches = 0;
    batches += insert_rows(&client, 0, BATCHES * BATCH_ROWS).await;
    drop(client);

    let status = server.stop();
    assert!(status.success(), "SIGTERM shutdown exited with {status}");
    server.restart().await;

    let client = server.connect().await;
    assert_rows(&client, BATCHES * BATCH_ROWS, batches, "after SIGTERM").await;
    drop(client);

    let status = server.interrupt();
    assert!(status.success(), "SIGINT shutdown exited with {status}");
    server.restart().await;
    let client = server.connect().await;
    assert_rows(&client, BATCHES * BATCH_ROWS, batches, "after SIGINT").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_restarts_are_idempotent() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    create_tables(&client).await;
    let mut batches = 0;
    batches += insert_rows(&client, 0, 550).await;
    drop(client);

    // Recovery replays the same log twice: no duplicates, nothing lost.
    server.kill9();
    server.restart().await;
    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_rows(&client, 550, batches, "after two kill -9 restarts").await;

    // Write more, then restart twice again (kill -9, then graceful).
    batches += insert_rows(&client, 550, 800).await;
    drop(client);
    server.kill9();
    server.restart().await;
    let status = server.stop();
    assert!(status.success(), "SIGTERM shutdown exited with {status}");
    server.restart().await;
    let client = server.connect().await;
    assert_rows(&client, 800, batches, "after kill -9 + stop restarts").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_concurrent_writes_loses_no_acknowledged_batch() {
    const WRITERS: i64 = 2;
    const ROWS: i64 = 50;
    let mut server = TestServer::start().await;
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE rs_conc (time TIMESTAMPTZ NOT NULL, writer INTEGER, batch INTEGER, v INTEGER)")
        .await
        .unwrap();
    setup
        .query_one(
            "SELECT create_hypertable('rs_conc', 'time', chunk_time_interval => INTERVAL '1 day')",
            &[],
        )
        .await
        .unwrap();

    let acked: Arc<Mutex<BTreeSet<(i32, i32)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let client = server.connect().await;
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..10_000i64 {
                let values: Vec<String> = (0..ROWS)
                    .map(|i| {
                        let n = (w * 10_000 + b) * ROWS + i;
                        format!(
                            "({}, {w}, {b}, {i})",
                            ts_literal(
                                Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
                                    + chrono::Duration::seconds(37 * n)
                            )
                        )
                    })
                    .collect();
                let sql = format!("INSERT INTO rs_conc VALUES {}", values.join(", "));
                match client.execute(&sql, &[]).await {
                    Ok(n) => {
                        assert_eq!(n as i64, ROWS);
                        acked.lock().unwrap().insert((w as i32, b as i32));
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < 40 {
        assert!(
            Instant::now() < deadline,
            "writers acknowledged only {} batches in 120 s",
            acked.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Kill while the writers are still sending.
    server.kill9();
    let acked_at_kill: BTreeSet<(i32, i32)> = acked.lock().unwrap().clone();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    // Batches acknowledged after the snapshot above raced with the kill:
    // they were acknowledged before the process died, so they count too.
    let acked_all: BTreeSet<(i32, i32)> = acked.lock().unwrap().clone();
    assert!(acked_all.is_superset(&acked_at_kill));

    server.restart().await;
    let client = server.connect().await;
    let rows = client
        .query(
            "SELECT writer, batch, count(*), count(DISTINCT v) FROM rs_conc GROUP BY writer, batch",
            &[],
        )
        .await
        .unwrap();
    let present: BTreeMap<(i32, i32), (i64, i64)> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    for key in &acked_all {
        assert_eq!(
            present.get(key),
            Some(&(ROWS, ROWS)),
            "acknowledged batch {key:?} is missing or incomplete after kill -9"
        );
    }
    // A multi-row INSERT is atomic: no batch may be partially present.
    for (key, (count, distinct)) in &present {
        assert_eq!(
            (*count, *distinct),
            (ROWS, ROWS),
            "batch {key:?} is partially present ({count} rows, {distinct} distinct)"
        );
    }
    // Unacknowledged batches may or may not be there; at most one per writer.
    let extra = present.keys().filter(|k| !acked_all.contains(k)).count();
    assert!(
        extra as i64 <= WRITERS,
        "{extra} unacknowledged batches present"
    );
}

/// A space-partitioned hypertable keeps its dimensions, its chunks per
/// (day, partition) and each row's place across kill -9 (rows replayed from
/// the WAL are routed again) and a restart after CHECKPOINT; a partition
/// count changed by set_number_partitions survives too.
#[tokio::test(flavor = "multi_thread")]
async fn space_partitions_survive_restarts() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    // Devices 1..8 hash to partitions {1,8} 0, {5,6} 1, {2,4,7} 2, {3} 3 of 4.
    client
        .batch_execute(
            "CREATE TABLE sp_rs (time timestamptz NOT NULL, device int, v int);
             SELECT create_hypertable('sp_rs', 'time', chunk_time_interval => INTERVAL '1 day');
             SELECT add_dimension('sp_rs', 'device', number_partitions => 4);
             INSERT INTO sp_rs SELECT t, d, d * 1 FROM generate_series(
                 '2024-01-01 00:00:00+00'::timestamptz, '2024-01-02 23:00:00+00', INTERVAL '1 hour') t,
                 generate_series(1, 8) d;",
        )
        .await
        .unwrap();
    async fn state(client: &Client) -> (i64, i64, i64, i64, String) {
        let chunks: i64 = client
            .query_one("SELECT count(*) FROM show_chunks('sp_rs')", &[])
            .await
            .unwrap()
            .get(0);
        let row = client
            .query_one(
                "SELECT count(*), sum(v) FROM sp_rs WHERE device IN (2, 4, 7)",
                &[],
            )
            .await
            .unwrap();
        let total: i64 = client
            .query_one("SELECT count(*) FROM sp_rs", &[])
            .await
            .unwrap()
            .get(0);
        let dims: String = client
            .query_one(
                "SELECT string_agg(column_name || ':' || dimension_type || ':' || coalesce(num_partitions::text, '-'), ',' ORDER BY dimension_number)
                   FROM timescaledb_information.dimensions WHERE hypertable_name = 'sp_rs'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (chunks, row.get(0), row.get(1), total, dims)
    }
    let before = state(&client).await;
    assert_eq!(
        before,
        (8, 144, 624, 384, "time:Time:-,device:Space:4".to_string())
    );
    drop(client);

    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_eq!(state(&client).await, before, "after kill -9");
    // Replayed rows went back to their chunks: a new row of an existing
    // (day, partition) makes no chunk.
    client
        .batch_execute("INSERT INTO sp_rs VALUES ('2024-01-01 05:30:00+00', 7, 0)")
        .await
        .unwrap();
    let after_insert = state(&client).await;
    assert_eq!(after_insert.0, 8);
    assert_eq!(after_insert.1, 145);

    client
        .batch_execute("SELECT set_number_partitions('sp_rs', 2); CHECKPOINT;")
        .await
        .unwrap();
    drop(client);
    let status = server.stop();
    assert!(status.success(), "SIGTERM shutdown exited with {status}");
    server.restart().await;
    let client = server.connect().await;
    let (chunks, n, sum, total, dims) = state(&client).await;
    assert_eq!((chunks, n, sum, total), (8, 145, 624, 385), "after restart");
    assert_eq!(dims, "time:Time:-,device:Space:2");
    // A new day takes the two partitions now set.
    client
        .batch_execute(
            "INSERT INTO sp_rs SELECT '2024-01-05 00:00:00+00'::timestamptz, d, d * 1 FROM generate_series(1, 8) d",
        )
        .await
        .unwrap();
    assert_eq!(state(&client).await.0, 10);
}
