//! Drivers' ordinary workflows (tests/drivers/*.py), each against its own
//! server. `.ci/run` installs the Python packages they need
//! (tests/drivers/requirements.txt).

use std::path::PathBuf;
use std::process::Command;

use crate::support::TestServer;

fn drivers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/drivers")
}

async fn run_workflow(script: &str, module: &str) {
    let probe = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .expect("python3 runs");
    assert!(
        probe.status.success(),
        "the Python module {module} is missing: pip install -r tests/drivers/requirements.txt \
         (.ci/run does)\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let server = TestServer::start().await;
    let path = drivers_dir().join(script);
    let port = server.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(path)
            .arg(port)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("driver task");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn psycopg_workflow() {
    run_workflow("psycopg_workflow.py", "psycopg").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn asyncpg_workflow() {
    run_workflow("asyncpg_workflow.py", "asyncpg").await;
}
