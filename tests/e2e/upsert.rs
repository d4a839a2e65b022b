//! `INSERT ... ON CONFLICT DO UPDATE` through tokio-postgres: concurrent
//! upserters, inserters and file rewrites on the same keys lose and
//! duplicate nothing; acknowledged upserts survive `kill -9`, whether the rows
//! they replaced were in memtables, in Parquet files or in both; `$n`
//! parameters in SET and WHERE.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::support::TestServer;

/// A small xorshift generator (the test only needs varied key sets).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const HOURS: i64 = 24;
const DEVICES: i64 = 4;

/// Key `i` as (hour, device): 24 hours × 4 devices over three 8-hour chunks.
fn key(i: i64) -> (i64, i64) {
    (i / DEVICES, i % DEVICES)
}

fn time_literal(hour: i64) -> String {
    format!("'2024-01-01 {hour:02}:00:00+00'")
}

/// `count` distinct keys.
fn pick_keys(rng: &mut Rng, count: usize) -> Vec<i64> {
    let mut keys = Vec::new();
    while keys.len() < count {
        let k = rng.below((HOURS * DEVICES) as u64) as i64;
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

fn values_sql(keys: &[i64], v: i64) -> String {
    keys.iter()
        .map(|k| {
            let (h, d) = key(*k);
            format!("({}, {d}, {v}, 1)", time_literal(h))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What acknowledged statements wrote, per key: how many row writes and
/// the values written.
#[derive(Default)]
struct Ledger {
    writes: BTreeMap<(i64, i64), (i64, Vec<i64>)>,
}

impl Ledger {
    fn record(&mut self, k: (i64, i64), v: i64) {
        let e = self.writes.entry(k).or_default();
        e.0 += 1;
        e.1.push(v);
    }
}

/// The table's rows as (hour, device) -> [(v, n)], every copy of a key kept.
async fn table_rows(client: &Client) -> BTreeMap<(i64, i64), Vec<(i64, i64)>> {
    let rows = client
        .query(
            "SELECT extract(hour FROM time)::bigint, device::bigint, v, n::bigint FROM up_conc",
            &[],
        )
        .await
        .unwrap();
    let mut out: BTreeMap<(i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for r in rows {
        out.entry((r.get(0), r.get(1)))
            .or_default()
            .push((r.get(2), r.get(3)));
    }
    out
}

fn check_ledger(ledger: &Ledger, rows: &BTreeMap<(i64, i64), Vec<(i64, i64)>>, context: &str) {
    for (k, copies) in rows {
        assert_eq!(copies.len(), 1, "{context}: key {k:?} appears {copies:?}");
        let (v, n) = copies[0];
        let Some((writes, values)) = ledger.writes.get(k) else {
            panic!("{context}: key {k:?} holds ({v}, {n}) but no acknowledged statement wrote it");
        };
        assert!(
            values.contains(&v),
            "{context}: key {k:?} holds v = {v}, which no acknowledged statement wrote for it"
        );
        assert_eq!(
            n, *writes,
            "{context}: key {k:?} counts {n} writes, {writes} were acknowledged"
        );
    }
    for k in ledger.writes.keys() {
        assert!(
            rows.contains_key(k),
            "{context}: acknowledged key {k:?} is missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_upserts_and_inserts_keep_every_key_once() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE up_conc (time timestamptz NOT NULL, device int NOT NULL, v bigint, \
                 n int NOT NULL, PRIMARY KEY (time, device));
             SELECT create_hypertable('up_conc', 'time', chunk_time_interval => INTERVAL '8 hours');",
        )
        .await
        .unwrap();

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let next_value = Arc::new(AtomicI64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();

    // Upserters: each statement writes its own value to a few distinct keys
    // and counts the write in n.
    for w in 0..3u64 {
        let client = server.connect().await;
        let (ledger, next_value) = (ledger.clone(), next_value.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9 + w);
            for round in 0..40 {
                let count = 1 + rng.below(8) as usize;
                let keys = pick_keys(&mut rng, count);
                let v = next_value.fetch_add(1, Ordering::SeqCst);
                let sql = format!(
                    "INSERT INTO up_conc AS t (time, device, v, n) VALUES {} \
                     ON CONFLICT (time, device) DO UPDATE SET v = EXCLUDED.v, n = t.n + 1",
                    values_sql(&keys, v)
                );
                // The extended protocol and the simple one, in turn.
                let n = if round % 2 == 0 {
                    client.execute(&sql, &[]).await.unwrap()
                } else {
                    let m = client.simple_query(&sql).await.unwrap();
                    m.iter()
                        .find_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
                            _ => None,
                        })
                        .unwrap()
                };
                assert_eq!(
                    n,
                    keys.len() as u64,
                    "every proposed row inserted or updated"
                );
                let mut l = ledger.lock().unwrap();
                for k in &keys {
                    l.record(key(*k), v);
                }
            }
        }));
    }
    // Inserters: DO NOTHING (RETURNING says which rows went in) and plain
    // INSERTs (all rows or 23505).
    for w in 0..2u64 {
        let client = server.connect().await;
        let (ledger, next_value) = (ledger.clone(), next_value.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x51_7cc1 + w);
            for round in 0..40 {
                let count = 1 + rng.below(4) as usize;
                let keys = pick_keys(&mut rng, count);
                let v = next_value.fetch_add(1, Ordering::SeqCst);
                if round % 2 == 0 {
                    let sql = format!(
                        "INSERT INTO up_conc (time, device, v, n) VALUES {} ON CONFLICT DO NOTHING \
                         RETURNING extract(hour FROM time)::bigint, device::bigint",
                        values_sql(&keys, v)
                    );
                    let rows = client.query(&sql, &[]).await.unwrap();
                    let mut l = ledger.lock().unwrap();
                    for r in rows {
                        l.record((r.get(0), r.get(1)), v);
                    }
                } else {
                    let sql = format!(
                        "INSERT INTO up_conc (time, device, v, n) VALUES {}",
                        values_sql(&keys, v)
                    );
                    match client.execute(&sql, &[]).await {
                        Ok(n) => {
                            assert_eq!(n, keys.len() as u64);
                            let mut l = ledger.lock().unwrap();
                            for k in &keys {
                                l.record(key(*k), v);
                            }
                        }
                        Err(e) => assert_eq!(e.code(), Some(&SqlState::UNIQUE_VIOLATION), "{e}"),
                    }
                }
            }
        }));
    }
    // Flushes (a DELETE first flushes the memtables) and file rewrites of
    // the same chunks while the writers run, so conflicts are met in
    // memtables, in files and in both.
    let flusher = {
        let client = server.connect().await;
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let sql = if i % 2 == 0 {
                    "DELETE FROM up_conc WHERE device < 0"
                } else {
                    "UPDATE up_conc SET v = v WHERE device < 0"
                };
                client.execute(sql, &[]).await.unwrap();
                i += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            i
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let flushes = flusher.await.unwrap();
    assert!(flushes > 0);

    let rows = table_rows(&client).await;
    check_ledger(&ledger.lock().unwrap(), &rows, "after the writers");
    let total: i64 = client
        .query_one("SELECT count(*) FROM up_conc", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total as usize, rows.len());

    // Everything acknowledged is durable.
    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    let rows = table_rows(&client).await;
    check_ledger(&ledger.lock().unwrap(), &rows, "after kill -9");
}

/// (device, value, count) of every row of up_kill, sorted.
async fn kill_rows(client: &Client) -> Vec<(i32, i64, i32)> {
    client
        .query(
            "SELECT device, v, n FROM up_kill ORDER BY time, device",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Checks the rows, kills the server `kills` times (restarting it each
/// time), checks them again and returns a client of the new server.
async fn same_rows_after_kill_9(
    server: &mut TestServer,
    client: &Client,
    expected: &[(i32, i64, i32)],
    kills: usize,
    what: &str,
) -> Client {
    assert_eq!(kill_rows(client).await, expected, "before the kill: {what}");
    for _ in 0..kills {
        server.kill9();
        server.restart().await;
    }
    let client = server.connect().await;
    assert_eq!(kill_rows(&client).await, expected, "{what}");
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_upserts_survive_kill_9_once() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE up_kill (time timestamptz NOT NULL, device int NOT NULL, v bigint, \
                 n int NOT NULL DEFAULT 1, PRIMARY KEY (time, device));
             SELECT create_hypertable('up_kill', 'time', chunk_time_interval => INTERVAL '1 day');
             INSERT INTO up_kill (time, device, v) VALUES
                 ('2024-01-01 00:00:00+00', 1, 10), ('2024-01-01 00:00:00+00', 2, 20),
                 ('2024-01-02 00:00:00+00', 1, 30);",
        )
        .await
        .unwrap();
    let upsert = "INSERT INTO up_kill AS t (time, device, v) VALUES ($1::timestamptz, $2, $3) \
                  ON CONFLICT (time, device) DO UPDATE SET v = t.v + $3, n = t.n + 1 WHERE t.v < $4";
    let stmt = client.prepare(upsert).await.unwrap();
    let day1 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let day3 = Utc.with_ymd_and_hms(2024, 1, 3, 0, 0, 0).unwrap();
    let run = |t: DateTime<Utc>, d: i32, v: i64, limit: i64| {
        let client = &client;
        let stmt = stmt.clone();
        async move { client.execute(&stmt, &[&t, &d, &v, &limit]).await.unwrap() }
    };
    // Replacing memtable rows (one WAL record each), a skip, an insert.
    assert_eq!(run(day1, 1, 1, 1000).await, 1);
    assert_eq!(
        run(day1, 1, 1, 0).await,
        0,
        "WHERE t.v < 0 holds for no row"
    );
    assert_eq!(run(day3, 5, 50, 1000).await, 1);
    let expected = [(1, 11, 2), (2, 20, 1), (1, 30, 1), (5, 50, 1)];
    let client = same_rows_after_kill_9(
        &mut server,
        &client,
        &expected,
        1,
        "memtable upserts replayed once",
    )
    .await;

    // Now in files (a DELETE flushes first): a rewrite; then a row in the
    // memtable and rows in files in one statement.
    client
        .execute("DELETE FROM up_kill WHERE device < 0", &[])
        .await
        .unwrap();
    let n = client
        .execute(
            "INSERT INTO up_kill AS t (time, device, v) VALUES ('2024-01-02 00:00:00+00', 1, 3) \
             ON CONFLICT (time, device) DO UPDATE SET v = t.v + EXCLUDED.v, n = t.n + 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    client
        .execute(
            "INSERT INTO up_kill (time, device, v) VALUES ('2024-01-03 00:00:00+00', 6, 60)",
            &[],
        )
        .await
        .unwrap();
    let rows = client
        .query(
            "INSERT INTO up_kill AS t (time, device, v) VALUES \
                 ('2024-01-03 00:00:00+00', 6, 6), ('2024-01-01 00:00:00+00', 2, 2), \
                 ('2024-01-04 00:00:00+00', 7, 70) \
             ON CONFLICT (time, device) DO UPDATE SET v = t.v + EXCLUDED.v, n = t.n + 1 \
             RETURNING device, v",
            &[],
        )
        .await
        .unwrap();
    let returned: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(returned, vec![(6, 66), (2, 22), (7, 70)]);
    let expected = [
        (1, 11, 2),
        (2, 22, 2),
        (1, 33, 2),
        (5, 50, 1),
        (6, 66, 2),
        (7, 70, 1),
    ];
    let client = same_rows_after_kill_9(
        &mut server,
        &client,
        &expected,
        1,
        "file rewrites are durable",
    )
    .await;

    // Upserts of replayed rows, then two crashes in a row.
    let stmt = client.prepare(upsert).await.unwrap();
    for _ in 0..3 {
        let n = client
            .execute(&stmt, &[&day3, &5i32, &1i64, &1000i64])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    let expected = [
        (1, 11, 2),
        (2, 22, 2),
        (1, 33, 2),
        (5, 53, 4),
        (6, 66, 2),
        (7, 70, 1),
    ];
    same_rows_after_kill_9(
        &mut server,
        &client,
        &expected,
        2,
        "replayed once after two crashes",
    )
    .await;
}
