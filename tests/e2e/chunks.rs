//! drop_chunks: dropped rows stay dropped across kill -9 whether they were
//! in files or only in the WAL, rows written after the drop survive, and a
//! drop racing with writers never loses or resurrects a row.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_postgres::Client;

use crate::support::{parquet_files_under, TestServer};

const DAY_US: i64 = 86_400_000_000;
/// 2024-01-01 00:00:00 UTC in seconds since the epoch.
const START_S: i64 = 1_704_067_200;

/// Inserts `n` rows into day `day` (0 = 2024-01-01) of `ch`, with values
/// starting at `v0`.
async fn insert_day(client: &Client, day: i64, n: i64, v0: i64) {
    client
        .execute(
            &format!(
                "INSERT INTO ch SELECT to_timestamp({} + g), g + {v0} FROM generate_series(0, {}) g",
                START_S + day * 86_400,
                n - 1
            ),
            &[],
        )
        .await
        .unwrap();
}

/// (rows, sum of v) per day.
async fn per_day(client: &Client) -> Vec<(i64, i64, i64)> {
    client
        .query(
            "SELECT (extract(epoch from time_bucket(INTERVAL '1 day', time)) / 86400)::bigint - 19723 AS day, \
             count(*), sum(v)::bigint FROM ch GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn create(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE ch (time timestamptz NOT NULL, v bigint);
             SELECT create_hypertable('ch', by_range('time', INTERVAL '1 day'));",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_rows_stay_dropped_after_kill_9() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    create(&client).await;
    // Days 0..4 in files, then more rows of every day in memtables only.
    for day in 0..4 {
        insert_day(&client, day, 100, day * 1000).await;
    }
    client.batch_execute("CHECKPOINT").await.unwrap();
    let files_before = parquet_files_under(&server.data_dir().join("chunks"));
    assert!(files_before >= 4, "flushed files: {files_before}");
    for day in 0..4 {
        insert_day(&client, day, 10, 500 + day * 1000).await;
    }
    let dropped: Vec<String> = client
        .query(
            "SELECT c FROM drop_chunks('ch', older_than => '2024-01-03 00:00:00+00'::timestamptz) c ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(dropped.len(), 2, "dropped {dropped:?}");
    assert!(dropped
        .iter()
        .all(|c| c.starts_with("_timescaledb_internal._hyper_")));
    // Rows written into day 0 after the drop make a new chunk and stay.
    insert_day(&client, 0, 7, 90_000).await;
    let expected = vec![
        (0, 7, (90_000..90_007).sum::<i64>()),
        (
            2,
            110,
            (2000..2100).sum::<i64>() + (2500..2510).sum::<i64>(),
        ),
        (
            3,
            110,
            (3000..3100).sum::<i64>() + (3500..3510).sum::<i64>(),
        ),
    ];
    assert_eq!(per_day(&client).await, expected, "after drop");
    let chunks: i64 = client
        .query_one("SELECT count(*) FROM show_chunks('ch')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 3);
    // The dropped chunks' files go once no statement reads them.
    let chunk_dir = server.data_dir().join("chunks");
    let mut files_after = usize::MAX;
    for _ in 0..50 {
        files_after = parquet_files_under(&chunk_dir);
        if files_after <= files_before - 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        files_after <= files_before - 2,
        "files of dropped chunks still on disk: {files_before} -> {files_after}"
    );
    drop(client);

    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_eq!(per_day(&client).await, expected, "after kill -9");
    // Once more, after the recovered rows were flushed.
    client.batch_execute("CHECKPOINT").await.unwrap();
    drop(client);
    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_eq!(
        per_day(&client).await,
        expected,
        "after CHECKPOINT and kill -9"
    );
}

/// Writers keep inserting into the range being dropped; whatever each
/// session saw last before the kill is exactly what recovery gives back.
#[tokio::test(flavor = "multi_thread")]
async fn drop_racing_with_writers_recovers_what_was_visible() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    create(&client).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2i64 {
        let c = server.connect().await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                // Alternating between the dropped day and a kept one.
                let day = if n % 2 == 0 { 0 } else { 5 };
                let t = START_S * 1_000_000 + day * DAY_US + (w * 1_000_000 + n) * 1_000;
                c.execute(
                    &format!(
                        "INSERT INTO ch VALUES (to_timestamp({t}::double precision / 1000000), {n})"
                    ),
                    &[],
                )
                .await
                .unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut drops = 0;
    for i in 0..15 {
        let rows = client
            .query(
                "SELECT drop_chunks('ch', older_than => '2024-01-02 00:00:00+00'::timestamptz)",
                &[],
            )
            .await
            .unwrap();
        drops += rows.len();
        if i % 5 == 4 {
            client.batch_execute("CHECKPOINT").await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert!(
        drops > 0,
        "no chunk was dropped while {written} rows were written"
    );
    let before = per_day(&client).await;
    let day5 = before.iter().find(|d| d.0 == 5).map_or(0, |d| d.1);
    assert!(day5 > 0, "rows of the kept day: {before:?}");
    drop(client);
    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_eq!(per_day(&client).await, before, "after kill -9");
}

/// `DROP TABLE` naming a chunk drops that chunk and its rows, flushed or
/// not, as TimescaleDB does; the hypertable and its other chunks stay, also
/// after a restart. A missing chunk is 42P01 (a notice with IF EXISTS); in a
/// transaction block it is not supported.
#[tokio::test(flavor = "multi_thread")]
async fn drop_table_of_a_chunk_drops_that_chunk() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    create(&client).await;
    insert_day(&client, 0, 100, 0).await;
    insert_day(&client, 1, 50, 1000).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    insert_day(&client, 0, 10, 500).await;
    let names: Vec<String> = client
        .query(
            "SELECT chunk_schema || '.' || chunk_name FROM timescaledb_information.chunks \
             WHERE hypertable_name = 'ch' ORDER BY range_start",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let e = client
        .batch_execute(&format!("BEGIN; DROP TABLE {}", names[0]))
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "0A000", "{e}");
    client.batch_execute("ROLLBACK").await.unwrap();

    client
        .batch_execute(&format!("DROP TABLE {}", names[0]))
        .await
        .unwrap();
    assert_eq!(
        per_day(&client).await,
        vec![(1, 50, 1000 * 50 + 49 * 50 / 2)]
    );
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'ch'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1);

    let e = client
        .batch_execute(&format!("DROP TABLE {}", names[0]))
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "42P01", "{e}");
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {}", names[0]))
        .await
        .unwrap();
    // A missing chunk named with a table: the table goes, the chunk's
    // notice is kept.
    client
        .batch_execute("CREATE TABLE other (v int)")
        .await
        .unwrap();
    let out = server.psql_sql(&format!("DROP TABLE IF EXISTS {}, other", names[0]));
    out.assert_success();
    assert!(
        out.stderr.contains("does not exist, skipping"),
        "{}",
        out.stderr
    );
    let e = client
        .batch_execute("SELECT * FROM other")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "42P01", "{e}");

    drop(client);
    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_eq!(
        per_day(&client).await,
        vec![(1, 50, 1000 * 50 + 49 * 50 / 2)]
    );
}
