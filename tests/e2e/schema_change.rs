//! ALTER TABLE on a hypertable holding rows in compressed files, ordinary
//! files and memtables at once: every row reads back as the new definition
//! says, after each change and after kill -9, and no file was rewritten to
//! add, rename or drop a column.

use std::collections::BTreeSet;
use std::path::Path;

use tokio_postgres::Client;

use crate::support::{text_rows, TestServer};

/// Every Parquet file under `dir`.
fn parquet_paths(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(parquet_paths(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.insert(p.display().to_string());
        }
    }
    out
}

/// All rows, as text, in time order.
async fn rows(client: &Client) -> Vec<String> {
    text_rows(client, "SELECT * FROM sc ORDER BY time").await
}

#[tokio::test(flavor = "multi_thread")]
async fn columns_change_over_compressed_flushed_and_unflushed_rows() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE sc (time timestamptz NOT NULL, device text, v int);
             SELECT create_hypertable('sc', 'time', chunk_time_interval => INTERVAL '1 day');
             ALTER TABLE sc SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');
             INSERT INTO sc VALUES ('2024-01-01 01:00+00', 'a', 1), ('2024-01-01 02:00+00', 'b', 2);
             SELECT compress_chunk(c) FROM show_chunks('sc') c;
             INSERT INTO sc VALUES ('2024-01-02 01:00+00', 'a', 3);
             CHECKPOINT;
             INSERT INTO sc VALUES ('2024-01-03 01:00+00', 'c', 4);",
        )
        .await
        .unwrap();
    let files_before = parquet_paths(&server.data_dir());
    assert!(files_before.len() >= 2, "{files_before:?}");

    // A column added with a default: old rows read the default, new ones what they give.
    client
        .batch_execute(
            "ALTER TABLE sc ADD COLUMN w float8 DEFAULT 0.5;
             INSERT INTO sc VALUES ('2024-01-03 02:00+00', 'c', 5, 7.25);",
        )
        .await
        .unwrap();
    assert_eq!(
        rows(&client).await,
        [
            "2024-01-01 01:00:00+00|a|1|0.5",
            "2024-01-01 02:00:00+00|b|2|0.5",
            "2024-01-02 01:00:00+00|a|3|0.5",
            "2024-01-03 01:00:00+00|c|4|0.5",
            "2024-01-03 02:00:00+00|c|5|7.25",
        ]
    );

    // Renamed (a segmentby column too), widened, dropped: by column id, not by name.
    client
        .batch_execute(
            "ALTER TABLE sc RENAME COLUMN v TO value;
             ALTER TABLE sc RENAME COLUMN device TO dev;
             ALTER TABLE sc ALTER COLUMN value TYPE bigint;
             ALTER TABLE sc DROP COLUMN w;
             ALTER TABLE sc ADD COLUMN w text;",
        )
        .await
        .unwrap();
    let expected = [
        "2024-01-01 01:00:00+00|a|1|NULL",
        "2024-01-01 02:00:00+00|b|2|NULL",
        "2024-01-02 01:00:00+00|a|3|NULL",
        "2024-01-03 01:00:00+00|c|4|NULL",
        "2024-01-03 02:00:00+00|c|5|NULL",
    ];
    assert_eq!(rows(&client).await, expected);
    // Filters on renamed columns prune by the files' own statistics.
    let row = client
        .query_one(
            "SELECT count(*), sum(value)::text FROM sc WHERE dev = 'a' AND value >= 3",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, String>(1), "3");

    // No file was rewritten for any of it (the flush before each change
    // only wrote the unflushed rows).
    let files_after = parquet_paths(&server.data_dir());
    assert!(
        files_before.is_subset(&files_after),
        "files rewritten: before {files_before:?}, after {files_after:?}"
    );

    // The definition and the rows survive kill -9.
    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_eq!(rows(&client).await, expected);
    let columns: Vec<String> = client
        .query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'sc' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, ["time", "dev", "value", "w"]);

    // Compressing again and decompressing keep every row as it reads now.
    client
        .batch_execute(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('sc') c;",
        )
        .await
        .unwrap();
    assert_eq!(rows(&client).await, expected);
    client
        .batch_execute(
            "SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks('sc') c;",
        )
        .await
        .unwrap();
    assert_eq!(rows(&client).await, expected);
}

/// TRUNCATE'd rows stay gone after kill -9 (none comes back from the WAL),
/// views survive it, reading the tables as they are then, and sequences go
/// on past the values they handed out.
#[tokio::test(flavor = "multi_thread")]
async fn truncate_and_views_survive_kill9() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE tk (time timestamptz NOT NULL, v int);
             SELECT create_hypertable('tk', 'time');
             CREATE TABLE tp (id int, v int);
             INSERT INTO tk VALUES ('2024-01-01 00:00:00+00', 1);
             INSERT INTO tp VALUES (1, 1);
             CHECKPOINT;
             INSERT INTO tk VALUES ('2024-01-02 00:00:00+00', 2);
             INSERT INTO tp VALUES (2, 2);
             CREATE VIEW tv AS SELECT (SELECT count(*) FROM tk) AS k, (SELECT count(*) FROM tp) AS p;
             TRUNCATE tk, tp;
             INSERT INTO tp VALUES (3, 3);
             CREATE TABLE ts (id serial PRIMARY KEY, name text);
             INSERT INTO ts (name) VALUES ('a'), ('b');
             CREATE SEQUENCE sdown INCREMENT -5 MINVALUE -1000 MAXVALUE -1;
             SELECT nextval('sdown'), nextval('sdown');
             CREATE SEQUENCE sset;
             SELECT setval('sset', 42, false);
             CREATE SEQUENCE sren AS integer START 7;
             ALTER SEQUENCE sren RENAME TO sren2;
             CREATE TABLE tm (v int);
             INSERT INTO tm VALUES (1), (2);
             CREATE MATERIALIZED VIEW tmv AS SELECT sum(v) AS s FROM tm;
             INSERT INTO tm VALUES (4);
             REFRESH MATERIALIZED VIEW tmv;
             CREATE MATERIALIZED VIEW tmv_empty AS SELECT v FROM tm WITH NO DATA;",
        )
        .await
        .unwrap();
    async fn counts(c: &Client) -> (i64, i64) {
        let r = c.query_one("SELECT k, p FROM tv", &[]).await.unwrap();
        (r.get::<_, i64>(0), r.get::<_, i64>(1))
    }
    assert_eq!(counts(&client).await, (0, 1));
    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_eq!(counts(&client).await, (0, 1));
    // A serial column numbers on past every value handed out before the kill.
    let id: i32 = client
        .query_one("INSERT INTO ts (name) VALUES ('c') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert!(id > 2, "id {id} after the kill");
    // CREATE SEQUENCE's options, setval's pending value and a rename stay.
    let r = client
        .query_one(
            "SELECT nextval('sdown'), nextval('sset'), nextval('sren2')",
            &[],
        )
        .await
        .unwrap();
    let down: i64 = r.get(0);
    assert!((-1000..-6).contains(&down), "descending value {down}");
    assert_eq!(r.get::<_, i64>(1), 42);
    assert_eq!(r.get::<_, i64>(2), 7);
    let r = client
        .query_one(
            "SELECT data_type::text, min_value, max_value, increment_by FROM pg_sequences WHERE sequencename = 'sdown'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "bigint");
    // A materialized view keeps its last refresh's rows, and WITH NO DATA
    // stays unpopulated.
    let s: i64 = client
        .query_one("SELECT s FROM tmv", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(s, 7);
    let err = client
        .query("SELECT * FROM tmv_empty", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "55000", "{err:?}");
    assert_eq!(
        (r.get::<_, i64>(1), r.get::<_, i64>(2), r.get::<_, i64>(3)),
        (-1000, -1, -5)
    );
}

/// Rows written while a table is migrated into a hypertable and while its
/// columns change are all there once, in chunks, in the new layout.
#[tokio::test(flavor = "multi_thread")]
async fn writes_during_migration_and_alter_land_in_chunks() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE mig (time timestamptz NOT NULL, v int);
             INSERT INTO mig SELECT t, 1 FROM generate_series('2024-01-01'::timestamptz, '2024-01-20', INTERVAL '1 hour') t;",
        )
        .await
        .unwrap();
    let before = crate::support::scalar_i64(&client, "SELECT count(*) FROM mig").await;
    let writer = server.connect().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let task = tokio::spawn(async move {
        let mut written = 0i64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            writer
                .execute(
                    "INSERT INTO mig (time, v) VALUES ('2024-01-05 00:00:00+00'::timestamptz + $1::bigint * INTERVAL '1 second', 2)",
                    &[&written],
                )
                .await
                .unwrap();
            written += 1;
        }
        written
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    client
        .batch_execute("SELECT create_hypertable('mig', 'time', migrate_data => true)")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    client
        .batch_execute("ALTER TABLE mig ADD COLUMN w int DEFAULT 7")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = task.await.unwrap();
    assert!(written > 0);
    let total = crate::support::scalar_i64(&client, "SELECT count(*) FROM mig").await;
    assert_eq!(total, before + written);
    let sevens = crate::support::scalar_i64(&client, "SELECT count(*) FROM mig WHERE w = 7").await;
    assert_eq!(sevens, total, "every row reads the added column's default");
    // Every row is in a chunk: dropping them all leaves none.
    client
        .batch_execute(
            "CHECKPOINT; SELECT drop_chunks('mig', older_than => '2100-01-01'::timestamptz);",
        )
        .await
        .unwrap();
    assert_eq!(
        crate::support::scalar_i64(&client, "SELECT count(*) FROM mig").await,
        0
    );
}

/// A statement a driver prepared (Parse once, Bind/Execute many) is planned
/// again after ALTER TABLE: an INSERT fills the table's new columns, a
/// SELECT whose columns would change gets PostgreSQL's 0A000, and the
/// session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_follow_alter_table() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE sc_prep (a int, b text, d int)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO sc_prep VALUES ($1, $2, $3)")
        .await
        .unwrap();
    let star = client.prepare("SELECT * FROM sc_prep").await.unwrap();
    let count = client
        .prepare("SELECT count(*) FROM sc_prep")
        .await
        .unwrap();
    client
        .batch_execute(
            "ALTER TABLE sc_prep ADD COLUMN c int DEFAULT 9; ALTER TABLE sc_prep DROP COLUMN d",
        )
        .await
        .unwrap();
    client
        .execute(&insert, &[&1i32, &"x", &5i32])
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT a || ',' || b || ',' || c FROM sc_prep").await,
        vec!["1,x,5"]
    );
    let err = client.query(&star, &[]).await.unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "0A000", "{db:?}");
    assert_eq!(db.message(), "cached plan must not change result type");
    let n: i64 = client.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
}
