//! COPY: `COPY ... FROM STDIN` and `COPY ... TO STDOUT` in text, CSV and
//! binary format through tokio-postgres (extended protocol), psql (simple
//! protocol, `\copy`) and hand-written protocol messages (CopyFail, a
//! dropped connection). Expected output and errors are what PostgreSQL 15
//! prints for the same statements and data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use futures::{pin_mut, SinkExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
// `BytesMut` is the buffer type of `ToSql::to_sql`; postgres-types exposes
// it for hand-written ToSql impls (its own `to_sql_checked!` uses this path).
use tokio_postgres::types::private::BytesMut;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Error, SimpleQueryMessage};

use crate::support::pgtext::PgNumeric;
use crate::support::{rows_text, wire, TestServer};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Runs `sql` (a `COPY ... FROM STDIN`) through tokio-postgres, sending
/// `data` in CopyData messages of at most `chunk` bytes; returns the row
/// count of the command tag.
async fn copy_in_chunked(
    client: &Client,
    sql: &str,
    data: &[u8],
    chunk: usize,
) -> Result<u64, Error> {
    let sink = client.copy_in::<_, Cursor<Vec<u8>>>(sql).await?;
    pin_mut!(sink);
    for piece in data.chunks(chunk.max(1)) {
        sink.send(Cursor::new(piece.to_vec())).await?;
    }
    sink.finish().await
}

async fn copy_in(client: &Client, sql: &str, data: &[u8]) -> Result<u64, Error> {
    copy_in_chunked(client, sql, data, 256 * 1024).await
}

/// Runs `sql` (a `COPY ... TO STDOUT`) and returns all the bytes it sent.
async fn copy_out(client: &Client, sql: &str) -> Result<Vec<u8>, Error> {
    let stream = client.copy_out(sql).await?;
    pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(piece) = stream.try_next().await? {
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

/// Panics, showing the first differing line, unless `actual == expected`.
#[track_caller]
fn assert_bytes_eq(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let a = String::from_utf8_lossy(actual);
    let e = String::from_utf8_lossy(expected);
    let mut detail = String::new();
    for (i, (la, le)) in a.split('\n').zip(e.split('\n')).enumerate() {
        if la != le {
            let _ = write!(
                detail,
                "first difference at line {}:\n  got      {la:?}\n  expected {le:?}",
                i + 1
            );
            break;
        }
    }
    panic!(
        "{what}: output differs from PostgreSQL's ({} bytes, expected {})\n{detail}\n--- got ---\n{a:?}\n--- expected ---\n{e:?}",
        actual.len(),
        expected.len()
    );
}

/// How `err` differs from a database error with this SQLSTATE, message and
/// CONTEXT (`None`: no CONTEXT field); `None` when it matches.
fn db_error_mismatch(
    err: &Error,
    code: &str,
    message: &str,
    context: Option<&str>,
) -> Option<String> {
    let Some(db) = err.as_db_error() else {
        return Some(format!("not a database error: {err:?}"));
    };
    let got = (db.severity(), db.code().code(), db.message(), db.where_());
    let expected = ("ERROR", code, message, context);
    (got != expected).then(|| {
        format!(
            "(severity, SQLSTATE, message, CONTEXT)\n       got {got:?}\n  expected {expected:?}"
        )
    })
}

#[track_caller]
fn assert_db_error(err: &Error, code: &str, message: &str, context: Option<&str>, what: &str) {
    if let Some(m) = db_error_mismatch(err, code, message, context) {
        panic!("{what}: {m}");
    }
}

/// Collects failed checks of a table of cases, to report them all at once.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn push(&mut self, what: &str, problem: String) {
        self.0.push(format!("{what}: {problem}"));
    }

    fn check_db_error(
        &mut self,
        err: &Error,
        code: &str,
        message: &str,
        context: Option<&str>,
        what: &str,
    ) {
        if let Some(m) = db_error_mismatch(err, code, message, context) {
            self.push(what, m);
        }
    }

    #[track_caller]
    fn finish(self) {
        if !self.0.is_empty() {
            panic!("{} failed checks:\n\n{}", self.0.len(), self.0.join("\n\n"));
        }
    }
}

async fn count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e:?}"))
        .get(0)
}

/// The same connection still answers through both protocols.
async fn assert_alive(client: &Client, what: &str) {
    let messages = client
        .simple_query("SELECT 1")
        .await
        .unwrap_or_else(|e| panic!("simple SELECT 1 after {what}: {e:?}"));
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get(0) == Some("1"))),
        "simple SELECT 1 after {what}: no row"
    );
    let one: i32 = client
        .query_one("SELECT 1", &[])
        .await
        .unwrap_or_else(|e| panic!("extended SELECT 1 after {what}: {e:?}"))
        .get(0);
    assert_eq!(one, 1, "after {what}");
}

/// Parquet files under the data directory (sorted paths).
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// Total size of the files in `dir` (not recursive).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Waits (up to 20 s) until the Parquet files of the data directory are
/// exactly `expected`: files written for a failed COPY must be removed.
async fn assert_parquet_files_become(server: &TestServer, expected: &[PathBuf], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = parquet_files(&server.data_dir());
        if now == expected {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: files left behind: {:?} (expected {:?})",
                now.iter()
                    .filter(|p| !expected.contains(p))
                    .collect::<Vec<_>>(),
                expected
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Hand-written frontend messages, for what client libraries do not let a
/// test choose (CopyFail with a message, a connection cut mid-COPY).
mod raw {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use tokio::net::TcpStream;

    use crate::support::wire;

    pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    pub fn copy_data(data: &[u8]) -> Vec<u8> {
        message(b'd', data)
    }

    pub fn copy_done() -> Vec<u8> {
        message(b'c', b"")
    }

    pub fn copy_fail(reason: &str) -> Vec<u8> {
        let mut body = reason.as_bytes().to_vec();
        body.push(0);
        message(b'f', &body)
    }

    pub fn sync() -> Vec<u8> {
        message(b'S', b"")
    }

    /// Parse (unnamed) + Bind (no parameters, text results) + Execute.
    pub fn parse_bind_execute(sql: &str) -> Vec<u8> {
        let mut parse = vec![0];
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        let mut out = message(b'P', &parse);
        out.extend(message(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
        out.extend(message(b'E', &[0, 0, 0, 0, 0]));
        out
    }

    /// Reads backend messages up to and including the first whose tag is in
    /// `stop` (30 s at most).
    pub async fn read_until(stream: &mut TcpStream, stop: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let res = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let (tag, body) = wire::read_message(stream).await?;
                let done = stop.contains(&tag);
                out.push((tag, body));
                if done {
                    return Ok::<_, std::io::Error>(());
                }
            }
        })
        .await;
        match res {
            Ok(Ok(())) => out,
            Ok(Err(e)) => panic!("reading from the server: {e} (so far: {:?})", tags(&out)),
            Err(_) => panic!(
                "no {:?} from the server within 30 s (so far: {:?})",
                stop,
                tags(&out)
            ),
        }
    }

    pub fn tags(messages: &[(u8, Vec<u8>)]) -> String {
        messages.iter().map(|(t, _)| *t as char).collect()
    }

    /// The fields of an ErrorResponse / NoticeResponse body.
    pub fn fields(body: &[u8]) -> BTreeMap<char, String> {
        body.split(|b| *b == 0)
            .filter(|f| !f.is_empty())
            .map(|f| (f[0] as char, String::from_utf8_lossy(&f[1..]).into_owned()))
            .collect()
    }

    /// The single ErrorResponse among `messages`.
    #[track_caller]
    pub fn error(messages: &[(u8, Vec<u8>)]) -> BTreeMap<char, String> {
        let errors: Vec<_> = messages.iter().filter(|(t, _)| *t == b'E').collect();
        assert_eq!(
            errors.len(),
            1,
            "one ErrorResponse expected in {:?}",
            tags(messages)
        );
        fields(&errors[0].1)
    }
}

/// Runs a simple query on a raw connection and returns its text rows
/// (asserting that it succeeded).
async fn raw_query_rows(stream: &mut TcpStream, sql: &str) -> Vec<Vec<Option<String>>> {
    stream.write_all(&wire::query_message(sql)).await.unwrap();
    let messages = raw::read_until(stream, b"Z").await;
    assert!(
        !messages.iter().any(|(t, _)| *t == b'E'),
        "{sql}: {:?}",
        messages
            .iter()
            .find(|(t, _)| *t == b'E')
            .map(|(_, b)| raw::fields(b))
    );
    messages
        .iter()
        .filter(|(t, _)| *t == b'D')
        .map(|(_, body)| {
            let n = i16::from_be_bytes([body[0], body[1]]) as usize;
            let mut pos = 2;
            let mut row = Vec::new();
            for _ in 0..n {
                let len = i32::from_be_bytes(body[pos..pos + 4].try_into().unwrap());
                pos += 4;
                if len < 0 {
                    row.push(None);
                } else {
                    let len = len as usize;
                    row.push(Some(
                        String::from_utf8_lossy(&body[pos..pos + len]).into_owned(),
                    ));
                    pos += len;
                }
            }
            row
        })
        .collect()
}

fn command_tag(messages: &[(u8, Vec<u8>)]) -> Option<String> {
    messages
        .iter()
        .find(|(t, _)| *t == b'C')
        .map(|(_, b)| String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(b)).into_owned())
}

// ---------------------------------------------------------------------------
// Every column type: the same five rows in text, CSV and binary
// ---------------------------------------------------------------------------

const TYPES_DDL: &str = "CREATE TABLE {t} (id integer, b boolean, s smallint, i integer, \
     g bigint, r real, d double precision, n numeric(10,2), t text, vc varchar(5), \
     tz timestamptz, ts timestamp, dt date, by bytea)";

fn types_ddl(table: &str) -> String {
    TYPES_DDL.replace("{t}", table)
}

/// Text-format input: NULLs, extremes, an empty string, escapes (tab,
/// newline, backslash, CR), a varchar holding a delimiter and a quote, a
/// timestamptz with an offset, `\N` and `\.` as data, multi-byte UTF-8,
/// bytea in hex.
const TYPES_TEXT_IN: &str = concat!(
    "1\tt\t1\t2\t3\t1.5\t0.1\t12.34\thello\tabcde\t2024-01-01 12:34:56.789+00\t2024-01-01 12:34:56\t2024-01-02\t\\\\x00ff\n",
    "2\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n",
    "3\tf\t-32768\t-2147483648\t-9223372036854775808\t-3.4e+38\t1e-300\t-99999999.99\t\t\t1970-01-01 00:00:00+00\t1999-12-31 23:59:59.999999\t1900-01-01\t\\\\x\n",
    "4\tt\t32767\t2147483647\t9223372036854775807\tInfinity\t-Infinity\t0.5\ttab\\there\\nnew\\\\back,comma \"quote\" \\r\ta,b\"c\t2024-06-30 23:00:00-05:30\t2024-02-29 00:00:00.5\t2024-02-29\t\\\\x5c0a09\n",
    "5\tf\t0\t0\t0\tNaN\t-0\t0\théllo ✓ \\\\N\t\\\\.\t2000-01-01 00:00:00.000001+00\t2038-01-19 03:14:08\t2262-04-11\t\\\\xdeadbeef\n",
);

/// PostgreSQL 15: `COPY (SELECT * FROM t ORDER BY id) TO STDOUT` of the
/// rows above, with `TimeZone = UTC`.
const TYPES_TEXT_OUT: &str = concat!(
    "1\tt\t1\t2\t3\t1.5\t0.1\t12.34\thello\tabcde\t2024-01-01 12:34:56.789+00\t2024-01-01 12:34:56\t2024-01-02\t\\\\x00ff\n",
    "2\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n",
    "3\tf\t-32768\t-2147483648\t-9223372036854775808\t-3.4e+38\t1e-300\t-99999999.99\t\t\t1970-01-01 00:00:00+00\t1999-12-31 23:59:59.999999\t1900-01-01\t\\\\x\n",
    "4\tt\t32767\t2147483647\t9223372036854775807\tInfinity\t-Infinity\t0.50\ttab\\there\\nnew\\\\back,comma \"quote\" \\r\ta,b\"c\t2024-07-01 04:30:00+00\t2024-02-29 00:00:00.5\t2024-02-29\t\\\\x5c0a09\n",
    "5\tf\t0\t0\t0\tNaN\t-0\t0.00\théllo ✓ \\\\N\t\\\\.\t2000-01-01 00:00:00.000001+00\t2038-01-19 03:14:08\t2262-04-11\t\\\\xdeadbeef\n",
);

/// PostgreSQL 15: the same rows with `(FORMAT csv, HEADER)`.
const TYPES_CSV_OUT: &str = concat!(
    "id,b,s,i,g,r,d,n,t,vc,tz,ts,dt,by\n",
    "1,t,1,2,3,1.5,0.1,12.34,hello,abcde,2024-01-01 12:34:56.789+00,2024-01-01 12:34:56,2024-01-02,\\x00ff\n",
    "2,,,,,,,,,,,,,\n",
    "3,f,-32768,-2147483648,-9223372036854775808,-3.4e+38,1e-300,-99999999.99,\"\",\"\",1970-01-01 00:00:00+00,1999-12-31 23:59:59.999999,1900-01-01,\\x\n",
    "4,t,32767,2147483647,9223372036854775807,Infinity,-Infinity,0.50,\"tab\there\n",
    "new\\back,comma \"\"quote\"\" \r\",\"a,b\"\"c\",2024-07-01 04:30:00+00,2024-02-29 00:00:00.5,2024-02-29,\\x5c0a09\n",
    "5,f,0,0,0,NaN,-0,0.00,héllo ✓ \\N,\\.,2000-01-01 00:00:00.000001+00,2038-01-19 03:14:08,2262-04-11,\\xdeadbeef\n",
);

/// PostgreSQL 15: the same rows with `(FORMAT binary)`, as hex.
const TYPES_BINARY_OUT: &str = concat!(
    "5047434f50590aff0d0a000000000000000000000e00000004000000010000000101000000020001000000040000",
    "0002000000080000000000000003000000043fc00000000000083fb999999999999a0000000c0002000000000002",
    "000c0d480000000568656c6c6f000000056162636465000000080002b0e060cf6608000000080002b0e060c35c00",
    "000000040000223f0000000200ff000e0000000400000002ffffffffffffffffffffffffffffffffffffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff000e0000000400000003000000010000",
    "0000028000000000048000000000000008800000000000000000000004ff7fc99e0000000801a56e1fc2f8f35900",
    "00000e0003000140000002270f270f26ac000000000000000000000008fffca2fec4c8200000000008ffffffffff",
    "ffffff00000004ffff715400000000000e00000004000000040000000101000000027fff000000047fffffff0000",
    "00087fffffffffffffff000000047f80000000000008fff00000000000000000000a0001ffff0000000213880000",
    "002174616209686572650a6e65775c6261636b2c636f6d6d61202271756f746522200d00000005612c6222630000",
    "00080002bf26d19fe200000000080002b578b59401200000000400002279000000035c0a09000e00000004000000",
    "0500000001000000000200000000000400000000000000080000000000000000000000047fc00000000000088000",
    "0000000000000000000800000000000000020000000d68c3a96c6c6f20e29c93205c4e000000025c2e0000000800",
    "00000000000001000000080004441ec4c82000000000040001763200000004deadbeefffff",
);

const TYPES_ORDERED: &str = "SELECT * FROM {t} ORDER BY id";

fn ordered(table: &str) -> String {
    TYPES_ORDERED.replace("{t}", table)
}

fn sorted_lines(text: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(text)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Checks a few stored values through an ordinary SELECT (binary results).
async fn check_typed_values(client: &Client, table: &str) {
    let row = client
        .query_one(
            &format!("SELECT t IS NULL, t, vc, by, n IS NULL FROM {table} WHERE id = 3"),
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0), "row 3: an empty text is not NULL");
    assert_eq!(row.get::<_, String>(1), "");
    assert_eq!(row.get::<_, String>(2), "");
    assert_eq!(row.get::<_, Vec<u8>>(3), Vec::<u8>::new());
    assert!(!row.get::<_, bool>(4));

    let row = client
        .query_one(
            &format!("SELECT t, vc, by, tz FROM {table} WHERE id = 4"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "tab\there\nnew\\back,comma \"quote\" \r"
    );
    assert_eq!(row.get::<_, String>(1), "a,b\"c");
    assert_eq!(row.get::<_, Vec<u8>>(2), vec![0x5c, 0x0a, 0x09]);
    assert_eq!(
        row.get::<_, chrono::DateTime<Utc>>(3),
        Utc.with_ymd_and_hms(2024, 7, 1, 4, 30, 0).unwrap()
    );

    let row = client
        .query_one(&format!("SELECT t, vc FROM {table} WHERE id = 5"), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "héllo ✓ \\N");
    assert_eq!(row.get::<_, String>(1), "\\.");

    let nulls: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {table} WHERE b IS NULL AND s IS NULL AND i IS NULL \
                 AND g IS NULL AND r IS NULL AND d IS NULL AND n IS NULL AND t IS NULL \
                 AND vc IS NULL AND tz IS NULL AND ts IS NULL AND dt IS NULL AND by IS NULL"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(nulls, 1, "row 2 is all NULLs");
}

#[tokio::test(flavor = "multi_thread")]
async fn text_format_round_trip_of_every_type() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute("SET timezone = 'UTC'").await.unwrap();
    client.batch_execute(&types_ddl("cp_text")).await.unwrap();

    // Tiny CopyData messages: rows and escapes are split across messages.
    let n = copy_in_chunked(
        &client,
        "COPY cp_text FROM STDIN",
        TYPES_TEXT_IN.as_bytes(),
        7,
    )
    .await
    .unwrap();
    assert_eq!(n, 5, "COPY 5");
    assert_eq!(count(&client, "cp_text").await, 5);

    let out = copy_out(&client, &format!("COPY ({}) TO STDOUT", ordered("cp_text")))
        .await
        .unwrap();
    assert_bytes_eq(
        &out,
        TYPES_TEXT_OUT.as_bytes(),
        "COPY (SELECT ...) TO STDOUT",
    );

    // COPY table TO STDOUT: the same lines (in storage order).
    let out = copy_out(&client, "COPY cp_text TO STDOUT").await.unwrap();
    assert_eq!(sorted_lines(&out), sorted_lines(TYPES_TEXT_OUT.as_bytes()));

    // A column list picks and orders the columns.
    let out = copy_out(&client, "COPY cp_text (vc, id) TO STDOUT")
        .await
        .unwrap();
    let mut expected: Vec<String> = ["abcde\t1", "\\N\t2", "\t3", "a,b\"c\t4", "\\\\.\t5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    assert_eq!(
        sorted_lines(&out),
        expected,
        "COPY cp_text (vc, id) TO STDOUT"
    );

    check_typed_values(&client, "cp_text").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_format_round_trip_of_every_type() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute("SET timezone = 'UTC'").await.unwrap();
    client.batch_execute(&types_ddl("cp_csv")).await.unwrap();

    // PostgreSQL's own CSV output read back: quoted fields with newlines and
    // CR inside, "" (empty string) next to an empty field (NULL).
    let n = copy_in_chunked(
        &client,
        "COPY cp_csv FROM STDIN (FORMAT csv, HEADER)",
        TYPES_CSV_OUT.as_bytes(),
        3,
    )
    .await
    .unwrap();
    assert_eq!(n, 5, "COPY 5");

    let query = ordered("cp_csv");
    let out = copy_out(
        &client,
        &format!("COPY ({query}) TO STDOUT (FORMAT csv, HEADER)"),
    )
    .await
    .unwrap();
    assert_bytes_eq(&out, TYPES_CSV_OUT.as_bytes(), "CSV with HEADER");
    let out = copy_out(
        &client,
        &format!("COPY ({query}) TO STDOUT WITH CSV HEADER"),
    )
    .await
    .unwrap();
    assert_bytes_eq(&out, TYPES_CSV_OUT.as_bytes(), "legacy WITH CSV HEADER");
    let out = copy_out(&client, &format!("COPY ({query}) TO STDOUT"))
        .await
        .unwrap();
    assert_bytes_eq(
        &out,
        TYPES_TEXT_OUT.as_bytes(),
        "text output of the CSV input",
    );
    check_typed_values(&client, "cp_csv").await;
}

/// A NUMERIC value given as its binary wire form.
#[derive(Debug)]
struct RawNumeric(&'static str);

impl ToSql for RawNumeric {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&hex(self.0));
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

const TYPES_COLUMN_TYPES: [Type; 14] = [
    Type::INT4,
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::TEXT,
    Type::VARCHAR,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMP,
    Type::DATE,
    Type::BYTEA,
];

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_format_round_trip_of_every_type() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute("SET timezone = 'UTC'").await.unwrap();
    client.batch_execute(&types_ddl("cp_bin")).await.unwrap();
    client
        .batch_execute(&types_ddl("cp_bin_raw"))
        .await
        .unwrap();

    let utc = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
    let sink = client
        .copy_in("COPY cp_bin FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &TYPES_COLUMN_TYPES);
    pin_mut!(writer);
    writer
        .as_mut()
        .write(&[
            &1i32,
            &Some(true),
            &Some(1i16),
            &Some(2i32),
            &Some(3i64),
            &Some(1.5f32),
            &Some(0.1f64),
            &Some(RawNumeric("0002000000000002000c0d48")),
            &Some("hello"),
            &Some("abcde"),
            &Some(utc(2024, 1, 1, 12, 34, 56) + chrono::Duration::milliseconds(789)),
            &Some(date(2024, 1, 1).and_hms_opt(12, 34, 56).unwrap()),
            &Some(date(2024, 1, 2)),
            &Some(vec![0x00u8, 0xff]),
        ])
        .await
        .unwrap();
    writer
        .as_mut()
        .write(&[
            &2i32,
            &None::<bool>,
            &None::<i16>,
            &None::<i32>,
            &None::<i64>,
            &None::<f32>,
            &None::<f64>,
            &None::<RawNumeric>,
            &None::<&str>,
            &None::<&str>,
            &None::<chrono::DateTime<Utc>>,
            &None::<chrono::NaiveDateTime>,
            &None::<NaiveDate>,
            &None::<Vec<u8>>,
        ])
        .await
        .unwrap();
    writer
        .as_mut()
        .write(&[
            &3i32,
            &Some(false),
            &Some(i16::MIN),
            &Some(i32::MIN),
            &Some(i64::MIN),
            &Some(-3.4e38f32),
            &Some(1e-300f64),
            &Some(RawNumeric("0003000140000002270f270f26ac")),
            &Some(""),
            &Some(""),
            &Some(utc(1970, 1, 1, 0, 0, 0)),
            &Some(
                date(1999, 12, 31)
                    .and_hms_micro_opt(23, 59, 59, 999_999)
                    .unwrap(),
            ),
            &Some(date(1900, 1, 1)),
            &Some(Vec::<u8>::new()),
        ])
        .await
        .unwrap();
    writer
        .as_mut()
        .write(&[
            &4i32,
            &Some(true),
            &Some(i16::MAX),
            &Some(i32::MAX),
            &Some(i64::MAX),
            &Some(f32::INFINITY),
            &Some(f64::NEG_INFINITY),
            &Some(RawNumeric("0001ffff000000021388")),
            &Some("tab\there\nnew\\back,comma \"quote\" \r"),
            &Some("a,b\"c"),
            &Some(utc(2024, 7, 1, 4, 30, 0)),
            &Some(date(2024, 2, 29).and_hms_milli_opt(0, 0, 0, 500).unwrap()),
            &Some(date(2024, 2, 29)),
            &Some(vec![0x5cu8, 0x0a, 0x09]),
        ])
        .await
        .unwrap();
    writer
        .as_mut()
        .write(&[
            &5i32,
            &Some(false),
            &Some(0i16),
            &Some(0i32),
            &Some(0i64),
            &Some(f32::NAN),
            &Some(-0.0f64),
            &Some(RawNumeric("0000000000000002")),
            &Some("héllo ✓ \\N"),
            &Some("\\."),
            &Some(utc(2000, 1, 1, 0, 0, 0) + chrono::Duration::microseconds(1)),
            &Some(date(2038, 1, 19).and_hms_opt(3, 14, 8).unwrap()),
            &Some(date(2262, 4, 11)),
            &Some(vec![0xdeu8, 0xad, 0xbe, 0xef]),
        ])
        .await
        .unwrap();
    let n = writer.finish().await.unwrap();
    assert_eq!(n, 5, "COPY 5");

    let query = ordered("cp_bin");
    let out = copy_out(&client, &format!("COPY ({query}) TO STDOUT"))
        .await
        .unwrap();
    assert_bytes_eq(
        &out,
        TYPES_TEXT_OUT.as_bytes(),
        "text output of the binary input",
    );
    check_typed_values(&client, "cp_bin").await;

    // Binary output, byte for byte.
    let out = copy_out(
        &client,
        &format!("COPY ({query}) TO STDOUT (FORMAT binary)"),
    )
    .await
    .unwrap();
    let expected = hex(TYPES_BINARY_OUT);
    if out != expected {
        panic!(
            "binary COPY output differs from PostgreSQL's\n     got {}\nexpected {}",
            out.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            TYPES_BINARY_OUT
        );
    }

    // PostgreSQL's binary output is valid binary input.
    let n = copy_in_chunked(
        &client,
        "COPY cp_bin_raw FROM STDIN (FORMAT binary)",
        &expected,
        11,
    )
    .await
    .unwrap();
    assert_eq!(n, 5);
    let out = copy_out(
        &client,
        &format!("COPY ({}) TO STDOUT", ordered("cp_bin_raw")),
    )
    .await
    .unwrap();
    assert_bytes_eq(
        &out,
        TYPES_TEXT_OUT.as_bytes(),
        "PostgreSQL's binary stream read back",
    );

    // The driver's binary reader decodes the table's own binary output.
    let stream = client
        .copy_out("COPY cp_bin TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let rows: Vec<_> = BinaryCopyOutStream::new(stream, &TYPES_COLUMN_TYPES)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    let mut seen = BTreeMap::new();
    for row in &rows {
        let id: i32 = row.get(0);
        seen.insert(id, ());
        match id {
            1 => {
                assert_eq!(row.get::<Option<bool>>(1), Some(true));
                assert_eq!(row.get::<Option<f64>>(6), Some(0.1));
                assert_eq!(
                    row.get::<Option<PgNumeric>>(7),
                    Some(PgNumeric("12.34".into()))
                );
                assert_eq!(row.get::<Option<&str>>(9), Some("abcde"));
                assert_eq!(
                    row.get::<Option<chrono::DateTime<Utc>>>(10),
                    Some(utc(2024, 1, 1, 12, 34, 56) + chrono::Duration::milliseconds(789))
                );
                assert_eq!(row.get::<Option<&[u8]>>(13), Some(&[0x00u8, 0xff][..]));
            }
            2 => {
                assert_eq!(row.get::<Option<i64>>(4), None);
                assert_eq!(row.get::<Option<&str>>(8), None);
                assert_eq!(row.get::<Option<&[u8]>>(13), None);
            }
            3 => {
                assert_eq!(row.get::<Option<i64>>(4), Some(i64::MIN));
                assert_eq!(
                    row.get::<Option<PgNumeric>>(7),
                    Some(PgNumeric("-99999999.99".into()))
                );
                assert_eq!(row.get::<Option<&str>>(8), Some(""));
                assert_eq!(row.get::<Option<NaiveDate>>(12), Some(date(1900, 1, 1)));
            }
            4 => {
                assert_eq!(row.get::<Option<f32>>(5), Some(f32::INFINITY));
                assert_eq!(
                    row.get::<Option<&str>>(8),
                    Some("tab\there\nnew\\back,comma \"quote\" \r")
                );
            }
            5 => {
                assert!(row.get::<Option<f32>>(5).unwrap().is_nan());
                assert_eq!(
                    row.get::<Option<PgNumeric>>(7),
                    Some(PgNumeric("0.00".into()))
                );
                assert_eq!(row.get::<Option<NaiveDate>>(12), Some(date(2262, 4, 11)));
            }
            other => panic!("unexpected id {other}"),
        }
    }
    assert_eq!(seen.len(), 5, "ids 1..5 once each");
}

// ---------------------------------------------------------------------------
// Format options
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn csv_options_behave_like_postgres() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE cp_opts (id integer, a text, b text, n double precision)")
        .await
        .unwrap();
    // (statement, data, rows, what to do instead when the statement fails:
    // the failure is reported at the end, the other checks still run)
    let steps: [(&str, &str, u64, Option<&str>); 7] = [
        (
            // Unquoted empty = NULL, quoted empty = empty string; quoted
            // delimiters, newlines and doubled quotes; spaces are kept; \N
            // and NULL are data in CSV.
            "COPY cp_opts FROM STDIN (FORMAT csv)",
            "1,,\"\",\n2,\"x,y\",\"line1\nline2\",2.5\n3,\"say \"\"hi\"\"\",  spaced  ,3\n4,\\N,NULL,4\n",
            4,
            None,
        ),
        (
            "COPY cp_opts FROM STDIN (FORMAT csv, FORCE_NOT_NULL (a, b), FORCE_NULL (b))",
            "5,,\"\",5\n",
            1,
            None,
        ),
        (
            "COPY cp_opts FROM STDIN (FORMAT csv, NULL 'NA', DELIMITER ';', QUOTE '''', ESCAPE '\\')",
            "6;NA;'';6\n7;'it\\'s';'a;b';NA\n8;\"x\";'NA';8\n",
            3,
            None,
        ),
        (
            "COPY cp_opts FROM STDIN WITH CSV HEADER",
            "id,a,b,n\n9,h,h,9\n",
            1,
            None,
        ),
        (
            "COPY cp_opts FROM STDIN (FORMAT csv, HEADER MATCH)",
            "id,a,b,n\n10,m,m,10\n",
            1,
            Some("INSERT INTO cp_opts VALUES (10, 'm', 'm', 10)"),
        ),
        (
            "COPY cp_opts FROM STDIN (FORMAT text, HEADER true)",
            "whatever header\n11\tt\tt\t11\n",
            1,
            None,
        ),
        (
            "COPY cp_opts (n, id) FROM STDIN (FORMAT csv)",
            "12.5,12\n",
            1,
            None,
        ),
    ];
    let mut failures = Failures::default();
    for (sql, data, rows, instead) in steps {
        match (copy_in(&client, sql, data.as_bytes()).await, instead) {
            (Ok(n), _) => assert_eq!(n, rows, "{sql}"),
            (Err(e), Some(instead)) => {
                failures.push(sql, format!("{e:?}"));
                client.batch_execute(instead).await.unwrap();
            }
            (Err(e), None) => panic!("{sql}: {e:?}"),
        }
    }

    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows_text(&client, "SELECT id, a, b, n FROM cp_opts ORDER BY id").await,
        vec![
            vec![s("1"), None, s(""), None],
            vec![s("2"), s("x,y"), s("line1\nline2"), s("2.5")],
            vec![s("3"), s("say \"hi\""), s("  spaced  "), s("3")],
            vec![s("4"), s("\\N"), s("NULL"), s("4")],
            vec![s("5"), s(""), None, s("5")],
            vec![s("6"), None, s(""), s("6")],
            vec![s("7"), s("it's"), s("a;b"), None],
            vec![s("8"), s("\"x\""), s("NA"), s("8")],
            vec![s("9"), s("h"), s("h"), s("9")],
            vec![s("10"), s("m"), s("m"), s("10")],
            vec![s("11"), s("t"), s("t"), s("11")],
            vec![s("12"), None, None, s("12.5")],
        ]
    );

    let q = "SELECT * FROM cp_opts ORDER BY id";
    let cases: [(String, &str); 4] = [
        (
            format!("COPY ({q}) TO STDOUT (FORMAT csv, HEADER)"),
            concat!(
                "id,a,b,n\n",
                "1,,\"\",\n",
                "2,\"x,y\",\"line1\n",
                "line2\",2.5\n",
                "3,\"say \"\"hi\"\"\",  spaced  ,3\n",
                "4,\\N,NULL,4\n",
                "5,\"\",,5\n",
                "6,,\"\",6\n",
                "7,it's,a;b,\n",
                "8,\"\"\"x\"\"\",NA,8\n",
                "9,h,h,9\n",
                "10,m,m,10\n",
                "11,t,t,11\n",
                "12,,,12.5\n",
            ),
        ),
        (
            format!("COPY ({q}) TO STDOUT (FORMAT text, NULL 'NA', DELIMITER ',')"),
            concat!(
                "1,NA,,NA\n",
                "2,x\\,y,line1\\nline2,2.5\n",
                "3,say \"hi\",  spaced  ,3\n",
                "4,\\\\N,NULL,4\n",
                "5,,NA,5\n",
                "6,NA,,6\n",
                "7,it's,a;b,NA\n",
                "8,\"x\",NA,8\n",
                "9,h,h,9\n",
                "10,m,m,10\n",
                "11,t,t,11\n",
                "12,NA,NA,12.5\n",
            ),
        ),
        (
            format!(
                "COPY ({q}) TO STDOUT (FORMAT csv, NULL 'NA', DELIMITER ';', QUOTE '''', ESCAPE '\\')"
            ),
            concat!(
                "1;NA;;NA\n",
                "2;x,y;'line1\n",
                "line2';2.5\n",
                "3;say \"hi\";  spaced  ;3\n",
                "4;\\N;NULL;4\n",
                "5;;NA;5\n",
                "6;NA;;6\n",
                "7;'it\\'s';'a;b';NA\n",
                "8;\"x\";'NA';8\n",
                "9;h;h;9\n",
                "10;m;m;10\n",
                "11;t;t;11\n",
                "12;NA;NA;12.5\n",
            ),
        ),
        (
            format!("COPY ({q}) TO STDOUT WITH CSV"),
            concat!(
                "1,,\"\",\n",
                "2,\"x,y\",\"line1\n",
                "line2\",2.5\n",
                "3,\"say \"\"hi\"\"\",  spaced  ,3\n",
                "4,\\N,NULL,4\n",
                "5,\"\",,5\n",
                "6,,\"\",6\n",
                "7,it's,a;b,\n",
                "8,\"\"\"x\"\"\",NA,8\n",
                "9,h,h,9\n",
                "10,m,m,10\n",
                "11,t,t,11\n",
                "12,,,12.5\n",
            ),
        ),
    ];
    for (sql, expected) in cases {
        let out = copy_out(&client, &sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_bytes_eq(&out, expected.as_bytes(), &sql);
    }
    failures.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn text_format_escapes_behave_like_postgres() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE cp_esc (id integer, s text, by bytea)")
        .await
        .unwrap();
    // \t \n \r \\ \b \f \v, octal and hex escapes, \N, an empty field, a
    // trailing escaped backslash, an unknown escape (\z is z); bytea input
    // goes through both COPY's and bytea's unescaping.
    let data = concat!(
        "1\ta\\tb\\nc\\rd\\\\e\\bf\\fg\\vh\t\\\\x41\n",
        "2\t\\101\\x42\\103\\x4\t\\\\001\\\\\\\\\n",
        "3\t\\N\t\\N\n",
        "4\t\t\n",
        "5\ttrailing\\\\\t\\\\x\n",
        "6\tback\\zslash\tabc\n",
    );
    assert_eq!(
        copy_in(&client, "COPY cp_esc FROM STDIN", data.as_bytes())
            .await
            .unwrap(),
        6
    );
    // Another delimiter and NULL string: \| is a literal |, and \N is now
    // just an escaped N.
    let data = "7|pipe\\|inside|NULL\n8|\\N|\\\\x00\n";
    assert_eq!(
        copy_in(
            &client,
            "COPY cp_esc FROM STDIN (DELIMITER '|', NULL 'NULL')",
            data.as_bytes()
        )
        .await
        .unwrap(),
        2
    );

    let row = client
        .query_one("SELECT s, by FROM cp_esc WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "a\tb\nc\rd\\e\u{8}f\u{c}g\u{b}h");
    assert_eq!(row.get::<_, Vec<u8>>(1), b"A".to_vec());
    let row = client
        .query_one("SELECT s, by FROM cp_esc WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ABC\u{4}");
    assert_eq!(row.get::<_, Vec<u8>>(1), vec![0x01, b'\\']);
    let row = client
        .query_one("SELECT s IS NULL, by IS NULL FROM cp_esc WHERE id = 4", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, bool>(0), row.get::<_, bool>(1)),
        (false, false)
    );

    let q = "SELECT * FROM cp_esc ORDER BY id";
    let out = copy_out(&client, &format!("COPY ({q}) TO STDOUT"))
        .await
        .unwrap();
    assert_bytes_eq(
        &out,
        concat!(
            "1\ta\\tb\\nc\\rd\\\\e\\bf\\fg\\vh\t\\\\x41\n",
            "2\tABC\u{4}\t\\\\x015c\n",
            "3\t\\N\t\\N\n",
            "4\t\t\\\\x\n",
            "5\ttrailing\\\\\t\\\\x\n",
            "6\tbackzslash\t\\\\x616263\n",
            "7\tpipe|inside\t\\N\n",
            "8\tN\t\\\\x00\n",
        )
        .as_bytes(),
        "text escapes",
    );
    let out = copy_out(&client, &format!("COPY ({q}) TO STDOUT (FORMAT csv)"))
        .await
        .unwrap();
    assert_bytes_eq(
        &out,
        concat!(
            "1,\"a\tb\n",
            "c\rd\\e\u{8}f\u{c}g\u{b}h\",\\x41\n",
            "2,ABC\u{4},\\x015c\n",
            "3,,\n",
            "4,\"\",\\x\n",
            "5,trailing\\,\\x\n",
            "6,backzslash,\\x616263\n",
            "7,pipe|inside,\n",
            "8,N,\\x00\n",
        )
        .as_bytes(),
        "CSV of the escaped values",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn column_lists_fill_the_other_columns_with_defaults() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute("SET timezone = 'UTC'").await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE cp_def (time timestamptz NOT NULL, device text DEFAULT 'none', \
             v double precision DEFAULT 42, note text)",
        )
        .await
        .unwrap();
    assert_eq!(
        copy_in(
            &client,
            "COPY cp_def (note, time) FROM STDIN",
            b"hello\t2024-01-01 00:00:00+00\n"
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        copy_in(
            &client,
            "COPY cp_def (time) FROM STDIN (FORMAT csv)",
            b"2024-01-01 00:01:00+00\n"
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        copy_in(
            &client,
            "COPY cp_def (v, device, time) FROM STDIN (FORMAT csv)",
            b"7.5,d1,2024-01-01 00:02:00+00\n,,2024-01-01 00:03:00+00\n"
        )
        .await
        .unwrap(),
        2
    );
    // The omitted NOT NULL column gets NULL: 23502, nothing stored.
    let err = copy_in(&client, "COPY cp_def (device) FROM STDIN", b"x\n")
        .await
        .unwrap_err();
    let mut failures = Failures::default();
    failures.check_db_error(
        &err,
        "23502",
        "null value in column \"time\" of relation \"cp_def\" violates not-null constraint",
        Some("COPY cp_def, line 1: \"x\""),
        "COPY of a column list without the NOT NULL column",
    );
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("23502"),
        "{err:?}"
    );
    let out = copy_out(
        &client,
        "COPY (SELECT * FROM cp_def ORDER BY time) TO STDOUT",
    )
    .await
    .unwrap();
    assert_bytes_eq(
        &out,
        concat!(
            "2024-01-01 00:00:00+00\tnone\t42\thello\n",
            "2024-01-01 00:01:00+00\tnone\t42\t\\N\n",
            "2024-01-01 00:02:00+00\td1\t7.5\t\\N\n",
            "2024-01-01 00:03:00+00\t\\N\t\\N\t\\N\n",
        )
        .as_bytes(),
        "defaults of omitted columns",
    );
    failures.finish();
}

// ---------------------------------------------------------------------------
// Hypertables and large COPYs
// ---------------------------------------------------------------------------

/// `2024-01-01 00:00:00+00` plus `secs` seconds, as PostgreSQL prints it
/// (valid for the first 31 days).
fn jan_2024(secs: u64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    assert!(d < 31);
    format!(
        "2024-01-{:02} {:02}:{:02}:{:02}+00",
        d + 1,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_into_a_hypertable_creates_its_chunks() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute("SET timezone = 'UTC'").await.unwrap();
    client
        .batch_execute("CREATE TABLE cp_ht (time timestamptz NOT NULL, device text, v bigint)")
        .await
        .unwrap();
    client
        .query_one(
            "SELECT create_hypertable('cp_ht', 'time', chunk_time_interval => INTERVAL '1 day')",
            &[],
        )
        .await
        .unwrap();

    // One row every 10 minutes over 5 days: 144 rows per 1-day chunk.
    let mut csv = String::new();
    for i in 0..720u64 {
        let _ = writeln!(csv, "{},d{},{i}", jan_2024(600 * i), i % 3);
    }
    let n = copy_in_chunked(
        &client,
        "COPY cp_ht FROM STDIN (FORMAT csv)",
        csv.as_bytes(),
        1000,
    )
    .await
    .unwrap();
    assert_eq!(n, 720);
    let chunks: i64 = client
        .query_one("SELECT count(*) FROM show_chunks('cp_ht')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 5, "5 days of rows, 1-day chunks");
    for day in 0..5u64 {
        let (lo, hi) = (jan_2024(day * 86_400), jan_2024((day + 1) * 86_400));
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), sum(v)::int8, min(v), max(v) FROM cp_ht \
                     WHERE time >= '{lo}' AND time < '{hi}'"
                ),
                &[],
            )
            .await
            .unwrap();
        let first = (day * 144) as i64;
        let last = first + 143;
        assert_eq!(
            (
                row.get::<_, i64>(0),
                row.get::<_, Option<i64>>(1),
                row.get::<_, Option<i64>>(2),
                row.get::<_, Option<i64>>(3)
            ),
            (144, Some((first + last) * 144 / 2), Some(first), Some(last)),
            "rows of day {day}"
        );
    }
    let per_day = rows_text(
        &client,
        "SELECT time_bucket('1 day', time) AS day, count(*) FROM cp_ht GROUP BY day ORDER BY day",
    )
    .await;
    assert_eq!(
        per_day,
        (0..5u64)
            .map(|d| vec![Some(jan_2024(d * 86_400)), Some("144".to_string())])
            .collect::<Vec<_>>()
    );

    // Out of order, into existing chunks and a new one (day 6), in text format.
    let mut text = String::new();
    for i in (0..48u64).rev() {
        let _ = writeln!(
            text,
            "{}\td9\t{}",
            jan_2024(4 * 86_400 + 3600 * i),
            1000 + i
        );
    }
    let n = copy_in(&client, "COPY cp_ht FROM STDIN", text.as_bytes())
        .await
        .unwrap();
    assert_eq!(n, 48);
    let chunks: i64 = client
        .query_one("SELECT count(*) FROM show_chunks('cp_ht')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 6, "a sixth day adds a chunk");
    let row = client
        .query_one("SELECT count(*), sum(v)::int8 FROM cp_ht", &[])
        .await
        .unwrap();
    let expected_sum = (0..720i64).sum::<i64>() + (1000..1048i64).sum::<i64>();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (768, expected_sum)
    );
    let row = client
        .query_one(
            "SELECT count(*) FROM cp_ht WHERE time >= '2024-01-06 00:00:00+00'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 24);
}

/// Rows of the large COPYs: one per second from 2024-01-01 (12 one-day
/// chunks for 1,000,000 rows), a ~70-byte text so that the decoded rows
/// pass the 64 MiB mark well before the end, v = row number. Line
/// `bad_line` (1-based), if any, has "oops" as its v.
const BIG_ROWS: u64 = 1_000_000;

fn big_copy_data(rows: u64, bad_line: Option<u64>) -> Vec<u8> {
    let pad = "x".repeat(60);
    let mut out = Vec::with_capacity(rows as usize * 100);
    for i in 0..rows {
        let v = if bad_line == Some(i + 1) {
            "oops".to_string()
        } else {
            i.to_string()
        };
        let _ = writeln!(
            CharSink(&mut out),
            "{}\tdevice-{:03}-{pad}\t{v}",
            jan_2024(i),
            i % 1000
        );
    }
    out
}

/// `fmt::Write` into a byte vector.
struct CharSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for CharSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

async fn create_big_table(client: &Client, table: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (time timestamptz NOT NULL, device text, v bigint)"
        ))
        .await
        .unwrap();
    client
        .query_one(
            &format!(
                "SELECT create_hypertable('{table}', 'time', chunk_time_interval => INTERVAL '1 day')"
            ),
            &[],
        )
        .await
        .unwrap();
}

async fn assert_big_rows(client: &Client, table: &str, rows: i64, what: &str) {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), sum(v)::int8, min(v), max(v), min(time), max(time) FROM {table}"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(row.get::<_, i64>(0), rows, "{what}: count");
    assert_eq!(
        row.get::<_, Option<i64>>(1),
        Some(rows * (rows - 1) / 2),
        "{what}: sum(v)"
    );
    assert_eq!(row.get::<_, Option<i64>>(2), Some(0), "{what}: min(v)");
    assert_eq!(
        row.get::<_, Option<i64>>(3),
        Some(rows - 1),
        "{what}: max(v)"
    );
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(
        row.get::<_, Option<chrono::DateTime<Utc>>>(4),
        Some(t0),
        "{what}: min(time)"
    );
    assert_eq!(
        row.get::<_, Option<chrono::DateTime<Utc>>>(5),
        Some(t0 + chrono::Duration::seconds(rows - 1)),
        "{what}: max(time)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn large_copy_is_written_to_files_and_survives_kill_9() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    create_big_table(&client, "cp_big").await;
    let data = big_copy_data(BIG_ROWS, None);
    let started = Instant::now();
    let n = copy_in(&client, "COPY cp_big FROM STDIN", &data)
        .await
        .unwrap();
    eprintln!(
        "COPY of {} rows ({} MiB) took {:?}",
        BIG_ROWS,
        data.len() >> 20,
        started.elapsed()
    );
    assert_eq!(n, BIG_ROWS);
    // The rows went to Parquet files, not through the WAL.
    let wal = dir_bytes(&server.data_dir().join("wal"));
    assert!(
        wal < 16 << 20,
        "the WAL holds {wal} bytes after a {} MiB COPY: a large COPY must write files, not WAL records",
        data.len() >> 20
    );
    assert!(
        !parquet_files(&server.data_dir().join("chunks")).is_empty(),
        "no Parquet file under chunks/ after a large COPY"
    );
    assert_big_rows(&client, "cp_big", BIG_ROWS as i64, "after COPY").await;
    let chunks: i64 = client
        .query_one("SELECT count(*) FROM show_chunks('cp_big')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 12, "1,000,000 seconds span 12 days");
    let day3: i64 = client
        .query_one(
            "SELECT count(*) FROM cp_big WHERE time >= '2024-01-03 00:00:00+00' AND time < '2024-01-04 00:00:00+00'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(day3, 86_400);
    drop(client);

    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    assert_big_rows(&client, "cp_big", BIG_ROWS as i64, "after kill -9").await;

    // The table takes more rows after recovery (a small COPY, via the WAL).
    let n = copy_in(
        &client,
        "COPY cp_big FROM STDIN",
        format!("{}\tlate\t-5\n", jan_2024(BIG_ROWS)).as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    let row = client
        .query_one("SELECT count(*), sum(v)::int8 FROM cp_big", &[])
        .await
        .unwrap();
    let big = BIG_ROWS as i64;
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (big + 1, big * (big - 1) / 2 - 5)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_large_copies_leave_nothing_behind() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    create_big_table(&client, "cp_bigfail").await;
    // A few rows already there (through the WAL).
    let n = copy_in(
        &client,
        "COPY cp_bigfail FROM STDIN",
        b"2024-01-01 00:00:00+00\tkeep\t0\n2024-01-01 00:00:01+00\tkeep\t1\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    let files_before = parquet_files(&server.data_dir());

    // 1. A bad value near the end, after ~64 MiB of rows were written to files.
    let bad_line = 950_001;
    let data = big_copy_data(BIG_ROWS, Some(bad_line));
    let err = copy_in(&client, "COPY cp_bigfail FROM STDIN", &data)
        .await
        .unwrap_err();
    assert_db_error(
        &err,
        "22P02",
        "invalid input syntax for type bigint: \"oops\"",
        Some(&format!(
            "COPY cp_bigfail, line {bad_line}, column v: \"oops\""
        )),
        "bad row in a large COPY",
    );
    assert_alive(&client, "a failed large COPY").await;
    assert_big_rows(&client, "cp_bigfail", 2, "after the failed large COPY").await;
    assert_parquet_files_become(&server, &files_before, "failed large COPY").await;

    // Only the first 950,000 rows (the good ones) are sent from here on.
    let good = &data[..data
        .split(|b| *b == b'\n')
        .take(bad_line as usize - 1)
        .map(|l| l.len() + 1)
        .sum::<usize>()];

    // 2. CopyFail after the same rows.
    let mut stream = wire::connect_ready(server.port()).await.unwrap();
    stream
        .write_all(&wire::query_message("COPY cp_bigfail FROM STDIN"))
        .await
        .unwrap();
    let m = raw::read_until(&mut stream, b"GEZ").await;
    assert_eq!(
        m.last().unwrap().0,
        b'G',
        "CopyInResponse: {}",
        raw::tags(&m)
    );
    for piece in good.chunks(1 << 20) {
        stream.write_all(&raw::copy_data(piece)).await.unwrap();
    }
    stream
        .write_all(&raw::copy_fail("giving up"))
        .await
        .unwrap();
    let m = raw::read_until(&mut stream, b"Z").await;
    let e = raw::error(&m);
    assert_eq!(e.get(&'C').map(String::as_str), Some("57014"));
    assert_eq!(
        e.get(&'M').map(String::as_str),
        Some("COPY from stdin failed: giving up")
    );
    assert_big_rows(&client, "cp_bigfail", 2, "after CopyFail of a large COPY").await;
    assert_parquet_files_become(&server, &files_before, "large COPY ended by CopyFail").await;
    // The raw connection is still usable.
    assert_eq!(
        raw_query_rows(&mut stream, "SELECT count(*) FROM cp_bigfail").await,
        vec![vec![Some("2".to_string())]]
    );

    // 3. The client disappears after the same rows.
    let mut stream = wire::connect_ready(server.port()).await.unwrap();
    stream
        .write_all(&wire::query_message("COPY cp_bigfail FROM STDIN"))
        .await
        .unwrap();
    let m = raw::read_until(&mut stream, b"GEZ").await;
    assert_eq!(
        m.last().unwrap().0,
        b'G',
        "CopyInResponse: {}",
        raw::tags(&m)
    );
    for piece in good.chunks(1 << 20) {
        stream.write_all(&raw::copy_data(piece)).await.unwrap();
    }
    stream.flush().await.unwrap();
    drop(stream);
    assert_parquet_files_become(&server, &files_before, "large COPY of a vanished client").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_big_rows(&client, "cp_bigfail", 2, "after a client vanished mid-COPY").await;

    // And a good COPY still works.
    let n = copy_in(
        &client,
        "COPY cp_bigfail FROM STDIN",
        b"2024-01-01 00:00:02+00\tkeep\t2\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert_big_rows(&client, "cp_bigfail", 3, "after a good COPY").await;
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

struct BadCase {
    sql: &'static str,
    data: &'static [u8],
    code: &'static str,
    message: &'static str,
    context: Option<&'static str>,
}

const BAD_CASES: &[BadCase] = &[
    BadCase {
        sql: "COPY cp_bad FROM STDIN",
        data: b"2024-01-02 00:00:00+00\ta\t1.5\n2024-01-02 00:01:00+00\tb\t2.5\n2024-01-02 00:02:00+00\tc\tabc\n",
        code: "22P02",
        message: "invalid input syntax for type double precision: \"abc\"",
        context: Some("COPY cp_bad, line 3, column temperature: \"abc\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN",
        data: b"2024-01-02 00:00:00+00\ta\t1.5\n2024-01-02 00:01:00+00\tb\n",
        code: "22P04",
        message: "missing data for column \"temperature\"",
        context: Some("COPY cp_bad, line 2: \"2024-01-02 00:01:00+00\tb\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN",
        data: b"2024-01-02 00:00:00+00\ta\t1.5\t7\n",
        code: "22P04",
        message: "extra data after last expected column",
        context: Some("COPY cp_bad, line 1: \"2024-01-02 00:00:00+00\ta\t1.5\t7\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN (FORMAT csv)",
        data: b"2024-01-02 00:00:00+00,x,1,2\n",
        code: "22P04",
        message: "extra data after last expected column",
        context: Some("COPY cp_bad, line 1: \"2024-01-02 00:00:00+00,x,1,2\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN (FORMAT csv)",
        data: b"2024-01-02 00:00:00+00,\"a,1.5\n",
        code: "22P04",
        message: "unterminated CSV quoted field",
        context: Some("COPY cp_bad, line 1: \"2024-01-02 00:00:00+00,\"a,1.5\n\""),
    },
    BadCase {
        // A quoted newline does not start a new line number.
        sql: "COPY cp_bad FROM STDIN (FORMAT csv)",
        data: b"2024-01-02 00:00:00+00,\"a\nb\",1\n2024-01-02 00:00:00+00,x,y\n",
        code: "22P02",
        message: "invalid input syntax for type double precision: \"y\"",
        context: Some("COPY cp_bad, line 2, column temperature: \"y\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN",
        data: b"2024-01-02 00:00:00+00\ta\t1\n2024-01-02 00:01:00+00\ta\t1\n2024-01-02 00:02:00+00\ta\xff\t1\n",
        code: "22021",
        message: "invalid byte sequence for encoding \"UTF8\": 0xff",
        context: Some("COPY cp_bad, line 3"),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN (FORMAT csv)",
        data: b"2024-01-02 00:00:00+00,ab\xc3\x28,1\n",
        code: "22021",
        message: "invalid byte sequence for encoding \"UTF8\": 0xc3 0x28",
        context: Some("COPY cp_bad, line 1"),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN",
        data: b"2024-01-02 00:00:00+00\ta\x00b\t1\n",
        code: "22021",
        message: "invalid byte sequence for encoding \"UTF8\": 0x00",
        context: Some("COPY cp_bad, line 1"),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN",
        data: b"2024-01-02 00:00:00+00\ta\t1.5\n\\N\tb\t2.5\n",
        code: "23502",
        message: "null value in column \"time\" of relation \"cp_bad\" violates not-null constraint",
        context: Some("COPY cp_bad, line 2: \"\\N\tb\t2.5\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN",
        data: b"2024-01-02 00:00:00+00\tabcde\t1\n2024-01-02 00:00:00+00\tabcdef\t1\n",
        code: "22001",
        message: "value too long for type character varying(5)",
        context: Some("COPY cp_bad, line 2, column device: \"abcdef\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN",
        data: b"2024-01-02 00:00:00+00\ta\t1e400\n",
        code: "22003",
        message: "\"1e400\" is out of range for type double precision",
        context: Some("COPY cp_bad, line 1, column temperature: \"1e400\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN",
        data: b"garbage\ta\t1\n",
        code: "22007",
        message: "invalid input syntax for type timestamp with time zone: \"garbage\"",
        context: Some("COPY cp_bad, line 1, column time: \"garbage\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN (FORMAT csv)",
        data: b"2024-01-02 00:00:00+00,,\"\"\n",
        code: "22P02",
        message: "invalid input syntax for type double precision: \"\"",
        context: Some("COPY cp_bad, line 1, column temperature: \"\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN (FORMAT csv, HEADER MATCH)",
        data: b"time,dev,temperature\n2024-01-02 00:00:00+00,a,1\n",
        code: "22P04",
        message: "column name mismatch in header line field 2: got \"dev\", expected \"device\"",
        context: Some("COPY cp_bad, line 1: \"time,dev,temperature\""),
    },
    BadCase {
        sql: "COPY cp_bad FROM STDIN (FORMAT binary)",
        data: b"not a binary copy",
        code: "22P04",
        message: "COPY file signature not recognized",
        context: None,
    },
    BadCase {
        // A tuple with 2 fields for a 3-column table.
        sql: "COPY cp_bad FROM STDIN (FORMAT binary)",
        data: b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\0\x02\0\0\0\x08\0\0\0\0\0\0\0\0\0\0\0\x01a\xff\xff",
        code: "22P04",
        message: "row field count is 2, expected 3",
        context: Some("COPY cp_bad, line 1"),
    },
    BadCase {
        // The data ends inside the first field.
        sql: "COPY cp_bad FROM STDIN (FORMAT binary)",
        data: b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\0\x03\0\0\0\x08\0\0\0\0",
        code: "22P04",
        message: "unexpected EOF in COPY data",
        context: Some("COPY cp_bad, line 1, column time"),
    },
];

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_fail_the_whole_copy_with_postgres_errors() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute("SET timezone = 'UTC'").await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE cp_bad (time timestamptz NOT NULL, device varchar(5), temperature double precision);
             INSERT INTO cp_bad VALUES ('2024-01-01 00:00:00+00', 'x', 1), ('2024-01-01 00:00:01+00', 'y', 2);",
        )
        .await
        .unwrap();
    let q = "SELECT time, device, temperature FROM cp_bad ORDER BY time";
    let before = rows_text(&client, q).await;
    assert_eq!(before.len(), 2);

    let mut failures = Failures::default();
    for case in BAD_CASES {
        let what = format!("{} with {:?}", case.sql, String::from_utf8_lossy(case.data));
        // Whole, and in 5-byte pieces (errors must not depend on message
        // boundaries).
        for chunk in [usize::MAX, 5] {
            let what = format!("{what} (CopyData of {} bytes)", chunk.min(case.data.len()));
            match copy_in_chunked(&client, case.sql, case.data, chunk).await {
                Ok(n) => failures.push(&what, format!("accepted ({n} rows)")),
                Err(err) => {
                    failures.check_db_error(&err, case.code, case.message, case.context, &what)
                }
            }
            let now = rows_text(&client, q).await;
            if now != before {
                failures.push(&what, format!("the table changed: {now:?}"));
                client
                    .batch_execute("DELETE FROM cp_bad WHERE time >= '2024-01-02 00:00:00+00'")
                    .await
                    .unwrap();
            }
            assert_alive(&client, &what).await;
        }
    }

    // The same through psql (simple protocol): psql prints the CONTEXT.
    let out = server.psql_script(
        "COPY cp_bad FROM STDIN;\n2024-01-02 00:00:00+00\ta\t1\n2024-01-02 00:00:01+00\tb\tabc\n\\.\n",
        true,
    );
    if out.status.success()
        || !out.stderr.contains(
            "ERROR:  invalid input syntax for type double precision: \"abc\"\nCONTEXT:  COPY cp_bad, line 2, column temperature: \"abc\"",
        )
    {
        failures.push("psql COPY FROM STDIN with a bad row", format!("{out:?}"));
    }
    assert_eq!(
        rows_text(&client, q).await,
        before,
        "psql: the table changed"
    );

    // After all that, a good COPY on the same connection.
    let n = copy_in(
        &client,
        "COPY cp_bad FROM STDIN",
        b"2024-01-02 00:00:00+00\tz\t3\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(count(&client, "cp_bad").await, 3);
    failures.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_fail_from_the_client_discards_the_rows() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cp_fail (time timestamptz NOT NULL, v integer);
             INSERT INTO cp_fail VALUES ('2024-01-01 00:00:00+00', 1);",
        )
        .await
        .unwrap();
    let rows = b"2024-01-01 00:00:01+00\t2\n2024-01-01 00:00:02+00\t3\n";

    // tokio-postgres sends CopyFail when the sink is dropped unfinished.
    {
        let sink = client
            .copy_in::<_, Cursor<Vec<u8>>>("COPY cp_fail FROM STDIN")
            .await
            .unwrap();
        pin_mut!(sink);
        sink.send(Cursor::new(rows.to_vec())).await.unwrap();
        sink.flush().await.unwrap();
    }
    assert_alive(&client, "a dropped CopyInSink").await;
    assert_eq!(
        count(&client, "cp_fail").await,
        1,
        "rows of an abandoned COPY are visible"
    );

    // Simple protocol: CopyFail with a message, after two whole rows.
    let mut stream = wire::connect_ready(server.port()).await.unwrap();
    stream
        .write_all(&wire::query_message("COPY cp_fail FROM STDIN"))
        .await
        .unwrap();
    let m = raw::read_until(&mut stream, b"GEZ").await;
    assert_eq!(raw::tags(&m), "G", "CopyInResponse");
    let mut msgs = raw::copy_data(rows);
    msgs.extend(raw::copy_fail("client gave up"));
    stream.write_all(&msgs).await.unwrap();
    let m = raw::read_until(&mut stream, b"Z").await;
    assert_eq!(raw::tags(&m), "EZ", "ErrorResponse then ReadyForQuery");
    let e = raw::error(&m);
    assert_eq!(e.get(&'C').map(String::as_str), Some("57014"), "{e:?}");
    assert_eq!(
        e.get(&'M').map(String::as_str),
        Some("COPY from stdin failed: client gave up"),
        "{e:?}"
    );
    // PostgreSQL names the line the COPY stopped at.
    let mut failures = Failures::default();
    if e.get(&'W').map(String::as_str) != Some("COPY cp_fail, line 3") {
        failures.push(
            "CopyFail after 2 rows",
            format!(
                "CONTEXT {:?}, expected \"COPY cp_fail, line 3\"",
                e.get(&'W')
            ),
        );
    }
    assert_eq!(m.last().unwrap().1, b"I", "idle after the failed COPY");
    assert_eq!(
        raw_query_rows(&mut stream, "SELECT count(*) FROM cp_fail").await,
        vec![vec![Some("1".to_string())]]
    );

    // Extended protocol: Parse/Bind/Execute, CopyData, CopyFail, Sync.
    let mut msgs = raw::parse_bind_execute("COPY cp_fail FROM STDIN");
    msgs.extend(raw::copy_data(rows));
    stream.write_all(&msgs).await.unwrap();
    let m = raw::read_until(&mut stream, b"GEZ").await;
    assert_eq!(
        raw::tags(&m),
        "12G",
        "ParseComplete, BindComplete, CopyInResponse"
    );
    let mut msgs = raw::copy_fail("oops");
    msgs.extend(raw::sync());
    stream.write_all(&msgs).await.unwrap();
    let m = raw::read_until(&mut stream, b"Z").await;
    assert_eq!(raw::tags(&m), "EZ");
    let e = raw::error(&m);
    assert_eq!(e.get(&'C').map(String::as_str), Some("57014"), "{e:?}");
    assert_eq!(
        e.get(&'M').map(String::as_str),
        Some("COPY from stdin failed: oops"),
        "{e:?}"
    );
    assert_eq!(
        raw_query_rows(&mut stream, "SELECT count(*) FROM cp_fail").await,
        vec![vec![Some("1".to_string())]]
    );

    // A COPY on the same raw connection then succeeds: COPY 2.
    stream
        .write_all(&wire::query_message("COPY cp_fail FROM STDIN"))
        .await
        .unwrap();
    raw::read_until(&mut stream, b"GEZ").await;
    let mut msgs = raw::copy_data(rows);
    msgs.extend(raw::copy_done());
    stream.write_all(&msgs).await.unwrap();
    let m = raw::read_until(&mut stream, b"Z").await;
    assert_eq!(raw::tags(&m), "CZ");
    assert_eq!(command_tag(&m).as_deref(), Some("COPY 2"));

    // COPY TO STDOUT over the simple protocol: CopyOutResponse, one
    // CopyData per row, CopyDone, CommandComplete "COPY n".
    stream
        .write_all(&wire::query_message(
            "COPY (SELECT v FROM cp_fail ORDER BY v) TO STDOUT (FORMAT csv)",
        ))
        .await
        .unwrap();
    let m = raw::read_until(&mut stream, b"Z").await;
    assert_eq!(raw::tags(&m), "HdddcCZ");
    assert_eq!(
        m[0].1,
        vec![0, 0, 1, 0, 0],
        "CopyOutResponse: CSV is text, 1 column"
    );
    let data: Vec<&[u8]> = m[1..4].iter().map(|(_, b)| b.as_slice()).collect();
    assert_eq!(data, [&b"1\n"[..], b"2\n", b"3\n"]);
    assert_eq!(command_tag(&m).as_deref(), Some("COPY 3"));
    assert_eq!(count(&client, "cp_fail").await, 3);
    failures.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_mid_copy_leaves_nothing() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cp_drop (time timestamptz NOT NULL, v integer);
             INSERT INTO cp_drop VALUES ('2024-01-01 00:00:00+00', -1);",
        )
        .await
        .unwrap();
    let mut rows = String::new();
    for i in 0..5000u64 {
        let _ = writeln!(rows, "{}\t{i}", jan_2024(i + 1));
    }
    // Simple protocol, then extended protocol; all rows whole, no CopyDone.
    for extended in [false, true] {
        let mut stream = wire::connect_ready(server.port()).await.unwrap();
        let start = if extended {
            let mut m = raw::parse_bind_execute("COPY cp_drop FROM STDIN");
            m.extend(raw::sync());
            m
        } else {
            wire::query_message("COPY cp_drop FROM STDIN")
        };
        stream.write_all(&start).await.unwrap();
        let m = raw::read_until(&mut stream, b"GEZ").await;
        assert_eq!(
            m.last().unwrap().0,
            b'G',
            "CopyInResponse: {}",
            raw::tags(&m)
        );
        stream
            .write_all(&raw::copy_data(rows.as_bytes()))
            .await
            .unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(stream);
    }
    // Nothing appears, now or a little later.
    for _ in 0..5 {
        assert_eq!(count(&client, "cp_drop").await, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The table still takes a COPY.
    let n = copy_in(&client, "COPY cp_drop FROM STDIN", rows.as_bytes())
        .await
        .unwrap();
    assert_eq!(n, 5000);
    assert_eq!(count(&client, "cp_drop").await, 5001);
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_statement_errors() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cp_se (time timestamptz NOT NULL, device text, v double precision);
             INSERT INTO cp_se VALUES ('2024-01-01 00:00:00+00', 'a', 1);",
        )
        .await
        .unwrap();
    // Server-side files and programs are not supported: COPY reads from the
    // client (STDIN) and writes to it (STDOUT) only.
    let unsupported = [
        "COPY cp_se FROM '/tmp/tempora-copy-test-input'",
        "COPY cp_se TO '/tmp/tempora-copy-test-output'",
        "COPY cp_se FROM PROGRAM 'true'",
        "COPY cp_se TO PROGRAM 'cat'",
        "COPY (SELECT 1) TO '/tmp/tempora-copy-test-output'",
    ];
    for sql in unsupported {
        for extended in [false, true] {
            let err = if extended {
                client.execute(sql, &[]).await.map(|_| ()).unwrap_err()
            } else {
                client.simple_query(sql).await.map(|_| ()).unwrap_err()
            };
            let db = err
                .as_db_error()
                .unwrap_or_else(|| panic!("{sql}: {err:?}"));
            assert_eq!(db.code().code(), "0A000", "{sql}: {}", db.message());
            assert_alive(&client, sql).await;
        }
    }
    assert!(
        !Path::new("/tmp/tempora-copy-test-output").exists(),
        "COPY TO a server file wrote it"
    );

    let cases: [(&str, &str, &str); 13] = [
        (
            "COPY nosuch FROM STDIN",
            "42P01",
            "relation \"nosuch\" does not exist",
        ),
        (
            "COPY nosuch TO STDOUT",
            "42P01",
            "relation \"nosuch\" does not exist",
        ),
        (
            "COPY cp_se (time, nosuch) FROM STDIN",
            "42703",
            "column \"nosuch\" of relation \"cp_se\" does not exist",
        ),
        (
            "COPY cp_se (nosuch) TO STDOUT",
            "42703",
            "column \"nosuch\" of relation \"cp_se\" does not exist",
        ),
        (
            "COPY cp_se (time, time) FROM STDIN",
            "42701",
            "column \"time\" specified more than once",
        ),
        (
            "COPY cp_se FROM STDIN (FORMAT bogus)",
            "22023",
            "COPY format \"bogus\" not recognized",
        ),
        (
            "COPY cp_se FROM STDIN (bogus 1)",
            "42601",
            "option \"bogus\" not recognized",
        ),
        (
            "COPY cp_se FROM STDIN (FORCE_NULL (device))",
            "0A000",
            "COPY force null available only in CSV mode",
        ),
        (
            "COPY cp_se FROM STDIN (FORMAT binary, HEADER)",
            "0A000",
            "cannot specify HEADER in BINARY mode",
        ),
        (
            "COPY cp_se FROM STDIN (DELIMITER '||')",
            "0A000",
            "COPY delimiter must be a single one-byte character",
        ),
        (
            "COPY cp_se FROM STDIN (FORMAT csv, QUOTE ',')",
            "22023",
            "COPY delimiter and quote must be different",
        ),
        (
            "COPY cp_se FROM STDIN (FORMAT csv, FORCE_NOT_NULL (nosuch))",
            "42703",
            "column \"nosuch\" of relation \"cp_se\" does not exist",
        ),
        (
            "COPY cp_se TO STDOUT (FORMAT csv, HEADER MATCH)",
            "0A000",
            "cannot use \"match\" with HEADER in COPY TO",
        ),
    ];
    let mut failures = Failures::default();
    for (sql, code, message) in cases {
        match client.simple_query(sql).await {
            Ok(_) => failures.push(&format!("simple {sql}"), "accepted".into()),
            Err(err) => {
                failures.check_db_error(&err, code, message, None, &format!("simple {sql}"))
            }
        }
        assert_alive(&client, sql).await;
        // tokio-postgres cannot use a connection again after copy_in or
        // copy_out failed at Execute (it also breaks on PostgreSQL): each
        // extended-protocol attempt gets its own connection.
        let fresh = server.connect().await;
        let res = if sql.contains("FROM STDIN") {
            copy_in(&fresh, sql, b"").await.map(|_| ())
        } else {
            copy_out(&fresh, sql).await.map(|_| ())
        };
        match res {
            Ok(()) => failures.push(&format!("extended {sql}"), "accepted".into()),
            Err(err) => {
                failures.check_db_error(&err, code, message, None, &format!("extended {sql}"))
            }
        }
    }
    let err = client
        .simple_query("COPY (SELECT nosuch FROM cp_se) TO STDOUT")
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("42703"),
        "{err:?}"
    );
    assert_eq!(count(&client, "cp_se").await, 1);
    failures.finish();
}

async fn tx_sum(client: &Client) -> (i64, i64) {
    let r = client
        .query_one("SELECT count(*), sum(v)::int8 FROM cp_tx", &[])
        .await
        .unwrap();
    (r.get::<_, i64>(0), r.get::<_, i64>(1))
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_inside_transaction_blocks() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let other = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cp_tx (time timestamptz NOT NULL, v integer);
             INSERT INTO cp_tx VALUES ('2024-01-01 00:00:00+00', 1);",
        )
        .await
        .unwrap();
    let rows = |from: u64, n: u64| {
        let mut s = String::new();
        for i in from..from + n {
            let _ = writeln!(s, "{}\t{}", jan_2024(i * 3600), i);
        }
        s
    };

    // ROLLBACK drops the COPY; only the session saw it.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        copy_in(&client, "COPY cp_tx FROM STDIN", rows(10, 3).as_bytes())
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        tx_sum(&client).await,
        (4, 1 + 10 + 11 + 12),
        "the block sees its COPY"
    );
    assert_eq!(tx_sum(&other).await, (1, 1), "other sessions do not");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(tx_sum(&client).await, (1, 1));
    assert_eq!(tx_sum(&other).await, (1, 1));

    // COMMIT applies the COPYs and INSERTs of the block together.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        copy_in(&client, "COPY cp_tx FROM STDIN", rows(20, 2).as_bytes())
            .await
            .unwrap(),
        2
    );
    client
        .execute(
            "INSERT INTO cp_tx VALUES ('2024-01-05 00:00:00+00', 100)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        copy_in(
            &client,
            "COPY cp_tx FROM STDIN (FORMAT csv)",
            b"2024-01-05 01:00:00+00,200\n"
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(tx_sum(&other).await, (1, 1));
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(tx_sum(&other).await, (5, 1 + 20 + 21 + 100 + 200));

    // A failed COPY aborts the block: 25P02 until ROLLBACK, nothing applied.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        copy_in(&client, "COPY cp_tx FROM STDIN", rows(30, 2).as_bytes())
            .await
            .unwrap(),
        2
    );
    let err = copy_in(
        &client,
        "COPY cp_tx FROM STDIN",
        b"2024-01-06 00:00:00+00\tx\n",
    )
    .await
    .unwrap_err();
    assert_db_error(
        &err,
        "22P02",
        "invalid input syntax for type integer: \"x\"",
        Some("COPY cp_tx, line 1, column v: \"x\""),
        "bad COPY in a block",
    );
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("25P02"),
        "{err:?}"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(tx_sum(&client).await, (5, 342));
    assert_eq!(tx_sum(&other).await, (5, 342));

    // Through psql: BEGIN; COPY FROM STDIN; COMMIT in one script.
    let out = server.psql_script(
        "BEGIN;\nCOPY cp_tx FROM STDIN;\n2024-01-07 00:00:00+00\t1000\n\\.\nCOMMIT;\n",
        true,
    );
    out.assert_success();
    assert!(out.stdout.contains("COPY 1"), "{}", out.stdout);
    assert_eq!(tx_sum(&other).await, (6, 1342));
}

// ---------------------------------------------------------------------------
// psql
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn psql_copy_and_backslash_copy() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "id,name,at,v\n1,\"Smith, John\",2024-01-01 00:00:00+00,1.5\n2,\"multi\nline\",2024-01-02 00:00:00+00,\n3,\"\",2024-01-03 00:00:00+00,-0.25\n",
    )
    .unwrap();
    let out_txt = dir.path().join("out.txt");
    let out_csv = dir.path().join("out.csv");
    let script = format!(
        "SET timezone = 'UTC';\n\
         CREATE TABLE cp_psql (id integer, name text, at timestamptz, v double precision);\n\
         \\copy cp_psql from '{}' with (format csv, header)\n\
         COPY cp_psql FROM STDIN;\n\
         4\ttab\\there\t2024-01-04 12:00:00+00\t4\n\
         5\t\\N\t2024-01-05 00:00:00+00\t\\N\n\
         \\.\n\
         \\copy (select * from cp_psql order by id) to '{}'\n\
         \\copy (select * from cp_psql order by id) to '{}' with (format csv, header)\n",
        input.display(),
        out_txt.display(),
        out_csv.display()
    );
    let out = server.psql_script(&script, true);
    out.assert_success();
    let tags: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("COPY"))
        .collect();
    assert_eq!(
        tags,
        ["COPY 3", "COPY 2", "COPY 5", "COPY 5"],
        "psql output:\n{}",
        out.stdout
    );

    assert_bytes_eq(
        &std::fs::read(&out_txt).unwrap(),
        concat!(
            "1\tSmith, John\t2024-01-01 00:00:00+00\t1.5\n",
            "2\tmulti\\nline\t2024-01-02 00:00:00+00\t\\N\n",
            "3\t\t2024-01-03 00:00:00+00\t-0.25\n",
            "4\ttab\\there\t2024-01-04 12:00:00+00\t4\n",
            "5\t\\N\t2024-01-05 00:00:00+00\t\\N\n",
        )
        .as_bytes(),
        "\\copy (select ...) to file",
    );
    assert_bytes_eq(
        &std::fs::read(&out_csv).unwrap(),
        concat!(
            "id,name,at,v\n",
            "1,\"Smith, John\",2024-01-01 00:00:00+00,1.5\n",
            "2,\"multi\n",
            "line\",2024-01-02 00:00:00+00,\n",
            "3,\"\",2024-01-03 00:00:00+00,-0.25\n",
            "4,tab\there,2024-01-04 12:00:00+00,4\n",
            "5,,2024-01-05 00:00:00+00,\n",
        )
        .as_bytes(),
        "\\copy (select ...) to file with (format csv, header)",
    );

    // \copy of the whole table into a file, and back into a second table.
    let whole = dir.path().join("whole.txt");
    let out = server.psql_script(
        &format!(
            "SET timezone = 'UTC';\n\
             \\copy cp_psql to '{0}'\n\
             CREATE TABLE cp_psql2 (id integer, name text, at timestamptz, v double precision);\n\
             \\copy cp_psql2 from '{0}'\n\
             SELECT count(*) FROM cp_psql2 WHERE name IS NULL;\n",
            whole.display()
        ),
        true,
    );
    out.assert_success();
    assert!(out.stdout.contains("COPY 5"), "{}", out.stdout);
    let mut lines: Vec<String> = std::fs::read_to_string(&whole)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    let mut expected: Vec<String> = std::fs::read_to_string(&out_txt)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    expected.sort();
    assert_eq!(lines, expected, "\\copy cp_psql to file");
    let client = server.connect().await;
    client.batch_execute("SET timezone = 'UTC'").await.unwrap();
    let back = copy_out(
        &client,
        "COPY (SELECT * FROM cp_psql2 ORDER BY id) TO STDOUT",
    )
    .await
    .unwrap();
    assert_bytes_eq(
        &back,
        &std::fs::read(&out_txt).unwrap(),
        "table copied through a file",
    );
}

/// A COPY row whose foreign key names no referenced row fails the whole
/// COPY with PostgreSQL's 23503, and none of its rows is there.
#[tokio::test(flavor = "multi_thread")]
async fn copy_checks_foreign_keys() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cfk_dev (id int PRIMARY KEY);
             CREATE TABLE cfk_m (time timestamptz NOT NULL, dev int REFERENCES cfk_dev (id));
             SELECT create_hypertable('cfk_m', 'time');
             INSERT INTO cfk_dev VALUES (1), (2);",
        )
        .await
        .unwrap();
    let err = copy_in(
        &client,
        "COPY cfk_m FROM STDIN",
        b"2024-01-01 00:00:00+00\t1\n2024-01-01 00:01:00+00\t\\N\n2024-01-01 00:02:00+00\t3\n",
    )
    .await
    .unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "23503");
    assert_eq!(
        db.detail(),
        Some("Key (dev)=(3) is not present in table \"cfk_dev\".")
    );
    let n: i64 = client
        .query_one("SELECT count(*) FROM cfk_m", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let n = copy_in(
        &client,
        "COPY cfk_m FROM STDIN",
        b"2024-01-01 00:00:00+00\t1\n2024-01-01 00:01:00+00\t\\N\n2024-01-01 00:02:00+00\t2\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
}

/// A NULL time copied into a hypertable fails with TimescaleDB's message
/// (probe 19), also when another NOT NULL column of the row is NULL too; a
/// plain table's NULL keeps PostgreSQL's.
#[tokio::test(flavor = "multi_thread")]
async fn null_time_into_a_hypertable_is_timescaledbs_error() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cp_null (time timestamptz NOT NULL, device text NOT NULL, v float8);
             SELECT create_hypertable('cp_null', by_range('time', INTERVAL '1 day'));",
        )
        .await
        .unwrap();
    let data = b"2024-01-01 00:00:00+00\ta\t1\n\\N\t\\N\t2\n";
    for sql in [
        "COPY cp_null FROM STDIN",
        "COPY cp_null (time, device, v) FROM STDIN",
    ] {
        let err = copy_in(&client, sql, data).await.unwrap_err();
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "23502", "{sql}");
        assert_eq!(
            db.message(),
            "NULL value in column \"time\" violates not-null constraint",
            "{sql}"
        );
        assert_eq!(
            db.hint(),
            Some("Columns used for time partitioning cannot be NULL.")
        );
    }
    let err = copy_in(
        &client,
        "COPY cp_null FROM STDIN",
        b"2024-01-01 00:00:00+00\t\\N\t2\n",
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.as_db_error().map(|d| d.message()),
        Some(
            "null value in column \"device\" of relation \"cp_null\" violates not-null constraint"
        )
    );
    let rows = client
        .query_one("SELECT count(*) FROM cp_null", &[])
        .await
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), 0);
}

/// A jsonb value given as its binary wire form (a version byte, then text).
#[derive(Debug)]
struct RawJsonb(&'static [u8]);

impl ToSql for RawJsonb {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// A jsonb result as the bytes of its binary form.
struct JsonbBytes(Vec<u8>);

impl<'a> tokio_postgres::types::FromSql<'a> for JsonbBytes {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JsonbBytes(raw.to_vec()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
}

/// jsonb's binary form, as drivers send it (parameters, binary COPY) and
/// read it (binary results): version 1, then the text, which is checked and
/// normalized as text input is. Another version is 22P03, bad JSON 22P02,
/// and the connection goes on.
#[tokio::test(flavor = "multi_thread")]
async fn jsonb_binary_form_in_parameters_copy_and_results() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE jb (id int, doc jsonb)")
        .await
        .unwrap();
    let insert = client
        .prepare_typed("INSERT INTO jb VALUES ($1, $2)", &[Type::INT4, Type::JSONB])
        .await
        .unwrap();
    client
        .execute(&insert, &[&1i32, &RawJsonb(b"\x01{\"b\":2, \"a\":[1,2]}")])
        .await
        .unwrap();
    for (doc, code) in [
        (&b"\x02{\"a\":1}"[..], "22P03"),
        (&b"\x01{\"a\":"[..], "22P02"),
    ] {
        let err = client
            .execute(&insert, &[&2i32, &RawJsonb(doc)])
            .await
            .unwrap_err();
        assert_eq!(
            err.as_db_error().map(|d| d.code().code()),
            Some(code),
            "{err:?}"
        );
    }

    let sink = client
        .copy_in("COPY jb (id, doc) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT4, Type::JSONB]);
    pin_mut!(writer);
    writer
        .as_mut()
        .write(&[&3i32, &RawJsonb(b"\x01[true, null]")])
        .await
        .unwrap();
    assert_eq!(writer.finish().await.unwrap(), 1);
    let sink = client
        .copy_in("COPY jb (id, doc) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT4, Type::JSONB]);
    pin_mut!(writer);
    writer
        .as_mut()
        .write(&[&4i32, &RawJsonb(b"\x07{}")])
        .await
        .unwrap();
    let err = writer.finish().await.unwrap_err();
    assert_eq!(err.as_db_error().map(|d| d.code().code()), Some("22P03"));

    let rows = client
        .query("SELECT id, doc FROM jb ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i32, Vec<u8>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, JsonbBytes>(1).0))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, b"\x01{\"a\": [1, 2], \"b\": 2}".to_vec()),
            (3, b"\x01[true, null]".to_vec()),
        ]
    );
}
