//! Drivers' ordinary workflows (tests/drivers/), each against its own
//! server: psycopg 3, asyncpg and SQLAlchemy 2 (Python), pgjdbc (Java),
//! node-postgres.
//! `.ci/run` installs what they need (tests/drivers/requirements.txt,
//! Debian's libpostgresql-jdbc-java, `npm ci` in tests/drivers). Each
//! logs in with a password, so each driver's SCRAM-SHA-256 is exercised.

use std::path::PathBuf;
use std::process::Command;

use crate::support::TestServer;

fn drivers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/drivers")
}

/// The superuser's password: each driver logs in with it by SCRAM-SHA-256
/// (PGPASSWORD, which libpq, asyncpg and node-postgres read; the Java
/// workflow passes it to pgjdbc).
const PASSWORD: &str = "driver-s3cret";

/// Runs `program args... PORT` against a fresh server; it must exit 0.
async fn run_against_server(what: &str, mut command: Command) {
    let server = TestServer::start_args(&["--password", PASSWORD]).await;
    command.arg(server.port().to_string());
    command.env("PGPASSWORD", PASSWORD).env_remove("PGPASSFILE");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("driver task")
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_tail(40)
    );
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
    let mut command = Command::new("python3");
    command.arg(drivers_dir().join(script));
    run_against_server(script, command).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn psycopg_workflow() {
    run_workflow("psycopg_workflow.py", "psycopg").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn asyncpg_workflow() {
    run_workflow("asyncpg_workflow.py", "asyncpg").await;
}

/// SQLAlchemy 2's ORM over psycopg: `create_all` and migrations run their
/// DDL inside transactions.
#[tokio::test(flavor = "multi_thread")]
async fn sqlalchemy_workflow() {
    run_workflow("sqlalchemy_workflow.py", "sqlalchemy").await;
}

/// Debian's pgjdbc (libpostgresql-jdbc-java).
const PGJDBC: &str = "/usr/share/java/postgresql.jar";

#[tokio::test(flavor = "multi_thread")]
async fn pgjdbc_workflow() {
    assert!(
        std::path::Path::new(PGJDBC).exists(),
        "{PGJDBC} is missing: apt-get install libpostgresql-jdbc-java (.ci/run does)"
    );
    let classes = tempfile::tempdir().expect("temp dir");
    let javac = Command::new("javac")
        .arg("-d")
        .arg(classes.path())
        .arg(drivers_dir().join("JdbcWorkflow.java"))
        .output()
        .expect("javac runs (a JDK is needed)");
    assert!(
        javac.status.success(),
        "javac failed:\n{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let mut command = Command::new("java");
    command
        .arg("-cp")
        .arg(format!("{PGJDBC}:{}", classes.path().display()))
        .arg("JdbcWorkflow");
    run_against_server("JdbcWorkflow", command).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_postgres_workflow() {
    assert!(
        drivers_dir().join("node_modules/pg").exists(),
        "node-postgres is missing: npm ci --prefix tests/drivers (.ci/run does)"
    );
    let mut command = Command::new("node");
    command.arg(drivers_dir().join("node_pg_workflow.js"));
    run_against_server("node_pg_workflow.js", command).await;
}
