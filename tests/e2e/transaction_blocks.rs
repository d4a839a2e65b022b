//! DDL, DELETE and UPDATE inside BEGIN ... COMMIT seen from other sessions
//! and across a crash: a block's changes are its own until COMMIT, durable
//! from it on, and a block racing another session's change to the same
//! relation or rows fails with 40001 rather than overwriting it.

use crate::support::{scalar_i64, text_rows, TestServer};

async fn relation_count(client: &tokio_postgres::Client, name: &str) -> i64 {
    client
        .query_one("SELECT count(*) FROM pg_class WHERE relname = $1", &[&name])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocks_tables_are_its_own_until_commit() {
    let server = TestServer::start().await;
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute(
        "BEGIN;
         CREATE TABLE txd (id serial PRIMARY KEY, v text);
         INSERT INTO txd (v) VALUES ('one'), ('two');",
    )
    .await
    .unwrap();
    // The other session neither sees the table nor can use its name's row.
    assert_eq!(relation_count(&b, "txd").await, 0);
    let err = b.query("SELECT * FROM txd", &[]).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err}");
    // The block does.
    let n = scalar_i64(&a, "SELECT count(*) FROM txd").await;
    assert_eq!(n, 2);
    a.batch_execute("COMMIT").await.unwrap();
    let rows = b
        .query("SELECT id, v FROM txd ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, "one".to_string()), (2, "two".to_string())]);
    // The sequence goes on from the block's values.
    b.batch_execute("INSERT INTO txd (v) VALUES ('three')")
        .await
        .unwrap();
    let last = scalar_i64(&b, "SELECT max(id)::bigint FROM txd").await;
    assert_eq!(last, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_ddl_makes_the_later_commit_fail_with_40001() {
    let server = TestServer::start().await;
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE shared_t (x int)")
        .await
        .unwrap();
    // Both blocks create a table; the oid both were given can go to one.
    a.batch_execute("BEGIN; CREATE TABLE from_a (x int); INSERT INTO shared_t VALUES (42)")
        .await
        .unwrap();
    b.batch_execute("BEGIN; CREATE TABLE from_b (x int); COMMIT")
        .await
        .unwrap();
    let err = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("40001"), "{err}");
    assert_eq!(relation_count(&a, "from_a").await, 0);
    assert_eq!(relation_count(&a, "from_b").await, 1);
    // Nothing of the failed block is left for the next one.
    a.batch_execute("BEGIN; COMMIT").await.unwrap();
    let rows = scalar_i64(&a, "SELECT count(*) FROM shared_t").await;
    assert_eq!(rows, 0);
    // A block altering a table another session altered meanwhile.
    a.batch_execute("BEGIN; ALTER TABLE shared_t ADD COLUMN from_a int")
        .await
        .unwrap();
    b.batch_execute("ALTER TABLE shared_t ADD COLUMN from_b int")
        .await
        .unwrap();
    let err = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("40001"), "{err}");
    let columns = text_rows(
        &a,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'shared_t' ORDER BY ordinal_position",
    )
    .await;
    assert_eq!(columns, ["x", "from_b"]);
    // The session goes on: the same block again commits.
    a.batch_execute("BEGIN; CREATE TABLE from_a (x int); COMMIT")
        .await
        .unwrap();
    assert_eq!(relation_count(&b, "from_a").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_keeps_committed_ddl_and_forgets_an_open_block() {
    let mut server = TestServer::start().await;
    let a = server.connect().await;
    a.batch_execute(
        "BEGIN;
         CREATE TABLE kept (time timestamptz NOT NULL, v int);
         SELECT create_hypertable('kept', 'time');
         INSERT INTO kept VALUES ('2024-01-01 00:00:00+00', 1), ('2024-02-01 00:00:00+00', 2);
         COMMIT;
         BEGIN;
         CREATE TABLE open_block (x int);
         INSERT INTO open_block VALUES (1);
         DROP TABLE kept;",
    )
    .await
    .unwrap();
    server.kill9();
    server.restart().await;
    let c = server.connect().await;
    assert_eq!(relation_count(&c, "open_block").await, 0);
    let row = c
        .query_one("SELECT count(*), sum(v)::int8 FROM kept", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (2, 3));
    let chunks = scalar_i64(&c, "SELECT count(*) FROM show_chunks('kept')").await;
    assert_eq!(chunks, 2);
}

async fn count_and_sum(client: &tokio_postgres::Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT count(*), coalesce(sum(v), 0)::int8 FROM rows_t",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn rows_table(server: &TestServer) -> tokio_postgres::Client {
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE rows_t (time timestamptz NOT NULL, v bigint);
             SELECT create_hypertable('rows_t', 'time', chunk_time_interval => INTERVAL '1 day');
             INSERT INTO rows_t SELECT t, 1 FROM generate_series(
                 TIMESTAMPTZ '2024-01-01 00:00:00+00', TIMESTAMPTZ '2024-01-02 23:00:00+00', INTERVAL '1 hour') t;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocks_delete_and_update_are_its_own_until_commit() {
    let server = TestServer::start().await;
    let a = rows_table(&server).await;
    let b = server.connect().await;
    a.batch_execute(
        "BEGIN;
         DELETE FROM rows_t WHERE time < '2024-01-02 00:00:00+00';
         UPDATE rows_t SET v = 10 WHERE time >= '2024-01-02 12:00:00+00';",
    )
    .await
    .unwrap();
    assert_eq!(count_and_sum(&a).await, (24, 12 + 120));
    assert_eq!(count_and_sum(&b).await, (48, 48), "before COMMIT");
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count_and_sum(&b).await, (24, 132), "after COMMIT");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewrite_racing_another_fails_with_40001() {
    let server = TestServer::start().await;
    let a = rows_table(&server).await;
    let b = server.connect().await;
    a.batch_execute("BEGIN; DELETE FROM rows_t WHERE time = '2024-01-01 03:00:00+00'")
        .await
        .unwrap();
    // Another session rewrites the same file meanwhile.
    b.batch_execute("UPDATE rows_t SET v = 7 WHERE time = '2024-01-01 05:00:00+00'")
        .await
        .unwrap();
    let err = a
        .query("SELECT count(*) FROM rows_t", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("40001"), "{err}");
    a.batch_execute("ROLLBACK").await.unwrap();
    // Only the other session's change is there; the block can run again.
    assert_eq!(count_and_sum(&a).await, (48, 54));
    a.batch_execute("BEGIN; DELETE FROM rows_t WHERE time = '2024-01-01 03:00:00+00'; COMMIT")
        .await
        .unwrap();
    assert_eq!(count_and_sum(&b).await, (47, 53));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_forgets_an_open_blocks_rewrites() {
    let mut server = TestServer::start().await;
    let a = rows_table(&server).await;
    a.batch_execute(
        "BEGIN; DELETE FROM rows_t WHERE time < '2024-01-02 00:00:00+00'; UPDATE rows_t SET v = 5",
    )
    .await
    .unwrap();
    server.kill9();
    server.restart().await;
    let c = server.connect().await;
    assert_eq!(count_and_sum(&c).await, (48, 48));
    // The files the block wrote are removed as nobody's.
    let mut files = usize::MAX;
    for _ in 0..50 {
        files = crate::support::parquet_files_under(&server.data_dir());
        if files <= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(files <= 2, "parquet files left: {files}");
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_leaves_a_blocks_rewritten_files_alone() {
    let server = TestServer::start().await;
    let a = server.connect().await;
    let b = server.connect().await;
    let tables = server.data_dir().join("tables");
    let flush_row = |i: i32| format!("INSERT INTO small_t VALUES ({i}, 'v{i}'); CHECKPOINT");
    a.batch_execute("CREATE TABLE small_t (id int, v text)")
        .await
        .unwrap();
    // Three small files, one per flush: too few to merge.
    for i in 0..3 {
        a.batch_execute(&flush_row(i)).await.unwrap();
    }
    assert_eq!(crate::support::parquet_files_under(&tables), 3);
    a.batch_execute("BEGIN; DELETE FROM small_t WHERE id = 0")
        .await
        .unwrap();
    // Two more: the four the block did not replace are merged, its own stays.
    for i in 3..5 {
        b.batch_execute(&flush_row(i)).await.unwrap();
    }
    b.batch_execute("VACUUM small_t").await.unwrap();
    let mut files = usize::MAX;
    for _ in 0..100 {
        files = crate::support::parquet_files_under(&tables);
        if files <= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(files, 2, "the merged file and the one the block replaced");
    a.batch_execute("COMMIT").await.unwrap();
    let ids = text_rows(&b, "SELECT id FROM small_t ORDER BY id").await;
    assert_eq!(ids, ["1", "2", "3", "4"]);
}
