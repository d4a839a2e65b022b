//! The quick start of the README, typed into the real `psql` client.

use crate::support::TestServer;

/// psql's exact aligned output for a result row set, with its header.
fn assert_lines_in_order(stdout: &str, expected: &[&str]) {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == expected[0])
        .unwrap_or_else(|| {
            panic!(
                "psql output lacks the line {:?}\n--- stdout ---\n{stdout}",
                expected[0]
            )
        });
    let got: Vec<&str> = lines[start..]
        .iter()
        .take(expected.len())
        .copied()
        .collect();
    assert_eq!(
        got, expected,
        "psql output differs\n--- stdout ---\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn quick_start_through_psql() {
    let server = TestServer::start().await;

    let out = server
        .psql_async(&[
            "-c",
            "CREATE TABLE conditions (
                time        TIMESTAMPTZ      NOT NULL,
                device      TEXT,
                temperature DOUBLE PRECISION,
                humidity    DOUBLE PRECISION
            )",
        ])
        .await;
    out.assert_success();
    assert_eq!(out.stdout.trim(), "CREATE TABLE");

    // Legacy form: returns the record (hypertable_id, schema, table, created).
    let out = server
        .psql_async(&["-c", "SELECT create_hypertable('conditions', 'time')"])
        .await;
    out.assert_success();
    assert!(
        out.stdout.contains(" (1,public,conditions,t)"),
        "unexpected create_hypertable output:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("(1 row)"), "{}", out.stdout);

    // New form with by_range: returns (hypertable_id, created).
    let out = server
        .psql_async(&[
            "-c",
            "CREATE TABLE metrics (time TIMESTAMPTZ NOT NULL, device TEXT, value DOUBLE PRECISION)",
            "-c",
            "SELECT create_hypertable('metrics', by_range('time'))",
        ])
        .await;
    out.assert_success();
    assert!(
        out.stdout.contains(" (2,t)"),
        "unexpected create_hypertable(by_range) output:\n{}",
        out.stdout
    );

    let out = server
        .psql_async(&[
            "-c",
            "INSERT INTO conditions VALUES
                ('2024-01-01 00:00:00+00', 'a', 20.0, 50.0),
                ('2024-01-01 00:05:00+00', 'a', 21.0, 51.0),
                ('2024-01-01 00:10:00+00', 'b', 18.0, 60.0),
                ('2024-01-01 00:20:00+00', 'a', 22.5, 52.0),
                ('2024-01-01 00:25:00+00', 'b', 19.0, 61.0),
                ('2024-01-01 00:29:59+00', 'b', 20.0, 62.0),
                ('2024-01-01 00:30:00+00', 'a', 24.0, 49.0),
                ('2024-01-01 01:00:00+00', 'b', 17.25, 65.0)",
        ])
        .await;
    out.assert_success();
    assert_eq!(out.stdout.trim(), "INSERT 0 8");

    let out = server
        .psql_async(&[
            "-c",
            "INSERT INTO metrics (time, device, value) \
             SELECT time, device, temperature FROM conditions WHERE device = 'a'",
        ])
        .await;
    out.assert_success();
    assert_eq!(out.stdout.trim(), "INSERT 0 4");

    let out = server
        .psql_async(&["-c", "SELECT count(*), sum(value) FROM metrics"])
        .await;
    out.assert_success();
    assert_lines_in_order(
        &out.stdout,
        &[
            " count | sum  ",
            "-------+------",
            "     4 | 87.5",
            "(1 row)",
        ],
    );

    let out = server
        .psql_async(&[
            "-c",
            "SET timezone = 'UTC'",
            "-c",
            "SELECT time_bucket('15 minutes', time) AS bucket, device, \
                    avg(temperature) AS avg_temp, max(humidity) AS max_hum \
             FROM conditions GROUP BY bucket, device ORDER BY bucket, device",
        ])
        .await;
    out.assert_success();
    assert_lines_in_order(
        &out.stdout,
        &[
            "         bucket         | device | avg_temp | max_hum ",
            "------------------------+--------+----------+---------",
            " 2024-01-01 00:00:00+00 | a      |     20.5 |      51",
            " 2024-01-01 00:00:00+00 | b      |       18 |      60",
            " 2024-01-01 00:15:00+00 | a      |     22.5 |      52",
            " 2024-01-01 00:15:00+00 | b      |     19.5 |      62",
            " 2024-01-01 00:30:00+00 | a      |       24 |      49",
            " 2024-01-01 01:00:00+00 | b      |    17.25 |      65",
            "(6 rows)",
        ],
    );

    let out = server
        .psql_async(&["-c", "SELECT show_chunks('conditions')"])
        .await;
    out.assert_success();
    assert!(
        out.stdout
            .contains("_timescaledb_internal._hyper_1_1_chunk"),
        "unexpected show_chunks output:\n{}",
        out.stdout
    );

    // Unaligned, tuples-only output: the plain values.
    let out = server
        .psql_async(&[
            "-A",
            "-t",
            "-c",
            "SELECT device, count(*) FROM conditions GROUP BY device ORDER BY device",
        ])
        .await;
    out.assert_success();
    assert_eq!(out.stdout, "a|4\nb|4\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_session_survives_an_error() {
    let server = TestServer::start().await;
    let script = "\
CREATE TABLE psql_err (time TIMESTAMPTZ NOT NULL, v INTEGER);
INSERT INTO psql_err VALUES ('2024-01-01 00:00:00+00', 1), ('2024-01-01 00:01:00+00', 2);
SELECT * FROM nope;
SELECT count(*) AS n FROM psql_err;
INSERT INTO psql_err VALUES ('not a date', 3);
SELECT sum(v) AS total FROM psql_err;
";
    let out = server.psql_script_async(script, false).await;
    assert!(
        out.status.success(),
        "psql with ON_ERROR_STOP=0 should exit 0: {}\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr
            .contains("ERROR:  relation \"nope\" does not exist"),
        "stderr lacks the error:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "ERROR:  invalid input syntax for type timestamp with time zone: \"not a date\""
        ),
        "stderr lacks the second error:\n{}",
        out.stderr
    );
    // The statements after each error ran in the same session.
    assert_lines_in_order(&out.stdout, &[" n ", "---", " 2", "(1 row)"]);
    assert_lines_in_order(&out.stdout, &[" total ", "-------", "     3", "(1 row)"]);

    // With ON_ERROR_STOP=1 psql stops at the error and exits with status 3.
    let out = server
        .psql_script_async("SELECT * FROM nope;\nSELECT 42 AS after;\n", true)
        .await;
    assert_eq!(out.status.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("42"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_multiple_statements_in_one_command() {
    let server = TestServer::start().await;
    // psql sends a -c string with several statements as ONE simple Query.
    let out = server
        .psql_async(&[
            "-A",
            "-t",
            "-c",
            "CREATE TABLE psql_multi (v INTEGER); INSERT INTO psql_multi VALUES (1), (2), (3); SELECT sum(v) FROM psql_multi",
        ])
        .await;
    out.assert_success();
    // psql 15 shows the result of every statement of the string.
    assert_eq!(out.stdout, "CREATE TABLE\nINSERT 0 3\n6\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_sends_the_time_zone_of_pgtz() {
    let server = TestServer::start().await;
    // libpq sends PGTZ as the startup parameter `timezone` (lower case); a
    // POSIX zone counts hours west of UTC.
    let out = server
        .psql_env_async(
            &[("PGTZ", "UTC+3")],
            &[
                "-A",
                "-t",
                "-c",
                "SHOW timezone",
                "-c",
                "SELECT TIMESTAMPTZ '2024-07-01 12:00:00+00'",
            ],
        )
        .await;
    out.assert_success();
    assert_eq!(out.stdout, "UTC+3\n2024-07-01 09:00:00-03\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_time_zone_at_startup_refuses_the_connection() {
    let server = TestServer::start().await;
    // As PostgreSQL: the connection ends with a FATAL, rather than running
    // in a zone the client did not ask for.
    let out = server
        .psql_env_async(&[("PGTZ", "Foo/Bar")], &["-A", "-t", "-c", "SHOW timezone"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("FATAL:  invalid value for parameter \"TimeZone\": \"Foo/Bar\""),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // The same through PGOPTIONS' -c, with its SQLSTATE.
    let mut config = server.config();
    config.options("-c TimeZone=Foo/Bar");
    let err = match config.connect(tokio_postgres::NoTls).await {
        Ok(_) => panic!("a connection with TimeZone=Foo/Bar was accepted"),
        Err(e) => e,
    };
    let db = err.as_db_error().expect("an error from the server");
    assert_eq!(db.code().code(), "22023");
    assert_eq!(db.severity(), "FATAL");
    assert_eq!(
        db.message(),
        "invalid value for parameter \"TimeZone\": \"Foo/Bar\""
    );

    // The server goes on; a zone it knows is taken.
    let out = server
        .psql_env_async(
            &[("PGTZ", "europe/berlin")],
            &["-A", "-t", "-c", "SHOW timezone"],
        )
        .await;
    out.assert_success();
    assert_eq!(out.stdout, "Europe/Berlin\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_shows_time_zone_conversions_as_postgresql_does() {
    let server = TestServer::start().await;
    // Values, and headings: a cast of a cast is named by the last type, AT
    // TIME ZONE by its function, `timezone` (PostgreSQL 15's output).
    let out = server
        .psql_async(&[
            "-A",
            "-c",
            "SET timezone = 'Europe/Berlin'",
            "-c",
            "SELECT '2024-01-01 00:00:00+00'::timestamptz::timestamp, \
                    '2024-01-01 23:30:00+00'::timestamptz::date, \
                    TIMESTAMPTZ '2024-01-01 00:00:00+00' AT TIME ZONE 'America/New_York', \
                    CAST(TIMESTAMP '2024-01-01 00:00:00' AS timestamptz), \
                    timezone('UTC', TIMESTAMP '2024-01-01 00:00:00')::text",
        ])
        .await;
    out.assert_success();
    assert_eq!(
        out.stdout,
        "SET\n\
         timestamp|date|timezone|timestamptz|timezone\n\
         2024-01-01 01:00:00|2024-01-02|2023-12-31 19:00:00|2024-01-01 00:00:00+01|2024-01-01 01:00:00+01\n\
         (1 row)\n"
    );
}

/// A `DROP ... CASCADE` reports what it takes with it as PostgreSQL does:
/// one NOTICE naming a single object, or counting several and listing them
/// in its DETAIL. A hypertable's chunks are among what a dropped schema
/// takes.
#[tokio::test(flavor = "multi_thread")]
async fn drop_cascade_reports_its_objects_in_one_notice() {
    let server = TestServer::start().await;
    let setup = server.psql_script(
        "CREATE SCHEMA iot;
         CREATE TABLE iot.x (time timestamptz NOT NULL, v int);
         SELECT create_hypertable('iot.x', by_range('time', INTERVAL '1 day'));
         INSERT INTO iot.x VALUES ('2024-01-01', 1), ('2024-01-02', 2);
         CREATE TABLE t (a int);
         CREATE VIEW v1 AS SELECT a FROM t;
         CREATE VIEW v2 AS SELECT a FROM v1;
         CREATE SCHEMA lone;
         CREATE TABLE lone.y (a int);",
        true,
    );
    setup.assert_success();
    let stderr = |sql: &str| {
        let out = server.psql(&["-v", "VERBOSITY=default", "-c", sql]);
        out.assert_success();
        out.stderr
    };
    let schema = stderr("DROP SCHEMA iot CASCADE");
    assert!(
        schema.contains("NOTICE:  drop cascades to 3 other objects\nDETAIL:  drop cascades to table iot.x\ndrop cascades to table _timescaledb_internal._hyper_1_1_chunk\ndrop cascades to table _timescaledb_internal._hyper_1_2_chunk"),
        "{schema}"
    );
    assert_eq!(schema.matches("NOTICE").count(), 1, "{schema}");
    let views = stderr("DROP TABLE t CASCADE");
    assert!(
        views.contains("NOTICE:  drop cascades to 2 other objects\nDETAIL:  drop cascades to view v1\ndrop cascades to view v2"),
        "{views}"
    );
    let one = stderr("DROP SCHEMA lone CASCADE");
    assert!(
        one.contains("NOTICE:  drop cascades to table lone.y\n"),
        "{one}"
    );
    assert!(!one.contains("DETAIL"), "{one}");
}
