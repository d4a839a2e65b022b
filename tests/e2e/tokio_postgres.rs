//! The server as a Rust driver (tokio-postgres) sees it: simple and extended
//! protocol, binary parameters and results, prepared statements, errors,
//! parameter status and transactions.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, SimpleQueryMessage, SimpleQueryRow};

use crate::support::pgtext::PgNumeric;
use crate::support::TestServer;

fn rows_of(messages: Vec<SimpleQueryMessage>) -> Vec<SimpleQueryRow> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn command_counts(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_query_returns_postgres_text() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.simple_query("SET timezone = 'UTC'").await.unwrap();

    let messages = client
        .simple_query(
            "SELECT true AS b, false AS f, 1::int2 AS i2, -2::int4 AS i4, 3000000000::int8 AS i8, \
                    1.5::float4 AS f4, 2.25::float8 AS f8, 'hello'::text AS t, 'vc'::varchar AS vc, \
                    '2024-01-01 12:34:56.789+00'::timestamptz AS tz, \
                    '2024-01-01 12:34:56'::timestamp AS ts, '2024-01-02'::date AS d, \
                    12.5::numeric(10,2) AS n, NULL::text AS nul, '' AS empty",
        )
        .await
        .unwrap();
    let rows = rows_of(messages);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    let names: Vec<&str> = r.columns().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        ["b", "f", "i2", "i4", "i8", "f4", "f8", "t", "vc", "tz", "ts", "d", "n", "nul", "empty"]
    );
    let values: Vec<Option<&str>> = (0..r.len()).map(|i| r.get(i)).collect();
    assert_eq!(
        values,
        [
            Some("t"),
            Some("f"),
            Some("1"),
            Some("-2"),
            Some("3000000000"),
            Some("1.5"),
            Some("2.25"),
            Some("hello"),
            Some("vc"),
            Some("2024-01-01 12:34:56.789+00"),
            Some("2024-01-01 12:34:56"),
            Some("2024-01-02"),
            Some("12.50"),
            None,
            Some(""),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_query_with_several_statements() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let messages = client
        .simple_query(
            "CREATE TABLE tp_multi (v INTEGER); \
             INSERT INTO tp_multi VALUES (1), (2), (3); \
             SELECT v FROM tp_multi ORDER BY v; \
             SELECT sum(v) FROM tp_multi",
        )
        .await
        .unwrap();
    // One CommandComplete per statement: CREATE, INSERT 3, SELECT 3, SELECT 1.
    assert_eq!(command_counts(&messages), [0, 3, 3, 1]);
    let rows = rows_of(messages);
    let values: Vec<&str> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(values, ["1", "2", "3", "6"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn extended_query_binary_results() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let row = client
        .query_one(
            "SELECT true, 7::int2, -123456::int4, 1099511627776::int8, 1.5::float4, \
                    -2.25::float8, 'héllo'::text, 'vc'::varchar, \
                    '2024-01-01 12:34:56.789+00'::timestamptz, \
                    '2024-01-01 12:34:56.5'::timestamp, '2024-02-29'::date",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i16>(1), 7);
    assert_eq!(row.get::<_, i32>(2), -123456);
    assert_eq!(row.get::<_, i64>(3), 1 << 40);
    assert_eq!(row.get::<_, f32>(4), 1.5);
    assert_eq!(row.get::<_, f64>(5), -2.25);
    assert_eq!(row.get::<_, String>(6), "héllo");
    assert_eq!(row.get::<_, String>(7), "vc");
    assert_eq!(
        row.get::<_, DateTime<Utc>>(8),
        utc(2024, 1, 1, 12, 34, 56) + chrono::Duration::milliseconds(789)
    );
    assert_eq!(
        row.get::<_, NaiveDateTime>(9),
        NaiveDate::from_ymd_opt(2024, 1, 1)
            .unwrap()
            .and_hms_milli_opt(12, 34, 56, 500)
            .unwrap()
    );
    assert_eq!(
        row.get::<_, NaiveDate>(10),
        NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
    );

    // NUMERIC: binary decoding and the text cast agree.
    let row = client
        .query_one(
            // numeric without a typmod is stored with scale 10 for now and prints
            // trailing zeros, so the values here carry an explicit scale.
            "SELECT 12.5::numeric(10,2), (12.5::numeric(10,2))::text, -123456.789::numeric(12,3), \
                    0.00012::numeric(10,5)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, PgNumeric>(0), PgNumeric("12.50".into()));
    assert_eq!(row.get::<_, String>(1), "12.50");
    assert_eq!(row.get::<_, PgNumeric>(2), PgNumeric("-123456.789".into()));
    assert_eq!(row.get::<_, PgNumeric>(3), PgNumeric("0.00012".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn extended_query_binary_parameters_round_trip() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let tz = utc(2024, 3, 10, 8, 15, 0) + chrono::Duration::microseconds(123_456);
    let ts = NaiveDate::from_ymd_opt(1999, 12, 31)
        .unwrap()
        .and_hms_opt(23, 59, 59)
        .unwrap();
    let d = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let row = client
        .query_one(
            "SELECT $1::bool, $2::int2, $3::int4, $4::int8, $5::float4, $6::float8, \
                    $7::text, $8::varchar, $9::timestamptz, $10::timestamp, $11::date",
            &[
                &false,
                &-7i16,
                &i32::MAX,
                &i64::MIN,
                &0.5f32,
                &1e20f64,
                &"tab\there",
                &"varchar value",
                &tz,
                &ts,
                &d,
            ],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i16>(1), -7);
    assert_eq!(row.get::<_, i32>(2), i32::MAX);
    assert_eq!(row.get::<_, i64>(3), i64::MIN);
    assert_eq!(row.get::<_, f32>(4), 0.5);
    assert_eq!(row.get::<_, f64>(5), 1e20);
    assert_eq!(row.get::<_, String>(6), "tab\there");
    assert_eq!(row.get::<_, String>(7), "varchar value");
    assert_eq!(row.get::<_, DateTime<Utc>>(8), tz);
    assert_eq!(row.get::<_, NaiveDateTime>(9), ts);
    assert_eq!(row.get::<_, NaiveDate>(10), d);

    // Parameters in a WHERE clause, compared against a column.
    let rows = client
        .query(
            "SELECT n FROM (VALUES (1), (2), (3), (4)) AS v(n) WHERE n > $1 ORDER BY n",
            &[&2i32],
        )
        .await
        .unwrap();
    let got: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, [3, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_parameters_insert_into_hypertable() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE tp_ht (time TIMESTAMPTZ NOT NULL, device TEXT, value DOUBLE PRECISION)",
        )
        .await
        .unwrap();
    let created: bool = client
        .query_one(
            "SELECT created FROM create_hypertable('tp_ht', 'time')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(created);

    let rows: [(DateTime<Utc>, Option<&str>, Option<f64>); 4] = [
        (utc(2024, 1, 1, 0, 0, 0), Some("a"), Some(20.5)),
        (utc(2024, 1, 2, 0, 0, 0), Some("b"), None),
        (utc(2024, 1, 3, 0, 0, 0), None, Some(-1.25)),
        (utc(2024, 1, 10, 6, 30, 0), Some("a"), Some(1e-7)),
    ];
    for (t, dev, v) in &rows {
        let n = client
            .execute("INSERT INTO tp_ht VALUES ($1, $2, $3)", &[t, dev, v])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    // Column list in another order, parameters typed from the target columns.
    let n = client
        .execute(
            "INSERT INTO tp_ht (value, time) VALUES ($1, $2)",
            &[&99.0f64, &utc(2024, 2, 1, 0, 0, 0)],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);

    let got = client
        .query("SELECT time, device, value FROM tp_ht ORDER BY time", &[])
        .await
        .unwrap();
    let got: Vec<(DateTime<Utc>, Option<String>, Option<f64>)> =
        got.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let mut expected: Vec<(DateTime<Utc>, Option<String>, Option<f64>)> = rows
        .iter()
        .map(|(t, d, v)| (*t, d.map(str::to_string), *v))
        .collect();
    expected.push((utc(2024, 2, 1, 0, 0, 0), None, Some(99.0)));
    assert_eq!(got, expected);

    let nulls: i64 = client
        .query_one(
            "SELECT count(*) FROM tp_ht WHERE value IS NULL OR device IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(nulls, 3);

    // A timestamptz parameter in a range predicate.
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM tp_ht WHERE time >= $1 AND time < $2",
            &[&utc(2024, 1, 2, 0, 0, 0), &utc(2024, 1, 10, 0, 0, 0)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn prepared_statement_reuse() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE tp_prep (time TIMESTAMPTZ NOT NULL, v INTEGER)")
        .await
        .unwrap();
    client
        .query_one("SELECT create_hypertable('tp_prep', 'time')", &[])
        .await
        .unwrap();

    let insert = client
        .prepare("INSERT INTO tp_prep (time, v) VALUES ($1, $2)")
        .await
        .unwrap();
    let base = utc(2024, 1, 1, 0, 0, 0);
    for i in 0..100i32 {
        let t = base + chrono::Duration::hours(i as i64);
        let n = client.execute(&insert, &[&t, &i]).await.unwrap();
        assert_eq!(n, 1, "insert #{i}");
    }

    let row = client
        .query_one(
            "SELECT count(*), sum(v), min(time), max(time) FROM tp_prep",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 100);
    assert_eq!(row.get::<_, i64>(1), 4950);
    assert_eq!(row.get::<_, DateTime<Utc>>(2), base);
    assert_eq!(
        row.get::<_, DateTime<Utc>>(3),
        base + chrono::Duration::hours(99)
    );

    let select = client
        .prepare("SELECT v FROM tp_prep WHERE time = $1")
        .await
        .unwrap();
    for i in [0i32, 17, 99] {
        let t = base + chrono::Duration::hours(i as i64);
        let rows = client.query(&select, &[&t]).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i32>(0), i);
    }
    // NULL parameter: matches nothing, but is accepted.
    let rows = client
        .query(&select, &[&None::<DateTime<Utc>>])
        .await
        .unwrap();
    assert!(rows.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn null_parameters() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let row = client
        .query_one(
            "SELECT $1::int4 IS NULL, $2::text IS NULL, $3::timestamptz IS NULL, $4::float8",
            &[
                &None::<i32>,
                &None::<String>,
                &None::<DateTime<Utc>>,
                &None::<f64>,
            ],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
    assert!(row.get::<_, bool>(2));
    assert_eq!(row.get::<_, Option<f64>>(3), None);
}

/// Types declared in Parse are the parameters' types, as in PostgreSQL,
/// also where the statement alone would suggest another type or none.
#[tokio::test(flavor = "multi_thread")]
async fn declared_parameter_types_are_kept() {
    use tokio_postgres::types::Type;
    let server = TestServer::start().await;
    let client = server.connect().await;
    let t0 = utc(2024, 3, 15, 12, 0, 0);

    let stmt = client
        .prepare_typed(
            "SELECT $1 + interval '1 day', pg_typeof($1)::text",
            &[Type::TIMESTAMPTZ],
        )
        .await
        .unwrap();
    assert_eq!(stmt.params(), &[Type::TIMESTAMPTZ]);
    let row = client.query_one(&stmt, &[&t0]).await.unwrap();
    assert_eq!(
        row.get::<_, DateTime<Utc>>(0),
        t0 + chrono::Duration::days(1)
    );
    assert_eq!(row.get::<_, String>(1), "timestamp with time zone");

    // Alone, `$1 + 1` would make $1 an integer.
    let stmt = client
        .prepare_typed("SELECT $1 + 1", &[Type::DATE])
        .await
        .unwrap();
    assert_eq!(stmt.params(), &[Type::DATE]);
    assert_eq!(stmt.columns()[0].type_(), &Type::DATE);
    let day = NaiveDate::from_ymd_opt(2024, 2, 28).unwrap();
    let row = client.query_one(&stmt, &[&day]).await.unwrap();
    assert_eq!(row.get::<_, NaiveDate>(0), day.succ_opt().unwrap());

    // Alone, `$1 = $2` types neither.
    let stmt = client
        .prepare_typed("SELECT $1 = $2", &[Type::INT4, Type::FLOAT8])
        .await
        .unwrap();
    assert_eq!(stmt.params(), &[Type::INT4, Type::FLOAT8]);
    let row = client.query_one(&stmt, &[&2i32, &2.0f64]).await.unwrap();
    assert!(row.get::<_, bool>(0));

    // A declared type that agrees with the statement's changes nothing;
    // an undeclared one is still inferred.
    let stmt = client
        .prepare_typed(
            "SELECT $1::timestamptz + interval '1 hour', $2 + 1, $3 + 1",
            &[Type::TIMESTAMPTZ],
        )
        .await
        .unwrap();
    assert_eq!(stmt.params(), &[Type::TIMESTAMPTZ, Type::INT4, Type::INT4]);
    let row = client
        .query_one(&stmt, &[&t0, &1i32, &41i32])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, DateTime<Utc>>(0),
        t0 + chrono::Duration::hours(1)
    );
    assert_eq!(row.get::<_, i32>(2), 42);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_sqlstate_and_the_connection_survives() {
    let server = TestServer::start().await;
    let client = server.connect().await;

    let err = client.query("SELECT * FROM nope", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err:?}");
    let db = err.as_db_error().unwrap();
    assert_eq!(db.message(), "relation \"nope\" does not exist");
    assert_eq!(db.severity(), "ERROR");

    let err = client.simple_query("SELECT * FROM nope").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err:?}");

    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    assert!(!client.is_closed());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_version_parameter_status_is_15() {
    let server = TestServer::start().await;
    let (client, connection) = server.config().connect(NoTls).await.unwrap();
    let version = connection
        .parameter("server_version")
        .expect("the server must send a server_version ParameterStatus")
        .to_string();
    for name in [
        "server_encoding",
        "client_encoding",
        "DateStyle",
        "integer_datetimes",
    ] {
        assert!(
            connection.parameter(name).is_some(),
            "missing ParameterStatus {name}"
        );
    }
    assert_eq!(connection.parameter("client_encoding"), Some("UTF8"));
    assert_eq!(connection.parameter("integer_datetimes"), Some("on"));
    tokio::spawn(connection);
    let major: u32 = version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("unparsable server_version {version:?}"));
    assert_eq!(major, 15, "server_version {version:?}");
    drop(client);
}

#[tokio::test(flavor = "multi_thread")]
async fn show_server_version_is_15() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let v: String = client
        .query_one("SHOW server_version", &[])
        .await
        .unwrap()
        .get(0);
    assert!(v.starts_with("15"), "SHOW server_version = {v:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_through_simple_query() {
    // Transaction blocks: a block's INSERTs are applied together at COMMIT
    // and dropped by ROLLBACK; statements not yet transactional (DELETE) are
    // refused with 0A000, and the failed block recovers with ROLLBACK as in PostgreSQL.
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE tp_tx (time TIMESTAMPTZ NOT NULL, v INTEGER)")
        .await
        .unwrap();
    client
        .simple_query("INSERT INTO tp_tx VALUES ('2024-01-01 00:00:00+00', 1)")
        .await
        .unwrap();

    let messages = client
        .simple_query("BEGIN; SELECT count(*) FROM tp_tx; COMMIT")
        .await
        .unwrap();
    assert_eq!(command_counts(&messages), [0, 1, 0]);

    // Rolled back: not applied; another connection never saw it.
    let other = server.connect().await;
    client.simple_query("BEGIN").await.unwrap();
    client
        .simple_query("INSERT INTO tp_tx VALUES ('2024-01-01 00:01:00+00', 100)")
        .await
        .unwrap();
    let seen_inside = client
        .query_one("SELECT count(*) FROM tp_tx", &[])
        .await
        .unwrap();
    assert_eq!(seen_inside.get::<_, i64>(0), 2);
    let seen_outside = other
        .query_one("SELECT count(*) FROM tp_tx", &[])
        .await
        .unwrap();
    assert_eq!(seen_outside.get::<_, i64>(0), 1);
    client.simple_query("ROLLBACK").await.unwrap();

    client.simple_query("BEGIN").await.unwrap();
    let err = client
        .simple_query("TRUNCATE tp_tx RESTART IDENTITY")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("database error");
    assert_eq!(db.code().code(), "0A000");
    assert_eq!(
        db.message(),
        "TRUNCATE ... RESTART IDENTITY is not supported"
    );
    // The block is now aborted: 25P02 until ROLLBACK.
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(
        err.as_db_error().expect("database error").code().code(),
        "25P02"
    );
    client.simple_query("ROLLBACK").await.unwrap();

    let row = client
        .query_one("SELECT count(*), sum(v) FROM tp_tx", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, i64>(1), 1);
}

/// A gapfill query prepared once with its bounds as parameters (the usual
/// dashboard shape), run for two windows.
#[tokio::test(flavor = "multi_thread")]
async fn gapfill_with_parameters_in_where_and_arguments() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE gp (time timestamptz NOT NULL, v float8);
             SELECT create_hypertable('gp', by_range('time', INTERVAL '1 day'));
             INSERT INTO gp VALUES ('2024-01-02 01:00:00+00', 1), ('2024-01-02 13:00:00+00', 3),
                                   ('2024-01-03 13:00:00+00', 7);",
        )
        .await
        .unwrap();
    let ts = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    for sql in [
        "SELECT time_bucket_gapfill('12 hours', time) AS b, locf(avg(v)), interpolate(avg(v)) \
         FROM gp WHERE time >= $1 AND time < $2 GROUP BY b ORDER BY b",
        "SELECT time_bucket_gapfill('12 hours', time, $1, $2) AS b, locf(avg(v)), interpolate(avg(v)) \
         FROM gp WHERE time >= $1 AND time < $2 GROUP BY b ORDER BY b",
    ] {
        let stmt = client.prepare(sql).await.unwrap();
        let rows = client
            .query(&stmt, &[&ts("2024-01-02T00:00:00Z"), &ts("2024-01-04T00:00:00Z")])
            .await
            .unwrap();
        let got: Vec<(chrono::DateTime<chrono::Utc>, Option<f64>, Option<f64>)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(
            got,
            vec![
                (ts("2024-01-02T00:00:00Z"), Some(1.0), Some(1.0)),
                (ts("2024-01-02T12:00:00Z"), Some(3.0), Some(3.0)),
                (ts("2024-01-03T00:00:00Z"), Some(3.0), Some(5.0)),
                (ts("2024-01-03T12:00:00Z"), Some(7.0), Some(7.0)),
            ],
            "{sql}"
        );
        // Reused with another window: before the data, only filled rows.
        let rows = client
            .query(&stmt, &[&ts("2023-12-01T00:00:00Z"), &ts("2023-12-02T00:00:00Z")])
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.get::<_, Option<f64>>(1).is_none()));
    }
}

/// A scalar subquery's column takes the name of the subquery's column, as
/// in PostgreSQL, whether or not it aggregates or looks at the outer row.
#[tokio::test(flavor = "multi_thread")]
async fn scalar_subquery_columns_are_named_after_their_column() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE sq_h (id int, a boolean); CREATE TABLE sq_r (hid int, value float8);
             INSERT INTO sq_h VALUES (1, true); INSERT INTO sq_r VALUES (1, 2.5)",
        )
        .await
        .unwrap();
    let stmt = client
        .prepare(
            "SELECT (SELECT sq_r.value FROM sq_r WHERE sq_r.hid = sq_h.id), \
             (SELECT sq_r.value FROM sq_r WHERE sq_r.hid = sq_h.id AND sq_h.a), \
             (SELECT max(sq_r.value) FROM sq_r WHERE sq_r.hid = sq_h.id), \
             (SELECT 1 AS one) FROM sq_h",
        )
        .await
        .unwrap();
    let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["value", "value", "max", "one"]);
    let row = client.query_one(&stmt, &[]).await.unwrap();
    assert_eq!(row.get::<_, f64>(0), 2.5);
    assert_eq!(row.get::<_, f64>(1), 2.5);
}

/// A select list may repeat names and expressions; the client sees
/// PostgreSQL's names, repeats included (probe 23's `avg, sum, avg`).
#[tokio::test(flavor = "multi_thread")]
async fn repeated_select_items_keep_postgres_names() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE rep_t (x int, s text); INSERT INTO rep_t VALUES (1, 'a'), (2, 'b'), (2, 'b')",
        )
        .await
        .unwrap();
    for (sql, expected) in [
        (
            "SELECT avg(x), sum(x), avg(x::float8) FROM (VALUES (1), (2), (2)) v(x)",
            &["avg", "sum", "avg"][..],
        ),
        (
            "SELECT x, x, x + 1, x + 1 FROM rep_t",
            &["x", "x", "?column?", "?column?"],
        ),
        (
            "SELECT x AS a, x AS A, count(*), count(*) FROM rep_t GROUP BY x",
            &["a", "a", "count", "count"],
        ),
        ("SELECT x, * FROM rep_t", &["x", "x", "s"]),
        (
            "SELECT rep_t.x, x::text, count(*) FROM rep_t GROUP BY x, x::text",
            &["x", "x", "count"],
        ),
        ("SELECT * FROM (SELECT x, x FROM rep_t) q", &["x", "x"]),
        ("SELECT X::float8 FROM rep_t", &["x"]),
    ] {
        let stmt = client.prepare(sql).await.unwrap();
        let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
        assert_eq!(names, expected, "{sql}");
        // The simple protocol names them alike.
        let messages = client.simple_query(sql).await.unwrap();
        let described = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::RowDescription(cols) => Some(
                cols.iter()
                    .map(|c| c.name().to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        });
        let expected_owned: Vec<String> = expected.iter().map(|n| n.to_string()).collect();
        assert_eq!(described, Some(expected_owned), "{sql}");
    }
    // avg of an integer is numeric, of a float double precision.
    let row = client
        .query_one(
            "SELECT avg(x), avg(x)::text, sum(x), avg(x::float8) FROM (VALUES (1), (2), (2)) v(x)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.columns()[0].type_(),
        &tokio_postgres::types::Type::NUMERIC
    );
    assert_eq!(row.get::<_, &str>(1), "1.6666666666666667");
    assert_eq!(row.get::<_, f64>(3), 5.0 / 3.0);
}

/// A result large enough to be printed on several cores arrives whole, in
/// order, every value as PostgreSQL prints it (text and binary results).
#[tokio::test(flavor = "multi_thread")]
async fn large_results_arrive_in_order() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let sql = "SELECT g, g * 0.5::float8 AS half, g::float4 / 4::float4 AS quarter, \
               'row ' || g AS label FROM generate_series(1, 300000) g ORDER BY g";
    let rows = rows_of(client.simple_query(sql).await.unwrap());
    assert_eq!(rows.len(), 300_000);
    for (i, r) in rows.iter().enumerate() {
        let g = i as i64 + 1;
        assert_eq!(r.get(0), Some(g.to_string().as_str()));
        let half = if g % 2 == 0 {
            (g / 2).to_string()
        } else {
            format!("{}.5", g / 2)
        };
        assert_eq!(r.get(1), Some(half.as_str()), "row {g}");
        let quarter = (g as f32 / 4.0).to_string();
        assert_eq!(r.get(2), Some(quarter.as_str()), "row {g}");
        assert_eq!(r.get(3), Some(format!("row {g}").as_str()));
    }
    let rows = client.query(sql, &[]).await.unwrap();
    assert_eq!(rows.len(), 300_000);
    for (i, r) in rows.iter().enumerate() {
        let g = i as i64 + 1;
        assert_eq!(r.get::<_, i64>(0), g);
        assert_eq!(r.get::<_, f64>(1), g as f64 * 0.5);
    }
}

/// Rows are sent as the plan computes them: an error after the first
/// batches still ends the statement with its SQLSTATE, fails an open block
/// as any error does, and the session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn an_error_after_the_first_rows_ends_the_statement() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    // generate_series yields 8,192 rows a batch: the division by zero is
    // in one of the 25 batches, most of which print without error.
    let sql = "SELECT 100000 / (g - 150000) FROM generate_series(1, 200000) g";
    for simple in [true, false] {
        let err = if simple {
            client.simple_query(sql).await.unwrap_err()
        } else {
            client.query(sql, &[]).await.unwrap_err()
        };
        assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO), "{err}");
        let rows = rows_of(client.simple_query("SELECT 1").await.unwrap());
        assert_eq!(rows[0].get(0), Some("1"));

        client.batch_execute("BEGIN").await.unwrap();
        let err = if simple {
            client.simple_query(sql).await.unwrap_err()
        } else {
            client.query(sql, &[]).await.unwrap_err()
        };
        assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO), "{err}");
        let err = client.simple_query("SELECT 1").await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
        // COMMIT of a failed block rolls it back.
        let done = client.simple_query("COMMIT").await.unwrap();
        assert!(matches!(
            done.last(),
            Some(SimpleQueryMessage::CommandComplete(0))
        ));
        let rows = rows_of(client.simple_query("SELECT 2").await.unwrap());
        assert_eq!(rows[0].get(0), Some("2"));
    }
}

/// A portal read a few rows at a time (Execute with a row limit) returns
/// every row once, in order, across the PortalSuspended round trips.
#[tokio::test(flavor = "multi_thread")]
async fn a_portal_reads_a_large_result_a_few_rows_at_a_time() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let tx = client.transaction().await.unwrap();
    let portal = tx
        .bind(
            "SELECT g, 'row ' || g FROM generate_series(1, 50000) g ORDER BY g",
            &[],
        )
        .await
        .unwrap();
    let mut seen = 0i64;
    loop {
        let rows = tx.query_portal(&portal, 7000).await.unwrap();
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 7000);
        for r in rows {
            seen += 1;
            assert_eq!(r.get::<_, i64>(0), seen);
            assert_eq!(r.get::<_, String>(1), format!("row {seen}"));
        }
    }
    assert_eq!(seen, 50_000);
    // Without a row limit the rows stream; the portal, run to its end,
    // has none left for another Execute.
    let all = tx
        .bind("SELECT g FROM generate_series(1, 30000) g", &[])
        .await
        .unwrap();
    assert_eq!(tx.query_portal(&all, 0).await.unwrap().len(), 30_000);
    assert!(tx.query_portal(&all, 0).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}
