//! Compression through a running server: the policy compresses old chunks in
//! the background and their uncompressed files leave the disk; compressed
//! chunks survive kill -9; a kill in the middle of a compression leaves the
//! chunk either as it was or compressed, never half of each; psql shows
//! compress_chunk's NOTICE.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::support::{scalar_i64, text_rows, wait_for, TestServer};

/// (count, sum, min, max) of a table, as text: the rows' fingerprint.
async fn fingerprint(client: &Client, table: &str) -> String {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*)::text || ' ' || sum(v)::text || ' ' || min(time)::text || ' ' || max(time)::text || ' ' || count(DISTINCT device)::text FROM {table}"
            ),
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// Parquet files and their total size under `dir`.
fn parquet_files(dir: &Path) -> (usize, u64) {
    let mut out = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            let (n, b) = parquet_files(&p);
            out.0 += n;
            out.1 += b;
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.0 += 1;
            out.1 += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn compression_policy_compresses_old_chunks_in_the_background() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cp (time timestamptz NOT NULL, device int, v float8);
             SELECT create_hypertable('cp', by_range('time', INTERVAL '1 day'));
             INSERT INTO cp SELECT t, d, d + extract(hour FROM t)
               FROM generate_series('2024-01-01 00:00:00+00'::timestamptz, '2024-01-03 23:59:00+00', INTERVAL '1 minute') t,
                    generate_series(1, 4) d;
             INSERT INTO cp SELECT date_trunc('day', now()) + g * INTERVAL '1 minute', 1, 1 FROM generate_series(0, 30) g;
             ALTER TABLE cp SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');
             CHECKPOINT;",
        )
        .await
        .unwrap();
    let before = fingerprint(&client, "cp").await;
    let old_chunks = "SELECT count(*) FROM timescaledb_information.chunks \
                      WHERE hypertable_name = 'cp' AND range_end <= '2024-01-04 00:00:00+00'";
    assert_eq!(scalar_i64(&client, old_chunks).await, 3);
    let job: i32 = client
        .query_one(
            "SELECT add_compression_policy('cp', INTERVAL '7 days')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    wait_for(&client, &format!("{old_chunks} AND is_compressed"), 3).await;
    // The chunk holding today's rows is too young.
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'cp' AND is_compressed = false"
        )
        .await,
        1
    );
    assert_eq!(fingerprint(&client, "cp").await, before);
    wait_for(
        &client,
        &format!(
            "SELECT total_successes FROM timescaledb_information.job_stats WHERE job_id = {job}"
        ),
        1,
    )
    .await;
    let stats = client
        .query_one(
            "SELECT number_compressed_chunks, before_compression_total_bytes > after_compression_total_bytes FROM hypertable_compression_stats('cp')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(stats.get::<_, i64>(0), 3);
    assert!(
        stats.get::<_, bool>(1),
        "compression made the chunks larger"
    );

    // The files the compressed ones replaced leave the disk: what is on disk
    // is what the catalog lists.
    let listed = "SELECT table_bytes FROM hypertable_detailed_size('cp')";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let on_disk = parquet_files(&server.data_dir().join("chunks")).1 as i64;
        if on_disk == scalar_i64(&client, listed).await {
            break;
        }
        assert!(Instant::now() < deadline, "old files still on disk");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_eq!(fingerprint(&client, "cp").await, before);
    assert_eq!(
        scalar_i64(&client, &format!("{old_chunks} AND is_compressed")).await,
        3
    );
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'"
        )
        .await,
        1
    );
    // Queries that prune on the segment column read the compressed files.
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM cp WHERE device = 3 AND time >= '2024-01-02 00:00:00+00' AND time < '2024-01-02 01:00:00+00'"
        )
        .await,
        60
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_during_compression_leaves_the_old_or_the_new_chunk() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE ck (time timestamptz NOT NULL, device int, v float8, note text);
             SELECT create_hypertable('ck', by_range('time', INTERVAL '30 days'));
             ALTER TABLE ck SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');
             INSERT INTO ck SELECT '2024-01-01 00:00:00+00'::timestamptz + g * INTERVAL '1 second', g % 50, g * 0.5, 'n' || (g % 13)
               FROM generate_series(0, 399999) g;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    let before = fingerprint(&client, "ck").await;
    for delay_ms in [5u64, 60, 250] {
        let compressing = server.connect().await;
        let call = tokio::spawn(async move {
            compressing
                .query(
                    "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('ck') c",
                    &[],
                )
                .await
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        server.kill9();
        let _ = call.await;
        server.restart().await;
        let client = server.connect().await;
        assert_eq!(
            fingerprint(&client, "ck").await,
            before,
            "after a kill at {delay_ms} ms"
        );
        // Startup removed whatever the cut-short compression wrote: the
        // files on disk are exactly those the catalog lists.
        assert_eq!(
            parquet_files(&server.data_dir().join("chunks")).1 as i64,
            scalar_i64(
                &client,
                "SELECT table_bytes FROM hypertable_detailed_size('ck')"
            )
            .await,
            "after a kill at {delay_ms} ms"
        );
        // Decompress for the next round if this one finished.
        client
            .batch_execute("SELECT decompress_chunk(c, true) FROM show_chunks('ck') c")
            .await
            .unwrap();
    }
    let client = server.connect().await;
    client
        .batch_execute("SELECT compress_chunk(c) FROM show_chunks('ck') c")
        .await
        .unwrap();
    assert_eq!(fingerprint(&client, "ck").await, before);
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'ck' AND is_compressed"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_shows_the_notice_for_a_chunk_already_compressed() {
    let server = TestServer::start().await;
    let setup = server.psql_script(
        "CREATE TABLE cn (time timestamptz NOT NULL, device int, v float8);
         SELECT create_hypertable('cn', by_range('time', INTERVAL '1 day'));
         INSERT INTO cn VALUES ('2024-01-01 00:00:00+00', 1, 1.5);
         ALTER TABLE cn SET (timescaledb.compress);
         SELECT compress_chunk(c) FROM show_chunks('cn') c;",
        true,
    );
    setup.assert_success();
    assert!(
        setup
            .stdout
            .contains("_timescaledb_internal._hyper_1_1_chunk"),
        "{}",
        setup.stdout
    );
    let again = server.psql_sql("SELECT compress_chunk(c) FROM show_chunks('cn') c");
    again.assert_success();
    assert!(
        again
            .stderr
            .contains("NOTICE:  chunk \"_hyper_1_1_chunk\" is already converted to columnstore"),
        "{}",
        again.stderr
    );
    assert!(again
        .stdout
        .contains("_timescaledb_internal._hyper_1_1_chunk"));
}

/// The TSBS query shapes (tempora-bench's query types, with fixed windows)
/// over a small cpu table: every one returns the same rows before and after
/// the chunks are compressed.
#[tokio::test(flavor = "multi_thread")]
async fn tsbs_queries_return_the_same_rows_on_compressed_chunks() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let metrics = [
        "usage_user",
        "usage_system",
        "usage_idle",
        "usage_nice",
        "usage_iowait",
        "usage_irq",
        "usage_softirq",
        "usage_steal",
        "usage_guest",
        "usage_guest_nice",
    ];
    let columns: Vec<String> = metrics.iter().map(|m| format!("{m} float8")).collect();
    // Integer values 0..100 (as TSBS emits them), so that sums are exact in
    // any order; usage_guest is NULL now and then.
    let values: Vec<String> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let v = format!(
                "((h * {a} + (extract(epoch FROM t)::bigint / 10) * {b}) % 101)::float8",
                a = i + 3,
                b = (i % 4) + 1
            );
            if *m == "usage_guest" {
                format!("CASE WHEN (extract(epoch FROM t)::bigint / 10 + h) % 97 = 0 THEN NULL ELSE {v} END")
            } else {
                v
            }
        })
        .collect();
    client
        .batch_execute(&format!(
            "CREATE TABLE cpu (time timestamptz NOT NULL, hostname text, region text, {});
             SELECT create_hypertable('cpu', by_range('time', INTERVAL '2 hours'));
             INSERT INTO cpu SELECT t, 'host_' || h, 'region_' || (h % 3), {}
               FROM generate_series('2016-01-01 00:00:00+00'::timestamptz, '2016-01-01 05:59:50+00', INTERVAL '10 seconds') t,
                    generate_series(0, 9) h;
             CHECKPOINT;
             ALTER TABLE cpu SET (timescaledb.compress, timescaledb.compress_segmentby = 'hostname', timescaledb.compress_orderby = 'time DESC');",
            columns.join(", "),
            values.join(", ")
        ))
        .await
        .unwrap();
    let max = |n: usize| -> String {
        metrics[..n]
            .iter()
            .map(|m| format!("max({m}) AS max_{m}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let avg = |n: usize| -> String {
        metrics[..n]
            .iter()
            .map(|m| format!("avg({m}) AS mean_{m}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let single = |n: usize, hosts: &str, from: &str, to: &str| {
        format!(
            "SELECT time_bucket('60 seconds', time) AS minute, {} FROM cpu WHERE hostname IN ({hosts}) \
             AND time >= '2016-01-01 {from} +0000' AND time < '2016-01-01 {to} +0000' GROUP BY minute ORDER BY minute ASC",
            max(n)
        )
    };
    let eight = "'host_1','host_2','host_3','host_5','host_6','host_7','host_8','host_9'";
    let queries = vec![
        single(1, "'host_3'", "01:17:33.123456", "02:17:33.123456"),
        single(1, "'host_3'", "00:47:10", "04:47:10"),
        single(1, eight, "03:02:00", "04:02:00"),
        single(5, "'host_0'", "02:30:00", "03:30:00"),
        single(5, "'host_9'", "00:10:00", "05:10:00"),
        single(5, eight, "01:59:59", "02:59:59"),
        format!(
            "SELECT time_bucket('3600 seconds', time) AS hour, {} FROM cpu WHERE hostname IN ('host_4') \
             AND time >= '2016-01-01 00:30:00 +0000' AND time < '2016-01-01 04:30:00 +0000' GROUP BY hour ORDER BY hour",
            max(10)
        ),
        format!(
            "SELECT time_bucket('3600 seconds', time) AS hour, {} FROM cpu WHERE hostname IN ({eight}) \
             AND time >= '2016-01-01 01:30:00 +0000' AND time < '2016-01-01 05:30:00 +0000' GROUP BY hour ORDER BY hour",
            max(10)
        ),
        format!(
            "WITH cpu_avg AS (SELECT time_bucket('3600 seconds', time) AS hour, hostname, {} FROM cpu \
             WHERE time >= '2016-01-01 01:17:46.561172 +0000' AND time < '2016-01-01 04:17:46.561172 +0000' GROUP BY 1, 2) \
             SELECT * FROM cpu_avg ORDER BY hour, hostname",
            avg(1)
        ),
        format!(
            "WITH cpu_avg AS (SELECT time_bucket('3600 seconds', time) AS hour, hostname, {} FROM cpu \
             WHERE time >= '2016-01-01 00:00:00 +0000' AND time < '2016-01-01 06:00:00 +0000' GROUP BY 1, 2) \
             SELECT * FROM cpu_avg ORDER BY hour, hostname",
            avg(10)
        ),
        "SELECT * FROM cpu WHERE usage_user > 90.0 AND time >= '2016-01-01 01:00:00 +0000' \
         AND time < '2016-01-01 05:00:00 +0000' AND hostname IN ('host_7') ORDER BY time"
            .to_string(),
        "SELECT * FROM cpu WHERE usage_user > 90.0 AND time >= '2016-01-01 01:00:00 +0000' \
         AND time < '2016-01-01 05:00:00 +0000' ORDER BY time, hostname"
            .to_string(),
        "SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC".to_string(),
        "SELECT time_bucket('60 seconds', time) AS minute, max(usage_user) FROM cpu \
         WHERE time < '2016-01-01 03:41:53.985195 +0000' GROUP BY minute ORDER BY minute DESC LIMIT 5"
            .to_string(),
        "SELECT count(*), count(usage_guest), sum(usage_guest), min(time), max(time) FROM cpu".to_string(),
    ];
    let mut before = Vec::new();
    for q in &queries {
        let r = text_rows(&client, q).await;
        assert!(!r.is_empty(), "no rows: {q}");
        before.push(r);
    }
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(compress_chunk(c)) FROM show_chunks('cpu') c"
        )
        .await,
        3
    );
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'cpu' AND is_compressed"
        )
        .await,
        3
    );
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(&text_rows(&client, q).await, want, "{q}");
    }
}
