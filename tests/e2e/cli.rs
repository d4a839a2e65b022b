//! How the binary is configured and started.

use crate::support::{Launch, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn settings_from_environment_variables() {
    // No command-line flags at all: host, port, data dir and log level come
    // from TEMPORA_HOST / TEMPORA_PORT / TEMPORA_DATA_DIR / TEMPORA_LOG_LEVEL.
    let mut server = TestServer::start_with(Launch::Env).await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cli_env (time TIMESTAMPTZ NOT NULL, v INTEGER);
             INSERT INTO cli_env VALUES ('2024-01-01 00:00:00+00', 1), ('2024-01-02 00:00:00+00', 2);",
        )
        .await
        .unwrap();
    drop(client);

    // The data went to TEMPORA_DATA_DIR: it is there after a restart.
    let status = server.stop();
    assert!(status.success(), "SIGTERM shutdown exited with {status}");
    let entries = std::fs::read_dir(server.data_dir())
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        entries > 0,
        "nothing was written to TEMPORA_DATA_DIR {}",
        server.data_dir().display()
    );
    server.restart().await;
    let client = server.connect().await;
    let n: i64 = client
        .query_one("SELECT sum(v) FROM cli_env", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_its_data_dir_and_logs_to_stderr() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE cli_log (v INTEGER); INSERT INTO cli_log VALUES (1);")
        .await
        .unwrap();
    let entries = std::fs::read_dir(server.data_dir())
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(entries > 0, "the data dir is still empty after an INSERT");
    // The log file receives the server's stderr (and stdout); at
    // --log-level info a started server has said something.
    let log = server.log();
    let server_lines = log
        .lines()
        .filter(|l| !l.starts_with("===== [test harness]"))
        .count();
    assert!(
        server_lines > 0,
        "the server wrote nothing to stderr:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE cli_lock (v INTEGER); INSERT INTO cli_lock VALUES (7);")
        .await
        .unwrap();
    let out = std::process::Command::new(crate::support::tempora_bin())
        .args(["--port", "0", "--trust-loopback", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the second server started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pid = format!("(PID {})", server.pid());
    assert!(
        stderr.contains("is another Tempora server") && stderr.contains(&pid),
        "{stderr}"
    );
    // The first server goes on, its data intact.
    let v: i32 = client
        .query_one("SELECT v FROM cli_lock", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 7);
}
