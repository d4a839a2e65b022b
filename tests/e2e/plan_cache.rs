//! Queries a session sends again with other constants reuse the plan of
//! their shape (tempora-sql/src/plan_cache.rs): they must answer exactly as a
//! fresh plan would, through settings changes, DDL, new rows and bad input.

use tokio_postgres::Client;

use crate::support::{rows_text as rows, TestServer};

/// A server that logs each reuse.
async fn server() -> TestServer {
    TestServer::start_args(&[
        "--trust-loopback",
        "--log-level",
        "info,tempora_sql::plan_cache=debug",
    ])
    .await
}

fn reuses(server: &TestServer) -> usize {
    server.log().matches("query plan reused").count()
}

async fn one(client: &Client, sql: &str) -> String {
    rows(client, sql).await[0][0].clone().unwrap_or_default()
}

/// A server with the table `m`: three days of hourly rows, the host and
/// value given by the hour of the day.
async fn with_table() -> (TestServer, Client) {
    let server = server().await;
    let client = server.connect().await;
    setup(&client).await;
    (server, client)
}

async fn setup(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE m (time timestamptz NOT NULL, host text, v double precision, n int);
             SELECT create_hypertable('m', 'time', chunk_time_interval => interval '1 day');
             INSERT INTO m SELECT t, 'h' || (extract(hour FROM t)::int % 3), extract(hour FROM t), 1
               FROM generate_series(timestamptz '2024-01-01 00:00+00', timestamptz '2024-01-03 23:00+00', interval '1 hour') t;",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_shape_with_other_constants_reuses_its_plan() {
    let (server, client) = with_table().await;
    let before = reuses(&server);
    let q = |host: &str, from: &str, to: &str, v: &str| {
        format!(
            "SELECT count(*), sum(v) FROM m WHERE host IN ('{host}') AND time >= '{from}' \
             AND time < '{to}' AND v > {v}"
        )
    };
    let cases = [
        (
            "h0",
            "2024-01-01 00:00+00",
            "2024-01-02 00:00+00",
            "0",
            "7|84",
        ),
        (
            "h1",
            "2024-01-01 00:00+00",
            "2024-01-02 00:00+00",
            "0",
            "8|92",
        ),
        (
            "h1",
            "2024-01-02 00:00+00",
            "2024-01-04 00:00+00",
            "10",
            "8|140",
        ),
        // No row in range; a number with a fraction; an exponent.
        ("h2", "2025-01-01", "2025-01-02", "0", "0|"),
        ("h2", "2024-01-01", "2024-01-04", "20.5", "3|69"),
        ("h2", "2024-01-01", "2024-01-04", "2e1", "3|69"),
    ];
    for (host, from, to, v, expected) in cases {
        let got = rows(&client, &q(host, from, to, v)).await;
        let got: Vec<String> = got[0]
            .iter()
            .map(|c| c.clone().unwrap_or_default())
            .collect();
        assert_eq!(got.join("|"), expected, "{host} {from} {to} {v}");
    }
    assert_eq!(
        reuses(&server) - before,
        cases.len() - 1,
        "{}",
        server.log()
    );

    // BETWEEN, and constants on the left.
    for (lo, hi, expected) in [("3", "5", "9"), ("20", "23", "12")] {
        let got = one(
            &client,
            &format!("SELECT count(*) FROM m WHERE v BETWEEN {lo} AND {hi}"),
        )
        .await;
        assert_eq!(got, expected);
        let got = one(
            &client,
            &format!("SELECT count(*) FROM m WHERE {lo} <= v AND {hi} >= v"),
        )
        .await;
        assert_eq!(got, expected);
    }

    // Rows written after the plan was made are read.
    let count = "SELECT count(*) FROM m WHERE time >= '2024-01-05' AND time < '2024-01-06'";
    assert_eq!(one(&client, count).await, "0");
    client
        .batch_execute("INSERT INTO m VALUES ('2024-01-05 12:00+00', 'h0', 1, 1)")
        .await
        .unwrap();
    assert_eq!(one(&client, count).await, "1");
    client.batch_execute("CHECKPOINT").await.unwrap();
    assert_eq!(one(&client, count).await, "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_plan_follows_settings_and_schema_changes() {
    let (_server, client) = with_table().await;

    // A timestamp without a zone is read in the session's TimeZone.
    let q = "SELECT count(*) FROM m WHERE time < '2024-01-01 05:00'";
    assert_eq!(one(&client, q).await, "5");
    client
        .batch_execute("SET TimeZone = 'Asia/Tokyo'")
        .await
        .unwrap();
    // 05:00 in Tokyo is 20:00 UTC the day before: no row.
    assert_eq!(one(&client, q).await, "0");
    assert_eq!(
        one(
            &client,
            "SELECT count(*) FROM m WHERE time < '2024-01-01 12:00'"
        )
        .await,
        "3"
    );
    client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();

    // A new column is seen by SELECT * of a shape planned before it.
    let star = "SELECT * FROM m WHERE n = 1 AND time = '2024-01-01 01:00+00'";
    assert_eq!(rows(&client, star).await[0].len(), 4);
    client
        .batch_execute("ALTER TABLE m ADD COLUMN note text DEFAULT 'x'")
        .await
        .unwrap();
    let got = rows(&client, star).await;
    assert_eq!(got[0].len(), 5);
    assert_eq!(got[0][4].as_deref(), Some("x"));

    // A dropped and recreated table of another layout.
    let q = "SELECT count(*) FROM t WHERE a = 1";
    client
        .batch_execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1), (2)")
        .await
        .unwrap();
    assert_eq!(one(&client, q).await, "2");
    client
        .batch_execute(
            "DROP TABLE t; CREATE TABLE t (b text, a bigint); INSERT INTO t VALUES ('z', 1)",
        )
        .await
        .unwrap();
    assert_eq!(one(&client, q).await, "1");

    // Inside a block that created a table, the block's table is read.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("DROP TABLE t; CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1), (1)")
        .await
        .unwrap();
    assert_eq!(one(&client, q).await, "3");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(one(&client, q).await, "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn constants_a_plan_cannot_take_answer_as_without_it() {
    let (_server, client) = with_table().await;
    let q = |n: &str| format!("SELECT count(*) FROM m WHERE n = {n}");
    assert_eq!(one(&client, &q("1")).await, "72");
    // A fraction against an integer column compares as a number.
    assert_eq!(one(&client, &q("1.5")).await, "0");
    assert_eq!(one(&client, &q("1.0")).await, "72");
    // Beyond the column's type.
    assert_eq!(one(&client, &q("9999999999")).await, "0");
    assert_eq!(one(&client, &q("1")).await, "72");

    // Bad input still raises PostgreSQL's error, and the session goes on.
    let q = |t: &str| format!("SELECT count(*) FROM m WHERE time > '{t}'");
    assert_eq!(one(&client, &q("2024-01-03 20:00+00")).await, "3");
    let err = client.simple_query(&q("not a time")).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22007", "{err}");
    assert_eq!(one(&client, &q("2024-01-03 21:00+00")).await, "2");

    // now() is read when the statement runs, not when a plan was made.
    let q = "SELECT count(*) FROM m WHERE time > now() - interval '1 day' AND n = 1";
    assert_eq!(one(&client, q).await, "0");
    client
        .batch_execute("INSERT INTO m VALUES (now() - interval '1 hour', 'h0', 1, 1)")
        .await
        .unwrap();
    assert_eq!(one(&client, q).await, "1");
}

/// Drivers send a statement to be parsed again for every execution: the
/// plan of the same text with the same declared types is reused, while
/// nothing it depends on changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_statement_parsed_again_reuses_its_plan() {
    let (server, client) = with_table().await;
    let parsed = |s: &TestServer| s.log().matches("parsed statement reused").count();
    let before = parsed(&server);
    let sql = "SELECT count(*) FROM m WHERE host = $1 AND v >= $2";
    for (host, v, expected) in [("h0", 0.0f64, 24i64), ("h1", 10.0, 15), ("h2", 23.0, 3)] {
        let row = client.query_one(sql, &[&host, &v]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), expected, "{host} {v}");
    }
    assert_eq!(parsed(&server) - before, 2, "{}", server.log());

    // After a schema change the statement is planned again.
    let sql = "SELECT * FROM m WHERE n = $1 ORDER BY time LIMIT 1";
    assert_eq!(client.query_one(sql, &[&1i32]).await.unwrap().len(), 4);
    client
        .batch_execute("ALTER TABLE m ADD COLUMN note text")
        .await
        .unwrap();
    assert_eq!(client.query_one(sql, &[&1i32]).await.unwrap().len(), 5);
    // Catalog relations are read afresh each time.
    let sql = "SELECT count(*) FROM pg_class WHERE relname = $1";
    assert_eq!(
        client
            .query_one(sql, &[&"t2"])
            .await
            .unwrap()
            .get::<_, i64>(0),
        0
    );
    client
        .batch_execute("CREATE TABLE t2 (a int)")
        .await
        .unwrap();
    assert_eq!(
        client
            .query_one(sql, &[&"t2"])
            .await
            .unwrap()
            .get::<_, i64>(0),
        1
    );
}

/// A session plans with one copy of DataFusion's state
/// (tempora-sql/src/df_state.rs): each statement still has its own `now()`,
/// and a new `TimeZone` reaches the statements after it.
#[tokio::test(flavor = "multi_thread")]
async fn each_statement_has_its_own_now_and_sees_the_time_zone() {
    let server = server().await;
    let client = server.connect().await;
    let first = one(&client, "SELECT now()::text").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = one(&client, "SELECT now()::text").await;
    assert!(second > first, "{first} then {second}");
    assert_eq!(
        one(&client, "SELECT (timestamptz '2024-01-01 12:00+00')::text").await,
        "2024-01-01 12:00:00+00"
    );
    client
        .batch_execute("SET TimeZone = 'Asia/Tokyo'")
        .await
        .unwrap();
    assert_eq!(
        one(&client, "SELECT (timestamptz '2024-01-01 12:00+00')::text").await,
        "2024-01-01 21:00:00+09"
    );
    assert_eq!(
        one(
            &client,
            "SELECT date_trunc('day', timestamptz '2024-01-01 20:00+00')::text"
        )
        .await,
        "2024-01-02 00:00:00+09"
    );
    let tokyo = one(&client, "SELECT now()::text").await;
    assert!(tokyo.ends_with("+09"), "{tokyo}");
}

/// A shape that reads few rows keeps one physical plan, whose scans find
/// their chunks, files and unflushed rows when they run
/// (tempora-query/src/late_scan.rs): every execution answers as the
/// ordinary plan of the same query does.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_physical_plan_answers_as_a_fresh_plan() {
    let server = TestServer::start_args(&[
        "--trust-loopback",
        "--log-level",
        "info,tempora_sql::plan_cache=debug",
    ])
    .await;
    let client = server.connect().await;
    setup(&client).await;
    let kept = |s: &TestServer| s.log().matches("kept physical plan run").count();
    let select = "SELECT time_bucket('6 hours', time)::text AS b, max(v)::text, count(*)::text \
                  FROM m WHERE";
    let tail = "GROUP BY 1 ORDER BY 1";
    // Through Parse/Bind: planned the ordinary way every time.
    let fresh = |hosts: usize| {
        let list: Vec<String> = (1..=hosts).map(|i| format!("${i}")).collect();
        format!(
            "{select} host IN ({}) AND time >= ${}::text::timestamptz \
             AND time < ${}::text::timestamptz {tail}",
            list.join(", "),
            hosts + 1,
            hosts + 2
        )
    };
    let check = |hosts: Vec<&'static str>, from: &'static str, to: &'static str| {
        let client = &client;
        let fresh = fresh(hosts.len());
        async move {
            let list: Vec<String> = hosts.iter().map(|h| format!("'{h}'")).collect();
            let inline = format!(
                "{select} host IN ({}) AND time >= '{from}' AND time < '{to}' {tail}",
                list.join(", ")
            );
            let got = rows(client, &inline).await;
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
            for h in &hosts {
                params.push(h);
            }
            params.push(&from);
            params.push(&to);
            let want: Vec<Vec<Option<String>>> = client
                .query(&fresh, &params)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..3).map(|i| r.get::<_, Option<String>>(i)).collect())
                .collect();
            assert_eq!(got, want, "{inline}");
            got.len()
        }
    };
    let before = kept(&server);
    let windows = [
        ("2024-01-01 03:00:00+00", "2024-01-01 17:00:00+00"),
        // Across a chunk boundary.
        ("2024-01-01 20:00:00+00", "2024-01-02 09:30:00+00"),
        ("2024-01-01 00:00:00+00", "2024-01-04 00:00:00+00"),
        // No chunk.
        ("2025-01-01 00:00:00+00", "2025-01-02 00:00:00+00"),
    ];
    let mut runs = 0;
    let mut answered = 0;
    for host in ["h0", "h1", "h2", "nope"] {
        for (from, to) in windows {
            answered += check(vec![host], from, to).await;
            runs += 1;
        }
    }
    assert!(answered > 20, "{answered} rows in all");
    for (from, to) in windows {
        check(vec!["h0", "h2"], from, to).await;
        runs += 1;
    }
    // Two shapes, each planned physically once, on its first run.
    assert_eq!(kept(&server) - before, runs, "{}", server.log());

    // A constant inside an aggregate's FILTER: the plan's own column names
    // hold its `$n`.
    for (host, above) in [("h0", "3"), ("h1", "10"), ("h2", "100")] {
        let inline =
            format!("SELECT count(*) FILTER (WHERE v > {above}) AS c FROM m WHERE host = '{host}'");
        let fresh = "SELECT count(*) FILTER (WHERE v > $2::text::float8) AS c FROM m \
                     WHERE host = $1";
        let want: i64 = client
            .query_one(fresh, &[&host, &above])
            .await
            .unwrap()
            .get(0);
        assert_eq!(one(&client, &inline).await, want.to_string(), "{inline}");
    }

    // Rows written after the plan was made: unflushed, then in a file.
    let day5 = ("2024-01-05 00:00:00+00", "2024-01-06 00:00:00+00");
    assert_eq!(check(vec!["h1"], day5.0, day5.1).await, 0);
    client
        .batch_execute(
            "INSERT INTO m VALUES ('2024-01-05 12:00+00', 'h1', 41, 1), \
             ('2024-01-05 13:00+00', 'h1', 42, 1), ('2024-01-05 13:00+00', 'h0', 43, 1)",
        )
        .await
        .unwrap();
    assert_eq!(check(vec!["h1"], day5.0, day5.1).await, 1);
    assert_eq!(check(vec!["h0", "h1"], day5.0, day5.1).await, 1);
    client.batch_execute("CHECKPOINT").await.unwrap();
    assert_eq!(check(vec!["h1"], day5.0, day5.1).await, 1);
    assert_eq!(
        rows(
            &client,
            "SELECT max(v), count(*) FROM m WHERE host IN ('h1') AND time >= '2024-01-05' \
             AND time < '2024-01-06'"
        )
        .await,
        vec![vec![Some("42".to_string()), Some("2".to_string())]]
    );
}
