//! EXPLAIN: PostgreSQL's one-column `QUERY PLAN` output, and the number of
//! chunks a hypertable scan kept after chunk exclusion, for each kind of
//! time filter users write.

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::support::{text_rows, TestServer};

async fn plan_lines(client: &Client, sql: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for m in client.simple_query(sql).await.unwrap() {
        if let SimpleQueryMessage::Row(r) = m {
            assert_eq!(r.columns().len(), 1);
            assert_eq!(r.columns()[0].name(), "QUERY PLAN");
            lines.push(r.get(0).unwrap().to_string());
        }
    }
    lines
}

/// Whether a line of the plan starts with `prefix`.
fn has_line(lines: &[String], prefix: &str) -> bool {
    lines.iter().any(|l| l.starts_with(prefix))
}

/// "k of n" from the plan's hypertable line.
async fn chunks_scanned(client: &Client, filter: &str) -> (usize, usize) {
    let lines = plan_lines(
        client,
        &format!("EXPLAIN SELECT count(*) FROM ex WHERE {filter}"),
    )
    .await;
    let line = lines
        .iter()
        .find(|l| l.starts_with("Hypertable ex: "))
        .unwrap_or_else(|| panic!("no hypertable line for {filter}: {lines:#?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[2].parse().unwrap(), words[4].parse().unwrap())
}

/// A server with the hypertable `ex`: hourly rows of 2024-01-01..05 in
/// five one-day chunks, all in Parquet.
async fn with_five_daily_chunks() -> (TestServer, tokio_postgres::Client) {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE ex (time timestamptz NOT NULL, host text, v float8);
             SELECT create_hypertable('ex', by_range('time', INTERVAL '1 day'));
             INSERT INTO ex SELECT t, 'h1', 1.0 FROM generate_series(
                 '2024-01-01 00:00:00+00'::timestamptz, '2024-01-05 23:00:00+00', INTERVAL '1 hour') t;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    (server, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_shows_chunks_excluded_by_time_filters() {
    let (_server, client) = with_five_daily_chunks().await;
    let cases = [
        ("true", 5),
        ("time >= '2024-01-03' AND time < '2024-01-04'", 1),
        ("time >= '2024-01-03 00:00:00+00'::timestamptz", 3),
        ("time > '2024-01-04 12:00:00'::timestamp", 2),
        ("time BETWEEN '2024-01-02' AND '2024-01-02 23:00'", 1),
        ("time = '2024-01-02 05:00:00+00'", 1),
        ("time IN ('2024-01-01 05:00:00+00', '2024-01-02 05:00:00+00')", 2),
        (
            "(time >= '2024-01-02' AND time < '2024-01-03') OR (time >= '2024-01-03' AND time < '2024-01-04')",
            2,
        ),
        ("time < '2024-01-02' OR host = 'h1'", 5),
        ("time > now() - INTERVAL '1 day'", 0),
        ("time < '2023-01-01'", 0),
    ];
    for (filter, expected) in cases {
        let (scanned, total) = chunks_scanned(&client, filter).await;
        assert_eq!(total, 5, "{filter}");
        assert_eq!(scanned, expected, "chunks scanned for {filter}");
    }
    // The results agree with the exclusion.
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM ex WHERE time IN ('2024-01-01 05:00:00+00', '2024-01-02 05:00:00+00')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    // EXPLAIN ANALYZE: rows and time per operator, and the Parquet pruning.
    let lines = plan_lines(
        &client,
        "EXPLAIN ANALYZE SELECT count(*) FROM ex WHERE time >= '2024-01-03' AND time < '2024-01-04'",
    )
    .await;
    let scan = lines
        .iter()
        .find(|l| l.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no scan in {lines:#?}"));
    assert!(scan.contains("output_rows=24"), "{scan}");
    assert!(scan.contains("row_groups_pruned_statistics="), "{scan}");
    assert!(lines
        .iter()
        .all(|l| !l.contains("DataSourceExec") || l.contains("elapsed_compute")));
    assert!(has_line(&lines, "Hypertable ex: 1 of 5 chunks"));

    // VERBOSE shows every plan DataFusion made, each under its name.
    let lines = plan_lines(&client, "EXPLAIN VERBOSE SELECT count(*) FROM ex").await;
    assert!(lines.iter().any(|l| l == "physical_plan:"), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l == "initial_logical_plan:"),
        "{lines:#?}"
    );
}

/// `date_trunc` of a constant truncates in the session's zone, and the
/// bound it gives still excludes chunks: Berlin's midnight is 23:00 UTC
/// the day before, so it keeps one chunk more than UTC's would.
#[tokio::test(flavor = "multi_thread")]
async fn chunk_exclusion_with_date_trunc_in_the_session_zone() {
    let (_server, client) = with_five_daily_chunks().await;
    client
        .batch_execute("SET timezone = 'Europe/Berlin'")
        .await
        .unwrap();
    let cases = [
        (
            "time >= date_trunc('day', '2024-01-03 12:00:00+00'::timestamptz)",
            4,
            73,
        ),
        (
            "time >= date_trunc('day', '2024-01-03 12:00:00+00'::timestamptz, 'UTC')",
            3,
            72,
        ),
        (
            "time < date_trunc('month', '2024-01-03 12:00:00+00'::timestamptz) + INTERVAL '2 days'",
            2,
            47,
        ),
        ("time > date_trunc('day', now())", 0, 0),
    ];
    for (filter, chunks, rows) in cases {
        let (scanned, total) = chunks_scanned(&client, filter).await;
        assert_eq!(total, 5, "{filter}");
        assert_eq!(scanned, chunks, "chunks scanned for {filter}");
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM ex WHERE {filter}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, rows, "rows for {filter}");
    }
}

/// A small table joined to a large hypertable is the hash join's build
/// side, collected once, whichever side the query names first: the
/// catalog's row counts are the planner's estimates.
#[tokio::test(flavor = "multi_thread")]
async fn small_table_is_the_hash_join_build_side() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE jd (id int PRIMARY KEY, name text);
             INSERT INTO jd SELECT g, 'd' || g FROM generate_series(1, 10) g;
             CREATE TABLE jm (time timestamptz NOT NULL, dev int, v float8);
             SELECT create_hypertable('jm', 'time');
             INSERT INTO jm SELECT '2024-01-01'::timestamptz + g * interval '1 minute', g % 10 + 1, g
               FROM generate_series(1, 50000) g;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    for sql in [
        "EXPLAIN SELECT d.name, avg(m.v) FROM jm m JOIN jd d ON m.dev = d.id GROUP BY d.name",
        "EXPLAIN SELECT d.name, avg(m.v) FROM jd d JOIN jm m ON m.dev = d.id GROUP BY d.name",
    ] {
        let lines = plan_lines(&client, sql).await;
        let join = lines
            .iter()
            .position(|l| l.contains("HashJoinExec"))
            .unwrap_or_else(|| panic!("no hash join: {lines:#?}"));
        assert!(
            lines[join].contains("mode=CollectLeft"),
            "{sql}: {lines:#?}"
        );
        // The build (first) input reads the plain table's files.
        assert!(
            lines[join + 1].contains("tables/"),
            "{sql}: build side {}",
            lines[join + 1]
        );
    }
    let rows = client
        .query(
            "SELECT d.name, count(*) FROM jm m JOIN jd d ON m.dev = d.id GROUP BY d.name",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows.iter().map(|r| r.get::<_, i64>(1)).sum::<i64>(), 50_000);
}

/// A hypertable `name (time, dev int, v float8)` in one chunk: 600,000 rows
/// a second apart, devices 0-49 interleaved, `v` the row's number (from 1),
/// all in Parquet. `before` runs before the rows go in, `after` once they
/// are in files.
async fn fifty_series(client: &Client, name: &str, before: &str, after: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {name} (time timestamptz NOT NULL, dev int, v float8);
             SELECT create_hypertable('{name}', 'time', chunk_time_interval => INTERVAL '30 days');
             {before}
             INSERT INTO {name} SELECT '2024-01-01'::timestamptz + g * interval '1 second', g % 50, g
               FROM generate_series(1, 600000) g;
             CHECKPOINT;
             {after}"
        ))
        .await
        .unwrap();
}

/// `DISTINCT ON (series) ... ORDER BY series, time DESC` reads the newest
/// times first; the scan for the rows themselves then keeps only the row
/// groups that hold them.
#[tokio::test(flavor = "multi_thread")]
async fn last_point_reads_only_the_newest_row_groups() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    fifty_series(&client, "lp", "", "").await;
    let sql = "SELECT DISTINCT ON (dev) dev, time, v FROM lp ORDER BY dev, time DESC";
    let lines = plan_lines(&client, &format!("EXPLAIN ANALYZE {sql}")).await;
    let join = lines
        .iter()
        .position(|l| l.contains("HashJoinExec"))
        .unwrap_or_else(|| panic!("no join: {lines:#?}"));
    assert!(lines[join].contains("mode=CollectLeft"), "{}", lines[join]);
    let scans: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("DataSourceExec"))
        .collect();
    assert_eq!(scans.len(), 2, "{lines:#?}");
    // The newest times read every row; the rows at them, one row group.
    assert_eq!(output_rows(scans[0]), 600_000.0, "{}", scans[0]);
    assert!(output_rows(scans[1]) < 200_000.0, "{}", scans[1]);
    let groups = scans[1]
        .split("row_groups_pruned_statistics=")
        .nth(1)
        .and_then(|m| m.split(" matched").next())
        .unwrap_or_else(|| panic!("no row group counts: {}", scans[1]));
    let (total, kept) = groups.split_once(" total → ").unwrap();
    let (total, kept): (u32, u32) = (total.parse().unwrap(), kept.parse().unwrap());
    assert!(total > 1 && kept < total, "row groups {groups}");

    let rows = client.query(sql, &[]).await.unwrap();
    assert_eq!(rows.len(), 50);
    for (dev, r) in rows.iter().enumerate() {
        let v: f64 = r.get(2);
        assert_eq!(r.get::<_, i32>(0), dev as i32);
        // The newest g with g % 50 = dev.
        let newest = if dev == 0 { 600_000 } else { 599_950 + dev };
        assert_eq!(v, newest as f64, "dev {dev}");
    }
}

/// Each series' newest time comes from the newest chunks that together hold
/// every series (tempora-query/src/newest_series.rs): older chunks are left
/// out of that scan, and come back as soon as they hold a series the newer
/// ones lack, whether in files, unflushed or in the session's open block.
#[tokio::test(flavor = "multi_thread")]
async fn last_point_leaves_out_chunks_whose_series_have_newer_rows() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE lpc (time timestamptz NOT NULL, host text, v float8);
             SELECT create_hypertable('lpc', 'time', chunk_time_interval => INTERVAL '1 day');
             CREATE INDEX ON lpc (host, time DESC);
             INSERT INTO lpc SELECT t, 'h' || (extract(hour FROM t)::int % 4), extract(epoch FROM t)
               FROM generate_series(timestamptz '2024-01-01 00:00+00', timestamptz '2024-01-03 23:00+00', interval '1 hour') t;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    let sql = "SELECT DISTINCT ON (host) host, time::text, v FROM lpc ORDER BY host, time DESC";
    // The chunk counts of the two scans, the newest times' and the rows',
    // fewest first.
    let scanned = || async {
        let mut counts = plan_lines(&client, &format!("EXPLAIN {sql}"))
            .await
            .into_iter()
            .filter_map(|l| {
                let rest = l.strip_prefix("Hypertable lpc: ")?;
                let chunks = rest.split(" chunks").next()?;
                let files = rest.split("), ").nth(1)?.split(',').next()?;
                Some(format!("{chunks}, {files}"))
            })
            .collect::<Vec<_>>();
        counts.sort();
        counts
    };
    // The newest times' scan reads no file: each file's recorded series and
    // newest times stand for its rows. The rows' scan reads every chunk.
    let assert_scans = |counts: Vec<String>, newest: &str| {
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert_eq!(counts[0], newest, "{counts:?}");
        assert!(counts[1].starts_with("3 of 3, "), "{counts:?}");
    };
    // What a plain grouped max says, and each newest row's v is its time.
    let check = || async {
        let got = crate::support::rows_text(&client, sql).await;
        let want = crate::support::rows_text(
            &client,
            "SELECT host, max(time)::text, extract(epoch FROM max(time))::float8 FROM lpc GROUP BY host ORDER BY host",
        )
        .await;
        assert_eq!(got, want);
        got.len()
    };
    assert_scans(scanned().await, "1 of 3, 0 files");
    assert_eq!(check().await, 4);

    // A series seen only in the oldest chunk, not yet in a file.
    client
        .batch_execute("INSERT INTO lpc VALUES ('2024-01-01 05:30+00', 'h9', 1704087000)")
        .await
        .unwrap();
    assert_scans(scanned().await, "3 of 3, 0 files");
    assert_eq!(check().await, 5);
    // In a file now: its chunk is still needed.
    client.batch_execute("CHECKPOINT").await.unwrap();
    assert_scans(scanned().await, "3 of 3, 0 files");
    assert_eq!(check().await, 5);
    // Once the newest chunk has it too, the older ones are left out again.
    client
        .batch_execute(
            "INSERT INTO lpc VALUES ('2024-01-03 01:30+00', 'h9', 1704245400); CHECKPOINT;",
        )
        .await
        .unwrap();
    assert_scans(scanned().await, "1 of 3, 0 files");
    assert_eq!(check().await, 5);
    // Rows of the session's open block, in an old chunk.
    client
        .batch_execute("BEGIN; INSERT INTO lpc VALUES ('2024-01-02 03:30+00', 'h8', 1704166200);")
        .await
        .unwrap();
    assert_eq!(check().await, 6);
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(check().await, 5);
    // A DELETE rewrites the newest chunk's files without h9's newer row.
    client
        .batch_execute("DELETE FROM lpc WHERE host = 'h9' AND time > '2024-01-02'; CHECKPOINT;")
        .await
        .unwrap();
    assert_scans(scanned().await, "3 of 3, 0 files");
    assert_eq!(check().await, 5);
    // A filter on the rows reads every chunk they may be in.
    let filtered = "SELECT DISTINCT ON (host) host FROM lpc WHERE v > 0 ORDER BY host, time DESC";
    let lines = plan_lines(&client, &format!("EXPLAIN {filtered}")).await;
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("of 3 chunks") && l.contains(": 1 of")),
        "{lines:#?}"
    );
}

/// A count as `EXPLAIN ANALYZE` prints it: `950`, `12.00 K`, `1.20 M`.
fn printed_count(text: &str) -> f64 {
    match text.split_once(' ') {
        Some((n, "K")) => n.parse::<f64>().unwrap() * 1e3,
        Some((n, "M")) => n.parse::<f64>().unwrap() * 1e6,
        _ => text.parse().unwrap(),
    }
}

/// The rows an operator's `EXPLAIN ANALYZE` line says it produced.
fn output_rows(line: &str) -> f64 {
    let m = line
        .split("output_rows=")
        .nth(1)
        .unwrap_or_else(|| panic!("no output_rows: {line}"));
    printed_count(m.split(',').next().unwrap().trim())
}

/// The rows of the pages a scan kept after page index pruning, from its
/// `EXPLAIN ANALYZE` line.
fn page_rows_kept(scan: &str) -> f64 {
    let pages = scan
        .split("page_index_rows_pruned=")
        .nth(1)
        .and_then(|m| m.split(" matched").next())
        .unwrap_or_else(|| panic!("no page index counts: {scan}"));
    let (_, kept) = pages.split_once(" total → ").unwrap();
    printed_count(kept)
}

/// The scan line of `EXPLAIN ANALYZE sql`.
async fn analyzed_scan(client: &Client, sql: &str) -> String {
    let lines = plan_lines(client, &format!("EXPLAIN ANALYZE {sql}")).await;
    lines
        .into_iter()
        .find(|l| l.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no scan for {sql}"))
}

/// An index led by a series column (`(dev, time DESC)`) clusters each file
/// by that column within its time slice: a filter on one series reads the
/// pages holding it, not every page of the time range.
#[tokio::test(flavor = "multi_thread")]
async fn a_series_index_clusters_files_so_one_series_reads_its_pages() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    fifty_series(&client, "cl", "CREATE INDEX ON cl (dev, time DESC);", "").await;
    let sql = "SELECT count(*), max(v), min(time) FROM cl WHERE dev = 7";
    let scan = analyzed_scan(&client, sql).await;
    // dev 7 has 12,000 rows; its pages hold at most a few thousand more.
    let kept = page_rows_kept(&scan);
    assert!(kept < 40_000.0, "rows of the kept pages: {scan}");
    // Such a scan keeps each file whole instead of opening it once per byte
    // range (`path:start..end`) to find the same few pages.
    assert!(
        !scan.contains(".parquet:"),
        "file split into ranges: {scan}"
    );
    let in_list = analyzed_scan(&client, "SELECT count(*) FROM cl WHERE dev IN (3, 7)").await;
    assert!(
        !in_list.contains(".parquet:"),
        "file split into ranges: {in_list}"
    );

    let row = client.query_one(sql, &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 12_000);
    assert_eq!(row.get::<_, f64>(1), 599_957.0);
    // Rows of a series come back in time order within a file.
    let times: Vec<std::time::SystemTime> = client
        .query("SELECT time FROM cl WHERE dev = 3 ORDER BY time", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(times.len(), 12_000);
    assert!(times.windows(2).all(|w| w[0] < w[1]));
}

/// Files of a table with a series index hold each series' rows as one run
/// and record how many rows each has: a filter on a few series reads exactly
/// their rows (not the pages they share with other series), and no file
/// that holds none of them.
#[tokio::test(flavor = "multi_thread")]
async fn a_filter_on_series_reads_exactly_their_rows() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let rows = |first: u32, last: u32| {
        format!(
            "INSERT INTO sr SELECT '2024-01-01'::timestamptz + g * interval '1 second',
                 'h' || lpad((g % 60)::text, 2, '0'), g
               FROM generate_series({first}, {last}) g; CHECKPOINT;"
        )
    };
    client
        .batch_execute(&format!(
            "CREATE TABLE sr (time timestamptz NOT NULL, host text, v float8);
             SELECT create_hypertable('sr', 'time', chunk_time_interval => INTERVAL '30 days');
             CREATE INDEX ON sr (host, time DESC);
             {}
             INSERT INTO sr VALUES ('2024-01-02', NULL, -1);
             {}
             INSERT INTO sr SELECT '2024-03-01'::timestamptz + g * interval '1 second',
                 'late' || (g % 3), g FROM generate_series(1, 3000) g;
             CHECKPOINT;",
            rows(1, 300_000),
            rows(300_001, 600_000)
        ))
        .await
        .unwrap();
    let aggregates = "count(*), sum(v), min(time)::text, max(time)::text, count(DISTINCT host)";
    // The same answer as a filter the scan cannot read series from.
    for (pinned, unpinned, rows_read, files) in [
        ("host = 'h07'", "upper(host) = 'H07'", 10_000.0, "2 files"),
        (
            "host IN ('h42', 'h07', 'nowhere') AND v > 0",
            "upper(host) IN ('H42', 'H07') AND v > 0",
            20_000.0,
            "2 files",
        ),
        (
            "host IN ('late1', 'h59')",
            "upper(host) IN ('LATE1', 'H59')",
            11_000.0,
            "3 files",
        ),
        (
            "host = 'nowhere'",
            "upper(host) = 'NOWHERE'",
            0.0,
            "0 files",
        ),
    ] {
        let sql = format!("SELECT {aggregates} FROM sr WHERE {pinned}");
        let lines = plan_lines(&client, &format!("EXPLAIN ANALYZE {sql}")).await;
        let scanned = lines.iter().find(|l| l.contains("Hypertable sr:")).unwrap();
        assert!(scanned.contains(files), "{pinned}: {lines:#?}");
        if rows_read > 0.0 {
            let scan = lines.iter().find(|l| l.contains("DataSourceExec")).unwrap();
            assert_eq!(output_rows(scan), rows_read, "{pinned}: {scan}");
        }
        let want = format!("SELECT {aggregates} FROM sr WHERE {unpinned}");
        assert_eq!(
            text_rows(&client, &sql).await,
            text_rows(&client, &want).await,
            "{pinned}"
        );
    }
    // A NULL in the list pins nothing: every row is read, the answer holds.
    let row = client
        .query_one("SELECT count(*) FROM sr WHERE host IN ('h07', NULL)", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 10_000);
}

/// A filter pinning the series column is the scan's to answer: files read
/// through those series' runs are not tested against it again (the Parquet
/// reader would decode the column for nothing), and every other row (not
/// yet flushed, or in a file written before the series index, which does
/// not record its series) is filtered by the scan itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_scan_answers_filters_on_series_itself() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let rows = |table: &str, first: u32, last: u32| {
        format!(
            "INSERT INTO {table} SELECT '2024-01-01'::timestamptz + g * interval '1 second',
                 'h' || lpad((g % 60)::text, 2, '0'), g
               FROM generate_series({first}, {last}) g;"
        )
    };
    client
        .batch_execute(&format!(
            "CREATE TABLE sx (time timestamptz NOT NULL, host text, v float8);
             SELECT create_hypertable('sx', 'time', chunk_time_interval => INTERVAL '30 days');
             CREATE INDEX ON sx (host, time DESC);
             {} CHECKPOINT;
             CREATE TABLE sy (time timestamptz NOT NULL, host text, v float8);
             SELECT create_hypertable('sy', 'time', chunk_time_interval => INTERVAL '30 days');
             {} CHECKPOINT;
             CREATE INDEX ON sy (host, time DESC);
             {} CHECKPOINT;",
            rows("sx", 1, 120_000),
            rows("sy", 1, 60_000),
            rows("sy", 60_001, 120_000),
        ))
        .await
        .unwrap();
    // Every file of sx records its series: the reader tests `v` alone.
    let scan = analyzed_scan(&client, "SELECT * FROM sx WHERE host = 'h07' AND v > 60000").await;
    assert!(scan.contains("predicate=v@2 > 60000"), "{scan}");
    assert!(!scan.contains("host@"), "{scan}");

    let queries = [
        "SELECT count(*), sum(v) FROM {t} WHERE {h} = 'h07'",
        "SELECT time::text, v FROM {t} WHERE {h} IN ('h07', 'h42') ORDER BY time",
        "SELECT * FROM {t} WHERE {h} = 'h07' AND v > 100000 ORDER BY time LIMIT 3",
        "SELECT count(*) FROM {t} WHERE {h} = 'h07' OR {h} = 'nowhere'",
        "SELECT count(*) FROM {t} WHERE {h} IN ('h07', NULL)",
        "SELECT count(*) FROM {t} WHERE {h} = 'nowhere'",
    ];
    let check = |stage: &'static str| {
        let client = &client;
        async move {
            for t in ["sx", "sy"] {
                for q in queries {
                    let pinned = q.replace("{t}", t).replace("{h}", "host");
                    let unpinned = q.replace("{t}", t).replace("{h}", "lower(host)");
                    // Twice: the second runs the session's kept plan.
                    for _ in 0..2 {
                        assert_eq!(
                            text_rows(client, &pinned).await,
                            text_rows(client, &unpinned).await,
                            "{stage}: {pinned}"
                        );
                    }
                }
                // A limit counts rows of the series only.
                let sql = format!("SELECT v FROM {t} WHERE host = $1 LIMIT 5");
                for host in ["h07", "h42"] {
                    let got: Vec<f64> = client
                        .query(&sql, &[&host])
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    let series: f64 = host[1..].parse().unwrap();
                    assert_eq!(got.len(), 5, "{stage}: {t} {host}");
                    assert!(
                        got.iter().all(|v| v % 60.0 == series),
                        "{stage}: {t} {got:?}"
                    );
                }
            }
        }
    };
    check("files").await;
    // Rows not yet flushed, of the pinned series and others.
    client
        .batch_execute(&format!(
            "{} {}",
            rows("sx", 120_001, 120_300),
            rows("sy", 120_001, 120_300)
        ))
        .await
        .unwrap();
    check("unflushed rows").await;
    let row = client
        .query_one("SELECT count(*) FROM sy WHERE host = 'h07'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2_005);
}

/// Which scan node of `EXPLAIN ANALYZE sql` read the series runs: the
/// cache (`SeriesCacheExec`), the files, keeping the runs
/// (`SeriesCacheFillExec`), or the files as without the cache (`files`).
async fn series_scan(client: &Client, sql: &str) -> String {
    let lines = plan_lines(client, &format!("EXPLAIN ANALYZE {sql}")).await;
    let nodes: Vec<&str> = lines
        .iter()
        .filter_map(|l| {
            let l = l.trim_start();
            ["SeriesCacheExec", "SeriesCacheFillExec"]
                .into_iter()
                .find(|n| l.starts_with(&format!("{n}:")))
        })
        .collect();
    assert!(nodes.len() <= 1, "{sql}: {lines:#?}");
    nodes.first().unwrap_or(&"files").to_string()
}

/// A statement over a few series' short runs reads them from the files; the
/// next one over the same runs reads them whole and keeps them, and those
/// after it read them from memory, and answer the same, through new rows, new files, rewritten files and a
/// column's new type, and whatever protocol it comes by.
#[tokio::test(flavor = "multi_thread")]
async fn short_series_runs_are_read_from_memory_the_second_time() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE sc (time timestamptz NOT NULL, host text, v float8, w int);
             SELECT create_hypertable('sc', 'time', chunk_time_interval => INTERVAL '3 days');
             CREATE INDEX ON sc (host, time DESC);
             INSERT INTO sc SELECT '2024-01-01'::timestamptz + g * interval '1 second',
                 'h' || lpad((g % 40)::text, 2, '0'), g, g % 7
               FROM generate_series(1, 400000) g;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    let aggregates = "count(*), sum(v), sum(w), min(time)::text, max(time)::text";
    let window = "time >= '2024-01-02 06:00' AND time < '2024-01-04 20:00'";
    // The same answer as a filter the scan cannot read series from.
    let check = |pinned: &'static str, unpinned: &'static str| {
        let client = &client;
        async move {
            let sql = format!("SELECT {aggregates} FROM sc WHERE {pinned} AND {window}");
            let want = format!("SELECT {aggregates} FROM sc WHERE {unpinned} AND {window}");
            let got = text_rows(client, &sql).await;
            assert_eq!(got, text_rows(client, &want).await, "{pinned}");
            assert_ne!(got, vec!["0|NULL|NULL|NULL|NULL".to_string()], "{pinned}");
            sql
        }
    };
    let one = check("host = 'h07'", "upper(host) = 'H07'").await;
    // The statement above read its rows as without the cache; this one,
    // asking for the same run again, reads it whole and keeps it.
    assert_eq!(series_scan(&client, &one).await, "SeriesCacheFillExec");
    check("host = 'h07'", "upper(host) = 'H07'").await;
    assert_eq!(series_scan(&client, &one).await, "SeriesCacheExec");
    // Another series is read from its file first, then kept.
    let two = check("host IN ('h07', 'h31')", "upper(host) IN ('H07', 'H31')").await;
    assert_eq!(series_scan(&client, &two).await, "SeriesCacheFillExec");
    check("host IN ('h07', 'h31')", "upper(host) IN ('H07', 'H31')").await;
    assert_eq!(series_scan(&client, &two).await, "SeriesCacheExec");
    check("host IN ('h07', 'h31')", "upper(host) IN ('H07', 'H31')").await;
    // Nine series' runs are too many rows for one partition: the plan
    // around the scan is parallel, the scan reads its runs in order (the
    // EXPLAIN is their first request, the statement after it keeps them).
    let nine = "host IN ('h01', 'h02', 'h03', 'h04', 'h05', 'h06', 'h07', 'h08', 'h09')";
    let lines = plan_lines(
        &client,
        &format!("EXPLAIN SELECT {aggregates} FROM sc WHERE {nine} AND {window}"),
    )
    .await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("AggregateExec: mode=Partial")),
        "{lines:#?}"
    );
    let upper_nine =
        "upper(host) IN ('H01', 'H02', 'H03', 'H04', 'H05', 'H06', 'H07', 'H08', 'H09')";
    let nine_sql = check(nine, upper_nine).await;
    check(nine, upper_nine).await;
    assert_eq!(series_scan(&client, &nine_sql).await, "SeriesCacheExec");
    check(nine, upper_nine).await;

    // Unflushed rows are read along with the kept runs.
    client
        .batch_execute("INSERT INTO sc VALUES ('2024-01-03 12:00:00.5', 'h07', 1000000, 1000000)")
        .await
        .unwrap();
    check("host = 'h07'", "upper(host) = 'H07'").await;
    // Once flushed, they are in a new file, whose run is read, then kept.
    client.batch_execute("CHECKPOINT").await.unwrap();
    assert_eq!(series_scan(&client, &one).await, "files");
    check("host = 'h07'", "upper(host) = 'H07'").await;
    assert_eq!(series_scan(&client, &one).await, "SeriesCacheExec");

    // Rewritten files are new files: the first statement after each change
    // below reads them, the second keeps their runs.
    client
        .batch_execute("DELETE FROM sc WHERE host = 'h07' AND v < 200000")
        .await
        .unwrap();
    check("host = 'h07'", "upper(host) = 'H07'").await;
    check("host = 'h07'", "upper(host) = 'H07'").await;
    // A column of a new type is read again.
    client
        .batch_execute("ALTER TABLE sc ALTER COLUMN w TYPE bigint")
        .await
        .unwrap();
    check("host = 'h07'", "upper(host) = 'H07'").await;
    check("host = 'h07'", "upper(host) = 'H07'").await;
    check("host IN ('h07', 'h31')", "upper(host) IN ('H07', 'H31')").await;

    // A prepared statement run for one series after another.
    let prepared = client
        .prepare(&format!(
            "SELECT {aggregates} FROM sc WHERE host = $1 AND {window}"
        ))
        .await
        .unwrap();
    for round in 0..3 {
        for host in ["h01", "h07", "h31", "h39", "nowhere"] {
            let row = client.query_one(&prepared, &[&host]).await.unwrap();
            let want = text_rows(
                &client,
                &format!(
                    "SELECT {aggregates} FROM sc WHERE upper(host) = upper('{host}') AND {window}"
                ),
            )
            .await;
            let count: i64 = row.get(0);
            let sum: Option<f64> = row.get(1);
            let expect: Vec<&str> = want[0].split('|').collect();
            assert_eq!(count.to_string(), expect[0], "{host}, round {round}");
            assert_eq!(
                sum.map_or("NULL".to_string(), |s| s.to_string()),
                expect[1],
                "{host}, round {round}"
            );
        }
    }
    // LIMIT stops the scan early: nothing partial is kept.
    let limited = text_rows(
        &client,
        "SELECT v FROM sc WHERE host = 'h39' ORDER BY time LIMIT 2",
    )
    .await;
    assert_eq!(limited.len(), 2);
    check("host = 'h39'", "upper(host) = 'H39'").await;
    check("host = 'h39'", "upper(host) = 'H39'").await;
}

/// A statement that reads a few pages of one series is planned on one
/// partition: no rows handed between threads, one aggregation phase. One
/// that reads the whole table is split across the server's threads.
#[tokio::test(flavor = "multi_thread")]
async fn a_statement_reading_few_rows_runs_on_one_partition() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    fifty_series(&client, "few", "CREATE INDEX ON few (dev, time DESC);", "").await;
    let one = "SELECT dev, max(v), count(*) FROM few WHERE dev = 7 GROUP BY dev";
    let all = "SELECT dev, max(v), count(*) FROM few GROUP BY dev ORDER BY dev";
    let parallel = |lines: &[String]| lines.iter().any(|l| l.contains("RepartitionExec"));
    let lines = plan_lines(&client, &format!("EXPLAIN {one}")).await;
    assert!(!parallel(&lines), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("AggregateExec: mode=Single")),
        "{lines:#?}"
    );
    let lines = plan_lines(&client, &format!("EXPLAIN {all}")).await;
    assert!(parallel(&lines), "{lines:#?}");
    // The same answers either way.
    let row = client.query_one(one, &[]).await.unwrap();
    assert_eq!(row.get::<_, f64>(1), 599_957.0);
    assert_eq!(row.get::<_, i64>(2), 12_000);
    let rows = client.query(all, &[]).await.unwrap();
    assert_eq!(rows.len(), 50);
    assert_eq!(rows[7].get::<_, f64>(1), 599_957.0);
    assert_eq!(rows[7].get::<_, i64>(2), 12_000);
}

/// An index created after the rows were written does not reorder them;
/// `reorder_chunk` does, by the table's series index or the one named, with
/// TimescaleDB's errors.
#[tokio::test(flavor = "multi_thread")]
async fn reorder_chunk_clusters_rows_written_before_the_index() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    fifty_series(
        &client,
        "ro",
        "",
        "CREATE INDEX ro_dev_time ON ro (dev, time DESC); CREATE INDEX ro_time ON ro (time DESC);",
    )
    .await;
    let sql = "SELECT count(*), max(v) FROM ro WHERE dev = 7";
    assert_eq!(
        page_rows_kept(&analyzed_scan(&client, sql).await),
        600_000.0
    );

    let chunk: String = client
        .query_one("SELECT c::text FROM show_chunks('ro') c", &[])
        .await
        .unwrap()
        .get(0);
    let err = |sql: String| {
        let client = &client;
        async move { client.query(&sql, &[]).await.unwrap_err() }
    };
    // Not a chunk; an index of no such name on the hypertable.
    let e = err("SELECT reorder_chunk('ro')".into()).await;
    assert_eq!(e.code().unwrap().code(), "42704", "{e:?}");
    let e = err(format!("SELECT reorder_chunk('{chunk}', 'nope')")).await;
    assert_eq!(e.code().unwrap().code(), "22023", "{e:?}");
    // Inside a block it would change files a ROLLBACK cannot restore.
    client.batch_execute("BEGIN").await.unwrap();
    let e = err(format!("SELECT reorder_chunk('{chunk}')")).await;
    assert_eq!(e.code().unwrap().code(), "0A000", "{e:?}");
    client.batch_execute("ROLLBACK").await.unwrap();

    let rows = client
        .query("SELECT reorder_chunk(c) FROM show_chunks('ro') c", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let kept = page_rows_kept(&analyzed_scan(&client, sql).await);
    assert!(
        kept < 40_000.0,
        "rows of the kept pages after reorder: {kept}"
    );
    let row = client.query_one(sql, &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 12_000);
    assert_eq!(row.get::<_, f64>(1), 599_957.0);

    // By the time index, named: back in time order, every row still there.
    client
        .query(
            &format!("SELECT reorder_chunk('{chunk}', index => 'ro_time')"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        page_rows_kept(&analyzed_scan(&client, sql).await),
        600_000.0
    );
    let row = client
        .query_one("SELECT count(*), sum(v) FROM ro", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 600_000);
    assert_eq!(row.get::<_, f64>(1), 600_000.0 * 600_001.0 / 2.0);

    // A hypertable without a series index.
    client
        .batch_execute(
            "CREATE TABLE plain_ro (time timestamptz NOT NULL, v int);
             SELECT create_hypertable('plain_ro', 'time');
             INSERT INTO plain_ro VALUES ('2024-01-01', 1);",
        )
        .await
        .unwrap();
    let e = err("SELECT reorder_chunk(c) FROM show_chunks('plain_ro') c".into()).await;
    assert_eq!(e.code().unwrap().code(), "42704", "{e:?}");
    let message = e.as_db_error().unwrap().message();
    assert!(
        message.contains("no previously clustered index"),
        "{message}"
    );
}

/// `GROUP BY time_bucket ... ORDER BY bucket DESC LIMIT n` runs over a window
/// of the newest buckets first; EXPLAIN shows that window's plan and says so.
#[tokio::test(flavor = "multi_thread")]
async fn newest_buckets_run_over_a_window_first() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE nbx (time timestamptz NOT NULL, v float8);
             SELECT create_hypertable('nbx', by_range('time', INTERVAL '1 day'));
             INSERT INTO nbx SELECT t, extract(hour FROM t) FROM generate_series(
                 '2024-01-01 00:00:00+00'::timestamptz, '2024-01-05 23:50:00+00', INTERVAL '10 minutes') t;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    let sql = "SELECT time_bucket('1 hour', time) AS h, max(v), count(*) FROM nbx \
               WHERE time < '2024-01-05 12:30:00+00' GROUP BY h ORDER BY h DESC LIMIT 5";
    let lines = plan_lines(&client, &format!("EXPLAIN {sql}")).await;
    assert!(
        has_line(&lines, "Hypertable nbx: 1 of 5 chunks scanned"),
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        "Newest buckets first: runs with time >= '2024-01-05 08:00:00+00', then in windows \
         16 times wider and over the whole range while fewer than 5 rows come back"
    );
    let rows = client.simple_query(sql).await.unwrap();
    let rows: Vec<(String, String, String)> = rows
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get(0).unwrap().to_string(),
                r.get(1).unwrap().to_string(),
                r.get(2).unwrap().to_string(),
            )),
            _ => None,
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("2024-01-05 12:00:00+00", "12", "3"),
        ("2024-01-05 11:00:00+00", "11", "6"),
        ("2024-01-05 10:00:00+00", "10", "6"),
        ("2024-01-05 09:00:00+00", "9", "6"),
        ("2024-01-05 08:00:00+00", "8", "6"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(rows, expected);

    // Oldest first: the mirror image.
    let lines = plan_lines(
        &client,
        "EXPLAIN SELECT time_bucket('1 hour', time) AS h, count(*) FROM nbx \
         WHERE time >= '2024-01-02 03:10:00+00' GROUP BY h ORDER BY h LIMIT 2",
    )
    .await;
    assert!(
        has_line(&lines, "Hypertable nbx: 1 of 5 chunks scanned"),
        "{lines:#?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("Oldest buckets first: runs with time < '2024-01-02 05:00:00+00'"),
        "{lines:#?}"
    );

    // Any other ORDER BY ... LIMIT is explained as it runs.
    let lines = plan_lines(
        &client,
        "EXPLAIN SELECT time_bucket('1 hour', time) AS h, max(v) AS m FROM nbx \
         WHERE time < '2024-01-05 12:30:00+00' GROUP BY h ORDER BY m DESC LIMIT 5",
    )
    .await;
    assert!(
        has_line(&lines, "Hypertable nbx: 5 of 5 chunks scanned"),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("buckets first")),
        "{lines:#?}"
    );
}

/// "k of n" from the plan's line for hypertable `table`.
async fn chunks_scanned_in(client: &Client, table: &str, filter: &str) -> (usize, usize) {
    let lines = plan_lines(
        client,
        &format!("EXPLAIN SELECT count(*) FROM {table} WHERE {filter}"),
    )
    .await;
    let prefix = format!("Hypertable {table}: ");
    let line = lines
        .iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no hypertable line for {filter}: {lines:#?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[2].parse().unwrap(), words[4].parse().unwrap())
}

/// A space-partitioned hypertable: `device = 'x'` and `device IN (...)` keep
/// only the chunks of those values' hash partitions, besides time exclusion,
/// and the answers are those of a scan of every chunk.
#[tokio::test(flavor = "multi_thread")]
async fn explain_excludes_chunks_of_other_hash_partitions() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    // dev1..dev4 hash to partitions 2, 0, 1, 3 of 4; 'nobody' to 1.
    client
        .batch_execute(
            "CREATE TABLE sx (time timestamptz NOT NULL, device text, v float8);
             SELECT create_hypertable('sx', 'time', 'device', 4, chunk_time_interval => INTERVAL '1 day');
             INSERT INTO sx SELECT t, d, extract(hour from t) FROM generate_series(
                 '2024-01-01 00:00:00+00'::timestamptz, '2024-01-03 23:00:00+00', INTERVAL '1 hour') t,
                 (VALUES ('dev1'), ('dev2'), ('dev3'), ('dev4')) AS x(d);",
        )
        .await
        .unwrap();
    let cases = [
        ("true", 12),
        ("device = 'dev1'", 3),
        ("'dev1' = device", 3),
        ("device IN ('dev1', 'dev2')", 6),
        ("device = 'dev1' OR device = 'dev4'", 6),
        ("device = 'dev1' AND time >= '2024-01-03'", 1),
        ("device = 'dev1' OR time >= '2024-01-03'", 12),
        ("device = 'nobody'", 3),
        ("device || '' = 'dev1'", 12),
        ("device <> 'dev1'", 12),
        ("device IS NULL", 12),
    ];
    for checkpoint in [false, true] {
        if checkpoint {
            client.batch_execute("CHECKPOINT").await.unwrap();
        }
        for (filter, expected) in cases {
            let (scanned, total) = chunks_scanned_in(&client, "sx", filter).await;
            assert_eq!(total, 12, "{filter}");
            assert_eq!(scanned, expected, "chunks scanned for {filter}");
        }
        for device in ["dev1", "dev2", "dev3", "dev4", "nobody"] {
            let q = |filter: String| {
                let client = &client;
                async move {
                    let row = client
                        .query_one(
                            &format!("SELECT count(*), sum(v) FROM sx WHERE {filter}"),
                            &[],
                        )
                        .await
                        .unwrap();
                    (row.get::<_, i64>(0), row.get::<_, Option<f64>>(1))
                }
            };
            let excluded = q(format!("device = '{device}'")).await;
            let whole = q(format!("device || '' = '{device}'")).await;
            assert_eq!(excluded, whole, "{device}");
            let expected = if device == "nobody" { 0 } else { 72 };
            assert_eq!(excluded.0, expected, "{device}");
        }
    }
}
