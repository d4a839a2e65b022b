//! Continuous aggregates with the server's moving parts: a refresh policy
//! run by the scheduler, the seed's three retention tiers (raw 30 days,
//! hourly for a year, daily for five), and kill -9 in the middle of a
//! refresh. (Every call and error: sql/continuous_aggregates.slt.)

use std::time::Duration;

use crate::support::{scalar_i64, text_rows, wait_for, TestServer};

/// The seed's tiers: raw readings kept 30 days, hourly aggregates a year,
/// daily ones (on the hourly) five years, all kept fresh by policies.
#[tokio::test(flavor = "multi_thread")]
async fn three_tiers_are_refreshed_and_retained_by_policies() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    // Readings every 6 hours over the last 500 days, two sensors.
    client
        .batch_execute(
            "CREATE TABLE conditions (time timestamptz NOT NULL, sensor int, temperature float8);
             SELECT create_hypertable('conditions', by_range('time', INTERVAL '7 days'));
             INSERT INTO conditions
               SELECT date_trunc('hour', now()) - g * INTERVAL '6 hours', s, s * 100 + g % 10
               FROM generate_series(1, 2000) g, generate_series(1, 2) s;
             CREATE MATERIALIZED VIEW conditions_hourly WITH (timescaledb.continuous) AS
               SELECT time_bucket('1 hour', time) AS bucket, sensor,
                      avg(temperature) AS avg_t, max(temperature) AS max_t, count(*) AS n
               FROM conditions GROUP BY bucket, sensor WITH NO DATA;
             CREATE MATERIALIZED VIEW conditions_daily WITH (timescaledb.continuous) AS
               SELECT time_bucket('1 day', bucket) AS day, sensor, max(max_t) AS max_t, sum(n) AS n
               FROM conditions_hourly GROUP BY day, sensor WITH NO DATA;",
        )
        .await
        .unwrap();
    assert_eq!(
        scalar_i64(&client, "SELECT count(*) FROM conditions_hourly").await,
        0
    );

    // Refresh policies, due at once; the scheduler runs them.
    for (view, start) in [
        ("conditions_hourly", "2 years"),
        ("conditions_daily", "10 years"),
    ] {
        let id: i32 = client
            .query_one(
                &format!(
                    "SELECT add_continuous_aggregate_policy('{view}', start_offset => INTERVAL '{start}', \
                     end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 second')"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(id >= 1000, "job id {id}");
    }
    wait_for(&client, "SELECT count(*) FROM conditions_hourly", 4000).await;
    // The daily tier ends at the day now() - end_offset falls in (the window's
    // end rounds down to a bucket): yesterday's in the first hour of a day.
    let before_today = scalar_i64(
        &client,
        "SELECT count(*) FROM conditions WHERE time < time_bucket('1 day', now() - INTERVAL '1 hour')",
    )
    .await;
    wait_for(
        &client,
        "SELECT coalesce(sum(n), 0)::bigint FROM conditions_daily",
        before_today,
    )
    .await;
    // A run's stats are recorded once it is done, just after its commits.
    wait_for(
        &client,
        "SELECT count(*) FROM timescaledb_information.job_stats s \
         JOIN timescaledb_information.jobs j ON s.job_id = j.job_id \
         WHERE j.proc_name = 'policy_refresh_continuous_aggregate' AND s.total_successes >= 1",
        2,
    )
    .await;
    let daily_before = text_rows(
        &client,
        "SELECT day, sensor, max_t, n FROM conditions_daily ORDER BY day, sensor",
    )
    .await;

    // The refresh policies reach back years, past what retention keeps of
    // the raw rows: as in TimescaleDB, a refresh over dropped raw chunks
    // forgets their buckets, so they stop before retention runs.
    for id in text_rows(
        &client,
        "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate'",
    )
    .await
    {
        client
            .batch_execute(&format!("SELECT alter_job({id}, scheduled => false)"))
            .await
            .unwrap();
    }

    // Retention on every tier; run now rather than waiting for a day.
    client
        .batch_execute(
            "SELECT add_retention_policy('conditions', INTERVAL '30 days', initial_start => now() + INTERVAL '1 day');
             SELECT add_retention_policy('conditions_hourly', INTERVAL '1 year', initial_start => now() + INTERVAL '1 day');
             SELECT add_retention_policy('conditions_daily', INTERVAL '5 years', initial_start => now() + INTERVAL '1 day');",
        )
        .await
        .unwrap();
    let jobs = text_rows(
        &client,
        "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' ORDER BY job_id",
    )
    .await;
    assert_eq!(jobs.len(), 3);
    for id in &jobs {
        client
            .batch_execute(&format!("CALL run_job({id})"))
            .await
            .unwrap();
    }
    // Raw rows older than the 30 days (of whole chunks) are gone; the
    // hourly tier keeps its year, the daily tier everything.
    let old_raw = scalar_i64(
        &client,
        "SELECT count(*) FROM conditions WHERE time < now() - INTERVAL '40 days'",
    )
    .await;
    assert_eq!(old_raw, 0);
    let hourly_old = scalar_i64(
        &client,
        "SELECT count(*) FROM conditions_hourly WHERE bucket < now() - INTERVAL '40 days'",
    )
    .await;
    assert!(hourly_old > 0, "hourly kept its year");
    // Its chunks are 70 days (10x the raw ones): those ending a year ago went.
    let hourly_too_old = scalar_i64(
        &client,
        "SELECT count(*) FROM conditions_hourly WHERE bucket < now() - INTERVAL '435 days'",
    )
    .await;
    assert_eq!(hourly_too_old, 0);

    // Refreshes of the recent days, clear of the dropped raw chunks, leave
    // the materialized days as they were (a refresh over the dropped range
    // would forget them, as in TimescaleDB: retention invalidates it).
    client
        .batch_execute(
            "CALL refresh_continuous_aggregate('conditions_hourly', now() - INTERVAL '20 days', NULL)",
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "CALL refresh_continuous_aggregate('conditions_daily', now() - INTERVAL '20 days', now() - INTERVAL '1 day')",
        )
        .await
        .unwrap();
    let daily_after = text_rows(
        &client,
        "SELECT day, sensor, max_t, n FROM conditions_daily ORDER BY day, sensor",
    )
    .await;
    assert_eq!(daily_after.len(), daily_before.len());
    assert_eq!(daily_after, daily_before);
    // A refresh over the range retention dropped forgets the hours there.
    client
        .batch_execute("CALL refresh_continuous_aggregate('conditions_hourly', NULL, NULL)")
        .await
        .unwrap();
    let hourly_dropped = scalar_i64(
        &client,
        "SELECT count(*) FROM conditions_hourly WHERE bucket < now() - INTERVAL '40 days'",
    )
    .await;
    assert_eq!(hourly_dropped, 0);
}

/// Late rows into days already materialized: after the refresh exactly
/// those days change, and the aggregate equals the query over the raw rows.
#[tokio::test(flavor = "multi_thread")]
async fn backfill_changes_exactly_the_affected_buckets() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE bf (time timestamptz NOT NULL, device int, v float8);
             SELECT create_hypertable('bf', by_range('time', INTERVAL '1 day'));
             INSERT INTO bf SELECT t, d, d::float8 FROM generate_series('2024-03-01'::timestamptz, '2024-03-30 23:00:00+00', INTERVAL '1 hour') t, generate_series(1, 4) d;
             CREATE MATERIALIZED VIEW bf_daily WITH (timescaledb.continuous) AS
               SELECT time_bucket('1 day', time) AS day, device, count(*) AS n, sum(v) AS s FROM bf GROUP BY day, device;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    let query = "SELECT day, device, n, s FROM bf_daily ORDER BY day, device";
    let before = text_rows(&client, query).await;
    assert_eq!(before.len(), 120);
    // Created in several batches (30 days, 10-day materialization chunks),
    // with nothing left over for the next refresh.
    let again = server.psql_sql("CALL refresh_continuous_aggregate('bf_daily', NULL, NULL)");
    again.assert_success();
    assert!(
        again
            .stderr
            .contains("continuous aggregate \"bf_daily\" is already up-to-date"),
        "{}",
        again.stderr
    );
    // Late rows for three days, some flushed to files, some still in memory.
    client
        .batch_execute(
            "INSERT INTO bf VALUES ('2024-03-03 10:30:00+00', 2, 100), ('2024-03-17 00:00:00+00', 4, 1);
             CHECKPOINT;
             INSERT INTO bf VALUES ('2024-03-25 23:59:59+00', 1, 5);",
        )
        .await
        .unwrap();
    assert_eq!(text_rows(&client, query).await, before, "materialized only");
    client
        .batch_execute("CALL refresh_continuous_aggregate('bf_daily', NULL, NULL)")
        .await
        .unwrap();
    let after = text_rows(&client, query).await;
    let changed: Vec<(&String, &String)> =
        before.iter().zip(&after).filter(|(b, a)| b != a).collect();
    assert_eq!(
        changed,
        vec![
            (
                &"2024-03-03 00:00:00+00|2|24|48".to_string(),
                &"2024-03-03 00:00:00+00|2|25|148".to_string()
            ),
            (
                &"2024-03-17 00:00:00+00|4|24|96".to_string(),
                &"2024-03-17 00:00:00+00|4|25|97".to_string()
            ),
            (
                &"2024-03-25 00:00:00+00|1|24|24".to_string(),
                &"2024-03-25 00:00:00+00|1|25|29".to_string()
            ),
        ]
    );
    let direct = text_rows(
        &client,
        "SELECT time_bucket('1 day', time) AS day, device, count(*), sum(v) FROM bf GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    assert_eq!(after, direct);
}

/// kill -9 while a refresh runs (it commits a batch of buckets at a time):
/// after the restart every bucket holds its old aggregate or its new one,
/// never anything else, and the next refresh brings them all to the raw
/// rows' aggregate.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_refresh_leaves_the_aggregate_consistent() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE kr (time timestamptz NOT NULL, device int, v float8);
             SELECT create_hypertable('kr', by_range('time', INTERVAL '1 day'));
             INSERT INTO kr SELECT '2024-01-01'::timestamptz + g * INTERVAL '1 minute', g % 50, g % 1000
               FROM generate_series(0, 199999) g;
             CREATE MATERIALIZED VIEW kr_hourly WITH (timescaledb.continuous) AS
               SELECT time_bucket('1 hour', time) AS hour, device, count(*) AS n, sum(v) AS s FROM kr GROUP BY hour, device;
             UPDATE kr SET v = v + 1;",
        )
        .await
        .unwrap();
    let agg = "SELECT hour, device, n, s FROM kr_hourly ORDER BY hour, device";
    let old = text_rows(&client, agg).await;
    let direct_sql = "SELECT time_bucket('1 hour', time), device, count(*), sum(v) FROM kr GROUP BY 1, 2 ORDER BY 1, 2";
    let new = text_rows(&client, direct_sql).await;
    assert_ne!(old, new);

    let refresher = server.connect().await;
    let refresh = tokio::spawn(async move {
        refresher
            .batch_execute("CALL refresh_continuous_aggregate('kr_hourly', NULL, NULL)")
            .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill9();
    let _ = refresh.await;
    server.restart().await;
    let client = server.connect().await;
    let seen = text_rows(&client, agg).await;
    assert_eq!(seen.len(), old.len());
    for ((s, o), n) in seen.iter().zip(&old).zip(&new) {
        assert!(s == o || s == n, "bucket {s}: neither {o} nor {n}");
    }
    client
        .batch_execute("CALL refresh_continuous_aggregate('kr_hourly', NULL, NULL)")
        .await
        .unwrap();
    assert_eq!(text_rows(&client, agg).await, new);
}
