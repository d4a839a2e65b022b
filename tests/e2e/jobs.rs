//! Retention policies run by the server's scheduler: old chunks go without
//! anyone calling drop_chunks, job_stats and job_errors record the runs,
//! jobs and their stats survive kill -9, and a failing job leaves the server
//! serving.

use std::time::Duration;

use crate::support::{scalar_i64, wait_for, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn retention_policy_drops_old_chunks_in_the_background() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE rp (time timestamptz NOT NULL, v int);
             SELECT create_hypertable('rp', by_range('time', INTERVAL '1 day'));
             INSERT INTO rp VALUES ('2024-01-01 00:00:00+00', 1), ('2024-01-02 00:00:00+00', 2);
             INSERT INTO rp SELECT now() - g * INTERVAL '1 hour', 10 FROM generate_series(0, 5) g;",
        )
        .await
        .unwrap();
    client.batch_execute("CHECKPOINT").await.unwrap();
    let chunks_before = scalar_i64(&client, "SELECT count(*) FROM show_chunks('rp')").await;
    assert!(chunks_before >= 3, "chunks: {chunks_before}");

    // No initial_start: due at once; the scheduler picks it up.
    let job: i32 = client
        .query_one("SELECT add_retention_policy('rp', INTERVAL '30 days')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(job >= 1000, "job id {job}");
    wait_for(
        &client,
        "SELECT count(*) FROM rp WHERE time < '2025-01-01'",
        0,
    )
    .await;
    assert_eq!(scalar_i64(&client, "SELECT count(*) FROM rp").await, 6);
    wait_for(
        &client,
        &format!(
            "SELECT total_successes FROM timescaledb_information.job_stats WHERE job_id = {job}"
        ),
        1,
    )
    .await;
    let row = client
        .query_one(
            &format!(
                "SELECT last_run_status, job_status, total_runs, total_failures, next_start > now() \
                 FROM timescaledb_information.job_stats WHERE job_id = {job}"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Success");
    assert_eq!(row.get::<_, String>(1), "Scheduled");
    assert_eq!(row.get::<_, i64>(2), 1);
    assert_eq!(row.get::<_, i64>(3), 0);
    assert!(row.get::<_, bool>(4), "next run is in the future");

    // Paused jobs stay; CALL run_job runs one at once.
    client
        .query_one(&format!("SELECT alter_job({job}, scheduled => false)"), &[])
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO rp VALUES ('2024-02-01 00:00:00+00', 3)")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        scalar_i64(&client, "SELECT count(*) FROM rp WHERE time < '2025-01-01'").await,
        1,
        "a paused job ran"
    );
    client
        .batch_execute(&format!("CALL run_job({job})"))
        .await
        .unwrap();
    assert_eq!(
        scalar_i64(&client, "SELECT count(*) FROM rp WHERE time < '2025-01-01'").await,
        0
    );

    // Jobs and their stats survive a crash.
    drop(client);
    server.kill9();
    server.restart().await;
    let client = server.connect().await;
    let row = client
        .query_one(
            &format!(
                "SELECT total_runs, job_status FROM timescaledb_information.job_stats WHERE job_id = {job}"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
    assert_eq!(row.get::<_, String>(1), "Paused");
    let config: String = client
        .query_one(
            &format!("SELECT config FROM timescaledb_information.jobs WHERE job_id = {job}"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(config, r#"{"drop_after": "30 days", "hypertable_id": 1}"#);

    // Dropping the table removes its policy.
    client.batch_execute("DROP TABLE rp").await.unwrap();
    assert_eq!(
        scalar_i64(&client, "SELECT count(*) FROM timescaledb_information.jobs").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_job_is_recorded_and_retried_and_the_server_goes_on() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE rf (time timestamptz NOT NULL, v int);
             SELECT create_hypertable('rf', by_range('time', INTERVAL '1 day'));
             INSERT INTO rf VALUES (now(), 1);",
        )
        .await
        .unwrap();
    // A cutoff 300,000 years in the future is out of range: every run fails.
    let job: i32 = client
        .query_one(
            "SELECT add_retention_policy('rf', INTERVAL '-300000 years', initial_start => now() + INTERVAL '1 hour')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let err = client
        .batch_execute(&format!("CALL run_job({job})"))
        .await
        .unwrap_err();
    assert_eq!(
        err.as_db_error().unwrap().code(),
        &tokio_postgres::error::SqlState::DATETIME_FIELD_OVERFLOW,
        "{err}"
    );
    let row = client
        .query_one(
            &format!(
                "SELECT last_run_status, total_runs, total_failures, next_start < now() + INTERVAL '10 minutes' \
                 FROM timescaledb_information.job_stats WHERE job_id = {job}"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Failed");
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(row.get::<_, i64>(2), 1);
    assert!(
        row.get::<_, bool>(3),
        "retried after retry_period, not a day later"
    );
    let row = client
        .query_one(
            &format!(
                "SELECT sqlerrcode, err_message, proc_name FROM timescaledb_information.job_errors WHERE job_id = {job}"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "22008");
    assert!(row.get::<_, String>(1).contains("out of range"));
    assert_eq!(row.get::<_, String>(2), "policy_retention");
    // The scheduler retries it too (due now), and everything else goes on.
    client
        .query_one(
            &format!("SELECT alter_job({job}, next_start => now())"),
            &[],
        )
        .await
        .unwrap();
    wait_for(
        &client,
        &format!(
            "SELECT total_failures FROM timescaledb_information.job_stats WHERE job_id = {job}"
        ),
        2,
    )
    .await;
    assert_eq!(scalar_i64(&client, "SELECT count(*) FROM rf").await, 1);
    client
        .query_one(&format!("SELECT delete_job({job})"), &[])
        .await
        .unwrap();
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM timescaledb_information.job_errors"
        )
        .await,
        0
    );
}

/// `drop_created_before` goes by when chunks were created, not by the time
/// they cover: chunks of the future go too once they are old enough.
#[tokio::test(flavor = "multi_thread")]
async fn retention_by_creation_time_drops_chunks_created_before_the_cutoff() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE rc (time timestamptz NOT NULL, v int);
             SELECT create_hypertable('rc', by_range('time', INTERVAL '1 day'));
             INSERT INTO rc VALUES ('2090-01-01 00:00:00+00', 1), ('2090-01-05 00:00:00+00', 2);",
        )
        .await
        .unwrap();
    // Created now: not before now - 1 s until a second has passed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client
        .batch_execute(
            "SELECT add_retention_policy('rc', drop_created_before => INTERVAL '1 second')",
        )
        .await
        .unwrap();
    wait_for(&client, "SELECT count(*) FROM show_chunks('rc')", 0).await;
    assert_eq!(scalar_i64(&client, "SELECT count(*) FROM rc").await, 0);
    // A chunk created now is younger than the cutoff and stays past a run.
    client
        .batch_execute(
            "INSERT INTO rc VALUES ('2090-02-01 00:00:00+00', 3);
             CALL run_job((SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'rc'));",
        )
        .await
        .unwrap();
    assert_eq!(scalar_i64(&client, "SELECT count(*) FROM rc").await, 1);
}

/// Policies on an integer time column count from what the hypertable's
/// integer_now function (a SQL function, as users write them) returns:
/// retention drops the chunks that end before `now - drop_after`,
/// compression compresses those before `now - compress_after`; the
/// function and its use survive a restart.
#[tokio::test(flavor = "multi_thread")]
async fn integer_time_policies_count_from_the_integer_now_function() {
    let mut server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE it (t bigint NOT NULL, device int, v float8);
             SELECT create_hypertable('it', by_range('t', 100));
             INSERT INTO it SELECT g, g % 4, g * 0.5 FROM generate_series(0, 999) g;
             CREATE FUNCTION it_now() RETURNS bigint LANGUAGE sql STABLE
                 AS $$ SELECT coalesce(max(t), 0) FROM it $$;",
        )
        .await
        .unwrap();
    // Without the function, integer policies have nothing to count from.
    let err = client
        .batch_execute("SELECT add_retention_policy('it', 500)")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22023", "{err:?}");
    client
        .batch_execute(
            "SELECT set_integer_now_func('it', 'it_now');
             SELECT add_retention_policy('it', 500, initial_start => '2100-01-01 00:00:00+00');
             CALL run_job((SELECT job_id FROM timescaledb_information.jobs
                            WHERE hypertable_name = 'it' AND proc_name = 'policy_retention'));",
        )
        .await
        .unwrap();
    // now = 999: the chunks ending at or before 499 go, [0, 400) of the rows.
    assert_eq!(
        scalar_i64(&client, "SELECT count(*) FROM show_chunks('it')").await,
        6
    );
    assert_eq!(scalar_i64(&client, "SELECT min(t) FROM it").await, 400);
    client
        .batch_execute(
            "ALTER TABLE it SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');
             SELECT add_compression_policy('it', 200, initial_start => '2100-01-01 00:00:00+00');
             CALL run_job((SELECT job_id FROM timescaledb_information.jobs
                            WHERE hypertable_name = 'it' AND proc_name = 'policy_compression'));",
        )
        .await
        .unwrap();
    // The chunks ending at or before 799: [400, 700).
    let compressed = "SELECT count(*) FROM timescaledb_information.chunks \
                      WHERE hypertable_name = 'it' AND is_compressed";
    assert_eq!(scalar_i64(&client, compressed).await, 3);
    assert_eq!(
        scalar_i64(&client, "SELECT sum(t)::int8 FROM it").await,
        (400..1000).sum::<i64>()
    );
    drop(client);
    server.stop();
    server.restart().await;
    let client = server.connect().await;
    assert_eq!(scalar_i64(&client, "SELECT it_now()").await, 999);
    let row = client
        .query_one(
            "SELECT integer_now_func FROM timescaledb_information.dimensions \
             WHERE hypertable_name = 'it'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("it_now"));
    // A function that returns NULL fails the run, which job_errors records.
    client
        .batch_execute(
            "CREATE OR REPLACE FUNCTION it_now() RETURNS bigint LANGUAGE sql STABLE
                 AS $$ SELECT NULL::bigint $$;",
        )
        .await
        .unwrap();
    let err = client
        .batch_execute(
            "CALL run_job((SELECT job_id FROM timescaledb_information.jobs
                            WHERE hypertable_name = 'it' AND proc_name = 'policy_retention'))",
        )
        .await
        .unwrap_err();
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert!(
        message.unwrap_or_default().contains("returned NULL"),
        "{err:?}"
    );
    assert_eq!(scalar_i64(&client, "SELECT count(*) FROM it").await, 600);
}
