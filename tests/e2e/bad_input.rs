//! Bad input must produce the right SQLSTATE and leave the connection (and
//! the server) usable: SQL errors, abandoned connections, garbage bytes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::Client;

use crate::support::{wire, TestServer};

/// SQLSTATE for "create_hypertable on a non-empty table without migrate_data".
/// TimescaleDB 2.x raises 0A000 for a non-empty table without migrate_data
/// (feature_not_supported) with the same message.
const NOT_EMPTY_SQLSTATE: &str = "0A000";

#[derive(Clone, Copy, Debug)]
enum Proto {
    Simple,
    Extended,
}

async fn run_err(client: &Client, proto: Proto, sql: &str) -> tokio_postgres::Error {
    let res = match proto {
        Proto::Simple => client.simple_query(sql).await.map(|_| ()),
        Proto::Extended => client.query(sql, &[]).await.map(|_| ()),
    };
    match res {
        Ok(()) => panic!("{proto:?}: expected an error from {sql:?}, got success"),
        Err(e) => e,
    }
}

async fn assert_alive(client: &Client, context: &str) {
    let rows = client
        .simple_query("SELECT 1")
        .await
        .unwrap_or_else(|e| panic!("simple SELECT 1 failed after {context}: {e:?}"));
    assert!(
        rows.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("1"))
        ),
        "SELECT 1 returned no row after {context}"
    );
    let one: i32 = client
        .query_one("SELECT 1", &[])
        .await
        .unwrap_or_else(|e| panic!("extended SELECT 1 failed after {context}: {e:?}"))
        .get(0);
    assert_eq!(one, 1, "after {context}");
}

/// Runs `sql` through both protocols, checks the SQLSTATE (and the message
/// when given) and that the same connection still answers afterwards.
async fn expect_error(client: &Client, sql: &str, code: &str, message: Option<&str>) {
    for proto in [Proto::Simple, Proto::Extended] {
        let err = run_err(client, proto, sql).await;
        let db = err
            .as_db_error()
            .unwrap_or_else(|| panic!("{proto:?} {sql:?}: not a database error: {err:?}"));
        assert_eq!(
            db.code().code(),
            code,
            "{proto:?} {sql:?}: wrong SQLSTATE (message: {})",
            db.message()
        );
        assert_eq!(db.severity(), "ERROR", "{proto:?} {sql:?}");
        if let Some(m) = message {
            assert_eq!(db.message(), m, "{proto:?} {sql:?}");
        }
        assert_alive(client, &format!("{proto:?} {sql:?}")).await;
    }
}

async fn setup(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE bi_plain (time TIMESTAMPTZ NOT NULL, v DOUBLE PRECISION);
             INSERT INTO bi_plain VALUES ('2024-01-01 00:00:00+00', 1.0);
             CREATE TABLE bi_ht (time TIMESTAMPTZ NOT NULL, v DOUBLE PRECISION);",
        )
        .await
        .unwrap();
    client
        .query_one("SELECT create_hypertable('bi_ht', 'time')", &[])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_errors_have_sqlstates_and_keep_the_connection() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    setup(&client).await;

    // 42P01 undefined_table
    expect_error(
        &client,
        "SELECT * FROM bi_nope",
        "42P01",
        Some("relation \"bi_nope\" does not exist"),
    )
    .await;
    expect_error(&client, "INSERT INTO bi_nope VALUES (1)", "42P01", None).await;
    expect_error(
        &client,
        "DROP TABLE bi_nope",
        "42P01",
        Some("table \"bi_nope\" does not exist"),
    )
    .await;

    // 42703 undefined_column
    expect_error(
        &client,
        "SELECT nope FROM bi_plain",
        "42703",
        Some("column \"nope\" does not exist"),
    )
    .await;
    expect_error(
        &client,
        "INSERT INTO bi_plain (time, nope) VALUES ('2024-01-01 00:00:00+00', 1)",
        "42703",
        None,
    )
    .await;

    // 22P02 invalid_text_representation
    expect_error(
        &client,
        "INSERT INTO bi_plain (time, v) VALUES ('2024-01-01 00:00:00+00', 'abc')",
        "22P02",
        Some("invalid input syntax for type double precision: \"abc\""),
    )
    .await;

    // 22007 invalid_datetime_format
    expect_error(
        &client,
        "INSERT INTO bi_plain (time, v) VALUES ('not a date', 1)",
        "22007",
        Some("invalid input syntax for type timestamp with time zone: \"not a date\""),
    )
    .await;

    // 22008 datetime_field_overflow
    expect_error(
        &client,
        "INSERT INTO bi_plain (time, v) VALUES ('2024-13-45', 1)",
        "22008",
        Some("date/time field value out of range: \"2024-13-45\""),
    )
    .await;

    // 23502 not_null_violation (the time column of a hypertable)
    expect_error(
        &client,
        "INSERT INTO bi_ht (time, v) VALUES (NULL, 1)",
        "23502",
        None,
    )
    .await;

    // 42P07 duplicate_table
    expect_error(
        &client,
        "CREATE TABLE bi_plain (x INTEGER)",
        "42P07",
        Some("relation \"bi_plain\" already exists"),
    )
    .await;

    // TS110: already a hypertable
    expect_error(
        &client,
        "SELECT create_hypertable('bi_ht', 'time')",
        "TS110",
        Some("table \"bi_ht\" is already a hypertable"),
    )
    .await;

    // Non-empty table without migrate_data
    expect_error(
        &client,
        "SELECT create_hypertable('bi_plain', 'time')",
        NOT_EMPTY_SQLSTATE,
        Some("table \"bi_plain\" is not empty"),
    )
    .await;

    // None of the failed statements changed anything.
    let row = client
        .query_one("SELECT count(*), sum(v) FROM bi_plain", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, f64>(1), 1.0);
    let n: i64 = client
        .query_one("SELECT count(*) FROM bi_ht", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn syntax_error_has_sqlstate_and_position() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    for proto in [Proto::Simple, Proto::Extended] {
        let err = run_err(&client, proto, "SELECT * FROM WHERE x = 1").await;
        let db = err.as_db_error().expect("database error");
        assert_eq!(db.code().code(), "42601", "{proto:?}: {}", db.message());
        assert_eq!(
            db.message(),
            "syntax error at or near \"WHERE\"",
            "{proto:?}"
        );
        // 1-based character offset of WHERE in the statement.
        assert_eq!(
            db.position(),
            Some(&ErrorPosition::Original(15)),
            "{proto:?}: the error must point at the offending token"
        );
        assert_alive(&client, &format!("{proto:?} syntax error")).await;

        let err = run_err(&client, proto, "SELEC 1").await;
        assert_eq!(err.as_db_error().unwrap().code().code(), "42601");
        assert_alive(&client, &format!("{proto:?} SELEC")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn error_inside_a_multi_statement_query_stops_it() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE bi_multi (v INTEGER)")
        .await
        .unwrap();
    // The statement after the failing one must not run.
    let err = client
        .simple_query(
            "INSERT INTO bi_multi VALUES (1); SELECT * FROM bi_nope; INSERT INTO bi_multi VALUES (2)",
        )
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "42P01");
    assert_alive(&client, "multi-statement error").await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM bi_multi WHERE v = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the statement after the error ran");
}

async fn assert_server_answers(server: &mut TestServer, context: &str) {
    assert!(
        server.is_running(),
        "the server process exited after {context}\n{}",
        server.log_tail(100)
    );
    let client = server.connect().await;
    assert_alive(&client, context).await;
}

/// Reads until EOF (or an ErrorResponse) within 10 s; the server must not
/// keep a broken connection open waiting for more bytes.
async fn expect_refused(mut s: TcpStream, context: &str) {
    let mut buf = vec![0u8; 4096];
    let res = tokio::time::timeout(Duration::from_secs(10), async {
        let mut got = Vec::new();
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.first() == Some(&b'E') {
                        return got;
                    }
                }
            }
        }
    })
    .await;
    match res {
        Ok(got) => assert!(
            got.is_empty() || got[0] == b'E',
            "{context}: expected the connection to be closed or an ErrorResponse, got {got:?}"
        ),
        Err(_) => panic!("{context}: the server kept the connection open for 10 s"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_instead_of_a_startup_message() {
    let mut server = TestServer::start().await;

    // An HTTP request: its first 4 bytes read as an absurd length.
    let mut s = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    expect_refused(s, "HTTP request").await;
    assert_server_answers(&mut server, "an HTTP request").await;

    // A well-formed length with an unknown protocol version.
    let mut s = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let mut msg = 8i32.to_be_bytes().to_vec();
    msg.extend_from_slice(&0x1234_5678i32.to_be_bytes());
    s.write_all(&msg).await.unwrap();
    expect_refused(s, "unknown protocol version").await;
    assert_server_answers(&mut server, "an unknown protocol version").await;

    // A length too short for any startup message, and nothing more: the
    // connection closes at once, as PostgreSQL closes it (it waited for
    // the startup timeout).
    for length in [0i32, 4, 7] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .unwrap();
        s.write_all(&length.to_be_bytes()).await.unwrap();
        expect_refused(s, "a startup length under 8").await;
    }
    assert_server_answers(&mut server, "a startup length under 8").await;

    // Pseudo-random bytes, then the client goes away.
    let mut s = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let mut x: u32 = 0x9E37_79B9;
    let junk: Vec<u8> = (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let _ = s.write_all(&junk).await;
    drop(s);
    assert_server_answers(&mut server, "random bytes").await;

    // A startup message cut in the middle.
    let mut s = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let startup = wire::startup_message();
    s.write_all(&startup[..startup.len() / 2]).await.unwrap();
    drop(s);
    assert_server_answers(&mut server, "a truncated startup message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ssl_request_is_answered_n() {
    let server = TestServer::start().await;
    let mut s = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    s.write_all(&wire::ssl_request()).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), s.read_u8())
        .await
        .expect("no answer to SSLRequest")
        .expect("read SSLRequest answer");
    assert_eq!(answer, b'N');
    // The same socket then goes on with a plain startup.
    s.write_all(&wire::startup_message()).await.unwrap();
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (tag, _) = wire::read_message(&mut s).await.unwrap();
            if tag == b'Z' {
                break;
            }
        }
    })
    .await;
    assert!(ready.is_ok(), "no ReadyForQuery after SSLRequest + startup");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_drops_the_socket_mid_query() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE bi_drop (time TIMESTAMPTZ NOT NULL, v INTEGER)")
        .await
        .unwrap();
    let base = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap();
    let values: Vec<String> = (0..2000)
        .map(|i| {
            let t = base + chrono::Duration::seconds(i);
            format!("('{}', {i})", t.format("%Y-%m-%d %H:%M:%S+00"))
        })
        .collect();
    client
        .batch_execute(&format!("INSERT INTO bi_drop VALUES {}", values.join(", ")))
        .await
        .unwrap();

    // A query is sent, then the socket is closed without reading the answer.
    for _ in 0..5 {
        let mut s = wire::connect_ready(server.port()).await.unwrap();
        s.write_all(&wire::query_message(
            "SELECT a.v, b.v FROM bi_drop a, bi_drop b WHERE a.v < 50",
        ))
        .await
        .unwrap();
        drop(s);
    }
    // A message cut in the middle, then the socket is closed.
    let mut s = wire::connect_ready(server.port()).await.unwrap();
    let q = wire::query_message("SELECT count(*) FROM bi_drop");
    s.write_all(&q[..q.len() - 5]).await.unwrap();
    drop(s);
    // A tokio-postgres client whose connection task is aborted mid-query.
    let other = server.connect().await;
    let pending = tokio::spawn(async move {
        let _ = other
            .query("SELECT a.v FROM bi_drop a, bi_drop b WHERE b.v < 100", &[])
            .await;
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    pending.abort();

    assert_server_answers(&mut server, "clients that vanished mid-query").await;
    // The first connection was never disturbed.
    let n: i64 = client
        .query_one("SELECT count(*) FROM bi_drop", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2000);
}

/// Long expression chains and UNION chains: a 200-term sum and a 500-way
/// UNION ALL answer (they overflowed a 2 MiB worker stack and aborted the
/// whole server), deeper nesting gets 54001 at once instead of planning for
/// minutes, and the server goes on. An infinite date's fields answer.
#[tokio::test(flavor = "multi_thread")]
async fn deep_statements_answer_or_get_54001() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let sum = format!("SELECT {}", vec!["1"; 200].join(" + "));
    let rows = client.simple_query(&sum).await.expect("a 200-term sum");
    assert!(rows.iter().any(
        |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("200"))
    ));
    let union = format!(
        "SELECT count(*) FROM ({}) s",
        vec!["SELECT 1"; 500].join(" UNION ALL ")
    );
    let n: i64 = client
        .query_one(&union, &[])
        .await
        .expect("a 500-way union")
        .get(0);
    assert_eq!(n, 500);
    let deep = format!("SELECT {}", vec!["1"; 5000].join(" + "));
    expect_error(&client, &deep, "54001", Some("stack depth limit exceeded")).await;
    let unions = vec!["SELECT 1"; 1500].join(" UNION ALL ");
    expect_error(&client, &unions, "54001", None).await;
    let year: f64 = client
        .query_one("SELECT date_part('year', 'infinity'::date)", &[])
        .await
        .expect("date_part of an infinite date")
        .get(0);
    assert_eq!(year, f64::INFINITY);
    assert_alive(&client, "deep statements").await;
}

/// Nesting the parser used to backtrack over: function calls forty deep
/// answered after 2^40 argument parses (twenty-two deep took nine seconds),
/// and twelve thousand nested `TABLE(` types overflowed the stack and
/// aborted the server. Calls nest and answer; text nested past 256 levels,
/// or invalid text that keeps the parser backtracking, gets 54001 at once.
#[tokio::test(flavor = "multi_thread")]
async fn nested_text_parses_in_linear_time_or_gets_54001() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let nested = |open: &str, inner: &str, close: &str, depth: usize| {
        format!(
            "SELECT {}{inner}{}",
            open.repeat(depth),
            close.repeat(depth)
        )
    };
    let calls = nested("abs(", "-1", ")", 40);
    let coalesces = nested("coalesce(", "NULL::int", ", 7)", 40);
    for (sql, expected) in [(&calls, "1"), (&coalesces, "7")] {
        let rows = tokio::time::timeout(Duration::from_secs(120), client.simple_query(sql))
            .await
            .expect("forty nested calls answer without backtracking")
            .expect("forty nested calls");
        assert!(rows.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some(expected))
        ));
    }
    let named: String = client
        .query_one("SELECT make_interval(days => 1, hours := 2)::text", &[])
        .await
        .expect("named arguments with => and :=")
        .get(0);
    assert_eq!(named, "1 day 02:00:00");
    for sql in [
        nested("(", "1", ")", 300),
        nested("CASE WHEN true THEN ", "1", " END", 300),
        format!(
            "SELECT CAST(1 AS {}int{})",
            "TABLE(c ".repeat(12_000),
            ")".repeat(12_000)
        ),
        nested("NOT (", "1 = ", ")", 60),
    ] {
        let refused = expect_error(&client, &sql, "54001", Some("stack depth limit exceeded"));
        tokio::time::timeout(Duration::from_secs(120), refused)
            .await
            .expect("refused without backtracking");
    }
    assert_alive(&client, "nested text").await;
}

/// A gapfill of millions of buckets stops at statement_timeout, and at a
/// cancel request: the filling used to run to its end on a runtime worker,
/// deaf to both.
#[tokio::test(flavor = "multi_thread")]
async fn long_gapfill_stops_at_timeout_and_cancel() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE gf (time timestamptz NOT NULL, v float8);
             SELECT create_hypertable('gf', 'time');
             INSERT INTO gf VALUES ('2024-01-01', 1);",
        )
        .await
        .unwrap();
    // Five million one-second buckets.
    let gapfill = "SELECT time_bucket_gapfill('1 second', time, '2024-01-01', '2024-03-01') b, \
                   avg(v) FROM gf GROUP BY b";
    client
        .batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let timed_out = expect_error(
        &client,
        gapfill,
        "57014",
        Some("canceling statement due to statement timeout"),
    );
    tokio::time::timeout(Duration::from_secs(60), timed_out)
        .await
        .expect("the timeout stops the filling");
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    let token = client.cancel_token();
    let cancel = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let canceled = tokio::time::timeout(Duration::from_secs(60), client.simple_query(gapfill))
        .await
        .expect("the cancel stops the filling")
        .expect_err("a canceled gapfill");
    assert_eq!(
        canceled.code().map(|c| c.code()),
        Some("57014"),
        "{canceled}"
    );
    cancel.await.unwrap().unwrap();
    assert_alive(&client, "canceled gapfill").await;
}

/// Extended-protocol messages the decoder cannot read (a Parse without its
/// NUL terminators, a Bind declaring a parameter longer than it sends) get
/// 08P01 before the connection closes, and the server goes on.
#[tokio::test(flavor = "multi_thread")]
async fn unreadable_protocol_messages_get_08p01() {
    let server = TestServer::start().await;
    let message = |tag: u8, body: &[u8]| {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    };
    // Bind of unnamed portal and statement, no formats, one parameter whose
    // declared length (0x7fffffff) is past the message's end.
    let mut bind = b"\0\0\0\0\0\x01".to_vec();
    bind.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    bind.extend_from_slice(b"ab\0\0");
    for bad in [message(b'P', b"abc"), message(b'B', &bind)] {
        let mut s = wire::connect_ready(server.port()).await.unwrap();
        s.write_all(&bad).await.unwrap();
        let (tag, body) = tokio::time::timeout(Duration::from_secs(10), wire::read_message(&mut s))
            .await
            .expect("an answer")
            .expect("an error response");
        assert_eq!(tag, b'E');
        assert!(
            String::from_utf8_lossy(&body).contains("08P01"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let client = server.connect().await;
    assert_alive(&client, "unreadable messages").await;
}
